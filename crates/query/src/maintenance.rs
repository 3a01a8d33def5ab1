//! Storage maintenance: flushes and compactions run as jobs recorded in
//! `system.jobs`, on demand (`STORAGE FLUSH`, `STORAGE COMPACT`) or from
//! the background task that applies each table's flush policy, the
//! compaction policy and STREAM tables' TTL.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use quiver_catalog::{
    CachedTableData, Catalog, FlushPolicy, JobRecord, JobStatus, SYSTEM_NAMESPACE, TableDef,
    TableType,
};
use quiver_common::{NamespaceId, SeqId};
use quiver_config::{CompactionConfig, FlushConfig};
use quiver_store::{Scope, Store, StoredRow, Value};
use tokio_util::sync::CancellationToken;

use crate::cold::{self, Outcome};
use crate::dialect::StorageTarget;
use crate::error::{QueryError, Result};
use crate::executor::{Intent, QueryEngine, QuerySession};
use crate::suggest;
use crate::writer::TableWriter;

/// Whether a table is due for a flush under `policy`.
fn due(policy: &FlushPolicy, rows: u64, since_ms: i64, now: i64) -> bool {
    if rows == 0 {
        return false;
    }
    let by_rows = policy.rows.is_some_and(|n| n > 0 && rows >= n);
    let by_age = policy
        .interval_secs
        .is_some_and(|s| s > 0 && since_ms > 0 && now - since_ms >= (s as i64) * 1000);
    by_rows || by_age
}

/// The policy that applies to a table: its own, or the configured one.
pub fn flush_policy(def: &TableDef, defaults: &FlushConfig) -> FlushPolicy {
    def.options.flush_policy.unwrap_or(FlushPolicy {
        rows: (defaults.rows > 0).then_some(defaults.rows),
        interval_secs: (defaults.interval_secs > 0).then_some(defaults.interval_secs),
    })
}

/// The scopes of a table that may have hot rows: the table, or each owner
/// of a per-user table with hot rows.
pub(crate) fn hot_scopes(store: &Store, def: &TableDef) -> Result<Vec<Scope>> {
    if !def.table_type.per_user() {
        return Ok(vec![Scope::table(def.id.0)]);
    }
    let owners = store.owners(def.id.0)?;
    Ok(owners
        .iter()
        .map(|owner| Scope::owned(def.id.0, owner))
        .collect())
}

impl QueryEngine {
    fn job(&self, job_type: &str, def: &TableDef) -> JobRecord {
        JobRecord {
            id: uuid::Uuid::now_v7().to_string(),
            job_type: job_type.to_string(),
            status: JobStatus::Running,
            target: Some(def.qualified_name()),
            node_id: self.node().node_id.clone(),
            created_at: chrono::Utc::now().timestamp_micros(),
            finished_at: None,
            duration_ms: None,
            rows: None,
            bytes: None,
            message: None,
        }
    }

    /// Runs `work` as a job of `job_type` on `def`, recording it in
    /// `system.jobs` when it starts and when it ends.
    async fn run_job(
        &self,
        job_type: &str,
        def: &TableDef,
        work: impl Future<Output = Result<Outcome>>,
    ) -> Result<(JobRecord, Outcome)> {
        let mut job = self.job(job_type, def);
        self.catalog().record_job(&job)?;
        let started = Instant::now();
        let result = work.await;
        job.finished_at = Some(chrono::Utc::now().timestamp_micros());
        let elapsed = started.elapsed();
        job.duration_ms = Some(elapsed.as_millis() as i64);
        let counters = &self.node().counters;
        let totals = match job_type {
            "flush" => Some((&counters.flushes, &counters.flush_micros)),
            "compact" => Some((&counters.compactions, &counters.compaction_micros)),
            _ => None,
        };
        if let Some((count, micros)) = totals {
            count.fetch_add(1, Ordering::Relaxed);
            micros.fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
        }
        match &result {
            Ok(outcome) => {
                job.status = JobStatus::Completed;
                job.rows = Some(outcome.rows as i64);
                job.bytes = Some(outcome.bytes as i64);
            }
            Err(e) => {
                job.status = JobStatus::Failed;
                job.message = Some(e.to_string());
            }
        }
        self.catalog().record_job(&job)?;
        result.map(|outcome| (job, outcome))
    }

    /// Flushes a table's hot rows into new segments (one per owner of a
    /// per-user table), as a job.
    pub async fn flush_table(&self, def: &TableDef) -> Result<(JobRecord, Outcome)> {
        let scopes = hot_scopes(self.catalog().store(), def)?;
        self.flush_scopes(def, scopes).await
    }

    async fn flush_scopes(
        &self,
        def: &TableDef,
        scopes: Vec<Scope>,
    ) -> Result<(JobRecord, Outcome)> {
        if def.table_type == TableType::Stream {
            return Err(QueryError::invalid(format!(
                "{} is a STREAM table: its rows expire after TTL_SECONDS and never flush",
                def.qualified_name()
            )));
        }
        let work = async {
            let mut total = Outcome::default();
            for scope in &scopes {
                let outcome = self.flush_scope(def, scope).await?;
                total.rows += outcome.rows;
                total.bytes += outcome.bytes;
                total.segments += outcome.segments;
            }
            Ok(total)
        };
        self.run_job("flush", def, work).await
    }

    async fn flush_scope(&self, def: &TableDef, scope: &Scope) -> Result<Outcome> {
        let (outcome, flushed) =
            cold::flush(self.cold(), def, scope, self.row_group_rows()).await?;
        let store = self.catalog().store();
        if def.namespace.as_str() == SYSTEM_NAMESPACE {
            // The catalog writes system rows under its own lock.
            self.catalog()
                .exclusive(|| store.delete_unchanged(&flushed))?;
        } else {
            let writer = self.writer_lock(def.id);
            let _writer = writer.lock().await;
            store.delete_unchanged(&flushed)?;
        }
        if !flushed.is_empty() {
            let store = store.clone();
            let compacted = scope.clone();
            // Without this every scan steps over one RocksDB delete
            // marker per flushed row.
            tokio::task::spawn_blocking(move || store.compact_rows(&compacted))
                .await
                .map_err(|e| QueryError::Internal(e.to_string()))?;
        }
        self.cold().pending().flushed(scope, outcome.rows);
        Ok(outcome)
    }

    /// Merges each scope's segments of a table into one, as a job.
    pub async fn compact_table(&self, def: &TableDef) -> Result<(JobRecord, Outcome)> {
        let scopes = if def.table_type.per_user() {
            self.cold().scopes_of(def.id.0)
        } else {
            vec![Scope::table(def.id.0)]
        };
        self.compact_scopes(def, scopes).await
    }

    async fn compact_scopes(
        &self,
        def: &TableDef,
        scopes: Vec<Scope>,
    ) -> Result<(JobRecord, Outcome)> {
        let work = async {
            let mut total = Outcome::default();
            for scope in &scopes {
                let outcome = cold::compact(self.cold(), def, scope, self.row_group_rows()).await?;
                total.rows += outcome.rows;
                total.bytes += outcome.bytes;
                total.segments += outcome.segments;
            }
            Ok(total)
        };
        self.run_job("compact", def, work).await
    }

    /// Deletes the rows of STREAM tables older than their TTL.
    async fn expire_streams(&self) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        for table in self.catalog().tables() {
            let def = table.def();
            let (TableType::Stream, Some(ttl)) = (def.table_type, def.options.ttl_seconds) else {
                continue;
            };
            // Writers are shut out, so a row written again after the scan
            // below is never deleted by it.
            let mut writer = TableWriter::lock(self, table.clone()).await;
            let cutoff = SeqId::floor_at(now - (ttl as i64) * 1000).0;
            let store = writer.store();
            // Live queries see expired rows as deletes, at one new `_seq`.
            let watched = writer.watched();
            let expired_at = if watched { store.seq().next().0 } else { 0 };
            for scope in hot_scopes(store, def)? {
                // Keyed by first `_seq` when there is no primary key: the
                // expired rows are one range.
                let end = def
                    .primary_key
                    .is_none()
                    .then(|| scope.key(&Value::Int64(cutoff)).expect("integers are keys"));
                let mut changes = Vec::new();
                let mut after: Option<Box<[u8]>> = None;
                // Rows are read only where they must be: to find expired
                // ones by `_seq`, or to tell subscribers about them.
                while watched || end.is_none() {
                    let chunk = store.scan_rows(&scope, after.as_deref(), 8192)?;
                    for (key, row) in chunk.rows {
                        let gone = match &end {
                            Some(end) => *key < **end,
                            None => row.seq < cutoff,
                        };
                        if !gone {
                            continue;
                        }
                        if end.is_none() {
                            writer.remove(&key);
                        }
                        if watched && !row.deleted {
                            let marker = StoredRow {
                                seq: expired_at,
                                deleted: true,
                                cells: Vec::new(),
                            };
                            changes.push((Some(row), marker));
                        }
                    }
                    match chunk.resume_after {
                        Some(key) if end.as_ref().is_none_or(|end| *key < **end) => {
                            after = Some(key)
                        }
                        _ => break,
                    }
                }
                // A range delete costs the store a memtable switch: only
                // when the scope's oldest row has expired.
                if let Some(end) = &end
                    && store
                        .scan_rows(&scope, None, 1)?
                        .rows
                        .first()
                        .is_some_and(|(key, _)| **key < **end)
                {
                    writer.remove_range(&scope.prefix(), end);
                }
                writer.removed(&scope, changes);
            }
            writer.commit()?;
        }
        Ok(())
    }

    /// One pass of the background task: expire streams, flush the tables
    /// their policy says are due, compact those with too many segments.
    async fn maintain(
        &self,
        flush: &FlushConfig,
        compaction: &CompactionConfig,
        shutdown: &CancellationToken,
    ) -> Result<()> {
        self.expire_streams().await?;
        let now = chrono::Utc::now().timestamp_millis();
        // One pass over every scope, grouped by table.
        let mut written: HashMap<u64, Vec<(Scope, u64, i64)>> = HashMap::new();
        for (scope, rows, since) in self.cold().pending().all() {
            written
                .entry(scope.table_id())
                .or_default()
                .push((scope, rows, since));
        }
        let catalog = self.catalog();
        let tables = catalog.tables();
        for table in tables.iter().chain(catalog.system_tables()) {
            let def = table.def();
            if def.table_type == TableType::Stream {
                continue;
            }
            let policy = flush_policy(def, flush);
            let due_scopes: Vec<Scope> = written
                .remove(&def.id.0)
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, rows, since)| due(&policy, *rows, *since, now))
                .map(|(scope, _, _)| scope)
                .collect();
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if !due_scopes.is_empty() {
                self.flush_scopes(def, due_scopes).await?;
            }
        }
        if compaction.max_segments == 0 {
            return Ok(());
        }
        // After the flushes, which may have added the segment that counts.
        let mut crowded: HashMap<u64, Vec<Scope>> = HashMap::new();
        for scope in self.cold().crowded(compaction.max_segments) {
            crowded.entry(scope.table_id()).or_default().push(scope);
        }
        for table in tables.iter().chain(catalog.system_tables()) {
            if shutdown.is_cancelled() {
                return Ok(());
            }
            if let Some(scopes) = crowded.remove(&table.def().id.0) {
                self.compact_scopes(table.def(), scopes).await?;
            }
        }
        Ok(())
    }
}

/// Runs storage maintenance every `[flush] check_interval_ms` until
/// `shutdown` is cancelled, with the settings in effect at each pass. A
/// failed pass is logged and retried on the next one. A pass stops between
/// jobs at shutdown; a job itself always finishes or leaves no trace.
pub async fn run_maintenance(engine: Arc<QueryEngine>, shutdown: CancellationToken) {
    loop {
        let config = engine.config();
        let pause = Duration::from_millis(config.flush.check_interval_ms);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(pause) => {}
        }
        // A pass in progress finishes its current job even at shutdown,
        // so that no segment is left half-written.
        if let Err(e) = engine
            .maintain(&config.flush, &config.compaction, &shutdown)
            .await
        {
            tracing::warn!(error = %e, "storage maintenance failed; retrying");
        }
    }
}

impl QuerySession {
    /// The tables a `STORAGE` statement names. `ALL` skips STREAM tables
    /// when flushing, since they never flush.
    pub(crate) fn storage_targets(
        &self,
        target: &StorageTarget,
        flushing: bool,
    ) -> Result<Vec<Arc<CachedTableData>>> {
        let catalog = self.engine().catalog();
        match target {
            StorageTarget::Table(name) => match self.split_name(name)? {
                (ns, table) if ns.as_str() == SYSTEM_NAMESPACE => catalog
                    .system_table(table.as_str())
                    .map(|t| vec![t])
                    .ok_or_else(|| {
                        QueryError::table_not_found(format!(
                            "system.{table} (a stored system table)"
                        ))
                    }),
                _ => Ok(vec![self.resolve_table(name, Intent::Write)?]),
            },
            StorageTarget::All { namespace } => {
                let tables = match namespace {
                    Some(ns) if ns == SYSTEM_NAMESPACE => catalog.system_tables().to_vec(),
                    Some(ns) => {
                        let ns = NamespaceId::new(ns)?;
                        if !catalog.namespace_exists(&ns) {
                            return Err(suggest::namespace_not_found(catalog, ns.as_str()));
                        }
                        catalog.registry().tables_in(&ns)
                    }
                    None => {
                        let mut all = catalog.tables();
                        all.extend(catalog.system_tables().iter().cloned());
                        all
                    }
                };
                Ok(tables
                    .into_iter()
                    .filter(|t| !(flushing && t.def().table_type == TableType::Stream))
                    .collect())
            }
        }
    }
}

/// Start-up recovery of the cold tier and the flush policies: removes the
/// segment files of tables that no longer exist (a crash between a DROP
/// and its file removal), and counts each scope's hot rows toward its
/// flush policy, as if they had just been written.
pub fn recover(catalog: &Catalog) -> Result<()> {
    let cold = catalog.tier();
    let mut live: Vec<u64> = catalog.tables().iter().map(|t| t.def().id.0).collect();
    live.extend(catalog.system_tables().iter().map(|t| t.def().id.0));
    cold.retain(&live)?;
    for table in catalog.tables().iter().chain(catalog.system_tables()) {
        for scope in hot_scopes(catalog.store(), table.def())? {
            let rows = catalog.store().count_rows(&scope, usize::MAX)?;
            cold.pending().note(&scope, rows as u64);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_parts_of_a_policy_count() {
        let policy = FlushPolicy {
            rows: Some(100),
            interval_secs: Some(10),
        };
        assert!(!due(&policy, 0, 0, 1_000_000));
        assert!(due(&policy, 100, 999_999, 1_000_000));
        assert!(!due(&policy, 99, 995_000, 1_000_000));
        assert!(due(&policy, 1, 990_000, 1_000_000));
        let rows_only = FlushPolicy {
            rows: Some(5),
            interval_secs: None,
        };
        assert!(!due(&rows_only, 4, 1, 1_000_000));
    }
}
