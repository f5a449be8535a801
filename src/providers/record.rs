//! Recording (contract section 14): a route with `record = true` writes
//! every exchange with its upstream to a file of its own in `[record] dir`,
//! as it streams (`cassette` says the format). A wrapper around the route's
//! provider: the provider does not know it is recorded.
//!
//! Each event is written and flushed when it passes, so the file grows with
//! the answer and a cut or cancelled exchange is on disk up to its end. The
//! writes are small and go to the page cache; this is a development
//! feature, not for a hot production route. Past `[record] max_bytes` a
//! file ends with a `truncated` line and records no more.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use futures_util::Stream;
use tokio::time::Instant;

use super::cassette::{self, Line};
use super::{Counting, Embedding, Provider};
use crate::generation::{EmbedRequest, GenRequest, TokenEvent, TokenStream};
use crate::redact::Redactor;

/// A provider whose exchanges are recorded.
pub struct Recorded {
    inner: Arc<dyn Provider>,
    route: String,
    provider: &'static str,
    dir: PathBuf,
    max_bytes: u64,
    scrub: Redactor,
}

impl Recorded {
    pub fn new(
        inner: Arc<dyn Provider>,
        route: &str,
        provider: &'static str,
        dir: PathBuf,
        max_bytes: u64,
        secrets: Vec<String>,
    ) -> Recorded {
        Recorded {
            inner,
            route: route.to_owned(),
            provider,
            dir,
            max_bytes,
            scrub: Redactor::new(secrets),
        }
    }

    /// A new recording's file, with its request line written.
    fn open(&self, request: &GenRequest) -> Option<Tape> {
        let at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        let name = format!(
            "{at}-{}-{:08x}.jsonl",
            self.route
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                })
                .collect::<String>(),
            fastrand::u32(..)
        );
        let path = self.dir.join(name);
        let file = match std::fs::create_dir_all(&self.dir).and_then(|()| File::create(&path)) {
            Ok(file) => file,
            Err(err) => {
                tracing::warn!(path = %path.display(), %err, "could not start a recording");
                return None;
            }
        };
        let key = cassette::key(&self.route, request);
        let key: serde_json::Value =
            serde_json::from_str(&self.scrub.scrub(&key.to_string())).unwrap_or(key);
        let mut tape = Tape {
            out: BufWriter::new(file),
            path,
            written: 0,
            max_bytes: self.max_bytes,
            started: Instant::now(),
            ended: false,
            scrub: self.scrub.clone(),
        };
        tape.write(&Line::Request {
            route: self.route.clone(),
            provider: self.provider.to_owned(),
            at,
            key,
        });
        Some(tape)
    }
}

impl Provider for Recorded {
    fn generate(&self, request: GenRequest) -> TokenStream {
        let tape = self.open(&request);
        let events = self.inner.generate(request);
        match tape {
            Some(tape) => Box::pin(Recording { events, tape }),
            None => events,
        }
    }

    fn count_tokens(&self, request: &GenRequest) -> Counting<'_> {
        self.inner.count_tokens(request)
    }

    fn embed(&self, request: EmbedRequest) -> Embedding<'_> {
        self.inner.embed(request)
    }
}

/// One recording being written.
struct Tape {
    out: BufWriter<File>,
    path: PathBuf,
    written: u64,
    max_bytes: u64,
    started: Instant,
    ended: bool,
    scrub: Redactor,
}

impl Tape {
    fn ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn write(&mut self, line: &Line) {
        if self.ended {
            return;
        }
        let Ok(mut text) = serde_json::to_string(line) else {
            return;
        };
        text.push('\n');
        if self.written + text.len() as u64 > self.max_bytes {
            let truncated = Line::Truncated { ms: self.ms() };
            if let Ok(mut last) = serde_json::to_string(&truncated) {
                last.push('\n');
                let _ = self.out.write_all(last.as_bytes());
            }
            let _ = self.out.flush();
            self.ended = true;
            return;
        }
        self.written += text.len() as u64;
        self.ended = line.is_end();
        if self
            .out
            .write_all(text.as_bytes())
            .and_then(|()| self.out.flush())
            .is_err()
        {
            tracing::warn!(path = %self.path.display(), "a recording could not be written; it stops");
            self.ended = true;
        }
    }

    fn event(&mut self, event: &TokenEvent) {
        let ms = self.ms();
        for line in cassette::lines(event, ms, &self.scrub) {
            self.write(&line);
        }
    }
}

/// The provider's events, recorded as they pass.
struct Recording {
    events: TokenStream,
    tape: Tape,
}

impl Stream for Recording {
    type Item = TokenEvent;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<TokenEvent>> {
        let next = self.events.as_mut().poll_next(cx);
        match &next {
            Poll::Ready(Some(event)) => self.tape.event(event),
            Poll::Ready(None) => {
                let ms = self.tape.ms();
                self.tape.write(&Line::Cut { ms });
            }
            Poll::Pending => {}
        }
        next
    }
}

impl Drop for Recording {
    fn drop(&mut self) {
        let ms = self.tape.ms();
        self.tape.write(&Line::Cancelled { ms });
    }
}
