//! Section 14: the mock lab. So far: a provider's rate-limit headers.

mod rate_limits;
