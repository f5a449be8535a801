//! Generations as resources (contract section 7): one answer being produced,
//! with an id and an append-only log of its frames, which any number of
//! responses read. The HTTP response that started it is only one view of it.
//!
//! - [`GenerationStore`] makes and finds generations; [`LocalStore`] (in
//!   `local.rs`) keeps them in this process, the embedded default. A shared
//!   store (Redis) implements the same two traits without changing the doors.
//! - [`GenerationLog`] is one generation as the store keeps it: append a frame,
//!   read from frame N, wait for the next one, cancel, report its status.
//! - [`EventId`] is a frame's SSE id, `GEN:N`, as `Last-Event-ID` brings it back.
//!
//! Who writes a log: the relay, frame by frame, as it writes them to the
//! client (`pipeline::relay`), so a stream with its one client pays one append
//! per token and no extra task or channel; or, for a generation that must run
//! with no client attached, the same relay loop in a task of its own
//! (`pipeline::detached`).
//!
//! What it may not do: run a generation or know any door's frame format.

mod id;
mod local;
mod log;
mod store;

pub use id::{EventId, GenId};
pub use local::{Copied, LocalLog, LocalStore};
pub use log::{Entry, Gone, Read, Snapshot, Status, CANCELLED};
pub use store::{GenerationLog, GenerationStore, Owner, Pending, Watching};
