//! Storage maintenance: flushes and compactions run as jobs recorded in
//! `system.jobs`, on demand (`STORAGE FLUSH`, `STORAGE COMPACT`) or from
//! the background task that applies each table's flush policy, the
//! compaction policy and STREAM tables' TTL.

use std::sync::Arc;
use std::time::{Duration, Instant};

use quiver_catalog::{FlushPolicy, JobRecord, JobStatus, SYSTEM_NAMESPACE, TableDef, TableType};
use quiver_common::SeqId;
use quiver_config::{CompactionConfig, FlushConfig};
use quiver_store::Value;
use tokio_util::sync::CancellationToken;

use crate::cold::{self, Outcome};
use crate::error::{QueryError, Result};
use crate::executor::QueryEngine;
use crate::provider::row_key;

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
        job.duration_ms = Some(started.elapsed().as_millis() as i64);
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

    /// Flushes a table's hot rows into a new segment, as a job.
    pub async fn flush_table(&self, def: &TableDef) -> Result<(JobRecord, Outcome)> {
        if def.table_type == TableType::Stream {
            return Err(QueryError::invalid(format!(
                "{} is a STREAM table: its rows expire after TTL_SECONDS and never flush",
                def.qualified_name()
            )));
        }
        let work = async {
            let (outcome, flushed) = cold::flush(self.cold(), def, self.row_group_rows()).await?;
            let store = self.catalog().store();
            if def.namespace.as_str() == SYSTEM_NAMESPACE {
                // The catalog writes system rows under its own lock.
                self.catalog()
                    .exclusive(|| cold::remove_flushed(store, &flushed))?;
            } else {
                let writer = self.writer_lock(def.id);
                let _writer = writer.lock().await;
                cold::remove_flushed(store, &flushed)?;
            }
            if !flushed.is_empty() {
                let store = store.clone();
                let table = def.id.0;
                // Without this every scan steps over one RocksDB delete
                // marker per flushed row.
                tokio::task::spawn_blocking(move || store.compact_table_rows(table))
                    .await
                    .map_err(|e| QueryError::Internal(e.to_string()))?;
            }
            Ok(outcome)
        };
        let result = self.run_job("flush", def, work).await?;
        self.cold().pending().flushed(def.id.0, result.1.rows);
        Ok(result)
    }

    /// Merges a table's segments into one, as a job.
    pub async fn compact_table(&self, def: &TableDef) -> Result<(JobRecord, Outcome)> {
        self.run_job(
            "compact",
            def,
            cold::compact(self.cold(), def, self.row_group_rows()),
        )
        .await
    }

    /// Deletes the rows of STREAM tables older than their TTL.
    fn expire_streams(&self) -> Result<()> {
        let now = chrono::Utc::now().timestamp_millis();
        for table in self.catalog().tables() {
            let def = table.def();
            let (TableType::Stream, Some(ttl)) = (def.table_type, def.options.ttl_seconds) else {
                continue;
            };
            let cutoff = SeqId::floor_at(now - (ttl as i64) * 1000).0;
            let end = row_key(def.id, &Value::Int64(cutoff)).expect("integers are keys");
            let start = quiver_store::table_prefix(def.id.0);
            let store = self.catalog().store();
            let mut batch = store.batch();
            batch.delete_row_range(&start, &end);
            store.commit(batch)?;
        }
        Ok(())
    }

    /// One pass of the background task: expire streams, flush the tables
    /// their policy says are due, compact those with too many segments.
    async fn maintain(&self, flush: &FlushConfig, compaction: &CompactionConfig) -> Result<()> {
        self.expire_streams()?;
        let now = chrono::Utc::now().timestamp_millis();
        let catalog = self.catalog();
        let tables = catalog.tables();
        for table in tables.iter().chain(catalog.system_tables()) {
            let def = table.def();
            if def.table_type == TableType::Stream {
                continue;
            }
            let (rows, since) = self.cold().pending().get(def.id.0);
            if due(&flush_policy(def, flush), rows, since, now) {
                self.flush_table(def).await?;
            }
            let segments = self.cold().manifest(def.id.0).segments.len();
            if compaction.max_segments > 0 && segments >= compaction.max_segments {
                self.compact_table(def).await?;
            }
        }
        Ok(())
    }
}

/// Runs storage maintenance every `[flush] check_interval_ms` until
/// `shutdown` is cancelled. A failed pass is logged and retried on the next
/// tick.
pub async fn run_maintenance(
    engine: Arc<QueryEngine>,
    flush: FlushConfig,
    compaction: CompactionConfig,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_millis(flush.check_interval_ms));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let pass = engine.maintain(&flush, &compaction);
        tokio::select! {
            _ = shutdown.cancelled() => return,
            result = pass => {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "storage maintenance failed; retrying");
                }
            }
        }
    }
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
