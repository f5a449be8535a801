//! The relay's loop in paused time: synthetic generations, a recording
//! framer, no sockets. Time moves only when every task waits, so each frame's
//! arrival time is exact.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{stream, StreamExt};
use tokio::time::{sleep, Instant};
use tokio_util::sync::CancellationToken;

use super::*;
use crate::config::Timeouts;
use crate::generation::{Finish, TokenStream, Usage};
use crate::observe::Tally;
use crate::pipeline::deadlines::Deadlines;

const HEARTBEAT: Duration = Duration::from_secs(1);

/// Writes each frame as a short word, so a test reads the whole body.
struct Words;

impl Framer for Words {
    fn token(&mut self, token: &str) -> Bytes {
        Bytes::from(format!("token:{token}"))
    }
    fn reasoning(&mut self, text: &str) -> Bytes {
        Bytes::from(format!("reasoning:{text}"))
    }
    fn done(&mut self, finish: &Finish) -> Bytes {
        Bytes::from(format!("done:{}", finish.finish_reason))
    }
    fn error(&mut self, error: &ApiError) -> Bytes {
        Bytes::from(format!("error:{}", error.kind.as_str()))
    }
    fn heartbeat(&self) -> Option<Bytes> {
        Some(Bytes::from_static(b"beat"))
    }
}

fn done() -> TokenEvent {
    TokenEvent::Done(Finish::new("stop", Usage::default()))
}

fn token(text: &str) -> TokenEvent {
    TokenEvent::Token(text.into())
}

/// A generation whose events come at the given delays, one after another.
fn paced(events: Vec<(u64, TokenEvent)>) -> TokenStream {
    Box::pin(stream::iter(events).then(|(delay_ms, event)| async move {
        sleep(Duration::from_millis(delay_ms)).await;
        event
    }))
}

/// The failover's choice of a generation that gives its first event after
/// `first_ms`, then `rest`.
fn choice(first_ms: u64, first: TokenEvent, rest: TokenStream, timeouts: Timeouts) -> Choice {
    Box::pin(async move {
        let deadlines = Deadlines::new(&timeouts, Instant::now());
        sleep(Duration::from_millis(first_ms)).await;
        let mut deadlines = deadlines;
        deadlines.on_output(Instant::now());
        Ok(Serving {
            model: "m".into(),
            first,
            rest,
            deadlines,
            midstream: None,
        })
    })
}

/// Every frame of the body with its arrival in ms from the start, and
/// whether the body ended in an abort.
async fn relay(choice: Choice, shutdown: CancellationToken) -> (Vec<(u128, String)>, bool) {
    let t0 = Instant::now();
    let started = match start(choice, HEARTBEAT, &CancellationToken::new()).await {
        Ok(started) => started,
        Err(err) => {
            return (
                vec![(
                    t0.elapsed().as_millis(),
                    format!("status:{}", err.status.as_u16()),
                )],
                false,
            )
        }
    };
    let context = StreamContext {
        heartbeat: HEARTBEAT,
        meter: Tally::new("test".into(), "native").meter("m", None),
        shutdown,
        permit: None,
        log: None,
    };
    let body = body(
        started,
        Box::new(Words),
        context,
        crate::warden::Guard::none(),
    );
    tokio::pin!(body);
    let mut frames = Vec::new();
    while let Some(frame) = body.next().await {
        match frame {
            Ok(bytes) => frames.push((
                t0.elapsed().as_millis(),
                String::from_utf8(bytes.to_vec()).unwrap(),
            )),
            Err(_) => return (frames, true),
        }
    }
    (frames, false)
}

/// The frames of a generation whose first token `a` comes at once, then
/// `rest`, with the default deadlines.
async fn relay_a_then(rest: TokenStream) -> (Vec<(u128, String)>, bool) {
    relay(
        choice(0, token("a"), rest, Timeouts::default()),
        CancellationToken::new(),
    )
    .await
}

fn at(frames: &[(u128, &str)]) -> Vec<(u128, String)> {
    frames.iter().map(|(t, f)| (*t, f.to_string())).collect()
}

#[tokio::test(start_paused = true)]
async fn a_slow_first_token_gets_heartbeats_every_interval_then_the_stream() {
    let rest = paced(vec![(100, token("b")), (0, done())]);
    let (frames, aborted) = relay(
        choice(2_500, token("a"), rest, Timeouts::default()),
        CancellationToken::new(),
    )
    .await;
    assert!(!aborted);
    assert_eq!(
        frames,
        at(&[
            (1_000, "beat"),
            (2_000, "beat"),
            (2_500, "token:a"),
            (2_600, "token:b"),
            (2_600, "done:stop")
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_failure_within_the_window_is_a_status_and_after_it_an_error_frame() {
    let failing = |after_ms: u64| -> Choice {
        Box::pin(async move {
            sleep(Duration::from_millis(after_ms)).await;
            Err(UpstreamError::Status {
                status: 500,
                message: "boom".into(),
                retry_after: None,
            })
        })
    };
    let (frames, _) = relay(failing(300), CancellationToken::new()).await;
    assert_eq!(frames, at(&[(300, "status:502")]));
    let (frames, _) = relay(failing(1_500), CancellationToken::new()).await;
    assert_eq!(
        frames,
        at(&[(1_000, "beat"), (1_500, "error:upstream_error")])
    );
}

#[tokio::test(start_paused = true)]
async fn heartbeats_fill_silences_mid_stream_and_nothing_follows_the_terminal_frame() {
    // A provider that breaks the rules by going on after `done`.
    let rest = paced(vec![(2_500, token("b")), (0, done()), (0, token("after"))]);
    let (frames, _) = relay_a_then(rest).await;
    assert_eq!(
        frames,
        at(&[
            (0, "token:a"),
            (1_000, "beat"),
            (2_000, "beat"),
            (2_500, "token:b"),
            (2_500, "done:stop")
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn the_idle_deadline_ends_a_silent_upstream_with_its_own_error() {
    let timeouts = Timeouts {
        idle_ms: 2_500,
        ..Timeouts::default()
    };
    let rest = paced(vec![(600, token("b")), (60_000, done())]);
    let (frames, _) = relay(
        choice(0, token("a"), rest, timeouts),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(
        frames,
        at(&[
            (0, "token:a"),
            (600, "token:b"),
            (1_600, "beat"),
            (2_600, "beat"),
            (3_100, "error:idle_timeout"),
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn the_total_deadline_ends_a_stream_that_keeps_talking() {
    let timeouts = Timeouts {
        total_ms: 1_050,
        ..Timeouts::default()
    };
    let rest = paced((0..100).map(|_| (100, token("x"))).collect());
    let (frames, _) = relay(
        choice(0, token("a"), rest, timeouts),
        CancellationToken::new(),
    )
    .await;
    let (last_at, last) = frames.last().unwrap();
    assert_eq!((*last_at, last.as_str()), (1_050, "error:total_timeout"));
    assert_eq!(
        frames
            .iter()
            .filter(|(_, f)| f.starts_with("error"))
            .count(),
        1
    );
}

#[tokio::test(start_paused = true)]
async fn the_end_of_the_grace_period_ends_a_running_stream_with_shutting_down() {
    let shutdown = CancellationToken::new();
    let rest = paced(vec![(60_000, done())]);
    let cancel = shutdown.clone();
    let grace_over = async move {
        sleep(Duration::from_millis(1_500)).await;
        cancel.cancel();
    };
    let ((frames, _), ()) = tokio::join!(
        relay(choice(0, token("a"), rest, Timeouts::default()), shutdown),
        grace_over
    );
    assert_eq!(
        frames,
        at(&[
            (0, "token:a"),
            (1_000, "beat"),
            (1_500, "error:shutting_down")
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_generation_that_ends_without_a_terminal_event_gets_an_error_frame() {
    let rest = paced(vec![(10, token("b"))]);
    let (frames, _) = relay_a_then(rest).await;
    assert_eq!(
        frames,
        at(&[
            (0, "token:a"),
            (10, "token:b"),
            (10, "error:upstream_error")
        ])
    );
}

#[tokio::test(start_paused = true)]
async fn a_cut_aborts_the_body_after_the_frames_before_it() {
    let rest = paced(vec![(10, TokenEvent::Cut)]);
    let (frames, aborted) = relay_a_then(rest).await;
    assert_eq!(frames, at(&[(0, "token:a")]));
    assert!(aborted);
}
