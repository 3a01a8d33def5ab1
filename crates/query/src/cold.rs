//! Flushing and compacting a scope (a table, or one owner's rows of a
//! per-user table), given the table's definition: hot rows (or
//! existing segments) encoded as a new Parquet segment through the cold
//! tier ([`quiver_store::ColdTables`]).
//!
//! Every segment holds, per row version: `_key` (the row's store key, so
//! versions compare and merge by bytes whatever the key's type), one
//! `c<id>` column per table column (by stable id, so renames never touch
//! files; hidden columns included), `_seq` and `_deleted`. Rows in a
//! segment are in key order, one version per key.

use std::sync::Arc;

use arrow::array::{ArrayRef, BinaryArray, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use quiver_catalog::{ColumnDef, TableDef, arrow_type};
use quiver_store::{
    ColdStore, ColdTables, ColumnStats, DELETED_COLUMN, KEY_COLUMN, SEQ_COLUMN, Scope, Segment,
    SegmentOptions, SegmentWriter, StoredRow, Value, segment_column, to_hex, wait_for_readers,
};

use crate::convert::{OutputColumn, rows_to_batch};
use crate::error::Result;

/// Rows read from the hot store per call while flushing.
const FLUSH_CHUNK: usize = 8192;

/// What a flush or compaction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Row versions written (delete markers included).
    pub rows: u64,
    pub bytes: u64,
    /// Segments of the table afterwards.
    pub segments: usize,
}

/// Every column a segment of `def` stores, hidden ones included.
fn stored_columns(def: &TableDef) -> impl Iterator<Item = &ColumnDef> {
    def.columns.iter().chain(&def.hidden_columns)
}

/// Writes the scope's hot rows into a new segment and publishes it. The
/// rows stay in the hot store (readers merge the two) until the caller
/// removes them with [`quiver_store::Store::delete_unchanged`], holding whatever lock keeps the
/// table's writers out. Rows are read and encoded a chunk at a time.
pub async fn flush(
    tier: &ColdTables,
    def: &TableDef,
    scope: &Scope,
    row_group_rows: usize,
) -> Result<(Outcome, Vec<(Box<[u8]>, i64)>)> {
    let entry = tier.entry(scope);
    let _maintenance = entry.maintenance().await;
    let store = tier.store();
    let mut builder = SegmentBuilder::new(tier, def, row_group_rows)?;
    let mut flushed: Vec<(Box<[u8]>, i64)> = Vec::new();
    let mut after: Option<Box<[u8]>> = None;
    loop {
        let chunk = store.scan_rows(scope, after.as_deref(), FLUSH_CHUNK.max(row_group_rows))?;
        builder.push(&chunk.rows)?;
        flushed.extend(chunk.rows.into_iter().map(|(key, row)| (key, row.seq)));
        match chunk.resume_after {
            Some(key) => after = Some(key),
            None => break,
        }
    }
    let current = entry.manifest();
    if flushed.is_empty() {
        let outcome = Outcome {
            segments: current.segments.len(),
            ..Outcome::default()
        };
        return Ok((outcome, flushed));
    }
    let version = current.version + 1;
    let segment = builder
        .finish(ColdStore::segment_path(scope, version))
        .await?;
    let outcome = Outcome {
        rows: segment.rows,
        bytes: segment.bytes,
        segments: current.segments.len() + 1,
    };
    let mut next = (*current).clone();
    next.version = version;
    next.segments.push(segment);
    drop(current);
    let previous = tier.publish(&entry, next).await?;
    wait_for_readers(previous).await;
    Ok((outcome, flushed))
}

/// Merges all of a scope's segments into one, keeping the newest version
/// of each key and dropping delete markers (no older version is left for
/// them to hide) and columns the table no longer has.
pub async fn compact(
    tier: &ColdTables,
    def: &TableDef,
    scope: &Scope,
    row_group_rows: usize,
) -> Result<Outcome> {
    let entry = tier.entry(scope);
    let _maintenance = entry.maintenance().await;
    let current = entry.manifest();
    let tombstones: u64 = current.segments.iter().map(|s| s.tombstones).sum();
    if current.segments.len() < 2 && tombstones == 0 {
        return Ok(Outcome {
            rows: current.rows(),
            bytes: current.bytes(),
            segments: current.segments.len(),
        });
    }
    // Each segment holds one version per key, in key order: a merge of
    // their heads yields every key once, newest version first, while only
    // a batch per segment and one row group are decoded at a time.
    let mut heads = Vec::with_capacity(current.segments.len());
    for segment in &current.segments {
        let mut rows = tier.segment_rows(segment).await?;
        let head = rows.next_row()?;
        heads.push((rows, head));
    }
    let group_rows = row_group_rows.max(1);
    let mut group: Vec<(Box<[u8]>, StoredRow)> = Vec::with_capacity(group_rows);
    let mut builder: Option<SegmentBuilder<'_>> = None;
    let mut purged: Option<i64> = None;
    while let Some(key) = heads
        .iter()
        .filter_map(|(_, head)| head.as_ref().map(|(key, _)| key))
        .min()
        .cloned()
    {
        let mut newest: Option<StoredRow> = None;
        for (rows, head) in &mut heads {
            if head.as_ref().is_some_and(|(k, _)| *k == key) {
                let next = rows.next_row()?;
                if let Some((_, row)) = std::mem::replace(head, next)
                    && newest.as_ref().is_none_or(|n| row.seq > n.seq)
                {
                    newest = Some(row);
                }
            }
        }
        let Some(row) = newest else { continue };
        if row.deleted {
            purged = purged.max(Some(row.seq));
            continue;
        }
        group.push((key.into_boxed_slice(), row));
        if group.len() == group_rows {
            write_group(&mut builder, tier, def, row_group_rows, &mut group)?;
        }
    }
    if !group.is_empty() {
        write_group(&mut builder, tier, def, row_group_rows, &mut group)?;
    }
    drop(heads);
    let version = current.version + 1;
    let mut next = (*current).clone();
    next.version = version;
    next.purged_seq = next.purged_seq.max(purged.unwrap_or(i64::MIN));
    next.segments.clear();
    let mut outcome = Outcome::default();
    if let Some(builder) = builder {
        let segment = builder
            .finish(ColdStore::segment_path(scope, version))
            .await?;
        outcome = Outcome {
            rows: segment.rows,
            bytes: segment.bytes,
            segments: 1,
        };
        next.segments.push(segment);
    }
    let replaced: Vec<String> = current.segments.iter().map(|s| s.path.clone()).collect();
    drop(current);
    let previous = tier.publish(&entry, next).await?;
    wait_for_readers(previous).await;
    for path in replaced {
        tier.cold().delete(&path).await?;
    }
    Ok(outcome)
}

/// Appends `group` to the segment being written, starting it on the first
/// group, and empties `group`.
fn write_group<'a>(
    builder: &mut Option<SegmentBuilder<'a>>,
    tier: &ColdTables,
    def: &'a TableDef,
    row_group_rows: usize,
    group: &mut Vec<(Box<[u8]>, StoredRow)>,
) -> Result<()> {
    let builder = match builder {
        Some(builder) => builder,
        None => builder.insert(SegmentBuilder::new(tier, def, row_group_rows)?),
    };
    builder.push(group)?;
    group.clear();
    Ok(())
}

/// The Arrow schema of a segment of `def` as it is now.
pub fn segment_schema(def: &TableDef) -> SchemaRef {
    let mut fields = vec![Field::new(KEY_COLUMN, DataType::Binary, false)];
    fields.extend(
        stored_columns(def)
            .map(|c| Field::new(segment_column(c.id), arrow_type(c.column_type), true)),
    );
    fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
    fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// Encodes row versions (in key order, one per key) into a new segment as
/// they come, keeping its manifest entry up to date. Cells of columns the
/// table no longer has are left out; columns it gained since a row was
/// written take their fill value.
struct SegmentBuilder<'a> {
    def: &'a TableDef,
    schema: SchemaRef,
    value_schema: SchemaRef,
    columns: Vec<OutputColumn>,
    writer: SegmentWriter,
    segment: Segment,
    first_key: Option<Vec<u8>>,
    last_key: Vec<u8>,
}

impl<'a> SegmentBuilder<'a> {
    fn new(tier: &ColdTables, def: &'a TableDef, row_group_rows: usize) -> Result<Self> {
        let schema = segment_schema(def);
        let options = SegmentOptions {
            row_group_rows,
            key_column: def.primary_key.map(segment_column),
        };
        Ok(Self {
            def,
            value_schema: Arc::new(Schema::new(schema.fields()[1..].to_vec())),
            writer: tier.cold().segment_writer(schema.clone(), &options)?,
            schema,
            columns: stored_columns(def)
                .map(OutputColumn::of)
                .chain([OutputColumn::Seq, OutputColumn::Deleted])
                .collect(),
            segment: Segment {
                path: String::new(),
                schema_version: def.schema_version,
                columns: stored_columns(def).map(|c| c.id).collect(),
                rows: 0,
                tombstones: 0,
                bytes: 0,
                min_seq: i64::MAX,
                max_seq: i64::MIN,
                min_key: String::new(),
                max_key: String::new(),
                stats: stored_columns(def)
                    .map(|c| {
                        let empty = ColumnStats {
                            min: None,
                            max: None,
                            nulls: 0,
                        };
                        (c.id, empty)
                    })
                    .collect(),
            },
            first_key: None,
            last_key: Vec::new(),
        })
    }

    fn push(&mut self, rows: &[(Box<[u8]>, StoredRow)]) -> Result<()> {
        let Some((last, _)) = rows.last() else {
            return Ok(());
        };
        let stored: Vec<&StoredRow> = rows.iter().map(|(_, r)| r).collect();
        let values = rows_to_batch(&self.value_schema, &self.columns, &stored)?;
        let keys: ArrayRef = Arc::new(BinaryArray::from_iter_values(
            rows.iter().map(|(k, _)| k.as_ref()),
        ));
        let mut arrays = vec![keys];
        arrays.extend(values.columns().iter().cloned());
        self.writer
            .write(&RecordBatch::try_new(self.schema.clone(), arrays)?)?;

        let segment = &mut self.segment;
        segment.rows += rows.len() as u64;
        for (_, row) in rows {
            segment.tombstones += u64::from(row.deleted);
            segment.min_seq = segment.min_seq.min(row.seq);
            segment.max_seq = segment.max_seq.max(row.seq);
        }
        if self.first_key.is_none() {
            self.first_key = Some(rows[0].0.to_vec());
        }
        self.last_key = last.to_vec();
        for column in stored_columns(self.def) {
            if let Some(stats) = segment.stats.get_mut(&column.id) {
                update_stats(stats, column, rows);
            }
        }
        Ok(())
    }

    /// Stores the file at `path` and returns its manifest entry.
    async fn finish(mut self, path: String) -> Result<Segment> {
        self.segment.bytes = self.writer.finish(&path).await?;
        self.segment.path = path;
        self.segment.min_key = to_hex(self.first_key.as_deref().unwrap_or_default());
        self.segment.max_key = to_hex(&self.last_key);
        Ok(self.segment)
    }
}

fn update_stats(stats: &mut ColumnStats, column: &ColumnDef, rows: &[(Box<[u8]>, StoredRow)]) {
    for (_, row) in rows.iter().filter(|(_, r)| !r.deleted) {
        let value = match row.stored_cell(column.id) {
            Some(v) => v,
            None => column.fill.as_ref().unwrap_or(&Value::Null),
        };
        if value.is_null() {
            stats.nulls += 1;
            continue;
        }
        if stats.min.as_ref().is_none_or(|m| compare(value, m).is_lt()) {
            stats.min = Some(value.clone());
        }
        if stats.max.as_ref().is_none_or(|m| compare(value, m).is_gt()) {
            stats.max = Some(value.clone());
        }
    }
}

fn compare(a: &Value, b: &Value) -> std::cmp::Ordering {
    use std::cmp::Ordering::Equal;
    match (a, b) {
        (Value::Boolean(a), Value::Boolean(b)) => a.cmp(b),
        (Value::Int16(a), Value::Int16(b)) => a.cmp(b),
        (Value::Int32(a), Value::Int32(b)) | (Value::Date(a), Value::Date(b)) => a.cmp(b),
        (Value::Int64(a), Value::Int64(b)) | (Value::Timestamp(a), Value::Timestamp(b)) => a.cmp(b),
        (Value::Float32(a), Value::Float32(b)) => a.total_cmp(b),
        (Value::Float64(a), Value::Float64(b)) => a.total_cmp(b),
        (Value::Text(a), Value::Text(b)) => a.cmp(b),
        (Value::Bytes(a), Value::Bytes(b)) => a.cmp(b),
        (Value::Decimal(a), Value::Decimal(b)) => a.cmp(b),
        _ => Equal,
    }
}
