//! Where an HTTP/1.1 response body ends: `Transfer-Encoding: chunked`, a
//! `Content-Length`, or the connection's close (RFC 9112 §6.3).
//!
//! A push decoder: bytes go in as they were read, split anywhere, and the
//! body's own bytes come out through a sink without being copied into a
//! buffer of ours. The chunked state machine keeps only a size and a state
//! between reads, so a chunk header split across two reads costs nothing to
//! hold. Chunk extensions and trailers are read past and dropped (nothing of
//! an LLM stream is in them).
//!
//! What it may not do: any I/O. `super::body` reads; this only frames.

/// How a response body is delimited.
#[derive(Debug)]
pub enum Framing {
    Chunked(Chunked),
    /// The bytes still to come of a `Content-Length` body.
    Length(u64),
    /// Until the upstream closes the connection (no reuse after it).
    Close,
}

/// What one push found.
#[derive(Debug, PartialEq, Eq)]
pub enum Decoded {
    /// The body goes on.
    More,
    /// The body ended; `extra` bytes of the push came after it.
    Done { extra: usize },
}

/// The body's framing was broken: the connection cannot be trusted again.
#[derive(Debug, PartialEq, Eq)]
pub struct FramingError(pub &'static str);

impl std::fmt::Display for FramingError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// A chunk size past this many hex digits would overflow: no real chunk is
/// that long.
const MAX_SIZE_DIGITS: u8 = 15;

#[derive(Debug, Default)]
pub struct Chunked {
    state: State,
    /// The size being read, then the bytes of the chunk still to come.
    size: u64,
    digits: u8,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The chunk size's hex digits.
    #[default]
    Size,
    /// Whitespace or an extension after the size, up to the line's end.
    Extension,
    /// The CR of the size line was read; its LF is next.
    SizeLf,
    Data,
    /// The chunk's data ended; its CRLF is next.
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final blank line).
    Trailer,
    /// Inside a trailer field, up to its line's end.
    TrailerLine,
    /// The final blank line's CR was read.
    EndLf,
    Done,
}

impl Framing {
    /// Whether the body ended before any of it was read (`Content-Length: 0`).
    pub fn is_done(&self) -> bool {
        match self {
            Framing::Chunked(chunked) => chunked.state == State::Done,
            Framing::Length(left) => *left == 0,
            Framing::Close => false,
        }
    }

    /// Frames `input`: the body's bytes go to `sink`.
    pub fn push(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]),
    ) -> Result<Decoded, FramingError> {
        match self {
            Framing::Chunked(chunked) => chunked.push(input, sink),
            Framing::Length(left) => {
                let take = usize::try_from(*left).map_or(input.len(), |left| left.min(input.len()));
                if take > 0 {
                    sink(&input[..take]);
                }
                *left -= take as u64;
                Ok(match left {
                    0 => Decoded::Done {
                        extra: input.len() - take,
                    },
                    _ => Decoded::More,
                })
            }
            Framing::Close => {
                if !input.is_empty() {
                    sink(input);
                }
                Ok(Decoded::More)
            }
        }
    }

    /// The connection reached its end of file: whether the body is whole.
    pub fn at_eof(&self) -> Result<(), FramingError> {
        match self {
            Framing::Close => Ok(()),
            Framing::Chunked(_) | Framing::Length(_) if self.is_done() => Ok(()),
            Framing::Chunked(_) => Err(FramingError(
                "the upstream closed the connection inside a chunked body",
            )),
            Framing::Length(_) => Err(FramingError(
                "the upstream closed the connection before its Content-Length was sent",
            )),
        }
    }
}

impl Chunked {
    fn push(&mut self, input: &[u8], sink: &mut dyn FnMut(&[u8])) -> Result<Decoded, FramingError> {
        let mut at = 0;
        while at < input.len() {
            if self.state == State::Data {
                let take = usize::try_from(self.size)
                    .map_or(input.len() - at, |size| size.min(input.len() - at));
                sink(&input[at..at + take]);
                at += take;
                self.size -= take as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            if self.state == State::Done {
                break;
            }
            self.state = self.step(input[at])?;
            at += 1;
        }
        Ok(match self.state {
            State::Done => Decoded::Done {
                extra: input.len() - at,
            },
            _ => Decoded::More,
        })
    }

    /// One byte outside a chunk's data.
    fn step(&mut self, byte: u8) -> Result<State, FramingError> {
        Ok(match (self.state, byte) {
            (State::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                if self.digits == MAX_SIZE_DIGITS {
                    return Err(FramingError("a chunk size is too long"));
                }
                let digit = (byte as char).to_digit(16).unwrap_or(0);
                self.size = self.size * 16 + u64::from(digit);
                self.digits += 1;
                State::Size
            }
            (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => State::Extension,
            (State::Size | State::Extension, b'\r') if self.digits > 0 => State::SizeLf,
            (State::Size | State::Extension | State::SizeLf, b'\n') if self.digits > 0 => {
                self.size_line_ended()
            }
            (State::Size | State::SizeLf, _) => {
                return Err(FramingError("a chunk size line is malformed"))
            }
            (State::Extension, _) => State::Extension,
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr | State::DataLf, b'\n') => State::Size,
            (State::DataCr | State::DataLf, _) => {
                return Err(FramingError("a chunk's data is not followed by CRLF"))
            }
            (State::Trailer, b'\r') => State::EndLf,
            (State::Trailer | State::EndLf, b'\n') => State::Done,
            (State::Trailer, _) => State::TrailerLine,
            (State::TrailerLine, b'\n') => State::Trailer,
            (State::TrailerLine, _) => State::TrailerLine,
            (State::EndLf, _) => return Err(FramingError("the chunked body's end is malformed")),
            (State::Data | State::Done, _) => self.state,
        })
    }

    /// The size line ended: a chunk's data follows, or the last chunk's
    /// trailers.
    fn size_line_ended(&mut self) -> State {
        self.digits = 0;
        match self.size {
            0 => State::Trailer,
            _ => State::Data,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Chunked, Decoded, Framing};

    /// Pushes `input` split at every `step` bytes; the body and the result.
    fn frame(
        mut framing: Framing,
        input: &[u8],
        step: usize,
    ) -> (Vec<u8>, Result<Decoded, String>) {
        let mut body = Vec::new();
        let mut last = Ok(Decoded::More);
        let mut offset = 0;
        for piece in input.chunks(step) {
            match framing.push(piece, &mut |bytes| body.extend_from_slice(bytes)) {
                Ok(Decoded::Done { extra }) => {
                    last = Ok(Decoded::Done {
                        extra: extra + input.len() - offset - piece.len(),
                    });
                    break;
                }
                Ok(Decoded::More) => {}
                Err(err) => {
                    last = Err(err.0.to_owned());
                    break;
                }
            }
            offset += piece.len();
        }
        (body, last)
    }

    #[test]
    fn chunked_bodies_decode_split_anywhere() {
        let wire = b"5\r\nhello\r\n7;name=value\r\n, world\r\n0\r\nx-trailer: 1\r\n\r\nNEXT";
        for step in 1..=wire.len() {
            let (body, end) = frame(Framing::Chunked(Chunked::default()), wire, step);
            assert_eq!(body, b"hello, world", "split every {step}");
            assert_eq!(end, Ok(Decoded::Done { extra: 4 }), "split every {step}");
        }
    }

    #[test]
    fn bare_line_feeds_and_upper_case_sizes_are_read() {
        let wire = b"A\nabcdefghij\n0\n\n";
        let (body, end) = frame(Framing::Chunked(Chunked::default()), wire, 3);
        assert_eq!(body, b"abcdefghij");
        assert_eq!(end, Ok(Decoded::Done { extra: 0 }));
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for wire in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"ffffffffffffffff\r\n",
            b"0\r\n\rX",
        ] {
            let (_, end) = frame(Framing::Chunked(Chunked::default()), wire, 1);
            assert!(
                end.is_err(),
                "{:?} was taken",
                String::from_utf8_lossy(wire)
            );
        }
        let mut cut = Framing::Chunked(Chunked::default());
        cut.push(b"5\r\nhel", &mut |_| {}).unwrap();
        assert!(cut.at_eof().is_err());
    }

    #[test]
    fn a_content_length_body_ends_at_its_length() {
        let (body, end) = frame(Framing::Length(5), b"helloEXTRA", 2);
        assert_eq!(body, b"hello");
        assert_eq!(end, Ok(Decoded::Done { extra: 5 }));
        assert!(Framing::Length(0).is_done());
        let mut short = Framing::Length(5);
        short.push(b"he", &mut |_| {}).unwrap();
        assert!(short.at_eof().is_err());
        assert!(Framing::Close.at_eof().is_ok());
    }
}
