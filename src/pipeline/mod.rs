//! The generation pipeline every front door shares, from a resolved model and
//! request to a response body.
//!
//! Top to bottom:
//! - [`failover::choose`] tries the model, its retries and its fallbacks until
//!   one attempt yields its first event, each attempt under its own
//!   [`deadlines::Deadlines`]; the winner is a [`failover::Serving`];
//! - [`midstream`] continues an answer whose upstream fails after the first
//!   token, on a route that asks for it;
//! - [`relay`] turns the serving generation into a streaming body through the
//!   door's [`framer::Framer`], with heartbeats, the idle and total deadlines
//!   and the shutdown grace, in one loop;
//! - [`collect`] gathers it into one answer instead, for non-streaming doors;
//! - [`detached`] runs the relay's body with no client, into a generation's
//!   log, for generations that outlive their request.
//!
//! What it may not do: parse a request or pick an error body's shape (those
//! are the doors'), or know a provider's wire format (the providers').

mod attempt;
pub mod collect;
pub mod deadlines;
pub mod detached;
pub mod failover;
pub mod framer;
pub mod midstream;
pub mod relay;
mod source;
