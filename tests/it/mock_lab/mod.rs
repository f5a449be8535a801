//! Section 14: the mock lab. So far: a provider's rate-limit headers,
//! faults by name, and pause and step.

mod faults;
mod pause;
mod rate_limits;
