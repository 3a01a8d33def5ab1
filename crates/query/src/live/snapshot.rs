//! The start of a subscription: registered at a cut taken while the
//! table's writers are shut out for a moment, then its snapshot (or a
//! resume's changes) read at that cut while the writers go on, bounded
//! like a query's answer.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{concat_batches, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::utils::memory::RecordBatchMemoryCounter;
use datafusion::dataframe::DataFrame;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, ObjectName, ObjectNamePart, SelectItem};
use futures::StreamExt;
use quiver_live::{ConnectionId, LiveQueryManager, Subscription};
use quiver_store::StoredRow;

use super::{Compiled, full_row};
use crate::assemble;
use crate::convert::{OutputColumn, rows_to_batch, value_bytes};
use crate::error::{QueryError, Result};
use crate::executor::{QueryEngine, QuerySession};
use crate::provider::ReadPoint;

/// Which rows a new subscription starts with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Snapshot {
    /// None: live changes only.
    None,
    /// Every row that matches.
    Full,
    /// The matching rows written after this `_seq`.
    Since(i64),
    /// The newest matching rows, at most this many.
    Last(usize),
}

/// A registered subscription and the rows it starts with. Dropped before
/// [`Subscribed::keep`], the subscription is withdrawn: a start that
/// fails, times out or is abandoned at any point leaves nothing
/// registered.
#[derive(Debug)]
pub struct Subscribed {
    registration: Registration,
    rows: Vec<RecordBatch>,
    removed: Option<RecordBatch>,
    memory: SnapshotMemory,
}

/// A subscription its connection now holds, and what it starts with.
#[derive(Debug)]
pub struct Kept {
    pub subscription: Arc<Subscription>,
    /// In `_seq` order, in the subscription's projection.
    pub rows: Vec<RecordBatch>,
    /// On a resume (`from`): the primary keys (and `_seq`) of rows deleted
    /// or moved out of the filter since, to send as a delete once the rows
    /// are out.
    pub removed: Option<RecordBatch>,
    /// The memory `rows` and `removed` take from the pool queries share;
    /// hold it until they are sent.
    pub memory: SnapshotMemory,
}

impl Subscribed {
    pub fn subscription(&self) -> &Arc<Subscription> {
        self.registration
            .subscription
            .as_ref()
            .expect("held until kept")
    }

    /// Hands the subscription to its connection: from here on the
    /// connection ends it.
    pub fn keep(self) -> Kept {
        let Self {
            mut registration,
            rows,
            removed,
            memory,
        } = self;
        Kept {
            subscription: registration.subscription.take().expect("kept once"),
            rows,
            removed,
            memory,
        }
    }
}

/// The memory a snapshot's rows hold, reserved in the pool queries
/// share, until it is dropped.
#[derive(Debug)]
pub struct SnapshotMemory(#[allow(dead_code)] MemoryReservation);

/// A subscription registered before its snapshot is read.
#[derive(Debug)]
struct Registration {
    live: Arc<LiveQueryManager>,
    subscription: Option<Arc<Subscription>>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(subscription) = self.subscription.take() {
            self.live.withdraw(&subscription);
        }
    }
}

/// How a snapshot is to be read once the writers are let go.
enum Reading {
    Nothing,
    /// A full or `last_rows` snapshot, planned at the cut.
    Rows {
        frame: DataFrame,
        newest_first: bool,
    },
    /// A resume: the versions written after `from`, read at the cut.
    Changes {
        point: ReadPoint,
        from: i64,
    },
}

impl QuerySession {
    /// Subscribes `connection` to `sql`. With the table's writers shut
    /// out for a moment, the subscription is compiled again (an ALTER or
    /// DROP that ran while this waited is seen), the cut is taken and the
    /// snapshot planned against it, and the subscription is registered
    /// with the last `_seq` issued: every change committed after the cut
    /// is sent, none before. The snapshot is then read at the cut while
    /// writers go on.
    pub async fn subscribe(
        &self,
        connection: ConnectionId,
        subscription_id: &str,
        sql: &str,
        options: &str,
        snapshot: Snapshot,
    ) -> Result<Subscribed> {
        let table_id = quiver_common::TableId(self.compile_subscription(sql)?.plan.table_id);
        let (compiled, reading, registration) = {
            let lock = self.engine().writer_lock(table_id);
            let _writers = lock.lock().await;
            let compiled = self.compile_subscription(sql)?;
            if compiled.plan.table_id != table_id.0 {
                return Err(QueryError::invalid(
                    "the table was replaced while subscribing; subscribe again",
                ));
            }
            let reading = self.plan_snapshot(&compiled, snapshot).await?;
            let start_seq = self.engine().catalog().store().seq().last();
            let live = self.engine().live();
            let subscription = live
                .subscribe(
                    connection,
                    subscription_id,
                    sql,
                    options,
                    compiled.plan.clone(),
                    start_seq,
                )
                .map_err(|e| QueryError::invalid(e.to_string()))?;
            let registration = Registration {
                live: live.clone(),
                subscription: Some(subscription),
            };
            (compiled, reading, registration)
        };
        let mut cap = AnswerCap::new(self.engine());
        let (rows, removed) = self.read_snapshot(&compiled, reading, &mut cap).await?;
        Ok(Subscribed {
            registration,
            rows,
            removed,
            memory: SnapshotMemory(cap.reservation),
        })
    }

    /// Takes the cut a snapshot reads, and plans a full or `last_rows`
    /// snapshot against it (the table is resolved now, so the snapshot
    /// reads this table whatever is later done to its name); a resume
    /// needs no plan, and live changes alone need no cut.
    async fn plan_snapshot(&self, compiled: &Compiled, snapshot: Snapshot) -> Result<Reading> {
        let point = || ReadPoint::now(self.engine().cold(), &compiled.plan.scope);
        let template = match snapshot {
            Snapshot::None => return Ok(Reading::Nothing),
            Snapshot::Since(from) => {
                return Ok(Reading::Changes {
                    point: point(),
                    from,
                });
            }
            Snapshot::Full => "SELECT 1 FROM t ORDER BY _seq".to_string(),
            // A number, not text from the client.
            Snapshot::Last(n) => format!("SELECT 1 FROM t ORDER BY _seq DESC LIMIT {n}"),
        };
        let def = compiled.table.def();
        let projection = compiled
            .columns
            .iter()
            .map(|c| SelectItem::UnnamedExpr(SqlExpr::Identifier(assemble::quoted(c))))
            .collect();
        let from = assemble::table(ObjectName(vec![
            ObjectNamePart::Identifier(assemble::quoted(def.namespace.as_str())),
            ObjectNamePart::Identifier(assemble::quoted(def.name.as_str())),
        ]))?;
        let statement = assemble::select(&template, projection, from, compiled.selection.clone())?;
        Ok(Reading::Rows {
            frame: self.plan_at(statement, point()).await?,
            newest_first: matches!(snapshot, Snapshot::Last(_)),
        })
    }

    /// The rows a subscription starts with, and on a resume the rows that
    /// went away.
    async fn read_snapshot(
        &self,
        compiled: &Compiled,
        reading: Reading,
        cap: &mut AnswerCap,
    ) -> Result<(Vec<RecordBatch>, Option<RecordBatch>)> {
        match reading {
            Reading::Nothing => Ok((Vec::new(), None)),
            Reading::Changes { point, from } => {
                self.changed_since(compiled, point, from, cap).await
            }
            Reading::Rows {
                frame,
                newest_first,
            } => {
                let mut stream = frame.execute_stream().await?;
                let mut rows = Vec::new();
                while let Some(batch) = stream.next().await {
                    let batch = batch?;
                    cap.take(&batch, true)?;
                    rows.push(batch);
                }
                if newest_first {
                    // Newest first from the query; oldest first to the
                    // client.
                    rows = reverse(&compiled.plan.schema, rows)?;
                }
                Ok((rows, None))
            }
        }
    }

    /// A resume after `from`: the newest version of every row of the
    /// subscription's scope written after it, hot or cold, delete markers
    /// included, as of `point`. Those that match the filter are sent as
    /// rows; the others (deleted, or changed to no longer match) as one
    /// delete of their primary keys, since the client may hold an older
    /// version. Every such row counts toward the answer's row cap.
    async fn changed_since(
        &self,
        compiled: &Compiled,
        point: ReadPoint,
        from: i64,
        cap: &mut AnswerCap,
    ) -> Result<(Vec<RecordBatch>, Option<RecordBatch>)> {
        let tier = self.engine().cold();
        let scope = &compiled.plan.scope;
        let ReadPoint { manifest, hot, .. } = point;
        if from < manifest.purged_seq {
            return Err(QueryError::invalid(format!(
                "cannot resume from _seq {from}: a compaction has since removed deletes made \
                 after it; subscribe again with a full snapshot ({{}})"
            )));
        }
        // Only versions after `from` are held: a key's newest version is
        // after `from` whenever any of its versions is.
        let max_rows = cap.max_rows;
        let mut newest: BTreeMap<Vec<u8>, StoredRow> = BTreeMap::new();
        let mut keep = |key: Vec<u8>, row: StoredRow| -> Result<()> {
            if row.seq <= from || newest.get(&key).is_some_and(|held| held.seq >= row.seq) {
                return Ok(());
            }
            newest.insert(key, row);
            if newest.len() > max_rows {
                return Err(QueryError::ResultTooLarge { limit: max_rows });
            }
            Ok(())
        };
        for segment in manifest.segments.iter().filter(|s| s.max_seq > from) {
            let mut rows = tier.segment_rows(segment).await?;
            let mut read = 0usize;
            while let Some((key, row)) = rows.next_row()? {
                keep(key, row)?;
                read += 1;
                if read.is_multiple_of(RESUME_CHUNK) {
                    // A point where a time limit or a client gone can
                    // stop the read.
                    tokio::task::yield_now().await;
                }
            }
        }
        let mut after: Option<Box<[u8]>> = None;
        loop {
            let chunk = hot.scan_rows(scope, after.as_deref(), RESUME_CHUNK)?;
            for (key, row) in chunk.rows {
                keep(key.into_vec(), row)?;
            }
            match chunk.resume_after {
                Some(key) => after = Some(key),
                None => break,
            }
            tokio::task::yield_now().await;
        }
        drop((manifest, hot));
        let mut changed: Vec<StoredRow> = newest.into_values().collect();
        changed.sort_by_key(|row| row.seq);
        let (live, deleted): (Vec<&StoredRow>, Vec<&StoredRow>) =
            changed.iter().partition(|row| !row.deleted);

        let table = &compiled.table;
        let def = table.def();
        let schema = table.arrow_schema();
        let columns = full_row(table);
        let all = rows_to_batch(&schema, &columns, &live)?;
        let matches = compiled.plan.matches(&all)?;
        let picked = |want: bool| -> Vec<u32> {
            (0..matches.len() as u32)
                .filter(|&i| matches[i as usize] == want)
                .collect()
        };
        let rows = take_record_batch(
            &all.project(&compiled.plan.projection)?,
            &UInt32Array::from(picked(true)),
        )?;
        cap.take(&rows, false)?;

        // The rows that left: only their primary key (or `_seq`) and `_seq`.
        let key_columns: Vec<usize> = def
            .primary_key
            .and_then(|id| def.columns.iter().position(|c| c.id == id))
            .into_iter()
            .chain([def.columns.len()])
            .collect();
        let key_schema = Arc::new(schema.project(&key_columns)?);
        let key_outputs: Vec<OutputColumn> =
            key_columns.iter().map(|&i| columns[i].clone()).collect();
        let left: Vec<&StoredRow> = picked(false)
            .into_iter()
            .map(|i| live[i as usize])
            .chain(deleted)
            .collect();
        let removed = (!left.is_empty())
            .then(|| rows_to_batch(&key_schema, &key_outputs, &left))
            .transpose()?;
        if let Some(removed) = &removed {
            cap.take(removed, false)?;
        }
        Ok((vec![rows], removed))
    }
}

/// Rows a resume reads between points where it can be stopped.
const RESUME_CHUNK: usize = 8192;

fn reverse(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let all = concat_batches(schema, &batches)?;
    let n = all.num_rows() as u32;
    let indices = UInt32Array::from_iter_values((0..n).rev());
    Ok(vec![take_record_batch(&all, &indices)?])
}

/// The bounds of an answer held before it is sent, as `[limits]` sets
/// them for queries: its rows, the bytes of its values, and its memory,
/// taken from the pool queries share.
struct AnswerCap {
    rows: usize,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
    reservation: MemoryReservation,
    /// Buffers shared by several batches (slices of one result) count
    /// once.
    memory: RecordBatchMemoryCounter,
}

impl AnswerCap {
    fn new(engine: &QueryEngine) -> Self {
        let limits = engine.limits();
        Self {
            rows: 0,
            bytes: 0,
            max_rows: limits.max_result_rows,
            max_bytes: limits.max_result_bytes,
            reservation: MemoryConsumer::new("subscription snapshot").register(engine.memory()),
            memory: RecordBatchMemoryCounter::new(),
        }
    }

    /// Takes `batch` into the answer; its rows count toward the row cap
    /// when `count_rows` (a resume counts its rows as it reads them).
    fn take(&mut self, batch: &RecordBatch, count_rows: bool) -> Result<()> {
        if count_rows {
            self.rows += batch.num_rows();
            if self.rows > self.max_rows {
                return Err(QueryError::ResultTooLarge {
                    limit: self.max_rows,
                });
            }
        }
        self.bytes += value_bytes(batch);
        if self.bytes > self.max_bytes {
            return Err(QueryError::ResultTooManyBytes {
                limit: self.max_bytes,
            });
        }
        self.reservation.try_grow(self.memory.count_batch(batch))?;
        Ok(())
    }
}
