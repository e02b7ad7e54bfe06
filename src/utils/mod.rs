//! Layer 0: the error type, retry with backoff, and time helpers. Depends on nothing else in the crate.

pub(crate) mod error;
pub(crate) mod retry;
pub(crate) mod stable_hash;
pub mod time;
