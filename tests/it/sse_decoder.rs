//! The upstream SSE decoder: every event of a spec-rich stream decodes the same
//! however the bytes are split across reads.

use sluice::sse::{Decoder, Event};

fn decode(reads: &[&[u8]]) -> Vec<Event> {
    let mut decoder = Decoder::new();
    let mut events = Vec::new();
    for read in reads {
        decoder.push(read);
        events.extend(std::iter::from_fn(|| decoder.next_event()));
    }
    decoder.finish();
    events.extend(std::iter::from_fn(|| decoder.next_event()));
    events
}

fn event(event: &str, data: &str, id: Option<&str>) -> Event {
    Event {
        event: event.into(),
        data: data.into(),
        id: id.map(Into::into),
        retry: None,
    }
}

/// LF, CRLF and bare CR line ends; a comment; multi-line data; an event type;
/// an id; a field with no space after the colon; a multi-byte character; and a
/// last event with no blank line after it.
const STREAM: &[u8] = b"\xEF\xBB\xBF: a comment\n\
data: {\"token\":\"Hel\"}\r\n\r\n\
data: line one\rdata: line two\r\r\
event: done\nid: 7\ndata:no space \xF0\x9F\x9A\x80\n\n\
: ping\r\n\
data: [DONE]";

fn expected() -> Vec<Event> {
    vec![
        event("message", "{\"token\":\"Hel\"}", None),
        event("message", "line one\nline two", None),
        event("done", "no space \u{1F680}", Some("7")),
        event("message", "[DONE]", Some("7")),
    ]
}

#[test]
fn decodes_the_whole_stream_in_one_read() {
    assert_eq!(decode(&[STREAM]), expected());
}

#[test]
fn decodes_the_same_split_at_every_byte_position() {
    for at in 0..=STREAM.len() {
        let (a, b) = STREAM.split_at(at);
        assert_eq!(decode(&[a, b]), expected(), "split at byte {at}");
    }
}

#[test]
fn decodes_the_same_one_byte_at_a_time() {
    let reads: Vec<&[u8]> = STREAM.chunks(1).collect();
    assert_eq!(decode(&reads), expected());
}

#[test]
fn decodes_the_same_split_at_every_pair_of_positions() {
    for i in 0..=STREAM.len() {
        for j in i..=STREAM.len() {
            let reads = [&STREAM[..i], &STREAM[i..j], &STREAM[j..]];
            assert_eq!(decode(&reads), expected(), "split at {i} and {j}");
        }
    }
}

#[test]
fn events_are_available_as_soon_as_their_blank_line_arrives() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: a\n");
    assert_eq!(decoder.next_event(), None);
    decoder.push(b"\n");
    assert_eq!(decoder.next_event().unwrap().data, "a");
}

#[test]
fn empty_data_and_unknown_fields_dispatch_nothing() {
    assert_eq!(
        decode(&[b"event: x\n\nfoo: bar\n\n:only a comment\n\n"]),
        vec![]
    );
    // A `data` field with no value still makes an event, with empty data (the
    // spec's own example: "data\n\ndata\ndata\n\n" gives "" and "\n").
    assert_eq!(
        decode(&[b"data\n\ndata\ndata\n\n"]),
        vec![event("message", "", None), event("message", "\n", None)]
    );
}

#[test]
fn invalid_utf8_is_replaced_not_a_panic() {
    let events = decode(&[b"data: \xFF\xFEok\n\n"]);
    assert_eq!(events[0].data, "\u{FFFD}\u{FFFD}ok");
}

/// Finding 6: a line with no end grows to a bound, then the decoder stops.
#[test]
fn a_line_past_the_bound_overflows() {
    let mut decoder = Decoder::new();
    decoder.push(b"data: ");
    let piece = [b'a'; 4096];
    let mut reads = 0;
    while !decoder.overflowed() {
        decoder.push(&piece);
        reads += 1;
        assert!(reads < 1_000, "no bound");
    }
    assert_eq!(reads, sluice::sse::MAX_EVENT_BYTES / 4096);
    decoder.push(b"\n\ndata: more\n\n");
    decoder.finish();
    assert_eq!(decoder.next_event(), None, "nothing after the overflow");

    // Many data lines for one event are bounded the same way.
    let mut decoder = Decoder::new();
    let line = format!("data: {}\n", "b".repeat(1000));
    for _ in 0..1100 {
        decoder.push(line.as_bytes());
    }
    assert!(decoder.overflowed());

    // Below the bound nothing changes.
    let mut decoder = Decoder::new();
    decoder.push(format!("data: {}", "c".repeat(500_000)).as_bytes());
    decoder.push(b"\n\n");
    assert_eq!(decoder.next_event().unwrap().data.len(), 500_000);
}
