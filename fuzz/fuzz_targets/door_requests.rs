//! The OpenAI (chat and completions), Responses, Messages, UI chat and AG-UI
//! request parsers on the same bytes; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::fuzzing::openai_requests(data);
    sluice::fuzzing::responses_request(data);
    sluice::fuzzing::anthropic_request(data);
    sluice::fuzzing::ui_request(data);
    sluice::fuzzing::agui_request(data);
});
