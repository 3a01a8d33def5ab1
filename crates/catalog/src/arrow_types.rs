use std::collections::HashMap;

use arrow::datatypes::{DataType, Field, TimeUnit};
use quiver_common::ColumnType;

/// Field metadata key naming the Quiver type where the Arrow type alone is
/// ambiguous (`Json` and `Uuid` are both strings).
pub const FIELD_TYPE_KEY: &str = "quiver.type";
/// Field metadata key marking the primary-key column.
pub const PK_FLAG_KEY: &str = "quiver.pk";
/// The system column holding a row version's sequence number.
pub const SEQ_COLUMN: &str = "_seq";
/// The stored delete marker; never exposed because deleted rows never show.
pub const DELETED_COLUMN: &str = "_deleted";

/// The Arrow type a column of `ty` has in query results.
pub fn arrow_type(ty: ColumnType) -> DataType {
    match ty {
        ColumnType::Boolean => DataType::Boolean,
        ColumnType::SmallInt => DataType::Int16,
        ColumnType::Int => DataType::Int32,
        ColumnType::BigInt => DataType::Int64,
        ColumnType::Float => DataType::Float32,
        ColumnType::Double => DataType::Float64,
        // String views, as DataFusion reads Parquet strings: decoding
        // points into the page instead of copying, and grouping and
        // comparing short strings is faster.
        ColumnType::Text | ColumnType::Json | ColumnType::Uuid => DataType::Utf8View,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Date => DataType::Date32,
        ColumnType::Bytes => DataType::Binary,
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(precision, scale),
    }
}

/// Metadata recorded on a field so that results can name its Quiver type.
pub(crate) fn field_metadata(ty: ColumnType, primary_key: bool) -> HashMap<String, String> {
    let mut metadata = HashMap::new();
    if matches!(ty, ColumnType::Json | ColumnType::Uuid) {
        metadata.insert(FIELD_TYPE_KEY.to_string(), ty.wire_name().to_string());
    }
    if primary_key {
        metadata.insert(PK_FLAG_KEY.to_string(), "true".to_string());
    }
    metadata
}

/// The Quiver type of a result field: from its metadata where present,
/// otherwise from its Arrow type. `None` for Arrow types Quiver has no
/// name for (lists, structs, ...), which results carry as JSON.
pub fn column_type_of_field(field: &Field) -> Option<ColumnType> {
    match field.metadata().get(FIELD_TYPE_KEY).map(String::as_str) {
        Some("Json") => return Some(ColumnType::Json),
        Some("Uuid") => return Some(ColumnType::Uuid),
        _ => {}
    }
    Some(match field.data_type() {
        DataType::Boolean => ColumnType::Boolean,
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ColumnType::SmallInt,
        DataType::Int32 | DataType::UInt16 => ColumnType::Int,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ColumnType::BigInt,
        DataType::Float16 | DataType::Float32 => ColumnType::Float,
        DataType::Float64 => ColumnType::Double,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => ColumnType::Text,
        DataType::Timestamp(_, _) => ColumnType::Timestamp,
        DataType::Date32 | DataType::Date64 => ColumnType::Date,
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => ColumnType::Bytes,
        DataType::FixedSizeBinary(_) => ColumnType::Bytes,
        DataType::Decimal32(p, s)
        | DataType::Decimal64(p, s)
        | DataType::Decimal128(p, s)
        | DataType::Decimal256(p, s) => ColumnType::Decimal {
            precision: *p,
            scale: *s,
        },
        _ => return None,
    })
}
