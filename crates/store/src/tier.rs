//! Every scope's manifest, and the reads that span hot rows and segments.
//!
//! Readers hold the `Arc<Manifest>` they started with for as long as they
//! read. Whoever replaces a manifest (a flush, a compaction) publishes the
//! new one, then waits with [`wait_for_readers`] until nobody holds the old
//! one before removing what it replaced (flushed hot rows, merged files).
//! So a reader always finds every version either in the hot store or in a
//! segment its manifest names.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use arrow::array::{
    Array, ArrayRef, BinaryArray, BooleanArray, Date32Array, Decimal128Array, Float32Array,
    Float64Array, Int16Array, Int32Array, Int64Array, RecordBatch, StringArray, StringViewArray,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::datatypes::{DataType, TimeUnit};
use dashmap::DashMap;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::ParquetMetaData;
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::statistics::Statistics;

use crate::backend::Store;
use crate::cold::{ColdError, ColdStore, Manifest, PageSpan, Segment};
use crate::keys::Scope;
use crate::row::{StoredRow, Value};

/// Segment column holding each version's store key.
pub const KEY_COLUMN: &str = "_key";
/// Segment column holding the sequence number.
pub const SEQ_COLUMN: &str = "_seq";
/// Segment column holding the delete marker.
pub const DELETED_COLUMN: &str = "_deleted";

/// The segment column name of the table column with stable id `id`.
pub fn segment_column(id: u32) -> String {
    format!("c{id}")
}

/// Rows read from the hot store per call.
const CHUNK: usize = 8192;

/// The cold state of one scope.
#[derive(Debug)]
pub struct TableCold {
    manifest: ArcSwap<Manifest>,
    maintenance: tokio::sync::Mutex<()>,
}

impl TableCold {
    fn new(manifest: Manifest) -> Self {
        Self {
            manifest: ArcSwap::from_pointee(manifest),
            maintenance: tokio::sync::Mutex::new(()),
        }
    }

    pub fn manifest(&self) -> Arc<Manifest> {
        self.manifest.load_full()
    }

    /// Held by whoever changes this scope's segments: one flush or
    /// compaction at a time.
    pub async fn maintenance(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.maintenance.lock().await
    }
}

/// Row versions a scope has taken since its last flush, for flush
/// policies.
#[derive(Debug, Default)]
struct Pending {
    rows: AtomicU64,
    /// Milliseconds since the epoch of the first write since the last
    /// flush; 0 when none.
    since_ms: AtomicI64,
}

/// Hot-row bookkeeping of every scope.
#[derive(Debug, Default)]
pub struct PendingWrites {
    scopes: DashMap<Scope, Arc<Pending>>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl PendingWrites {
    fn entry(&self, scope: &Scope) -> Arc<Pending> {
        if let Some(pending) = self.scopes.get(scope) {
            return pending.clone();
        }
        self.scopes.entry(scope.clone()).or_default().clone()
    }

    /// Records `rows` row versions written to a scope.
    pub fn note(&self, scope: &Scope, rows: u64) {
        if rows == 0 {
            return;
        }
        let pending = self.entry(scope);
        pending.rows.fetch_add(rows, Ordering::AcqRel);
        let _ = pending
            .since_ms
            .compare_exchange(0, now_ms(), Ordering::AcqRel, Ordering::Acquire);
    }

    /// Records that a flush moved `rows` versions to cold storage.
    pub fn flushed(&self, scope: &Scope, rows: u64) {
        let pending = self.entry(scope);
        let before = pending
            .rows
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |r| {
                Some(r.saturating_sub(rows))
            })
            .unwrap_or(0);
        let left = before.saturating_sub(rows);
        pending
            .since_ms
            .store(if left > 0 { now_ms() } else { 0 }, Ordering::Release);
    }

    /// Versions written since the last flush, and when the first was.
    pub fn get(&self, scope: &Scope) -> (u64, i64) {
        match self.scopes.get(scope) {
            Some(p) => (
                p.rows.load(Ordering::Acquire),
                p.since_ms.load(Ordering::Acquire),
            ),
            None => (0, 0),
        }
    }

    /// Every scope with versions written since its last flush: the
    /// versions, and when the first was written (one pass over all scopes).
    pub fn all(&self) -> Vec<(Scope, u64, i64)> {
        self.scopes
            .iter()
            .filter_map(|e| {
                let rows = e.value().rows.load(Ordering::Acquire);
                let since = e.value().since_ms.load(Ordering::Acquire);
                (rows > 0).then(|| (e.key().clone(), rows, since))
            })
            .collect()
    }

    pub fn remove(&self, table_id: u64) {
        self.scopes.retain(|scope, _| scope.table_id() != table_id);
    }
}

/// The cold tier of a node.
#[derive(Debug)]
pub struct ColdTables {
    store: Arc<Store>,
    cold: ColdStore,
    scopes: DashMap<Scope, Arc<TableCold>>,
    pending: PendingWrites,
}

/// Runs a cold-storage future to completion from synchronous code (start
/// up), on a thread of its own so that it never blocks an async runtime.
pub fn block_on<T: Send>(future: impl Future<Output = T> + Send) -> T {
    std::thread::scope(|scope| {
        scope
            .spawn(|| futures::executor::block_on(future))
            .join()
            .expect("cold storage work does not panic")
    })
}

impl ColdTables {
    /// Loads every scope's manifest and deletes the files no manifest
    /// names (left by a crash between writing a file and publishing it, or
    /// between publishing and removing replaced files).
    pub fn open(store: Arc<Store>, cold: ColdStore) -> Result<Self, ColdError> {
        let scopes = DashMap::new();
        block_on(async {
            for scope in cold.scopes().await? {
                let manifest = cold.manifest(&scope).await?;
                let removed = cold.remove_unreferenced(&manifest).await?;
                if removed > 0 {
                    tracing::info!(
                        table = scope.table_id(),
                        owner = scope.owner(),
                        removed,
                        "removed unreferenced segment files"
                    );
                }
                scopes.insert(scope, Arc::new(TableCold::new(manifest)));
            }
            Ok::<_, ColdError>(())
        })?;
        Ok(Self {
            store,
            cold,
            scopes,
            pending: PendingWrites::default(),
        })
    }

    /// Writes per table since its last flush.
    pub fn pending(&self) -> &PendingWrites {
        &self.pending
    }

    /// Deletes the files of every table not in `live` (dropped while the
    /// node was down, before their files were removed).
    pub fn retain(&self, live: &[u64]) -> Result<(), ColdError> {
        let dropped: BTreeSet<u64> = self
            .scopes
            .iter()
            .map(|e| e.key().table_id())
            .filter(|id| !live.contains(id))
            .collect();
        block_on(async {
            for id in dropped {
                self.scopes.retain(|scope, _| scope.table_id() != id);
                self.cold.delete_table(id).await?;
            }
            Ok(())
        })
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn cold(&self) -> &ColdStore {
        &self.cold
    }

    pub fn entry(&self, scope: &Scope) -> Arc<TableCold> {
        self.scopes
            .entry(scope.clone())
            .or_insert_with(|| Arc::new(TableCold::new(Manifest::empty(scope))))
            .clone()
    }

    /// The scope's current manifest. Hold it while reading the scope.
    pub fn manifest(&self, scope: &Scope) -> Arc<Manifest> {
        match self.scopes.get(scope) {
            Some(entry) => entry.manifest(),
            None => Arc::new(Manifest::empty(scope)),
        }
    }

    /// Bytes of every current segment.
    pub fn cold_bytes(&self) -> u64 {
        self.scopes
            .iter()
            .map(|e| {
                e.value()
                    .manifest()
                    .segments
                    .iter()
                    .map(|s| s.bytes)
                    .sum::<u64>()
            })
            .sum()
    }

    /// Every scope with at least `segments` segments (one pass).
    pub fn crowded(&self, segments: usize) -> Vec<Scope> {
        self.scopes
            .iter()
            .filter(|e| e.value().manifest().segments.len() >= segments.max(1))
            .map(|e| e.key().clone())
            .collect()
    }

    /// The scopes of a table that have segments.
    pub fn scopes_of(&self, table_id: u64) -> Vec<Scope> {
        self.scopes
            .iter()
            .filter(|e| e.key().table_id() == table_id && !e.value().manifest().segments.is_empty())
            .map(|e| e.key().clone())
            .collect()
    }

    /// Makes `next` the table's manifest, durably then in memory, and
    /// returns the one it replaced. Call with the maintenance lock held.
    pub async fn publish(
        &self,
        entry: &TableCold,
        next: Manifest,
    ) -> Result<Arc<Manifest>, ColdError> {
        self.cold.publish(&next).await?;
        Ok(entry.manifest.swap(Arc::new(next)))
    }

    /// Deletes a scope's manifest and segments (after its rows have moved
    /// elsewhere).
    pub async fn remove_scope(&self, scope: &Scope) -> Result<(), ColdError> {
        let manifest = self.manifest(scope);
        self.scopes.remove(scope);
        for segment in &manifest.segments {
            self.cold.delete(&segment.path).await?;
        }
        self.cold.delete_manifest(scope).await
    }

    /// Deletes a dropped table's files, every owner's included.
    pub async fn drop_table(&self, table_id: u64) -> Result<(), ColdError> {
        self.pending.remove(table_id);
        let scopes: Vec<Scope> = self
            .scopes
            .iter()
            .map(|e| e.key().clone())
            .filter(|s| s.table_id() == table_id)
            .collect();
        for scope in scopes {
            if let Some((_, entry)) = self.scopes.remove(&scope) {
                let previous = {
                    let _maintenance = entry.maintenance().await;
                    // A flush or compaction that found the entry before it
                    // was removed, and waits for this lock, finds nothing
                    // to do and publishes nothing.
                    entry.manifest.swap(Arc::new(Manifest::empty(&scope)))
                };
                drop(entry);
                // Reads planned before the drop (queries, snapshots) end
                // before the files they read go.
                wait_for_readers(previous).await;
            }
        }
        self.cold.delete_table(table_id).await
    }

    /// The versions in a segment whose key passes `wanted`, with a cell
    /// for every column the file holds.
    pub async fn read_rows(
        &self,
        segment: &Segment,
        wanted: impl Fn(&[u8]) -> bool,
    ) -> Result<Vec<(Vec<u8>, StoredRow)>, ColdError> {
        let bytes = self.cold.read(&segment.path).await?;
        decode_segment(bytes, &segment.path, wanted)
    }

    /// Every row version of a segment, in key order, decoded a batch at a
    /// time: what a merge reads without holding whole segments decoded.
    pub async fn segment_rows(&self, segment: &Segment) -> Result<SegmentRows, ColdError> {
        let bytes = self.cold.read(&segment.path).await?;
        Ok(SegmentRows {
            reader: ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?,
            path: segment.path.clone(),
            decoded: Vec::new().into_iter(),
        })
    }

    /// The rows of a segment whose keys are in `keys`. Only the pages
    /// whose `_key` statistics (row group, then page index) hold one of
    /// the keys are read (from the page cache, or fetched and decoded),
    /// and only matching rows converted.
    async fn read_keys(
        &self,
        segment: &Segment,
        keys: &BTreeSet<Vec<u8>>,
    ) -> Result<Vec<(Vec<u8>, StoredRow)>, ColdError> {
        let footer = self.cold.footer(segment).await?;
        let corrupt = corrupt(&segment.path);
        let mut out = Vec::new();
        for span in pages_holding(footer.metadata(), keys) {
            let page = self.cold.page(segment, &footer, span).await?;
            let rows = rows_holding(key_column(&page, &segment.path)?, keys);
            if rows.is_empty() {
                continue;
            }
            let rows = arrow::compute::take_record_batch(&page, &UInt32Array::from(rows))
                .map_err(|e| corrupt(e.to_string()))?;
            convert_batch(rows, &segment.path, &mut out)?;
        }
        Ok(out)
    }

    /// The current live version of each of `keys` (absent when deleted or
    /// never written): the hot store first, then segments newest first.
    pub async fn current_rows(
        &self,
        scope: &Scope,
        keys: &BTreeSet<Vec<u8>>,
    ) -> Result<HashMap<Vec<u8>, StoredRow>, ColdError> {
        let mut found = HashMap::new();
        let mut missing = BTreeSet::new();
        let stored = self
            .store
            .get_rows(keys.iter().map(Vec::as_slice))
            .map_err(ColdError::store)?;
        for (key, row) in keys.iter().zip(stored) {
            match row {
                Some(row) if !row.deleted => {
                    found.insert(key.clone(), row);
                }
                Some(_) => {}
                None => {
                    missing.insert(key.clone());
                }
            }
        }
        let manifest = self.manifest(scope);
        for segment in manifest.segments.iter().rev() {
            if missing.is_empty() {
                break;
            }
            let (min, max) = segment.key_range();
            if missing.range(min..=max).next().is_none() {
                continue;
            }
            for (key, row) in self.read_keys(segment, &missing).await? {
                missing.remove(&key);
                if !row.deleted {
                    found.insert(key, row);
                }
            }
        }
        Ok(found)
    }

    /// The live rows of `scope` whose key starts with `prefix`, newest
    /// version of each, in key order, across hot rows and segments.
    pub async fn merged_rows(
        &self,
        scope: &Scope,
        prefix: &[u8],
    ) -> Result<Vec<StoredRow>, ColdError> {
        let manifest = self.manifest(scope);
        let mut newest: BTreeMap<Vec<u8>, StoredRow> = BTreeMap::new();
        for segment in &manifest.segments {
            for (key, row) in self.read_rows(segment, |k| k.starts_with(prefix)).await? {
                keep_newest(&mut newest, key, row);
            }
        }
        let mut after: Option<Box<[u8]>> = None;
        loop {
            let chunk = self
                .store
                .scan_row_prefix(prefix, after.as_deref(), CHUNK)
                .map_err(ColdError::store)?;
            for (key, row) in chunk.rows {
                keep_newest(&mut newest, key.into_vec(), row);
            }
            match chunk.resume_after {
                Some(key) => after = Some(key),
                None => break,
            }
        }
        drop(manifest);
        Ok(newest.into_values().filter(|r| !r.deleted).collect())
    }
}

fn keep_newest(newest: &mut BTreeMap<Vec<u8>, StoredRow>, key: Vec<u8>, row: StoredRow) {
    match newest.get(&key) {
        Some(existing) if existing.seq >= row.seq => {}
        _ => {
            newest.insert(key, row);
        }
    }
}

/// Waits until nobody but the caller holds `manifest`.
pub async fn wait_for_readers(manifest: Arc<Manifest>) {
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

/// The spans of rows that can hold one of `keys`: row groups whose `_key`
/// statistics bound none of the keys are skipped, and within the rest,
/// `_key` pages whose page-index bounds hold none of them. Without a page
/// index a span is a whole row group. Truncated statistics still bound
/// the keys: a shortened minimum sorts before, a raised maximum after.
fn pages_holding(metadata: &ParquetMetaData, keys: &BTreeSet<Vec<u8>>) -> Vec<PageSpan> {
    let holds_any = |min: Option<&[u8]>, max: Option<&[u8]>| match (min, max) {
        (Some(min), Some(max)) if min <= max => keys
            .range::<[u8], _>((Bound::Included(min), Bound::Included(max)))
            .next()
            .is_some(),
        _ => true,
    };
    let column = metadata
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == KEY_COLUMN);
    let mut spans = Vec::new();
    for g in 0..metadata.num_row_groups() {
        let group = metadata.row_group(g);
        let rows = group.num_rows() as usize;
        let whole = PageSpan {
            group: g,
            first_row: 0,
            rows,
        };
        match column {
            None => spans.push(whole),
            Some(column) => {
                if let Some(Statistics::ByteArray(s)) = group.column(column).statistics()
                    && !holds_any(s.min_opt().map(|v| v.data()), s.max_opt().map(|v| v.data()))
                {
                    continue;
                }
                let pages = metadata
                    .column_index()
                    .zip(metadata.offset_index())
                    .and_then(|(index, offsets)| {
                        let ColumnIndexMetaData::BYTE_ARRAY(bounds) = index.get(g)?.get(column)?
                        else {
                            return None;
                        };
                        Some((bounds, offsets.get(g)?.get(column)?.page_locations()))
                    });
                match pages {
                    None => spans.push(whole),
                    Some((bounds, locations)) => {
                        for (page, location) in locations.iter().enumerate() {
                            if !holds_any(bounds.min_value(page), bounds.max_value(page)) {
                                continue;
                            }
                            let first_row = location.first_row_index as usize;
                            let end = locations
                                .get(page + 1)
                                .map_or(rows, |next| next.first_row_index as usize);
                            spans.push(PageSpan {
                                group: g,
                                first_row,
                                rows: end - first_row,
                            });
                        }
                    }
                }
            }
        }
    }
    spans
}

/// The rows of a page whose key is in `keys`, found by binary search:
/// a segment's versions are sorted by `_key`.
fn rows_holding(page_keys: &BinaryArray, keys: &BTreeSet<Vec<u8>>) -> Vec<u32> {
    let n = page_keys.len();
    if n == 0 {
        return Vec::new();
    }
    let (first, last) = (page_keys.value(0), page_keys.value(n - 1));
    let mut rows = Vec::new();
    for key in keys.range::<[u8], _>((Bound::Included(first), Bound::Included(last))) {
        let key = key.as_slice();
        let (mut low, mut high) = (0, n);
        while low < high {
            let middle = (low + high) / 2;
            if page_keys.value(middle) < key {
                low = middle + 1;
            } else {
                high = middle;
            }
        }
        while low < n && page_keys.value(low) == key {
            rows.push(low as u32);
            low += 1;
        }
    }
    rows
}

/// The row versions of one segment in key order; see
/// [`ColdTables::segment_rows`].
pub struct SegmentRows {
    reader: ParquetRecordBatchReader,
    path: String,
    /// The rest of the batch decoded last.
    decoded: std::vec::IntoIter<(Vec<u8>, StoredRow)>,
}

impl SegmentRows {
    /// The next row version, or `None` after the last.
    pub fn next_row(&mut self) -> Result<Option<(Vec<u8>, StoredRow)>, ColdError> {
        loop {
            if let Some(row) = self.decoded.next() {
                return Ok(Some(row));
            }
            let Some(batch) = self.reader.next() else {
                return Ok(None);
            };
            let batch = batch.map_err(|e| corrupt(&self.path)(e.to_string()))?;
            let mut rows = Vec::with_capacity(batch.num_rows());
            convert_batch(batch, &self.path, &mut rows)?;
            self.decoded = rows.into_iter();
        }
    }
}

/// The error for a segment at `path` whose contents are not what Quiver
/// writes.
fn corrupt(path: &str) -> impl Fn(String) -> ColdError + Copy + '_ {
    move |detail| ColdError::Manifest {
        path: path.to_string(),
        detail,
    }
}

/// The `_key` column of a batch read from the segment at `path`.
fn key_column<'a>(batch: &'a RecordBatch, path: &str) -> Result<&'a BinaryArray, ColdError> {
    batch
        .column_by_name(KEY_COLUMN)
        .and_then(|k| k.as_any().downcast_ref::<BinaryArray>())
        .ok_or_else(|| corrupt(path)("no binary _key column".into()))
}

fn decode_segment(
    bytes: bytes::Bytes,
    path: &str,
    wanted: impl Fn(&[u8]) -> bool,
) -> Result<Vec<(Vec<u8>, StoredRow)>, ColdError> {
    let corrupt = corrupt(path);
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(e.to_string()))?;
        // Convert only the rows wanted.
        let mask: BooleanArray = key_column(&batch, path)?
            .iter()
            .map(|k| Some(wanted(k.unwrap_or(&[]))))
            .collect();
        let batch = arrow::compute::filter_record_batch(&batch, &mask)
            .map_err(|e| corrupt(e.to_string()))?;
        convert_batch(batch, path, &mut out)?;
    }
    Ok(out)
}

/// Appends the versions in `batch` to `out`.
fn convert_batch(
    batch: RecordBatch,
    path: &str,
    out: &mut Vec<(Vec<u8>, StoredRow)>,
) -> Result<(), ColdError> {
    let corrupt = corrupt(path);
    if batch.num_rows() == 0 {
        return Ok(());
    }
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or_else(|| corrupt(format!("no {name} column")))
    };
    let keys = key_column(&batch, path)?;
    let seqs = column(SEQ_COLUMN)?;
    let seqs = seqs
        .as_any()
        .downcast_ref::<Int64Array>()
        .ok_or_else(|| corrupt("_seq is not Int64".into()))?;
    let deleted = column(DELETED_COLUMN)?;
    let deleted = deleted
        .as_any()
        .downcast_ref::<BooleanArray>()
        .ok_or_else(|| corrupt("_deleted is not boolean".into()))?;
    let mut cells: Vec<(u32, Vec<Value>)> = Vec::new();
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let Some(id) = field
            .name()
            .strip_prefix('c')
            .and_then(|id| id.parse::<u32>().ok())
        else {
            continue;
        };
        cells.push((id, array_values(array).map_err(corrupt)?));
    }
    for i in 0..batch.num_rows() {
        let key = keys.value(i);
        let row = StoredRow {
            seq: seqs.value(i),
            deleted: deleted.value(i),
            cells: cells.iter().map(|(id, v)| (*id, v[i].clone())).collect(),
        };
        out.push((key.to_vec(), row));
    }
    Ok(())
}

macro_rules! values {
    ($array:expr, $ty:ty, $variant:expr) => {{
        let array = $array
            .as_any()
            .downcast_ref::<$ty>()
            .expect("array matches its data type");
        (0..array.len())
            .map(|i| {
                if array.is_null(i) {
                    Value::Null
                } else {
                    $variant(array.value(i))
                }
            })
            .collect()
    }};
}

/// The stored values of an array; each column type has one Arrow type.
fn array_values(array: &ArrayRef) -> Result<Vec<Value>, String> {
    Ok(match array.data_type() {
        DataType::Boolean => values!(array, BooleanArray, Value::Boolean),
        DataType::Int16 => values!(array, Int16Array, Value::Int16),
        DataType::Int32 => values!(array, Int32Array, Value::Int32),
        DataType::Int64 => values!(array, Int64Array, Value::Int64),
        DataType::Float32 => values!(array, Float32Array, Value::Float32),
        DataType::Float64 => values!(array, Float64Array, Value::Float64),
        DataType::Utf8 => values!(array, StringArray, |s: &str| Value::Text(s.to_string())),
        DataType::Utf8View => {
            values!(array, StringViewArray, |s: &str| Value::Text(s.to_string()))
        }
        DataType::Binary => values!(array, BinaryArray, |b: &[u8]| Value::Bytes(b.to_vec())),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            values!(array, TimestampMicrosecondArray, Value::Timestamp)
        }
        DataType::Date32 => values!(array, Date32Array, Value::Date),
        DataType::Decimal128(_, _) => values!(array, Decimal128Array, Value::Decimal),
        other => return Err(format!("unexpected column type {other}")),
    })
}

#[cfg(test)]
mod tests;
