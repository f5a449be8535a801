//! The seam's repeat filter: text a continuation repeats from the end of the
//! answer so far (up to [`MAX_REPEAT`] characters) is dropped.
//!
//! A model asked to continue often restates the last words ("...the quick
//! brown" continued as "brown fox jumps"), and a server that takes no
//! prefill starts over. The filter holds the continuation's first text while
//! it could still be such a repeat, then drops the longest one it is. A
//! repeat must begin at a word boundary of the answer and be at least
//! [`MIN_REPEAT`] characters long: a prefilled model continues mid-word
//! ("Hel" + "lo"), and a one-letter coincidence is not a repeat. When the
//! answer ends in whitespace, the continuation's leading whitespace is
//! dropped too (Anthropic refuses a prefill with trailing whitespace, so it
//! was sent without it and comes back).

/// The longest repeat looked for, in characters.
pub const MAX_REPEAT: usize = 200;
/// The shortest text taken as a repeat, in characters.
const MIN_REPEAT: usize = 2;

pub struct Overlap {
    /// The answer's last [`MAX_REPEAT`] characters (fewer if it is short).
    tail: String,
    /// Byte offsets in `tail` where a repeat may begin, longest first.
    starts: Vec<usize>,
    /// Whitespace the answer ends with, in characters.
    trailing_space: usize,
    /// The continuation's text so far, held.
    pending: String,
}

impl Overlap {
    pub fn new(answer: &str) -> Overlap {
        let from = answer
            .char_indices()
            .rev()
            .nth(MAX_REPEAT - 1)
            .map_or(0, |(at, _)| at);
        let tail = answer[from..].to_owned();
        // The char before each start, from the answer (so the tail's first
        // start knows what precedes it).
        let mut before = answer[..from].chars().next_back();
        let mut starts = Vec::new();
        for (at, c) in tail.char_indices() {
            let boundary = before.is_none_or(char::is_whitespace) || c.is_whitespace();
            if boundary && tail[at..].chars().count() >= MIN_REPEAT {
                starts.push(at);
            }
            before = Some(c);
        }
        let trailing_space = answer
            .chars()
            .rev()
            .take_while(|c| c.is_whitespace())
            .count();
        Overlap {
            tail,
            starts,
            trailing_space,
            pending: String::new(),
        }
    }

    /// Takes the next piece of the continuation: the text to relay once
    /// decided, or `None` while it may still be a repeat.
    pub fn push(&mut self, text: &str) -> Option<String> {
        self.pending.push_str(text);
        let may_grow = self.starts.iter().any(|at| {
            let repeat = &self.tail[*at..];
            repeat.len() > self.pending.len() && repeat.starts_with(self.pending.as_str())
        });
        let all_space = self.trailing_space > 0 && self.pending.chars().all(char::is_whitespace);
        match may_grow || all_space {
            true => None,
            false => Some(self.decide()),
        }
    }

    /// The continuation ended its first text (another kind of event, or the
    /// end): what is held, decided now.
    pub fn finish(mut self) -> String {
        self.decide()
    }

    fn decide(&mut self) -> String {
        let pending = std::mem::take(&mut self.pending);
        let repeat = self
            .starts
            .iter()
            .map(|at| &self.tail[*at..])
            .find(|repeat| pending.starts_with(repeat))
            .map_or(0, str::len);
        let rest = &pending[repeat..];
        if repeat > 0 || self.trailing_space == 0 {
            return rest.to_owned();
        }
        let mut spaces = 0;
        let trimmed = rest.trim_start_matches(|c: char| {
            spaces += 1;
            c.is_whitespace() && spaces <= self.trailing_space
        });
        trimmed.to_owned()
    }
}

/// What the client gets of the continuation `pieces` after `answer`, fed
/// through the filter as the relay feeds it (for the tests and the fuzz
/// target).
#[cfg(any(test, feature = "fuzzing"))]
pub fn kept(answer: &str, pieces: &[&str]) -> String {
    let mut overlap = Some(Overlap::new(answer));
    let mut out = String::new();
    for piece in pieces {
        match &mut overlap {
            Some(filter) => {
                if let Some(decided) = filter.push(piece) {
                    out.push_str(&decided);
                    overlap = None;
                }
            }
            None => out.push_str(piece),
        }
    }
    if let Some(filter) = overlap {
        out.push_str(&filter.finish());
    }
    out
}

#[cfg(test)]
mod tests {
    /// The answer and its continuation, as the client gets them.
    fn joined(answer: &str, pieces: &[&str]) -> String {
        format!("{answer}{}", super::kept(answer, pieces))
    }

    #[test]
    fn a_restated_word_is_dropped() {
        assert_eq!(
            joined("The quick brown", &[" brown", " fox"]),
            "The quick brown fox"
        );
        assert_eq!(
            joined("The quick brown", &["brown fox"]),
            "The quick brown fox"
        );
        assert_eq!(joined("Hello wor", &["wor", "ld"]), "Hello world");
    }

    #[test]
    fn a_prefilled_continuation_mid_word_is_kept_whole() {
        assert_eq!(joined("Hel", &["lo", " there"]), "Hello there");
        assert_eq!(
            joined("The cat sat", &[" on", " the mat"]),
            "The cat sat on the mat"
        );
        // A one-letter coincidence is not a repeat.
        assert_eq!(joined("I", &["I"]), "II");
    }

    #[test]
    fn a_start_over_of_a_short_answer_is_dropped() {
        assert_eq!(
            joined("The quick brown", &["The", " quick", " brown", " fox"]),
            "The quick brown fox"
        );
    }

    #[test]
    fn whitespace_the_prefill_lost_is_not_doubled() {
        assert_eq!(joined("Hello ", &[" world"]), "Hello world");
        assert_eq!(joined("One.\n\n", &["\n\n", "Two."]), "One.\n\nTwo.");
        assert_eq!(joined("Hello", &[" world"]), "Hello world");
    }

    #[test]
    fn only_the_last_200_characters_are_looked_at() {
        let answer = format!("{} end", "word ".repeat(100));
        let start_over = format!("{answer} more");
        // The whole answer repeated is longer than a repeat can be: kept.
        assert_eq!(
            joined(&answer, &[&start_over]),
            format!("{answer}{start_over}")
        );
        assert_eq!(joined(&answer, &[" end more"]), format!("{answer} more"));
    }

    #[test]
    fn multibyte_text_is_cut_on_char_boundaries() {
        let answer = "é".repeat(300);
        // No word boundary in 200 "é": nothing there can be a repeat.
        assert_eq!(joined(&answer, &["éé", "x"]), format!("{answer}ééx"));
        assert_eq!(joined("Grüße aus Köln", &[" Köln", "!"]), "Grüße aus Köln!");
    }
}
