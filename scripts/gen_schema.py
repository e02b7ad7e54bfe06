#!/usr/bin/env python3
"""Generate the schema-derived Rust sources from docs/schema.md (the bot's schema contract).

Outputs (all marked "generated", never edited by hand):
  entities/src/<table>.rs, entities/src/lib.rs      sea-orm entities, one per table
  migration/src/schema_v1.rs                        the v1 table/index description the first migration builds
  src/core/registry/models.rs                       the registry's static model metadata

Run from the repository root: python3 scripts/gen_schema.py
"""
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "docs" / "schema.md"

# Natural keys callers look rows up by (schema.md, "Natural keys used by callers").
NATURAL_KEYS = {
    "chat_streams": [("stream_id", True)],
    "person_info": [("person_id", True)],
    "user_relationships": [("user_id", True)],
    "cache_entries": [("cache_key", True)],
    "schedule": [("date", True)],
    "maizone_schedule_status": [("datetime_hour", True)],
    "permission_nodes": [("node_name", True)],
    "videos": [("video_hash", True)],
    "graph_nodes": [("concept", True)],
    "emoji": [("full_path", True), ("emoji_hash", False)],
    "images": [("path", True), ("emoji_hash", False)],
    "messages": [("message_id", False)],
    "action_records": [("action_id", False)],
    "expression": [("chat_id", False)],
}

# Indexes of botdb's own, beyond the bot's (harmless to it; the hot paths need them).
EXTRA_INDEXES = {
    "messages": [("idx_botdb_messages_chat_id_time", ["chat_id", "time"], False)],
    "images": [
        ("idx_botdb_images_image_id", ["image_id"], False),
        ("idx_botdb_images_description", ["description"], False),
    ],
}


def parse():
    text = SPEC.read_text(encoding="utf-8")
    models = []
    for m in re.finditer(r"^### `(\w+)` → table `(\w+)`\n(.*?)(?=^##|\Z)", text, re.S | re.M):
        name, table, body = m.group(1), m.group(2), m.group(3)
        cols = []
        for line in body.splitlines():
            if not line.startswith("| ") or line.startswith("| column") or line.startswith("|---"):
                continue
            cells = [c.strip() for c in line.strip().strip("|").split("|")]
            cname, sqlite_t, pg_t, null, default, pk, unique, indexed = cells
            cols.append(dict(name=cname, sqlite=sqlite_t, pg=pg_t, nullable=(null == "NULL"),
                             default=default, pk=(pk == "PK"), unique=(unique == "UNIQUE"),
                             indexed=(indexed == "yes")))
        idx_line = re.search(r"^Indexes \(name\(cols\)\): (.*)$", body, re.M).group(1)
        indexes = []
        for im in re.finditer(r"`(\w+)`\(([\w, ]+)\)( UNIQUE)?", idx_line):
            indexes.append((im.group(1), [c.strip() for c in im.group(2).split(",")], bool(im.group(3))))
        table_unique = [u.strip() for u in re.findall(r"table-level UNIQUE\((\w+)\)", body)]
        models.append(dict(name=name, table=table, cols=cols, indexes=indexes, table_unique=table_unique))
    annotate(models, text)
    return models


PRIORITIES = {"critical": "Critical", "high": "High", "normal": "Normal", "low": "Low"}
PRELOAD = {"history": "History", "chat": "Chat", "speaker": "Speaker", "relationship": "Relationship"}
ON_INSERT = {"warm-partition"}


def annotate(models, text):
    """Reads the `## botdb annotations` table into each model; a name that does not exist is an error."""
    section = text.split("\n## botdb annotations\n", 1)
    if len(section) != 2:
        raise SystemExit("docs/schema.md has no `## botdb annotations` section")
    by_name = {m["name"]: m for m in models}
    for m in models:
        m.update(partition=None, order=None, priority="Normal", warm=False, preload=None)
    for line in section[1].splitlines():
        if not line.startswith("| ") or line.startswith("| model"):
            continue
        name, part, order, prio, on_insert, preload = [c.strip() for c in line.strip().strip("|").split("|")]
        if name not in by_name:
            raise SystemExit(f"annotation names unknown model `{name}`")
        m = by_name[name]
        cols = {c["name"]: c for c in m["cols"]}
        for col in (part, order):
            if col and col not in cols:
                raise SystemExit(f"annotation of `{name}` names unknown column `{col}`")
        if order and kind(cols[order]) != "Float":
            raise SystemExit(f"order column `{name}.{order}` must be a FLOAT time")
        if prio not in PRIORITIES or (on_insert and on_insert not in ON_INSERT) or (preload and preload not in PRELOAD):
            raise SystemExit(f"annotation of `{name}`: bad priority, on-insert or preload value")
        if (on_insert or preload) and not part:
            raise SystemExit(f"annotation of `{name}`: on insert and preload need a partition column")
        m.update(partition=part or None, order=order or None, priority=PRIORITIES[prio], warm=bool(on_insert),
                 preload=PRELOAD.get(preload))
    roles = [m["preload"] for m in models if m["preload"]]
    if sorted(roles) != sorted(PRELOAD.values()):
        raise SystemExit(f"every preload role must be held by exactly one model, got {roles}")


def kind(col):
    s, p = col["sqlite"], col["pg"]
    if col["pk"]:
        return "Id"
    if s == "INTEGER":
        return "Int"
    if s == "FLOAT":
        return "Float"
    if s == "BOOLEAN":
        return "Bool"
    if s == "DATETIME":
        return "DateTime"
    if s == "TEXT" or s.startswith("VARCHAR"):
        return "Text"
    raise SystemExit(f"unknown type {s} / {p}")


def max_len(col):
    m = re.match(r"VARCHAR\((\d+)\)", col["pg"])
    return int(m.group(1)) if m else None


def default_expr(col):
    d = col["default"]
    k = kind(col)
    if not d:
        return "DefaultValue::None"
    if d.startswith("now (local)"):
        return "DefaultValue::NowLocal"
    if d == "now (UTC)":
        return "DefaultValue::NowUtc"
    if d == "now (epoch seconds)":
        return "DefaultValue::NowEpoch"
    if d.startswith("current local time as text"):
        return "DefaultValue::NowLocalText"
    if d in ("False", "True"):
        return f"DefaultValue::Bool({d.lower()})"
    if d.startswith("'"):
        return f"DefaultValue::Text({d.strip(chr(39))!r})".replace("'", '"')
    if k == "Float":
        return f"DefaultValue::Float({float(d)!r})"
    if k == "Int":
        return f"DefaultValue::Int({int(d)})"
    raise SystemExit(f"unknown default {d!r} for {col['name']}")


def rust_field(col):
    k = kind(col)
    t = {"Id": "i32", "Int": "i32", "Float": "f64", "Bool": "bool", "DateTime": "DateTime", "Text": "String"}[k]
    if col["nullable"]:
        t = f"Option<{t}>"
    return t


def gen_entities(models):
    out = ROOT / "entities" / "src"
    lib = ['//! sea-orm entities of the chat bot\'s 25 tables, one module per table, generated from',
           '//! `docs/schema.md` by `scripts/gen_schema.py`. Data only: no logic lives here.',
           '//!',
           '//! Column types: `INTEGER` is `i32` (PostgreSQL `INTEGER`), `FLOAT` is `f64` (double precision on every',
           '//! backend), `DATETIME` is a naive local [`sea_orm::prelude::DateTime`], nullable columns are `Option`.',
           '',
           'pub use sea_orm;', '']
    for m in models:
        lib.append(f"pub mod {m['table']};")
    lib.append("")
    lib.append("/// Every entity's table name, in the order of the model mapping.")
    lib.append("pub const TABLES: [&str; %d] = [" % len(models))
    for m in models:
        lib.append(f'    "{m["table"]}",')
    lib.append("];")
    (out / "lib.rs").write_text("\n".join(lib) + "\n")
    for m in models:
        lines = [f"//! Entity of table `{m['table']}` (model `{m['name']}`). Generated by `scripts/gen_schema.py`.",
                 "",
                 "use sea_orm::entity::prelude::*;",
                 "use serde::{Deserialize, Serialize};",
                 "",
                 f"/// One row of `{m['table']}`.",
                 "#[derive(Clone, Debug, PartialEq, DeriveEntityModel, Serialize, Deserialize)]",
                 f'#[sea_orm(table_name = "{m["table"]}")]',
                 "pub struct Model {"]
        for c in m["cols"]:
            attrs = []
            if c["pk"]:
                attrs.append("primary_key")
            if c["name"] == "type":
                attrs.append('column_name = "type"')
            if kind(c) == "Float":
                attrs.append('column_type = "Double"')
            lines.append(f"    /// Column `{c['name']}`.")
            if attrs:
                lines.append(f"    #[sea_orm({', '.join(attrs)})]")
            if c["name"] == "type":
                lines.append('    #[serde(rename = "type")]')
            field = "kind" if c["name"] == "type" else c["name"]
            lines.append(f"    pub {field}: {rust_field(c)},")
        lines += ["}", "",
                  "/// No relations: the bot's schema has no foreign keys.",
                  "#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]",
                  "pub enum Relation {}", "",
                  "impl ActiveModelBehavior for ActiveModel {}", ""]
        (out / f"{m['table']}.rs").write_text("\n".join(lines))


def gen_migration(models):
    lines = ["//! The schema as of migration v1, generated from `docs/schema.md` by `scripts/gen_schema.py`.",
             "//! Frozen with the migration that builds it: a later schema change is a new migration.",
             "",
             "/// A column: name, SQLite type, PostgreSQL type, nullable.",
             "pub(crate) type ColumnV1 = (&'static str, &'static str, &'static str, bool);",
             "/// An index: name, columns, unique.",
             "pub(crate) type IndexV1 = (&'static str, &'static [&'static str], bool);",
             "",
             "/// One table: name, columns (the first is the integer primary key `id`), indexes, table-level unique",
             "/// constraints.",
             "pub(crate) struct TableV1 {",
             "    pub name: &'static str,",
             "    pub columns: &'static [ColumnV1],",
             "    pub indexes: &'static [IndexV1],",
             "    pub unique: &'static [&'static str],",
             "}",
             "",
             "/// The 25 tables.",
             "pub(crate) const TABLES: &[TableV1] = &["]
    for m in models:
        lines.append("    TableV1 {")
        lines.append(f'        name: "{m["table"]}",')
        lines.append("        columns: &[")
        for c in m["cols"]:
            s = "INTEGER" if c["pk"] else c["sqlite"]
            lines.append(f'            ("{c["name"]}", "{s}", "{c["pg"]}", {str(c["nullable"]).lower()}),')
        lines.append("        ],")
        lines.append("        indexes: &[")
        for (n, cs, u) in m["indexes"] + EXTRA_INDEXES.get(m["table"], []):
            cl = ", ".join(f'"{x}"' for x in cs)
            lines.append(f'            ("{n}", &[{cl}], {str(u).lower()}),')
        lines.append("        ],")
        ul = ", ".join(f'"{x}"' for x in m["table_unique"])
        lines.append(f"        unique: &[{ul}],")
        lines.append("    },")
    lines.append("];")
    (ROOT / "migration" / "src" / "schema_v1.rs").write_text("\n".join(lines) + "\n")


def gen_registry(models):
    lines = ["//! The models' static metadata, generated from `docs/schema.md` by `scripts/gen_schema.py`.",
             "",
             "use super::{ColumnDef, DefaultValue, Key, Kind, ModelDef, PreloadRole, Priority};",
             "",
             "/// How many models the mapping has.",
             "pub(crate) const MODEL_COUNT: usize = %d;" % len(models),
             "",
             "/// The model mapping, in the order of `schema.md`.",
             "pub(super) static MODELS: [ModelDef; MODEL_COUNT] = ["]
    for i, m in enumerate(models):
        names = [c["name"] for c in m["cols"]]
        opt_col = lambda c: f"Some({names.index(c)})" if c else "None"
        on_update = [c["name"] for c in m["cols"] if "on every update" in c["default"]]
        unique_idx = {tuple(cs) for (_, cs, u) in m["indexes"] if u}
        lines.append("    ModelDef {")
        lines.append(f'        name: "{m["name"]}",')
        lines.append(f'        table: "{m["table"]}",')
        lines.append("        columns: &[")
        for c in m["cols"]:
            unique = c["unique"] or (c["name"],) in unique_idx or c["name"] in m["table_unique"]
            ml = max_len(c)
            lines.append("            ColumnDef {")
            lines.append(f'                name: "{c["name"]}",')
            lines.append(f"                kind: Kind::{kind(c)},")
            lines.append(f"                nullable: {str(c['nullable']).lower()},")
            lines.append(f"                default: {default_expr(c)},")
            lines.append(f"                unique: {str(unique).lower()},")
            lines.append(f"                max_len: {'Some(%d)' % ml if ml else 'None'},")
            lines.append("            },")
        lines.append("        ],")
        keys = ", ".join(f'Key {{ column: "{k}", unique: {str(u).lower()} }}' for k, u in NATURAL_KEYS.get(m["table"], []))
        lines.append(f"        keys: &[{keys}],")
        ou = ", ".join(f'"{x}"' for x in on_update)
        lines.append(f"        touch_on_update: &[{ou}],")
        lines.append(f"        index: {i},")
        lines.append(f"        partition: {opt_col(m['partition'])},")
        lines.append(f"        order: {opt_col(m['order'])},")
        lines.append(f"        priority: Priority::{m['priority']},")
        lines.append(f"        warm_on_insert: {str(m['warm']).lower()},")
        lines.append(f"        preload: {'Some(PreloadRole::%s)' % m['preload'] if m['preload'] else 'None'},")
        lines.append("    },")
    lines.append("];")
    p = ROOT / "src" / "core" / "registry" / "models.rs"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(lines) + "\n")


def gen_bot_ddl(models):
    """The DDL the bot itself (SQLAlchemy on SQLite) creates: a fixture for the adoption test."""
    out = ["-- The chat bot's own SQLite DDL (SQLAlchemy style), generated from docs/schema.md by",
           "-- scripts/gen_schema.py. A test fixture: botdb must open and work on a database created by it.", ""]
    for m in models:
        lines = []
        for c in m["cols"]:
            t = "INTEGER" if c["pk"] else c["sqlite"]
            lines.append(f"\t{c['name']} {t}{'' if c['nullable'] else ' NOT NULL'}")
        lines.append("\tPRIMARY KEY (id)")
        for u in m["table_unique"]:
            lines.append(f"\tUNIQUE ({u})")
        out.append(f"CREATE TABLE {m['table']} (\n" + ", \n".join(lines) + "\n);")
        for (n, cs, u) in m["indexes"]:
            out.append(f"CREATE {'UNIQUE ' if u else ''}INDEX {n} ON {m['table']} ({', '.join(cs)});")
        out.append("")
    p = ROOT / "tests" / "fixtures" / "bot_schema.sql"
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text("\n".join(out))


def main():
    models = parse()
    ncols = sum(len(m["cols"]) for m in models)
    if len(models) != 25 or ncols != 275:
        sys.exit(f"expected 25 tables / 275 columns, parsed {len(models)} / {ncols}")
    gen_entities(models)
    gen_migration(models)
    gen_registry(models)
    gen_bot_ddl(models)
    import subprocess
    subprocess.run(["cargo", "fmt", "--all"], cwd=ROOT, check=True)
    print(f"generated {len(models)} models, {ncols} columns")


if __name__ == "__main__":
    main()
