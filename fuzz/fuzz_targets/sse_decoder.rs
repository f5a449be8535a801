//! The SSE decoder, split anywhere: the same events whether the bytes come
//! in one read or in the pieces the input's first bytes choose, and never a
//! panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice::sse::Decoder;

fn events(reads: &[&[u8]]) -> (Vec<sluice::sse::Event>, bool) {
    let mut decoder = Decoder::new();
    for read in reads {
        decoder.push(read);
    }
    decoder.finish();
    let mut out = Vec::new();
    while let Some(event) = decoder.next_event() {
        out.push(event);
    }
    (out, decoder.overflowed())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    // Cut the rest into pieces of 1..=split+1 bytes.
    let size = usize::from(split) + 1;
    let pieces: Vec<&[u8]> = rest.chunks(size).collect();
    let whole = events(&[rest]);
    let split = events(&pieces);
    assert_eq!(whole, split, "the split changed the events");
});
