//! INSERT (with ON CONFLICT), UPDATE and DELETE. Rows to change are found
//! by running the statement's `WHERE` through DataFusion, so any predicate
//! DataFusion can evaluate works; the changes of one statement are then
//! committed in one atomic store batch while the table's writer lock is
//! held.

use std::collections::{BTreeSet, HashSet};
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::utils::memory::RecordBatchMemoryCounter;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    Assignment, AssignmentTarget, ConflictTarget, Delete, Expr, FromTable, Ident, Insert,
    ObjectName, ObjectNamePart, OnConflictAction, OnInsert, SelectItem, Statement, TableFactor,
    TableObject, TableWithJoins, Update, visit_expressions_mut,
};
use futures::TryStreamExt;
use quiver_catalog::{CachedTableData, ColumnDef, DefaultValue, TableDef, TableType};
use quiver_common::ColumnType;
use quiver_store::{Scope, StoredRow, Value};

use crate::assemble::{self, SELECT, quoted, value_column};
use crate::convert::{OutputColumn, array_to_values, display_value, now_value, rows_to_batch};
use crate::error::{QueryError, Result};
use crate::executor::{Intent, QueryEngine, QuerySession, StatementOutput};
use crate::fast::literal_insert::LiteralInsert;
use crate::writer::TableWriter;

/// The rows a statement is to write, read from their query as they come:
/// counted against `[limits] max_write_rows`, and their memory taken from
/// the pool queries share (`[limits] query_memory_bytes`), so that a
/// statement past either is refused before it holds any more and before
/// it writes anything. The statement keeps the reservation until it is
/// done. (What an INSERT's store batch and an UPDATE's current rows add
/// on top is not reserved.)
struct Staged {
    batches: Vec<RecordBatch>,
    reservation: Option<MemoryReservation>,
}

impl Staged {
    /// Rows that need no accounting: literal rows of the statement's own
    /// text, already bounded by the request's size.
    fn literal(batch: RecordBatch) -> Self {
        Self {
            batches: vec![batch],
            reservation: None,
        }
    }

    async fn read(session: &QuerySession, mut stream: SendableRecordBatchStream) -> Result<Self> {
        let limit = if session.bounded_writes {
            session.engine().limits().max_write_rows
        } else {
            usize::MAX
        };
        let reservation = MemoryConsumer::new("rows to write").register(session.engine().memory());
        // Buffers shared by several batches (slices of one result) count
        // once.
        let mut memory = RecordBatchMemoryCounter::new();
        let mut rows = 0;
        let mut batches = Vec::new();
        while let Some(batch) = stream.try_next().await? {
            rows += batch.num_rows();
            if rows > limit {
                return Err(QueryError::TooManyWrites { limit });
            }
            reservation.try_grow(memory.count_batch(&batch))?;
            batches.push(batch);
        }
        Ok(Self {
            batches,
            reservation: Some(reservation),
        })
    }
}

fn done(row_count: u64, verb: &str) -> StatementOutput {
    StatementOutput::Done {
        row_count,
        message: format!("{verb} {row_count} row(s)"),
    }
}

pub(crate) fn last_part(name: &ObjectName) -> String {
    name.0
        .last()
        .and_then(|p| p.as_ident())
        .map(|i| i.value.to_ascii_lowercase())
        .unwrap_or_default()
}

fn column<'a>(def: &'a TableDef, name: &str) -> Result<&'a ColumnDef> {
    def.column(name)
        .ok_or_else(|| QueryError::invalid(crate::suggest::column_not_found(def, name)))
}

/// The value a column gets when an INSERT omits it.
struct DefaultContext<'a> {
    session: &'a QuerySession,
    now_micros: i64,
}

impl DefaultContext<'_> {
    fn value(&self, column: &ColumnDef) -> Value {
        match &column.default {
            None => Value::Null,
            Some(DefaultValue::Literal(v)) => v.clone(),
            Some(DefaultValue::Now) => now_value(column.column_type, self.now_micros),
            Some(DefaultValue::SnowflakeId) => {
                Value::Int64(self.session.engine().catalog().store().seq().next().0)
            }
            Some(DefaultValue::UuidV7) => {
                Value::Text(uuid::Uuid::now_v7().hyphenated().to_string())
            }
            Some(DefaultValue::CurrentUser) => Value::Text(self.session.user().to_string()),
        }
    }
}

fn check_not_null(def: &TableDef, column: &ColumnDef, value: &Value) -> Result<()> {
    if value.is_null() && !column.nullable {
        return Err(QueryError::invalid(format!(
            "null value in column {} of {} violates NOT NULL",
            column.name,
            def.qualified_name()
        )));
    }
    Ok(())
}

/// The row's key: by primary key, or by its first `_seq` for tables
/// without one.
/// `pk_index` is the primary key's position in `def.columns`.
fn key_of(scope: &Scope, pk_index: Option<usize>, cells: &[Value], seq: i64) -> Result<Vec<u8>> {
    let key = match pk_index {
        Some(index) => scope.key(&cells[index]),
        None => scope.key(&Value::Int64(seq)),
    };
    key.ok_or_else(null_key)
}

fn null_key() -> QueryError {
    QueryError::invalid("primary key cannot be NULL")
}

fn stored(def: &TableDef, seq: i64, cells: Vec<Value>) -> StoredRow {
    StoredRow {
        seq,
        deleted: false,
        cells: def
            .columns
            .iter()
            .zip(cells)
            .map(|(c, v)| (c.id, v))
            .collect(),
    }
}

enum Conflict {
    Fail,
    DoNothing,
    DoUpdate {
        assignments: Vec<Assignment>,
        selection: Option<Box<Expr>>,
    },
}

pub async fn insert(session: &QuerySession, insert: Insert) -> Result<StatementOutput> {
    let TableObject::TableName(name) = &insert.table else {
        return Err(QueryError::Unsupported(
            "INSERT into a table function".into(),
        ));
    };
    if insert.returning.is_some() {
        return Err(QueryError::Unsupported("INSERT ... RETURNING".into()));
    }
    let table = session.resolve_table(name, Intent::Write)?;
    let def = table.def();
    let targets = target_columns(def, insert.columns.iter().map(last_part))?;
    let conflict = match insert.on {
        None => Conflict::Fail,
        Some(OnInsert::OnConflict(on)) => {
            let pk = def.primary_key_column().ok_or_else(|| {
                QueryError::invalid(format!(
                    "{} has no primary key for ON CONFLICT",
                    def.qualified_name()
                ))
            })?;
            match &on.conflict_target {
                Some(ConflictTarget::Columns(cols))
                    if cols.len() == 1 && cols[0].value.eq_ignore_ascii_case(&pk.name) => {}
                None => {}
                Some(other) => {
                    return Err(QueryError::invalid(format!(
                        "ON CONFLICT target must be the primary key ({}), got {other}",
                        pk.name
                    )));
                }
            }
            match on.action {
                OnConflictAction::DoNothing => Conflict::DoNothing,
                OnConflictAction::DoUpdate(update) => Conflict::DoUpdate {
                    assignments: update.assignments,
                    selection: update.selection.map(Box::new),
                },
            }
        }
        Some(other) => return Err(QueryError::Unsupported(format!("INSERT {other}"))),
    };
    let Some(source) = insert.source else {
        return Err(QueryError::invalid("INSERT needs VALUES or a SELECT"));
    };

    // Evaluate the source rows. Literal rows need no planning.
    let floats_as_decimal = session.engine().floats_as_decimal();
    let staged = match crate::fast::literal_rows(&source, floats_as_decimal) {
        Some(batch) => {
            crate::fast::counted(session.engine());
            Staged::literal(batch)
        }
        None => Staged::read(session, session.query(Statement::Query(source)).await?).await?,
    };
    write_rows(session, &table, &targets, conflict, staged).await
}

/// An `INSERT` of literal rows recognized from the request's text, with
/// the checks and effects of a parsed one without `ON CONFLICT`.
pub async fn insert_literals(
    session: &QuerySession,
    insert: LiteralInsert,
) -> Result<StatementOutput> {
    let table = session.resolve_table(&insert.table, Intent::Write)?;
    let targets = target_columns(table.def(), insert.columns.into_iter())?;
    crate::fast::counted(session.engine());
    write_rows(
        session,
        &table,
        &targets,
        Conflict::Fail,
        Staged::literal(insert.rows),
    )
    .await
}

/// The columns an `INSERT` names, each once; all of them when it names none.
fn target_columns(
    def: &TableDef,
    names: impl ExactSizeIterator<Item = String>,
) -> Result<Vec<&ColumnDef>> {
    if names.len() == 0 {
        return Ok(def.columns.iter().collect());
    }
    let mut seen = HashSet::new();
    names
        .map(|name| {
            if !seen.insert(name.clone()) {
                return Err(QueryError::invalid(format!(
                    "column {name} is listed twice"
                )));
            }
            column(def, &name)
        })
        .collect()
}

/// Converts the source rows to the target columns, checks them and their
/// keys, and commits them in one batch under the table's writer lock. The
/// rows are converted and staged in the store batch one source batch at
/// a time, so that only one batch is ever held as values.
async fn write_rows(
    session: &QuerySession,
    table: &Arc<CachedTableData>,
    targets: &[&ColumnDef],
    conflict: Conflict,
    staged: Staged,
) -> Result<StatementOutput> {
    let def = table.def();
    let defaults = DefaultContext {
        session,
        now_micros: chrono::Utc::now().timestamp_micros(),
    };
    let positions: Vec<usize> = targets
        .iter()
        .map(|t| {
            def.columns
                .iter()
                .position(|c| c.id == t.id)
                .expect("target column exists")
        })
        .collect();
    if let Some(batch) = staged
        .batches
        .iter()
        .find(|b| b.num_columns() != targets.len())
    {
        return Err(QueryError::invalid(format!(
            "INSERT into {} has {} target column(s) but {} value(s) per row",
            def.qualified_name(),
            targets.len(),
            batch.num_columns()
        )));
    }
    let Staged {
        batches,
        reservation: _held,
    } = staged;
    let pk_index = def
        .columns
        .iter()
        .position(|c| Some(c.id) == def.primary_key);
    let duplicate_key = |row: &[Value]| {
        let pk = def
            .primary_key_column()
            .map(|c| c.name.as_str())
            .unwrap_or("_seq");
        let value = pk_index.map(|i| display_value(&row[i])).unwrap_or_default();
        QueryError::DuplicateKey {
            table: def.qualified_name(),
            key: format!("{pk} = {value}"),
        }
    };

    let scope = session.scope(def);
    let mut writer = TableWriter::lock(session.engine(), table.clone()).await;
    let store = writer.store();
    let mut upserts: Vec<(Vec<u8>, StoredRow, Vec<Value>)> = Vec::new();
    let mut written: HashSet<Vec<u8>> = HashSet::new();
    for batch in batches {
        let rows = batch_rows(def, targets, &positions, &defaults, &batch)?;
        drop(batch);
        // Each row's key, once: by primary key, or (without one) by sequence.
        let keyed: Vec<(i64, Option<Vec<u8>>)> = rows
            .iter()
            .map(|row| {
                let seq = store.seq().next().0;
                (seq, key_of(&scope, pk_index, row, seq).ok())
            })
            .collect();
        // The current versions of the keys this batch writes, hot or cold.
        let keys: BTreeSet<Vec<u8>> = match pk_index {
            Some(_) => keyed.iter().filter_map(|(_, key)| key.clone()).collect(),
            None => BTreeSet::new(),
        };
        let mut existing_rows = session.engine().cold().current_rows(&scope, &keys).await?;
        for (row, (seq, key)) in rows.into_iter().zip(keyed) {
            let key = key.ok_or_else(null_key)?;
            if written.contains(&key) {
                match conflict {
                    Conflict::DoNothing => continue,
                    Conflict::Fail => return Err(duplicate_key(&row)),
                    Conflict::DoUpdate { .. } => {
                        return Err(QueryError::invalid(
                            "ON CONFLICT DO UPDATE cannot change the same row twice in one \
                             statement",
                        ));
                    }
                }
            }
            // Without a primary key no key was looked up: nothing exists.
            match (existing_rows.remove(&key), &conflict) {
                (None, _) => writer.put(&scope, &key, stored(def, seq, row), None),
                (Some(_), Conflict::Fail) => return Err(duplicate_key(&row)),
                (Some(_), Conflict::DoNothing) => {}
                (Some(existing), Conflict::DoUpdate { .. }) => {
                    upserts.push((key.clone(), existing, row));
                }
            }
            written.insert(key);
        }
    }
    if let Conflict::DoUpdate {
        assignments,
        selection,
    } = conflict
        && !upserts.is_empty()
    {
        let updated = evaluate_upserts(def, &upserts, &assignments, selection.as_deref()).await?;
        for (index, cells) in updated {
            let (key, existing, _) = &upserts[index];
            let mut new_row = StoredRow {
                seq: store.seq().next().0,
                deleted: false,
                cells: existing.cells.clone(),
            };
            apply_cells(def, &mut new_row, cells)?;
            let before = writer.watched().then(|| existing.clone());
            writer.put(&scope, key, new_row, before);
        }
    }
    let count = writer.commit()?;
    Ok(done(count, "Inserted"))
}

/// One source batch as full rows of the table: target columns from the
/// batch, the others from their defaults, NOT NULL checked.
fn batch_rows(
    def: &TableDef,
    targets: &[&ColumnDef],
    positions: &[usize],
    defaults: &DefaultContext<'_>,
    batch: &RecordBatch,
) -> Result<Vec<Vec<Value>>> {
    let mut provided: Vec<Option<std::vec::IntoIter<Value>>> =
        def.columns.iter().map(|_| None).collect();
    for (i, target) in targets.iter().enumerate() {
        provided[positions[i]] = Some(array_to_values(batch.column(i), target)?.into_iter());
    }
    let mut rows = Vec::with_capacity(batch.num_rows());
    for _ in 0..batch.num_rows() {
        let mut row = Vec::with_capacity(def.columns.len());
        for (c, col) in def.columns.iter().enumerate() {
            let value = match &mut provided[c] {
                Some(values) => values.next().expect("a value per row"),
                None => defaults.value(col),
            };
            check_not_null(def, col, &value)?;
            row.push(value);
        }
        rows.push(row);
    }
    Ok(rows)
}

/// Replaces the given cells of a stored row (NULL removes the cell),
/// checking NOT NULL.
fn apply_cells(def: &TableDef, row: &mut StoredRow, cells: Vec<(u32, Value)>) -> Result<()> {
    for (id, value) in cells {
        let column = def
            .columns
            .iter()
            .find(|c| c.id == id)
            .expect("assigned column exists");
        check_not_null(def, column, &value)?;
        row.cells.retain(|(c, _)| *c != id);
        row.cells.push((id, value));
    }
    row.cells.sort_by_key(|(id, _)| *id);
    Ok(())
}

/// The columns and expressions of `SET` assignments; the primary key
/// cannot be assigned.
fn assignment_targets<'a>(
    def: &'a TableDef,
    assignments: &'a [Assignment],
) -> Result<Vec<(&'a ColumnDef, &'a Expr)>> {
    let mut seen = HashSet::new();
    assignments
        .iter()
        .map(|a| {
            let AssignmentTarget::ColumnName(name) = &a.target else {
                return Err(QueryError::Unsupported("tuple assignment in SET".into()));
            };
            let name = last_part(name);
            let column = column(def, &name)?;
            if def.primary_key == Some(column.id) {
                return Err(QueryError::invalid(format!(
                    "primary key column {name} of {} cannot be updated",
                    def.qualified_name()
                )));
            }
            if !seen.insert(column.id) {
                return Err(QueryError::invalid(format!(
                    "column {name} is assigned twice"
                )));
            }
            Ok((column, &a.value))
        })
        .collect()
}

const EXCLUDED_PREFIX: &str = "__excluded_";
const ROW_INDEX: &str = "__row";

/// Evaluates `ON CONFLICT DO UPDATE SET ... [WHERE ...]` for the
/// conflicting rows: the existing row's columns by their names, the
/// proposed row's as `EXCLUDED.<name>`. Returns the new cells per
/// conflicting row index, for rows that pass the `WHERE`.
async fn evaluate_upserts(
    def: &TableDef,
    upserts: &[(Vec<u8>, StoredRow, Vec<Value>)],
    assignments: &[Assignment],
    selection: Option<&Expr>,
) -> Result<Vec<(usize, Vec<(u32, Value)>)>> {
    let targets = assignment_targets(def, assignments)?;
    let mut fields = Vec::new();
    let mut columns = Vec::new();
    for prefix in ["", EXCLUDED_PREFIX] {
        for c in &def.columns {
            fields.push(Field::new(
                format!("{prefix}{}", c.name),
                quiver_catalog::arrow_type(c.column_type),
                true,
            ));
            columns.push(OutputColumn::of(c));
        }
    }
    fields.push(Field::new(ROW_INDEX, DataType::Int64, false));
    columns.push(OutputColumn::Seq);
    // One synthetic row per conflict: existing cells under their ids, the
    // proposed cells under ids shifted past every real one.
    let shift = def.columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
    for c in columns
        .iter_mut()
        .skip(def.columns.len())
        .take(def.columns.len())
    {
        if let OutputColumn::Column { id, .. } = c {
            *id += shift;
        }
    }
    let synthetic: Vec<StoredRow> = upserts
        .iter()
        .enumerate()
        .map(|(i, (_, existing, proposed))| {
            let mut cells = existing.cells.clone();
            cells.extend(
                def.columns
                    .iter()
                    .zip(proposed)
                    .map(|(c, v)| (c.id + shift, v.clone())),
            );
            StoredRow {
                seq: i as i64,
                deleted: false,
                cells,
            }
        })
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let refs: Vec<&StoredRow> = synthetic.iter().collect();
    let batch = rows_to_batch(&schema, &columns, &refs)?;

    // Only the synthetic rows are reachable from here.
    let ctx = SessionContext::new();
    ctx.register_batch(def.name.as_str(), batch)?;
    let mut projection = vec![SelectItem::UnnamedExpr(Expr::Identifier(Ident::new(
        ROW_INDEX,
    )))];
    for (i, (_, expr)) in targets.iter().enumerate() {
        projection.push(value_column(i, rewrite_excluded(def, expr)?));
    }
    let from = assemble::table(ObjectName(vec![ObjectNamePart::Identifier(quoted(
        def.name.as_str(),
    ))]))?;
    let selection = selection.map(|e| rewrite_excluded(def, e)).transpose()?;
    let query = assemble::select(SELECT, projection, from, selection)?;
    let plan = ctx
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(query)))
        .await?;
    let results = ctx.execute_logical_plan(plan).await?.collect().await?;
    let mut out = Vec::new();
    for batch in results {
        let index_column = batch
            .column(0)
            .as_any()
            .downcast_ref::<datafusion::arrow::array::Int64Array>()
            .expect("row index is Int64")
            .clone();
        let values: Vec<Vec<Value>> = targets
            .iter()
            .enumerate()
            .map(|(i, (column, _))| array_to_values(batch.column(i + 1), column))
            .collect::<Result<_>>()?;
        for r in 0..batch.num_rows() {
            let cells = targets
                .iter()
                .zip(&values)
                .map(|((column, _), v)| (column.id, v[r].clone()))
                .collect();
            out.push((index_column.value(r) as usize, cells));
        }
    }
    Ok(out)
}

/// `EXCLUDED.col` becomes the synthetic column `__excluded_col`; a name
/// that is no column of `def` is refused.
fn rewrite_excluded(def: &TableDef, expr: &Expr) -> Result<Expr> {
    let mut expr = expr.clone();
    let outcome = visit_expressions_mut(&mut expr, |e| {
        if let Expr::CompoundIdentifier(parts) = e
            && parts.len() == 2
            && parts[0].value.eq_ignore_ascii_case("excluded")
        {
            match column(def, &parts[1].value.to_ascii_lowercase()) {
                Ok(c) => *e = Expr::Identifier(quoted(&format!("{EXCLUDED_PREFIX}{}", c.name))),
                Err(error) => return ControlFlow::Break(error),
            }
        }
        ControlFlow::Continue(())
    });
    match outcome {
        ControlFlow::Break(error) => Err(error),
        ControlFlow::Continue(()) => Ok(expr),
    }
}

/// The one plain table an UPDATE or DELETE names.
fn single_table(relation: &TableWithJoins) -> Result<&ObjectName> {
    if !relation.joins.is_empty() {
        return Err(QueryError::Unsupported("joins in UPDATE or DELETE".into()));
    }
    match &relation.relation {
        TableFactor::Table { name, .. } => Ok(name),
        other => Err(QueryError::Unsupported(format!(
            "UPDATE or DELETE on {other}"
        ))),
    }
}

/// Runs `SELECT <key>, <exprs> FROM <relation> WHERE <selection>` and
/// returns each matching row's store key with the evaluated expressions,
/// and their share of the query memory pool: hold it until the statement
/// is done.
async fn matching_rows(
    session: &QuerySession,
    def: &TableDef,
    relation: &TableWithJoins,
    exprs: &[(&ColumnDef, &Expr)],
    selection: Option<&Expr>,
) -> Result<(Vec<(Vec<u8>, Vec<Value>)>, Option<MemoryReservation>)> {
    let key_column = def.primary_key_column();
    let mut projection = vec![SelectItem::UnnamedExpr(Expr::Identifier(
        match key_column {
            Some(c) => quoted(&c.name),
            None => Ident::new("_seq"),
        },
    ))];
    for (i, (_, expr)) in exprs.iter().enumerate() {
        projection.push(value_column(i, (*expr).clone()));
    }
    let statement = assemble::select(SELECT, projection, relation.clone(), selection.cloned())?;
    let staged = Staged::read(session, session.query(statement).await?).await?;
    let seq_column = ColumnDef {
        id: 0,
        name: "_seq".into(),
        column_type: ColumnType::BigInt,
        nullable: false,
        default: None,
        fill: None,
    };
    let scope = session.scope(def);
    let Staged {
        batches,
        reservation,
    } = staged;
    let mut out = Vec::new();
    for batch in batches {
        let keys = array_to_values(batch.column(0), key_column.unwrap_or(&seq_column))?;
        let values: Vec<Vec<Value>> = exprs
            .iter()
            .enumerate()
            .map(|(i, (column, _))| array_to_values(batch.column(i + 1), column))
            .collect::<Result<_>>()?;
        for (r, key) in keys.into_iter().enumerate() {
            let key = scope
                .key(&key)
                .ok_or_else(|| QueryError::Internal("row without key".into()))?;
            out.push((key, values.iter().map(|v| v[r].clone()).collect()));
        }
    }
    Ok((out, reservation))
}

/// The current versions, hot or cold, of the rows `matching_rows` found.
async fn current_rows(
    session: &QuerySession,
    def: &TableDef,
    matches: &[(Vec<u8>, Vec<Value>)],
) -> Result<std::collections::HashMap<Vec<u8>, StoredRow>> {
    let keys: BTreeSet<Vec<u8>> = matches.iter().map(|(k, _)| k.clone()).collect();
    Ok(session
        .engine()
        .cold()
        .current_rows(&session.scope(def), &keys)
        .await?)
}

pub async fn update(session: &QuerySession, update: Update) -> Result<StatementOutput> {
    if update.from.is_some() || update.returning.is_some() || update.limit.is_some() {
        return Err(QueryError::Unsupported(
            "UPDATE with FROM, RETURNING or LIMIT".into(),
        ));
    }
    let table = session.resolve_table(single_table(&update.table)?, Intent::Write)?;
    let def = table.def();
    if def.primary_key.is_none() || def.table_type == TableType::Stream {
        return Err(QueryError::invalid(format!(
            "{} is a STREAM table: its rows cannot be updated",
            def.qualified_name()
        )));
    }
    let targets = assignment_targets(def, &update.assignments)?;
    let mut writer = TableWriter::lock(session.engine(), table.clone()).await;
    let (matches, _held) = matching_rows(
        session,
        def,
        &update.table,
        &targets,
        update.selection.as_ref(),
    )
    .await?;
    let store = writer.store();
    let scope = session.scope(def);
    let mut current = current_rows(session, def, &matches).await?;
    for (key, values) in matches {
        let Some(existing) = current.remove(&key) else {
            continue;
        };
        let before = writer.watched().then(|| existing.clone());
        let mut row = StoredRow {
            seq: store.seq().next().0,
            deleted: false,
            cells: existing.cells,
        };
        let cells = targets
            .iter()
            .zip(values)
            .map(|((c, _), v)| (c.id, v))
            .collect();
        apply_cells(def, &mut row, cells)?;
        writer.put(&scope, &key, row, before);
    }
    let count = writer.commit()?;
    Ok(done(count, "Updated"))
}

pub async fn delete(session: &QuerySession, delete: Delete) -> Result<StatementOutput> {
    if delete.using.is_some()
        || delete.returning.is_some()
        || delete.limit.is_some()
        || !delete.order_by.is_empty()
        || !delete.tables.is_empty()
    {
        return Err(QueryError::Unsupported(
            "DELETE with USING, RETURNING, ORDER BY, LIMIT or several tables".into(),
        ));
    }
    let relations = match &delete.from {
        FromTable::WithFromKeyword(r) | FromTable::WithoutKeyword(r) => r,
    };
    let [relation] = relations.as_slice() else {
        return Err(QueryError::Unsupported("DELETE from several tables".into()));
    };
    let table = session.resolve_table(single_table(relation)?, Intent::Write)?;
    let def = table.def();
    let mut writer = TableWriter::lock(session.engine(), table.clone()).await;
    let (matches, _held) =
        matching_rows(session, def, relation, &[], delete.selection.as_ref()).await?;
    let store = writer.store();
    let scope = session.scope(def);
    let mut current = current_rows(session, def, &matches).await?;
    for (key, _) in matches {
        let Some(existing) = current.remove(&key) else {
            continue;
        };
        let before = writer.watched().then(|| existing.clone());
        // The tombstone keeps the primary key so that a later flush can
        // carry it to cold storage.
        let cells = existing
            .cells
            .into_iter()
            .filter(|(id, _)| Some(*id) == def.primary_key)
            .collect();
        let tombstone = StoredRow {
            seq: store.seq().next().0,
            deleted: true,
            cells,
        };
        writer.put(&scope, &key, tombstone, before);
    }
    let count = writer.commit()?;
    Ok(done(count, "Deleted"))
}

/// Appends the rows of an Arrow batch to `namespace.table`, a SHARED
/// table, matching columns by name: the bulk path for loaders, without
/// SQL (per-user tables are written through SQL, by their owner). A
/// column the batch lacks takes its literal default, or NULL; defaults
/// computed per row (`NOW()`, ids) need the column in the batch. Primary keys are
/// checked against the table and within the batch, as `INSERT` does.
pub async fn append_batch(
    engine: &QueryEngine,
    namespace: &str,
    table: &str,
    batch: &RecordBatch,
) -> Result<u64> {
    let namespace = quiver_common::NamespaceId::new(namespace)?;
    let name = quiver_common::TableName::new(table)?;
    let table = engine
        .catalog()
        .table(&namespace, &name)
        .ok_or_else(|| QueryError::table_not_found(format!("{namespace}.{name}")))?;
    let def = table.def();
    if def.table_type.per_user() {
        return Err(QueryError::invalid(format!(
            "{} is a {} table: its rows are written through SQL by their owner",
            def.qualified_name(),
            def.table_type.as_str()
        )));
    }
    let scope = Scope::table(def.id.0);
    let mut columns: Vec<Vec<Value>> = Vec::with_capacity(def.columns.len());
    for column in &def.columns {
        let values = match batch.column_by_name(&column.name) {
            Some(array) => array_to_values(array, column)?,
            None => {
                let fill = match &column.default {
                    None => Value::Null,
                    Some(DefaultValue::Literal(value)) => value.clone(),
                    Some(_) => {
                        return Err(QueryError::invalid(format!(
                            "column {} has a computed default; the batch must hold it",
                            column.name
                        )));
                    }
                };
                vec![fill; batch.num_rows()]
            }
        };
        columns.push(values);
    }
    let pk_index = def
        .columns
        .iter()
        .position(|c| Some(c.id) == def.primary_key);

    let mut writer = TableWriter::lock(engine, table.clone()).await;
    let store = writer.store();
    let mut rows = Vec::with_capacity(batch.num_rows());
    let mut keys = BTreeSet::new();
    for r in 0..batch.num_rows() {
        let cells: Vec<Value> = columns.iter().map(|c| c[r].clone()).collect();
        for (column, value) in def.columns.iter().zip(&cells) {
            check_not_null(def, column, value)?;
        }
        let seq = store.seq().next().0;
        let key = key_of(&scope, pk_index, &cells, seq)?;
        if let Some(index) = pk_index
            && !keys.insert(key.clone())
        {
            return Err(QueryError::DuplicateKey {
                table: def.qualified_name(),
                key: format!(
                    "{} = {}",
                    def.columns[index].name,
                    display_value(&cells[index])
                ),
            });
        }
        rows.push((key, stored(def, seq, cells)));
    }
    if let Some(pk) = def.primary_key_column() {
        let existing = engine.cold().current_rows(&scope, &keys).await?;
        if let Some((_, row)) = rows.iter().find(|(key, _)| existing.contains_key(key)) {
            let value = row
                .stored_cell(pk.id)
                .map(display_value)
                .unwrap_or_default();
            return Err(QueryError::DuplicateKey {
                table: def.qualified_name(),
                key: format!("{} = {value}", pk.name),
            });
        }
    }
    for (key, row) in rows {
        writer.put(&scope, &key, row, None);
    }
    writer.commit()
}
