//! Write-through of recent-history windows. A committed insert or keyed update of a chat's messages bumps
//! the chat's generation (so every cached read of it becomes unreachable), and without more the next
//! history read would reload the chat's whole window from the database: on a busy chat, every read. Here
//! the batch writer hands the cache what it wrote ([`WindowEdits`]); before the bump the cache takes the
//! window entries of the partitions touched, and after the bump it installs them, edited, under the new
//! generation and drops the superseded entries (whose memory otherwise lingers until evicted).
//!
//! Exactness: a window is carried only when its generations moved by exactly this commit's bump (a
//! concurrent writer or another process's write in between makes it skip: a miss, never a stale entry), only
//! for numeric order columns (text order depends on the database's collation), and only when every write of
//! the model in the batch was an insert or an update by one key that changes neither the partition nor the
//! window's order column. A re-installed window equals what a fresh load would read (tests compare them).

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use crate::core::data::Changes;
use crate::core::exec::Select;
use crate::core::filter::Filter;
use crate::core::registry::{Kind, ModelDef, model_index, models};
use crate::core::value::{Cell, Row, Rows};

use super::generations::Field;
use super::tiers::{Cache, Entry};
use crate::optimization::partition::{Reach, Touched};

/// One committed write, as a window sees it.
#[derive(Debug, Clone)]
pub(crate) enum Edit {
    /// A row inserted (with its id).
    Insert(Arc<Row>),
    /// `changes` applied to the rows whose column `key` equals `value`.
    Update {
        /// The key column: index and name.
        key: (usize, &'static str),
        /// The key value.
        value: Value,
        /// What was set.
        changes: Changes,
    },
}

/// One committed write, as a point entry (a read by one key, `LIMIT 1`) sees it.
#[derive(Debug, Clone)]
pub(crate) enum PointEdit {
    /// A whole committed row (an insert, or the row a save left).
    Row(Arc<Row>),
    /// A write no point entry can replay (an increment, a delete, an update by anything but one key).
    Opaque,
    /// `changes` applied to the rows whose column `key` equals `value` (the key column left alone).
    Update {
        /// The key column.
        key: usize,
        /// The key value.
        value: Value,
        /// What was set.
        changes: Changes,
    },
}

/// The committed writes of one batch, per model, in submission order: for windows (a model is `None` when
/// some write to it cannot be replayed on a window; its windows are then only invalidated) and for point
/// entries (`points.rs`).
#[derive(Debug, Clone)]
pub struct WindowEdits(Vec<Option<Vec<Edit>>>, pub(super) Vec<Vec<PointEdit>>);

impl Default for WindowEdits {
    fn default() -> Self {
        WindowEdits(models().iter().map(|_| Some(Vec::new())).collect(), models().iter().map(|_| Vec::new()).collect())
    }
}

impl WindowEdits {
    /// Records a committed insert.
    pub fn insert(&mut self, model: &'static ModelDef, row: Arc<Row>) {
        self.1[model_index(model)].push(PointEdit::Row(row.clone()));
        if let Some(v) = &mut self.0[model_index(model)] {
            v.push(Edit::Insert(row));
        }
    }

    /// Records the row a committed save left (windows cannot replay saves; point entries can).
    pub fn saved(&mut self, model: &'static ModelDef, row: Arc<Row>) {
        self.1[model_index(model)].push(PointEdit::Row(row));
        self.0[model_index(model)] = None;
    }

    /// Records a committed update of `filter`: replayable when the filter is one key equality and the
    /// changes leave the partition column alone (the order column is checked per window).
    pub fn update(&mut self, filter: &Filter, changes: &Changes) {
        let m = model_index(changes.model);
        let p = changes.model.partition;
        let replayable = match filter.conds.as_slice() {
            [c] if c.op == crate::core::filter::Op::Eq && filter.is_flat() => {
                (!changes.sets.iter().any(|(i, _)| Some(*i) == p)).then(|| (c.column, c.values[0].clone()))
            }
            _ => None,
        };
        if let [c] = filter.conds.as_slice()
            && c.op == crate::core::filter::Op::Eq
            && filter.is_flat()
            && !changes.sets.iter().any(|(i, _)| *i == c.column)
        {
            let value = c.values[0].to_json();
            self.1[m].push(PointEdit::Update { key: c.column, value, changes: changes.clone() });
        } else {
            self.1[m].push(PointEdit::Opaque);
        }
        match (replayable, &mut self.0[m]) {
            (Some((col, value)), Some(v)) => v.push(Edit::Update {
                key: (col, changes.model.col(col).name),
                value: value.to_json(),
                changes: changes.clone(),
            }),
            _ => self.0[m] = None,
        }
    }

    /// Records a committed write that cannot be replayed (delete, increment, …).
    pub fn opaque(&mut self, model: &'static ModelDef) {
        self.0[model_index(model)] = None;
        self.1[model_index(model)].push(PointEdit::Opaque);
    }

    fn of(&self, model: usize) -> Option<&[Edit]> {
        self.0[model].as_deref().filter(|v| !v.is_empty())
    }
}

/// A window taken before the bump: where it lived and what it held.
pub(super) struct Carried {
    at: Taken,
    rows: Rows,
    edits: Arc<Prepared>,
    order: usize,
    /// The window's estimated bytes per row (its carried copy is sized alike).
    per_row: Option<usize>,
}

/// A batch's edits of one model, indexed once for all the windows they are replayed on: a batch touches
/// dozens of chats, and replaying every edit on every window (each building its own key index) was most of
/// the cache's post-commit work.
pub(super) struct Prepared {
    /// The edits, in submission order.
    edits: Arc<[Edit]>,
    /// Inserts by partition (key text) → their positions in `edits`.
    inserts: HashMap<String, Vec<usize>>,
    /// Per key column of an update: key text → positions of the updates by that key.
    updates: Vec<(Column, HashMap<String, Vec<usize>>)>,
    /// A bit per column some update sets (a set order column may move any row into any window).
    sets: u64,
    /// Some update sets a column that updates are keyed by (a key moves mid-batch): windows replay every
    /// edit, as the index of the moved key must follow it.
    keys_move: bool,
}

impl Prepared {
    fn new(model: &ModelDef, edits: Arc<[Edit]>) -> Option<Prepared> {
        let p = model.partition?;
        let partition = (p, model.col(p).name);
        let mut prepared =
            Prepared { edits: edits.clone(), inserts: HashMap::new(), updates: Vec::new(), sets: 0, keys_move: false };
        for (i, e) in edits.iter().enumerate() {
            match e {
                Edit::Insert(r) => {
                    let part = field(r, partition.0, partition.1).map_or_else(String::new, key_text);
                    prepared.inserts.entry(part).or_default().push(i);
                }
                Edit::Update { key, value, changes } => {
                    for (c, _) in &changes.sets {
                        prepared.sets |= 1u64.checked_shl(*c as u32).unwrap_or(u64::MAX);
                    }
                    let at = match prepared.updates.iter().position(|(col, _)| col == key) {
                        Some(at) => at,
                        None => {
                            prepared.updates.push((*key, HashMap::new()));
                            prepared.updates.len() - 1
                        }
                    };
                    prepared.updates[at].1.entry(key_text(value)).or_default().push(i);
                }
            }
        }
        prepared.keys_move = prepared.updates.iter().any(|((c, _), _)| prepared.sets & (1u64 << (*c).min(63)) != 0);
        Some(prepared)
    }

    /// The positions of the updates keyed by `row`'s values, added to `out`.
    fn updates_of(&self, row: &Row, out: &mut Vec<usize>) {
        for ((idx, name), by_key) in &self.updates {
            let hits = match field(row, *idx, name) {
                Some(Value::String(s)) => by_key.get(s.as_str()),
                Some(other) => by_key.get(&key_text(other)),
                None => None,
            };
            out.extend(hits.into_iter().flatten());
        }
    }
}

/// Where an entry carried across a commit lived before the bump: its read and the generations it was keyed
/// by (shared by windows and point entries, `points.rs`).
pub(super) struct Taken {
    pub(super) sel: Select,
    model: usize,
    all: u64,
    scope: Field,
    scope_gen: u64,
    pub(super) old_key: u128,
    /// The resync epoch then (a resync in between resets the counters: nothing is carried across it).
    epoch: u64,
}

impl Cache {
    /// Where `sel` lives now, before the bump.
    pub(super) fn taken(&self, sel: Select) -> Taken {
        let key = self.key_of(&sel);
        let epoch = self.inner.epoch.load(Ordering::Acquire);
        Taken {
            sel,
            model: key.model,
            all: key.all,
            scope: key.scope.0,
            scope_gen: key.scope.1,
            old_key: key.key,
            epoch,
        }
    }

    /// After the bump: drops the superseded entry (when there was one) and installs the edited rows under the
    /// new generations, only when they moved by exactly this bump (else a concurrent write got in between:
    /// a miss, never a stale entry).
    pub(super) async fn reinstall(
        &self,
        at: &Taken,
        existed: bool,
        per_row: Option<usize>,
        edited: impl FnOnce() -> Option<Rows>,
    ) {
        let inner = &self.inner;
        if existed {
            inner.l1.invalidate(&at.old_key).await;
            inner.l2.invalidate(&at.old_key).await;
        }
        let (all, scope_gen) = (inner.gens.get(at.model, Field::All), inner.gens.get(at.model, at.scope));
        if all != at.all || scope_gen != at.scope_gen + 1 || inner.epoch.load(Ordering::Acquire) != at.epoch {
            return;
        }
        let Some(rows) = edited() else { return };
        let key = self.key_of(&at.sel);
        if key.all != all || key.scope.1 != scope_gen {
            return;
        }
        let (ttl, negative) = (inner.policy[at.model].1, inner.negative);
        let entry = match per_row {
            Some(b) => Entry::scaled(rows, ttl, negative, b),
            None => Entry::new(rows, ttl, negative),
        };
        inner.l2.insert(key.key, entry.clone()).await;
        inner.l1.insert(key.key, entry).await;
        inner.stats.carried();
    }
}

/// A column: its index and name.
type Column = (usize, &'static str);

/// A row's place in a window: the order column descending (NULL smallest, so last), then id ascending.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Place {
    value: Option<f64>,
    id: i64,
}

/// Column `idx` (named `name`) of a row. Rows hold every column in table order, so the position finds it
/// without hashing the name (a batch's windows make thousands of these look-ups); the name confirms it.
fn field<'r>(row: &'r Row, idx: usize, name: &str) -> Option<&'r Value> {
    match row.iter().nth(idx) {
        Some((k, v)) if k == name => Some(v),
        _ => row.get(name),
    }
}

impl Place {
    fn of(row: &Row, (idx, order): (usize, &str)) -> Place {
        Place {
            value: field(row, idx, order).and_then(Value::as_f64),
            id: field(row, 0, "id").and_then(Value::as_i64).unwrap_or(0),
        }
    }

    fn cmp(&self, other: &Place) -> std::cmp::Ordering {
        let by_value = match (self.value, other.value) {
            (Some(x), Some(y)) => y.total_cmp(&x),
            (Some(_), None) => std::cmp::Ordering::Less,
            (None, Some(_)) => std::cmp::Ordering::Greater,
            (None, None) => std::cmp::Ordering::Equal,
        };
        by_value.then(self.id.cmp(&other.id))
    }
}

/// A key value as an index key (strings without quoting).
fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Carried {
    /// The window after the edits, or `None` when an edit cannot be replayed on it. Only the edits that
    /// can change this window are replayed: inserts into its partition and updates keyed by a value one of
    /// its rows (or an inserted row) holds; a window no edit reaches keeps its rows as they are.
    fn edited(&self, window_rows: usize) -> Option<Rows> {
        let model = self.at.sel.model;
        let p = model.partition?;
        let prepared = &self.edits;
        // An update that sets the order column may move a row of the partition into the window.
        if self.order < 64 && prepared.sets & (1 << self.order) != 0 {
            return None;
        }
        let part = self.at.sel.filter.eq_value(p)?.to_json();
        let relevant: Vec<usize> = if prepared.keys_move {
            (0..prepared.edits.len()).collect()
        } else {
            let inserted = prepared.inserts.get(&key_text(&part)).map_or(&[][..], Vec::as_slice);
            let mut relevant = inserted.to_vec();
            for row in self.rows.iter() {
                prepared.updates_of(row, &mut relevant);
            }
            for &i in inserted {
                if let Edit::Insert(r) = &prepared.edits[i] {
                    prepared.updates_of(r, &mut relevant);
                }
            }
            relevant.sort_unstable();
            relevant.dedup();
            relevant
        };
        if relevant.is_empty() {
            return Some(self.rows.iter().take(window_rows).cloned().collect());
        }
        let partition = (p, model.col(p).name);
        let mut draft = Draft::of(&self.rows, (self.order, model.col(self.order).name));
        for e in relevant.into_iter().map(|i| &prepared.edits[i]) {
            match e {
                Edit::Insert(r) if field(r, partition.0, partition.1) == Some(&part) => draft.insert(r),
                Edit::Insert(_) => {}
                Edit::Update { changes, .. } if changes.sets.iter().any(|(i, _)| *i == self.order) => return None,
                Edit::Update { key, value, changes } => draft.update(*key, value, changes),
            }
        }
        Some(draft.finish(window_rows))
    }
}

/// A window being edited: its rows (the first `sorted` of them in the window's order, then the rows
/// inserted), the ids it holds (built on first insert), and per key column an index from key text to row
/// positions, built on first use. Places in the order are computed only where an inserted row is merged in.
struct Draft {
    order: Column,
    rows: Vec<Arc<Row>>,
    sorted: usize,
    ids: Option<Vec<i64>>,
    index: Vec<(Column, HashMap<String, Vec<usize>>)>,
}

/// A row's id.
fn id_of(row: &Row) -> i64 {
    field(row, 0, "id").and_then(Value::as_i64).unwrap_or(0)
}

impl Draft {
    fn of(rows: &Rows, order: Column) -> Draft {
        Draft { order, rows: rows.to_vec(), sorted: rows.len(), ids: None, index: Vec::new() }
    }

    /// Adds a row the window does not hold yet.
    fn insert(&mut self, r: &Arc<Row>) {
        // A window loaded after this commit already holds the row. (A scan: a window holds a few dozen rows
        // and takes a row or two per batch; hashing its ids cost more.)
        let rows = &self.rows;
        let ids = self.ids.get_or_insert_with(|| rows.iter().map(|r| id_of(r)).collect());
        let id = id_of(r);
        if ids.contains(&id) {
            return;
        }
        ids.push(id);
        for (col, map) in &mut self.index {
            if let Some(v) = field(r, col.0, col.1) {
                map.entry(key_text(v)).or_default().push(self.rows.len());
            }
        }
        self.rows.push(r.clone());
    }

    /// The index of `key`'s column, built on first use.
    fn indexed(&mut self, key: Column) -> usize {
        if let Some(at) = self.index.iter().position(|(col, _)| *col == key) {
            return at;
        }
        let mut map: HashMap<String, Vec<usize>> = HashMap::with_capacity(self.rows.len());
        for (i, r) in self.rows.iter().enumerate() {
            if let Some(v) = field(r, key.0, key.1) {
                map.entry(key_text(v)).or_default().push(i);
            }
        }
        self.index.push((key, map));
        self.index.len() - 1
    }

    /// Applies `changes` to the rows whose `key` column equals `value`.
    fn update(&mut self, key: Column, value: &Value, changes: &Changes) {
        let at = self.indexed(key);
        let Some(hits) = self.index[at].1.get(&key_text(value)).cloned() else { return };
        for i in hits {
            let row = Arc::make_mut(&mut self.rows[i]);
            let before: Vec<Option<Value>> =
                self.index.iter().map(|(col, _)| field(row, col.0, col.1).cloned()).collect();
            changes.apply_to(row);
            // A changed key column (an id rewrite) moves the row in that column's index.
            for ((col, map), old) in self.index.iter_mut().zip(before) {
                let new = field(row, col.0, col.1).cloned();
                if new == old {
                    continue;
                }
                if let Some(v) = old.and_then(|o| map.get_mut(&key_text(&o))) {
                    v.retain(|&j| j != i);
                }
                if let Some(n) = new {
                    map.entry(key_text(&n)).or_default().push(i);
                }
            }
        }
    }

    /// The latest `window_rows` rows in the window's order (a full window holds exactly the latest rows;
    /// one that held the whole partition still does): the inserted rows, sorted, merged into the rows
    /// already in order (their places computed only while an inserted row remains to be placed).
    fn finish(self, window_rows: usize) -> Rows {
        let order = self.order;
        let (old, new) = self.rows.split_at(self.sorted);
        let mut new: Vec<(Place, &Arc<Row>)> = new.iter().map(|r| (Place::of(r, order), r)).collect();
        new.sort_by(|a, b| a.0.cmp(&b.0));
        let mut new = new.into_iter().peekable();
        let mut out = Vec::with_capacity(window_rows.min(self.rows.len()));
        for row in old {
            if new.peek().is_some() {
                let place = Place::of(row, order);
                while let Some((_, r)) = new.next_if(|(p, _)| p.cmp(&place).is_lt()) {
                    out.push(r.clone());
                }
            }
            out.push(row.clone());
        }
        out.extend(new.map(|(_, r)| r.clone()));
        out.truncate(window_rows);
        out.into_iter().collect()
    }
}

impl Cache {
    /// Notes that reads of `model` use windows ordered by column `order` (so commits carry them).
    pub(super) fn note_window(&self, model: usize, order: usize) {
        if order < 64 && models()[model].col(order).kind != Kind::Text {
            self.inner.window_orders[model].fetch_or(1 << order, Ordering::Relaxed);
        }
    }

    /// Takes, before the bump, the cached windows of the partitions `touched` names that `edits` can carry.
    pub(super) async fn take_windows(&self, touched: &[Touched], edits: &WindowEdits) -> Vec<Carried> {
        let mut out = Vec::new();
        let inner = &self.inner;
        for t in touched {
            let (Reach::Partitions(values), Some(p)) = (&t.reach, t.model.partition) else { continue };
            let m = model_index(t.model);
            let Some(es) = edits.of(m) else { continue };
            let Some(prepared) = Prepared::new(t.model, es.into()) else { continue };
            let prepared = Arc::new(prepared);
            let orders = inner.window_orders[m].load(Ordering::Relaxed);
            for order in (0..64).filter(|o| orders & (1 << o) != 0) {
                for v in values {
                    let Ok(cell) = Cell::from_json(t.model, t.model.col(p), v) else { continue };
                    let sel = Select {
                        model: t.model,
                        filter: Filter::all().and_eq(p, cell),
                        order: vec![(order, true)],
                        limit: Some(inner.window_rows),
                        offset: 0,
                    };
                    let at = self.taken(sel);
                    if let Some(e) = self.cached(at.old_key).await {
                        let per_row = e.bytes_per_row();
                        out.push(Carried { at, rows: e.rows, edits: prepared.clone(), order, per_row });
                    }
                }
            }
        }
        out
    }

    /// After the bump: installs each taken window, edited, under the new generations when they moved by
    /// exactly this bump, and drops the superseded entry either way.
    pub(super) async fn install_windows(&self, carried: Vec<Carried>) {
        let window_rows = self.inner.window_rows as usize;
        for c in carried {
            self.reinstall(&c.at, true, c.per_row, || c.edited(window_rows)).await;
        }
    }
}
