//! The OpenAI chunk parser and the Anthropic event parser on a stream of
//! events (one per line of the input), to their terminal event; never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let events: Vec<&str> = text.split('\n').collect();
    sluice::fuzzing::openai_events(&events);
    sluice::fuzzing::anthropic_events(&events);
});
