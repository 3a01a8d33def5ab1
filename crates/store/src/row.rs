use serde::{Deserialize, Serialize};

/// One cell value as stored. `UUID` and `JSON` columns are stored as their
/// canonical text; timestamps as microseconds since the Unix epoch; dates
/// as days since the epoch; decimals as the unscaled integer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Value {
    Null,
    Boolean(bool),
    Int16(i16),
    Int32(i32),
    Int64(i64),
    Float32(f32),
    Float64(f64),
    Text(String),
    Bytes(Vec<u8>),
    Timestamp(i64),
    Date(i32),
    Decimal(i128),
}

impl Value {
    pub fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }
}

/// One version of a row: its sequence number, whether it is a delete
/// marker, and its cells keyed by stable column id. Every column the table
/// had when the row was written has a cell (NULL included); a column added
/// later is absent and reads as the value it was added with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredRow {
    pub seq: i64,
    pub deleted: bool,
    pub cells: Vec<(u32, Value)>,
}

impl StoredRow {
    pub fn encode(&self) -> Vec<u8> {
        postcard::to_allocvec(self).expect("rows always serialize")
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(bytes)
    }

    /// The `seq` of an encoded row, without decoding its cells (`seq` is
    /// the first field written).
    pub fn decode_seq(bytes: &[u8]) -> Result<i64, postcard::Error> {
        postcard::take_from_bytes::<i64>(bytes).map(|(seq, _)| seq)
    }

    /// The cell of column `id`, or `None` when it is NULL or absent.
    pub fn cell(&self, id: u32) -> Option<&Value> {
        self.cells
            .iter()
            .find_map(|(c, v)| (*c == id && !v.is_null()).then_some(v))
    }

    /// The cell of column `id` as stored (NULL included), or `None` when
    /// the row was written before the column existed.
    pub fn stored_cell(&self, id: u32) -> Option<&Value> {
        self.cells.iter().find_map(|(c, v)| (*c == id).then_some(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_round_trip() {
        let row = StoredRow {
            seq: 42,
            deleted: false,
            cells: vec![
                (1, Value::Int64(-7)),
                (2, Value::Text("héllo".into())),
                (4, Value::Decimal(-12345)),
                (5, Value::Bytes(vec![0, 255])),
            ],
        };
        let decoded = StoredRow::decode(&row.encode()).unwrap();
        assert_eq!(decoded, row);
        assert_eq!(decoded.cell(2), Some(&Value::Text("héllo".into())));
        assert_eq!(decoded.cell(3), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(StoredRow::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
