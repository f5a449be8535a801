//! The seam of a continued answer (section 17): an answer so far and the
//! continuation's pieces (the input split at `\u{1}`, the first part the
//! answer) through the repeat filter; never a panic, only a prefix of the
//! continuation dropped, and no more of it than a repeat can be.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut parts = text.split('\u{1}');
    let answer = parts.next().unwrap_or("");
    let pieces: Vec<&str> = parts.collect();
    sluice::fuzzing::seam(answer, &pieces);
});
