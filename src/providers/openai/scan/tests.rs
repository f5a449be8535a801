//! The fast path against hand-made chunks and near misses; the fuzz
//! target `upstream_chunks` checks it against the full parse.

use super::*;

const CHUNK: &str = r#"{"created":1796164728,"id":"chatcmpl-1","model":"mock","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":null,"finish_reason":null}],"usage":null}"#;

/// A chunk read alone, by a reader with no template yet.
fn plain(data: &str) -> Option<Plain<'_>> {
    ChunkReader::default().plain(data)
}

fn token(text: &str) -> Option<Plain<'_>> {
    Some(Plain::Token(Cow::Borrowed(text)))
}

#[test]
fn the_common_chunks_are_read() {
    assert_eq!(plain(CHUNK), token("Hi"));
    let role = CHUNK.replace(
        r#"{"content":"Hi"}"#,
        r#"{"role":"assistant","content":""}"#,
    );
    assert_eq!(plain(&role), Some(Plain::Nothing));
    let spaced = r#" { "id" : "x", "choices" : [ { "index" : 0 , "delta" : { "content" : "a b" , "refusal" : null } } ] , "system_fingerprint" : null } "#;
    assert_eq!(plain(spaced), token("a b"));
    let escaped = CHUNK.replace(r#""Hi""#, r#""line\n\"q\" \u00e9""#);
    assert_eq!(
        plain(&escaped),
        Some(Plain::Token(Cow::Owned("line\n\"q\" é".into())))
    );
    let empty_delta = CHUNK.replace(r#"{"content":"Hi"}"#, "{}");
    assert_eq!(plain(&empty_delta), Some(Plain::Nothing));
}

#[test]
fn anything_else_is_left_to_the_full_parse() {
    let cases = [
        (
            r#"{"content":"Hi"}"#,
            r#"{"content":"Hi","reasoning_content":"x"}"#,
        ),
        (r#"{"content":"Hi"}"#, r#"{"tool_calls":[]}"#),
        (r#"{"content":"Hi"}"#, r#"{"content":"Hi","content":"Ho"}"#),
        (r#"{"content":"Hi"}"#, r#"{"content":null}"#),
        (r#""finish_reason":null"#, r#""finish_reason":"stop""#),
        (r#""logprobs":null"#, r#""logprobs":{"content":[]}"#),
        (r#""index":0"#, r#""index":1"#),
        (r#""usage":null"#, r#""usage":{"prompt_tokens":1}"#),
        (r#""usage":null"#, r#""usage":null,"error":{"message":"x"}"#),
        (r#""usage":null"#, r#""usage":null,"usage":null"#),
        (r#""created":1796164728"#, r#""created":1.5"#),
        (r#""created":1796164728"#, r#""created":017"#),
        (r#""id":"chatcmpl-1""#, r#""id":"chat\u0063mpl""#),
        (r#""id":"chatcmpl-1""#, r#""id":{"a":1}"#),
        (r#"}],"#, r#"},{"index":1,"delta":{}}],"#),
        (r#""Hi""#, "\"H\ti\""),
    ];
    for (from, to) in cases {
        let chunk = CHUNK.replace(from, to);
        assert_ne!(chunk, CHUNK, "{from} is in the chunk");
        assert_eq!(plain(&chunk), None, "{chunk}");
    }
    for cut in 0..CHUNK.len() {
        assert_eq!(plain(&CHUNK[..cut]), None, "{}", &CHUNK[..cut]);
    }
    assert_eq!(plain(&format!("{CHUNK}x")), None);
    assert_eq!(plain(r#"{"choices":[]}"#), None);
}

#[test]
fn a_stream_of_chunks_reads_as_each_chunk_alone() {
    let with = |text: &str| CHUNK.replace(r#""Hi""#, text);
    let stream = [
        with(r#""Hi""#),
        with(r#""there""#),
        with(r#""""#),
        with(r#""a\"b""#),
        with(r#""a","x":"y""#),
        with(r#""ok\""#),
        with("\"tab\there\""),
        CHUNK.replace(r#""finish_reason":null"#, r#""finish_reason":"stop""#),
        CHUNK.replace("chatcmpl-1", "chatcmpl-2"),
        with(r#""again""#),
    ];
    let mut reader = ChunkReader::default();
    for chunk in &stream {
        assert_eq!(reader.plain(chunk), plain(chunk), "{chunk}");
    }
    assert_eq!(reader.plain(&with(r#""more""#)), token("more"));
    // The template is the last plain chunk's.
    let other = CHUNK.replace("chatcmpl-1", "chatcmpl-2");
    assert_eq!(reader.plain(&other), token("Hi"));
    assert!(reader
        .template
        .as_ref()
        .unwrap()
        .head
        .contains("chatcmpl-2"));
}
