//! The streaming HTTP/1.1 client for upstreams, over TCP or TLS, read in
//! the task of the stream that reads it.
//!
//! Why our own: a relayed token is the hot path, and through reqwest (hyper's
//! pooled client) every token crossed two tasks (the upstream connection's,
//! then the client connection's), hyper's client dispatch and body channel,
//! and reqwest's body layers; each upstream connection also held 25 KiB of
//! buffers and channel blocks while it waited for a token (BENCHMARKS.md,
//! "One task per token"). Here the socket is read from the provider's
//! stream itself, so the client connection's task does everything a token
//! needs in one poll, through a read buffer borrowed per thread only while
//! bytes are in flight ([`body`]).
//!
//! What it speaks: one `POST` with a JSON body per connection at a time, the
//! response framed by `Content-Length`, `chunked` or the close
//! ([`framing`], heads parsed by `httparse`); idle connections kept per
//! endpoint ([`pool`]); TLS by rustls with the platform's roots, offering
//! `h2` and `http/1.1` ([`conn`]). What it leaves to reqwest
//! (`super::upstream` chooses): an `https://` upstream that picks HTTP/2
//! ([`SendError::Http2`], then [`Client::speaks_http2`]), and upstreams
//! behind a configured `HTTP(S)_PROXY`/`ALL_PROXY`.
//! It never follows a redirect: a 3xx is an error status like any other.
//!
//! What it may not do: spawn (the connection lives in its body), or keep a
//! connection whose stream was dropped before its answer was whole: that
//! close is what tells the upstream to stop generating.

mod body;
mod conn;
mod framing;
mod head;
mod pool;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use body::{Body, Read};
use conn::{Conn, Tls};
use head::{Head, MAX_HEAD_BYTES};
use pool::Pool;

/// One endpoint's connections: where to connect, what to ask for.
pub struct Client {
    /// `host:port`, to connect to.
    authority: String,
    /// The `Host` field.
    host: String,
    /// The path and query.
    path: String,
    /// For `https://`.
    tls: Option<Tls>,
    /// The upstream chose HTTP/2 by ALPN once: its requests are reqwest's.
    http2: AtomicBool,
    connect_timeout: Duration,
    pool: Arc<Pool>,
}

/// A response whose head has been read.
pub struct Response {
    pub status: u16,
    pub retry_after: Option<String>,
    pub body: Body,
}

/// Why a request got no response head.
#[derive(Debug)]
pub enum SendError {
    ConnectTimeout,
    Connect(io::Error),
    /// Writing the request or reading the head failed.
    Io(io::Error),
    /// The upstream closed the connection before a response head.
    Closed,
    /// The response head is not HTTP, or not one we can frame.
    Head(String),
    /// The upstream chose HTTP/2 by ALPN; nothing was sent.
    Http2,
}

impl std::fmt::Display for SendError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SendError::ConnectTimeout => f.write_str("connecting timed out"),
            SendError::Connect(err) => write!(f, "could not connect: {err}"),
            SendError::Io(err) => write!(f, "the connection failed: {err}"),
            SendError::Closed => f.write_str("the upstream closed the connection before answering"),
            SendError::Head(why) => f.write_str(why),
            SendError::Http2 => {
                f.write_str("the upstream chose HTTP/2, which this client does not speak")
            }
        }
    }
}

impl Client {
    /// The client for `url`, when it is one this module speaks: `http://` or
    /// `https://`, with no proxy configured for its scheme (reqwest reads the
    /// same variables and applies `NO_PROXY`, so any proxy at all leaves the
    /// URL to reqwest).
    pub fn for_url(url: &reqwest::Url, connect_timeout: Duration) -> Option<Client> {
        let proxies: &[&str] = match url.scheme() {
            "http" => &["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"],
            "https" => &["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"],
            _ => return None,
        };
        let proxied = proxies
            .iter()
            .any(|name| std::env::var_os(name).is_some_and(|value| !value.is_empty()));
        if proxied {
            return None;
        }
        let host = url.host_str()?;
        let tls = match url.scheme() {
            "https" => Some(Tls::to(host)?),
            _ => None,
        };
        let port = url.port_or_known_default()?;
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        Some(Client {
            authority: format!("{host}:{port}"),
            host: match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host.to_owned(),
            },
            path,
            tls,
            http2: AtomicBool::new(false),
            connect_timeout,
            pool: Arc::default(),
        })
    }

    /// POSTs `body` (JSON) with `fields`, whose values the caller has
    /// checked, and reads the response's head.
    ///
    /// A reused connection that fails before any of the response arrives is
    /// given up for a new one, once: the upstream closed it while idle, as the
    /// request crossed (Go's `net/http` retries the same case, for any
    /// method). A new connection's failure is the upstream's answer.
    pub async fn send(
        &self,
        fields: &[(&'static str, http::HeaderValue)],
        body: &[u8],
    ) -> Result<Response, SendError> {
        let request = head::request(&self.path, &self.host, fields, body);
        if let Some(conn) = self.pool.take() {
            match self.exchange(conn, &request).await {
                Err(SendError::Closed | SendError::Io(_)) => {}
                answered => return answered,
            }
        }
        let conn = self.connect().await?;
        self.exchange(conn, &request).await
    }

    /// Whether the upstream has chosen HTTP/2: send by reqwest instead.
    /// Learnt once per serving thread, by the first handshake, and kept.
    pub fn speaks_http2(&self) -> bool {
        self.http2.load(Ordering::Relaxed)
    }

    /// A new connection that speaks HTTP/1.1; [`SendError::Http2`] (and the
    /// choice kept) when the upstream picks `h2` by ALPN.
    async fn connect(&self) -> Result<Conn, SendError> {
        let conn = self.handshake().await?;
        if conn.is_http2() {
            self.http2.store(true, Ordering::Relaxed);
            return Err(SendError::Http2);
        }
        Ok(conn)
    }

    /// TCP, then TLS for `https://`: both within the connect timeout, as
    /// reqwest's covers its whole connector.
    async fn handshake(&self) -> Result<Conn, SendError> {
        let connecting = async {
            let tcp = TcpStream::connect(&self.authority).await?;
            // Tokens are small writes the other way; the request is one write.
            tcp.set_nodelay(true)?;
            match &self.tls {
                // Boxed: the handshake's future holds a whole rustls
                // connection, and inline it would make every stream's future
                // (which outlives it) that much larger, TLS or not.
                Some(tls) => Box::pin(tls.handshake(tcp)).await,
                None => Ok(Conn::Plain(tcp)),
            }
        };
        tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| SendError::ConnectTimeout)?
            .map_err(SendError::Connect)
    }

    /// Writes the request on `conn` and reads the response head.
    async fn exchange(&self, mut conn: Conn, request: &[u8]) -> Result<Response, SendError> {
        // The flush sends what TLS still holds; on TCP it does nothing.
        let sent = async {
            conn.write_all(request).await?;
            conn.flush().await
        };
        sent.await.map_err(SendError::Io)?;
        let mut buf = Vec::with_capacity(1024);
        loop {
            if buf.len() >= MAX_HEAD_BYTES {
                return Err(SendError::Head(format!(
                    "the upstream's response head is longer than {MAX_HEAD_BYTES} bytes"
                )));
            }
            buf.reserve(1024);
            let read = conn.read_buf(&mut buf).await;
            match read {
                Ok(0) if buf.is_empty() => return Err(SendError::Closed),
                Ok(0) => {
                    return Err(SendError::Head(
                        "the upstream closed the connection inside its response head".into(),
                    ))
                }
                Ok(_) => {}
                Err(err) if buf.is_empty() => return Err(SendError::Io(err)),
                Err(err) => return Err(SendError::Head(format!("the connection failed: {err}"))),
            }
            if let Some((head, len)) = head::parse(&buf).map_err(SendError::Head)? {
                let Head {
                    status,
                    retry_after,
                    framing,
                    keep_alive,
                } = head;
                let early = buf.split_off(len);
                let body = Body::new(conn, framing, early, keep_alive, self.pool.clone());
                return Ok(Response {
                    status,
                    retry_after,
                    body,
                });
            }
        }
    }
}

/// For the fuzz targets (`sluice::fuzzing`): `data` as a response head and
/// as a chunked body, both read whole and split in the pieces its first byte
/// chooses. The head parse never panics; the body, its end and its error are
/// the same however it is split.
#[cfg(feature = "fuzzing")]
pub fn fuzz_response(data: &[u8]) {
    use framing::{Chunked, Decoded, Framing};
    let Some((&split, rest)) = data.split_first() else {
        return;
    };
    let _ = head::parse(rest);
    let frame = |size: usize| {
        let mut framing = Framing::Chunked(Chunked::default());
        let mut body = Vec::new();
        let mut end = None;
        let mut used = 0;
        for piece in rest.chunks(size) {
            match framing.push(piece, &mut |bytes| body.extend_from_slice(bytes)) {
                Ok(Decoded::More) => used += piece.len(),
                Ok(Decoded::Done { extra }) => {
                    end = Some(Ok(used + piece.len() - extra));
                    break;
                }
                Err(err) => {
                    end = Some(Err(err));
                    break;
                }
            }
        }
        (body, end, framing.at_eof().is_ok())
    };
    let whole = frame(rest.len().max(1));
    let pieces = frame(usize::from(split) + 1);
    assert_eq!(whole.1.is_some(), pieces.1.is_some());
    match (&whole.1, &pieces.1) {
        (Some(Ok(a)), Some(Ok(b))) => assert_eq!(a, b, "the body ends at one place"),
        (Some(Err(_)), Some(Err(_))) | (None, None) => {}
        (a, b) => panic!("whole {a:?}, split {b:?}"),
    }
    if matches!(whole.1, Some(Ok(_)) | None) {
        assert_eq!(whole.0, pieces.0, "the same body bytes");
        assert_eq!(whole.2, pieces.2);
    }
}
