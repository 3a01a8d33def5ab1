use quiver_common::{ColumnType, NamespaceId, TableId, TableName};
use quiver_store::Value;
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

impl std::fmt::Display for DefaultValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Literal(Value::Text(s)) => write!(f, "'{}'", s.replace('\'', "''")),
            Self::Literal(v) => write!(f, "{}", literal_text(v)),
            Self::Now => f.write_str("NOW()"),
            Self::SnowflakeId => f.write_str("SNOWFLAKE_ID()"),
            Self::UuidV7 => f.write_str("UUID_V7()"),
            Self::CurrentUser => f.write_str("CURRENT_USER()"),
        }
    }
}

fn literal_text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Boolean(b) => b.to_string().to_uppercase(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) | Value::Date(v) => v.to_string(),
        Value::Int64(v) | Value::Timestamp(v) => v.to_string(),
        Value::Float32(v) => v.to_string(),
        Value::Float64(v) => v.to_string(),
        Value::Decimal(v) => v.to_string(),
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
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDef {
    pub id: TableId,
    pub namespace: NamespaceId,
    pub name: TableName,
    pub table_type: TableType,
    pub columns: Vec<ColumnDef>,
    /// Id of the primary-key column.
    pub primary_key: Option<u32>,
    pub options: TableOptions,
    pub schema_version: u32,
    /// Microseconds since the Unix epoch.
    pub created_at: i64,
}

impl TableDef {
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.namespace, self.name)
    }

    pub fn column(&self, name: &str) -> Option<&ColumnDef> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key_column(&self) -> Option<&ColumnDef> {
        let id = self.primary_key?;
        self.columns.iter().find(|c| c.id == id)
    }
}
