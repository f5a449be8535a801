//! Criterion micro-benchmarks of the per-token hot path: decoding upstream
//! SSE and building outgoing frames. `cargo bench --bench hot_path`.
//! The side-by-side proxy benchmark is `benches/proxy.py`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sluice::frames::{ChatChunks, Format, Framer, Identity, NativeFrames};
use sluice::sse::Decoder;

/// 256 OpenAI chunks as an upstream sends them.
fn upstream_bytes() -> Vec<u8> {
    let mut text = String::new();
    for i in 0..256 {
        text.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"m\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\" tok{i}\"}},\"logprobs\":null,\"finish_reason\":null}}]}}\n\n"
        ));
    }
    text.into_bytes()
}

fn sse_decoder(c: &mut Criterion) {
    let bytes = upstream_bytes();
    let mut group = c.benchmark_group("sse_decoder");
    group.throughput(Throughput::Elements(256));
    group.bench_function("256 chunks, read in 1 KiB pieces", |b| {
        b.iter(|| {
            let mut decoder = Decoder::new();
            let mut events = 0;
            for piece in bytes.chunks(1024) {
                decoder.push(black_box(piece));
                while let Some(event) = decoder.next_event() {
                    events += event.data.len();
                }
            }
            events
        })
    });
    group.finish();
}

fn framers(c: &mut Criterion) {
    let mut group = c.benchmark_group("frame");
    group.throughput(Throughput::Elements(1));
    let mut native = NativeFrames::new(Format::Sse, "mock".into());
    group.bench_function("native sse token", |b| {
        b.iter(|| native.token(black_box(" hello")))
    });
    let identity = Identity::new("chatcmpl", "mock");
    let mut chunks = ChatChunks::new(&identity, true);
    chunks.token("first"); // past the role chunk
    group.bench_function("openai chat chunk token", |b| {
        b.iter(|| chunks.token(black_box(" hello")))
    });
    group.finish();
}

criterion_group!(benches, sse_decoder, framers);
criterion_main!(benches);
