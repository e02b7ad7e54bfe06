//! Write data: a JSON `data` object checked against the model, as a complete new row (create, with
//! client-side defaults filled in) or as a set of column changes (update).

use serde_json::Value;

use crate::core::filter::json_kind;
use crate::core::registry::ModelDef;
use crate::core::value::{Cell, Row};
use crate::utils::error::{Error, Result};
use crate::utils::time;

fn data_object<'v>(model: &ModelDef, data: &'v Value) -> Result<&'v serde_json::Map<String, Value>> {
    data.as_object().ok_or_else(|| {
        Error::InvalidRequest(format!("`data` for `{}` must be a JSON object, got {}", model.name, json_kind(data)))
    })
}

/// A complete row to insert: one cell per column in table order; `cells[0]` (`id`) is `Null` unless given.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    /// The model.
    pub model: &'static ModelDef,
    /// One cell per column.
    pub cells: Vec<Cell>,
}

impl NewRow {
    /// Validates `data` for a create: known fields, fitting values, required fields present; fills defaults.
    ///
    /// # Errors
    /// [`Error::UnknownField`], [`Error::InvalidValue`], [`Error::MissingRequired`], [`Error::InvalidRequest`].
    pub fn parse(model: &'static ModelDef, data: &Value) -> Result<NewRow> {
        let obj = data_object(model, data)?;
        let mut given: Vec<Option<Cell>> = vec![None; model.columns.len()];
        for (field, v) in obj {
            let idx = model.column_index(field)?;
            let col = model.col(idx);
            let cell = Cell::from_json(model, col, v)?;
            if idx != 0 {
                cell.check_write(model, col)?;
            }
            given[idx] = Some(cell);
        }
        let missing: Vec<&str> = model
            .columns
            .iter()
            .zip(&given)
            .filter(|(c, g)| g.is_none() && c.is_required())
            .map(|(c, _)| c.name)
            .collect();
        if !missing.is_empty() {
            return Err(Error::MissingRequired { model: model.name.into(), fields: missing.join(", ") });
        }
        let cells = model
            .columns
            .iter()
            .zip(given)
            .map(|(c, g)| g.or_else(|| Cell::default_for(c)).unwrap_or(Cell::Null))
            .collect();
        Ok(NewRow { model, cells })
    }

    /// The row as callers see it once inserted with `id`.
    pub fn to_row(&self, id: i64) -> Row {
        let mut row = Row::with_capacity(self.cells.len());
        for (i, (col, cell)) in self.model.columns.iter().zip(&self.cells).enumerate() {
            let v = if i == 0 { Value::from(id) } else { cell.to_json() };
            row.insert(col.name.to_owned(), v);
        }
        row
    }

    /// The explicit id, if the data gave one.
    pub fn explicit_id(&self) -> Option<i64> {
        match self.cells.first() {
            Some(Cell::Int(i)) => Some(*i),
            _ => None,
        }
    }
}

/// Column changes for an update, in column order. Columns the model touches on every update
/// (`updated_at`) are set to now unless the data sets them.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    /// The model.
    pub model: &'static ModelDef,
    /// (column index, new value), sorted by column.
    pub sets: Vec<(usize, Cell)>,
}

impl Changes {
    /// Validates `data` for an update.
    ///
    /// # Errors
    /// [`Error::UnknownField`], [`Error::InvalidValue`], [`Error::InvalidRequest`] for empty data or a change
    /// of `id`.
    pub fn parse(model: &'static ModelDef, data: &Value) -> Result<Changes> {
        let obj = data_object(model, data)?;
        if obj.is_empty() {
            return Err(Error::InvalidRequest(format!(
                "an update of `{}` needs at least one field in `data`",
                model.name
            )));
        }
        let mut sets = Vec::with_capacity(obj.len() + model.touch_on_update.len());
        for (field, v) in obj {
            let idx = model.column_index(field)?;
            if idx == 0 {
                return Err(Error::InvalidRequest(format!("`id` of `{}` cannot be updated", model.name)));
            }
            let col = model.col(idx);
            let cell = Cell::from_json(model, col, v)?;
            cell.check_write(model, col)?;
            sets.push((idx, cell));
        }
        for touched in model.touch_on_update {
            if !obj.contains_key(*touched) {
                let idx = model.column_index(touched)?;
                sets.push((idx, Cell::DateTime(time::now_local())));
            }
        }
        sets.sort_by_key(|(i, _)| *i);
        Ok(Changes { model, sets })
    }

    /// Applies these changes to a row already read (to answer with the updated row).
    pub fn apply_to(&self, row: &mut Row) {
        for (idx, cell) in &self.sets {
            row.insert(self.model.col(*idx).name.to_owned(), cell.to_json());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::registry::model;
    use serde_json::json;

    #[test]
    fn create_fills_defaults_and_lists_missing_fields() {
        let m = model("Images").unwrap();
        let e = NewRow::parse(m, &json!({"emoji_hash": "h"})).unwrap_err().to_string();
        assert!(e.contains("path") && e.contains("timestamp") && e.contains("type"), "{e}");
        let r = NewRow::parse(m, &json!({"emoji_hash": "h", "path": "/p", "timestamp": 1.0, "type": "emoji"}))
            .unwrap()
            .to_row(7);
        assert_eq!(r["id"], json!(7));
        assert_eq!(r["count"], json!(1));
        assert_eq!(r["image_id"], json!(""));
        assert_eq!(r["vlm_processed"], json!(false));
        assert_eq!(r["description"], json!(null));
    }

    #[test]
    fn rejects_unknown_keys_nulls_and_long_text() {
        let m = model("ChatStreams").unwrap();
        assert!(matches!(Changes::parse(m, &json!({"nope": 1})), Err(Error::UnknownField { .. })));
        assert!(matches!(Changes::parse(m, &json!({"platform": null})), Err(Error::InvalidValue { .. })));
        let long = "x".repeat(65);
        assert!(matches!(Changes::parse(m, &json!({"stream_id": long})), Err(Error::InvalidValue { .. })));
        assert!(matches!(Changes::parse(m, &json!({})), Err(Error::InvalidRequest(_))));
    }

    #[test]
    fn updates_touch_updated_at() {
        let m = model("Schedule").unwrap();
        let c = Changes::parse(m, &json!({"schedule_data": "{}"})).unwrap();
        assert_eq!(c.sets.len(), 2);
        assert_eq!(m.col(c.sets[1].0).name, "updated_at");
    }
}
