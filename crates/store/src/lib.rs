//! Quiver's storage backend: RocksDB holds catalog records and hot table
//! rows, each statement committed in one atomic, write-ahead-logged batch.
//! Row keys sort by table, then by the primary key's order-preserving
//! encoding; row values carry `_seq`, `_deleted` and the cells by stable
//! column id.

mod backend;
mod cold;
mod keys;
mod row;
mod seq;
mod tier;

pub use backend::{
    Batch, HotRows, KeyRange, MetaRecord, RowScan, Store, StoreError, StoreMemory, StoreOptions,
};
pub use cold::{
    ColdError, ColdStore, ColumnStats, DeleteHook, Manifest, Segment, SegmentOptions,
    SegmentWriter, SyncHook, from_hex, to_hex,
};
pub use keys::{Scope, encode_key_value, table_prefix};
pub use row::{StoredRow, Value};
pub use seq::SeqGenerator;
pub use tier::{
    ColdTables, DELETED_COLUMN, KEY_COLUMN, PendingWrites, SEQ_COLUMN, SegmentRows, TableCold,
    block_on, segment_column, wait_for_readers,
};
