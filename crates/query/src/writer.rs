//! The one way rows of a table are written: [`TableWriter`] holds the
//! table's writer lock, gathers a statement's row versions into one store
//! batch, and on [`TableWriter::commit`] writes the batch, counts the rows
//! toward the flush policy and the node's totals, and hands the changes to
//! live queries, in that order and before the lock is released.

use std::sync::Arc;

use quiver_catalog::CachedTableData;
use quiver_store::{Batch, Scope, Store, StoredRow};
use tokio::sync::OwnedMutexGuard;

use crate::error::Result;
use crate::executor::QueryEngine;
use crate::live::{self, RowChange};

/// What one statement wrote to one scope of the table.
struct ScopeWrites {
    scope: Scope,
    /// Row versions written, toward the flush policy.
    rows: u64,
    /// Old and new versions for live queries (only when watched).
    changes: Vec<RowChange>,
}

/// Exclusive write access to one table for one statement.
pub(crate) struct TableWriter<'e> {
    engine: &'e QueryEngine,
    table: Arc<CachedTableData>,
    batch: Batch<'e>,
    /// Whether a live query watches the table. Subscriptions register
    /// under the same lock, so this holds for the whole statement.
    watched: bool,
    scopes: Vec<ScopeWrites>,
    _lock: OwnedMutexGuard<()>,
}

impl<'e> TableWriter<'e> {
    /// Waits for the table's writer lock.
    pub(crate) async fn lock(engine: &'e QueryEngine, table: Arc<CachedTableData>) -> Self {
        let lock = engine.writer_lock(table.def().id).lock_owned().await;
        let watched = engine.live().watches(table.def().id.0);
        Self {
            engine,
            batch: engine.catalog().store().batch(),
            table,
            watched,
            scopes: Vec::new(),
            _lock: lock,
        }
    }

    /// Whether the changes are published: callers skip building `before`
    /// versions when they are not.
    pub(crate) fn watched(&self) -> bool {
        self.watched
    }

    pub(crate) fn store(&self) -> &'e Store {
        self.engine.catalog().store()
    }

    fn scope_writes(&mut self, scope: &Scope) -> &mut ScopeWrites {
        let index = match self.scopes.iter().position(|s| &s.scope == scope) {
            Some(index) => index,
            None => {
                self.scopes.push(ScopeWrites {
                    scope: scope.clone(),
                    rows: 0,
                    changes: Vec::new(),
                });
                self.scopes.len() - 1
            }
        };
        &mut self.scopes[index]
    }

    /// Writes a new version of the row at `key` in `scope`; `before` is the
    /// version it replaces, if any.
    pub(crate) fn put(
        &mut self,
        scope: &Scope,
        key: &[u8],
        row: StoredRow,
        before: Option<StoredRow>,
    ) {
        self.batch.put_row(key, &row);
        let watched = self.watched;
        let writes = self.scope_writes(scope);
        writes.rows += 1;
        if watched {
            writes.changes.push((before, row));
        }
    }

    /// Removes the stored versions at `key` outright (expiry): not a new
    /// version, so nothing is counted.
    pub(crate) fn remove(&mut self, key: &[u8]) {
        self.batch.delete_row(key);
    }

    /// Removes the stored versions of keys in `[from, to)` (expiry).
    pub(crate) fn remove_range(&mut self, from: &[u8], to: &[u8]) {
        self.batch.delete_row_range(from, to);
    }

    /// Tells live queries of rows of `scope` that left without a version
    /// of their own (expired rows).
    pub(crate) fn removed(&mut self, scope: &Scope, changes: Vec<RowChange>) {
        if self.watched {
            self.scope_writes(scope).changes.extend(changes);
        }
    }

    /// Commits the batch (in the write-ahead log when this returns), counts
    /// the rows written and publishes the changes; returns the rows
    /// written. Nothing is counted or published if the commit fails.
    pub(crate) fn commit(self) -> Result<u64> {
        let Self {
            engine,
            table,
            batch,
            scopes,
            _lock,
            ..
        } = self;
        engine.catalog().store().commit(batch)?;
        let mut total = 0;
        for writes in &scopes {
            if writes.rows > 0 {
                engine.committed(&writes.scope, writes.rows);
            }
            live::publish(engine, &table, &writes.scope, &writes.changes);
            total += writes.rows;
        }
        Ok(total)
    }
}
