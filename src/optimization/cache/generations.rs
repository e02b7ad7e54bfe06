//! Generations: the counters that make invalidation exact and O(1). Every cache key embeds the generations it
//! was read under; a committed write bumps them, so every entry it could have made stale becomes unreachable
//! (and ages out). Per model there is `all` (bumped by writes whose reach is unknown), `any` (bumped by
//! every write) and 4096 partition stripes (bumped by writes to a chat, person, …; see `policy.rs`).
//! With Redis these counters mirror Redis hashes shared by every process.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::Value;

/// Partition stripes per model. Partitions sharing a stripe invalidate each other's entries: with 256
/// stripes, 200 chats collided so often that every batch orphaned a dozen chats' recent-history windows
/// (about 185 KB each) and the churn evicted live entries; with 4096 about 5 % of 200 chats share one.
pub const STRIPES: usize = 4096;
const FIELDS: usize = 2 + STRIPES;
const MODELS: usize = 25;

/// One counter of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// Bumped by writes whose partitions are unknown: invalidates every entry of the model.
    All,
    /// Bumped by every write: invalidates entries not scoped to one partition.
    Any,
    /// Bumped by writes to a partition hashing to this stripe.
    Stripe(usize),
}

impl Field {
    fn index(self) -> usize {
        match self {
            Field::All => 0,
            Field::Any => 1,
            Field::Stripe(s) => 2 + s % STRIPES,
        }
    }

    /// The Redis hash field name.
    pub fn name(self) -> String {
        match self {
            Field::All => "all".into(),
            Field::Any => "any".into(),
            Field::Stripe(s) => format!("s{s}"),
        }
    }

    /// Parses a Redis hash field name.
    pub fn parse(s: &str) -> Option<Field> {
        match s {
            "all" => Some(Field::All),
            "any" => Some(Field::Any),
            _ => s.strip_prefix('s')?.parse().ok().filter(|&n| n < STRIPES).map(Field::Stripe),
        }
    }
}

/// The stripe of a partition value.
pub fn stripe_of(value: &Value) -> usize {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    match value {
        Value::String(s) => s.hash(&mut h),
        other => other.to_string().hash(&mut h),
    }
    (h.finish() % STRIPES as u64) as usize
}

/// The counters of all 25 models.
#[derive(Debug)]
pub struct Generations {
    counters: Box<[AtomicU64]>,
}

impl Default for Generations {
    fn default() -> Self {
        Self { counters: (0..MODELS * FIELDS).map(|_| AtomicU64::new(0)).collect() }
    }
}

impl Generations {
    fn at(&self, model: usize, field: Field) -> &AtomicU64 {
        &self.counters[model * FIELDS + field.index()]
    }

    /// The current value.
    pub fn get(&self, model: usize, field: Field) -> u64 {
        self.at(model, field).load(Ordering::Acquire)
    }

    /// Bumps a counter locally; returns the new value.
    pub fn bump(&self, model: usize, field: Field) -> u64 {
        self.at(model, field).fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Raises a counter to at least `v` (a value learned from Redis).
    pub fn raise(&self, model: usize, field: Field, v: u64) {
        self.at(model, field).fetch_max(v, Ordering::AcqRel);
    }

    /// Sets a counter (a resync from Redis, after dropping every local entry).
    pub fn set(&self, model: usize, field: Field, v: u64) {
        self.at(model, field).store(v, Ordering::Release);
    }

    /// Resets every counter of `model` to 0 before a resync.
    pub fn reset_model(&self, model: usize) {
        for i in 0..FIELDS {
            self.counters[model * FIELDS + i].store(0, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_and_counters_move() {
        for f in [Field::All, Field::Any, Field::Stripe(0), Field::Stripe(STRIPES - 1)] {
            assert_eq!(Field::parse(&f.name()), Some(f));
        }
        assert_eq!(Field::parse(&format!("s{STRIPES}")), None);
        let g = Generations::default();
        assert_eq!(g.bump(3, Field::Stripe(7)), 1);
        g.raise(3, Field::Stripe(7), 5);
        g.raise(3, Field::Stripe(7), 2);
        assert_eq!(g.get(3, Field::Stripe(7)), 5);
        assert_eq!(g.get(4, Field::Stripe(7)), 0);
        assert_eq!(stripe_of(&Value::String("a".into())), stripe_of(&Value::String("a".into())));
    }
}
