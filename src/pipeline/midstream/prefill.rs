//! The continuation's request: the conversation with the answer so far as
//! its last message, the assistant's (section 17).

use serde_json::{json, Value};

use crate::config::ProviderKind;
use crate::generation::{GenRequest, Message, Role};

/// The system prompt's line for an upstream that is not Anthropic's, whose
/// servers take a final assistant message less surely as a prefill.
pub const CONTINUE_INSTRUCTION: &str = "The last assistant message is an answer that was cut \
off. Continue it from exactly where it ends, without repeating any of it.";

/// `original` with `answer` as its last message, the assistant's, for a
/// `kind` upstream (section 17).
pub fn continuation(original: &GenRequest, answer: &str, kind: ProviderKind) -> GenRequest {
    let mut request = original.clone();
    // Cut before any answer text (in its reasoning, say): asked again from
    // the start, since an empty prefill is refused.
    if answer.trim().is_empty() {
        return request;
    }
    // Anthropic continues a final assistant message by design; elsewhere
    // the system prompt says what it is.
    let instruct = match kind {
        ProviderKind::Openai | ProviderKind::Ollama => true,
        ProviderKind::Anthropic | ProviderKind::Mock | ProviderKind::Replay => false,
    };
    if instruct {
        match request.messages.first_mut() {
            Some(first) if first.role == Role::System => {
                first.content.push_str("\n\n");
                first.content.push_str(CONTINUE_INSTRUCTION);
            }
            Some(_) | None => request.messages.insert(
                0,
                Message {
                    role: Role::System,
                    content: CONTINUE_INSTRUCTION.to_owned(),
                },
            ),
        }
        if let Some(raw) = &mut request.raw_messages {
            instruct_raw(raw);
        }
    }
    request.messages.push(Message {
        role: Role::Assistant,
        content: answer.to_owned(),
    });
    if let Some(raw) = &mut request.raw_messages {
        raw.push(json!({"role": "assistant", "content": answer}));
    }
    // The conversation no longer ends with tool results.
    request.tool_results.clear();
    request
}

/// The instruction in the client's own messages: appended to a leading
/// system (or developer) message with text content, else a system message
/// of its own first.
pub(super) fn instruct_raw(raw: &mut Vec<Value>) {
    if let Some(first) = raw.first_mut() {
        let leads = matches!(first["role"].as_str(), Some("system" | "developer"));
        if let (true, Some(text)) = (leads, first["content"].as_str()) {
            first["content"] = Value::from(format!("{text}\n\n{CONTINUE_INSTRUCTION}"));
            return;
        }
    }
    raw.insert(
        0,
        json!({"role": "system", "content": CONTINUE_INSTRUCTION}),
    );
}
