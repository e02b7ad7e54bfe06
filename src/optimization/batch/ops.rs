//! What can be queued: validated writes, and what a committed one answers.

use crate::core::data::{Changes, NewRow};
use crate::core::filter::Filter;
use crate::core::registry::ModelDef;
use crate::core::value::{Cell, Row};
use crate::utils::error::Error;

/// One validated write.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// Insert a row; answers the row with its id.
    Insert(NewRow),
    /// Apply changes to matching rows; answers the count matched.
    Update {
        /// Which rows.
        filter: Filter,
        /// What to set.
        changes: Changes,
    },
    /// Delete matching rows; answers the count.
    Delete {
        /// The model.
        model: &'static ModelDef,
        /// Which rows.
        filter: Filter,
    },
    /// The upsert of `db_save`: update the first row matching `key` or insert `new_row`; answers the row.
    Save {
        /// The model.
        model: &'static ModelDef,
        /// `key_field = key_value`.
        key: Filter,
        /// The key column carries a unique key (a concurrent insert becomes an update).
        unique: bool,
        /// The changes for an existing row (none for empty data).
        changes: Option<Changes>,
        /// The row to insert otherwise (or why `data` cannot be a whole row).
        new_row: Result<NewRow, Error>,
    },
    /// `column = column + delta` on matching rows; answers the count matched.
    Increment {
        /// The model.
        model: &'static ModelDef,
        /// Which rows.
        filter: Filter,
        /// The column index.
        column: usize,
        /// The amount (an `Int` or `Float` cell).
        delta: Cell,
    },
}

impl WriteOp {
    /// The model written.
    pub fn model(&self) -> &'static ModelDef {
        match self {
            WriteOp::Insert(r) => r.model,
            WriteOp::Update { changes, .. } => changes.model,
            WriteOp::Delete { model, .. } | WriteOp::Save { model, .. } | WriteOp::Increment { model, .. } => model,
        }
    }

    /// Checks that the parts agree with each other (the validated constructors always do; a write put
    /// together by hand might not): every column index within the model, cells one per column.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] naming the mismatch.
    pub fn check(&self) -> Result<(), Error> {
        let m = self.model();
        let n = m.columns.len();
        let fits = |f: &Filter| f.max_column().is_none_or(|c| c < n);
        let ok = match self {
            WriteOp::Insert(r) => r.cells.len() == n,
            WriteOp::Update { filter, changes } => fits(filter) && changes.sets.iter().all(|(c, _)| *c < n),
            WriteOp::Delete { filter, .. } => fits(filter),
            WriteOp::Save { key, changes, new_row, .. } => {
                fits(key)
                    && changes.as_ref().is_none_or(|c| c.model == m)
                    && new_row.as_ref().map_or(true, |r| r.model == m && r.cells.len() == n)
            }
            WriteOp::Increment { filter, column, delta, .. } => {
                fits(filter) && *column < n && matches!(delta, Cell::Int(_) | Cell::Float(_))
            }
        };
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidRequest(format!("a write to `{}` whose parts do not fit the model", m.name)))
        }
    }

    /// Checks the values against what `backend` stores (see [`Cell::check_backend`]).
    ///
    /// # Errors
    /// [`Error::InvalidValue`] naming the limit.
    pub fn check_backend(&self, backend: sea_orm::DbBackend) -> Result<(), Error> {
        let m = self.model();
        let row = |r: &NewRow| r.cells.iter().enumerate().try_for_each(|(i, c)| c.check_backend(m, m.col(i), backend));
        let changes = |c: &Changes| c.sets.iter().try_for_each(|(i, v)| v.check_backend(m, m.col(*i), backend));
        match self {
            WriteOp::Insert(r) => row(r),
            WriteOp::Update { changes: c, .. } => changes(c),
            WriteOp::Save { changes: c, new_row, .. } => {
                c.as_ref().map_or(Ok(()), changes)?;
                new_row.as_ref().map_or(Ok(()), row)
            }
            WriteOp::Delete { .. } | WriteOp::Increment { .. } => Ok(()),
        }
    }

    /// An estimate of the memory the queued write holds, for the byte bound.
    pub fn bytes(&self) -> usize {
        let cells = |c: &[Cell]| c.iter().map(|c| if let Cell::Text(s) = c { 24 + s.len() } else { 24 }).sum::<usize>();
        128 + match self {
            WriteOp::Insert(r) => cells(&r.cells),
            WriteOp::Update { changes, .. } => changes.sets.iter().map(|(_, c)| cells(std::slice::from_ref(c))).sum(),
            WriteOp::Save { new_row: Ok(r), .. } => 2 * cells(&r.cells),
            _ => 64,
        }
    }
}

/// Where a queued write is on its way to its acknowledgement, for a session that must know whether a read's
/// committed answer already holds it. Moves forward only.
#[derive(Debug, Default)]
pub struct Progress(std::sync::atomic::AtomicU8);

/// The stages of [`Progress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// Queued or running its statements: no other connection can see it.
    Queued = 0,
    /// COMMIT may be under way: other connections may or may not see it.
    Committing = 1,
    /// Committed and the cache's generations moved: every read that begins now sees it.
    Published = 2,
    /// Failed: nothing of it was written.
    Failed = 3,
}

impl Progress {
    /// The stage now.
    pub fn stage(&self) -> Stage {
        match self.0.load(std::sync::atomic::Ordering::Acquire) {
            0 => Stage::Queued,
            1 => Stage::Committing,
            2 => Stage::Published,
            _ => Stage::Failed,
        }
    }

    /// Moves to `stage`.
    pub fn set(&self, stage: Stage) {
        self.0.store(stage as u8, std::sync::atomic::Ordering::Release);
    }
}

/// What a committed write answers.
#[derive(Debug, Clone, PartialEq)]
pub enum WriteOutcome {
    /// The row written (create, save).
    Row(Row),
    /// Rows matched (update, delete, increment).
    Count(u64),
}

impl WriteOutcome {
    /// The row, for writes that answer one.
    pub fn into_row(self) -> Option<Row> {
        match self {
            WriteOutcome::Row(r) => Some(r),
            WriteOutcome::Count(_) => None,
        }
    }

    /// The count, for writes that answer one.
    pub fn count(&self) -> Option<u64> {
        match self {
            WriteOutcome::Count(n) => Some(*n),
            WriteOutcome::Row(_) => None,
        }
    }
}
