//! Generations: the counters that make invalidation exact and O(1). Every cache key embeds the generations it
//! was read under; a committed write bumps them, so every entry it could have made stale becomes unreachable
//! (and ages out). Per model there is `all` (bumped by writes whose reach is unknown), `any` (bumped by
//! every write) and 4096 partition stripes (bumped by writes to a chat, person, …; see `partition.rs`).
//! With Redis these counters mirror Redis hashes shared by every process.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::core::exec::Select;
use crate::optimization::partition::{Reach, Touched, read_stripe, stripe_of};

const FIELDS: usize = 2 + STRIPES;
use crate::core::registry::MODEL_COUNT as MODELS;
use crate::optimization::partition::STRIPES;

/// One counter of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Field {
    /// Bumped by writes whose partitions are unknown: invalidates every entry of the model.
    All,
    /// Bumped by every write: invalidates entries not scoped to one partition.
    Any,
    /// Bumped by writes to a partition hashing to this stripe.
    Stripe(usize),
}

impl Field {
    /// The counter's position among a model's counters (also its tag in stable hashes).
    pub(crate) fn index(self) -> usize {
        match self {
            Field::All => 0,
            Field::Any => 1,
            Field::Stripe(s) => 2 + s % STRIPES,
        }
    }

    /// The Redis hash field name.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // the Redis tier's names and resync
    pub(crate) fn name(self) -> String {
        match self {
            Field::All => "all".into(),
            Field::Any => "any".into(),
            Field::Stripe(s) => format!("s{s}"),
        }
    }

    /// Parses a Redis hash field name.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))] // the Redis tier's names and resync
    pub(crate) fn parse(s: &str) -> Option<Field> {
        match s {
            "all" => Some(Field::All),
            "any" => Some(Field::Any),
            _ => s.strip_prefix('s')?.parse().ok().filter(|&n| n < STRIPES).map(Field::Stripe),
        }
    }
}

/// The counters of every model.
#[derive(Debug)]
pub(crate) struct Generations {
    counters: Box<[AtomicU64]>,
}

impl Default for Generations {
    fn default() -> Self {
        Self { counters: (0..MODELS * FIELDS).map(|_| AtomicU64::new(0)).collect() }
    }
}

/// The generation fields a committed write to `touched` bumps.
pub(crate) fn fields_of(touched: &Touched) -> Vec<Field> {
    match &touched.reach {
        Reach::Everything => vec![Field::All],
        Reach::Partitions(vs) => {
            let mut f: Vec<Field> = vs.iter().map(|v| Field::Stripe(stripe_of(v))).collect();
            f.sort_by_key(|f| f.index());
            f.dedup();
            f.push(Field::Any);
            f
        }
    }
}

/// The generation field a read depends on besides `all`.
pub(crate) fn read_field(sel: &Select) -> Field {
    read_stripe(sel).map_or(Field::Any, Field::Stripe)
}

impl Generations {
    fn at(&self, model: usize, field: Field) -> &AtomicU64 {
        &self.counters[model * FIELDS + field.index()]
    }

    /// The current value.
    pub(crate) fn get(&self, model: usize, field: Field) -> u64 {
        self.at(model, field).load(Ordering::Acquire)
    }

    /// Bumps a counter locally; returns the new value.
    pub(crate) fn bump(&self, model: usize, field: Field) -> u64 {
        self.at(model, field).fetch_add(1, Ordering::AcqRel) + 1
    }

    /// Raises a counter to at least `v` (a value learned from Redis); returns its value before.
    pub(crate) fn raise(&self, model: usize, field: Field, v: u64) -> u64 {
        self.at(model, field).fetch_max(v, Ordering::AcqRel)
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
        let _ = g.raise(3, Field::Stripe(7), 5);
        assert_eq!(g.raise(3, Field::Stripe(7), 2), 5, "raise answers the value before");
        assert_eq!(g.get(3, Field::Stripe(7)), 5);
        assert_eq!(g.get(4, Field::Stripe(7)), 0);
    }
}
