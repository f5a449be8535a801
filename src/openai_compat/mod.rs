//! The OpenAI-compatible front door's wire format (section 2 of the
//! contract): OpenAI's request bodies in, `chat.completion(.chunk)` and
//! `text_completion` objects out, errors in OpenAI's shape.
//!
//! Shape fidelity is the point of this module: strict clients (the official
//! SDKs, LangChain, the Vercel AI SDK, the Mistral SDK) break on small
//! deviations, so the rules are kept exactly: a role-only first delta,
//! `finish_reason: null` until the last chunk, the same `id`/`created`/`model`
//! on every chunk, a `choices: []` usage chunk when asked, then `[DONE]`, and
//! never a synthetic `stop` after a failure.
//!
//! The HTTP handlers are in `routes::openai`; this module holds no I/O.

pub mod collect;
pub mod error;
pub mod frames;
pub mod request;

use std::time::{SystemTime, UNIX_EPOCH};

/// What every object of one response shares.
#[derive(Debug, Clone)]
pub struct Identity {
    pub id: String,
    pub created: u64,
    pub model: String,
}

impl Identity {
    /// A fresh identity; `prefix` is `chatcmpl` or `cmpl`, as OpenAI's.
    pub fn new(prefix: &str, model: &str) -> Identity {
        let created = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        Identity {
            id: format!("{prefix}-{}", uuid::Uuid::new_v4().simple()),
            created,
            model: model.to_owned(),
        }
    }
}
