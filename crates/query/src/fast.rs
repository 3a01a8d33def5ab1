//! Statements simple enough to answer without DataFusion planning: the
//! literal rows of `INSERT ... VALUES`, and a `SELECT` of plain columns of
//! one table by primary key. Planning costs far more than either needs.
//!
//! Each recognizer accepts only shapes whose result it gives exactly as the
//! planned path would and declines (`None`) anything else, which then takes
//! the planned path with its checks and error messages. The sqlparser
//! structures are destructured field by field, so a clause added in a new
//! sqlparser version fails to compile here instead of being ignored.

pub(crate) mod key_select;
pub(crate) mod literal_insert;
mod scanner;
#[cfg(test)]
mod testing;

use std::collections::BTreeSet;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, NullArray, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{
    BinaryOperator, Expr, GroupByExpr, Ident, ObjectName, Query, Select, SelectFlavor, SelectItem,
    SetExpr, Statement, TableFactor, TableWithJoins, UnaryOperator, Value as SqlValue, Values,
    WildcardAdditionalOptions,
};
use quiver_catalog::CachedTableData;
use quiver_common::ColumnType;
use quiver_store::Scope;

use crate::convert::{OutputColumn, rows_to_batch};
use crate::error::Result;
use crate::executor::{QuerySession, StatementOutput, batch_stream};
use crate::provider::literal_value;
use crate::system::SYSTEM_NAMESPACE;

/// Counts a statement answered without query planning.
pub(crate) fn counted(engine: &crate::executor::QueryEngine) {
    engine
        .node()
        .counters
        .fast_path_statements
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

/// A number literal as DataFusion's SQL planner types it: integers as
/// `Int64`, other numbers as `Float64` unless floats parse as decimals
/// (then `None`, as for anything else this path does not type).
fn number(digits: &str, negative: bool, floats_as_decimal: bool) -> Option<ScalarValue> {
    if digits.contains('_') {
        return None;
    }
    let signed = if negative {
        format!("-{digits}")
    } else {
        digits.to_string()
    };
    if let Ok(n) = signed.parse::<i64>() {
        return Some(ScalarValue::Int64(Some(n)));
    }
    let float_syntax = digits.contains(['.', 'e', 'E']);
    if float_syntax && !floats_as_decimal {
        return signed
            .parse::<f64>()
            .ok()
            .map(|f| ScalarValue::Float64(Some(f)));
    }
    None
}

/// A literal as DataFusion's SQL planner types it: numbers as [`number`]
/// types them, strings as `Utf8`. Anything that needs evaluating is not a
/// literal here.
fn literal(expr: &Expr, floats_as_decimal: bool) -> Option<ScalarValue> {
    let number = |digits: &str, negative: bool| number(digits, negative, floats_as_decimal);
    match expr {
        Expr::Value(v) => match &v.value {
            SqlValue::Number(digits, false) => number(digits, false),
            SqlValue::SingleQuotedString(s) => Some(ScalarValue::Utf8(Some(s.clone()))),
            SqlValue::Boolean(b) => Some(ScalarValue::Boolean(Some(*b))),
            SqlValue::Null => Some(ScalarValue::Null),
            _ => None,
        },
        Expr::UnaryOp {
            op: UnaryOperator::Minus,
            expr,
        } => match expr.as_ref() {
            Expr::Value(v) => match &v.value {
                SqlValue::Number(digits, false) => number(digits, true),
                _ => None,
            },
            _ => None,
        },
        _ => None,
    }
}

/// The rows of `INSERT ... VALUES` when every value is a literal, as one
/// batch with a column per value position, typed as DataFusion types the
/// `VALUES`. `None` when a value needs evaluating, rows differ in length,
/// or one position holds literals of different types (DataFusion coerces
/// those).
pub(crate) fn literal_rows(source: &Query, floats_as_decimal: bool) -> Option<RecordBatch> {
    let rows = plain_body(source)?;
    let SetExpr::Values(Values { rows, .. }) = rows else {
        return None;
    };
    let width = rows.first()?.content.len();
    let mut columns: Vec<Vec<ScalarValue>> = vec![Vec::with_capacity(rows.len()); width];
    for row in rows {
        if row.content.len() != width {
            return None;
        }
        for (column, expr) in columns.iter_mut().zip(&row.content) {
            column.push(literal(expr, floats_as_decimal)?);
        }
    }
    literal_batch(columns)
}

/// Literal rows given column by column, as one batch typed as DataFusion
/// types a `VALUES` list. `None` when a column holds literals of different
/// types (DataFusion coerces those).
fn literal_batch(columns: Vec<Vec<ScalarValue>>) -> Option<RecordBatch> {
    let width = columns.len();
    let mut arrays: Vec<ArrayRef> = Vec::with_capacity(width);
    for column in columns {
        let types: BTreeSet<DataType> = column
            .iter()
            .filter(|v| !v.is_null())
            .map(ScalarValue::data_type)
            .collect();
        let array: ArrayRef = match types.len() {
            0 => Arc::new(NullArray::new(column.len())),
            1 => {
                let ty = types.into_iter().next()?;
                let typed_null = ScalarValue::try_from(&ty).ok()?;
                let values = column
                    .into_iter()
                    .map(|v| if v.is_null() { typed_null.clone() } else { v });
                ScalarValue::iter_to_array(values).ok()?
            }
            _ => return None,
        };
        arrays.push(array);
    }
    let fields: Vec<Field> = arrays
        .iter()
        .enumerate()
        .map(|(i, a)| Field::new(format!("column{}", i + 1), a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).ok()
}

/// The body of a query without `WITH`, `ORDER BY`, `LIMIT` or any other
/// clause around it.
fn plain_body(query: &Query) -> Option<&SetExpr> {
    let Query {
        with,
        body,
        order_by,
        limit_clause,
        fetch,
        locks,
        for_clause,
        settings,
        format_clause,
        pipe_operators,
    } = query;
    let plain = with.is_none()
        && order_by.is_none()
        && limit_clause.is_none()
        && fetch.is_none()
        && locks.is_empty()
        && for_clause.is_none()
        && settings.is_none()
        && format_clause.is_none()
        && pipe_operators.is_empty();
    plain.then_some(body.as_ref())
}

/// A name as DataFusion resolves it: unquoted identifiers in lower case.
/// Quoted or upper-case identifiers are left to the planned path.
fn plain_name(ident: &Ident) -> Option<&str> {
    let plain = ident.quote_style.is_none() && !ident.value.bytes().any(|b| b.is_ascii_uppercase());
    plain.then_some(ident.value.as_str())
}

/// A read of one row by its key as written, before names are resolved:
/// what the text recognizer and the parsed statement both yield.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyRead {
    /// The table's name, part by part.
    pub table: Vec<String>,
    /// The output columns in order; `None` for `*`.
    pub items: Vec<Option<String>>,
    /// The column the `WHERE` compares with `key`.
    pub column: String,
    pub key: ScalarValue,
}

impl KeyRead {
    /// Reads `SELECT <columns | *> FROM t WHERE column = <literal>` (or
    /// `<literal> = column`) from a parsed statement.
    pub(crate) fn of(statement: &Statement, floats_as_decimal: bool) -> Option<Self> {
        let Statement::Query(query) = statement else {
            return None;
        };
        let SetExpr::Select(select) = plain_body(query)? else {
            return None;
        };
        let (name, projection, selection) = simple_select(select)?;
        let table = name
            .0
            .iter()
            .map(|part| part.as_ident().and_then(plain_name).map(str::to_string))
            .collect::<Option<Vec<_>>>()?;
        let items = projection
            .iter()
            .map(|item| match item {
                SelectItem::Wildcard(options) if plain_wildcard(options) => Some(None),
                SelectItem::UnnamedExpr(Expr::Identifier(ident)) => {
                    plain_name(ident).map(|name| Some(name.to_string()))
                }
                _ => None,
            })
            .collect::<Option<Vec<_>>>()?;
        let mut expr = selection;
        while let Expr::Nested(inner) = expr {
            expr = inner;
        }
        let Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } = expr
        else {
            return None;
        };
        let (column, key) = match (left.as_ref(), right.as_ref()) {
            (Expr::Identifier(column), other) | (other, Expr::Identifier(column)) => {
                (plain_name(column)?, literal(other, floats_as_decimal)?)
            }
            _ => return None,
        };
        Some(Self {
            table,
            items,
            column: column.to_string(),
            key,
        })
    }
}

/// A `SELECT` the fast path answers: plain columns of one table whose
/// primary key equals a literal, resolved for one session.
#[derive(Debug, Clone)]
pub struct PointSelect {
    table: Arc<CachedTableData>,
    /// Indices into the table's Arrow schema (its columns, then `_seq`).
    projection: Vec<usize>,
    /// The session's rows of the table, and the key in the store.
    scope: Scope,
    key: Vec<u8>,
}

impl PointSelect {
    /// Resolves a key read of a user table (not a view, not a system
    /// table) whose column is the primary key and whose literal compares
    /// with it without coercion: an integer for an integer key, a string
    /// for a text key. `None` for anything the planned path must answer;
    /// a session that may not read the table gets the planned path's
    /// error.
    pub(crate) fn resolve(session: &QuerySession, read: &KeyRead) -> Option<Result<Self>> {
        let name = ObjectName::from(read.table.iter().map(Ident::new).collect::<Vec<_>>());
        let (namespace, table) = session.split_name(&name).ok()?;
        if namespace.as_str() == SYSTEM_NAMESPACE {
            return None;
        }
        let table = session.engine().catalog().table(&namespace, &table)?;
        let def = table.def();
        let schema = table.arrow_schema();
        let mut indices = Vec::new();
        for item in &read.items {
            match item {
                None => indices.extend(0..schema.fields().len()),
                Some(column) => indices.push(schema.index_of(column).ok()?),
            }
        }
        // DataFusion refuses duplicate output names.
        if indices.iter().collect::<BTreeSet<_>>().len() != indices.len() {
            return None;
        }
        let pk = def.primary_key_column()?;
        if pk.name != read.column {
            return None;
        }
        let comparable = matches!(
            (&read.key, pk.column_type),
            (
                ScalarValue::Int64(Some(_)),
                ColumnType::SmallInt | ColumnType::Int | ColumnType::BigInt
            ) | (ScalarValue::Utf8(Some(_)), ColumnType::Text)
        );
        if !comparable {
            return None;
        }
        // An integer out of the key's range matches nothing; the planned
        // path says so.
        let value = literal_value(&read.key, pk)?;
        let scope = session.scope(def);
        let key = scope.key(&value)?;
        if let Err(e) = session.check_read(def) {
            return Some(Err(e));
        }
        Some(Ok(Self {
            table,
            projection: indices,
            scope,
            key,
        }))
    }

    /// Looks the key up across hot rows and segments, newest version wins.
    pub(crate) async fn run(self, session: &QuerySession) -> Result<StatementOutput> {
        let def = self.table.def();
        let schema = Arc::new(self.table.arrow_schema().project(&self.projection)?);
        let columns: Vec<OutputColumn> = self
            .projection
            .iter()
            .map(|&i| match def.columns.get(i) {
                Some(column) => OutputColumn::of(column),
                None => OutputColumn::Seq,
            })
            .collect();
        // Segments published since recognition are read too.
        let keys = BTreeSet::from([self.key]);
        let found = session
            .engine()
            .cold()
            .current_rows(&self.scope, &keys)
            .await?;
        let rows: Vec<_> = found.values().collect();
        let batch = rows_to_batch(&schema, &columns, &rows)?;
        Ok(StatementOutput::Rows(batch_stream(batch)))
    }
}

/// The table, projection and `WHERE` of a select from one table with no
/// other clause.
fn simple_select(select: &Select) -> Option<(&ObjectName, &[SelectItem], &Expr)> {
    let Select {
        select_token: _,
        optimizer_hints,
        distinct,
        select_modifiers,
        top,
        top_before_distinct: _,
        projection,
        exclude,
        into,
        from,
        lateral_views,
        prewhere,
        selection,
        connect_by,
        group_by,
        cluster_by,
        distribute_by,
        sort_by,
        having,
        named_window,
        qualify,
        window_before_qualify: _,
        value_table_mode,
        flavor,
    } = select;
    let no_grouping =
        matches!(group_by, GroupByExpr::Expressions(e, m) if e.is_empty() && m.is_empty());
    let plain = optimizer_hints.is_empty()
        && distinct.is_none()
        && select_modifiers.is_none()
        && top.is_none()
        && exclude.is_none()
        && into.is_none()
        && lateral_views.is_empty()
        && prewhere.is_none()
        && connect_by.is_empty()
        && no_grouping
        && cluster_by.is_empty()
        && distribute_by.is_empty()
        && sort_by.is_empty()
        && having.is_none()
        && named_window.is_empty()
        && qualify.is_none()
        && value_table_mode.is_none()
        && matches!(flavor, SelectFlavor::Standard);
    if !plain {
        return None;
    }
    let [TableWithJoins { relation, joins }] = from.as_slice() else {
        return None;
    };
    if !joins.is_empty() {
        return None;
    }
    let TableFactor::Table {
        name,
        alias,
        args,
        with_hints,
        version,
        with_ordinality,
        partitions,
        json_path,
        sample,
        index_hints,
    } = relation
    else {
        return None;
    };
    let plain = alias.is_none()
        && args.is_none()
        && with_hints.is_empty()
        && version.is_none()
        && !with_ordinality
        && partitions.is_empty()
        && json_path.is_none()
        && sample.is_none()
        && index_hints.is_empty();
    plain.then_some((name, projection.as_slice(), selection.as_ref()?))
}

fn plain_wildcard(options: &WildcardAdditionalOptions) -> bool {
    let WildcardAdditionalOptions {
        wildcard_token: _,
        opt_ilike,
        opt_exclude,
        opt_except,
        opt_replace,
        opt_rename,
        opt_alias,
    } = options;
    opt_ilike.is_none()
        && opt_exclude.is_none()
        && opt_except.is_none()
        && opt_replace.is_none()
        && opt_rename.is_none()
        && opt_alias.is_none()
}
