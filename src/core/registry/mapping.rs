//! The definitions of the model mapping (kinds, defaults, columns, models, priorities, preload roles) and
//! the lookups by name, index and table. The data itself is `models.rs`, generated.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::utils::error::{Error, Result};

/// How urgent a write is; every model has a default (its annotation). Lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Must not wait behind anything (e.g. a permission change).
    Critical = 0,
    /// User-visible state (e.g. the incoming message).
    High = 1,
    /// Bookkeeping (the default).
    #[default]
    Normal = 2,
    /// Statistics and counters.
    Low = 3,
}

impl Priority {
    /// All priorities, most urgent first.
    pub const ALL: [Priority; 4] = [Priority::Critical, Priority::High, Priority::Normal, Priority::Low];

    /// The metric label.
    pub fn label(self) -> &'static str {
        match self {
            Priority::Critical => "critical",
            Priority::High => "high",
            Priority::Normal => "normal",
            Priority::Low => "low",
        }
    }
}

/// A model's part in warming the most active chats (the preloader's recipe).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PreloadRole {
    /// Its partitions' recent-history windows are warmed, and its partitions ranked by latest activity.
    History,
    /// The row keyed by the chat (partition) value.
    Chat,
    /// The people who wrote in the warmed windows.
    Speaker,
    /// Their relationships.
    Relationship,
}

/// The storage kind of a column, which decides JSON validation and database encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The auto-increment integer primary key `id`.
    Id,
    /// `INTEGER` (32-bit on PostgreSQL/MySQL, so values are checked against the i32 range everywhere).
    Int,
    /// `FLOAT`: an 8-byte float (double precision on every backend).
    Float,
    /// `BOOLEAN`: 0/1 on SQLite, `BOOLEAN` elsewhere.
    Bool,
    /// `TEXT` or `VARCHAR(n)`.
    Text,
    /// `DATETIME`: a naive timestamp; text `YYYY-MM-DD HH:MM:SS.ffffff` in rows and on SQLite.
    DateTime,
}

impl Kind {
    /// What a JSON value for this kind must look like (for error messages).
    pub fn expected(self) -> &'static str {
        match self {
            Kind::Id | Kind::Int => "an integer",
            Kind::Float => "a number",
            Kind::Bool => "a boolean (true/false)",
            Kind::Text => "a string",
            Kind::DateTime => "a datetime string `YYYY-MM-DD HH:MM:SS[.ffffff]` (years 1000–9999, seconds 00–59)",
        }
    }
}

/// The value the layer fills in when a create omits a column.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DefaultValue {
    /// No default: NOT NULL columns are then required, nullable ones become NULL.
    None,
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A boolean.
    Bool(bool),
    /// A string.
    Text(&'static str),
    /// Now, naive local time.
    NowLocal,
    /// Now, naive UTC time.
    NowUtc,
    /// Now, epoch seconds.
    NowEpoch,
    /// Now, local time as the text of a `DATETIME` (the `online_time.timestamp` quirk).
    NowLocalText,
}

/// One column of a model.
#[derive(Debug)]
pub struct ColumnDef {
    /// Column name (as in the database and in JSON rows).
    pub name: &'static str,
    /// Storage kind.
    pub kind: Kind,
    /// Whether NULL is allowed.
    pub nullable: bool,
    /// Client-side default on create.
    pub default: DefaultValue,
    /// Whether the column carries a unique key.
    pub unique: bool,
    /// `VARCHAR(n)` length on PostgreSQL/MySQL, enforced on every backend.
    pub max_len: Option<u32>,
}

impl ColumnDef {
    /// A required column: NOT NULL, no default, not the primary key.
    pub fn is_required(&self) -> bool {
        !self.nullable && self.default == DefaultValue::None && self.kind != Kind::Id
    }
}

/// A natural key callers look rows up by.
#[derive(Debug)]
pub struct Key {
    /// The key column.
    pub column: &'static str,
    /// Whether the database enforces uniqueness.
    pub unique: bool,
}

/// One model of the mapping.
#[derive(Debug)]
pub struct ModelDef {
    /// The model name (the `MODEL_MAPPING` key), e.g. `Messages`.
    pub name: &'static str,
    /// The table name, e.g. `messages`.
    pub table: &'static str,
    /// Columns in table order; `columns[0]` is `id`.
    pub columns: &'static [ColumnDef],
    /// Natural keys.
    pub keys: &'static [Key],
    /// Columns set to now (local) on every update unless the update sets them.
    pub touch_on_update: &'static [&'static str],
    /// The position in the mapping (a compact id, `0..models().len()`).
    pub index: usize,
    /// The column whose equality scopes reads and writes to one partition (a chat, a person, …).
    pub partition: Option<usize>,
    /// The time column that, after the partition, orders a multi-row insert (index order).
    pub order: Option<usize>,
    /// The default write priority.
    pub priority: Priority,
    /// The first insert into a partition warms that partition's cache entries in the background.
    pub warm_on_insert: bool,
    /// The part in warming the most active chats, if any.
    pub preload: Option<PreloadRole>,
}

impl PartialEq for ModelDef {
    /// Models are unique by name (they are static).
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for ModelDef {}

impl std::hash::Hash for ModelDef {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.name.hash(h);
    }
}

impl ModelDef {
    /// Resolves a field name to its column index.
    ///
    /// # Errors
    /// [`Error::UnknownField`] naming the model's columns.
    pub fn column_index(&self, field: &str) -> Result<usize> {
        self.columns.iter().position(|c| c.name == field).ok_or_else(|| Error::UnknownField {
            model: self.name.to_owned(),
            field: field.to_owned(),
            known: self.columns.iter().map(|c| c.name).collect::<Vec<_>>().join(", "),
        })
    }

    /// The column at `idx`.
    pub fn col(&self, idx: usize) -> &'static ColumnDef {
        &self.columns[idx]
    }

    /// Whether `field` carries a unique key.
    pub fn is_unique(&self, field: &str) -> bool {
        self.columns.iter().any(|c| c.name == field && c.unique)
    }
}

/// Every model, in the order of the schema contract.
pub fn models() -> &'static [ModelDef] {
    &super::models::MODELS
}

/// Looks a model up by its (case-sensitive) name.
///
/// # Errors
/// [`Error::UnknownModel`] listing the known names.
pub fn model(name: &str) -> Result<&'static ModelDef> {
    models().iter().find(|m| m.name == name).ok_or_else(|| Error::UnknownModel {
        name: name.to_owned(),
        known: models().iter().map(|m| m.name).collect::<Vec<_>>().join(", "),
    })
}

/// The position of `model` in the mapping, a compact id.
pub(crate) fn model_index(model: &ModelDef) -> usize {
    model.index
}

/// The model holding a preload role (every role has exactly one: the generator checks it).
///
/// # Errors
/// [`Error::Internal`] if none does (a generator bug).
pub(crate) fn preload_model(role: PreloadRole) -> Result<&'static ModelDef> {
    models()
        .iter()
        .find(|m| m.preload == Some(role))
        .ok_or_else(|| Error::internal(format!("no model has the preload role {role:?}")))
}

/// Looks a model up by its table name.
pub(crate) fn model_by_table(table: &str) -> Option<&'static ModelDef> {
    models().iter().find(|m| m.table == table)
}

/// The model mapping: model name → model definition (the Python `MODEL_MAPPING`).
pub static MODEL_MAPPING: LazyLock<BTreeMap<&'static str, &'static ModelDef>> =
    LazyLock::new(|| models().iter().map(|m| (m.name, m)).collect());

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_has_25_models_and_275_columns() {
        assert_eq!(MODEL_MAPPING.len(), 25);
        assert_eq!(crate::core::registry::MODEL_COUNT, 25);
        assert_eq!(models().iter().map(|m| m.columns.len()).sum::<usize>(), 275);
        assert!(models().iter().all(|m| m.columns[0].name == "id" && m.columns[0].kind == Kind::Id));
    }

    /// The annotations of `docs/schema.md` name existing models and columns, and the generated registry
    /// matches them (run `python3 scripts/gen_schema.py` after editing them).
    #[test]
    fn annotations_name_real_models_and_columns_and_are_generated() {
        let doc = include_str!("../../../docs/schema.md");
        let section = doc.split("\n## botdb annotations\n").nth(1).expect("the annotation section");
        let mut rows = 0;
        for line in section.lines().filter(|l| l.starts_with("| ") && !l.starts_with("| model")) {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            let [name, part, order, prio, on_insert, _preload] = cells[..] else { panic!("bad row {line}") };
            let m = model(name).unwrap_or_else(|e| panic!("annotation names a model that does not exist: {e}"));
            let col = |c: &str| (!c.is_empty()).then(|| m.column_index(c).unwrap_or_else(|e| panic!("{e}")));
            assert_eq!(m.partition, col(part), "{name}: partition (regenerate models.rs)");
            assert_eq!(m.order, col(order), "{name}: order");
            assert_eq!(m.priority.label(), prio, "{name}: priority");
            assert_eq!(m.warm_on_insert, !on_insert.is_empty(), "{name}: on insert");
            rows += 1;
        }
        assert!(rows > 0);
        assert!(models().iter().enumerate().all(|(i, m)| m.index == i));
        for role in [PreloadRole::History, PreloadRole::Chat, PreloadRole::Speaker, PreloadRole::Relationship] {
            assert!(preload_model(role).unwrap().partition.is_some());
        }
    }

    #[test]
    fn lookups_fail_with_what_to_fix() {
        let e = model("messages").unwrap_err().to_string();
        assert!(e.contains("unknown model `messages`") && e.contains("Messages"), "{e}");
        let m = model("Messages").unwrap();
        let e = m.column_index("chat_idd").unwrap_err().to_string();
        assert!(e.contains("`chat_idd`") && e.contains("chat_id"), "{e}");
        assert!(model("ChatStreams").unwrap().is_unique("stream_id"));
        assert!(!m.is_unique("message_id"));
    }
}
