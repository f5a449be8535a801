//! The OpenAI (chat and completions), Responses and Messages request parsers
//! on the same bytes; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::fuzzing::openai_requests(data);
    sluice::fuzzing::responses_request(data);
    sluice::fuzzing::anthropic_request(data);
});
