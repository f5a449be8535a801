//! The mock's tool-argument generator, fed any JSON Schema a client could
//! send: never a panic, and never more than 64 KiB of arguments
//! (contract section 18).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::fuzzing::mock_arguments(data);
});
