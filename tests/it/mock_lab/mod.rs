//! Section 14: the mock lab. So far: a provider's rate-limit headers, and
//! faults by name.

mod faults;
mod rate_limits;
