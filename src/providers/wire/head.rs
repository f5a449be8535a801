//! The request's head as written, and the response's head as read (parsed by
//! `httparse`, hyper's own parser): its status, where its body ends, and
//! whether the connection may carry another request.

use super::framing::{Chunked, Framing};

/// The longest response head read: far past any real one.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The most header fields a response head may have.
const MAX_HEADERS: usize = 100;

/// A response's head, as far as the client needs it.
#[derive(Debug)]
pub struct Head {
    pub status: u16,
    /// The `Retry-After` field, as sent.
    pub retry_after: Option<String>,
    pub framing: Framing,
    /// Whether the connection may be used again once the body has ended.
    pub keep_alive: bool,
}

/// `buf` as a response head: `None` while it is incomplete, else the head
/// and its length in bytes. Interim (1xx) responses are skipped.
pub fn parse(buf: &[u8]) -> Result<Option<(Head, usize)>, String> {
    let mut at = 0;
    loop {
        let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut fields);
        let len = match response.parse(&buf[at..]) {
            Ok(httparse::Status::Complete(len)) => len,
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(err) => return Err(format!("the upstream's response head is malformed: {err}")),
        };
        let status = response.code.unwrap_or(0);
        at += len;
        match status {
            101 => return Err("the upstream switched protocols".into()),
            100..=199 => continue,
            _ => {}
        }
        let head = read_fields(status, response.version == Some(1), response.headers)?;
        return Ok(Some((head, at)));
    }
}

/// The fields that frame the body and govern the connection.
fn read_fields(status: u16, http11: bool, fields: &[httparse::Header<'_>]) -> Result<Head, String> {
    let mut chunked = None;
    let mut length: Option<u64> = None;
    let (mut close, mut keep_alive_asked) = (false, false);
    let mut retry_after = None;
    for field in fields {
        let value = std::str::from_utf8(field.value).unwrap_or("");
        if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // Only the last coding says whether the body is chunked.
            let last = value.rsplit(',').next().unwrap_or("").trim();
            chunked = Some(last.eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("content-length") {
            let parsed = value
                .trim()
                .parse::<u64>()
                .map_err(|_| "the upstream's Content-Length is not a number".to_owned())?;
            if length.is_some_and(|seen| seen != parsed) {
                return Err("the upstream sent two different Content-Lengths".into());
            }
            length = Some(parsed);
        } else if field.name.eq_ignore_ascii_case("connection") {
            for token in value.split(',').map(str::trim) {
                close |= token.eq_ignore_ascii_case("close");
                keep_alive_asked |= token.eq_ignore_ascii_case("keep-alive");
            }
        } else if field.name.eq_ignore_ascii_case("retry-after") {
            retry_after = Some(value.to_owned());
        }
    }
    let mut keep_alive = !close && (http11 || keep_alive_asked);
    let framing = match (status, chunked, length) {
        (204 | 304, _, _) => Framing::Length(0),
        (_, Some(true), _) => Framing::Chunked(Chunked::default()),
        // Another coding last: the body runs to the connection's close.
        (_, Some(false), _) | (_, None, None) => Framing::Close,
        (_, None, Some(length)) => Framing::Length(length),
    };
    if matches!(framing, Framing::Close) {
        keep_alive = false;
    }
    Ok(Head {
        status,
        retry_after,
        framing,
        keep_alive,
    })
}

/// A POST's head: the request line, `Host`, the JSON body's type and length,
/// then `fields` (checked by the caller to hold no line breaks).
pub fn request(
    path: &str,
    host: &str,
    fields: &[(&'static str, http::HeaderValue)],
    body: &[u8],
) -> Vec<u8> {
    let mut head = Vec::with_capacity(256 + body.len());
    for part in [
        "POST ",
        path,
        " HTTP/1.1\r\nhost: ",
        host,
        "\r\ncontent-type: application/json\r\naccept: */*\r\ncontent-length: ",
    ] {
        head.extend_from_slice(part.as_bytes());
    }
    head.extend_from_slice(body.len().to_string().as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in fields {
        head.extend_from_slice(name.as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    head.extend_from_slice(body);
    head
}

#[cfg(test)]
mod tests {
    use super::parse;
    use crate::providers::wire::framing::Framing;

    #[test]
    fn a_chunked_head_after_an_interim_response_is_read() {
        let wire = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\n";
        let (head, len) = parse(wire).unwrap().unwrap();
        assert_eq!((head.status, head.keep_alive), (200, true));
        assert!(matches!(head.framing, Framing::Chunked(_)));
        assert_eq!(&wire[len..], b"5\r\n");
        assert!(parse(&wire[..30]).unwrap().is_none());
    }

    #[test]
    fn lengths_closes_and_old_versions_govern_reuse() {
        let (head, _) =
            parse(b"HTTP/1.1 429 Too Many\r\ncontent-length: 7\r\nretry-after: 3\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(matches!(head.framing, Framing::Length(7)));
        assert_eq!(
            (head.retry_after.as_deref(), head.keep_alive),
            (Some("3"), true)
        );
        let (head, _) = parse(b"HTTP/1.1 200 OK\r\nConnection: close\r\ncontent-length: 2\r\n\r\n")
            .unwrap()
            .unwrap();
        assert!(!head.keep_alive);
        let (head, _) = parse(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert!(matches!(head.framing, Framing::Close) && !head.keep_alive);
        let (head, _) =
            parse(b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\ncontent-length: 0\r\n\r\n")
                .unwrap()
                .unwrap();
        assert!(head.keep_alive && head.framing.is_done());
    }

    #[test]
    fn malformed_heads_are_errors() {
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
        assert!(
            parse(b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n").is_err()
        );
        assert!(parse(b"SMTP ready\r\n\r\n").is_err());
        assert!(parse(b"HTTP/1.1 101 Switching\r\n\r\n").is_err());
    }
}
