//! Conversion between stored cells ([`Value`]) and Arrow arrays.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BinaryArray, BinaryBuilder, BooleanArray, BooleanBuilder, Date32Array,
    Date32Builder, Decimal128Array, Decimal128Builder, Float32Array, Float32Builder, Float64Array,
    Float64Builder, Int16Array, Int16Builder, Int32Array, Int32Builder, Int64Array, Int64Builder,
    RecordBatch, RecordBatchOptions, StringViewArray, StringViewBuilder, TimestampMicrosecondArray,
    TimestampMicrosecondBuilder,
};
use arrow::compute::{CastOptions, cast_with_options};
use arrow::datatypes::SchemaRef;
use arrow::util::display::FormatOptions;
use quiver_catalog::{ColumnDef, arrow_type};
use quiver_common::ColumnType;
use quiver_store::{StoredRow, Value};

use crate::error::{QueryError, Result};

/// A column of a scan's output: a user column by stable id (with the value
/// rows written before it existed read as), or `_seq`.
#[derive(Debug, Clone)]
pub enum OutputColumn {
    Column {
        id: u32,
        ty: ColumnType,
        fill: Option<Value>,
    },
    Seq,
    /// The delete marker.
    Deleted,
}

impl OutputColumn {
    pub fn of(column: &ColumnDef) -> Self {
        Self::Column {
            id: column.id,
            ty: column.column_type,
            fill: column.fill.clone(),
        }
    }
}

/// Builds a batch of `rows` in the shape of `schema`.
pub fn rows_to_batch(
    schema: &SchemaRef,
    columns: &[OutputColumn],
    rows: &[&StoredRow],
) -> Result<RecordBatch> {
    let arrays: Vec<ArrayRef> = columns
        .iter()
        .map(|column| match column {
            OutputColumn::Seq => {
                Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.seq))) as ArrayRef
            }
            OutputColumn::Deleted => Arc::new(BooleanArray::from_iter(
                rows.iter().map(|r| Some(r.deleted)),
            )) as ArrayRef,
            OutputColumn::Column { id, ty, fill } => build_array(
                *ty,
                rows.iter().map(|r| match r.stored_cell(*id) {
                    Some(Value::Null) => None,
                    Some(value) => Some(value),
                    None => fill.as_ref(),
                }),
            ),
        })
        .collect();
    let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
    RecordBatch::try_new_with_options(schema.clone(), arrays, &options)
        .map_err(|e| QueryError::Internal(format!("building scan batch: {e}")))
}

macro_rules! build {
    ($builder:ty, $cells:expr, $variant:ident, $conv:expr) => {{
        let mut builder = <$builder>::new();
        for cell in $cells {
            match cell {
                Some(Value::$variant(v)) => builder.append_value($conv(v)),
                _ => builder.append_null(),
            }
        }
        Arc::new(builder.finish()) as ArrayRef
    }};
}

fn build_array<'a>(ty: ColumnType, cells: impl Iterator<Item = Option<&'a Value>>) -> ArrayRef {
    match ty {
        ColumnType::Boolean => build!(BooleanBuilder, cells, Boolean, |v: &bool| *v),
        ColumnType::SmallInt => build!(Int16Builder, cells, Int16, |v: &i16| *v),
        ColumnType::Int => build!(Int32Builder, cells, Int32, |v: &i32| *v),
        ColumnType::BigInt => build!(Int64Builder, cells, Int64, |v: &i64| *v),
        ColumnType::Float => build!(Float32Builder, cells, Float32, |v: &f32| *v),
        ColumnType::Double => build!(Float64Builder, cells, Float64, |v: &f64| *v),
        ColumnType::Text | ColumnType::Json | ColumnType::Uuid => {
            let mut builder = StringViewBuilder::new();
            for cell in cells {
                match cell {
                    Some(Value::Text(v)) => builder.append_value(v),
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Bytes => {
            let mut builder = BinaryBuilder::new();
            for cell in cells {
                match cell {
                    Some(Value::Bytes(v)) => builder.append_value(v),
                    _ => builder.append_null(),
                }
            }
            Arc::new(builder.finish())
        }
        ColumnType::Timestamp => {
            build!(TimestampMicrosecondBuilder, cells, Timestamp, |v: &i64| *v)
        }
        ColumnType::Date => build!(Date32Builder, cells, Date, |v: &i32| *v),
        ColumnType::Decimal { precision, scale } => {
            let mut builder = Decimal128Builder::new();
            for cell in cells {
                match cell {
                    Some(Value::Decimal(v)) => builder.append_value(*v),
                    _ => builder.append_null(),
                }
            }
            Arc::new(
                builder
                    .finish()
                    .with_precision_and_scale(precision, scale)
                    .expect("column precision was validated at CREATE"),
            )
        }
    }
}

/// A stored value as a DataFusion scalar of `column`'s type.
pub fn value_to_scalar(
    value: &Value,
    column: &ColumnDef,
) -> datafusion::error::Result<datafusion::scalar::ScalarValue> {
    let array = build_array(column.column_type, std::iter::once(Some(value)));
    datafusion::scalar::ScalarValue::try_from_array(&array, 0)
}

/// Converts an array of any type to the stored values of `column`,
/// casting where Arrow can (strings to timestamps, integers to decimals,
/// ...) and refusing values that do not fit, with a message naming the
/// column.
pub fn array_to_values(array: &ArrayRef, column: &ColumnDef) -> Result<Vec<Value>> {
    let target = arrow_type(column.column_type);
    let options = CastOptions {
        safe: false,
        format_options: FormatOptions::default(),
    };
    let cast = if array.data_type() == &target {
        array.clone()
    } else {
        cast_with_options(array, &target, &options).map_err(|e| {
            QueryError::invalid(format!(
                "invalid value for column {} ({}): {e}",
                column.name, column.column_type
            ))
        })?
    };
    let len = cast.len();
    let mut out = Vec::with_capacity(len);
    macro_rules! each {
        ($array:ty, $wrap:expr) => {{
            let typed = cast
                .as_any()
                .downcast_ref::<$array>()
                .expect("cast result type");
            for i in 0..len {
                out.push(if typed.is_null(i) {
                    Value::Null
                } else {
                    $wrap(typed.value(i))
                });
            }
        }};
    }
    match column.column_type {
        ColumnType::Boolean => each!(BooleanArray, Value::Boolean),
        ColumnType::SmallInt => each!(Int16Array, Value::Int16),
        ColumnType::Int => each!(Int32Array, Value::Int32),
        ColumnType::BigInt => each!(Int64Array, Value::Int64),
        ColumnType::Float => each!(Float32Array, Value::Float32),
        ColumnType::Double => each!(Float64Array, Value::Float64),
        ColumnType::Text => each!(StringViewArray, |s: &str| Value::Text(s.to_string())),
        ColumnType::Json => {
            let typed = cast
                .as_any()
                .downcast_ref::<StringViewArray>()
                .expect("utf8view");
            for i in 0..len {
                if typed.is_null(i) {
                    out.push(Value::Null);
                    continue;
                }
                let text = typed.value(i);
                serde_json::from_str::<serde_json::Value>(text).map_err(|e| {
                    QueryError::invalid(format!(
                        "invalid value for column {} (JSON): {e}",
                        column.name
                    ))
                })?;
                out.push(Value::Text(text.to_string()));
            }
        }
        ColumnType::Uuid => {
            let typed = cast
                .as_any()
                .downcast_ref::<StringViewArray>()
                .expect("utf8view");
            for i in 0..len {
                if typed.is_null(i) {
                    out.push(Value::Null);
                    continue;
                }
                let uuid = uuid::Uuid::parse_str(typed.value(i)).map_err(|e| {
                    QueryError::invalid(format!(
                        "invalid value for column {} (UUID): {e}",
                        column.name
                    ))
                })?;
                out.push(Value::Text(uuid.hyphenated().to_string()));
            }
        }
        ColumnType::Bytes => each!(BinaryArray, |b: &[u8]| Value::Bytes(b.to_vec())),
        ColumnType::Timestamp => each!(TimestampMicrosecondArray, Value::Timestamp),
        ColumnType::Date => each!(Date32Array, Value::Date),
        ColumnType::Decimal { .. } => each!(Decimal128Array, Value::Decimal),
    }
    Ok(out)
}

/// The value `NOW()` gives a column of `ty` at `now_micros`: the day for
/// DATE, the instant otherwise.
pub fn now_value(ty: ColumnType, now_micros: i64) -> Value {
    match ty {
        ColumnType::Date => Value::Date(now_micros.div_euclid(86_400_000_000) as i32),
        _ => Value::Timestamp(now_micros),
    }
}

/// Renders a stored value for messages (duplicate keys, ...).
pub fn display_value(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::Boolean(v) => v.to_string(),
        Value::Int16(v) => v.to_string(),
        Value::Int32(v) | Value::Date(v) => v.to_string(),
        Value::Int64(v) | Value::Timestamp(v) => v.to_string(),
        Value::Float32(v) => v.to_string(),
        Value::Float64(v) => v.to_string(),
        Value::Decimal(v) => v.to_string(),
        Value::Text(s) => format!("'{s}'"),
        Value::Bytes(b) => format!("{} bytes", b.len()),
    }
}

/// The bytes of a batch's text and binary values: no encoding writes
/// fewer.
pub fn value_bytes(batch: &RecordBatch) -> usize {
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::DataType;
    batch
        .columns()
        .iter()
        .map(|column| {
            let span = |offsets: &[i64]| match (offsets.first(), offsets.last()) {
                (Some(first), Some(last)) => (last - first) as usize,
                _ => 0,
            };
            match column.data_type() {
                DataType::Utf8 => {
                    let offsets = column.as_string::<i32>().value_offsets();
                    span(&[i64::from(offsets[0]), i64::from(offsets[offsets.len() - 1])])
                }
                DataType::LargeUtf8 => span(column.as_string::<i64>().value_offsets()),
                DataType::Binary => {
                    let offsets = column.as_binary::<i32>().value_offsets();
                    span(&[i64::from(offsets[0]), i64::from(offsets[offsets.len() - 1])])
                }
                DataType::LargeBinary => span(column.as_binary::<i64>().value_offsets()),
                DataType::Utf8View => column
                    .as_string_view()
                    .views()
                    .iter()
                    .map(|view| *view as u32 as usize)
                    .sum(),
                DataType::BinaryView => column
                    .as_binary_view()
                    .views()
                    .iter()
                    .map(|view| *view as u32 as usize)
                    .sum(),
                _ => 0,
            }
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use arrow::datatypes::{DataType, Field, Schema};

    fn column(ty: ColumnType) -> ColumnDef {
        ColumnDef {
            id: 1,
            name: "c".into(),
            column_type: ty,
            nullable: true,
            default: None,
            fill: None,
        }
    }

    #[test]
    fn casts_and_checks_values() {
        let strings: ArrayRef = Arc::new(StringArray::from(vec![Some("2024-01-02"), None]));
        let values = array_to_values(&strings, &column(ColumnType::Date)).unwrap();
        assert_eq!(values, vec![Value::Date(19724), Value::Null]);

        let big: ArrayRef = Arc::new(Int64Array::from(vec![100_000]));
        let err = array_to_values(&big, &column(ColumnType::SmallInt)).unwrap_err();
        assert!(err.to_string().contains("column c (SMALLINT)"), "{err}");

        let json: ArrayRef = Arc::new(StringArray::from(vec!["{\"a\": 1}", "{oops"]));
        assert!(array_to_values(&json, &column(ColumnType::Json)).is_err());

        let uuid: ArrayRef = Arc::new(StringArray::from(vec![
            "67E55044-10B1-426F-9247-BB680E5FE0C8",
        ]));
        assert_eq!(
            array_to_values(&uuid, &column(ColumnType::Uuid)).unwrap(),
            vec![Value::Text("67e55044-10b1-426f-9247-bb680e5fe0c8".into())]
        );
    }

    #[test]
    fn builds_batches_with_nulls_and_seq() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("c", DataType::Int32, true),
            Field::new("_seq", DataType::Int64, false),
        ]));
        let a = StoredRow {
            seq: 7,
            deleted: false,
            cells: vec![(1, Value::Int32(3))],
        };
        let b = StoredRow {
            seq: 8,
            deleted: false,
            cells: vec![],
        };
        let batch = rows_to_batch(
            &schema,
            &[
                OutputColumn::Column {
                    id: 1,
                    ty: ColumnType::Int,
                    fill: None,
                },
                OutputColumn::Seq,
            ],
            &[&a, &b],
        )
        .unwrap();
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(batch.column(0).null_count(), 1);
    }
}
