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
pub use generations::{cancel, create, events, pause, resume, status, step};
pub use stream::{get, post};

/// For the fuzz targets: a POST body (JSON or form) and a query string
/// through the request parser, on to a generation request.
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(form: bool, bytes: &[u8]) {
    let templates = crate::templates::Templates::load(std::path::Path::new("/nonexistent"));
    let content_type = form.then_some("application/x-www-form-urlencoded");
    if let Ok(parsed) = request::StreamRequest::from_body(content_type, bytes) {
        let _ = parsed.into_generation(&templates);
    }
    if let Ok(query) = std::str::from_utf8(bytes) {
        if let Ok(pairs) = request::query_pairs(Some(query)) {
            if let Ok(parsed) = request::StreamRequest::from_pairs(pairs) {
                let _ = parsed.into_generation(&templates);
            }
        }
    }
}
