//! What every object of one OpenAI response shares: its id, creation time
//! and model.

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
