//! The native door's request parser: a JSON or form body, and the same
//! bytes as a query string, on to a generation request; never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&kind, body)) = data.split_first() else {
        return;
    };
    sluice::fuzzing::native_request(kind & 1 == 1, body);
});
