use std::fmt;

use serde::{Deserialize, Serialize};

/// The column types a Quiver table can declare. Their wire names (see
/// [`ColumnType::wire_name`]) are those of the v1 API's `data_type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ColumnType {
    Boolean,
    SmallInt,
    Int,
    BigInt,
    Float,
    Double,
    Text,
    Timestamp,
    Date,
    Json,
    Bytes,
    Uuid,
    Decimal { precision: u8, scale: i8 },
}

impl ColumnType {
    /// Largest precision of a `DECIMAL` column.
    pub const MAX_DECIMAL_PRECISION: u8 = 38;

    /// The `data_type` name on the wire; decimals are an object there and
    /// use [`ColumnType::Decimal`]'s fields instead.
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::Boolean => "Boolean",
            Self::SmallInt => "SmallInt",
            Self::Int => "Int",
            Self::BigInt => "BigInt",
            Self::Float => "Float",
            Self::Double => "Double",
            Self::Text => "Text",
            Self::Timestamp => "Timestamp",
            Self::Date => "Date",
            Self::Json => "Json",
            Self::Bytes => "Bytes",
            Self::Uuid => "Uuid",
            Self::Decimal { .. } => "Decimal",
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Decimal { precision, scale } => write!(f, "DECIMAL({precision},{scale})"),
            Self::Boolean => f.write_str("BOOLEAN"),
            Self::SmallInt => f.write_str("SMALLINT"),
            Self::Int => f.write_str("INT"),
            Self::BigInt => f.write_str("BIGINT"),
            Self::Float => f.write_str("FLOAT"),
            Self::Double => f.write_str("DOUBLE"),
            Self::Text => f.write_str("TEXT"),
            Self::Timestamp => f.write_str("TIMESTAMP"),
            Self::Date => f.write_str("DATE"),
            Self::Json => f.write_str("JSON"),
            Self::Bytes => f.write_str("BYTES"),
            Self::Uuid => f.write_str("UUID"),
        }
    }
}

/// What a user may do, in order of privilege (each role may do all that
/// the ones before it may). Roles serialize lowercase on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Anonymous,
    User,
    Service,
    Dba,
    System,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Anonymous => "anonymous",
            Self::User => "user",
            Self::Service => "service",
            Self::Dba => "dba",
            Self::System => "system",
        }
    }

    /// Parses a role name, ignoring case.
    pub fn parse(name: &str) -> Option<Self> {
        [
            Self::Anonymous,
            Self::User,
            Self::Service,
            Self::Dba,
            Self::System,
        ]
        .into_iter()
        .find(|r| r.as_str().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
