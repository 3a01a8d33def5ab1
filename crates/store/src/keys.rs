//! Order-preserving key encoding: byte order of encoded keys equals the
//! value order of the primary keys, so RocksDB's sorted iteration is
//! primary-key order.

use crate::row::Value;

/// The key prefix shared by every row of a table.
pub fn table_prefix(table_id: u64) -> [u8; 8] {
    table_id.to_be_bytes()
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
    fn nulls_and_floats_are_not_keys() {
        let mut out = Vec::new();
        assert!(!encode_key_value(&Value::Null, &mut out));
        assert!(!encode_key_value(&Value::Float64(1.0), &mut out));
    }
}
