use quiver_common::{ColumnType, NamespaceId, NodeId, Role, TableId, TableName, UserId};
use quiver_store::{Scope, Value};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NamespaceDef {
    pub name: NamespaceId,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

/// How a table's rows are owned and kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TableType {
    /// One set of rows shared by every user.
    Shared,
    /// Rows owned per user; each user sees only their own.
    User,
    /// Append-mostly rows that expire after `TTL_SECONDS`.
    Stream,
}

impl TableType {
    /// Whether rows are kept per owner: each user reads and writes only
    /// their own.
    pub fn per_user(self) -> bool {
        matches!(self, Self::User | Self::Stream)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shared => "SHARED",
            Self::User => "USER",
            Self::Stream => "STREAM",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AccessLevel {
    Public,
    Private,
}

impl AccessLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "PUBLIC",
            Self::Private => "PRIVATE",
        }
    }
}

/// When hot rows move to cold storage: after `rows` rows or `interval_secs`
/// seconds, whichever comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FlushPolicy {
    pub rows: Option<u64>,
    pub interval_secs: Option<u64>,
}

impl std::fmt::Display for FlushPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts = Vec::new();
        if let Some(rows) = self.rows {
            parts.push(format!("rows:{rows}"));
        }
        if let Some(secs) = self.interval_secs {
            parts.push(format!("interval:{secs}"));
        }
        f.write_str(&parts.join(","))
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TableOptions {
    pub flush_policy: Option<FlushPolicy>,
    pub ttl_seconds: Option<u64>,
    pub access_level: Option<AccessLevel>,
}

/// A column's default, evaluated for each inserted row that omits it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum DefaultValue {
    /// A constant, already converted to the column's type.
    Literal(Value),
    Now,
    SnowflakeId,
    UuidV7,
    CurrentUser,
}

impl DefaultValue {
    /// The default as SQL text, for `DESCRIBE`; literals are rendered in
    /// the column's type.
    pub fn sql_text(&self, column_type: ColumnType) -> String {
        match self {
            Self::Literal(Value::Text(s)) => format!("'{}'", s.replace('\'', "''")),
            Self::Literal(v) => literal_text(v, column_type),
            Self::Now => "NOW()".to_string(),
            Self::SnowflakeId => "SNOWFLAKE_ID()".to_string(),
            Self::UuidV7 => "UUID_V7()".to_string(),
            Self::CurrentUser => "CURRENT_USER()".to_string(),
        }
    }
}

fn literal_text(value: &Value, column_type: ColumnType) -> String {
    match value {
        Value::Decimal(v) => {
            let ColumnType::Decimal { scale, .. } = column_type else {
                return v.to_string();
            };
            let scale = scale.max(0) as u32;
            let divisor = 10i128.pow(scale);
            let (whole, fraction) = (v / divisor, (v % divisor).abs());
            let sign = if *v < 0 && whole == 0 { "-" } else { "" };
            if scale == 0 {
                format!("{sign}{whole}")
            } else {
                format!("{sign}{whole}.{fraction:0width$}", width = scale as usize)
            }
        }
        Value::Timestamp(micros) => chrono::DateTime::from_timestamp_micros(*micros)
            .map(|t| format!("'{}'", t.naive_utc()))
            .unwrap_or_else(|| micros.to_string()),
        Value::Date(days) => chrono::DateTime::from_timestamp(i64::from(*days) * 86_400, 0)
            .map(|t| format!("'{}'", t.date_naive()))
            .unwrap_or_else(|| days.to_string()),
        Value::Null => "NULL".to_string(),
        Value::Boolean(b) => b.to_string().to_uppercase(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) => v.to_string(),
        Value::Int64(v) => v.to_string(),
        Value::Float32(v) => v.to_string(),
        Value::Float64(v) => v.to_string(),
        Value::Text(s) => s.clone(),
        Value::Bytes(b) => format!("{} bytes", b.len()),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDef {
    /// Stable id: rows store cells by id, never by name.
    pub id: u32,
    pub name: String,
    pub column_type: ColumnType,
    pub nullable: bool,
    pub default: Option<DefaultValue>,
    /// What rows written before this column was added read as: the
    /// column's default at `ADD COLUMN` time, or NULL.
    #[serde(default)]
    pub fill: Option<Value>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    pub namespace: NamespaceId,
    pub name: TableName,
    pub table_type: TableType,
    pub columns: Vec<ColumnDef>,
    /// Stored columns SQL never sees (system tables' password hashes and
    /// encoded definitions).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hidden_columns: Vec<ColumnDef>,
    /// Id of the primary-key column.
    pub primary_key: Option<u32>,
    pub options: TableOptions,
    pub schema_version: u32,
    /// The id the next added column gets; ids are never reused, so a
    /// dropped column's old cells are never read as a new column.
    #[serde(default)]
    pub next_column_id: u32,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

/// A view: its SQL text is the definition, with every table it reads
/// qualified by namespace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewDef {
    pub namespace: NamespaceId,
    pub name: TableName,
    /// The `SELECT`, as stored and re-planned at each use.
    pub sql: String,
    /// Column names given in `CREATE VIEW v (a, b)`, if any.
    pub columns: Vec<String>,
    /// Tables and views it reads, as `namespace.name`.
    pub reads: Vec<String>,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

impl ViewDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }
}

/// One schema version of a table, kept for `DESCRIBE TABLE ... HISTORY`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableVersion {
    pub version: u32,
    /// Microseconds since the Unix epoch.
    pub changed_at: i64,
    /// The statement that made this version, e.g. `ADD COLUMN age INT`.
    pub change: String,
    pub columns: Vec<ColumnDef>,
}

impl TableDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    /// The rows `user` reads and writes: their own in a per-user table,
    /// all of them otherwise.
    pub fn scope_for(&self, user: &UserId) -> Scope {
        if self.table_type.per_user() {
            Scope::owned(self.id.0, user.as_str())
        } else {
            Scope::table(self.id.0)
        }
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key_column(&self) -> Option<&ColumnDef> {
        let id = self.primary_key?;
        self.columns.iter().find(|c| c.id == id)
    }
}

/// A user account, stored in `system.users`.
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub role: Role,
    pub email: Option<String>,
    /// Never visible to SQL; `None` until a password is set.
    pub password_hash: Option<String>,
    /// Microseconds since the Unix epoch. With the id, it names this user
    /// apart from any earlier user of the same name: tokens carry both.
    pub created_at: i64,
    pub updated_at: i64,
    /// Tokens carry the epoch they were issued in; a password or role
    /// change, and signing out, move it on and end every earlier token.
    pub token_epoch: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }
}

/// A background job (upgrade, flush, compaction), stored in `system.jobs`.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: String,
    /// What the job does, e.g. `flush`.
    pub job_type: String,
    pub status: JobStatus,
    /// What it works on, e.g. `shop.orders`.
    pub target: Option<String>,
    pub node_id: NodeId,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub duration_ms: Option<i64>,
    pub rows: Option<i64>,
    pub bytes: Option<i64>,
    pub message: Option<String>,
}
