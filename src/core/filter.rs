//! The filter language of `spec/api.md`: a JSON object whose keys are AND-ed; each value is either a
//! scalar (`=`, or `IS NULL` for `null`) or an object of operators `$gt $gte $lt $lte $ne $in $nin`, and on
//! text columns `$like` (`%` any run, `_` one character, `\` escapes; case-sensitive on every backend) and
//! `$contains` (a substring, taken literally). Besides fields, the keys `$or` (an array of filters, at least
//! one holds), `$and` (an array of filters, all hold) and `$not` (a filter that does not hold) nest, at most
//! 16 levels, with SQL's three-valued logic on every backend (`{"$not": {"x": 1}}` does not match a row whose
//! `x` is NULL).
//! A parsed [`Filter`] is canonical (conditions sorted) so equal filters give equal cache keys.

use sea_orm::DbBackend;
use sea_orm::sea_query::{Alias, Cond, Condition, Expr, ExprTrait, LikeExpr};
use serde_json::Value;

use crate::core::registry::ModelDef;
use crate::core::value::Cell;
use crate::utils::error::{Error, Result};
use crate::utils::stable_hash::{StableHash, StableHasher};

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `=`
    Eq,
    /// `<>` (`$ne`)
    Ne,
    /// `>` (`$gt`)
    Gt,
    /// `>=` (`$gte`)
    Gte,
    /// `<` (`$lt`)
    Lt,
    /// `<=` (`$lte`)
    Lte,
    /// `IN` (`$in`)
    In,
    /// `NOT IN` (`$nin`)
    Nin,
    /// `IS NULL` (`null`)
    IsNull,
    /// `IS NOT NULL` (`$ne: null`)
    IsNotNull,
    /// A case-sensitive pattern: `%` any run of characters, `_` one character, `\` escapes the next
    /// (`$like`; `$contains` is a `$like` of `%text%` with `text` escaped). Text columns only.
    Like,
}

impl Op {
    fn parse(op: &str) -> Option<Op> {
        Some(match op {
            "$gt" => Op::Gt,
            "$gte" => Op::Gte,
            "$lt" => Op::Lt,
            "$lte" => Op::Lte,
            "$ne" => Op::Ne,
            "$in" => Op::In,
            "$nin" => Op::Nin,
            "$like" | "$contains" => Op::Like,
            _ => return None,
        })
    }
}

impl Op {
    /// The operator's fixed tag in stable hashes.
    fn tag(self) -> u8 {
        match self {
            Op::Eq => 0,
            Op::Ne => 1,
            Op::Gt => 2,
            Op::Gte => 3,
            Op::Lt => 4,
            Op::Lte => 5,
            Op::In => 6,
            Op::Nin => 7,
            Op::IsNull => 8,
            Op::IsNotNull => 9,
            Op::Like => 10,
        }
    }
}

/// One condition on one column.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Predicate {
    /// Column index in the model.
    pub column: usize,
    /// Operator.
    pub op: Op,
    /// Operands: one for comparisons, any number for `In`/`Nin`, none for the NULL tests.
    pub values: Vec<Cell>,
}

/// A nested part of a filter, AND-ed with its conditions.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Node {
    /// At least one of these filters holds (`$or`).
    Any(Vec<Filter>),
    /// This filter does not hold (`$not`).
    Not(Box<Filter>),
}

/// A validated filter: conditions AND-ed, sorted by column and operator, and AND-ed with its nested parts.
/// The cache's and the batch planner's shortcuts (windows, point entries, grouped updates, a session's
/// overlay) take only flat filters ([`Filter::is_flat`]); nested ones are answered by the database.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Filter {
    /// The conditions.
    pub conds: Vec<Predicate>,
    /// `$or` and `$not` parts (an `$and` is merged into its parent).
    pub nested: Vec<Node>,
}

/// How deep `$or`/`$and`/`$not` may nest.
pub(crate) const MAX_DEPTH: usize = 16;

impl StableHash for Filter {
    fn stable_hash(&self, h: &mut StableHasher) {
        h.u64(self.conds.len() as u64);
        for c in &self.conds {
            h.u64(c.column as u64).u8(c.op.tag()).u64(c.values.len() as u64);
            for v in &c.values {
                h.add(v);
            }
        }
        // (Nothing more for a flat filter: its hash stays what it was before nesting existed.)
        for n in &self.nested {
            match n {
                Node::Any(fs) => {
                    h.u8(0xA0).u64(fs.len() as u64);
                    for f in fs {
                        f.stable_hash(h);
                    }
                }
                Node::Not(f) => {
                    h.u8(0xA1);
                    f.stable_hash(h);
                }
            }
        }
    }
}

/// The most values a filter may hold: every backend binds them in one statement (SQLite's limit, 32,766
/// parameters, is the smallest; the rest leaves room for the statement's other parameters).
pub(crate) const MAX_FILTER_VALUES: usize = 30_000;

impl Filter {
    /// The highest column index a condition names (none for the empty filter).
    pub fn max_column(&self) -> Option<usize> {
        let nested = self.nested.iter().flat_map(|n| match n {
            Node::Any(fs) => fs.iter().filter_map(Filter::max_column).max(),
            Node::Not(f) => f.max_column(),
        });
        self.conds.iter().map(|c| c.column).chain(nested).max()
    }

    /// Only AND-ed conditions (no `$or`, no `$not`).
    pub fn is_flat(&self) -> bool {
        self.nested.is_empty()
    }

    fn value_count(&self) -> usize {
        let nested: usize = self
            .nested
            .iter()
            .map(|n| match n {
                Node::Any(fs) => fs.iter().map(Filter::value_count).sum(),
                Node::Not(f) => f.value_count(),
            })
            .sum();
        self.conds.iter().map(|c| c.values.len()).sum::<usize>() + nested
    }

    /// The empty filter (every row).
    pub fn all() -> Filter {
        Filter::default()
    }

    /// Parses a JSON filter for `model`. `null` means no filter.
    ///
    /// # Errors
    /// Unknown field or operator, a value that does not fit the column, a non-array `$in`, `null` inside
    /// `$in`/`$nin`, a comparison with `null`, an empty operator object, a filter that is not an object.
    pub fn parse(model: &'static ModelDef, filter: &Value) -> Result<Filter> {
        let parsed = Filter::parse_at(model, filter, 0)?;
        let values = parsed.value_count();
        if values > MAX_FILTER_VALUES {
            return Err(Error::InvalidRequest(format!(
                "the filter holds {values} values; at most {MAX_FILTER_VALUES} fit one statement on every backend \
                 (SQLite binds at most 32,766 parameters): split the `$in`/`$nin` list"
            )));
        }
        Ok(parsed)
    }

    fn parse_at(model: &'static ModelDef, filter: &Value, depth: usize) -> Result<Filter> {
        let obj = match filter {
            Value::Null => return Ok(Filter::all()),
            Value::Object(o) => o,
            other => {
                return Err(Error::InvalidRequest(format!(
                    "a filter must be a JSON object of field conditions, got {}",
                    json_kind(other)
                )));
            }
        };
        let (mut conds, mut nested) = (Vec::with_capacity(obj.len()), Vec::new());
        for (field, v) in obj {
            if let Some(kind) = field.strip_prefix('$').filter(|k| matches!(*k, "or" | "and" | "not")) {
                if depth >= MAX_DEPTH {
                    return Err(Error::InvalidRequest(format!(
                        "`$or`/`$and`/`$not` nest at most {MAX_DEPTH} levels deep on `{}`",
                        model.name
                    )));
                }
                let sub = |v: &Value| -> Result<Filter> {
                    match v {
                        Value::Object(o) if !o.is_empty() => Filter::parse_at(model, v, depth + 1),
                        other => Err(Error::InvalidRequest(format!(
                            "`${kind}` on `{}` takes non-empty filter objects, got {}",
                            model.name,
                            if other.is_object() { "an empty object" } else { json_kind(other) }
                        ))),
                    }
                };
                match (kind, v) {
                    ("not", v) => nested.push(Node::Not(Box::new(sub(v)?))),
                    (_, Value::Array(items)) if !items.is_empty() => {
                        let subs = items.iter().map(sub).collect::<Result<Vec<_>>>()?;
                        if kind == "or" {
                            nested.push(Node::Any(subs));
                        } else {
                            for f in subs {
                                conds.extend(f.conds);
                                nested.extend(f.nested);
                            }
                        }
                    }
                    (_, other) => {
                        return Err(Error::InvalidRequest(format!(
                            "`${kind}` on `{}` takes a non-empty array of filter objects, got {}",
                            model.name,
                            if other.is_array() { "an empty array" } else { json_kind(other) }
                        )));
                    }
                }
                continue;
            }
            let column = model.column_index(field)?;
            let col = model.col(column);
            match v {
                Value::Null => conds.push(Predicate { column, op: Op::IsNull, values: vec![] }),
                Value::Object(ops) => {
                    if ops.is_empty() {
                        return Err(Error::InvalidRequest(format!(
                            "empty operator object for `{}.{field}`; use e.g. {{\"$gt\": 1}}",
                            model.name
                        )));
                    }
                    for (op_name, operand) in ops {
                        let op = Op::parse(op_name).ok_or_else(|| Error::UnknownOperator {
                            model: model.name.into(),
                            field: field.clone(),
                            op: op_name.clone(),
                        })?;
                        conds.push(parse_operand(model, column, field, op, op_name, operand)?);
                    }
                }
                scalar => {
                    conds.push(Predicate { column, op: Op::Eq, values: vec![Cell::from_json(model, col, scalar)?] })
                }
            }
        }
        conds.sort_by_key(|c| (c.column, c.op));
        Ok(Filter { conds, nested })
    }

    /// Adds `column = value` (used for keys and ids).
    pub fn and_eq(mut self, column: usize, value: Cell) -> Filter {
        self.conds.push(Predicate { column, op: Op::Eq, values: vec![value] });
        self.conds.sort_by_key(|c| (c.column, c.op));
        self
    }

    /// The single value of an equality on `column`, if the filter has exactly one such condition.
    pub fn eq_value(&self, column: usize) -> Option<&Cell> {
        let mut it = self.conds.iter().filter(|c| c.column == column && c.op == Op::Eq);
        match (it.next(), it.next()) {
            (Some(c), None) => c.values.first(),
            _ => None,
        }
    }

    /// The SQL condition for `backend`. Column names come from the registry, never from the caller.
    pub fn to_condition(&self, model: &ModelDef, backend: DbBackend) -> Condition {
        let mut all = Cond::all();
        for c in &self.conds {
            let col = model.col(c.column);
            let e = Expr::col(Alias::new(col.name));
            let v = |i: usize| c.values[i].to_sql(col.kind, backend);
            let expr = match c.op {
                Op::Eq => e.eq(v(0)),
                Op::Ne => e.ne(v(0)),
                Op::Gt => e.gt(v(0)),
                Op::Gte => e.gte(v(0)),
                Op::Lt => e.lt(v(0)),
                Op::Lte => e.lte(v(0)),
                // An empty `$in` matches nothing, an empty `$nin` everything.
                Op::In if c.values.is_empty() => Expr::val(1).eq(0),
                // (Rendered, not skipped: inside `$or` or `$not` an omitted condition would change the answer.)
                Op::Nin if c.values.is_empty() => Expr::val(1).eq(1),
                Op::In => e.is_in(c.values.iter().map(|x| x.to_sql(col.kind, backend))),
                Op::Nin => e.is_not_in(c.values.iter().map(|x| x.to_sql(col.kind, backend))),
                Op::IsNull => e.is_null(),
                Op::IsNotNull => e.is_not_null(),
                Op::Like => {
                    let Cell::Text(pattern) = &c.values[0] else { continue };
                    match backend {
                        // SQLite's LIKE ignores ASCII case: GLOB with the pattern translated is exact.
                        DbBackend::Sqlite => {
                            Expr::cust_with_values(format!("\"{}\" GLOB ?", col.name), [glob_of(pattern)])
                        }
                        // PostgreSQL's LIKE is exact; MySQL's under the tables' utf8mb4_bin collation.
                        _ => e.like(LikeExpr::new(pattern.clone()).escape('\\')),
                    }
                }
            };
            all = all.add(expr);
        }
        for n in &self.nested {
            all = all.add(match n {
                Node::Any(fs) => fs.iter().fold(Cond::any(), |any, f| any.add(f.to_condition(model, backend))),
                Node::Not(f) => f.to_condition(model, backend).not(),
            });
        }
        all
    }
}

/// A `$like` pattern as SQLite's GLOB spells it: `%` → `*`, `_` → `?`, escaped and GLOB-special characters
/// as one-character classes.
fn glob_of(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len() + 4);
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '%' => out.push('*'),
            '_' => out.push('?'),
            '\\' => match chars.next() {
                Some(lit) => push_literal(&mut out, lit),
                None => push_literal(&mut out, '\\'),
            },
            lit => push_literal(&mut out, lit),
        }
    }
    out
}

fn push_literal(out: &mut String, c: char) {
    match c {
        '*' | '?' | '[' => {
            out.push('[');
            out.push(c);
            out.push(']');
        }
        c => out.push(c),
    }
}

/// `text` as a `$like` pattern matching itself.
fn like_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    for c in text.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A `$like`/`$contains` condition: a string operand on a text column; a pattern may not end with its escape.
fn like_operand(model: &ModelDef, column: usize, field: &str, op_name: &str, operand: &Value) -> Result<Predicate> {
    let col = model.col(column);
    if col.kind != crate::core::registry::Kind::Text {
        return Err(Error::InvalidRequest(format!(
            "`{op_name}` applies to text columns; `{}.{field}` holds {}",
            model.name,
            col.kind.expected()
        )));
    }
    let Value::String(s) = operand else {
        return Err(Error::InvalidValue {
            model: model.name.into(),
            field: field.into(),
            expected: format!("a string pattern for `{op_name}`"),
            got: json_kind(operand).into(),
        });
    };
    let pattern = if op_name == "$contains" { format!("%{}%", like_escaped(s)) } else { s.clone() };
    let dangling = pattern.chars().rev().take_while(|c| *c == '\\').count() % 2 == 1;
    if dangling {
        return Err(Error::InvalidRequest(format!(
            "the `$like` pattern on `{}.{field}` ends with its escape character `\\`; write `\\\\` for a backslash",
            model.name
        )));
    }
    Cell::from_json(model, col, &Value::String(pattern.clone()))?;
    Ok(Predicate { column, op: Op::Like, values: vec![Cell::Text(pattern)] })
}

fn parse_operand(
    model: &'static ModelDef,
    column: usize,
    field: &str,
    op: Op,
    op_name: &str,
    operand: &Value,
) -> Result<Predicate> {
    let col = model.col(column);
    if op == Op::Like {
        return like_operand(model, column, field, op_name, operand);
    }
    match (op, operand) {
        (Op::Ne, Value::Null) => Ok(Predicate { column, op: Op::IsNotNull, values: vec![] }),
        (Op::In | Op::Nin, Value::Array(items)) => {
            let mut values = Vec::with_capacity(items.len());
            for item in items {
                if item.is_null() {
                    return Err(Error::InvalidRequest(format!(
                        "`{op_name}` on `{}.{field}` contains null; test NULL with {{\"{field}\": null}} or \
                         {{\"$ne\": null}}",
                        model.name
                    )));
                }
                values.push(Cell::from_json(model, col, item)?);
            }
            Ok(Predicate { column, op, values })
        }
        (Op::In | Op::Nin, other) => Err(Error::InvalidRequest(format!(
            "`{op_name}` on `{}.{field}` takes an array, got {}",
            model.name,
            json_kind(other)
        ))),
        (_, Value::Null) => Err(Error::InvalidRequest(format!(
            "`{op_name}: null` on `{}.{field}` compares with NULL, which matches nothing; use {{\"{field}\": null}} \
             or {{\"$ne\": null}}",
            model.name
        ))),
        (_, Value::Array(_) | Value::Object(_)) => Err(Error::InvalidValue {
            model: model.name.into(),
            field: field.into(),
            expected: col.kind.expected().into(),
            got: json_kind(operand).into(),
        }),
        (_, scalar) => Ok(Predicate { column, op, values: vec![Cell::from_json(model, col, scalar)?] }),
    }
}

/// A short name of a JSON value's type.
pub(crate) fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::model;
    use serde_json::json;

    #[test]
    fn parses_and_sorts() {
        let m = model("Messages").unwrap();
        let a = Filter::parse(m, &json!({"time": {"$lt": 5, "$gt": 1}, "chat_id": "c"})).unwrap();
        let b = Filter::parse(m, &json!({"chat_id": "c", "time": {"$gt": 1, "$lt": 5}})).unwrap();
        assert_eq!(a, b);
        assert_eq!(a.conds.len(), 3);
        let f = Filter::parse(m, &json!({"reply_to": null, "user_id": {"$ne": null}})).unwrap();
        assert_eq!(f.conds.iter().map(|c| c.op).collect::<Vec<_>>(), vec![Op::IsNull, Op::IsNotNull]);
    }

    #[test]
    fn nests_or_and_not() {
        let m = model("Messages").unwrap();
        let f = Filter::parse(
            m,
            &json!({"chat_id": "c", "$or": [{"time": {"$lt": 1}}, {"$not": {"user_id": "u"}}], "$and": [{"time": 2}]}),
        )
        .unwrap();
        assert!(!f.is_flat());
        // `$and` merges into the conditions; `$or` and `$not` stay nested.
        assert_eq!(f.conds.len(), 2);
        assert!(
            matches!(&f.nested[..], [Node::Any(fs)] if fs.len() == 2 && matches!(&fs[1].nested[..], [Node::Not(_)]))
        );
        assert!(Filter::parse(m, &json!({"chat_id": "c"})).unwrap().is_flat());
        // The SQL holds every part (column names from the registry).
        let sql = sea_orm::sea_query::Query::select()
            .column(Alias::new("id"))
            .from(Alias::new("messages"))
            .cond_where(f.to_condition(m, DbBackend::Sqlite))
            .to_string(sea_orm::sea_query::SqliteQueryBuilder);
        assert!(sql.contains(" OR ") && sql.contains("NOT") && sql.contains("\"user_id\" = 'u'"), "{sql}");
        let deep = (0..=MAX_DEPTH).fold(json!({"time": 1}), |inner, _| json!({ "$not": inner }));
        assert!(Filter::parse(m, &deep).unwrap_err().to_string().contains("at most 16 levels"));
        for bad in [json!({"$or": []}), json!({"$or": [{}]}), json!({"$not": {}}), json!({"$and": {"time": 1}})] {
            assert!(matches!(Filter::parse(m, &bad), Err(Error::InvalidRequest(_))), "{bad}");
        }
    }

    #[test]
    fn like_patterns() {
        assert_eq!(glob_of("a%b_c\\%d*e?[f\\\\"), "a*b?c%d[*]e[?][[]f\\");
        let m = model("Messages").unwrap();
        let f = Filter::parse(m, &json!({"user_id": {"$contains": "50%_off\\"}})).unwrap();
        assert_eq!(f.conds[0].values, vec![Cell::Text("%50\\%\\_off\\\\%".into())]);
        let e = Filter::parse(m, &json!({"user_id": {"$like": "x\\"}})).unwrap_err().to_string();
        assert!(e.contains("ends with its escape"), "{e}");
        assert!(Filter::parse(m, &json!({"user_id": {"$like": "x\\\\"}})).is_ok());
        let e = Filter::parse(m, &json!({"time": {"$like": "1%"}})).unwrap_err().to_string();
        assert!(e.contains("text columns"), "{e}");
    }

    #[test]
    fn rejects_what_it_cannot_run() {
        let m = model("Messages").unwrap();
        let cases = [
            (json!({"chat_idd": 1}), "unknown field"),
            (json!({"time": {"$between": [1, 2]}}), "unknown operator"),
            (json!({"time": "soon"}), "invalid value"),
            (json!({"time": {"$in": 3}}), "takes an array"),
            (json!({"time": {"$in": [1, null]}}), "contains null"),
            (json!({"time": {"$gt": null}}), "matches nothing"),
            (json!({"time": {}}), "empty operator"),
            (json!({"chat_id": {"$gt": ["a"]}}), "invalid value"),
            (json!([1]), "must be a JSON object"),
            (json!({"memorized_times": 1.5}), "invalid value"),
            (json!({"memorized_times": 3_000_000_000_i64}), "32-bit"),
            (json!({"time": {"$in": (0..32_767).collect::<Vec<_>>()}}), "at most 30000"),
            (
                json!({"time": {"$in": (0..20_000).collect::<Vec<_>>(), "$nin": (0..10_001).collect::<Vec<_>>()}}),
                "30001 values",
            ),
        ];
        for (f, want) in cases {
            let e = Filter::parse(m, &f).unwrap_err().to_string();
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(Filter::parse(m, &json!({"time": {"$in": (0..MAX_FILTER_VALUES).collect::<Vec<_>>()}})).is_ok());
    }
}
