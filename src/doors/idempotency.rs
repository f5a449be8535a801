//! `Idempotency-Key` (contract section 16): a POST that starts a generation,
//! on any door, may name itself; the same client repeating it (a retry, a
//! refresh) within `streams.retain_secs` re-attaches to the generation the
//! first one started instead of starting another and paying the upstream
//! twice. Its answer is that generation's, in the door's format, from its
//! start and then live, with `Idempotent-Replayed: true`. The same key with
//! another path or body is a `409 idempotency_conflict`.
//!
//! So a keyed request's answer is always a view of a generation's log: the
//! generation runs detached (as `POST /v1/generations` does) and the
//! response watches it, for the first request and its repeats alike. Its
//! client leaving does not stop it: it runs until it ends, or has had no
//! watcher for `streams.abandon_ms`, so a retry after a dropped connection
//! finds it still running. A request without the header is relayed as
//! before, with no log and no extra hop.
//!
//! The key names the generation by owner (the API key, when auth is on),
//! here and, with `[store]`, for every replica (`Generations::claim_key`).
//! A replay carries what the log keeps: text, reasoning, tool calls,
//! signatures, the finish and usage; not an OpenAI upstream's `logprobs` or
//! `refusal`, and its objects' ids are fresh.

use std::sync::Arc;

use axum::http::request::Parts;
use axum::http::Method;
use axum::response::Response;
use sha2::{Digest, Sha256};

use super::{watch, Admission, Planned};
use crate::error::{ApiError, ErrorKind};
use crate::generation::{Finish, Usage};
use crate::generations::{Entry, Keyed, Log, CANCELLED};
use crate::observe::Tally;
use crate::pipeline::collect::{self as collector, Collected};
use crate::pipeline::detached::{self, Detached};
use crate::pipeline::framer::Framer;
use crate::state::AppState;

const HEADER: &str = "idempotency-key";
/// On the answer of a request that re-attached.
const REPLAYED: &str = "idempotent-replayed";

/// Notes a POST's `Idempotency-Key` in its record, with the digest of its
/// path and body; a key that is not 1 to 255 visible ASCII characters is a
/// 400 naming the header.
pub fn note(parts: &Parts, body: &[u8]) -> Result<(), ApiError> {
    let Some(value) = parts.headers.get(HEADER) else {
        return Ok(());
    };
    if parts.method != Method::POST {
        return Ok(());
    }
    let key = value.as_bytes();
    if !(1..=255).contains(&key.len()) || !key.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(ApiError::invalid(
            HEADER,
            "`Idempotency-Key` must be 1 to 255 visible ASCII characters",
        ));
    }
    let Some(tally) = parts.extensions.get::<Tally>() else {
        return Ok(());
    };
    let mut hasher = Sha256::new();
    hasher.update(parts.uri.path().as_bytes());
    hasher.update([0]);
    hasher.update(body);
    let digest: String = hasher.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    tally.set_keyed(Keyed {
        key: String::from_utf8_lossy(key).into_owned(),
        digest,
    });
    Ok(())
}

/// The generation a request that runs detached starts: its key's (new or
/// replayed) when it has one, else a new one.
pub async fn begin(
    app: &AppState,
    admission: &Admission,
    planned: &Planned,
) -> Result<Start, ApiError> {
    match admission.tally.keyed() {
        Some(keyed) => start(app, admission, &keyed, planned, None).await,
        None => Ok(Start::New(
            super::new_generation(app, admission, planned).await?,
        )),
    }
}

/// How a keyed request starts.
pub enum Start {
    /// A new generation, named by the key: run it.
    New(Arc<Log>),
    /// The generation the key already names (the request is a repeat).
    Replay(Arc<Log>),
}

/// The generation of a keyed request: the one its key names, else `log`
/// (made by the caller) or a new one, which the key then names. A key held
/// for another body is a 409.
pub async fn start(
    app: &AppState,
    admission: &Admission,
    keyed: &Keyed,
    planned: &Planned,
    log: Option<Arc<Log>>,
) -> Result<Start, ApiError> {
    let owner = admission.owner();
    let conflict = || {
        ApiError::new(
            ErrorKind::IdempotencyConflict,
            format!(
                "Idempotency-Key `{}` was used with another request (its path or body differ)",
                keyed.key
            ),
        )
    };
    if let Some((digest, held)) = app.generations.keyed(owner, &keyed.key).await? {
        discard(log);
        if digest != keyed.digest {
            return Err(conflict());
        }
        return Ok(replayed(admission, held));
    }
    let log = match log {
        Some(log) => log,
        None => super::new_generation(app, admission, planned).await?,
    };
    match app
        .generations
        .claim_key(&keyed.key, &keyed.digest, &log)
        .await
    {
        Ok(None) => {
            name_generation(&admission.tally, &log);
            Ok(Start::New(log))
        }
        // Another request with the key got there first.
        Ok(Some(held)) => {
            discard(Some(log));
            if held.tag != keyed.digest {
                return Err(conflict());
            }
            match app.generations.find(&held.id, owner).await? {
                Some(held) => Ok(replayed(admission, held)),
                None => Err(ApiError::not_found(
                    "idempotency-key",
                    format!(
                        "the generation of Idempotency-Key `{}` has expired",
                        keyed.key
                    ),
                )),
            }
        }
        Err(err) => {
            discard(Some(log));
            Err(err)
        }
    }
}

fn replayed(admission: &Admission, log: Arc<Log>) -> Start {
    admission
        .tally
        .add_headers(vec![(REPLAYED, "true".to_owned())]);
    name_generation(&admission.tally, &log);
    admission.tally.resumed(log.id().as_str(), None);
    Start::Replay(log)
}

fn name_generation(tally: &Tally, log: &Log) {
    tally.add_headers(vec![(super::GENERATION, log.id().to_string())]);
}

/// Ends a log made for a request that turned out to be a repeat: it never
/// ran.
fn discard(log: Option<Arc<Log>>) {
    if let Some(log) = log {
        log.append(Entry::Done(Finish::new(
            CANCELLED,
            Usage::new(log.prompt_tokens(), 0),
        )));
    }
}

/// Runs a new generation detached: it outlives its client, and is
/// cancelled once nobody has watched it for `unwatched`
/// (`streams.abandon_ms` for a keyed request's).
pub fn run(
    app: &AppState,
    admission: Admission,
    planned: Planned,
    log: &Arc<Log>,
    unwatched: std::time::Duration,
) {
    let detached = Detached {
        meter: admission.tally.meter(&planned.route.configured, None),
        shutdown: app.drain.expiry(),
        permit: admission.slot.take(),
        unwatched,
    };
    detached::spawn(planned.choose(app, &admission.tally), log.clone(), detached);
}

/// A keyed streaming answer: a view of its generation's log from its start.
pub async fn stream(
    app: &AppState,
    admission: Admission,
    planned: Planned,
    framer_for: impl FnOnce(&str) -> Box<dyn Framer>,
    log: Option<Arc<Log>>,
    keyed: &Keyed,
) -> Result<Response, ApiError> {
    let log = match start(app, &admission, keyed, &planned, log).await? {
        Start::Replay(log) => log,
        Start::New(log) => {
            let unwatched = app.config.streams.abandon();
            run(app, admission, planned, &log, unwatched);
            log
        }
    };
    let framer = framer_for(&log.model());
    Ok(super::with_served_by(
        watch::watch(
            log.clone(),
            None,
            framer,
            app.config.heartbeat(),
            app.drain.expiry(),
        ),
        &log.model(),
    ))
}

/// A keyed whole answer: its generation read back from the log once it ends.
pub async fn collect(
    app: &AppState,
    admission: Admission,
    planned: Planned,
    keyed: &Keyed,
) -> Result<Collected, ApiError> {
    let log = match start(app, &admission, keyed, &planned, None).await? {
        Start::Replay(log) => log,
        Start::New(log) => {
            let unwatched = app.config.streams.abandon();
            run(app, admission, planned, &log, unwatched);
            log
        }
    };
    // Watched while it is waited for, so it is not abandoned meanwhile.
    let _watching = crate::generations::Watching::new(log.clone());
    collector::from_log(&log).await
}
