//! Live queries from the engine's side: compiling a subscription's
//! `SELECT ... FROM ns.t [WHERE ...]`, registering it at a cut taken while
//! the table's writers are shut out for a moment, reading its snapshot at
//! that cut, and handing each statement's changes to the node's
//! [`quiver_live::LiveQueryManager`].

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Operator;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, GroupByExpr, ObjectName, ObjectNamePart, SelectItem, SetExpr,
    Statement, TableFactor,
};
use futures::StreamExt;
use quiver_catalog::CachedTableData;
use quiver_live::{ChangeSet, ConnectionId, EqualityKey, LivePlan, LiveQueryManager, Subscription};
use quiver_store::{Scope, StoredRow};

use crate::assemble;
use crate::convert::{OutputColumn, rows_to_batch};
use crate::dialect::{QuiverStatement, parse};
use crate::error::{QueryError, Result};
use crate::executor::{Intent, QueryEngine, QuerySession};
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

/// A registered subscription and the rows it starts with.
#[derive(Debug)]
pub struct Subscribed {
    pub subscription: Arc<Subscription>,
    /// In `_seq` order, in the subscription's projection.
    pub rows: Vec<RecordBatch>,
    /// On a resume (`from`): the primary keys (and `_seq`) of rows deleted
    /// or moved out of the filter since, to send as a delete once the rows
    /// are out.
    pub removed: Option<RecordBatch>,
}

struct Compiled {
    table: Arc<CachedTableData>,
    plan: LivePlan,
    /// The snapshot query's column names and filter.
    columns: Vec<String>,
    selection: Option<SqlExpr>,
}

fn unsupported(what: &str) -> QueryError {
    QueryError::Unsupported(format!(
        "{what} in a live query; subscribe to SELECT <columns> FROM ns.t [WHERE ...]"
    ))
}

impl QuerySession {
    fn compile_subscription(&self, sql: &str) -> Result<Compiled> {
        let mut statements = parse(sql)?;
        let statement = match (statements.pop(), statements.is_empty()) {
            (Some(QuiverStatement::Standard(statement)), true) => *statement,
            _ => return Err(unsupported("anything but one SELECT")),
        };
        let Statement::Query(query) = statement else {
            return Err(unsupported("anything but SELECT"));
        };
        if query.with.is_some()
            || query.order_by.is_some()
            || query.limit_clause.is_some()
            || query.fetch.is_some()
        {
            return Err(unsupported("WITH, ORDER BY, LIMIT or FETCH"));
        }
        let SetExpr::Select(select) = *query.body else {
            return Err(unsupported("UNION, VALUES or a nested query"));
        };
        let grouped = !matches!(&select.group_by, GroupByExpr::Expressions(e, _) if e.is_empty());
        if select.distinct.is_some()
            || grouped
            || select.having.is_some()
            || select.from.len() != 1
            || !select.from[0].joins.is_empty()
        {
            return Err(unsupported("DISTINCT, GROUP BY, HAVING or a join"));
        }
        let TableFactor::Table { name, .. } = &select.from[0].relation else {
            return Err(unsupported("a table function or subquery"));
        };
        let table = self.resolve_table(name, Intent::Read)?;
        let def = table.def();
        let schema = table.arrow_schema();

        let mut projection: Vec<usize> = Vec::new();
        for item in &select.projection {
            match item {
                SelectItem::Wildcard(_) => projection.extend(0..def.columns.len()),
                SelectItem::UnnamedExpr(SqlExpr::Identifier(ident)) => {
                    projection.push(column_index(&schema, &ident.value)?)
                }
                SelectItem::UnnamedExpr(SqlExpr::CompoundIdentifier(parts)) => {
                    let last = parts.last().map(|p| p.value.as_str()).unwrap_or_default();
                    projection.push(column_index(&schema, last)?)
                }
                _ => return Err(unsupported("expressions or aliases in the column list")),
            }
        }
        // Each column once; clients key rows by the primary key and resume
        // by `_seq`, which comes last.
        let seq = def.columns.len();
        let mut columns: Vec<usize> = Vec::with_capacity(projection.len() + 2);
        for index in projection {
            if index != seq && !columns.contains(&index) {
                columns.push(index);
            }
        }
        let pk = def
            .primary_key
            .and_then(|id| def.columns.iter().position(|c| c.id == id));
        if let Some(pk) = pk
            && !columns.contains(&pk)
        {
            columns.push(pk);
        }
        columns.push(seq);
        let projection = columns;

        let ctx = self.context();
        let selection = select.selection.clone();
        let filter = match &selection {
            None => None,
            Some(expr) => {
                let df_schema = Arc::new(DFSchema::try_from(schema.as_ref().clone())?);
                let expr = ctx.state().create_logical_expr_from_sql_expr(
                    ExprWithAlias {
                        expr: expr.clone(),
                        alias: None,
                    },
                    &df_schema,
                )?;
                // Coerced and folded, as the planner would: a string
                // literal compared to a TEXT column becomes a string view
                // literal, which the equality index can key on.
                let simplifier = ExprSimplifier::new(
                    SimplifyContext::builder()
                        .with_schema(df_schema.clone())
                        .build(),
                );
                let expr = simplifier.simplify(simplifier.coerce(expr, &df_schema)?)?;
                Some(ctx.create_physical_expr(expr, &df_schema)?)
            }
        };
        let columns: Vec<String> = projection
            .iter()
            .map(|&i| schema.field(i).name().clone())
            .collect();
        let key = filter.as_ref().and_then(|f| equality_key(f, &schema));
        Ok(Compiled {
            table: table.clone(),
            plan: LivePlan {
                namespace: def.namespace.to_string(),
                table: def.name.to_string(),
                table_id: def.id.0,
                scope: self.scope(def),
                filter,
                key,
                schema: Arc::new(schema.project(&projection)?),
                projection,
            },
            columns,
            selection,
        })
    }

    /// Subscribes `connection` to `sql`. The subscription is registered
    /// and the cut taken with the table's writers shut out for that moment
    /// only, so that every change committed after the cut is sent and
    /// none before; the snapshot is then read at the cut while writers go
    /// on.
    pub async fn subscribe(
        &self,
        connection: ConnectionId,
        subscription_id: &str,
        sql: &str,
        options: &str,
        snapshot: Snapshot,
    ) -> Result<Subscribed> {
        let table_id = quiver_common::TableId(self.compile_subscription(sql)?.plan.table_id);
        let live = self.engine().live();
        let (compiled, point, registered) = {
            let lock = self.engine().writer_lock(table_id);
            let _writers = lock.lock().await;
            // Compiled again with the writers shut out: an ALTER or DROP
            // that ran while this waited is seen, never registered against.
            let compiled = self.compile_subscription(sql)?;
            if compiled.plan.table_id != table_id.0 {
                return Err(QueryError::invalid(
                    "the table was replaced while subscribing; subscribe again",
                ));
            }
            let point = ReadPoint::now(self.engine().cold(), &compiled.plan.scope);
            let start_seq = self.engine().catalog().store().seq().last();
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
            let registered = Registered {
                live,
                subscription: Some(subscription),
            };
            (compiled, point, registered)
        };
        let (rows, removed) = self.snapshot(&compiled, point, snapshot).await?;
        Ok(Subscribed {
            subscription: registered.keep(),
            rows,
            removed,
        })
    }

    /// The rows a subscription starts with, read at `point`, and on a
    /// resume the rows that went away. Full and `last_rows` snapshots run
    /// through SQL; a resume reads stored versions (`changed_since`).
    /// Either is bounded like a query's answer.
    async fn snapshot(
        &self,
        compiled: &Compiled,
        point: ReadPoint,
        snapshot: Snapshot,
    ) -> Result<(Vec<RecordBatch>, Option<RecordBatch>)> {
        let template = match snapshot {
            Snapshot::None => return Ok((Vec::new(), None)),
            Snapshot::Since(from) => return self.changed_since(compiled, point, from).await,
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
        let mut stream = self.query_at(statement, point).await?;
        let mut cap = AnswerCap::new(&self.engine().limits());
        let mut rows = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            cap.take(batch.num_rows(), batch.get_array_memory_size())?;
            rows.push(batch);
        }
        if matches!(snapshot, Snapshot::Last(_)) {
            // Newest first from the query; oldest first to the client.
            rows = reverse(&compiled.plan.schema, rows)?;
        }
        Ok((rows, None))
    }
}

/// A subscription registered before its snapshot was read: withdrawn
/// again unless the snapshot is read and sent on its way ([`Self::keep`]),
/// so that a snapshot that fails, or a request abandoned midway, leaves
/// nothing registered.
struct Registered<'a> {
    live: &'a LiveQueryManager,
    subscription: Option<Arc<Subscription>>,
}

impl Registered<'_> {
    fn keep(mut self) -> Arc<Subscription> {
        self.subscription.take().expect("kept once")
    }
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        if let Some(subscription) = self.subscription.take() {
            self.live.withdraw(&subscription);
        }
    }
}

/// The bounds of an answer held in memory before it is sent: its rows
/// and its bytes, as `[limits]` sets them for queries.
struct AnswerCap {
    rows: usize,
    bytes: usize,
    max_rows: usize,
    max_bytes: usize,
}

impl AnswerCap {
    fn new(limits: &quiver_config::LimitsConfig) -> Self {
        Self {
            rows: 0,
            bytes: 0,
            max_rows: limits.max_result_rows,
            max_bytes: limits.max_result_bytes,
        }
    }

    fn take(&mut self, rows: usize, bytes: usize) -> Result<()> {
        self.rows += rows;
        self.bytes += bytes;
        if self.rows > self.max_rows {
            return Err(QueryError::ResultTooLarge {
                limit: self.max_rows,
            });
        }
        if self.bytes > self.max_bytes {
            return Err(QueryError::ResultTooManyBytes {
                limit: self.max_bytes,
            });
        }
        Ok(())
    }
}

/// A column value `filter` requires (`col = literal`, alone or in an
/// `AND`), when the literal has the column's type: the key the live query
/// manager indexes the subscription by.
fn equality_key(filter: &Arc<dyn PhysicalExpr>, schema: &Schema) -> Option<EqualityKey> {
    let binary = filter.downcast_ref::<BinaryExpr>()?;
    match binary.op() {
        Operator::And => {
            equality_key(binary.left(), schema).or_else(|| equality_key(binary.right(), schema))
        }
        Operator::Eq => {
            let (left, right) = (binary.left(), binary.right());
            let (column, literal) = match (
                left.downcast_ref::<Column>(),
                right.downcast_ref::<Literal>(),
            ) {
                (Some(column), Some(literal)) => (column, literal),
                _ => (
                    right.downcast_ref::<Column>()?,
                    left.downcast_ref::<Literal>()?,
                ),
            };
            let value = literal.value();
            let field = schema.fields().get(column.index())?;
            (!value.is_null() && &value.data_type() == field.data_type()).then(|| EqualityKey {
                column: column.index(),
                value: value.clone(),
            })
        }
        _ => None,
    }
}

impl QuerySession {
    /// A resume after `from`: the newest version of every row of the
    /// subscription's scope written after it, hot or cold, delete markers
    /// included. Those that match the filter are sent as rows; the others
    /// (deleted, or changed to no longer match) as one delete of their
    /// primary keys, since the client may hold an older version.
    async fn changed_since(
        &self,
        compiled: &Compiled,
        point: ReadPoint,
        from: i64,
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
        // after `from` whenever any of its versions is. Counted against
        // the answer's row cap as they are held.
        let max_rows = self.engine().limits().max_result_rows;
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
            while let Some((key, row)) = rows.next_row()? {
                keep(key, row)?;
            }
        }
        let mut after: Option<Box<[u8]>> = None;
        loop {
            let chunk = hot.scan_rows(scope, after.as_deref(), 8192)?;
            for (key, row) in chunk.rows {
                keep(key.into_vec(), row)?;
            }
            match chunk.resume_after {
                Some(key) => after = Some(key),
                None => break,
            }
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
        let take = |batch: &RecordBatch, rows: Vec<u32>| -> Result<RecordBatch> {
            Ok(datafusion::arrow::compute::take_record_batch(
                batch,
                &datafusion::arrow::array::UInt32Array::from(rows),
            )?)
        };
        let rows = take(&all.project(&compiled.plan.projection)?, picked(true))?;

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
        Ok((vec![rows], removed))
    }
}

fn column_index(schema: &SchemaRef, name: &str) -> Result<usize> {
    schema
        .fields()
        .iter()
        .position(|f| f.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| QueryError::invalid(format!("column not found: {name}")))
}

fn reverse(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    let all = datafusion::arrow::compute::concat_batches(schema, &batches)?;
    let n = all.num_rows() as u32;
    let indices = datafusion::arrow::array::UInt32Array::from_iter_values((0..n).rev());
    Ok(vec![datafusion::arrow::compute::take_record_batch(
        &all, &indices,
    )?])
}

/// One row version a statement replaced (`None` for an insert) and the
/// version it wrote (a delete marker for a delete).
pub(crate) type RowChange = (Option<StoredRow>, StoredRow);

/// Hands a statement's changes to the live query manager. Call after the
/// commit, with the table's writer lock still held. The statement has
/// committed whatever happens here: if the changes cannot be encoded, the
/// table's subscriptions end (their clients are told) rather than miss
/// them.
pub(crate) fn publish(
    engine: &QueryEngine,
    table: &CachedTableData,
    scope: &Scope,
    changes: &[RowChange],
) {
    if changes.is_empty() {
        return;
    }
    if let Err(e) = change_set(table, scope, changes).map(|set| engine.live().publish(set)) {
        tracing::error!(error = %e, table = %table.def().qualified_name(), "encoding changes for live queries failed");
        engine.live().end_table(
            table.def().id.0,
            "a change could not be sent; subscribe again",
        );
    }
}

/// How a table's rows are laid out for live queries: every column, then
/// `_seq` (the table's Arrow schema).
fn full_row(table: &CachedTableData) -> Vec<OutputColumn> {
    table
        .def()
        .columns
        .iter()
        .map(OutputColumn::of)
        .chain([OutputColumn::Seq])
        .collect()
}

fn change_set(table: &CachedTableData, scope: &Scope, changes: &[RowChange]) -> Result<ChangeSet> {
    let def = table.def();
    let schema = table.arrow_schema();
    let columns = full_row(table);
    // A side without a real row repeats the other side's row; the flags
    // say which rows are real.
    let old: Vec<&StoredRow> = changes
        .iter()
        .map(|(old, new)| old.as_ref().unwrap_or(new))
        .collect();
    let new: Vec<&StoredRow> = changes
        .iter()
        .map(|(old, new)| match old {
            Some(old) if new.deleted => old,
            _ => new,
        })
        .collect();
    Ok(ChangeSet {
        table_id: def.id.0,
        scope: scope.clone(),
        seqs: changes.iter().map(|(_, new)| new.seq).collect(),
        had_old: changes.iter().map(|(old, _)| old.is_some()).collect(),
        has_new: changes.iter().map(|(_, new)| !new.deleted).collect(),
        old: rows_to_batch(&schema, &columns, &old)?,
        new: rows_to_batch(&schema, &columns, &new)?,
    })
}
