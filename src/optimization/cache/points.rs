//! Write-through of point entries: the read of a row by one of its keys (`find_one`: one equality, no order,
//! `LIMIT 1`), right after a write to that row, should hit. A commit bumps the generations the entry is keyed
//! by; here, as for windows (`carry.rs`), the cache takes the point entries of the keys the batch wrote
//! before the bump and installs them, edited, under the new generations after it:
//!
//! - a committed row (an insert, or the row a save left) replaces the entry's row of the same id, fills a
//!   negative entry, and, for a unique column (not `id`), becomes the entry even where none was cached (the
//!   database holds exactly that row for the key);
//! - an update by the key applies its changes to the cached row;
//! - an increment by a key that matched one row sets the value the database returned for it (SQLite and
//!   PostgreSQL: `RETURNING`), which is an update like any other.
//!
//! Exactness as for windows: installed only when the generations moved by exactly this commit's bump, and
//! only with edits that are idempotent (rows carry their id, updates set values), so an entry loaded after
//! COMMIT and before the bump is edited into the same answer. Deletes, and increments whose result is not
//! known (MySQL, several rows per key, a float delta), only invalidate: adding a delta again to an entry that
//! already holds it would count twice.

use std::sync::Arc;

use serde_json::Value;

use crate::core::exec::Select;
use crate::core::filter::Filter;
use crate::core::registry::{ModelDef, model_index};
use crate::core::value::{Cell, Row, Rows};
use crate::optimization::partition::Touched;

use super::carry::{PointEdit, Taken, WindowEdits};
use super::tiers::Cache;

/// A point entry taken before the bump: where it lived, and what it held.
pub(super) struct PointCarry {
    at: Taken,
    /// The key value the entry is about.
    value: Value,
    rows: Option<Rows>,
    /// Every committed write of the model in the batch, in order.
    edits: Arc<[PointEdit]>,
}

/// The columns whose point reads are carried: `id`, the unique columns and the model's natural keys.
fn key_columns(model: &ModelDef) -> Vec<usize> {
    let mut cols: Vec<usize> = (0..model.columns.len())
        .filter(|&i| i == 0 || model.col(i).unique || model.keys.iter().any(|k| k.column == model.col(i).name))
        .collect();
    cols.dedup();
    cols
}

impl PointCarry {
    /// The entry after the edits, or `None` when it cannot be known.
    fn edited(&self) -> Option<Rows> {
        let model = self.at.sel.model;
        let col = self.at.sel.filter.conds[0].column;
        let name = model.col(col).name;
        // A unique column's entry is created even where none was cached (the read right after a first
        // write); `id` entries only where cached (nobody reads a message by an id it has not seen yet).
        let unique = model.col(col).unique;
        let mut rows: Option<Vec<Arc<Row>>> = self.rows.as_ref().map(|r| r.to_vec());
        for e in self.edits.iter() {
            match e {
                PointEdit::Opaque => return None,
                PointEdit::Row(r) => {
                    let id = r.get("id");
                    let ours = r.get(name) == Some(&self.value);
                    match &mut rows {
                        // The same row rewritten (its key may have moved: re-filtered below).
                        Some(rs) if rs.iter().any(|x| x.get("id") == id) => {
                            for x in rs.iter_mut().filter(|x| x.get("id") == id) {
                                *x = r.clone();
                            }
                        }
                        Some(rs) if ours && rs.is_empty() => rs.push(r.clone()),
                        // Another row holds the key (and came first): the entry keeps it.
                        Some(_) => {}
                        None if ours && unique => rows = Some(vec![r.clone()]),
                        None if ours => return None,
                        None => {}
                    }
                }
                // An update by any key: applied to the entry's rows it matches (the rows are whole, so
                // the match is known), unless a collation could match where bytes differ.
                PointEdit::Update { key, value, changes } => {
                    let kname = model.col(*key).name;
                    for x in rows.as_mut()?.iter_mut() {
                        match x.get(kname) {
                            Some(v) if v == value => changes.apply_to(Arc::make_mut(x)),
                            Some(Value::String(a)) if value.as_str().is_some_and(|b| loosely_equal(a, b)) => {
                                return None;
                            }
                            _ => {}
                        }
                    }
                }
            }
        }
        let mut rows = rows?;
        rows.retain(|r| r.get(name) == Some(&self.value));
        Some(rows.into())
    }
}

/// Text a collation might call equal though the bytes differ (case, trailing spaces).
fn loosely_equal(a: &str, b: &str) -> bool {
    a.trim_end().to_lowercase() == b.trim_end().to_lowercase()
}

/// The value of column `col` an edit writes, if it names one.
fn key_of_edit(model: &ModelDef, edit: &PointEdit, col: usize) -> Option<Value> {
    match edit {
        PointEdit::Row(r) => r.get(model.col(col).name).filter(|v| !v.is_null()).cloned(),
        PointEdit::Update { key, value, .. } => (*key == col).then(|| value.clone()),
        PointEdit::Opaque => None,
    }
}

impl Cache {
    /// Takes, before the bump, the point entries of the keys `edits` wrote (cached or not: see the module).
    pub(super) async fn take_points(&self, touched: &[Touched], edits: &WindowEdits) -> Vec<PointCarry> {
        let mut out = Vec::new();
        for t in touched {
            let m = model_index(t.model);
            let es = &edits.1[m];
            if es.is_empty() || es.iter().any(|e| matches!(e, PointEdit::Opaque)) || !self.caches(t.model) {
                continue;
            }
            let all_edits: Arc<[PointEdit]> = es.clone().into();
            for col in key_columns(t.model) {
                let mut values: Vec<Value> = es.iter().filter_map(|e| key_of_edit(t.model, e, col)).collect();
                values.dedup();
                for v in values {
                    let Ok(cell) = Cell::from_json(t.model, t.model.col(col), &v) else { continue };
                    let sel = Select {
                        model: t.model,
                        filter: Filter::all().and_eq(col, cell),
                        order: vec![],
                        limit: Some(1),
                        offset: 0,
                    };
                    let at = self.taken(sel);
                    let rows = self.cached(at.old_key).await.map(|e| e.rows);
                    out.push(PointCarry { at, value: v, rows, edits: all_edits.clone() });
                }
            }
        }
        out
    }

    /// After the bump: installs each taken point entry, edited, when the generations moved by exactly this
    /// bump; drops the superseded entry either way.
    pub(super) async fn install_points(&self, carried: Vec<PointCarry>) {
        for c in carried {
            self.reinstall(&c.at, c.rows.is_some(), None, || c.edited()).await;
        }
    }
}
