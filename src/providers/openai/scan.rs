//! The fast path for the chunk nearly every token arrives in: one choice
//! (index 0) whose delta is a piece of `content` and nothing else that
//! means anything, no finish reason, no usage, no error:
//!
//! ```text
//! {"id":"..","object":"chat.completion.chunk","created":1,"model":"..",
//!  "choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}
//! ```
//!
//! [`ChunkReader::plain`] reads such a chunk in one pass over its bytes, building nothing
//! but the text, and answers `None` for anything else, which then goes
//! through the full parse (`serde_json` into the typed chunk, in `mod.rs`).
//! It accepts a chunk only when the full parse would give the same event,
//! so it may be conservative but never different: a string with an escape
//! anywhere but in `content`, an unusual number, a nested value in a field
//! sluice does not read, or a repeated key all fall back. The fuzz target
//! `upstream_chunks` checks the two paths agree on every input it tries.
//!
//! Why hand-written: the full parse was the largest single cost of a relayed
//! token (about a fifth of the proxy's instructions per token under
//! callgrind, `benches/instructions.sh`), most of it validating and skipping
//! the fields around the one string that matters.

use std::borrow::Cow;

use crate::generation::TokenEvent;

/// What a plain chunk carries.
#[derive(Debug, PartialEq)]
pub enum Plain<'a> {
    /// A piece of the answer (never empty).
    Token(Cow<'a, str>),
    /// Nothing to relay: an empty delta, or only the role.
    Nothing,
}

impl Plain<'_> {
    /// The event the full parse gives for the same chunk.
    pub fn into_event(self) -> Option<TokenEvent> {
        match self {
            Plain::Token(text) => Some(TokenEvent::Token(text.into_owned())),
            Plain::Nothing => None,
        }
    }
}

/// Reads one stream's chunks, remembering the last plain chunk's shape.
///
/// Within one stream every plain chunk is the same bytes around a different
/// piece of text: `id`, `created` and `model` do not change. So once a chunk
/// has been scanned whole, the next one that starts with the same head (up
/// to and including `"content":"`) and ends with the same tail (from the
/// closing quote on), with text between them that holds no quote, escape or
/// control character, is the same JSON with other text: two comparisons and
/// one short scan, not a parse.
#[derive(Default)]
pub struct ChunkReader {
    template: Option<Template>,
}

/// The bytes of a scanned plain chunk around its text; their buffers are
/// reused when a chunk that did not fit the template replaces it.
#[derive(Default)]
struct Template {
    head: String,
    tail: String,
}

impl Template {
    /// A chunk's head and tail are kept when they are this short at most
    /// (a chunk is about 200 bytes), so a stream of odd chunks cannot make
    /// the reader hold much.
    const MAX: usize = 1024;
}

impl ChunkReader {
    /// The chunk's text, if `data` is a plain chunk; `None` means "parse it
    /// fully", never "it is invalid".
    pub fn plain<'a>(&mut self, data: &'a str) -> Option<Plain<'a>> {
        if let Some(template) = &self.template {
            if let Some(text) = data
                .strip_prefix(template.head.as_str())
                .and_then(|rest| rest.strip_suffix(template.tail.as_str()))
            {
                if !text.is_empty() && bare(text.as_bytes()) {
                    return Some(Plain::Token(Cow::Borrowed(text)));
                }
            }
        }
        let Some((start, end)) = scan(data)? else {
            return Some(Plain::Nothing);
        };
        let raw = &data[start..end];
        if raw.is_empty() {
            return Some(Plain::Nothing);
        }
        if raw.contains('\\') {
            // Escapes are rare; the string is decoded exactly as the full
            // parse would (it was checked to be one JSON string).
            let text: String = serde_json::from_str(&data[start - 1..end + 1]).ok()?;
            return Some(Plain::Token(Cow::Owned(text)));
        }
        if start + data.len() - end <= Template::MAX {
            let template = self.template.get_or_insert_with(Template::default);
            template.head.clear();
            template.head.push_str(&data[..start]);
            template.tail.clear();
            template.tail.push_str(&data[end..]);
        }
        Some(Plain::Token(Cow::Borrowed(raw)))
    }
}

/// Text that can sit between a template's quotes as it is: no quote, no
/// escape, no control character.
fn bare(text: &[u8]) -> bool {
    text.iter()
        .fold(true, |ok, &b| ok & (b != b'"') & (b != b'\\') & (b >= 0x20))
}

/// A whole chunk scanned, if it is plain: where its text lies (between the
/// quotes), when it has one.
fn scan(data: &str) -> Option<Option<(usize, usize)>> {
    let mut s = Scanner {
        bytes: data.as_bytes(),
        at: 0,
        clean: no_controls(data.as_bytes()),
    };
    let mut content = None;
    let (mut choices, mut usage, mut error) = (false, false, false);
    s.object(|s, key| match key {
        b"choices" => {
            once(&mut choices)?;
            content = s.choices()?;
            Some(())
        }
        // `null` reads as absent in the full parse too.
        b"usage" => {
            once(&mut usage)?;
            s.null()
        }
        b"error" => {
            once(&mut error)?;
            s.null()
        }
        _ => s.scalar(),
    })?;
    s.ws();
    // A chunk without `choices` is left to the full parse.
    (s.at == s.bytes.len() && choices).then_some(content)
}

/// `None` if the field was seen already: the full parse refuses a repeated
/// field it reads (serde's `duplicate field`), or takes the last.
fn once(seen: &mut bool) -> Option<()> {
    (!std::mem::replace(seen, true)).then_some(())
}

/// No byte below 0x20. A fold rather than an early exit, so it compiles to
/// vector instructions.
fn no_controls(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & (b >= 0x20))
}

struct Scanner<'a> {
    bytes: &'a [u8],
    at: usize,
    /// No byte of the chunk is below 0x20 (no whitespace but spaces, and
    /// so no control character in any string).
    clean: bool,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> Option<()> {
        self.ws();
        (self.peek()? == byte).then(|| self.at += 1)
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        self.ws();
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word).then(|| self.at = end)
    }

    fn null(&mut self) -> Option<()> {
        self.literal(b"null")
    }

    /// A string with no escapes and no control characters; its bytes
    /// between the quotes as a span.
    fn plain_string(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.at;
        let end = self.quote_or_escape(start)?;
        (self.bytes[end] == b'"' && self.no_controls(start, end)).then_some(())?;
        self.at = end + 1;
        Some((start, end))
    }

    /// A string that may hold escapes (checked only for where it ends; its
    /// decoding is left to serde_json).
    fn any_string(&mut self) -> Option<(usize, usize)> {
        self.eat(b'"')?;
        let start = self.at;
        loop {
            let stop = self.quote_or_escape(self.at)?;
            if self.bytes[stop] == b'"' {
                self.no_controls(start, stop).then_some(())?;
                self.at = stop + 1;
                return Some((start, stop));
            }
            // The escaped byte is skipped whatever it is (a quote among them).
            self.at = stop + 2;
        }
    }

    /// The first `"` or `\` from `from`. Keys and most values are short,
    /// and found sooner byte by byte than through memchr's setup.
    fn quote_or_escape(&self, from: usize) -> Option<usize> {
        let rest = self.bytes.get(from..)?;
        let head = &rest[..rest.len().min(16)];
        if let Some(at) = head.iter().position(|&b| b == b'"' || b == b'\\') {
            return Some(from + at);
        }
        memchr::memchr2(b'"', b'\\', &rest[head.len()..]).map(|at| from + head.len() + at)
    }

    /// No byte below 0x20 in `start..end`, which JSON forbids raw inside a
    /// string: known at once when the whole chunk has none (compact JSON,
    /// the usual case), else looked for.
    fn no_controls(&self, start: usize, end: usize) -> bool {
        self.clean || no_controls(&self.bytes[start..end])
    }

    /// An integer with no sign, fraction or exponent, as `created` is.
    fn integer(&mut self) -> Option<()> {
        self.ws();
        let start = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let digits = &self.bytes[start..self.at];
        match digits {
            [] => None,
            [b'0', _, ..] => None,
            _ => Some(()),
        }
    }

    /// A field the full parse skips: a plain string, an integer, a literal.
    fn scalar(&mut self) -> Option<()> {
        self.ws();
        match self.peek()? {
            b'"' => self.plain_string().map(drop),
            b'0'..=b'9' => self.integer(),
            b'n' => self.null(),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            _ => None,
        }
    }

    /// An object, calling `member` with each key (a plain string) once the
    /// colon is read; `member` reads the value.
    fn object(&mut self, mut member: impl FnMut(&mut Self, &[u8]) -> Option<()>) -> Option<()> {
        self.eat(b'{')?;
        self.ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        loop {
            let (start, end) = self.plain_string()?;
            self.eat(b':')?;
            let key = &self.bytes[start..end];
            member(self, key)?;
            self.ws();
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// `[{choice}]`: exactly one choice, index 0, whose only meaningful
    /// field is the delta's content; its span, if it has one. A choice
    /// without an index is index 0 in the full parse; without a delta it
    /// relays nothing.
    fn choices(&mut self) -> Option<Option<(usize, usize)>> {
        self.eat(b'[')?;
        let mut content = None;
        let (mut index, mut delta, mut logprobs, mut finish) = (false, false, false, false);
        self.object(|s, key| match key {
            b"index" => {
                once(&mut index)?;
                s.literal(b"0")
            }
            b"delta" => {
                once(&mut delta)?;
                content = s.delta()?;
                Some(())
            }
            b"logprobs" => {
                once(&mut logprobs)?;
                s.null()
            }
            b"finish_reason" => {
                once(&mut finish)?;
                s.null()
            }
            _ => s.null(),
        })?;
        self.eat(b']')?;
        Some(content)
    }

    /// The delta: `content` (a string), `role` (a plain string), and any
    /// other field only as `null`; the content's span, if it has one.
    fn delta(&mut self) -> Option<Option<(usize, usize)>> {
        let mut content = None;
        let (mut seen_content, mut role) = (false, false);
        self.object(|s, key| match key {
            b"content" => {
                once(&mut seen_content)?;
                content = Some(s.any_string()?);
                Some(())
            }
            b"role" => {
                once(&mut role)?;
                s.plain_string().map(drop)
            }
            _ => s.null(),
        })?;
        Some(content)
    }
}

#[cfg(test)]
mod tests;
