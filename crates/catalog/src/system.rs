//! The stored tables of the `system` namespace. The catalog keeps its own
//! records (namespaces, tables, columns, schema history, views, users,
//! jobs) as rows of these tables, in the same row store and
//! encoding as user tables: SQL reads them with the same scan, and they
//! move to cold storage the same way.
//!
//! Each table's columns get ids in declaration order. Hidden columns are
//! stored like the others but left out of the SQL definition, so SQL can
//! never read them (password hashes, the catalog's own encodings).

use quiver_common::{ColumnType, NamespaceId, NodeId, Role, TableId, TableName, UserId};
use quiver_store::{
    Batch, ColdError, ColdTables, Scope, Store, StoredRow, Value, encode_key_value, table_prefix,
};

use crate::defs::{
    ColumnDef, JobRecord, JobStatus, NamespaceDef, TableDef, TableOptions, TableType, TableVersion,
    UserRecord, ViewDef,
};

/// The namespace of the system tables; no user namespace may take it.
pub const SYSTEM_NAMESPACE: &str = "system";

/// System tables take ids from the top of the id space; user tables count
/// up from 1 and never reach them.
const SYSTEM_TABLE_ID_BASE: u64 = 1 << 62;

/// One stored system table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SystemTable {
    Namespaces = 1,
    Tables,
    Columns,
    TableVersions,
    Views,
    Users,
    Jobs,
}

struct Column {
    name: &'static str,
    ty: ColumnType,
    nullable: bool,
    hidden: bool,
}

const fn col(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        hidden: false,
    }
}

const fn null(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        hidden: false,
    }
}

const fn hidden(name: &'static str, ty: ColumnType) -> Column {
    Column {
        name,
        ty,
        nullable: true,
        hidden: true,
    }
}

use ColumnType::{BigInt, Boolean, Int, Json, Text, Timestamp};

const NAMESPACES: &[Column] = &[col("namespace_id", Text), col("created_at", Timestamp)];

const TABLES: &[Column] = &[
    col("table_id", BigInt),
    col("namespace_id", Text),
    col("table_name", Text),
    col("table_type", Text),
    col("schema_version", Int),
    col("column_count", Int),
    null("primary_key", Text),
    null("flush_policy", Text),
    null("ttl_seconds", BigInt),
    null("access_level", Text),
    col("created_at", Timestamp),
    hidden("definition", Json),
];

const COLUMNS: &[Column] = &[
    col("namespace_id", Text),
    col("table_name", Text),
    col("column_name", Text),
    col("column_id", Int),
    col("ordinal", Int),
    col("data_type", Text),
    col("is_nullable", Boolean),
    col("is_primary_key", Boolean),
    null("default_value", Text),
    col("table_id", BigInt),
];

const TABLE_VERSIONS: &[Column] = &[
    col("namespace_id", Text),
    col("table_name", Text),
    col("schema_version", Int),
    col("changed_at", Timestamp),
    col("change", Text),
    col("columns", Text),
    col("table_id", BigInt),
    hidden("column_definitions", Json),
];

const VIEWS: &[Column] = &[
    col("namespace_id", Text),
    col("view_name", Text),
    col("definition", Text),
    col("column_names", Json),
    col("reads", Json),
    col("created_at", Timestamp),
];

const USERS: &[Column] = &[
    col("user_id", Text),
    col("role", Text),
    null("email", Text),
    col("created_at", Timestamp),
    col("updated_at", Timestamp),
    hidden("password_hash", Text),
    hidden("token_epoch", BigInt),
];

const JOBS: &[Column] = &[
    col("job_id", Text),
    col("job_type", Text),
    col("status", Text),
    null("target", Text),
    col("node_id", Text),
    col("created_at", Timestamp),
    null("finished_at", Timestamp),
    null("duration_ms", BigInt),
    null("rows", BigInt),
    null("bytes", BigInt),
    null("message", Text),
];

impl SystemTable {
    pub const ALL: [Self; 7] = [
        Self::Namespaces,
        Self::Tables,
        Self::Columns,
        Self::TableVersions,
        Self::Views,
        Self::Users,
        Self::Jobs,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Self::Namespaces => "namespaces",
            Self::Tables => "tables",
            Self::Columns => "columns",
            Self::TableVersions => "table_versions",
            Self::Views => "views",
            Self::Users => "users",
            Self::Jobs => "jobs",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    pub fn id(self) -> TableId {
        TableId(SYSTEM_TABLE_ID_BASE + self as u64)
    }

    fn columns(self) -> &'static [Column] {
        match self {
            Self::Namespaces => NAMESPACES,
            Self::Tables => TABLES,
            Self::Columns => COLUMNS,
            Self::TableVersions => TABLE_VERSIONS,
            Self::Views => VIEWS,
            Self::Users => USERS,
            Self::Jobs => JOBS,
        }
    }

    /// Ids of the columns that make up the row key, in key order.
    fn key(self) -> &'static [u32] {
        match self {
            Self::Columns => &[10, 4],
            Self::TableVersions => &[7, 3],
            Self::Views => &[1, 2],
            _ => &[1],
        }
    }

    /// The SQL-visible definition. A single-column key is the primary
    /// key; composite keys have none.
    pub fn def(self) -> TableDef {
        let (hidden, columns): (Vec<_>, Vec<_>) = self
            .columns()
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let def = ColumnDef {
                    id: i as u32 + 1,
                    name: c.name.to_string(),
                    column_type: c.ty,
                    nullable: c.nullable,
                    default: None,
                    fill: None,
                };
                (c.hidden, def)
            })
            .partition(|(hidden, _)| *hidden);
        let columns: Vec<ColumnDef> = columns.into_iter().map(|(_, c)| c).collect();
        let hidden_columns = hidden.into_iter().map(|(_, c)| c).collect();
        let key = self.key();
        TableDef {
            id: self.id(),
            namespace: NamespaceId::new(SYSTEM_NAMESPACE).expect("valid built-in name"),
            name: TableName::new(self.name()).expect("valid built-in name"),
            table_type: TableType::Shared,
            columns,
            hidden_columns,
            primary_key: (key.len() == 1).then(|| key[0]),
            options: TableOptions::default(),
            schema_version: 1,
            next_column_id: self.columns().len() as u32 + 1,
            created_at: 0,
        }
    }

    fn key_prefix(self, key: &[Value]) -> Vec<u8> {
        let mut out = table_prefix(self.id().0).to_vec();
        for value in key {
            let encoded = encode_key_value(value, &mut out);
            debug_assert!(encoded, "system keys are never NULL");
        }
        out
    }

    /// Writes one row; `values` are in column order, hidden ones included.
    pub(crate) fn put(self, store: &Store, batch: &mut Batch<'_>, values: Vec<Value>) {
        debug_assert_eq!(values.len(), self.columns().len(), "{}", self.name());
        let key: Vec<Value> = self
            .key()
            .iter()
            .map(|&id| values[id as usize - 1].clone())
            .collect();
        let row = StoredRow {
            seq: store.seq().next().0,
            deleted: false,
            cells: (1..).zip(values).collect(),
        };
        batch.put_row(&self.key_prefix(&key), &row);
    }

    /// Writes a delete marker for the row whose key columns hold `key`.
    pub(crate) fn delete(self, store: &Store, batch: &mut Batch<'_>, key: Vec<Value>) {
        let full_key = self.key_prefix(&key);
        let row = StoredRow {
            seq: store.seq().next().0,
            deleted: true,
            cells: self.key().iter().copied().zip(key).collect(),
        };
        batch.put_row(&full_key, &row);
    }

    /// Live rows whose leading key columns hold `key_prefix`, in key
    /// order, from hot rows and segments alike.
    pub(crate) async fn scan(
        self,
        tier: &ColdTables,
        key_prefix: &[Value],
    ) -> Result<Vec<StoredRow>, ColdError> {
        tier.merged_rows(&Scope::table(self.id().0), &self.key_prefix(key_prefix))
            .await
    }
}

/// Why a stored system row could not be read back.
#[derive(Debug)]
pub(crate) struct BadRow {
    pub(crate) table: SystemTable,
    pub(crate) detail: String,
}

type Read<T> = Result<T, BadRow>;

struct Cells<'a> {
    table: SystemTable,
    row: &'a StoredRow,
}

impl<'a> Cells<'a> {
    fn bad(&self, detail: impl Into<String>) -> BadRow {
        BadRow {
            table: self.table,
            detail: detail.into(),
        }
    }

    fn column_name(&self, id: u32) -> &'static str {
        self.table.columns()[id as usize - 1].name
    }

    fn text(&self, id: u32) -> Read<&'a str> {
        self.opt_text(id)?
            .ok_or_else(|| self.bad(format!("{} is missing", self.column_name(id))))
    }

    fn opt_text(&self, id: u32) -> Read<Option<&'a str>> {
        match self.row.cell(id) {
            None => Ok(None),
            Some(Value::Text(s)) => Ok(Some(s)),
            Some(other) => Err(self.bad(format!("{} is {other:?}", self.column_name(id)))),
        }
    }

    fn timestamp(&self, id: u32) -> Read<i64> {
        match self.row.cell(id) {
            Some(Value::Timestamp(t)) => Ok(*t),
            other => Err(self.bad(format!("{} is {other:?}", self.column_name(id)))),
        }
    }

    fn opt_i64(&self, id: u32) -> Read<Option<i64>> {
        match self.row.cell(id) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Int64(v)) => Ok(Some(*v)),
            Some(other) => Err(self.bad(format!("{} is {other:?}", self.column_name(id)))),
        }
    }

    fn int(&self, id: u32) -> Read<i32> {
        match self.row.cell(id) {
            Some(Value::Int32(v)) => Ok(*v),
            other => Err(self.bad(format!("{} is {other:?}", self.column_name(id)))),
        }
    }

    fn json<T: serde::de::DeserializeOwned>(&self, id: u32) -> Read<T> {
        serde_json::from_str(self.text(id)?)
            .map_err(|e| self.bad(format!("{}: {e}", self.column_name(id))))
    }
}

fn text(s: impl Into<String>) -> Value {
    Value::Text(s.into())
}

fn opt_text(s: Option<impl Into<String>>) -> Value {
    s.map_or(Value::Null, text)
}

fn json(value: &impl serde::Serialize) -> Value {
    Value::Text(serde_json::to_string(value).expect("catalog records serialize"))
}

fn opt_i64(v: Option<i64>) -> Value {
    v.map_or(Value::Null, Value::Int64)
}

pub(crate) fn namespace_row(def: &NamespaceDef) -> Vec<Value> {
    vec![text(def.name.as_str()), Value::Timestamp(def.created_at)]
}

pub(crate) fn namespace_key(name: &NamespaceId) -> Vec<Value> {
    vec![text(name.as_str())]
}

pub(crate) fn namespace_from(row: &StoredRow) -> Read<NamespaceDef> {
    let cells = Cells {
        table: SystemTable::Namespaces,
        row,
    };
    Ok(NamespaceDef {
        name: NamespaceId::new(cells.text(1)?).map_err(|e| cells.bad(e.to_string()))?,
        created_at: cells.timestamp(2)?,
    })
}

pub(crate) fn table_row(def: &TableDef) -> Vec<Value> {
    vec![
        Value::Int64(def.id.0 as i64),
        text(def.namespace.as_str()),
        text(def.name.as_str()),
        text(def.table_type.as_str()),
        Value::Int32(def.schema_version as i32),
        Value::Int32(def.columns.len() as i32),
        opt_text(def.primary_key_column().map(|c| c.name.clone())),
        opt_text(def.options.flush_policy.map(|p| p.to_string())),
        opt_i64(def.options.ttl_seconds.map(|t| t as i64)),
        opt_text(def.options.access_level.map(|a| a.as_str())),
        Value::Timestamp(def.created_at),
        json(def),
    ]
}

pub(crate) fn table_key(id: TableId) -> Vec<Value> {
    vec![Value::Int64(id.0 as i64)]
}

pub(crate) fn table_from(row: &StoredRow) -> Read<TableDef> {
    Cells {
        table: SystemTable::Tables,
        row,
    }
    .json(12)
}

/// One `system.columns` row per column of `def`.
pub(crate) fn column_rows(def: &TableDef) -> Vec<Vec<Value>> {
    def.columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            vec![
                text(def.namespace.as_str()),
                text(def.name.as_str()),
                text(&c.name),
                Value::Int32(c.id as i32),
                Value::Int32(i as i32 + 1),
                text(c.column_type.to_string()),
                Value::Boolean(c.nullable),
                Value::Boolean(def.primary_key == Some(c.id)),
                opt_text(c.default.as_ref().map(|d| d.sql_text(c.column_type))),
                Value::Int64(def.id.0 as i64),
            ]
        })
        .collect()
}

pub(crate) fn column_key(table: TableId, column: u32) -> Vec<Value> {
    vec![Value::Int64(table.0 as i64), Value::Int32(column as i32)]
}

/// `id BIGINT, name TEXT, ...`: a schema version's columns as SQL text.
pub fn render_columns(columns: &[ColumnDef]) -> String {
    columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.column_type))
        .collect::<Vec<_>>()
        .join(", ")
}

pub(crate) fn version_row(def: &TableDef, version: &TableVersion) -> Vec<Value> {
    vec![
        text(def.namespace.as_str()),
        text(def.name.as_str()),
        Value::Int32(version.version as i32),
        Value::Timestamp(version.changed_at),
        text(&version.change),
        text(render_columns(&version.columns)),
        Value::Int64(def.id.0 as i64),
        json(&version.columns),
    ]
}

pub(crate) fn version_key(table: TableId, version: u32) -> Vec<Value> {
    vec![Value::Int64(table.0 as i64), Value::Int32(version as i32)]
}

pub(crate) fn version_from(row: &StoredRow) -> Read<TableVersion> {
    let cells = Cells {
        table: SystemTable::TableVersions,
        row,
    };
    Ok(TableVersion {
        version: cells.int(3)? as u32,
        changed_at: cells.timestamp(4)?,
        change: cells.text(5)?.to_string(),
        columns: cells.json(8)?,
    })
}

pub(crate) fn view_row(def: &ViewDef) -> Vec<Value> {
    vec![
        text(def.namespace.as_str()),
        text(def.name.as_str()),
        text(&def.sql),
        json(&def.columns),
        json(&def.reads),
        Value::Timestamp(def.created_at),
    ]
}

pub(crate) fn view_key(namespace: &NamespaceId, name: &TableName) -> Vec<Value> {
    vec![text(namespace.as_str()), text(name.as_str())]
}

pub(crate) fn view_from(row: &StoredRow) -> Read<ViewDef> {
    let cells = Cells {
        table: SystemTable::Views,
        row,
    };
    Ok(ViewDef {
        namespace: NamespaceId::new(cells.text(1)?).map_err(|e| cells.bad(e.to_string()))?,
        name: TableName::new(cells.text(2)?).map_err(|e| cells.bad(e.to_string()))?,
        sql: cells.text(3)?.to_string(),
        columns: cells.json(4)?,
        reads: cells.json(5)?,
        created_at: cells.timestamp(6)?,
    })
}

pub(crate) fn user_row(user: &UserRecord) -> Vec<Value> {
    vec![
        text(user.id.as_str()),
        text(user.role.as_str()),
        opt_text(user.email.clone()),
        Value::Timestamp(user.created_at),
        Value::Timestamp(user.updated_at),
        opt_text(user.password_hash.clone()),
        Value::Int64(user.token_epoch),
    ]
}

pub(crate) fn user_key(id: &UserId) -> Vec<Value> {
    vec![text(id.as_str())]
}

pub(crate) fn user_from(row: &StoredRow) -> Read<UserRecord> {
    let cells = Cells {
        table: SystemTable::Users,
        row,
    };
    let role = cells.text(2)?;
    Ok(UserRecord {
        id: UserId::new(cells.text(1)?),
        role: Role::parse(role).ok_or_else(|| cells.bad(format!("unknown role {role}")))?,
        email: cells.opt_text(3)?.map(str::to_string),
        created_at: cells.timestamp(4)?,
        updated_at: cells.timestamp(5)?,
        password_hash: cells.opt_text(6)?.map(str::to_string),
        // Users stored before tokens had epochs are in their first.
        token_epoch: cells.opt_i64(7)?.unwrap_or(0),
    })
}

pub(crate) fn job_row(job: &JobRecord) -> Vec<Value> {
    vec![
        text(&job.id),
        text(&job.job_type),
        text(job.status.as_str()),
        opt_text(job.target.clone()),
        text(job.node_id.as_str()),
        Value::Timestamp(job.created_at),
        job.finished_at.map_or(Value::Null, Value::Timestamp),
        opt_i64(job.duration_ms),
        opt_i64(job.rows),
        opt_i64(job.bytes),
        opt_text(job.message.clone()),
    ]
}

pub(crate) fn job_from(row: &StoredRow) -> Read<JobRecord> {
    let cells = Cells {
        table: SystemTable::Jobs,
        row,
    };
    let status = match cells.text(3)? {
        "running" => JobStatus::Running,
        "completed" => JobStatus::Completed,
        "failed" => JobStatus::Failed,
        other => return Err(cells.bad(format!("unknown job status {other}"))),
    };
    let opt_i64 = |id| match row.cell(id) {
        None => Ok(None),
        Some(Value::Int64(v)) => Ok(Some(*v)),
        Some(other) => Err(cells.bad(format!("{} is {other:?}", cells.column_name(id)))),
    };
    Ok(JobRecord {
        id: cells.text(1)?.to_string(),
        job_type: cells.text(2)?.to_string(),
        status,
        target: cells.opt_text(4)?.map(str::to_string),
        node_id: NodeId::new(cells.text(5)?).map_err(|e| cells.bad(e.to_string()))?,
        created_at: cells.timestamp(6)?,
        finished_at: match row.cell(7) {
            None => None,
            Some(_) => Some(cells.timestamp(7)?),
        },
        duration_ms: opt_i64(8)?,
        rows: opt_i64(9)?,
        bytes: opt_i64(10)?,
        message: cells.opt_text(11)?.map(str::to_string),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_has_unique_names_and_a_key_of_required_columns() {
        let mut names = std::collections::HashSet::new();
        for table in SystemTable::ALL {
            assert!(names.insert(table.name()));
            assert_eq!(SystemTable::from_name(table.name()), Some(table));
            let columns = table.columns();
            let mut column_names = std::collections::HashSet::new();
            for c in columns {
                assert!(column_names.insert(c.name), "{}.{}", table.name(), c.name);
            }
            for &id in table.key() {
                let c = &columns[id as usize - 1];
                assert!(!c.nullable && !c.hidden, "{}.{}", table.name(), c.name);
            }
            let def = table.def();
            assert!(def.id.0 >= SYSTEM_TABLE_ID_BASE);
            assert_eq!(
                def.columns.len(),
                columns.iter().filter(|c| !c.hidden).count()
            );
        }
    }
}
