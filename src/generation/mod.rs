//! A generation: what a provider is asked for, the token events it yields,
//! and the ways it can fail.
//!
//! This is the seam between the upstream side (providers, the mock) and the
//! client side (front doors, frame encoders), and the floor of the module
//! graph: it imports nothing from the rest of the crate, so both sides can
//! depend on it without depending on each other. A generation is a plain
//! stream of [`TokenEvent`]s that knows nothing about HTTP responses, so the
//! same stream can be carried as native SSE, NDJSON, plain text or OpenAI
//! chunks, and later buffered for resumption, without touching the providers.
//!
//! The rules every provider keeps:
//! - zero or more outputs (`Token`, `Reasoning`, `Signature`, `ToolCalls`,
//!   `Delta`), then exactly one terminal
//!   event (`Done`, `Error` or `Cut`), then the end of the stream;
//! - dropping the stream cancels the generation: the upstream connection is
//!   closed, the mock's timers are dropped. No provider spawns a detached task.
//!
//! What it may not do: know about HTTP, config files or any provider.

mod embed;
mod error;
mod events;
mod knobs;
mod request;
mod tools;

pub use embed::{EmbedRequest, Embedded};
pub use error::{InvalidField, UpstreamError};
pub use events::{
    call_index, merge_tool_calls, ChunkDelta, FaultEvent, Finish, Seam, TokenEvent, TokenStream,
    Usage,
};
pub use knobs::{Fault, MockKnobs, MockMode, FAULT_AFTER};
pub use request::{check_max_tokens, GenRequest, Message, OutputFormat, Role};
pub use tools::{check_choice, forced, Tool, ToolChoice};
