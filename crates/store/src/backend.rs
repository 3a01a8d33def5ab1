use std::path::{Path, PathBuf};
use std::sync::Arc;

use switcher::Switcher;

use rocksdb::{
    BlockBasedOptions, Cache, ColumnFamily, ColumnFamilyDescriptor, DB, DBCompressionType,
    Direction, IteratorMode, Options, ReadOptions, WriteBatch, WriteOptions,
};

use crate::keys::{Scope, decode_owner, table_prefix};
use crate::row::StoredRow;
use crate::seq::SeqGenerator;

const CF_META: &str = "meta";
const CF_ROWS: &str = "rows";
/// Meta key holding the highest `_seq` ever committed.
const SEQ_HIGH_WATER: &[u8] = b"\0seq_high_water";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open data directory {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rocksdb::Error,
    },
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("storage error: {0}")]
    Rocks(#[from] rocksdb::Error),
    #[error("corrupt {what} in storage: {detail}")]
    Corrupt { what: &'static str, detail: String },
    #[error("cannot start a storage thread: {0}")]
    Thread(#[source] std::io::Error),
}

impl StoreError {
    /// The operating system's reason when the store could not read or
    /// write its files ("No space left on device", "File too large",
    /// "Read-only file system"), without the path.
    pub fn io_reason(&self) -> Option<String> {
        match self {
            Self::Rocks(e) if e.kind() == rocksdb::ErrorKind::IOError => {
                // "IO error: While appending to file: <path>: <reason>"
                let text = e.to_string();
                let reason = text.rsplit(": ").next().unwrap_or(&text).trim();
                Some(reason.to_string())
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Fsync the write-ahead log before a commit returns.
    pub sync_writes: bool,
    /// Bytes all memtables together gather before they are written to a
    /// table file.
    pub memtable_bytes: usize,
    /// Capacity of the block cache, which also holds the table files'
    /// indexes and filters.
    pub block_cache_bytes: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            sync_writes: false,
            memtable_bytes: 64 << 20,
            block_cache_bytes: 32 << 20,
        }
    }
}

/// Bytes RocksDB holds in memory, by what holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StoreMemory {
    /// Active and immutable memtables, including those being flushed.
    pub memtables: u64,
    /// What open table files hold outside the block cache.
    pub table_readers: u64,
    /// Cached blocks of table files, their indexes and filters included.
    pub block_cache: u64,
}

/// The first and last key of a range of rows.
pub type KeyRange = (Box<[u8]>, Box<[u8]>);

/// A catalog record: key and value.
pub type MetaRecord = (Box<[u8]>, Box<[u8]>);

/// The RocksDB-backed store of one node.
pub struct Store {
    db: Arc<DB>,
    /// Shared by both column families.
    block_cache: Cache,
    switcher: Switcher,
    write_options: WriteOptions,
    sync_writes: bool,
    seq: SeqGenerator,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

/// A set of changes committed atomically by [`Store::commit`].
pub struct Batch<'a> {
    store: &'a Store,
    inner: WriteBatch,
    max_seq: Option<i64>,
    /// Whether the batch removes a range of rows.
    removes_range: bool,
}

impl Batch<'_> {
    pub fn put_meta(&mut self, key: &[u8], value: &[u8]) {
        self.inner.put_cf(self.store.meta(), key, value);
    }

    pub fn delete_meta(&mut self, key: &[u8]) {
        self.inner.delete_cf(self.store.meta(), key);
    }

    /// Writes one version of a row under its full key (table prefix, then
    /// primary key).
    pub fn put_row(&mut self, key: &[u8], row: &StoredRow) {
        self.inner.put_cf(self.store.rows(), key, row.encode());
        self.max_seq = Some(self.max_seq.map_or(row.seq, |m| m.max(row.seq)));
    }

    /// Removes one row version outright (no tombstone): for rows that
    /// have moved to cold storage.
    pub fn delete_row(&mut self, key: &[u8]) {
        self.inner.delete_cf(self.store.rows(), key);
    }

    /// Removes the row versions with keys in `[start, end)`.
    pub fn delete_row_range(&mut self, start: &[u8], end: &[u8]) {
        self.inner.delete_range_cf(self.store.rows(), start, end);
        self.removes_range = true;
    }

    /// Removes every row of a table.
    pub fn delete_table_rows(&mut self, table_id: u64) {
        let start = table_prefix(table_id);
        let end = table_prefix(table_id + 1);
        self.delete_row_range(&start, &end);
    }

    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

/// One chunk of a table scan: decoded rows with their keys, and where to
/// continue.
#[derive(Debug, Default)]
pub struct RowScan {
    pub rows: Vec<(Box<[u8]>, StoredRow)>,
    /// The key to pass as `after` for the next chunk; `None` once the table
    /// is exhausted.
    pub resume_after: Option<Box<[u8]>>,
}

impl Store {
    /// Opens (creating if needed) the store under `path`.
    pub fn open(path: &Path, options: &StoreOptions) -> Result<Self, StoreError> {
        let open_error = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(path).map_err(|source| StoreError::CreateDir {
            path: path.to_path_buf(),
            source,
        })?;
        let mut db_options = Options::default();
        db_options.create_if_missing(true);
        db_options.create_missing_column_families(true);
        db_options.set_keep_log_file_num(4);
        db_options.set_db_write_buffer_size(options.memtable_bytes);

        // One cache for both families, holding the files' indexes and
        // filters too, so that the memory they take is bounded however
        // many files there are.
        let block_cache = Cache::new_lru_cache(options.block_cache_bytes);
        let table_options = |bloom: bool| {
            let mut table = BlockBasedOptions::default();
            if bloom {
                table.set_bloom_filter(10.0, false);
            }
            table.set_block_cache(&block_cache);
            table.set_cache_index_and_filter_blocks(true);
            table.set_pin_l0_filter_and_index_blocks_in_cache(true);
            table
        };
        let mut meta_options = Options::default();
        meta_options.set_block_based_table_factory(&table_options(false));
        let mut rows_options = Options::default();
        rows_options.set_block_based_table_factory(&table_options(true));
        rows_options.set_write_buffer_size(options.memtable_bytes);
        // Every insert looks its key up first, and new keys are absent: a
        // memtable Bloom filter answers those without a skip-list search.
        rows_options.set_memtable_prefix_bloom_ratio(0.1);
        rows_options.set_memtable_whole_key_filtering(true);
        rows_options.set_compression_type(DBCompressionType::Lz4);
        rows_options.set_bottommost_compression_type(DBCompressionType::Zstd);

        let families = vec![
            ColumnFamilyDescriptor::new(CF_META, meta_options),
            ColumnFamilyDescriptor::new(CF_ROWS, rows_options),
        ];
        let db = DB::open_cf_descriptors(&db_options, path, families).map_err(open_error)?;

        let high_water =
            match db.get_cf(db.cf_handle(CF_META).expect("meta family"), SEQ_HIGH_WATER)? {
                None => 0,
                Some(bytes) => i64::from_be_bytes(bytes.as_slice().try_into().map_err(|_| {
                    StoreError::Corrupt {
                        what: "sequence high-water mark",
                        detail: format!("{} bytes", bytes.len()),
                    }
                })?),
            };
        let mut write_options = WriteOptions::default();
        write_options.set_sync(options.sync_writes);
        let db = Arc::new(db);
        Ok(Self {
            switcher: Switcher::start(db.clone()).map_err(StoreError::Thread)?,
            db,
            block_cache,
            write_options,
            sync_writes: options.sync_writes,
            seq: SeqGenerator::starting_after(high_water),
            path: path.to_path_buf(),
        })
    }

    /// Whether a commit waits for the write-ahead log to reach the disk.
    pub fn syncs_writes(&self) -> bool {
        self.sync_writes
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The generator of `_seq` numbers for rows written through this store.
    pub fn seq(&self) -> &SeqGenerator {
        &self.seq
    }

    fn meta(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_META)
            .expect("meta family is created at open")
    }

    fn rows(&self) -> &ColumnFamily {
        self.db
            .cf_handle(CF_ROWS)
            .expect("rows family is created at open")
    }

    pub fn batch(&self) -> Batch<'_> {
        Batch {
            store: self,
            inner: WriteBatch::default(),
            max_seq: None,
            removes_range: false,
        }
    }

    /// Commits a batch atomically; once this returns, the batch is in the
    /// write-ahead log.
    pub fn commit(&self, mut batch: Batch<'_>) -> Result<(), StoreError> {
        if let Some(max_seq) = batch.max_seq {
            batch
                .inner
                .put_cf(self.meta(), SEQ_HIGH_WATER, max_seq.to_be_bytes());
        }
        self.db.write_opt(batch.inner, &self.write_options)?;
        if batch.removes_range {
            self.switcher.request();
        }
        Ok(())
    }

    pub fn get_meta(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.db.get_cf(self.meta(), key)?)
    }

    /// Every meta record whose key starts with `prefix`, in key order.
    pub fn scan_meta(&self, prefix: &[u8]) -> Result<Vec<MetaRecord>, StoreError> {
        let mut out = Vec::new();
        let iter = self
            .db
            .iterator_cf(self.meta(), IteratorMode::From(prefix, Direction::Forward));
        for item in iter {
            let (key, value) = item?;
            if !key.starts_with(prefix) {
                break;
            }
            out.push((key, value));
        }
        Ok(out)
    }

    /// Deletes each row of `versions` (keys in order, with a `_seq`) that
    /// still holds that version; a row written again since keeps its newer
    /// one. One pass over the keys' range, not a lookup per row. A flush
    /// calls this for the rows it moved, with the table's writers shut out.
    ///
    /// Rows to delete that are next to each other in the store (no other
    /// row between them) form a run. A few runs are removed with one range
    /// delete each, which costs RocksDB one record instead of a delete
    /// marker per row; many runs (rows rewritten all over the range) are
    /// removed row by row.
    pub fn delete_unchanged(&self, versions: &[(Box<[u8]>, i64)]) -> Result<(), StoreError> {
        let (Some((first, _)), Some((last, _))) = (versions.first(), versions.last()) else {
            return Ok(());
        };
        let mut read_options = ReadOptions::default();
        read_options.set_iterate_upper_bound(successor(last));
        let mut iter = self.db.raw_iterator_cf_opt(self.rows(), read_options);
        iter.seek(first);
        // Runs as index ranges into `versions`, and the rows to delete.
        let mut runs: Vec<std::ops::Range<usize>> = Vec::new();
        let mut doomed: Vec<usize> = Vec::new();
        let mut in_run = false;
        let mut wanted = versions.iter().enumerate().peekable();
        while let (Some(key), Some(value), Some((index, (want, seq)))) =
            (iter.key(), iter.value(), wanted.peek())
        {
            match key.cmp(want) {
                std::cmp::Ordering::Less => {
                    // A row the flush did not move: it ends the run.
                    in_run = false;
                    iter.next();
                }
                std::cmp::Ordering::Greater => {
                    wanted.next();
                }
                std::cmp::Ordering::Equal => {
                    let unchanged = StoredRow::decode_seq(value).map_err(corrupt_row)? == *seq;
                    match (unchanged, in_run, runs.last_mut()) {
                        (true, true, Some(run)) => run.end = index + 1,
                        (true, _, _) => runs.push(*index..index + 1),
                        (false, _, _) => {}
                    }
                    if unchanged {
                        doomed.push(*index);
                    }
                    in_run = unchanged;
                    wanted.next();
                    iter.next();
                }
            }
        }
        iter.status()?;
        let mut batch = self.batch();
        if runs.len() <= RANGE_DELETES {
            for run in runs {
                let start = &versions[run.start].0;
                let end = successor(&versions[run.end - 1].0);
                batch.delete_row_range(start, &end);
            }
        } else {
            for index in doomed {
                batch.delete_row(&versions[index].0);
            }
        }
        self.commit(batch)
    }

    /// The stored version of the row at `key`, tombstones included.
    pub fn get_row(&self, key: &[u8]) -> Result<Option<StoredRow>, StoreError> {
        self.get_row_with(key, &ReadOptions::default())
    }

    pub(crate) fn get_row_with(
        &self,
        key: &[u8],
        options: &ReadOptions,
    ) -> Result<Option<StoredRow>, StoreError> {
        match self.db.get_pinned_cf_opt(self.rows(), key, options)? {
            None => Ok(None),
            Some(bytes) => decode_row(&bytes).map(Some),
        }
    }

    /// The stored versions of the rows at `keys`, tombstones included, in
    /// the order of `keys`. One batched lookup: RocksDB walks its memtables
    /// and files once for all keys, which for hundreds of keys costs far
    /// less than a `get` each. `keys` must be in ascending order.
    pub fn get_rows<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8]>,
    ) -> Result<Vec<Option<StoredRow>>, StoreError> {
        self.db
            .batched_multi_get_cf(self.rows(), keys, true)
            .into_iter()
            .map(|found| match found? {
                None => Ok(None),
                Some(bytes) => decode_row(&bytes).map(Some),
            })
            .collect()
    }

    /// Reads up to `limit` rows of a scope in key order, starting after the
    /// key `after` (or at the scope's start), tombstones included.
    pub fn scan_rows(
        &self,
        scope: &Scope,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RowScan, StoreError> {
        self.scan_row_prefix(&scope.prefix(), after, limit)
    }

    /// Like [`Store::scan_rows`], for the rows whose key starts with
    /// `prefix` (a table prefix followed by leading key parts).
    pub fn scan_row_prefix(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RowScan, StoreError> {
        self.scan_row_prefix_with(prefix, after, limit, ReadOptions::default())
    }

    pub(crate) fn scan_row_prefix_with(
        &self,
        prefix: &[u8],
        after: Option<&[u8]>,
        limit: usize,
        mut read_options: ReadOptions,
    ) -> Result<RowScan, StoreError> {
        if let Some(end) = prefix_end(prefix) {
            read_options.set_iterate_upper_bound(end);
        }
        let start: &[u8] = after.unwrap_or(prefix);
        let mut iter = self.db.iterator_cf_opt(
            self.rows(),
            read_options,
            IteratorMode::From(start, Direction::Forward),
        );
        let mut scan = RowScan::default();
        while scan.rows.len() < limit {
            let Some(item) = iter.next() else {
                return Ok(scan);
            };
            let (key, value) = item?;
            if after.is_some_and(|a| *key == *a) {
                continue;
            }
            let row = decode_row(&value)?;
            scan.rows.push((key, row));
        }
        scan.resume_after = scan.rows.last().map(|(k, _)| k.clone());
        Ok(scan)
    }

    /// Compacts a scope's hot key range, so that rows removed after a
    /// flush leave no delete markers for scans to step over.
    pub fn compact_rows(&self, scope: &Scope) {
        let (start, end) = (scope.prefix(), scope.end());
        self.db
            .compact_range_cf(self.rows(), Some(&start[..]), Some(&end[..]));
    }

    /// The first and last key of a scope's hot rows, tombstones included.
    pub fn key_range(&self, scope: &Scope) -> Result<Option<KeyRange>, StoreError> {
        self.key_range_with(scope, ReadOptions::default)
    }

    pub(crate) fn key_range_with(
        &self,
        scope: &Scope,
        options: impl Fn() -> ReadOptions,
    ) -> Result<Option<KeyRange>, StoreError> {
        let bounded = || {
            let mut options = options();
            options.set_iterate_lower_bound(scope.prefix());
            options.set_iterate_upper_bound(scope.end());
            options
        };
        let first = self
            .db
            .iterator_cf_opt(self.rows(), bounded(), IteratorMode::Start)
            .next()
            .transpose()?;
        let last = self
            .db
            .iterator_cf_opt(self.rows(), bounded(), IteratorMode::End)
            .next()
            .transpose()?;
        Ok(first.zip(last).map(|((first, _), (last, _))| (first, last)))
    }

    /// Row versions of a scope in the hot store, tombstones included,
    /// counted up to `cap`.
    pub fn count_rows(&self, scope: &Scope, cap: usize) -> Result<usize, StoreError> {
        let mut options = ReadOptions::default();
        options.set_iterate_upper_bound(scope.end());
        let prefix = scope.prefix();
        let iter = self.db.iterator_cf_opt(
            self.rows(),
            options,
            IteratorMode::From(&prefix, Direction::Forward),
        );
        let mut count = 0;
        for item in iter.take(cap) {
            item?;
            count += 1;
        }
        Ok(count)
    }

    /// The owners that have hot rows in a per-user table, in key order.
    /// Seeks once per owner, past each owner's whole key range.
    pub fn owners(&self, table_id: u64) -> Result<Vec<String>, StoreError> {
        let mut owners = Vec::new();
        let mut from = table_prefix(table_id).to_vec();
        let end = table_prefix(table_id + 1).to_vec();
        loop {
            let mut options = ReadOptions::default();
            options.set_iterate_upper_bound(end.clone());
            let mut iter = self.db.iterator_cf_opt(
                self.rows(),
                options,
                IteratorMode::From(&from, Direction::Forward),
            );
            let Some(item) = iter.next() else {
                return Ok(owners);
            };
            let (key, _) = item?;
            let owner = decode_owner(&key[8..]).ok_or_else(|| StoreError::Corrupt {
                what: "row key",
                detail: format!("no owner in a key of per-user table {table_id}"),
            })?;
            from = Scope::owned(table_id, &owner.0).end();
            owners.push(owner.0);
        }
    }

    /// Approximate bytes of row data: on-disk tables plus memtables.
    pub fn approximate_row_bytes(&self) -> u64 {
        let property = |name: &str| {
            self.db
                .property_int_value_cf(self.rows(), name)
                .ok()
                .flatten()
                .unwrap_or(0)
        };
        property("rocksdb.total-sst-files-size") + property("rocksdb.cur-size-all-mem-tables")
    }

    /// What RocksDB holds in memory now, over every column family.
    pub fn memory(&self) -> StoreMemory {
        let mut memory = StoreMemory {
            block_cache: self.block_cache.get_usage() as u64,
            ..StoreMemory::default()
        };
        for cf in [self.meta(), self.rows()] {
            let property = |name: &str| {
                self.db
                    .property_int_value_cf(cf, name)
                    .ok()
                    .flatten()
                    .unwrap_or(0)
            };
            memory.memtables += property("rocksdb.cur-size-all-mem-tables");
            memory.table_readers += property("rocksdb.estimate-table-readers-mem");
        }
        memory
    }

    /// Flushes memtables and syncs the write-ahead log.
    pub fn sync(&self) -> Result<(), StoreError> {
        self.db.flush_wal(true)?;
        Ok(())
    }
}

/// The smallest key greater than every key starting with `prefix`, or
/// `None` when no such key exists (the prefix is all 0xFF).
fn prefix_end(prefix: &[u8]) -> Option<Vec<u8>> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < u8::MAX {
            end.push(last + 1);
            return Some(end);
        }
    }
    None
}

/// The most runs of rows [`Store::delete_unchanged`] removes with range
/// deletes. Reads pass over each range delete until compaction drops it.
const RANGE_DELETES: usize = 8;

/// The smallest key after `key`.
fn successor(key: &[u8]) -> Vec<u8> {
    let mut next = Vec::with_capacity(key.len() + 1);
    next.extend_from_slice(key);
    next.push(0);
    next
}

fn decode_row(bytes: &[u8]) -> Result<StoredRow, StoreError> {
    StoredRow::decode(bytes).map_err(corrupt_row)
}

fn corrupt_row(e: postcard::Error) -> StoreError {
    StoreError::Corrupt {
        what: "row",
        detail: e.to_string(),
    }
}

mod switcher;
mod view;
pub use view::HotRows;
#[cfg(test)]
mod tests;
