//! Section 14: the mock lab: a provider's rate-limit headers, faults by
//! name, pause and step, and record and replay.

mod faults;
mod pause;
mod rate_limits;
mod record_replay;
