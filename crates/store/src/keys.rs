//! Order-preserving key encoding: byte order of encoded keys equals the
//! value order of the primary keys, so RocksDB's sorted iteration is
//! primary-key order.

use std::sync::Arc;

use crate::row::Value;

/// The key prefix shared by every row of a table.
pub fn table_prefix(table_id: u64) -> [u8; 8] {
    table_id.to_be_bytes()
}

/// Where a set of rows lives: a whole table, or one owner's rows of a
/// table whose rows are kept per user (USER and STREAM tables). Each scope
/// has its own contiguous key range in the hot store and its own manifest
/// and segments in the cold tier, so nothing read for one owner ever
/// touches another owner's rows.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope {
    table_id: u64,
    owner: Option<Arc<str>>,
}

impl Scope {
    /// All rows of a table.
    pub fn table(table_id: u64) -> Self {
        Self {
            table_id,
            owner: None,
        }
    }

    /// The rows `owner` owns in a per-user table.
    pub fn owned(table_id: u64, owner: &str) -> Self {
        Self {
            table_id,
            owner: Some(owner.into()),
        }
    }

    pub fn table_id(&self) -> u64 {
        self.table_id
    }

    pub fn owner(&self) -> Option<&str> {
        self.owner.as_deref()
    }

    /// The key prefix of every row of the scope: the table prefix, then
    /// the owner's name encoded like a text key.
    pub fn prefix(&self) -> Vec<u8> {
        let mut out = table_prefix(self.table_id).to_vec();
        if let Some(owner) = &self.owner {
            escape_bytes(owner.as_bytes(), &mut out);
        }
        out
    }

    /// The smallest key after every key of the scope.
    pub fn end(&self) -> Vec<u8> {
        match &self.owner {
            None => table_prefix(self.table_id + 1).to_vec(),
            Some(_) => {
                // An owner's prefix ends with the terminator 0x00 0x01; no
                // other owner's prefix starts with it, and 0x00 0x02 sorts
                // after all of its keys.
                let mut end = self.prefix();
                *end.last_mut()
                    .expect("owner prefixes end with a terminator") += 1;
                end
            }
        }
    }

    /// The full key of the row whose primary key is `key`; `None` when the
    /// value cannot be a key (NULL).
    pub fn key(&self, key: &Value) -> Option<Vec<u8>> {
        let mut out = self.prefix();
        encode_key_value(key, &mut out).then_some(out)
    }
}

/// The owner encoded at the start of `rest` (a key after its table
/// prefix), and the length of that encoding.
pub(crate) fn decode_owner(rest: &[u8]) -> Option<(String, usize)> {
    let mut owner = Vec::new();
    let mut i = 0;
    while i < rest.len() {
        match (rest[i], rest.get(i + 1)) {
            (0, Some(0xff)) => {
                owner.push(0);
                i += 2;
            }
            (0, Some(1)) => return String::from_utf8(owner).ok().map(|o| (o, i + 2)),
            (0, _) => return None,
            (b, _) => {
                owner.push(b);
                i += 1;
            }
        }
    }
    None
}

/// Appends the memcomparable encoding of a primary-key value to `out`.
/// Returns `false` for values that cannot be keys (NULL, floats, bytes of
/// other types are fine).
pub fn encode_key_value(value: &Value, out: &mut Vec<u8>) -> bool {
    match value {
        Value::Null | Value::Float32(_) | Value::Float64(_) => return false,
        Value::Boolean(b) => out.push(u8::from(*b)),
        Value::Int16(v) => out.extend_from_slice(&((*v as u16) ^ 0x8000).to_be_bytes()),
        Value::Int32(v) | Value::Date(v) => {
            out.extend_from_slice(&((*v as u32) ^ 0x8000_0000).to_be_bytes())
        }
        Value::Int64(v) | Value::Timestamp(v) => {
            out.extend_from_slice(&((*v as u64) ^ 0x8000_0000_0000_0000).to_be_bytes())
        }
        Value::Decimal(v) => out.extend_from_slice(&((*v as u128) ^ (1u128 << 127)).to_be_bytes()),
        Value::Text(s) => escape_bytes(s.as_bytes(), out),
        Value::Bytes(b) => escape_bytes(b, out),
    }
    true
}

/// Variable-length values: 0x00 is escaped as 0x00 0xFF and the value ends
/// with 0x00 0x01, so a prefix always sorts before its extensions.
fn escape_bytes(bytes: &[u8], out: &mut Vec<u8>) {
    for &b in bytes {
        out.push(b);
        if b == 0 {
            out.push(0xff);
        }
    }
    out.extend_from_slice(&[0, 1]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(v: Value) -> Vec<u8> {
        let mut out = Vec::new();
        assert!(encode_key_value(&v, &mut out));
        out
    }

    #[test]
    fn integers_sort_by_value() {
        let values = [i64::MIN, -5, -1, 0, 1, 7, i64::MAX];
        let keys: Vec<_> = values.iter().map(|v| key(Value::Int64(*v))).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
        let keys: Vec<_> = [-3i16, 0, 3]
            .iter()
            .map(|v| key(Value::Int16(*v)))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn text_sorts_and_prefixes_come_first() {
        let words = ["", "a", "a\0", "ab", "b"];
        let keys: Vec<_> = words
            .iter()
            .map(|w| key(Value::Text(w.to_string())))
            .collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]), "{keys:?}");
    }

    #[test]
    fn owner_scopes_are_disjoint_and_ordered() {
        let a = Scope::owned(7, "a");
        let ab = Scope::owned(7, "ab");
        let a_key = a.key(&Value::Int64(i64::MAX)).unwrap();
        let ab_key = ab.key(&Value::Int64(i64::MIN)).unwrap();
        // Every key of "a" sorts inside a's range and before "ab"'s keys.
        assert!(a_key >= a.prefix() && a_key < a.end());
        assert!(a.end() <= ab.prefix(), "{:?} {:?}", a.end(), ab.prefix());
        assert!(ab_key >= ab.prefix() && ab_key < ab.end());
        assert!(ab.end() <= Scope::table(8).prefix());
        let (owner, len) = decode_owner(&ab_key[8..]).unwrap();
        assert_eq!((owner.as_str(), len), ("ab", 4));
        assert_eq!(Scope::table(7).end(), Scope::table(8).prefix());
    }

    #[test]
    fn nulls_and_floats_are_not_keys() {
        let mut out = Vec::new();
        assert!(!encode_key_value(&Value::Null, &mut out));
        assert!(!encode_key_value(&Value::Float64(1.0), &mut out));
    }
}
