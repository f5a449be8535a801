//! Contract section 18: ending a stream never waits for its reader. A client
//! that stops reading (a full socket under HTTP/1.1, a zero flow-control
//! window under HTTP/2) still has `total_ms`, `send_timeout_ms` and `DELETE`
//! take effect within about 2 s: its response ends (the HTTP/2 stream is
//! reset, the HTTP/1.1 connection closed) and the upstream request is
//! cancelled. And idle connections are closed after `idle_connection_ms`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::fake_openai::{self, FakeOpenAi};
use crate::common::*;

fn addr_of(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

async fn upstream_and_sluice(extra: &str) -> (FakeOpenAi, Server) {
    let upstream = fake_openai::start().await;
    let toml = fake_openai::config_toml(&upstream.base_url, extra);
    let server = spawn(config_with_env(&toml, &[("FAKE_KEY", "k")])).await;
    (upstream, server)
}

/// An HTTP/1.1 client that sends `body` to `/v1/stream`, reads the response
/// head and then nothing more.
async fn non_reader(server: &Server, body: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr_of(server)).await.unwrap();
    let request = format!(
        "POST /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    (tcp, String::from_utf8_lossy(&head).into_owned())
}

/// Reads from `tcp` until it closes; true if it closed within `within`.
async fn closes_within(tcp: &mut TcpStream, within: Duration) -> bool {
    let mut sink = vec![0u8; 1 << 16];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, tcp.read(&mut sink)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn t3_total_ms_ends_the_stream_of_an_http1_client_that_does_not_read() {
    let (upstream, server) = upstream_and_sluice("[timeouts]\ntotal_ms = 1500").await;
    let started = Instant::now();
    let (mut tcp, head) = non_reader(&server, r#"{"model":"up-firehose","prompt":"hi"}"#).await;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    // The send deadline (60 s) is far off: total_ms ends it.
    assert!(
        upstream.seen.saw_cancels(1, Duration::from_secs(6)).await,
        "the upstream request was not cancelled"
    );
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1500 + 2000), "{took:?}");
    assert!(closes_within(&mut tcp, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn t3_5_delete_stops_a_stream_whose_client_does_not_read() {
    let (upstream, server) = upstream_and_sluice("").await;
    let (_tcp, head) = non_reader(&server, r#"{"model":"up-firehose","prompt":"hi"}"#).await;
    let id = head
        .lines()
        .find_map(|line| line.strip_prefix("x-sluice-generation: "))
        .expect("the generation's id")
        .trim()
        .to_owned();
    // Let the socket fill.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let asked = Instant::now();
    let answer = client()
        .delete(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    let status: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(status["status"], "cancelled", "{status}");
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert!(upstream.seen.saw_cancels(1, Duration::from_secs(2)).await);
}

/// An HTTP/2 connection to `server` that grants no flow-control window to
/// any stream: the server can send headers, never data.
async fn h2_without_window(server: &Server) -> h2::client::SendRequest<Bytes> {
    let tcp = TcpStream::connect(addr_of(server)).await.unwrap();
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, Bytes>(tcp)
        .await
        .unwrap();
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

fn h2_get(server: &Server, path: &str) -> axum::http::Request<()> {
    axum::http::Request::get(server.url(path)).body(()).unwrap()
}

/// Opens `n` firehose streams on `client`; returns their response bodies.
async fn h2_firehoses(
    client: &mut h2::client::SendRequest<Bytes>,
    server: &Server,
    n: usize,
) -> Vec<h2::RecvStream> {
    let mut bodies = Vec::new();
    for _ in 0..n {
        let request = h2_get(server, "/v1/stream?model=up-firehose&prompt=hi");
        let (response, _) = client.send_request(request, true).unwrap();
        let response = response.await.unwrap();
        assert_eq!(response.status(), 200);
        bodies.push(response.into_body());
    }
    bodies
}

/// Each body ends in a reset (not the connection's end) within `within`.
async fn all_reset(bodies: Vec<h2::RecvStream>, within: Duration) {
    for mut body in bodies {
        let end = tokio::time::timeout(within, body.data()).await;
        let err = match end {
            Ok(Some(Err(err))) => err,
            other => panic!("the stream was not reset: {other:?}"),
        };
        assert_eq!(err.reason(), Some(h2::Reason::CANCEL), "{err:?}");
        assert!(err.is_reset(), "{err:?}");
    }
}

#[tokio::test]
async fn t3_3_a_zero_window_http2_stream_is_reset_at_total_ms() {
    let (upstream, server) = upstream_and_sluice("[timeouts]\ntotal_ms = 1500").await;
    let mut client = h2_without_window(&server).await;
    let started = Instant::now();
    let bodies = h2_firehoses(&mut client, &server, 3).await;
    all_reset(bodies, Duration::from_secs(4)).await;
    assert!(started.elapsed() < Duration::from_millis(1500 + 2000));
    assert!(upstream.seen.saw_cancels(3, Duration::from_secs(2)).await);
    // The connection itself goes on: a new stream gets its answer's head.
    let (response, _) = client
        .send_request(h2_get(&server, "/healthz"), true)
        .unwrap();
    assert_eq!(response.await.unwrap().status(), 200);
}

#[tokio::test]
async fn t3_3_a_zero_window_counts_against_send_timeout_ms() {
    let (upstream, server) = upstream_and_sluice("[limits]\nsend_timeout_ms = 1000").await;
    let mut client = h2_without_window(&server).await;
    let started = Instant::now();
    let bodies = h2_firehoses(&mut client, &server, 2).await;
    all_reset(bodies, Duration::from_secs(4)).await;
    assert!(started.elapsed() < Duration::from_millis(1000 + 2000));
    assert!(upstream.seen.saw_cancels(2, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn t3_3_delete_resets_a_zero_window_http2_stream() {
    let (upstream, server) = upstream_and_sluice("").await;
    let mut h2 = h2_without_window(&server).await;
    let (response, _) = h2
        .send_request(
            h2_get(&server, "/v1/stream?model=up-firehose&prompt=hi"),
            true,
        )
        .unwrap();
    let response = response.await.unwrap();
    let id = response.headers()["x-sluice-generation"]
        .to_str()
        .unwrap()
        .to_owned();
    let asked = Instant::now();
    let status: serde_json::Value = client()
        .delete(server.url(&format!("/v1/generations/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["status"], "cancelled", "{status}");
    assert!(asked.elapsed() < Duration::from_secs(2));
    all_reset(vec![response.into_body()], Duration::from_secs(2)).await;
    assert!(upstream.seen.saw_cancels(1, Duration::from_secs(2)).await);
}

#[tokio::test]
async fn t3_4_an_idle_http2_connection_is_closed_with_goaway() {
    let server = spawn(config(&format!(
        "[limits]\nidle_connection_ms = 800\n{FAST_MOCK}"
    )))
    .await;
    let tcp = TcpStream::connect(addr_of(&server)).await.unwrap();
    let (mut client, connection) = h2::client::handshake(tcp).await.unwrap();
    let connection = tokio::spawn(connection);
    // A stream open longer than the idle time keeps the connection.
    let (response, _) = client
        .send_request(
            h2_get(
                &server,
                "/v1/stream?prompt=hi&mock_tokens=6&mock_token_delay_ms=300",
            ),
            true,
        )
        .unwrap();
    let mut body = response.await.unwrap().into_body();
    let mut text = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.expect("the stream outlives idle_connection_ms");
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    assert!(String::from_utf8_lossy(&text).contains("event: done"));
    // Then, with no stream open, GOAWAY and the end of the connection.
    let ended = tokio::time::timeout(Duration::from_secs(3), connection).await;
    assert!(ended.is_ok(), "the idle connection is still open");
    let refused = client.send_request(h2_get(&server, "/healthz"), true);
    assert!(refused.is_err() || refused.unwrap().0.await.is_err());
}

#[tokio::test]
async fn t3_4_an_idle_http1_keep_alive_connection_is_closed() {
    let server = spawn(config(&format!(
        "[limits]\nidle_connection_ms = 800\nheader_timeout_ms = 60000\n{FAST_MOCK}"
    )))
    .await;
    let mut tcp = TcpStream::connect(addr_of(&server)).await.unwrap();
    tcp.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 12];
    tcp.read_exact(&mut answer).await.unwrap();
    assert_eq!(&answer, b"HTTP/1.1 200");
    assert!(closes_within(&mut tcp, Duration::from_secs(3)).await);
}
