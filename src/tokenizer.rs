//! Token counting and cutting with OpenAI's o200k_base BPE (the GPT-4o family's
//! encoding), compiled into the binary by `tiktoken-rs`: nothing is downloaded
//! at run time.
//!
//! The mock cuts its text into the pieces a real model would stream, and
//! `usage` is counted in the same tokens. A BPE token can be a fragment of a
//! multi-byte character (an emoji is often two tokens); such fragments are
//! joined into one [`Piece`] so that every piece sent to a client is valid
//! UTF-8, while `tokens` still counts every BPE token in it.

use tiktoken_rs::CoreBPE;

use crate::generation::Message;

fn bpe() -> &'static CoreBPE {
    tiktoken_rs::o200k_base_singleton()
}

/// Loads the encoding tables (a few hundred milliseconds), so that the first
/// request does not pay for it.
pub fn warm_up() {
    let _ = bpe();
}

/// A piece of text that is sent as one token frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Piece {
    pub text: String,
    /// BPE tokens in `text` (1, or more for a joined multi-byte character).
    pub tokens: u32,
}

/// The number of BPE tokens in `text`.
pub fn count(text: &str) -> u32 {
    saturating_u32(bpe().encode_ordinary(text).len())
}

/// Cuts `text` into the pieces a model would stream.
pub fn pieces(text: &str) -> Vec<Piece> {
    let bpe = bpe();
    let mut pieces = Vec::new();
    let mut pending: Vec<u8> = Vec::new();
    let mut pending_tokens = 0u32;
    for token in bpe.encode_ordinary(text) {
        let bytes = bpe
            .decode_bytes(&[token])
            .expect("a token the encoder produced decodes");
        pending.extend_from_slice(&bytes);
        pending_tokens += 1;
        // A token that ends inside a multi-byte character waits for the rest.
        if let Ok(text) = std::str::from_utf8(&pending) {
            pieces.push(Piece {
                text: text.to_owned(),
                tokens: pending_tokens,
            });
            pending.clear();
            pending_tokens = 0;
        }
    }
    if !pending.is_empty() {
        // Unreachable for text that came in as &str; kept lossless anyway.
        pieces.push(Piece {
            text: String::from_utf8_lossy(&pending).into_owned(),
            tokens: pending_tokens,
        });
    }
    pieces
}

/// Prompt tokens of a chat, counted the way OpenAI documents for its chat
/// models: each message costs its content plus 3 tokens of framing, and the
/// reply is primed with 3 more.
pub fn prompt_tokens(messages: &[Message]) -> u32 {
    let content: u32 = messages.iter().map(|m| count(&m.content) + 3).sum();
    content + 3
}

fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_rebuild_the_text_and_count_every_token() {
        let text = "Hello, world! Naïve café — 🚀 日本語 `code` done.";
        let pieces = pieces(text);
        let joined: String = pieces.iter().map(|p| p.text.as_str()).collect();
        assert_eq!(joined, text);
        let tokens: u32 = pieces.iter().map(|p| p.tokens).sum();
        assert_eq!(tokens, count(text));
        assert!(pieces.len() > 10, "cut into real tokens, got {pieces:?}");
    }
}
