//! One upstream connection: a TCP socket, or TLS over one.
//!
//! TLS is rustls (through tokio-rustls) with the roots reqwest trusts: the
//! platform's, by `rustls-platform-verifier` (on Linux the system store, or
//! `SSL_CERT_FILE`/`SSL_CERT_DIR` when set). It offers `h2` and `http/1.1`
//! by ALPN; an upstream that picks `h2` is left to reqwest
//! ([`Conn::is_http2`], `super::Client::send`): over TLS, one HTTP/2
//! connection carrying every stream costs less CPU per chat token than a TLS
//! connection per stream (BENCHMARKS.md, "TLS upstreams").
//!
//! What it may not do: peek at the raw socket of a TLS connection. Bytes
//! waiting there may be a TLS 1.3 session ticket, not data; only rustls can
//! tell ([`Conn::read_now`]).

use std::io;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls::{self, ClientConfig};
use tokio_rustls::TlsConnector;

pub enum Conn {
    Plain(TcpStream),
    /// Boxed: rustls's connection state is a kilobyte and more, and a
    /// connection sits inside every stream's body.
    Tls(Box<TlsStream<TcpStream>>),
}

/// Where a TLS connection goes: the connector and the name its certificate
/// must carry.
#[derive(Clone)]
pub struct Tls {
    connector: TlsConnector,
    name: ServerName<'static>,
}

impl Tls {
    /// TLS to `host` (a URL's host: a DNS name, an IPv4 address or an IPv6
    /// one in brackets); `None` when no TLS configuration can be had here (no
    /// root certificates at all), which leaves the URL to reqwest and its
    /// error.
    pub fn to(host: &str) -> Option<Tls> {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let name = ServerName::try_from(bare).ok()?.to_owned();
        Some(Tls {
            connector: connector()?,
            name,
        })
    }

    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<Conn> {
        let tls = self.connector.connect(self.name.clone(), tcp).await?;
        Ok(Conn::Tls(Box::new(tls)))
    }
}

/// The process's one TLS client configuration, built at the first `https://`
/// endpoint: loading the platform's roots reads and parses every certificate
/// in the system store, once.
fn connector() -> Option<TlsConnector> {
    static CONNECTOR: OnceLock<Option<TlsConnector>> = OnceLock::new();
    CONNECTOR
        .get_or_init(|| match config() {
            Ok(config) => Some(TlsConnector::from(Arc::new(config))),
            Err(err) => {
                tracing::warn!(error = %err, "no TLS roots for https upstreams; reqwest carries them");
                None
            }
        })
        .clone()
}

fn config() -> Result<ClientConfig, rustls::Error> {
    use rustls_platform_verifier::BuilderVerifierExt;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_platform_verifier()?
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}

impl Conn {
    /// The upstream chose HTTP/2 by ALPN: this client cannot speak it.
    pub fn is_http2(&self) -> bool {
        match self {
            Conn::Plain(_) => false,
            Conn::Tls(tls) => tls.get_ref().1.alpn_protocol() == Some(b"h2"),
        }
    }

    /// Reads what has already arrived, without waiting: `WouldBlock` when
    /// nothing has. Under TLS, records that carry no data (a session ticket)
    /// are taken in and give `WouldBlock` too.
    pub fn read_now(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Conn::Plain(tcp) => tcp.try_read(buf),
            Conn::Tls(tls) => {
                let mut cx = Context::from_waker(Waker::noop());
                let mut read = ReadBuf::new(buf);
                match Pin::new(tls.as_mut()).poll_read(&mut cx, &mut read) {
                    Poll::Ready(Ok(())) => Ok(read.filled().len()),
                    Poll::Ready(Err(err)) => Err(err),
                    Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
                }
            }
        }
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_read(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_write(cx, buf),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_flush(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Conn::Plain(tcp) => Pin::new(tcp).poll_shutdown(cx),
            Conn::Tls(tls) => Pin::new(tls.as_mut()).poll_shutdown(cx),
        }
    }
}
