//! The cold tier as the engine uses it: flushing a table's hot rows into a
//! Parquet segment, compacting segments, and finding the current version
//! of rows across hot and cold.
//!
//! Every segment holds, per row version: `_key` (the row's store key, so
//! versions compare and merge by bytes whatever the key's type), one
//! `c<id>` column per table column (by stable id, so renames never touch
//! files), `_seq` and `_deleted`. Rows in a segment are in key order, one
//! version per key.
//!
//! Concurrency: one flush or compaction per table at a time (the table's
//! maintenance lock). Readers hold the `Arc<Manifest>` they started with
//! for as long as they read; a flush publishes its new manifest, then
//! waits until no reader holds the previous one before removing the
//! flushed hot rows, and a compaction waits the same way before deleting
//! the files it replaced. So a reader always sees every version either in
//! the hot store or in a segment its manifest names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use arrow::array::{Array, ArrayRef, BinaryArray, BooleanArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dashmap::DashMap;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use quiver_catalog::{ColumnDef, TableDef, arrow_type};
use quiver_common::TableId;
use quiver_store::{
    ColdStore, ColumnStats, Manifest, Segment, SegmentOptions, Store, StoredRow, Value, to_hex,
};

use crate::convert::{OutputColumn, array_to_values, rows_to_batch};
use crate::error::{QueryError, Result};

/// Segment column holding the row's store key.
pub const KEY_COLUMN: &str = "_key";
/// Segment column holding the delete marker.
pub const DELETED_COLUMN: &str = "_deleted";
pub use quiver_catalog::SEQ_COLUMN;

/// The segment column name of a table column.
pub fn column_name(id: u32) -> String {
    format!("c{id}")
}

/// Rows read from the hot store per call while flushing.
const FLUSH_CHUNK: usize = 8192;

impl From<arrow::error::ArrowError> for QueryError {
    fn from(error: arrow::error::ArrowError) -> Self {
        QueryError::Internal(error.to_string())
    }
}

impl From<quiver_store::ColdError> for QueryError {
    fn from(error: quiver_store::ColdError) -> Self {
        QueryError::Internal(error.to_string())
    }
}

/// The cold state of one table.
#[derive(Debug)]
pub struct TableCold {
    manifest: ArcSwap<Manifest>,
    /// Held by a flush or compaction of this table.
    maintenance: tokio::sync::Mutex<()>,
}

/// What a flush or compaction did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Outcome {
    /// Row versions written (tombstones included).
    pub rows: u64,
    pub bytes: u64,
    /// Segments of the table afterwards.
    pub segments: usize,
}

/// The cold tier of a node: every table's manifest, and the operations
/// that change them.
#[derive(Debug)]
pub struct ColdTables {
    store: Arc<Store>,
    cold: ColdStore,
    tables: DashMap<TableId, Arc<TableCold>>,
    row_group_rows: usize,
}

impl ColdTables {
    /// Loads the manifests of `tables` and removes what a crash left
    /// behind: files no manifest names, and the files of tables that no
    /// longer exist.
    pub fn open(
        store: Arc<Store>,
        cold: ColdStore,
        tables: &[TableId],
        row_group_rows: usize,
    ) -> Result<Self> {
        let out = Self {
            store,
            cold,
            tables: DashMap::new(),
            row_group_rows,
        };
        // Object stores are async; at start there is no runtime to borrow,
        // so the loading runs to completion on a thread of its own.
        std::thread::scope(|scope| {
            scope
                .spawn(|| futures::executor::block_on(out.load(tables)))
                .join()
                .map_err(|_| QueryError::Internal("loading manifests panicked".into()))?
        })?;
        Ok(out)
    }

    async fn load(&self, tables: &[TableId]) -> Result<()> {
        for id in self.cold.tables().await? {
            if !tables.contains(&TableId(id)) {
                self.cold.delete_table(id).await?;
                continue;
            }
            let manifest = self.cold.manifest(id).await?;
            let removed = self.cold.remove_unreferenced(&manifest).await?;
            if removed > 0 {
                tracing::info!(table = id, removed, "removed unreferenced segment files");
            }
            self.tables.insert(
                TableId(id),
                Arc::new(TableCold {
                    manifest: ArcSwap::from_pointee(manifest),
                    maintenance: tokio::sync::Mutex::new(()),
                }),
            );
        }
        Ok(())
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn objects(&self) -> Arc<dyn object_store::ObjectStore> {
        self.cold.objects()
    }

    fn entry(&self, table: TableId) -> Arc<TableCold> {
        self.tables
            .entry(table)
            .or_insert_with(|| {
                Arc::new(TableCold {
                    manifest: ArcSwap::from_pointee(Manifest::empty(table.0)),
                    maintenance: tokio::sync::Mutex::new(()),
                })
            })
            .clone()
    }

    /// The table's current manifest. Hold it while reading the table.
    pub fn manifest(&self, table: TableId) -> Arc<Manifest> {
        match self.tables.get(&table) {
            Some(entry) => entry.manifest.load_full(),
            None => Arc::new(Manifest::empty(table.0)),
        }
    }

    /// Deletes a dropped table's segments.
    pub async fn drop_table(&self, table: TableId) -> Result<()> {
        let entry = self.tables.remove(&table).map(|(_, e)| e);
        if let Some(entry) = &entry {
            let _maintenance = entry.maintenance.lock().await;
        }
        self.cold.delete_table(table.0).await?;
        Ok(())
    }

    /// Moves the table's hot rows into a new segment. `writer` is the
    /// table's writer lock, taken only to remove the flushed rows.
    pub async fn flush(&self, def: &TableDef, writer: &tokio::sync::Mutex<()>) -> Result<Outcome> {
        let entry = self.entry(def.id);
        let _maintenance = entry.maintenance.lock().await;
        let mut rows: Vec<(Box<[u8]>, StoredRow)> = Vec::new();
        let mut after: Option<Box<[u8]>> = None;
        loop {
            let chunk = self
                .store
                .scan_rows(def.id.0, after.as_deref(), FLUSH_CHUNK)?;
            rows.extend(chunk.rows);
            match chunk.resume_after {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        let current = entry.manifest.load_full();
        if rows.is_empty() {
            return Ok(Outcome {
                segments: current.segments.len(),
                ..Outcome::default()
            });
        }
        let version = current.version + 1;
        let path = ColdStore::segment_path(def.id.0, version);
        let (batches, mut segment) = encode_segment(def, &rows, self.row_group_rows)?;
        segment.bytes = self
            .cold
            .write_segment(&path, &batches, &segment_options(def, self.row_group_rows))
            .await?;
        segment.path = path;
        let outcome = Outcome {
            rows: segment.rows,
            bytes: segment.bytes,
            segments: current.segments.len() + 1,
        };
        let mut next = (*current).clone();
        next.version = version;
        next.segments.push(segment);
        self.cold.publish(&next).await?;
        entry.manifest.store(Arc::new(next));
        wait_for_readers(current).await;

        let _writer = writer.lock().await;
        let mut batch = self.store.batch();
        for (key, row) in &rows {
            // A row written again since it was read keeps its newer version.
            if self
                .store
                .get_row(key)?
                .is_some_and(|now| now.seq == row.seq)
            {
                batch.delete_row(key);
            }
        }
        self.store.commit(batch)?;
        Ok(outcome)
    }

    /// Merges all of a table's segments into one, keeping the newest
    /// version of each key and dropping delete markers (no older version
    /// is left for them to hide) and columns the table no longer has.
    pub async fn compact(&self, def: &TableDef) -> Result<Outcome> {
        let entry = self.entry(def.id);
        let _maintenance = entry.maintenance.lock().await;
        let current = entry.manifest.load_full();
        let tombstones: u64 = current.segments.iter().map(|s| s.tombstones).sum();
        if current.segments.len() < 2 && tombstones == 0 {
            return Ok(Outcome {
                rows: current.rows(),
                bytes: current.bytes(),
                segments: current.segments.len(),
            });
        }
        let mut newest: BTreeMap<Vec<u8>, StoredRow> = BTreeMap::new();
        for segment in &current.segments {
            for (key, row) in self.read_segment(def, segment, |_| true).await? {
                match newest.get(&key) {
                    Some(existing) if existing.seq >= row.seq => {}
                    _ => {
                        newest.insert(key, row);
                    }
                }
            }
        }
        let rows: Vec<(Box<[u8]>, StoredRow)> = newest
            .into_iter()
            .filter(|(_, row)| !row.deleted)
            .map(|(key, row)| (key.into_boxed_slice(), row))
            .collect();
        let version = current.version + 1;
        let mut next = (*current).clone();
        next.version = version;
        next.segments.clear();
        let mut outcome = Outcome::default();
        if !rows.is_empty() {
            let path = ColdStore::segment_path(def.id.0, version);
            let (batches, mut segment) = encode_segment(def, &rows, self.row_group_rows)?;
            segment.bytes = self
                .cold
                .write_segment(&path, &batches, &segment_options(def, self.row_group_rows))
                .await?;
            segment.path = path;
            outcome = Outcome {
                rows: segment.rows,
                bytes: segment.bytes,
                segments: 1,
            };
            next.segments.push(segment);
        }
        self.cold.publish(&next).await?;
        entry.manifest.store(Arc::new(next));
        let replaced: Vec<String> = current.segments.iter().map(|s| s.path.clone()).collect();
        wait_for_readers(current).await;
        for path in replaced {
            self.cold.delete(&path).await?;
        }
        Ok(outcome)
    }

    /// Reads the versions in a segment whose key passes `wanted`, as
    /// stored rows of the current definition (columns dropped since are
    /// left out; columns added since are absent and read as their fill).
    async fn read_segment(
        &self,
        def: &TableDef,
        segment: &Segment,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<(Vec<u8>, StoredRow)>> {
        let bytes = self.cold.read(&segment.path).await?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| QueryError::Internal(format!("reading {}: {e}", segment.path)))?;
        let mut out = Vec::new();
        for batch in reader {
            let batch = batch?;
            let keys = column_as::<BinaryArray>(&batch, KEY_COLUMN)?;
            let seqs = column_as::<Int64Array>(&batch, SEQ_COLUMN)?;
            let deleted = column_as::<BooleanArray>(&batch, DELETED_COLUMN)?;
            let mut columns: Vec<(u32, Vec<Value>)> = Vec::new();
            for column in &def.columns {
                if let Some(array) = batch.column_by_name(&column_name(column.id)) {
                    columns.push((column.id, array_to_values(array, column)?));
                }
            }
            for i in 0..batch.num_rows() {
                let key = keys.value(i);
                if !wanted(key) {
                    continue;
                }
                let row = StoredRow {
                    seq: seqs.value(i),
                    deleted: deleted.value(i),
                    cells: columns.iter().map(|(id, v)| (*id, v[i].clone())).collect(),
                };
                out.push((key.to_vec(), row));
            }
        }
        Ok(out)
    }

    /// The current live version of each of `keys` (absent when deleted or
    /// never written), looking in the hot store first, then in segments
    /// from newest to oldest. Call with the table's writer lock held.
    pub async fn current_rows(
        &self,
        def: &TableDef,
        keys: &BTreeSet<Vec<u8>>,
    ) -> Result<HashMap<Vec<u8>, StoredRow>> {
        let mut found = HashMap::new();
        let mut missing = BTreeSet::new();
        for key in keys {
            match self.store.get_row(key)? {
                Some(row) => {
                    if !row.deleted {
                        found.insert(key.clone(), row);
                    }
                }
                None => {
                    missing.insert(key.clone());
                }
            }
        }
        let manifest = self.manifest(def.id);
        for segment in manifest.segments.iter().rev() {
            if missing.is_empty() {
                break;
            }
            let (min, max) = segment.key_range();
            if missing.range(min..=max).next().is_none() {
                continue;
            }
            for (key, row) in self
                .read_segment(def, segment, |k| missing.contains(k))
                .await?
            {
                missing.remove(&key);
                if !row.deleted {
                    found.insert(key, row);
                }
            }
        }
        Ok(found)
    }
}

fn column_as<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<&'a T> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| QueryError::Internal(format!("segment without a valid {name} column")))
}

/// Waits until no reader holds `manifest` any more (only this handle).
async fn wait_for_readers(manifest: Arc<Manifest>) {
    let started = Instant::now();
    let mut pause = Duration::from_millis(1);
    let mut warned = false;
    while Arc::strong_count(&manifest) > 1 {
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
        if !warned && started.elapsed() > Duration::from_secs(60) {
            tracing::warn!(
                table = manifest.table_id,
                "a reader has held an old manifest for over a minute"
            );
            warned = true;
        }
    }
}

fn segment_options(def: &TableDef, row_group_rows: usize) -> SegmentOptions {
    SegmentOptions {
        row_group_rows,
        key_column: def.primary_key.map(column_name),
    }
}

/// The Arrow schema of a segment of `def` as it is now.
pub fn segment_schema(def: &TableDef) -> SchemaRef {
    let mut fields = vec![Field::new(KEY_COLUMN, DataType::Binary, false)];
    fields.extend(
        def.columns
            .iter()
            .map(|c| Field::new(column_name(c.id), arrow_type(c.column_type), true)),
    );
    fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
    fields.push(Field::new(DELETED_COLUMN, DataType::Boolean, false));
    Arc::new(Schema::new(fields))
}

/// Encodes rows (in key order, one version per key) as segment batches,
/// with the segment's manifest entry (all but its path and size).
fn encode_segment(
    def: &TableDef,
    rows: &[(Box<[u8]>, StoredRow)],
    batch_rows: usize,
) -> Result<(Vec<RecordBatch>, Segment)> {
    let schema = segment_schema(def);
    let columns: Vec<OutputColumn> = def
        .columns
        .iter()
        .map(OutputColumn::of)
        .chain([OutputColumn::Seq, OutputColumn::Deleted])
        .collect();
    let value_schema = Arc::new(Schema::new(schema.fields()[1..].to_vec()));
    let mut batches = Vec::new();
    for chunk in rows.chunks(batch_rows.max(1)) {
        let stored: Vec<&StoredRow> = chunk.iter().map(|(_, r)| r).collect();
        let values = rows_to_batch(&value_schema, &columns, &stored)?;
        let keys: ArrayRef = Arc::new(BinaryArray::from_iter_values(
            chunk.iter().map(|(k, _)| k.as_ref()),
        ));
        let mut arrays = vec![keys];
        arrays.extend(values.columns().iter().cloned());
        batches.push(RecordBatch::try_new(schema.clone(), arrays)?);
    }
    let mut stats = BTreeMap::new();
    for column in &def.columns {
        stats.insert(column.id, column_stats(column, rows));
    }
    let segment = Segment {
        path: String::new(),
        schema_version: def.schema_version,
        columns: def.columns.iter().map(|c| c.id).collect(),
        rows: rows.len() as u64,
        tombstones: rows.iter().filter(|(_, r)| r.deleted).count() as u64,
        bytes: 0,
        min_seq: rows.iter().map(|(_, r)| r.seq).min().unwrap_or(0),
        max_seq: rows.iter().map(|(_, r)| r.seq).max().unwrap_or(0),
        min_key: to_hex(&rows[0].0),
        max_key: to_hex(&rows[rows.len() - 1].0),
        stats,
    };
    Ok((batches, segment))
}

fn column_stats(column: &ColumnDef, rows: &[(Box<[u8]>, StoredRow)]) -> ColumnStats {
    let mut stats = ColumnStats {
        min: None,
        max: None,
        nulls: 0,
    };
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
    stats
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
