//! Cold storage: Parquet segments and one manifest per table, kept through
//! `object_store` (the local filesystem under `<data_path>/cold` by
//! default, so another object store can take its place).
//!
//! Layout: `t<table id>/manifest.json` lists the table's live segments;
//! `t<table id>/seg-<n>.parquet` are the segments. Each owner of a
//! per-user table has the same under `t<table id>/u<owner in hex>/`.
//! Every write is atomic
//! (object stores write to a temporary name and rename, or publish whole
//! objects); a segment becomes visible only when a manifest naming it is
//! written, so a crash leaves at worst unreferenced files, which
//! [`ColdStore::remove_unreferenced`] deletes at start.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwapOption;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use bytes::Bytes;
use dashmap::DashMap;
use futures::FutureExt;
use futures::TryStreamExt;
use futures::future::BoxFuture;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, RowSelection, RowSelector,
};
use parquet::arrow::async_reader::AsyncFileReader;
use parquet::arrow::{ArrowWriter, ParquetRecordBatchStreamBuilder};
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde::{Deserialize, Serialize};

use crate::keys::Scope;
use crate::row::Value;
use crate::tier::{KEY_COLUMN, SEQ_COLUMN};

const MANIFEST: &str = "manifest.json";

#[derive(Debug, thiserror::Error)]
pub enum ColdError {
    #[error("cold storage: {0}")]
    Objects(#[from] object_store::Error),
    #[error("segment file: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("corrupt manifest {path}: {detail}")]
    Manifest { path: String, detail: String },
    #[error(transparent)]
    Store(#[from] crate::backend::StoreError),
    #[error("cannot sync {path} to disk: {source}")]
    Sync {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create cold storage directory {path}: {source}")]
    CreateDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl ColdError {
    /// The operating system's reason when a segment or manifest file could
    /// not be written or read ("No space left on device", "File too
    /// large"), without the path.
    pub fn io_reason(&self) -> Option<String> {
        if let Self::Store(e) = self {
            return e.io_reason();
        }
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(self);
        while let Some(error) = cause {
            if let Some(io) = error.downcast_ref::<std::io::Error>()
                && io.raw_os_error().is_some()
            {
                let text = io.to_string();
                return Some(text.split(" (os error").next().unwrap_or(&text).to_string());
            }
            cause = error.source();
        }
        None
    }
}

/// Minimum, maximum and NULL count of one column of a segment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnStats {
    pub min: Option<Value>,
    pub max: Option<Value>,
    pub nulls: u64,
}

/// One Parquet file of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Path within the cold store, e.g. `t7/seg-3.parquet`.
    pub path: String,
    /// The table's schema version when the segment was written.
    pub schema_version: u32,
    /// Ids of the columns the file holds (as `c<id>`), in file order.
    pub columns: Vec<u32>,
    pub rows: u64,
    /// Delete markers among `rows`.
    pub tombstones: u64,
    pub bytes: u64,
    pub min_seq: i64,
    pub max_seq: i64,
    /// Smallest and largest row key (memcomparable encoding, hex).
    pub min_key: String,
    pub max_key: String,
    /// Per stable column id.
    pub stats: BTreeMap<u32, ColumnStats>,
}

impl Segment {
    pub fn key_range(&self) -> (Vec<u8>, Vec<u8>) {
        (from_hex(&self.min_key), from_hex(&self.max_key))
    }
}

/// The live segments of one scope (a table, or one owner's rows of a
/// per-user table), oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub table_id: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Increases with every published change; numbers new segments.
    pub version: u64,
    pub segments: Vec<Segment>,
    /// The largest `_seq` of a delete marker a compaction dropped: what
    /// changed before it can no longer be told apart from what never was.
    #[serde(default)]
    pub purged_seq: i64,
}

impl ColdError {
    pub(crate) fn store(error: crate::backend::StoreError) -> Self {
        Self::Store(error)
    }
}

impl Manifest {
    pub fn empty(scope: &Scope) -> Self {
        Self {
            table_id: scope.table_id(),
            owner: scope.owner().map(str::to_string),
            ..Self::default()
        }
    }

    pub fn scope(&self) -> Scope {
        match &self.owner {
            None => Scope::table(self.table_id),
            Some(owner) => Scope::owned(self.table_id, owner),
        }
    }

    pub fn rows(&self) -> u64 {
        self.segments.iter().map(|s| s.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }
}

pub fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn from_hex(text: &str) -> Vec<u8> {
    (0..text.len() / 2)
        .filter_map(|i| u8::from_str_radix(&text[i * 2..i * 2 + 2], 16).ok())
        .collect()
}

/// How segments are written.
#[derive(Debug, Clone)]
pub struct SegmentOptions {
    pub row_group_rows: usize,
    /// The Parquet column holding the primary key, which gets a bloom
    /// filter.
    pub key_column: Option<String>,
}

/// A segment being written; nothing is visible until a manifest names it.
pub struct SegmentWriter {
    writer: ArrowWriter<Vec<u8>>,
    objects: Arc<dyn ObjectStore>,
    durable: Durable,
}

/// Makes written files survive a power loss. On the local filesystem a
/// put is a write to a temporary name and a rename, neither of which
/// reaches the disk by itself: the file's data is synced, then each
/// directory from the file's own up to the root (its entry, and the
/// entries of directories created for it). Object stores that publish
/// whole objects need nothing more.
#[derive(Clone)]
struct Durable {
    root: Option<Arc<std::path::PathBuf>>,
    on_sync: Arc<ArcSwapOption<SyncHook>>,
}

/// What [`ColdStore::on_sync`] registers.
pub type SyncHook = Box<dyn Fn(&str) + Send + Sync>;

impl Durable {
    async fn sync(&self, path: &str) -> Result<(), ColdError> {
        if let Some(root) = self.root.clone() {
            let relative = path.to_string();
            tokio::task::spawn_blocking(move || sync_up(&root, &relative))
                .await
                .map_err(|e| ColdError::Sync {
                    path: path.to_string(),
                    source: std::io::Error::other(e.to_string()),
                })?
                .map_err(|source| ColdError::Sync {
                    path: path.to_string(),
                    source,
                })?;
        }
        if let Some(hook) = self.on_sync.load().as_ref() {
            hook(path);
        }
        Ok(())
    }
}

/// Syncs `root/relative`, then every directory from its parent up to
/// `root`.
fn sync_up(root: &Path, relative: &str) -> std::io::Result<()> {
    let file = root.join(relative);
    std::fs::File::open(&file)?.sync_all()?;
    let mut dir = file.parent();
    while let Some(current) = dir {
        std::fs::File::open(current)?.sync_all()?;
        if current == root {
            break;
        }
        dir = current.parent();
    }
    Ok(())
}

impl SegmentWriter {
    pub fn write(&mut self, batch: &RecordBatch) -> Result<(), ColdError> {
        self.writer.write(batch)?;
        Ok(())
    }

    /// Finishes the file and stores it at `path`; returns its size.
    pub async fn finish(self, path: &str) -> Result<u64, ColdError> {
        let buffer = self.writer.into_inner()?;
        let size = buffer.len() as u64;
        self.objects
            .put(&ObjectPath::from(path), PutPayload::from(buffer))
            .await?;
        self.durable.sync(path).await?;
        Ok(size)
    }
}

/// Rows per data page. A point read decompresses one page of each column:
/// against 8,192-row pages, 2,048 halve a cold point read and cost scans
/// a few percent (see docs/benchmarks.md).
pub(crate) const PAGE_ROWS: usize = 2048;

/// Largest dictionary page. A point read decodes a column's dictionary
/// with its page, so a column with many distinct values gives up its
/// dictionary early; one with few keeps it.
const DICTIONARY_BYTES: usize = 64 * 1024;

/// Ranged reads of one segment for the Parquet reader.
#[derive(Debug)]
struct SegmentReader {
    objects: Arc<dyn ObjectStore>,
    path: ObjectPath,
    size: u64,
}

fn parquet_error(error: object_store::Error) -> ParquetError {
    ParquetError::External(Box::new(error))
}

impl AsyncFileReader for SegmentReader {
    fn get_bytes(&mut self, range: Range<u64>) -> BoxFuture<'_, parquet::errors::Result<Bytes>> {
        async move {
            self.objects
                .get_range(&self.path, range)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_byte_ranges(
        &mut self,
        ranges: Vec<Range<u64>>,
    ) -> BoxFuture<'_, parquet::errors::Result<Vec<Bytes>>> {
        async move {
            self.objects
                .get_ranges(&self.path, &ranges)
                .await
                .map_err(parquet_error)
        }
        .boxed()
    }

    fn get_metadata<'a>(
        &'a mut self,
        options: Option<&'a ArrowReaderOptions>,
    ) -> BoxFuture<'a, parquet::errors::Result<Arc<ParquetMetaData>>> {
        async move {
            let size = self.size;
            let metadata = ParquetMetaDataReader::new()
                .with_arrow_reader_options(options)
                .load_and_finish(self, size)
                .await?;
            Ok(Arc::new(metadata))
        }
        .boxed()
    }
}

/// The cold tier of one node.
#[derive(Clone)]
pub struct ColdStore {
    objects: Arc<dyn ObjectStore>,
    /// Footers with page indexes of segments read by key, by path.
    footers: Arc<DashMap<String, Footer>>,
    /// Decoded pages of segments read by key; `None` when disabled.
    pages: Option<Arc<PageCache>>,
    /// Told the path of every file deleted, so that caches outside the
    /// store (the query engine's footers) drop what they hold for it.
    on_delete: Arc<ArcSwapOption<DeleteHook>>,
    durable: Durable,
}

/// What [`ColdStore::on_delete`] registers.
pub type DeleteHook = Box<dyn Fn(&str) + Send + Sync>;

impl std::fmt::Debug for ColdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColdStore")
            .field("objects", &self.objects)
            .field("footers", &self.footers.len())
            .field("cached_pages", &self.cached_pages())
            .finish()
    }
}

/// A segment's parsed footer, with what identifies the file it came from
/// (a path can name a new file after its scope was emptied).
#[derive(Debug, Clone)]
pub(crate) struct Footer {
    /// Unique among the footers this process loads: pages are cached
    /// under it, so a new file at an old path never meets old pages.
    id: u64,
    bytes: u64,
    max_seq: i64,
    metadata: ArrowReaderMetadata,
}

impl Footer {
    pub(crate) fn metadata(&self) -> &ParquetMetaData {
        self.metadata.metadata()
    }
}

/// Rows `first_row..first_row + rows` of row group `group`: one data page
/// of the `_key` column (or a whole row group, in a file without a page
/// index), the unit a point read decodes and caches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageSpan {
    pub(crate) group: usize,
    pub(crate) first_row: usize,
    pub(crate) rows: usize,
}

/// Decoded page spans (every column of the file) by footer and span,
/// bounded by their Arrow memory size. Segments never change, so entries
/// are never stale; a deleted segment's pages leave with its footer (one
/// a read still holding the footer puts back ages out).
type PageCache = quick_cache::sync::Cache<(u64, usize, usize), RecordBatch, PageWeight>;

#[derive(Debug, Clone)]
struct PageWeight;

impl quick_cache::Weighter<(u64, usize, usize), RecordBatch> for PageWeight {
    fn weight(&self, _key: &(u64, usize, usize), page: &RecordBatch) -> u64 {
        page.get_array_memory_size().max(1) as u64
    }
}

static NEXT_FOOTER: AtomicU64 = AtomicU64::new(0);

fn table_dir(table_id: u64) -> String {
    format!("t{table_id}")
}

/// The directory of a scope's manifest and segments. Owners are named in
/// hex, so any user name is a safe path segment.
fn scope_dir(scope: &Scope) -> String {
    match scope.owner() {
        None => table_dir(scope.table_id()),
        Some(owner) => format!(
            "{}/u{}",
            table_dir(scope.table_id()),
            to_hex(owner.as_bytes())
        ),
    }
}

impl ColdStore {
    /// Cold storage on the local filesystem under `root`.
    pub fn local(root: &Path) -> Result<Self, ColdError> {
        std::fs::create_dir_all(root).map_err(|source| ColdError::CreateDir {
            path: root.display().to_string(),
            source,
        })?;
        Ok(Self {
            objects: Arc::new(LocalFileSystem::new_with_prefix(root)?),
            footers: Arc::default(),
            pages: None,
            on_delete: Arc::default(),
            durable: Durable {
                root: Some(Arc::new(root.canonicalize().map_err(|source| {
                    ColdError::CreateDir {
                        path: root.display().to_string(),
                        source,
                    }
                })?)),
                on_sync: Arc::default(),
            },
        })
    }

    /// Keeps up to `bytes` of decoded pages read by key (0: none).
    pub fn with_page_cache(mut self, bytes: u64) -> Self {
        self.pages = (bytes > 0).then(|| {
            // A guess at the entry count sizes the cache's table: pages
            // of about 64 KiB.
            let estimated = (bytes / (64 * 1024)).clamp(16, 1 << 20) as usize;
            Arc::new(PageCache::with_weighter(estimated, bytes, PageWeight))
        });
        self
    }

    /// Pages held in the page cache.
    pub fn cached_pages(&self) -> usize {
        self.pages.as_ref().map_or(0, |pages| pages.len())
    }

    /// Arrow bytes of the pages held in the page cache.
    pub fn cached_page_bytes(&self) -> u64 {
        self.pages.as_ref().map_or(0, |pages| pages.weight())
    }

    /// The object store the segments live in, for readers.
    pub fn objects(&self) -> Arc<dyn ObjectStore> {
        self.objects.clone()
    }

    /// A scope's manifest; an empty one when it has never flushed.
    pub async fn manifest(&self, scope: &Scope) -> Result<Manifest, ColdError> {
        let path = ObjectPath::from(format!("{}/{MANIFEST}", scope_dir(scope)));
        let bytes = match self.objects.get(&path).await {
            Ok(result) => result.bytes().await?,
            Err(object_store::Error::NotFound { .. }) => return Ok(Manifest::empty(scope)),
            Err(e) => return Err(e.into()),
        };
        serde_json::from_slice(&bytes).map_err(|e| ColdError::Manifest {
            path: path.to_string(),
            detail: e.to_string(),
        })
    }

    /// Publishes a manifest, replacing the previous one atomically.
    pub async fn publish(&self, manifest: &Manifest) -> Result<(), ColdError> {
        let path = ObjectPath::from(format!("{}/{MANIFEST}", scope_dir(&manifest.scope())));
        let bytes = serde_json::to_vec_pretty(manifest).expect("manifests serialize");
        self.objects.put(&path, PutPayload::from(bytes)).await?;
        // Synced before anything it replaces (hot rows, older segments)
        // is removed.
        self.durable.sync(path.as_ref()).await?;
        Ok(())
    }

    /// Deletes a scope's manifest.
    pub async fn delete_manifest(&self, scope: &Scope) -> Result<(), ColdError> {
        self.delete(&format!("{}/{MANIFEST}", scope_dir(scope)))
            .await
    }

    /// The path a new segment of `scope` gets, numbered by `version`.
    pub fn segment_path(scope: &Scope, version: u64) -> String {
        format!("{}/seg-{version}.parquet", scope_dir(scope))
    }

    /// A writer for a new segment of `schema`: zstd, page statistics, a
    /// bloom filter on the key column. Batches are encoded as they come;
    /// [`SegmentWriter::finish`] stores the file.
    pub fn segment_writer(
        &self,
        schema: SchemaRef,
        options: &SegmentOptions,
    ) -> Result<SegmentWriter, ColdError> {
        let mut properties = WriterProperties::builder()
            .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
            .set_max_row_group_row_count(Some(options.row_group_rows))
            .set_data_page_row_count_limit(PAGE_ROWS)
            .set_dictionary_page_size_limit(DICTIONARY_BYTES)
            .set_statistics_enabled(EnabledStatistics::Page);
        // Row keys and sequence numbers are unique: a dictionary of them
        // would only be decoded for nothing.
        for unique in [KEY_COLUMN, SEQ_COLUMN] {
            properties = properties.set_column_dictionary_enabled(ColumnPath::from(unique), false);
        }
        if let Some(key) = &options.key_column {
            properties = properties
                .set_column_bloom_filter_enabled(ColumnPath::from(key.as_str()), true)
                .set_column_dictionary_enabled(ColumnPath::from(key.as_str()), false);
        }
        Ok(SegmentWriter {
            writer: ArrowWriter::try_new(Vec::new(), schema, Some(properties.build()))?,
            objects: self.objects.clone(),
            durable: self.durable.clone(),
        })
    }

    /// Reads a whole segment's bytes.
    pub async fn read(&self, path: &str) -> Result<Bytes, ColdError> {
        Ok(self
            .objects
            .get(&ObjectPath::from(path))
            .await?
            .bytes()
            .await?)
    }

    /// A reader of a segment that fetches byte ranges, not the whole file.
    fn segment_reader(&self, segment: &Segment) -> SegmentReader {
        SegmentReader {
            objects: self.objects.clone(),
            path: ObjectPath::from(segment.path.as_str()),
            size: segment.bytes,
        }
    }

    /// A segment's footer with its page index, read once and then kept
    /// until the segment is deleted.
    pub(crate) async fn footer(&self, segment: &Segment) -> Result<Footer, ColdError> {
        if let Some(footer) = self.footers.get(&segment.path)
            && footer.bytes == segment.bytes
            && footer.max_seq == segment.max_seq
        {
            return Ok(footer.clone());
        }
        let options = ArrowReaderOptions::new().with_page_index_policy(PageIndexPolicy::Optional);
        let metadata =
            ArrowReaderMetadata::load_async(&mut self.segment_reader(segment), options).await?;
        let footer = Footer {
            id: NEXT_FOOTER.fetch_add(1, Ordering::Relaxed),
            bytes: segment.bytes,
            max_seq: segment.max_seq,
            metadata,
        };
        self.footers.insert(segment.path.clone(), footer.clone());
        Ok(footer)
    }

    /// Every column of the rows `span` of a segment, decoded: from the
    /// page cache, or fetched (only the pages the span touches) and
    /// decoded once however many readers want it at the same time.
    pub(crate) async fn page(
        &self,
        segment: &Segment,
        footer: &Footer,
        span: PageSpan,
    ) -> Result<RecordBatch, ColdError> {
        let decode = async {
            let mut selectors = Vec::with_capacity(2);
            if span.first_row > 0 {
                selectors.push(RowSelector::skip(span.first_row));
            }
            selectors.push(RowSelector::select(span.rows));
            let builder = ParquetRecordBatchStreamBuilder::new_with_metadata(
                self.segment_reader(segment),
                footer.metadata.clone(),
            )
            .with_row_groups(vec![span.group])
            .with_row_selection(RowSelection::from(selectors))
            .with_batch_size(span.rows.max(1));
            let schema = builder.schema().clone();
            let batches: Vec<RecordBatch> = builder.build()?.try_collect().await?;
            arrow::compute::concat_batches(&schema, &batches)
                .map_err(|e| ColdError::Parquet(ParquetError::ArrowError(e.to_string())))
        };
        match &self.pages {
            None => decode.await,
            Some(pages) => {
                pages
                    .get_or_insert_async(&(footer.id, span.group, span.first_row), decode)
                    .await
            }
        }
    }

    /// Calls `hook` with the path of every segment and manifest once it is
    /// durable (synced), replacing any hook registered before.
    pub fn on_sync(&self, hook: SyncHook) {
        self.durable.on_sync.store(Some(Arc::new(hook)));
    }

    /// Calls `hook` with the path of every file deleted from now on,
    /// replacing any hook registered before.
    pub fn on_delete(&self, hook: DeleteHook) {
        self.on_delete.store(Some(Arc::new(hook)));
    }

    pub async fn delete(&self, path: &str) -> Result<(), ColdError> {
        if let (Some((_, footer)), Some(pages)) = (self.footers.remove(path), &self.pages) {
            pages.retain(|&(id, _, _), _| id != footer.id);
        }
        let deleted = match self.objects.delete(&ObjectPath::from(path)).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        };
        // After the file is gone, so that a scan racing the delete cannot
        // put its footer back.
        if let Some(hook) = self.on_delete.load().as_ref() {
            hook(path);
        }
        deleted
    }

    /// Every file of a table, its owners' included.
    async fn files(&self, table_id: u64) -> Result<Vec<String>, ColdError> {
        let prefix = ObjectPath::from(table_dir(table_id));
        let files: Vec<_> = self.objects.list(Some(&prefix)).try_collect().await?;
        Ok(files.into_iter().map(|m| m.location.to_string()).collect())
    }

    /// The files directly in a scope's directory, the manifest included.
    async fn scope_files(&self, scope: &Scope) -> Result<Vec<String>, ColdError> {
        let prefix = ObjectPath::from(scope_dir(scope));
        let listing = self.objects.list_with_delimiter(Some(&prefix)).await?;
        Ok(listing
            .objects
            .into_iter()
            .map(|m| m.location.to_string())
            .collect())
    }

    /// Deletes the files of a scope that its manifest does not name: what
    /// a crash between writing a file and publishing (or after publishing,
    /// before removing replaced files) leaves behind. Returns how many.
    pub async fn remove_unreferenced(&self, manifest: &Manifest) -> Result<usize, ColdError> {
        let mut removed = 0;
        for file in self.scope_files(&manifest.scope()).await? {
            let referenced =
                file.ends_with(MANIFEST) || manifest.segments.iter().any(|s| s.path == file);
            if !referenced {
                self.delete(&file).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes every file of a table.
    pub async fn delete_table(&self, table_id: u64) -> Result<(), ColdError> {
        for file in self.files(table_id).await? {
            self.delete(&file).await?;
        }
        Ok(())
    }

    /// The scopes that have files: each table's, and each owner's of a
    /// per-user table.
    pub async fn scopes(&self) -> Result<Vec<Scope>, ColdError> {
        let listing = self.objects.list_with_delimiter(None).await?;
        let mut scopes = Vec::new();
        for table in &listing.common_prefixes {
            let Some(id) = table
                .as_ref()
                .strip_prefix('t')
                .and_then(|id| id.parse::<u64>().ok())
            else {
                continue;
            };
            scopes.push(Scope::table(id));
            let owners = self.objects.list_with_delimiter(Some(table)).await?;
            for dir in &owners.common_prefixes {
                let name = dir.filename().unwrap_or_default();
                let owner = name
                    .strip_prefix('u')
                    .map(from_hex)
                    .and_then(|bytes| String::from_utf8(bytes).ok());
                if let Some(owner) = owner {
                    scopes.push(Scope::owned(id, &owner));
                }
            }
        }
        Ok(scopes)
    }
}
