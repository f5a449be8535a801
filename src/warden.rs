//! The warden: ends a response from outside its body, so that ending a
//! stream never waits for its reader (contract section 18).
//!
//! Why it exists: hyper polls a response body only while the client's side
//! can take bytes. A client that stops reading (a full socket under HTTP/1.1,
//! a zero flow-control window under HTTP/2) stops the body, and with it
//! everything the body checks in its own loop: `total_ms`, `idle_ms`, a
//! `DELETE`, the end of the shutdown grace. The warden checks them from
//! outside, on a sweep, and ends such a response by dropping the task that
//! serves it: under HTTP/2 the stream's task (h2 then resets the stream),
//! under HTTP/1.1 the connection's (its socket closes). Dropping is how every
//! response already ends, so the body's own drop gives the slot back, closes
//! the upstream request and ends the generation's log, as when a client
//! leaves.
//!
//! The parts:
//! - [`Scope`]: what a request knows of where it runs (its connection, and
//!   the [`Exit`] that ends its response), set as a task-local by the
//!   listener around each request's handler and each HTTP/2 stream's task;
//! - [`Guard`] and [`Watched`]: a streaming body registers with its scope's
//!   warden and says, with two atomic stores per frame, whether it is waiting
//!   for hyper to take its last frame, and when its next deadline is due;
//! - [`Warden::sweep`]: one task per listener, every [`SWEEP`]: a body blocked
//!   across two sweeps is ended once its stop fired, its deadline passed or
//!   it has been blocked for `send_timeout_ms` (a zero HTTP/2 window counts
//!   like a full socket); a connection with no open request for
//!   `idle_connection_ms` is shut down gracefully (GOAWAY under HTTP/2).
//!
//! Nothing here is on the per-token path but the two stores and one atomic
//! load: no timer, task or lock per stream or per token.
//!
//! What it may not do: end a body that is merely waiting for its upstream
//! (that body is being polled, and runs its own deadlines), or write bytes.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use futures_util::Stream;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the warden looks at its bodies and connections: the most a
/// stop or a deadline of a blocked body waits, beyond one more sweep.
pub const SWEEP: Duration = Duration::from_millis(250);

tokio::task_local! {
    static SCOPE: Scope;
}

/// What a request's task knows of where it runs.
#[derive(Clone)]
pub struct Scope {
    warden: Arc<Shared>,
    connection: Arc<Connection>,
    /// Ends this response: the HTTP/2 stream's task, or the HTTP/1.1
    /// connection's.
    exit: Arc<Exit>,
}

impl Scope {
    /// The scope of the task polling now, if it is one the listener serves.
    pub fn current() -> Option<Scope> {
        SCOPE.try_with(Scope::clone).ok()
    }

    /// A request began on this scope's connection: it counts as open (the
    /// connection is not idle) until the returned guard is dropped.
    pub fn open(&self) -> Open {
        self.connection.open.fetch_add(1, Ordering::Relaxed);
        Open(self.connection.clone())
    }

    /// The scope of an HTTP/2 stream of this connection: its own exit.
    pub fn stream(&self) -> Scope {
        Scope {
            exit: Arc::new(Exit::default()),
            ..self.clone()
        }
    }

    /// Runs `future` with this scope as the task's: a request's handler, so
    /// that what it starts (a [`Guard`]) knows its connection and exit.
    pub async fn within<F: Future>(self, future: F) -> F::Output {
        SCOPE.scope(self, future).await
    }

    /// Runs an HTTP/2 stream's `task` in this scope until it ends or its
    /// exit fires (`None`).
    pub async fn run<F: Future>(self, task: F) -> Option<F::Output> {
        let exit = self.exit.clone();
        self.within(until_cut(exit, task)).await
    }

    /// Serves a connection until it ends or its exit fires (`None`); it is
    /// shut down gracefully (its open requests finish, none begins) when the
    /// warden says it is idle or the listener drains. Not a task-local scope:
    /// that is entered per request ([`Scope::within`]), not per poll of the
    /// connection.
    pub async fn serve<C: Future>(
        self,
        connection: C,
        shut_down: impl Fn(Pin<&mut C>),
    ) -> Option<C::Output> {
        let flags = self.connection.exit.clone();
        let mut closing = false;
        let mut connection = std::pin::pin!(connection);
        until_cut(
            self.exit,
            std::future::poll_fn(|cx| {
                if !closing && flags.flags.load(Ordering::Acquire) & CLOSE != 0 {
                    closing = true;
                    shut_down(connection.as_mut());
                }
                connection.as_mut().poll(cx)
            }),
        )
        .await
    }
}

/// Ends the request being handled with no response at all: its HTTP/1.1
/// connection is closed, or its HTTP/2 stream reset (the mock's `reset`
/// fault). Outside a request's task, nothing.
pub fn cut_here() {
    if let Some(scope) = Scope::current() {
        scope.exit.fire(CUT);
    }
}

/// Polls `task` until it ends (`Some`) or `exit` is cut (`None`).
async fn until_cut<F: Future>(exit: Arc<Exit>, task: F) -> Option<F::Output> {
    let mut task = std::pin::pin!(task);
    std::future::poll_fn(|cx| {
        if exit.flags.load(Ordering::Acquire) & CUT != 0 {
            return Poll::Ready(None);
        }
        exit.waker.register(cx.waker());
        task.as_mut().poll(cx).map(Some)
    })
    .await
}

/// A request in flight on a connection; dropped when its response has ended.
pub struct Open(Arc<Connection>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0
            .idle_since
            .store(self.0.warden.now(), Ordering::Relaxed);
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Ends a response's task: `CUT` drops it, `CLOSE` asks a connection to
/// shut down gracefully.
#[derive(Default)]
pub struct Exit {
    flags: AtomicU8,
    waker: AtomicWaker,
}

const CUT: u8 = 1;
const CLOSE: u8 = 2;

impl Exit {
    fn fire(&self, flag: u8) {
        self.flags.fetch_or(flag, Ordering::AcqRel);
        self.waker.wake();
    }
}

/// One client connection as the warden sees it.
struct Connection {
    warden: Arc<Shared>,
    exit: Arc<Exit>,
    /// Requests whose responses have not ended.
    open: AtomicUsize,
    /// When `open` last fell to zero (milliseconds on the warden's clock).
    idle_since: AtomicU64,
}

/// The warden of one listener: its settings and what it watches.
#[derive(Clone)]
pub struct Warden {
    shared: Arc<Shared>,
}

struct Shared {
    epoch: Instant,
    send_timeout: Duration,
    idle_connection: Duration,
    /// Registered since the last sweep, which takes them into its own list.
    new_bodies: Mutex<Vec<Weak<Body>>>,
    new_connections: Mutex<Vec<Weak<Connection>>>,
}

impl Shared {
    /// Milliseconds since the warden began: the clock of its atomics.
    fn now(&self) -> u64 {
        self.millis(Instant::now())
    }

    fn millis(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch).as_millis() as u64
    }
}

impl Warden {
    pub fn new(send_timeout: Duration, idle_connection: Duration) -> Warden {
        Warden {
            shared: Arc::new(Shared {
                epoch: Instant::now(),
                send_timeout,
                idle_connection,
                new_bodies: Mutex::default(),
                new_connections: Mutex::default(),
            }),
        }
    }

    /// The scope of a new connection, watched from now on.
    pub fn connection(&self) -> Scope {
        let exit = Arc::new(Exit::default());
        let connection = Arc::new(Connection {
            warden: self.shared.clone(),
            exit: exit.clone(),
            open: AtomicUsize::new(0),
            idle_since: AtomicU64::new(self.shared.now()),
        });
        lock(&self.shared.new_connections).push(Arc::downgrade(&connection));
        Scope {
            warden: self.shared.clone(),
            connection,
            exit,
        }
    }

    /// Runs until dropped: every [`SWEEP`], ends the blocked bodies that are
    /// due and closes the idle connections. `draining` fires when the
    /// listener stops accepting: every connection is then shut down
    /// gracefully.
    pub async fn sweep(self, draining: CancellationToken) {
        let mut bodies: Vec<Watch> = Vec::new();
        let mut connections: Vec<Weak<Connection>> = Vec::new();
        let mut tick = tokio::time::interval(SWEEP);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            let now = Instant::now();
            let now_ms = self.shared.millis(now);
            bodies.extend(
                std::mem::take(&mut *lock(&self.shared.new_bodies))
                    .into_iter()
                    .map(|body| Watch { body, seen: None }),
            );
            connections.extend(std::mem::take(&mut *lock(&self.shared.new_connections)));
            bodies.retain_mut(|watch| watch.check(now, now_ms, &self.shared));
            let drain = draining.is_cancelled();
            let idle_ms = self.shared.idle_connection.as_millis() as u64;
            connections.retain(|connection| {
                let Some(connection) = connection.upgrade() else {
                    return false;
                };
                let idle = connection.open.load(Ordering::Relaxed) == 0
                    && now_ms.saturating_sub(connection.idle_since.load(Ordering::Relaxed))
                        >= idle_ms;
                let closing = connection.exit.flags.load(Ordering::Relaxed) & CLOSE != 0;
                if (drain || idle) && !closing {
                    connection.exit.fire(CLOSE);
                }
                true
            });
        }
    }
}

/// A streaming body's registration: publishes its next deadline, and wraps
/// the body so the warden can tell when it is blocked.
#[derive(Clone)]
pub struct Guard(Option<Arc<Body>>);

/// What the warden knows of one streaming body.
struct Body {
    warden: Arc<Shared>,
    exit: Arc<Exit>,
    stop: CancellationToken,
    /// Frames given, shifted left by one; the low bit is set while the body
    /// waits for hyper to take the last one (or to poll it the first time).
    progress: AtomicU64,
    /// The connection is busy while the body lives.
    _open: Open,
    /// When the body would end itself by a deadline, were it polled
    /// (milliseconds on the warden's clock; `u64::MAX`: no deadline).
    due: AtomicU64,
}

const WAITING: u64 = 1;

impl Guard {
    /// Registers a body of the request polling now, which ends early when
    /// `stop` fires; a guard that watches nothing outside a served
    /// connection (a body that is not an HTTP response).
    pub fn here(stop: CancellationToken) -> Guard {
        Guard(Scope::current().map(|scope| {
            let body = Arc::new(Body {
                warden: scope.warden.clone(),
                exit: scope.exit.clone(),
                stop,
                progress: AtomicU64::new(WAITING),
                due: AtomicU64::new(u64::MAX),
                _open: scope.open(),
            });
            lock(&scope.warden.new_bodies).push(Arc::downgrade(&body));
            body
        }))
    }

    /// The body's next deadline is `at`.
    pub fn due(&self, at: Instant) {
        if let Some(body) = &self.0 {
            body.due.store(body.warden.millis(at), Ordering::Relaxed);
        }
    }

    /// A guard of a body that is not an HTTP response (a detached
    /// generation's): it watches nothing.
    pub fn none() -> Guard {
        Guard(None)
    }

    /// `stream`, watched by this guard.
    pub fn watch<S>(self, stream: S) -> Watched<S> {
        Watched {
            stream,
            guard: self.0,
        }
    }
}

pin_project_lite::pin_project! {
    /// A body the warden watches: each poll and each frame given is noted.
    pub struct Watched<S> {
        #[pin]
        stream: S,
        guard: Option<Arc<Body>>,
    }
}

impl<S: Stream> Stream for Watched<S> {
    type Item = S::Item;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<S::Item>> {
        let this = self.project();
        let Some(body) = this.guard else {
            return this.stream.poll_next(cx);
        };
        // Only this task writes `progress`: a plain load and store.
        let given = body.progress.load(Ordering::Relaxed) & !WAITING;
        body.progress.store(given, Ordering::Relaxed);
        let poll = this.stream.poll_next(cx);
        if let Poll::Ready(Some(_)) = &poll {
            body.progress
                .store((given + 2) | WAITING, Ordering::Relaxed);
        }
        poll
    }
}

/// The sweep's view of one body: the progress it last saw blocked, and since
/// when.
struct Watch {
    body: Weak<Body>,
    seen: Option<(u64, Instant)>,
}

impl Watch {
    /// Ends the body if it is blocked and due; false once it is gone.
    fn check(&mut self, now: Instant, now_ms: u64, warden: &Shared) -> bool {
        let Some(body) = self.body.upgrade() else {
            return false;
        };
        let progress = body.progress.load(Ordering::Relaxed);
        if progress & WAITING == 0 {
            self.seen = None;
            return true;
        }
        let since = match self.seen {
            Some((seen, since)) if seen == progress => since,
            // Seen blocked for the first time: a body between two frames
            // is never ended on one look.
            _ => {
                self.seen = Some((progress, now));
                return true;
            }
        };
        let ends = body.stop.is_cancelled()
            || now_ms >= body.due.load(Ordering::Relaxed)
            || now - since >= warden.send_timeout;
        if ends {
            tracing::debug!("ending a response whose client took none of its frames");
            body.exit.fire(CUT);
        }
        !ends
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
