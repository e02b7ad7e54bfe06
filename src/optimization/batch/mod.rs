//! The batch-write scheduler: every write gets a ticket (a future) that resolves only after the transaction
//! holding it committed. Writers (one on SQLite, a few on PostgreSQL/MySQL, each on its own thread with its
//! own queue: a "lane"; a model's writes always take the same lane, so a caller's writes to a model apply in
//! submission order) collect queued writes by priority until the adaptive batch target or the linger
//! deadline, plan which share a statement (`plan.rs`), run them in one transaction (`executor.rs`), and hand
//! the committed batch to an acknowledger that invalidates the cache, then resolves the tickets
//! (`writer.rs`). Queues are bounded by count and bytes: a full queue makes `submit` wait a bounded time,
//! then fail with [`Error::Overloaded`]. Nothing is dropped.
//!
//! Read-your-writes: [`BatchWriter::wait_for`] returns once every write to a partition (or model) submitted before the call
//! has resolved, hurrying the writer; reads call it first.

pub(crate) mod controller;
pub mod executor;
mod grouped;
pub(crate) mod ops;
pub(crate) mod plan;
pub(crate) mod queue;
mod scheduler;
mod writer;

pub(crate) use ops::{Progress, Stage};
pub use ops::{WriteOp, WriteOutcome};
pub use queue::Priority;
pub use scheduler::{BatchStats, Ticket};
pub(crate) use scheduler::{BatchWriter, SharedAnswer};
pub(crate) use writer::merge;
