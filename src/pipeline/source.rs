//! What a relay body (or the collector) reads its events from: the
//! failover's choice while it is still being made, then the serving attempt
//! with its deadlines, and on a route that continues (section 17) the
//! continuation being asked for after a failure mid-answer.

use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::Instant;

use super::attempt;
use super::deadlines::Deadlines;
use super::failover::{Choice, Serving};
use super::midstream::{Continuing, Midstream};
use crate::generation::{TokenEvent, TokenStream, UpstreamError};

/// What the source has next.
pub enum Next {
    /// An attempt was chosen and serves from here (its events follow).
    Chosen,
    Event(TokenEvent),
}

/// The generation a body relays.
pub enum Source {
    /// Still being chosen.
    Choosing(Choice),
    Serving {
        model: String,
        /// The attempt's first event, until the body takes it.
        first: Option<TokenEvent>,
        rest: TokenStream,
        deadlines: Deadlines,
        /// On a route that continues: the answer so far, and what it needs.
        midstream: Option<Box<Midstream>>,
    },
    /// A continuation being asked for.
    Continuing {
        model: String,
        asking: Continuing,
        deadlines: Deadlines,
        midstream: Box<Midstream>,
    },
    /// The choice failed, or its continuation did: nothing more comes.
    Ended,
}

impl From<Serving> for Source {
    fn from(serving: Serving) -> Source {
        Source::Serving {
            model: serving.model,
            first: Some(serving.first),
            rest: serving.rest,
            deadlines: serving.deadlines,
            midstream: serving.midstream,
        }
    }
}

impl Source {
    /// The next event. Cancel-safe: `select!` may drop it half way and call
    /// again, since the choice, the continuation and the stream keep their
    /// own state.
    pub async fn next(&mut self) -> Next {
        loop {
            match self {
                Source::Choosing(choice) => match choice.as_mut().await {
                    Ok(serving) => {
                        *self = Source::from(serving);
                        return Next::Chosen;
                    }
                    // Counted by the failover already.
                    Err(err) => {
                        *self = Source::Ended;
                        return Next::Event(TokenEvent::Error(err));
                    }
                },
                Source::Serving {
                    first,
                    rest,
                    midstream,
                    ..
                } => {
                    if let Some(ready) = midstream.as_mut().and_then(|m| m.pop()) {
                        return Next::Event(ready);
                    }
                    let event = match first.take() {
                        Some(first) => first,
                        None => rest
                            .next()
                            .await
                            .unwrap_or(TokenEvent::Error(UpstreamError::ended_early())),
                    };
                    let Some(midstream) = midstream else {
                        return Next::Event(event);
                    };
                    if let Some(failure) = midstream.take(event) {
                        self.continue_after(failure);
                    }
                }
                Source::Continuing {
                    asking, midstream, ..
                } => {
                    let asked = asking.as_mut().await;
                    match midstream.asked(asked) {
                        Ok(attempt) => {
                            let Source::Continuing { midstream, .. } =
                                std::mem::replace(self, Source::Ended)
                            else {
                                unreachable!("matched above");
                            };
                            *self = Source::from(Serving {
                                midstream: Some(midstream),
                                ..Serving::from(attempt)
                            });
                        }
                        Err(failure) => {
                            *self = Source::Ended;
                            return Next::Event(TokenEvent::Error(failure));
                        }
                    }
                }
                Source::Ended => {
                    return Next::Event(TokenEvent::Error(UpstreamError::ended_early()));
                }
            }
        }
    }

    /// The serving call failed with `failure` and its answer continues.
    fn continue_after(&mut self, failure: UpstreamError) {
        let Source::Serving {
            model,
            deadlines,
            midstream: Some(mut midstream),
            ..
        } = std::mem::replace(self, Source::Ended)
        else {
            return;
        };
        attempt::count_error(&model, &failure);
        let asking = midstream.ask(failure, &deadlines);
        *self = Source::Continuing {
            model,
            asking,
            deadlines,
            midstream,
        };
    }

    /// When the timer must next fire: the deadline, or `beat` if sooner.
    pub fn next_due(&self, beat: Option<Instant>) -> Instant {
        let deadline = match self {
            Source::Serving { deadlines, .. } => Some(deadlines.due().0),
            // The failover and the continuation run their own deadlines.
            Source::Choosing(_) | Source::Continuing { .. } | Source::Ended => None,
        };
        match (deadline, beat) {
            (Some(a), Some(b)) => a.min(b),
            (Some(at), None) | (None, Some(at)) => at,
            (None, None) => Instant::now() + Duration::from_secs(86_400),
        }
    }

    /// The error a deadline passed by `now` ends the generation with; `None`
    /// when none has, or when the answer continues after it.
    pub fn passed(&mut self, now: Instant) -> Option<UpstreamError> {
        let Source::Serving {
            deadlines,
            midstream,
            ..
        } = self
        else {
            return None;
        };
        let err = deadlines.passed(now)?;
        let continues = midstream
            .as_ref()
            .is_some_and(|midstream| midstream.continues_after(&err));
        if !continues {
            return Some(err);
        }
        self.continue_after(err);
        None
    }

    /// When `total_ms` runs out, and its error, once an attempt serves.
    pub fn total(&self) -> Option<(Instant, UpstreamError)> {
        match self {
            Source::Serving { deadlines, .. } | Source::Continuing { deadlines, .. } => {
                Some(deadlines.total())
            }
            Source::Choosing(_) | Source::Ended => None,
        }
    }

    pub fn on_output(&mut self, now: Instant) {
        match self {
            Source::Serving { deadlines, .. } => deadlines.on_output(now),
            Source::Choosing(_) | Source::Continuing { .. } | Source::Ended => {}
        }
    }

    /// Counts a failure of the serving model (the failover counts the ones
    /// before it serves, the continuation its own).
    pub fn count_error(&self, err: &UpstreamError) {
        match self {
            Source::Serving { model, .. } => attempt::count_error(model, err),
            Source::Choosing(_) | Source::Continuing { .. } | Source::Ended => {}
        }
    }

    pub fn model(&self) -> &str {
        match self {
            Source::Serving { model, .. } | Source::Continuing { model, .. } => model,
            Source::Choosing(_) | Source::Ended => "",
        }
    }
}
