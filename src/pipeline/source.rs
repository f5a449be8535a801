//! What a relay body reads its events from: the failover's choice while it
//! is still being made, then the serving attempt with its deadlines.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::deadlines::Deadlines;
use super::failover::{self, Choice, Serving};
use crate::generation::{TokenEvent, TokenStream, UpstreamError};

/// An event, and whether it is the first of the attempt just chosen.
pub enum Next {
    Chosen(TokenEvent),
    Event(TokenEvent),
}

/// The generation a body relays: still being chosen, or serving.
pub enum Source {
    Choosing(Choice),
    Serving {
        model: String,
        /// The attempt's first event, until the body takes it.
        first: Option<TokenEvent>,
        rest: TokenStream,
        deadlines: Deadlines,
    },
}

impl From<Serving> for Source {
    fn from(serving: Serving) -> Source {
        Source::Serving {
            model: serving.model,
            first: Some(serving.first),
            rest: serving.rest,
            deadlines: serving.deadlines,
        }
    }
}

impl Source {
    /// The next event. Cancel-safe: `select!` may drop it half way and call
    /// again, since the choice and the stream keep their own state.
    pub async fn next(&mut self) -> Next {
        match self {
            Source::Choosing(choice) => match choice.as_mut().await {
                Ok(serving) => {
                    let mut generation = Source::from(serving);
                    let first = match &mut generation {
                        Source::Serving { first, .. } => first.take(),
                        Source::Choosing(_) => None,
                    };
                    *self = generation;
                    Next::Chosen(first.unwrap_or(TokenEvent::Error(UpstreamError::ended_early())))
                }
                // Counted by the failover already.
                Err(err) => Next::Event(TokenEvent::Error(err)),
            },
            Source::Serving { first, rest, .. } => {
                let event = match first.take() {
                    Some(first) => Some(first),
                    None => rest.next().await,
                };
                Next::Event(event.unwrap_or(TokenEvent::Error(UpstreamError::ended_early())))
            }
        }
    }

    /// When the timer must next fire: the deadline, or `beat` if sooner.
    pub fn next_due(&self, beat: Option<Instant>) -> Instant {
        let deadline = match self {
            Source::Serving { deadlines, .. } => Some(deadlines.due().0),
            Source::Choosing(_) => None,
        };
        match (deadline, beat) {
            (Some(a), Some(b)) => a.min(b),
            (Some(at), None) | (None, Some(at)) => at,
            // Nothing to wake for: the failover runs its own deadlines.
            (None, None) => Instant::now() + Duration::from_secs(86_400),
        }
    }

    pub fn passed(&self, now: Instant) -> Option<UpstreamError> {
        match self {
            Source::Serving { deadlines, .. } => deadlines.passed(now),
            Source::Choosing(_) => None,
        }
    }

    pub fn on_output(&mut self, now: Instant) {
        match self {
            Source::Serving { deadlines, .. } => deadlines.on_output(now),
            Source::Choosing(_) => {}
        }
    }

    /// Counts a failure of the serving model (the failover counts the ones
    /// before it serves).
    pub fn count_error(&self, err: &UpstreamError) {
        match self {
            Source::Serving { model, .. } => failover::count_error(model, err),
            Source::Choosing(_) => {}
        }
    }

    pub fn model(&self) -> &str {
        match self {
            Source::Serving { model, .. } => model,
            Source::Choosing(_) => "",
        }
    }
}
