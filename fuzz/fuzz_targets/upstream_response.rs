//! An upstream's response as the wire client reads it (plain-http
//! upstreams): any bytes as a head never panic, and as a chunked body they
//! give the same body, end and error whether read whole or split anywhere.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    sluice::fuzzing::upstream_response(data);
});
