//! The native front door (sections 1 and 7 of the contract):
//! `POST`/`GET /v1/stream` (`stream.rs`) and the generations API
//! (`generations.rs`).
//!
//! Every native stream is a generation: its frames get `GEN:N` ids and go
//! into its log (`resume.rs` makes, finds and resumes generations), so a
//! reconnect with `Last-Event-ID` resumes it instead of starting another.
//! Requests are parsed by `request.rs`, framed by `frames.rs`; a response that
//! watches a log rather than relaying a generation is a `view.rs`.

mod frames;
mod generations;
mod request;
mod resume;
mod stream;
mod view;

pub use frames::{Format, NativeFrames};
pub use generations::{cancel, create, events, status};
pub use stream::{get, post};
