use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{kind} must be 1 to {max} characters, got {len}")]
    Length {
        kind: &'static str,
        max: usize,
        len: usize,
    },
    #[error("{kind} may only contain {allowed}: {value:?}")]
    Characters {
        kind: &'static str,
        allowed: &'static str,
        value: String,
    },
}

fn check(
    kind: &'static str,
    value: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(usize, char) -> bool,
) -> Result<(), IdError> {
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(IdError::Length { kind, max, len });
    }
    if !value.chars().enumerate().all(|(i, c)| ok(i, c)) {
        return Err(IdError::Characters {
            kind,
            allowed,
            value: value.to_string(),
        });
    }
    Ok(())
}

/// The identity of a node, from `[server] node_id`: 1-64 characters of
/// `[A-Za-z0-9_-]`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct NodeId(Arc<str>);

impl NodeId {
    pub fn new(value: &str) -> Result<Self, IdError> {
        check(
            "node_id",
            value,
            64,
            "ASCII letters, digits, '_' and '-'",
            |_, c| c.is_ascii_alphanumeric() || c == '_' || c == '-',
        )?;
        Ok(Self(value.into()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A namespace name, stored lowercase: 1-64 characters of `[a-z0-9_]`, not
/// starting with a digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NamespaceId(Arc<str>);

fn sql_name(kind: &'static str, value: &str) -> Result<Arc<str>, IdError> {
    let lower = value.to_ascii_lowercase();
    check(
        kind,
        &lower,
        64,
        "letters, digits and '_', not starting with a digit",
        |i, c| c.is_ascii_lowercase() || c == '_' || (i > 0 && c.is_ascii_digit()),
    )?;
    Ok(lower.into())
}

impl NamespaceId {
    pub fn new(value: &str) -> Result<Self, IdError> {
        sql_name("namespace name", value).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for NamespaceId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(&value)
    }
}

impl From<NamespaceId> for String {
    fn from(value: NamespaceId) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for NamespaceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A table (or column) name, stored lowercase, same rules as namespaces.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TableName(Arc<str>);

impl TableName {
    pub fn new(value: &str) -> Result<Self, IdError> {
        sql_name("table name", value).map(Self)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TableName {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(&value)
    }
}

impl From<TableName> for String {
    fn from(value: TableName) -> Self {
        value.0.to_string()
    }
}

impl fmt::Display for TableName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The numeric identity of a table, never reused on this node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TableId(pub u64);

impl fmt::Display for TableId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A user's identity (the user name).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct UserId(Arc<str>);

impl UserId {
    pub fn new(value: &str) -> Self {
        Self(value.into())
    }

    /// A user name as given in `CREATE USER` or at login: 1-64 characters
    /// of `[A-Za-z0-9_.@-]`.
    pub fn parse(value: &str) -> Result<Self, IdError> {
        check(
            "user name",
            value,
            64,
            "ASCII letters, digits, '_', '.', '@' and '-'",
            |_, c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '@' | '-'),
        )?;
        Ok(Self(value.into()))
    }

    /// The built-in superuser every request runs as until authentication exists.
    pub fn root() -> Self {
        Self::new("root")
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A row version's sequence number: unique and increasing per node, also
/// across restarts. The high bits are milliseconds since the Unix epoch,
/// the low [`SeqId::COUNTER_BITS`] bits a counter within that millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeqId(pub i64);

impl SeqId {
    pub const COUNTER_BITS: u32 = 22;

    /// The smallest sequence number that can be issued at `millis`.
    pub fn floor_at(millis: i64) -> Self {
        Self(millis << Self::COUNTER_BITS)
    }

    /// Milliseconds since the Unix epoch encoded in this number.
    pub fn millis(self) -> i64 {
        self.0 >> Self::COUNTER_BITS
    }
}

impl fmt::Display for SeqId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_id_rules() {
        assert!(NodeId::new("node-1_A").is_ok());
        assert!(NodeId::new(&"a".repeat(64)).is_ok());
        assert!(matches!(NodeId::new(""), Err(IdError::Length { .. })));
        assert!(matches!(
            NodeId::new(&"a".repeat(65)),
            Err(IdError::Length { .. })
        ));
        assert!(matches!(
            NodeId::new("node 1"),
            Err(IdError::Characters { .. })
        ));
    }

    #[test]
    fn names_are_lowercased_and_checked() {
        assert_eq!(NamespaceId::new("App").unwrap().as_str(), "app");
        assert!(NamespaceId::new("1app").is_err());
        assert!(NamespaceId::new("a1_b").is_ok());
        assert!(TableName::new("my-table").is_err());
    }

    #[test]
    fn seq_encodes_time() {
        let seq = SeqId(SeqId::floor_at(1_700_000_000_000).0 + 5);
        assert_eq!(seq.millis(), 1_700_000_000_000);
    }
}
