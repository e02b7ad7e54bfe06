//! Layer 0: the error type, retry with backoff, and time helpers. Depends on nothing else in the crate.

pub mod error;
pub mod retry;
pub mod time;
