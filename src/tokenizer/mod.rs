//! Token counting and cutting with OpenAI's o200k_base BPE (the GPT-4o family's
//! encoding), compiled into the binary by `tiktoken-rs` and kept compact by
//! its `bpe` module: nothing is downloaded at run time.
//!
//! The mock cuts its text into the pieces a real model would stream, and
//! `usage` is counted in the same tokens. A BPE token can be a fragment of a
//! multi-byte character (an emoji is often two tokens); such fragments are
//! joined into one [`Piece`] so that every piece sent to a client is valid
//! UTF-8, while `tokens` still counts every BPE token in it.

mod bpe;

use crate::generation::Message;

fn bpe() -> &'static bpe::Bpe {
    bpe::o200k()
}

/// Builds the encoding tables (a few hundred milliseconds), so that the first
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

/// The most text handed to the BPE at once by [`count`].
const COUNT_CHUNK: usize = 256;

/// The number of BPE tokens in `text`, in time linear in its length.
///
/// The BPE merge is quadratic in the length of one pre-tokenized piece, and
/// a run with no space or punctuation is one piece: counting 8 MiB of `x`
/// whole held a runtime thread for seconds (the usage of a cancelled
/// generation, `tests/it/hardening.rs`, finding 3). So long text is counted
/// in chunks of at most `COUNT_CHUNK` bytes, cut before a whitespace where
/// there is one (where the pre-tokenizer cuts anyway, so ordinary text counts
/// exactly), else at a character boundary.
pub fn count(text: &str) -> u32 {
    let bpe = bpe();
    let mut total = 0usize;
    let mut rest = text;
    while rest.len() > COUNT_CHUNK {
        let window = head(rest, COUNT_CHUNK);
        let cut = window
            .rfind(char::is_whitespace)
            .filter(|&at| at > 0)
            .unwrap_or(window.len());
        total += bpe.encode(&rest[..cut]).len();
        rest = &rest[cut..];
    }
    total += bpe.encode(rest).len();
    saturating_u32(total)
}

/// The tokens of a text of `total_bytes` whose first part is `sample`:
/// `sample` counted, the rest estimated at its rate. For counts sluice makes
/// itself when no one gave it one (a cancelled generation's usage, an
/// upstream that sends none), whose cost must not grow with the text.
pub fn estimate(sample: &str, total_bytes: usize) -> u32 {
    let counted = count(sample);
    if total_bytes <= sample.len() || sample.is_empty() {
        return counted;
    }
    let estimate = u64::from(counted) * total_bytes as u64 / sample.len() as u64;
    u32::try_from(estimate).unwrap_or(u32::MAX)
}

/// The first `max` bytes of `text` at most, cut at a character boundary.
pub fn head(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Where a piece ends in its text, and how many BPE tokens it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// Byte offset just past the piece (always on a character boundary).
    pub end: usize,
    /// BPE tokens in the piece (1, or more for a joined multi-byte character).
    pub tokens: u32,
}

/// Where `text` is cut into the pieces a model would stream. Offsets instead
/// of strings, so a planned answer costs 16 bytes per piece, not a `String`.
pub fn cuts(text: &str) -> Vec<Cut> {
    let bpe = bpe();
    let mut cuts = Vec::new();
    let mut end = 0;
    let mut tokens = 0u32;
    for token in bpe.encode(text) {
        end += bpe.token(token).len();
        tokens += 1;
        // A token that ends inside a multi-byte character waits for the rest.
        if text.is_char_boundary(end) {
            cuts.push(Cut { end, tokens });
            tokens = 0;
        }
    }
    cuts
}

/// Cuts `text` into the pieces a model would stream.
pub fn pieces(text: &str) -> Vec<Piece> {
    let mut start = 0;
    cuts(text)
        .into_iter()
        .map(|cut| {
            let piece = Piece {
                text: text[start..cut.end].to_owned(),
                tokens: cut.tokens,
            };
            start = cut.end;
            piece
        })
        .collect()
}

/// Prompt tokens of a chat, counted the way OpenAI documents for its chat
/// models: each message costs its content plus 3 tokens of framing, and the
/// reply is primed with 3 more.
pub fn prompt_tokens(messages: &[Message]) -> u32 {
    let content: u32 = messages.iter().map(|m| count(&m.content) + 3).sum();
    content + 3
}

/// The input tokens of a request as a door would send it: its messages and
/// the tools it offers (name, description, schema), for the counting
/// endpoints (section 13).
pub fn input_tokens(request: &crate::generation::GenRequest) -> u32 {
    let tools: u32 = request
        .tools
        .iter()
        .map(|tool| {
            count(&tool.name)
                + tool.description.as_deref().map_or(0, count)
                + count(&tool.parameters.to_string())
        })
        .sum();
    prompt_tokens(&request.messages).saturating_add(tools)
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

    #[test]
    fn long_text_counts_as_whole_text_does_and_a_long_run_in_linear_time() {
        let prose = "The quick brown fox jumps over the lazy dog, née café 🚀. ".repeat(100);
        assert!(prose.len() > 4 * COUNT_CHUNK);
        let whole = saturating_u32(bpe().encode(&prose).len());
        assert_eq!(
            count(&prose),
            whole,
            "cut only where the pre-tokenizer cuts"
        );
        // One piece of 2 MiB (whole, one quadratic merge).
        let run = "x".repeat(2 << 20);
        let start = tokio::time::Instant::now();
        let counted = count(&run);
        assert!(counted > 0);
        assert!(
            start.elapsed() < std::time::Duration::from_secs(10),
            "{:?}",
            start.elapsed()
        );
    }
}
