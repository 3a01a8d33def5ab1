//! Live queries from the engine's side: compiling a subscription's
//! `SELECT ... FROM ns.t [WHERE ...]`, registering it at a cut taken while
//! the table's writers are shut out for a moment, reading its snapshot at
//! that cut, and handing each statement's changes to the node's
//! [`quiver_live::LiveQueryManager`].

use std::sync::Arc;

use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::DFSchema;
use datafusion::logical_expr::Operator;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_expr::expressions::{BinaryExpr, Column, Literal};
use datafusion::sql::sqlparser::ast::{
    Expr as SqlExpr, ExprWithAlias, GroupByExpr, SelectItem, SetExpr, Statement, TableFactor,
};
use quiver_catalog::CachedTableData;
use quiver_live::{ChangeSet, EqualityKey, LivePlan};
use quiver_store::{Scope, StoredRow};

use crate::convert::{OutputColumn, rows_to_batch};
use crate::dialect::{QuiverStatement, parse};
use crate::error::{QueryError, Result};
use crate::executor::{Intent, QueryEngine, QuerySession};

mod snapshot;

pub use snapshot::{Kept, Snapshot, SnapshotMemory, Subscribed};

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

fn column_index(schema: &SchemaRef, name: &str) -> Result<usize> {
    schema
        .fields()
        .iter()
        .position(|f| f.name().eq_ignore_ascii_case(name))
        .ok_or_else(|| QueryError::invalid(format!("column not found: {name}")))
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
