//! A reader's view of the hot rows: as they stand, or frozen at a RocksDB
//! snapshot so that a long read sees one consistent cut while writers go
//! on committing.

use std::sync::Arc;

use rocksdb::{DB, ReadOptions, SnapshotWithThreadMode};

use super::{KeyRange, RowScan, Store, StoreError};
use crate::keys::Scope;
use crate::row::StoredRow;

type DbSnapshot<'a> = SnapshotWithThreadMode<'a, DB>;

self_cell::self_cell!(
    /// A RocksDB snapshot that owns a handle on its database, so that it
    /// can outlive the borrow it was taken through.
    struct Frozen {
        owner: Arc<DB>,
        #[covariant]
        dependent: DbSnapshot,
    }
);

/// The hot rows one reader sees. Cheap to clone: clones share the
/// snapshot, which RocksDB keeps (with every version it needs) until the
/// last clone is dropped.
#[derive(Clone)]
pub struct HotRows {
    store: Arc<Store>,
    frozen: Option<Arc<Frozen>>,
}

impl std::fmt::Debug for HotRows {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotRows")
            .field("store", &self.store)
            .field("frozen", &self.frozen.is_some())
            .finish()
    }
}

impl HotRows {
    /// The rows as they stand at each read.
    pub fn current(store: Arc<Store>) -> Self {
        Self {
            store,
            frozen: None,
        }
    }

    /// The rows as they stand now, for every later read: commits after
    /// this call are not seen.
    pub fn frozen(store: Arc<Store>) -> Self {
        let frozen = Frozen::new(store.db.clone(), |db| db.snapshot());
        Self {
            store,
            frozen: Some(Arc::new(frozen)),
        }
    }

    fn options(&self) -> ReadOptions {
        let mut options = ReadOptions::default();
        if let Some(frozen) = &self.frozen {
            options.set_snapshot(frozen.borrow_dependent());
        }
        options
    }

    /// Like [`Store::get_row`].
    pub fn get_row(&self, key: &[u8]) -> Result<Option<StoredRow>, StoreError> {
        self.store.get_row_with(key, &self.options())
    }

    /// Like [`Store::scan_rows`].
    pub fn scan_rows(
        &self,
        scope: &Scope,
        after: Option<&[u8]>,
        limit: usize,
    ) -> Result<RowScan, StoreError> {
        self.store
            .scan_row_prefix_with(&scope.prefix(), after, limit, self.options())
    }

    /// Like [`Store::key_range`].
    pub fn key_range(&self, scope: &Scope) -> Result<Option<KeyRange>, StoreError> {
        self.store.key_range_with(scope, || self.options())
    }
}
