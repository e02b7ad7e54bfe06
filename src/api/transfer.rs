//! Whole tables moved between databases: per-table row counts and checksums, copies between any two
//! backends (SQLite ⇄ PostgreSQL ⇄ MySQL), restores from a backup, and JSONL export and import.
//!
//! Tables are read in pages of [`PAGE`] rows by id (keyset paging: constant memory whatever their size) from
//! the reader pool, past the cache. Rows keep their ids, and a copy or import skips every id its target
//! holds already: running it twice adds nothing, and an interrupted run completes when run again. Every row is
//! validated through the registry before it is written (an import validates every line of every file
//! before it writes any). Checksums hash each row's JSON line in id order, the same on every backend, so a
//! copy is verified by comparing both ends.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::{Value, json};
use xxhash_rust::xxh3::Xxh3;

use crate::api::db::Db;
use crate::core::data::NewRow;
use crate::core::exec::{self, Select};
use crate::core::registry::{ModelDef, model, models};
use crate::core::value::Row;
use crate::utils::error::{Error, Result};

/// Rows per page read, and per transaction written.
pub(crate) const PAGE: u64 = 1000;

/// One table in short: its rows and a checksum of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct TableSum {
    /// The model.
    pub model: String,
    /// Its rows.
    pub rows: u64,
    /// XXH3-128 (hex) of the rows in id order, each as its JSON line: equal on every backend for equal rows.
    pub checksum: String,
}

/// What moving one table did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableMoved {
    /// The model.
    pub model: &'static str,
    /// Rows read from the source (a table or a file).
    pub read: u64,
    /// Rows written: inserted (ids the target held are skipped), or lines exported.
    pub written: u64,
}

/// Told the model and the rows read of it so far, after each page.
pub type Progress<'a> = &'a (dyn Fn(&str, u64) + Send + Sync);

/// The models named (all 25 when none are).
///
/// # Errors
/// [`Error::UnknownModel`].
fn chosen(names: &[String]) -> Result<Vec<&'static ModelDef>> {
    if names.is_empty() {
        return Ok(models().iter().collect());
    }
    names.iter().map(|n| model(n)).collect()
}

fn id_of(m: &ModelDef, row: &Row) -> Result<i64> {
    row.get("id")
        .and_then(Value::as_i64)
        .ok_or_else(|| Error::Internal(format!("a {} row read without its id", m.name)))
}

fn file_error(path: &Path, what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidRequest(format!("cannot {what} {}: {e}", path.display()))
}

/// A keyset cursor over one table: pages of up to [`PAGE`] rows in id order, from the reader pool.
struct Pages<'a> {
    db: &'a Db,
    model: &'static ModelDef,
    after: Option<i64>,
    done: bool,
}

impl<'a> Pages<'a> {
    fn of(db: &'a Db, model: &'static ModelDef) -> Pages<'a> {
        Pages { db, model, after: None, done: false }
    }

    /// The next page; `None` after the last.
    async fn next(&mut self) -> Result<Option<Vec<Row>>> {
        if self.done {
            return Ok(None);
        }
        let filter = self.after.map_or_else(|| json!({}), |a| json!({"id": {"$gt": a}}));
        let sel = Select::parse(self.model, &filter, &["id".to_owned()], Some(PAGE))?;
        let page = exec::select(self.db.engine().reader(), &sel).await?;
        let Some(last) = page.last() else { return Ok(None) };
        self.after = Some(id_of(self.model, last)?);
        self.done = (page.len() as u64) < PAGE;
        Ok(Some(page))
    }
}

impl Db {
    /// Row counts and checksums of the tables of `names` (all when empty).
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::Database`].
    pub async fn table_sums(&self, names: &[String]) -> Result<Vec<TableSum>> {
        let mut out = Vec::new();
        for m in chosen(names)? {
            let (mut h, mut rows, mut pages) = (Xxh3::new(), 0, Pages::of(self, m));
            while let Some(page) = pages.next().await? {
                for r in &page {
                    h.update(&serde_json::to_vec(r).map_err(|e| Error::Internal(e.to_string()))?);
                    h.update(b"\n");
                }
                rows += page.len() as u64;
            }
            out.push(TableSum { model: m.name.to_owned(), rows, checksum: format!("{:032x}", h.digest128()) });
        }
        Ok(out)
    }

    /// Copies the tables of `names` (all when empty) into `target`, any backend to any, keeping ids and
    /// skipping the ids `target` holds; on PostgreSQL the id sequences are then moved past the largest id.
    /// Compare [`Db::table_sums`] of both ends to verify.
    ///
    /// # Errors
    /// [`Error::UnknownModel`]; a row the target's backend cannot hold (typed, before its page is written);
    /// [`Error::Constraint`] for a natural key the target holds under another id; [`Error::Database`]. Pages
    /// written before the error stay: run the copy again to complete it.
    pub async fn copy_into(&self, target: &Db, names: &[String], progress: Progress<'_>) -> Result<Vec<TableMoved>> {
        let mut out = Vec::new();
        for m in chosen(names)? {
            let (mut read, mut written, mut pages) = (0, 0, Pages::of(self, m));
            while let Some(page) = pages.next().await? {
                read += page.len() as u64;
                let rows = page.into_iter().map(|r| NewRow::parse(m, &Value::Object(r))).collect::<Result<Vec<_>>>()?;
                written += target.store().insert_keeping_ids(m, rows).await?;
                progress(m.name, read);
            }
            exec::reset_id_sequence(target.engine().writer(), m).await?;
            out.push(TableMoved { model: m.name, read, written });
        }
        Ok(out)
    }

    /// Deletes every row of the tables of `names` (all when empty) in one transaction, and every cached read
    /// of them. Returns the rows deleted.
    ///
    /// # Errors
    /// [`Error::UnknownModel`], [`Error::Database`] (nothing deleted then).
    pub async fn clear_tables(&self, names: &[String]) -> Result<u64> {
        self.store().clear(&chosen(names)?).await
    }

    /// Writes the tables of `names` (all when empty) to `dir/<Model>.jsonl`, one JSON row per line in id
    /// order. Each file is written as `<Model>.jsonl.part` and renamed when complete.
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] when a file exists already or cannot be written; [`Error::Database`].
    pub async fn export_jsonl(&self, dir: &Path, names: &[String], progress: Progress<'_>) -> Result<Vec<TableMoved>> {
        let ms = chosen(names)?;
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, "create", e))?;
        for m in &ms {
            let path = dir.join(format!("{}.jsonl", m.name));
            if path.exists() {
                return Err(Error::InvalidRequest(format!(
                    "{} exists already: export into an empty directory",
                    path.display()
                )));
            }
        }
        let mut out = Vec::new();
        for m in ms {
            let path = dir.join(format!("{}.jsonl", m.name));
            let part = dir.join(format!("{}.jsonl.part", m.name));
            let file = std::fs::File::create(&part).map_err(|e| file_error(&part, "create", e))?;
            let mut w = std::io::BufWriter::new(file);
            let (mut read, mut pages) = (0, Pages::of(self, m));
            while let Some(page) = pages.next().await? {
                for r in &page {
                    serde_json::to_writer(&mut w, r).map_err(|e| file_error(&part, "write", e))?;
                    w.write_all(b"\n").map_err(|e| file_error(&part, "write", e))?;
                }
                read += page.len() as u64;
                progress(m.name, read);
            }
            w.into_inner()
                .map_err(|e| file_error(&part, "write", e.error()))?
                .sync_all()
                .map_err(|e| file_error(&part, "write", e))?;
            std::fs::rename(&part, &path).map_err(|e| file_error(&path, "write", e))?;
            out.push(TableMoved { model: m.name, read, written: read });
        }
        Ok(out)
    }

    /// Inserts the rows of `dir/<Model>.jsonl` for the models of `names` (when empty: every model whose file
    /// exists). Every line of every file is validated through the registry (and against this backend) before
    /// any row is written; rows keep their ids and ids the table holds are skipped, so importing twice adds
    /// nothing. Files are read with blocking I/O: call it where that is acceptable (a maintenance task).
    ///
    /// # Errors
    /// [`Error::InvalidRequest`] naming the file and line of the first bad row, or a file named in `names`
    /// that is missing (nothing written then); [`Error::Constraint`], [`Error::Database`] while writing (the
    /// pages written before stay: import again to complete).
    pub async fn import_jsonl(&self, dir: &Path, names: &[String], progress: Progress<'_>) -> Result<Vec<TableMoved>> {
        let mut files = Vec::new();
        for m in chosen(names)? {
            let path = dir.join(format!("{}.jsonl", m.name));
            if path.exists() {
                files.push((m, path));
            } else if !names.is_empty() {
                return Err(file_error(&path, "read", "no such file"));
            }
        }
        if files.is_empty() {
            return Err(Error::InvalidRequest(format!("{} holds no <Model>.jsonl file", dir.display())));
        }
        let backend = self.backend();
        for (m, path) in &files {
            for row in JsonlRows::open(m, path)? {
                let (row, at) = row?;
                row.cells
                    .iter()
                    .enumerate()
                    .try_for_each(|(i, c)| c.check_backend(m, m.col(i), backend))
                    .map_err(|e| at.error(e))?;
            }
        }
        let mut out = Vec::new();
        for (m, path) in files {
            let (mut read, mut written, mut page) = (0, 0, Vec::with_capacity(PAGE as usize));
            let mut rows = JsonlRows::open(m, &path)?;
            loop {
                let next = rows.next().transpose()?;
                let end = next.is_none();
                page.extend(next.map(|(r, _)| r));
                if page.len() as u64 == PAGE || (end && !page.is_empty()) {
                    read += page.len() as u64;
                    written += self.store().insert_keeping_ids(m, std::mem::take(&mut page)).await?;
                    progress(m.name, read);
                }
                if end {
                    break;
                }
            }
            exec::reset_id_sequence(self.engine().writer(), m).await?;
            out.push(TableMoved { model: m.name, read, written });
        }
        Ok(out)
    }
}

/// Where a row came from.
struct At {
    path: PathBuf,
    line: usize,
}

impl At {
    fn error(&self, e: impl std::fmt::Display) -> Error {
        Error::InvalidRequest(format!("{}:{}: {e}", self.path.display(), self.line))
    }
}

/// The validated rows of one JSONL file, with their lines (blank lines skipped).
struct JsonlRows {
    model: &'static ModelDef,
    path: PathBuf,
    lines: std::io::Lines<std::io::BufReader<std::fs::File>>,
    line: usize,
}

impl JsonlRows {
    fn open(model: &'static ModelDef, path: &Path) -> Result<JsonlRows> {
        let file = std::fs::File::open(path).map_err(|e| file_error(path, "read", e))?;
        Ok(JsonlRows { model, path: path.to_owned(), lines: std::io::BufReader::new(file).lines(), line: 0 })
    }

    fn parse(&self, text: &str) -> Result<(NewRow, At)> {
        let at = At { path: self.path.clone(), line: self.line };
        let v: Value = serde_json::from_str(text).map_err(|e| at.error(format!("not a JSON row: {e}")))?;
        let row = NewRow::parse(self.model, &v).map_err(|e| at.error(e))?;
        if row.explicit_id().is_none() {
            return Err(at.error("the row has no id (imported rows keep the ids they were exported with)"));
        }
        Ok((row, at))
    }
}

impl Iterator for JsonlRows {
    type Item = Result<(NewRow, At)>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            let text = self.lines.next()?;
            self.line += 1;
            match text {
                Err(e) => return Some(Err(At { path: self.path.clone(), line: self.line }.error(e))),
                Ok(t) if t.trim().is_empty() => {}
                Ok(t) => return Some(self.parse(&t)),
            }
        }
    }
}
