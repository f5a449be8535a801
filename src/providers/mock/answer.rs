//! The mock's answer text: something that reads like a chat model's reply, so a
//! UI under development meets what it will meet in production: paragraphs,
//! **bold**, `inline code`, a list, a fenced code block, punctuation like "—"
//! and "…", accented words and the odd emoji (multi-byte characters that a
//! BPE tokenizer splits across tokens).
//!
//! Everything is picked with the caller's seeded RNG, so the same prompt and
//! seed give the same text.

use crate::tokenizer::{self, Cut};

const OPENERS: &[&str] = &[
    "Great question! Here's a short answer about {topic}.",
    "Sure — let's walk through {topic} step by step.",
    "Happy to help with {topic}. Here's how I'd think about it.",
    "Good one. {topic} comes up a lot, so here's a clear overview.",
    "Absolutely! Below is a practical take on {topic}.",
];

const SENTENCES: &[&str] = &[
    "The short version is that small, well-named pieces are easier to change than one clever blob.",
    "In practice, most of the work is deciding what *not* to do.",
    "A naïve first attempt usually works, and that's fine — measure before you optimise.",
    "Streaming matters because people read as fast as tokens arrive, not after the whole reply is done.",
    "It helps to keep the happy path readable from top to bottom.",
    "Errors deserve the same care as results: say what went wrong and what to try next.",
    "Think of it like a café queue — order matters, and nobody likes waiting behind a slow request.",
    "The trade-off is latency versus throughput, and you rarely get both for free.",
    "Caching can help, but only once you know what is actually slow.",
    "A good default beats a dozen options that nobody reads about.",
    "Tests that talk to a real server catch the bugs that mocks politely hide.",
    "Small steps, each one verified, add up faster than one big leap… usually.",
    "Back-pressure keeps a fast producer from burying a slow consumer.",
    "When in doubt, write it down: future you will thank present you ✅.",
    "The details differ between languages, but the idea carries over — from Zürich to 東京.",
    "Start simple, ship it, and let real usage tell you where to go next 🚀.",
];

const LIST_INTROS: &[&str] = &[
    "Here are the key points:",
    "A few things to keep in mind:",
    "The main steps are:",
    "In short:",
];

const LIST_ITEMS: &[&str] = &[
    "**Keep it simple**: the fewer moving parts, the fewer surprises.",
    "**Measure first**: profile before you change anything for speed.",
    "**Fail loudly**: a clear error beats a silent wrong answer.",
    "**Name things well**: `parse_request` says more than `handle`.",
    "**Stream early**: send the first token as soon as it exists.",
    "**Clean up**: cancel work nobody is waiting for anymore.",
    "**Be honest about limits**: a `429` with `Retry-After` is a kindness.",
    "**Write tests**: they are documentation that cannot go stale.",
];

const CODE_BLOCKS: &[&str] = &[
    "```python\ndef greet(name: str) -> str:\n    return f\"Hello, {name}!\"\n\nprint(greet(\"world\"))\n```",
    "```rust\nfn main() {\n    let words = [\"stream\", \"every\", \"token\"];\n    println!(\"{}\", words.join(\" \"));\n}\n```",
    "```javascript\nconst source = new EventSource(\"/v1/stream?prompt=hi\");\nsource.onmessage = (e) => console.log(JSON.parse(e.data).token);\n```",
    "```bash\ncurl -N localhost:7800/v1/stream -d prompt='hello'\n```",
];

const CLOSERS: &[&str] = &[
    "Hope that helps — let me know if you'd like more detail on any part!",
    "Want me to go deeper on one of these points?",
    "That should get you started. Happy building!",
    "If anything is unclear, just ask and I'll expand on it.",
];

const DEEPER: &[&str] = &[
    "Going a bit deeper:",
    "One more angle worth considering:",
    "To expand on that:",
];

const THOUGHTS: &[&str] = &[
    "Let me think about what matters most here.",
    "First, the simplest explanation: what would a newcomer need to hear?",
    "Hmm, there may be an edge case worth mentioning.",
    "An example would make this clearer than more prose.",
    "I should keep the answer short and concrete.",
    "Wait — does that hold when the input is empty? Mostly, yes.",
    "Let me double-check that reasoning before I commit to it.",
    "A list of the key points, then a small code sample, should work.",
    "The trade-off deserves one honest sentence.",
    "Okay, I think I have a plan for the answer.",
];

/// Thinking-style text about `prompt` of at least `min_tokens` tokens, for
/// the `reasoning_tokens` knob, with where it is cut.
pub fn reasoning(rng: &mut fastrand::Rng, prompt: &str, min_tokens: u32) -> (String, Vec<Cut>) {
    let mut out = format!("The user is asking about {}.", topic(prompt));
    let mut counted = tokenizer::count(&out);
    loop {
        while counted < min_tokens {
            let start = out.len();
            out.push(' ');
            out.push_str(pick(rng, THOUGHTS));
            counted += tokenizer::count(&out[start..]);
        }
        let cuts = tokenizer::cuts(&out);
        counted = cuts.iter().map(|c| c.tokens).sum();
        if counted >= min_tokens {
            return (out, cuts);
        }
    }
}

/// A chat-style answer to `prompt` of at least `min_tokens` tokens (0: one
/// natural answer), with where it is cut into the pieces it is streamed in.
pub fn compose(rng: &mut fastrand::Rng, prompt: &str, min_tokens: u32) -> (String, Vec<Cut>) {
    let mut out = pick(rng, OPENERS).replace("{topic}", &topic(prompt));
    out.push_str("\n\n");
    paragraph(rng, &mut out, 2, 3);
    out.push_str("\n\n");
    list(rng, &mut out);
    out.push_str("\n\n");
    out.push_str(pick(rng, CODE_BLOCKS));
    out.push_str("\n\n");
    out.push_str(pick(rng, CLOSERS));
    // Longer answers grow in the middle of the reply, the way real ones do.
    // Only what is appended is counted (recounting the whole answer each time
    // made `tokens = 100000` take 6 s of CPU, commit fde118f); BPE merges across a join can
    // make the sum high, so the cut into pieces confirms the length.
    let mut counted = if min_tokens > 0 {
        tokenizer::count(&out)
    } else {
        0
    };
    loop {
        while counted < min_tokens {
            let start = out.len();
            go_deeper(rng, &mut out);
            counted += tokenizer::count(&out[start..]);
        }
        let cuts = tokenizer::cuts(&out);
        counted = cuts.iter().map(|c| c.tokens).sum();
        if counted >= min_tokens {
            return (out, cuts);
        }
    }
}

/// One more paragraph, and now and then a list.
fn go_deeper(rng: &mut fastrand::Rng, out: &mut String) {
    out.push_str("\n\n");
    out.push_str(pick(rng, DEEPER));
    out.push(' ');
    paragraph(rng, out, 3, 5);
    if rng.bool() {
        out.push_str("\n\n");
        list(rng, out);
    }
}

/// A few words naming what the prompt is about.
fn topic(prompt: &str) -> String {
    let words: Vec<&str> = prompt
        .split_whitespace()
        .take(8)
        .map(|w| w.trim_matches(|c: char| !c.is_alphanumeric() && c != '\''))
        .filter(|w| !w.is_empty())
        .collect();
    if words.is_empty() {
        "this".into()
    } else {
        format!("\"{}\"", words.join(" "))
    }
}

fn paragraph(rng: &mut fastrand::Rng, out: &mut String, min: usize, max: usize) {
    let count = rng.usize(min..=max);
    for i in 0..count {
        if i > 0 {
            out.push(' ');
        }
        out.push_str(pick(rng, SENTENCES));
    }
}

fn list(rng: &mut fastrand::Rng, out: &mut String) {
    out.push_str(pick(rng, LIST_INTROS));
    out.push('\n');
    let numbered = rng.bool();
    let first = rng.usize(..LIST_ITEMS.len());
    let count = rng.usize(3..=4);
    for i in 0..count {
        let bullet = if numbered {
            format!("{}. ", i + 1)
        } else {
            "- ".into()
        };
        out.push('\n');
        out.push_str(&bullet);
        out.push_str(LIST_ITEMS[(first + i) % LIST_ITEMS.len()]);
    }
}

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}
