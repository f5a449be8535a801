//! `https://` upstreams: TLS by rustls, trusting the platform's roots (here
//! `SSL_CERT_FILE`, so sluice runs as its own process with that variable).
//! One that speaks only HTTP/1.1 is the wire client's: its connections are
//! kept and reused across the session tickets a TLS 1.3 server sends,
//! replaced when the upstream closes them, and closed when a client leaves.
//! One that chooses HTTP/2 by ALPN is handed to reqwest after the first
//! handshake, unseen by the client. A certificate nobody vouches for is a
//! clear upstream error.
//!
//! The HTTP/1.1 upstream is `upstream_connections`' raw one behind rustls;
//! the HTTP/2 one is the `h2` crate's server, offering nothing else.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::rustls::{self, pki_types};
use tokio_rustls::TlsAcceptor;

use crate::common::binary::Sluice;
use crate::upstream_connections::{
    a_leaving_client_closes_its_connection, ask, assert_whole,
    closed_connections_are_replaced_unseen, events, raw_upstream_over,
    streams_share_one_connection, Manner, Raw,
};

/// A certificate for 127.0.0.1 and localhost: the PEM file a client must
/// trust, and a TLS server that presents it.
struct Authority {
    pem_file: std::path::PathBuf,
    acceptor: TlsAcceptor,
}

/// `alpn`: the protocols its server offers.
fn authority(name: &str, alpn: &[&[u8]]) -> Authority {
    let pair =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .unwrap();
    let dir = std::env::temp_dir().join(format!("sluice-upstream-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem_file = dir.join(format!("{name}.pem"));
    std::fs::write(&pem_file, pair.cert.pem()).unwrap();
    let key = pki_types::PrivateKeyDer::Pkcs8(pair.signing_key.serialize_der().into());
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![pair.cert.der().clone()], key)
        .unwrap();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Authority {
        pem_file,
        acceptor: TlsAcceptor::from(Arc::new(config)),
    }
}

const HTTP1: &[&[u8]] = &[b"http/1.1"];

/// sluice as a process, its model `raw` at `raw`, trusting only `trusted`;
/// one serving thread, since each thread keeps its own connections.
fn proxy_to(raw: &Raw, trusted: &Authority) -> Sluice {
    proxy_to_url(&raw.base_url, trusted)
}

fn proxy_to_url(base_url: &str, trusted: &Authority) -> Sluice {
    let toml = format!(
        "[timeouts]\nfirst_token_ms = 2000\nidle_ms = 2000\n\
         [[models]]\nname = \"raw\"\nprovider = \"openai\"\nbase_url = \"{base_url}\"\nretries = 0\n"
    );
    let pem = trusted.pem_file.to_str().unwrap();
    Sluice::start_with_env(&toml, &["--threads", "1"], &[("SSL_CERT_FILE", pem)])
}

#[tokio::test]
async fn https_streams_one_after_another_share_one_tls_connection() {
    let ca = authority("shared", HTTP1);
    let raw = raw_upstream_over(Manner::Chunked, Some(ca.acceptor.clone())).await;
    let sluice = proxy_to(&raw, &ca);
    streams_share_one_connection(&sluice.base, &raw).await;
}

#[tokio::test]
async fn a_tls_connection_the_upstream_closed_is_replaced_unseen() {
    let ca = authority("replaced", HTTP1);
    for manner in [Manner::ClosesIdle, Manner::ClosesOnReuse] {
        let raw = raw_upstream_over(manner, Some(ca.acceptor.clone())).await;
        let sluice = proxy_to(&raw, &ca);
        closed_connections_are_replaced_unseen(&sluice.base, &raw).await;
    }
}

#[tokio::test]
async fn a_client_that_leaves_closes_its_tls_upstream_connection() {
    let ca = authority("leaves", HTTP1);
    let raw = raw_upstream_over(Manner::Stalls, Some(ca.acceptor.clone())).await;
    let sluice = proxy_to(&raw, &ca);
    a_leaving_client_closes_its_connection(&sluice.base, &raw).await;
}

#[tokio::test]
async fn a_certificate_nobody_vouches_for_is_a_clear_upstream_error() {
    let (presented, trusted) = (authority("presented", HTTP1), authority("other", HTTP1));
    let raw = raw_upstream_over(Manner::Chunked, Some(presented.acceptor.clone())).await;
    let sluice = proxy_to(&raw, &trusted);
    let got = ask(&sluice.base).await;
    assert_eq!(got.status, 502, "{}", got.text);
    assert!(got.text.contains("certificate"), "{}", got.text);
    assert_eq!(got.tokens(), Vec::<String>::new());
}

/// An HTTP/2-only upstream (ALPN `h2` and nothing else): each request's
/// body read, then the SSE answer in one DATA frame. It counts connections.
async fn h2_upstream(tls: TlsAcceptor) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let connections = Arc::new(AtomicUsize::new(0));
    let count = connections.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            let tls = tls.clone();
            tokio::spawn(async move {
                let Ok(tls) = tls.accept(tcp).await else {
                    return;
                };
                let Ok(mut conn) = h2::server::handshake(tls).await else {
                    return;
                };
                while let Some(Ok((request, mut respond))) = conn.accept().await {
                    tokio::spawn(async move {
                        let mut body = request.into_body();
                        while let Some(Ok(chunk)) = body.data().await {
                            let _ = body.flow_control().release_capacity(chunk.len());
                        }
                        let head = http::Response::builder()
                            .header("content-type", "text/event-stream")
                            .body(())
                            .unwrap();
                        if let Ok(mut send) = respond.send_response(head, false) {
                            let _ = send.send_data(bytes::Bytes::from(events()), true);
                        }
                    });
                }
            });
        }
    });
    (format!("https://{addr}/v1"), connections)
}

#[tokio::test]
async fn an_upstream_that_chooses_http2_is_handed_to_reqwest_unseen() {
    let ca = authority("h2", &[b"h2"]);
    let (base_url, connections) = h2_upstream(ca.acceptor.clone()).await;
    let sluice = proxy_to_url(&base_url, &ca);
    for round in 0..3 {
        assert_whole(&ask(&sluice.base).await, &format!("stream {round}"));
    }
    // The wire client's handshake, which learnt `h2` and sent nothing, then
    // reqwest's one connection for every stream.
    assert_eq!(connections.load(Ordering::SeqCst), 2);
}
