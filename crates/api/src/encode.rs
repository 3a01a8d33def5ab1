//! JSON encoding of results, batch by batch, in the v1 wire format:
//! positional rows, 64-bit integers as strings, timestamps as integer
//! microseconds, dates as `YYYY-MM-DD`, bytes as base64, JSON as JSON.

use std::io::Write;

use base64::Engine;
use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Date64Type, Field, Float32Type, Float64Type, Int8Type, Int16Type,
    Int32Type, Int64Type, SchemaRef, TimeUnit, TimestampMicrosecondType, TimestampMillisecondType,
    TimestampNanosecondType, TimestampSecondType, UInt8Type, UInt16Type, UInt32Type, UInt64Type,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use quiver_catalog::{PK_FLAG_KEY, column_type_of_field};
use quiver_common::ColumnType;
use serde_json::{Value as Json, json};

/// The `schema` array of a result.
pub fn schema_json(schema: &SchemaRef) -> Json {
    Json::Array(
        schema
            .fields()
            .iter()
            .enumerate()
            .map(|(index, field)| field_json(index, field))
            .collect(),
    )
}

fn field_json(index: usize, field: &Field) -> Json {
    let data_type = match column_type_of_field(field) {
        Some(ColumnType::Decimal { precision, scale }) => {
            json!({ "Decimal": { "precision": precision, "scale": scale } })
        }
        Some(ty) => json!(ty.wire_name()),
        None if matches!(field.data_type(), DataType::Time32(_) | DataType::Time64(_)) => {
            json!("Time")
        }
        None => json!("Json"),
    };
    let mut out = json!({ "name": field.name(), "data_type": data_type, "index": index });
    let mut flags = Vec::new();
    if field.metadata().get(PK_FLAG_KEY).is_some() {
        flags.push("pk");
    }
    if !field.is_nullable() {
        flags.push("nn");
    }
    if !flags.is_empty() {
        out["flags"] = json!(flags);
    }
    out
}

/// Appends the rows of `batch` to `out` as comma-separated JSON arrays
/// (with a leading comma unless `first`).
pub fn write_rows(batch: &RecordBatch, out: &mut Vec<u8>, first: bool) {
    write_each(batch, out, first, None);
}

/// Appends the rows of `batch` to `out` as comma-separated JSON objects
/// keyed by column name (with a leading comma unless `first`): the row
/// format of live query messages.
pub fn write_objects(batch: &RecordBatch, out: &mut Vec<u8>, first: bool) {
    let names: Vec<Vec<u8>> = batch
        .schema()
        .fields()
        .iter()
        .map(|f| serde_json::to_vec(f.name()).expect("names serialize"))
        .collect();
    write_each(batch, out, first, Some(&names));
}

/// Writes each row as an array, or as an object when `names` (the JSON
/// encoded column names) are given.
fn write_each(batch: &RecordBatch, out: &mut Vec<u8>, mut first: bool, names: Option<&[Vec<u8>]>) {
    let schema = batch.schema();
    let writers: Vec<CellWriter<'_>> = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(array, field)| CellWriter::new(array, field))
        .collect();
    let (open, close) = if names.is_some() {
        (b'{', b'}')
    } else {
        (b'[', b']')
    };
    for row in 0..batch.num_rows() {
        if !first {
            out.push(b',');
        }
        first = false;
        out.push(open);
        for (i, writer) in writers.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            if let Some(names) = names {
                out.extend_from_slice(&names[i]);
                out.push(b':');
            }
            writer.write(row, out);
        }
        out.push(close);
    }
}

fn write_str(s: &str, out: &mut Vec<u8>) {
    serde_json::to_writer(&mut *out, s).expect("writing to a Vec cannot fail");
}

/// Writes a float in its shortest exact form (`0.1` for an f32 0.1, not
/// its f64 widening).
fn write_float<F: serde::Serialize + std::fmt::Display + Copy>(
    v: F,
    finite: bool,
    out: &mut Vec<u8>,
) {
    if finite {
        serde_json::to_writer(&mut *out, &v).expect("finite floats serialize");
    } else {
        // JSON has no NaN or infinity; send them as strings.
        write_str(&v.to_string(), out);
    }
}

struct CellWriter<'a> {
    array: &'a ArrayRef,
    is_json: bool,
    formatter: Option<ArrayFormatter<'a>>,
}

const FORMAT: FormatOptions<'static> = FormatOptions::new();

impl<'a> CellWriter<'a> {
    fn new(array: &'a ArrayRef, field: &Field) -> Self {
        let is_json = column_type_of_field(field) == Some(ColumnType::Json);
        let formatter = match array.data_type() {
            DataType::Decimal32(..)
            | DataType::Decimal64(..)
            | DataType::Decimal128(..)
            | DataType::Decimal256(..)
            | DataType::Time32(_)
            | DataType::Time64(_)
            | DataType::Interval(_)
            | DataType::Duration(_) => ArrayFormatter::try_new(array.as_ref(), &FORMAT).ok(),
            _ => None,
        };
        Self {
            array,
            is_json,
            formatter,
        }
    }

    fn write(&self, row: usize, out: &mut Vec<u8>) {
        let array = self.array;
        if array.is_null(row) {
            out.extend_from_slice(b"null");
            return;
        }
        if let Some(formatter) = &self.formatter {
            write_str(&formatter.value(row).to_string(), out);
            return;
        }
        match array.data_type() {
            DataType::Boolean => {
                let v = array.as_boolean().value(row);
                out.extend_from_slice(if v { b"true" } else { b"false" });
            }
            DataType::Int8 => number(out, array.as_primitive::<Int8Type>().value(row)),
            DataType::Int16 => number(out, array.as_primitive::<Int16Type>().value(row)),
            DataType::Int32 => number(out, array.as_primitive::<Int32Type>().value(row)),
            DataType::UInt8 => number(out, array.as_primitive::<UInt8Type>().value(row)),
            DataType::UInt16 => number(out, array.as_primitive::<UInt16Type>().value(row)),
            DataType::UInt32 => number(out, array.as_primitive::<UInt32Type>().value(row)),
            DataType::Int64 => quoted(out, array.as_primitive::<Int64Type>().value(row)),
            DataType::UInt64 => quoted(out, array.as_primitive::<UInt64Type>().value(row)),
            DataType::Float16 => {
                let v = f32::from(
                    array
                        .as_primitive::<datafusion::arrow::datatypes::Float16Type>()
                        .value(row),
                );
                write_float(v, v.is_finite(), out)
            }
            DataType::Float32 => {
                let v = array.as_primitive::<Float32Type>().value(row);
                write_float(v, v.is_finite(), out)
            }
            DataType::Float64 => {
                let v = array.as_primitive::<Float64Type>().value(row);
                write_float(v, v.is_finite(), out)
            }
            DataType::Utf8 => self.text(array.as_string::<i32>().value(row), out),
            DataType::LargeUtf8 => self.text(array.as_string::<i64>().value(row), out),
            DataType::Utf8View => self.text(array.as_string_view().value(row), out),
            DataType::Binary => base64(array.as_binary::<i32>().value(row), out),
            DataType::LargeBinary => base64(array.as_binary::<i64>().value(row), out),
            DataType::BinaryView => base64(array.as_binary_view().value(row), out),
            DataType::FixedSizeBinary(_) => base64(array.as_fixed_size_binary().value(row), out),
            DataType::Timestamp(unit, _) => {
                let micros = match unit {
                    TimeUnit::Second => {
                        array.as_primitive::<TimestampSecondType>().value(row) * 1_000_000
                    }
                    TimeUnit::Millisecond => {
                        array.as_primitive::<TimestampMillisecondType>().value(row) * 1_000
                    }
                    TimeUnit::Microsecond => {
                        array.as_primitive::<TimestampMicrosecondType>().value(row)
                    }
                    TimeUnit::Nanosecond => {
                        array.as_primitive::<TimestampNanosecondType>().value(row) / 1_000
                    }
                };
                number(out, micros);
            }
            DataType::Date32 => {
                let days = array.as_primitive::<Date32Type>().value(row);
                date(out, i64::from(days) * 86_400_000);
            }
            DataType::Date64 => date(out, array.as_primitive::<Date64Type>().value(row)),
            _ => {
                // Nested and other types: their display text.
                match ArrayFormatter::try_new(array.as_ref(), &FORMAT) {
                    Ok(formatter) => write_str(&formatter.value(row).to_string(), out),
                    Err(_) => out.extend_from_slice(b"null"),
                }
            }
        }
    }

    fn text(&self, s: &str, out: &mut Vec<u8>) {
        if self.is_json
            && let Ok(value) = serde_json::from_str::<Json>(s)
        {
            serde_json::to_writer(&mut *out, &value).expect("writing to a Vec cannot fail");
            return;
        }
        write_str(s, out);
    }
}

fn number(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    write!(out, "{v}").expect("writing to a Vec cannot fail");
}

fn quoted(out: &mut Vec<u8>, v: impl std::fmt::Display) {
    write!(out, "\"{v}\"").expect("writing to a Vec cannot fail");
}

fn base64(bytes: &[u8], out: &mut Vec<u8>) {
    write_str(
        &base64::engine::general_purpose::STANDARD.encode(bytes),
        out,
    );
}

fn date(out: &mut Vec<u8>, millis: i64) {
    match chrono::DateTime::from_timestamp_millis(millis) {
        Some(t) => write_str(&t.format("%Y-%m-%d").to_string(), out),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{
        BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float64Array, Int32Array,
        Int64Array, StringArray, TimestampMicrosecondArray,
    };
    use datafusion::arrow::datatypes::Schema;

    use super::*;

    #[test]
    fn encodes_every_type_as_the_contract_says() {
        let json_field = Field::new("doc", DataType::Utf8, true).with_metadata(
            [("quiver.type".to_string(), "Json".to_string())]
                .into_iter()
                .collect(),
        );
        let schema = Arc::new(Schema::new(vec![
            Field::new("i", DataType::Int32, true),
            Field::new("b", DataType::Int64, false),
            Field::new("f", DataType::Float64, true),
            Field::new("t", DataType::Utf8, true),
            Field::new("ok", DataType::Boolean, true),
            Field::new("ts", DataType::Timestamp(TimeUnit::Microsecond, None), true),
            Field::new("d", DataType::Date32, true),
            Field::new("bin", DataType::Binary, true),
            Field::new("dec", DataType::Decimal128(10, 2), true),
            json_field,
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int32Array::from(vec![Some(1), None])),
                Arc::new(Int64Array::from(vec![9_007_199_254_740_993, -1])),
                Arc::new(Float64Array::from(vec![Some(1.5), Some(f64::NAN)])),
                Arc::new(StringArray::from(vec![Some("a\"b"), None])),
                Arc::new(BooleanArray::from(vec![Some(true), None])),
                Arc::new(TimestampMicrosecondArray::from(vec![
                    Some(1_700_000_000_123_456),
                    None,
                ])),
                Arc::new(Date32Array::from(vec![Some(19724), None])),
                Arc::new(BinaryArray::from(vec![Some(&b"hi"[..]), None])),
                Arc::new(
                    Decimal128Array::from(vec![Some(1234), None])
                        .with_precision_and_scale(10, 2)
                        .unwrap(),
                ),
                Arc::new(StringArray::from(vec![Some("{\"k\": [1, 2]}"), None])),
            ],
        )
        .unwrap();
        let mut out = Vec::new();
        write_rows(&batch, &mut out, true);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            r#"[1,"9007199254740993",1.5,"a\"b",true,1700000000123456,"2024-01-02","aGk=","12.34",{"k":[1,2]}],[null,"-1","NaN",null,null,null,null,null,null,null]"#
        );
        let schema = schema_json(&schema);
        assert_eq!(schema[1]["data_type"], "BigInt");
        assert_eq!(schema[1]["flags"], json!(["nn"]));
        assert_eq!(
            schema[8]["data_type"],
            json!({"Decimal": {"precision": 10, "scale": 2}})
        );
        assert_eq!(schema[9]["data_type"], "Json");
    }
}
