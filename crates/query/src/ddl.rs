//! Namespace and table definitions from SQL, and the introspection
//! statements (`SHOW`, `DESCRIBE`).

use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::prelude::SessionContext;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::{
    AlterColumnOperation, AlterTable, AlterTableOperation, ColumnDef as SqlColumnDef,
};
use datafusion::sql::sqlparser::ast::{
    ColumnOption, CreateTable, CreateTableOptions, DataType as SqlType, ExactNumberInfo, Expr,
    SelectItem, SetExpr, SqlOption, Statement, TableConstraint, Value as SqlValue,
    visit_expressions,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use quiver_catalog::{
    AccessLevel, CachedTableData, ColumnDef, DefaultValue, FlushPolicy, NamespaceDef, TableDef,
    TableOptions, TableType, TableVersion,
};
use quiver_common::{ColumnType, NamespaceId, TableId, TableName};
use quiver_store::Value;

use crate::convert::{array_to_values, now_value};
use crate::error::{QueryError, Result};

/// Names reserved for system columns.
const RESERVED_COLUMNS: [&str; 2] = ["_seq", "_deleted"];

/// Builds a table definition from `CREATE [type] TABLE`. Literal defaults
/// are evaluated once here, through `ctx`, and stored converted.
pub async fn table_def(
    ctx: &SessionContext,
    namespace: NamespaceId,
    name: TableName,
    keyword_type: Option<TableType>,
    create: &CreateTable,
) -> Result<TableDef> {
    let unsupported =
        |what: &str| Err(QueryError::Unsupported(format!("CREATE TABLE with {what}")));
    if create.query.is_some() {
        return unsupported("AS SELECT");
    }
    if create.or_replace || create.temporary || create.external {
        return unsupported("OR REPLACE, TEMPORARY or EXTERNAL");
    }
    let options = table_options(&create.table_options)?;
    let table_type = match (keyword_type, options.table_type) {
        (Some(a), Some(b)) if a != b => {
            return Err(QueryError::invalid(format!(
                "table type {} conflicts with TYPE='{}'",
                a.as_str(),
                b.as_str()
            )));
        }
        (a, b) => a.or(b).unwrap_or(TableType::Shared),
    };
    if create.columns.is_empty() {
        return Err(QueryError::invalid("a table needs at least one column"));
    }

    let mut columns: Vec<ColumnDef> = Vec::with_capacity(create.columns.len());
    let mut primary_key: Option<u32> = None;
    let mut set_primary_key = |id: u32, name: &str| -> Result<()> {
        match primary_key {
            Some(_) => Err(QueryError::invalid(format!(
                "only one primary key column is supported (also declared on {name})"
            ))),
            None => {
                primary_key = Some(id);
                Ok(())
            }
        }
    };
    for (i, column) in create.columns.iter().enumerate() {
        let id = i as u32 + 1;
        let column_name = TableName::new(&column.name.value)
            .map_err(|e| QueryError::invalid(e.to_string().replace("table name", "column name")))?
            .to_string();
        if RESERVED_COLUMNS.contains(&column_name.as_str()) {
            return Err(QueryError::invalid(format!(
                "column name {column_name} is reserved for a system column"
            )));
        }
        if columns.iter().any(|c| c.name == column_name) {
            return Err(QueryError::invalid(format!(
                "duplicate column name: {column_name}"
            )));
        }
        let (def, primary) = column_from_sql(ctx, column, id, column_name).await?;
        if primary {
            set_primary_key(id, &def.name)?;
        }
        columns.push(def);
    }
    for constraint in &create.constraints {
        match constraint {
            TableConstraint::PrimaryKey(pk) => {
                if pk.columns.len() != 1 {
                    return Err(QueryError::invalid(
                        "only single-column primary keys are supported",
                    ));
                }
                let name = pk.columns[0].column.expr.to_string().to_ascii_lowercase();
                let column = columns.iter().find(|c| c.name == name).ok_or_else(|| {
                    QueryError::invalid(format!("primary key column not found: {name}"))
                })?;
                set_primary_key(column.id, &name)?;
            }
            other => {
                return Err(QueryError::Unsupported(format!("table constraint {other}")));
            }
        }
    }
    if let Some(pk) = primary_key {
        let column = columns
            .iter_mut()
            .find(|c| c.id == pk)
            .expect("pk column exists");
        if matches!(
            column.column_type,
            ColumnType::Float | ColumnType::Double | ColumnType::Json
        ) {
            return Err(QueryError::invalid(format!(
                "column {} of type {} cannot be a primary key",
                column.name, column.column_type
            )));
        }
        column.nullable = false;
    }
    match table_type {
        TableType::User | TableType::Shared if primary_key.is_none() => {
            return Err(QueryError::invalid(format!(
                "{} tables need a PRIMARY KEY column",
                table_type.as_str()
            )));
        }
        TableType::Stream if options.options.ttl_seconds.is_none() => {
            return Err(QueryError::invalid(
                "STREAM tables need TTL_SECONDS in WITH (...)",
            ));
        }
        TableType::Stream if options.options.flush_policy.is_some() => {
            return Err(QueryError::invalid(
                "STREAM tables are never flushed: remove FLUSH_POLICY",
            ));
        }
        _ => {}
    }
    Ok(TableDef {
        id: TableId(0),
        namespace,
        name,
        table_type,
        columns,
        hidden_columns: Vec::new(),
        primary_key,
        options: options.options,
        schema_version: 0,
        next_column_id: 0,
        created_at: 0,
    })
}

/// Maps a SQL type to a Quiver column type.
pub fn column_type(ty: &SqlType) -> Result<ColumnType> {
    Ok(match ty {
        SqlType::Boolean | SqlType::Bool => ColumnType::Boolean,
        SqlType::SmallInt(_) | SqlType::Int2(_) | SqlType::Int16 => ColumnType::SmallInt,
        SqlType::Int(_) | SqlType::Integer(_) | SqlType::Int4(_) | SqlType::Int32 => {
            ColumnType::Int
        }
        SqlType::BigInt(_) | SqlType::Int8(_) | SqlType::Int64 => ColumnType::BigInt,
        SqlType::Float(_) | SqlType::Real | SqlType::Float4 | SqlType::Float32 => ColumnType::Float,
        SqlType::Double(_) | SqlType::DoublePrecision | SqlType::Float8 | SqlType::Float64 => {
            ColumnType::Double
        }
        SqlType::Text
        | SqlType::Varchar(_)
        | SqlType::String(_)
        | SqlType::CharacterVarying(_)
        | SqlType::CharVarying(_)
        | SqlType::Char(_)
        | SqlType::Character(_) => ColumnType::Text,
        SqlType::Timestamp(_, _) => ColumnType::Timestamp,
        SqlType::Date => ColumnType::Date,
        SqlType::JSON | SqlType::JSONB => ColumnType::Json,
        SqlType::Bytea
        | SqlType::Blob(_)
        | SqlType::Bytes(_)
        | SqlType::Binary(_)
        | SqlType::Varbinary(_) => ColumnType::Bytes,
        SqlType::Uuid => ColumnType::Uuid,
        SqlType::Decimal(info) | SqlType::Numeric(info) | SqlType::Dec(info) => match info {
            ExactNumberInfo::PrecisionAndScale(p, s)
                if (1..=ColumnType::MAX_DECIMAL_PRECISION as u64).contains(p)
                    && *s >= 0
                    && (*s as u64) <= *p =>
            {
                ColumnType::Decimal {
                    precision: *p as u8,
                    scale: *s as i8,
                }
            }
            ExactNumberInfo::Precision(p)
                if (1..=ColumnType::MAX_DECIMAL_PRECISION as u64).contains(p) =>
            {
                ColumnType::Decimal {
                    precision: *p as u8,
                    scale: 0,
                }
            }
            _ => {
                return Err(QueryError::invalid(format!(
                    "{ty} needs a precision of 1 to 38 and a scale of 0 to the precision, e.g. DECIMAL(10,2)"
                )));
            }
        },
        SqlType::Custom(name, args)
            if args.is_empty() && name.to_string().eq_ignore_ascii_case("bytes") =>
        {
            ColumnType::Bytes
        }
        other => {
            return Err(QueryError::invalid(format!(
                "unsupported column type {other}; supported: BOOLEAN, SMALLINT, INT, BIGINT, FLOAT, DOUBLE, \
                 TEXT, VARCHAR, TIMESTAMP, DATE, JSON, BYTES, UUID, DECIMAL(p,s)"
            )));
        }
    })
}

/// Checks a new column name: valid, not a system column, not taken.
fn new_column_name(def: &TableDef, name: &str) -> Result<String> {
    let name = TableName::new(name)
        .map_err(|e| QueryError::invalid(e.to_string().replace("table name", "column name")))?
        .to_string();
    if RESERVED_COLUMNS.contains(&name.as_str()) {
        return Err(QueryError::invalid(format!(
            "column name {name} is reserved for a system column"
        )));
    }
    if def.column(&name).is_some() {
        return Err(QueryError::invalid(format!(
            "column {name} already exists in {}",
            def.qualified_name()
        )));
    }
    Ok(name)
}

/// The user column `name` of `def`, refusing system and primary-key
/// columns for changes that would break them.
fn changeable_column<'a>(def: &'a TableDef, name: &str, action: &str) -> Result<&'a ColumnDef> {
    let name = name.to_ascii_lowercase();
    if RESERVED_COLUMNS.contains(&name.as_str()) {
        return Err(QueryError::invalid(format!(
            "{name} is a system column and cannot be {action}"
        )));
    }
    let column = def
        .column(&name)
        .ok_or_else(|| QueryError::invalid(crate::suggest::column_not_found(def, &name)))?;
    if def.primary_key == Some(column.id) && action != "given a default" {
        return Err(QueryError::invalid(format!(
            "{name} is the primary key of {} and cannot be {action}",
            def.qualified_name()
        )));
    }
    Ok(column)
}

/// One ALTER TABLE operation, prepared against the current definition (so
/// that defaults are evaluated before the catalog's short DDL lock).
enum Change {
    Add(ColumnDef),
    Drop(Vec<String>),
    Rename {
        from: String,
        to: String,
    },
    SetDefault {
        column: String,
        default: Option<DefaultValue>,
    },
}

impl Change {
    fn apply(self, def: &mut TableDef) -> std::result::Result<(), String> {
        match self {
            Change::Add(mut column) => {
                if def.column(&column.name).is_some() {
                    return Err(format!(
                        "column {} already exists in {}",
                        column.name,
                        def.qualified_name()
                    ));
                }
                column.id = def.next_column_id;
                def.next_column_id += 1;
                def.columns.push(column);
            }
            Change::Drop(names) => {
                for name in names {
                    let before = def.columns.len();
                    def.columns.retain(|c| c.name != name);
                    if def.columns.len() == before {
                        return Err(format!(
                            "column not found: {name} in {}",
                            def.qualified_name()
                        ));
                    }
                }
                if def.columns.is_empty() {
                    return Err("a table needs at least one column".to_string());
                }
            }
            Change::Rename { from, to } => {
                if def.column(&to).is_some() {
                    return Err(format!(
                        "column {to} already exists in {}",
                        def.qualified_name()
                    ));
                }
                let column = def
                    .columns
                    .iter_mut()
                    .find(|c| c.name == from)
                    .ok_or_else(|| format!("column not found: {from}"))?;
                column.name = to;
            }
            Change::SetDefault { column, default } => {
                let column = def
                    .columns
                    .iter_mut()
                    .find(|c| c.name == column)
                    .ok_or_else(|| format!("column not found: {column}"))?;
                column.default = default;
            }
        }
        Ok(())
    }
}

/// `ALTER TABLE`: each operation makes a new schema version. Rows written
/// before keep their cells by column id, so they read correctly through
/// every later version.
pub async fn alter_table(
    ctx: &SessionContext,
    catalog: &quiver_catalog::Catalog,
    table: Arc<CachedTableData>,
    alter: &AlterTable,
    user: &str,
) -> Result<u32> {
    if alter.operations.is_empty() {
        return Err(QueryError::invalid("ALTER TABLE needs an operation"));
    }
    let (namespace, name) = (table.def().namespace.clone(), table.def().name.clone());
    let mut version = table.def().schema_version;
    for operation in &alter.operations {
        let current = catalog
            .table(&namespace, &name)
            .ok_or_else(|| QueryError::table_not_found(format!("{namespace}.{name}")))?;
        let def = current.def();
        let change = match operation {
            AlterTableOperation::AddColumn {
                if_not_exists,
                column_def,
                column_position: None,
                ..
            } => {
                if *if_not_exists
                    && def
                        .column(&column_def.name.value.to_ascii_lowercase())
                        .is_some()
                {
                    continue;
                }
                Change::Add(added_column(ctx, def, column_def, user).await?)
            }
            AlterTableOperation::DropColumn {
                column_names,
                if_exists,
                ..
            } => {
                let mut names = Vec::new();
                for ident in column_names {
                    let lower = ident.value.to_ascii_lowercase();
                    if *if_exists
                        && def.column(&lower).is_none()
                        && !RESERVED_COLUMNS.contains(&lower.as_str())
                    {
                        continue;
                    }
                    names.push(
                        changeable_column(def, &ident.value, "dropped")?
                            .name
                            .clone(),
                    );
                }
                if names.is_empty() {
                    continue;
                }
                Change::Drop(names)
            }
            AlterTableOperation::RenameColumn {
                old_column_name,
                new_column_name: renamed,
            } => {
                let from = changeable_column(def, &old_column_name.value, "renamed")?
                    .name
                    .clone();
                let to = new_column_name(def, &renamed.value)?;
                Change::Rename { from, to }
            }
            AlterTableOperation::AlterColumn { column_name, op } => {
                let column = changeable_column(def, &column_name.value, "given a default")?;
                let default = match op {
                    AlterColumnOperation::SetDefault { value } => {
                        Some(default_value(ctx, column, value).await?)
                    }
                    AlterColumnOperation::DropDefault => None,
                    other => {
                        return Err(QueryError::Unsupported(format!("ALTER COLUMN {other}")));
                    }
                };
                Change::SetDefault {
                    column: column.name.clone(),
                    default,
                }
            }
            other => return Err(QueryError::Unsupported(format!("ALTER TABLE {other}"))),
        };
        let altered = catalog.alter_table(&namespace, &name, &operation.to_string(), |def| {
            change.apply(def)
        })?;
        version = altered.def().schema_version;
    }
    Ok(version)
}

/// A column's type and options (NULL, NOT NULL, DEFAULT, PRIMARY KEY) as
/// written in `CREATE TABLE` or `ADD COLUMN`; also says whether the column
/// was declared the primary key.
async fn column_from_sql(
    ctx: &SessionContext,
    column: &SqlColumnDef,
    id: u32,
    name: String,
) -> Result<(ColumnDef, bool)> {
    let mut def = ColumnDef {
        id,
        name,
        column_type: column_type(&column.data_type)?,
        nullable: true,
        default: None,
        fill: None,
    };
    let mut primary = false;
    for option in &column.options {
        match &option.option {
            ColumnOption::Null => def.nullable = true,
            ColumnOption::NotNull => def.nullable = false,
            ColumnOption::PrimaryKey(_) => primary = true,
            ColumnOption::Default(expr) => {
                def.default = Some(default_value(ctx, &def, expr).await?);
            }
            other => {
                return Err(QueryError::Unsupported(format!(
                    "column option {other} on column {}",
                    def.name
                )));
            }
        }
    }
    Ok((def, primary))
}

/// The definition of a column added by `ADD COLUMN`; rows already stored
/// read as its default (evaluated now) or NULL.
async fn added_column(
    ctx: &SessionContext,
    def: &TableDef,
    column: &SqlColumnDef,
    user: &str,
) -> Result<ColumnDef> {
    let name = new_column_name(def, &column.name.value)?;
    let (mut added, primary) = column_from_sql(ctx, column, 0, name).await?;
    if primary {
        return Err(QueryError::invalid(
            "a table's primary key cannot be changed",
        ));
    }
    added.fill = match &added.default {
        None => None,
        Some(DefaultValue::Literal(value)) => Some(value.clone()).filter(|v| !v.is_null()),
        Some(DefaultValue::Now) => Some(now_value(
            added.column_type,
            chrono::Utc::now().timestamp_micros(),
        )),
        Some(DefaultValue::CurrentUser) => Some(Value::Text(user.to_string())),
        // Unique per row: existing rows cannot share one value.
        Some(DefaultValue::SnowflakeId | DefaultValue::UuidV7) => None,
    };
    if !added.nullable && added.fill.is_none() {
        return Err(QueryError::invalid(format!(
            "NOT NULL column {} needs a constant DEFAULT for the rows already stored",
            added.name
        )));
    }
    Ok(added)
}

/// `DESCRIBE TABLE ... HISTORY`: one row per schema version.
pub fn describe_history(versions: &[TableVersion]) -> Result<RecordBatch> {
    use datafusion::arrow::array::TimestampMicrosecondArray;
    use datafusion::arrow::datatypes::TimeUnit;
    let schema = Arc::new(Schema::new(vec![
        Field::new("version", DataType::UInt32, false),
        Field::new(
            "changed_at",
            DataType::Timestamp(TimeUnit::Microsecond, None),
            false,
        ),
        utf8("change", false),
        utf8("columns", false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(UInt32Array::from_iter_values(
            versions.iter().map(|v| v.version),
        )),
        Arc::new(TimestampMicrosecondArray::from_iter_values(
            versions.iter().map(|v| v.changed_at),
        )),
        Arc::new(StringArray::from_iter_values(
            versions.iter().map(|v| v.change.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            versions
                .iter()
                .map(|v| quiver_catalog::render_columns(&v.columns)),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

async fn default_value(
    ctx: &SessionContext,
    column: &ColumnDef,
    mut expr: &Expr,
) -> Result<DefaultValue> {
    while let Expr::Nested(inner) = expr {
        expr = inner;
    }
    if let Expr::Function(function) = expr {
        let name = function.name.to_string().to_ascii_uppercase();
        let generated = match name.as_str() {
            "NOW" | "CURRENT_TIMESTAMP" => Some((
                DefaultValue::Now,
                matches!(column.column_type, ColumnType::Timestamp | ColumnType::Date),
            )),
            "SNOWFLAKE_ID" => Some((
                DefaultValue::SnowflakeId,
                column.column_type == ColumnType::BigInt,
            )),
            "UUID_V7" => Some((
                DefaultValue::UuidV7,
                matches!(column.column_type, ColumnType::Uuid | ColumnType::Text),
            )),
            "CURRENT_USER" => Some((
                DefaultValue::CurrentUser,
                column.column_type == ColumnType::Text,
            )),
            _ => None,
        };
        if let Some((default, fits)) = generated {
            if !fits {
                return Err(QueryError::invalid(format!(
                    "DEFAULT {name}() does not fit column {} of type {}",
                    column.name, column.column_type
                )));
            }
            return Ok(default);
        }
    }
    if matches!(expr, Expr::Value(v) if matches!(v.value, SqlValue::Null)) {
        return Ok(DefaultValue::Literal(quiver_store::Value::Null));
    }
    check_default(column, expr)?;
    let invalid = |e: datafusion::error::DataFusionError| {
        QueryError::invalid(format!(
            "invalid DEFAULT for column {}: {}",
            column.name,
            QueryError::from(e)
        ))
    };
    // `SELECT <expr>`, put together as a syntax tree and planned where no
    // table is reachable: a default is computed from nothing but itself.
    let mut select = Parser::parse_sql(&GenericDialect {}, "SELECT NULL")
        .map_err(|e| QueryError::Internal(format!("a SELECT to fill in: {e}")))?;
    let Some(Statement::Query(query)) = select.first_mut() else {
        return Err(QueryError::Internal("a SELECT to fill in".into()));
    };
    let SetExpr::Select(body) = query.body.as_mut() else {
        return Err(QueryError::Internal("a SELECT to fill in".into()));
    };
    body.projection = vec![SelectItem::UnnamedExpr(expr.clone())];
    let tableless = SessionContext::new();
    for function in ctx.state().scalar_functions().values() {
        tableless.register_udf(function.as_ref().clone());
    }
    let plan = tableless
        .state()
        .statement_to_plan(DfStatement::Statement(Box::new(select.remove(0))))
        .await
        .map_err(invalid)?;
    let batches = tableless
        .execute_logical_plan(plan)
        .await
        .map_err(invalid)?
        .collect()
        .await
        .map_err(invalid)?;
    let array = batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .map(|b| b.column(0).clone())
        .ok_or_else(|| {
            QueryError::invalid(format!("DEFAULT for column {} gave no value", column.name))
        })?;
    let value = array_to_values(&array, column)?.remove(0);
    Ok(DefaultValue::Literal(value))
}

/// Refuses a DEFAULT that is not a value: one that reads a column or a
/// table, or that uses a generator (`NOW()`, `SNOWFLAKE_ID()`, ...) inside
/// a larger expression, where it would be computed once, at CREATE.
fn check_default(column: &ColumnDef, expr: &Expr) -> Result<()> {
    let refused = visit_expressions(expr, |e| {
        let what = match e {
            Expr::Identifier(_)
            | Expr::CompoundIdentifier(_)
            | Expr::CompoundFieldAccess { .. } => Some("a column reference"),
            Expr::Subquery(_) | Expr::Exists { .. } | Expr::InSubquery { .. } => Some("a subquery"),
            Expr::Function(function) if function.over.is_some() => Some("a window function"),
            Expr::Function(function)
                if GENERATORS
                    .contains(&function.name.to_string().to_ascii_uppercase().as_str()) =>
            {
                Some("a generator inside an expression (use it as the whole DEFAULT)")
            }
            _ => None,
        };
        match what {
            Some(what) => ControlFlow::Break(what),
            None => ControlFlow::Continue(()),
        }
    });
    match refused {
        ControlFlow::Break(what) => Err(QueryError::invalid(format!(
            "DEFAULT for column {} must be a value: {what} is not allowed ({expr})",
            column.name
        ))),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// Functions a DEFAULT may be on its own, computed for each row.
const GENERATORS: [&str; 5] = [
    "NOW",
    "CURRENT_TIMESTAMP",
    "SNOWFLAKE_ID",
    "UUID_V7",
    "CURRENT_USER",
];

struct ParsedOptions {
    table_type: Option<TableType>,
    options: TableOptions,
}

fn table_options(options: &CreateTableOptions) -> Result<ParsedOptions> {
    let list: &[SqlOption] = match options {
        CreateTableOptions::None => &[],
        CreateTableOptions::With(list) => list,
        _ => {
            return Err(QueryError::Unsupported(
                "table options other than WITH (...)".into(),
            ));
        }
    };
    let mut parsed = ParsedOptions {
        table_type: None,
        options: TableOptions::default(),
    };
    for option in list {
        let SqlOption::KeyValue { key, value } = option else {
            return Err(QueryError::invalid(format!(
                "expected KEY = value in WITH (...), found {option}"
            )));
        };
        let key_name = key.value.to_ascii_uppercase();
        let text = option_text(value);
        let bad = |expected: &str| {
            QueryError::invalid(format!("invalid {key_name} = {value}: expected {expected}"))
        };
        match key_name.as_str() {
            "TYPE" => {
                parsed.table_type = Some(match text.to_ascii_uppercase().as_str() {
                    "USER" => TableType::User,
                    "SHARED" => TableType::Shared,
                    "STREAM" => TableType::Stream,
                    _ => return Err(bad("'USER', 'SHARED' or 'STREAM'")),
                })
            }
            "FLUSH_POLICY" => {
                parsed.options.flush_policy = Some(
                    flush_policy(&text)
                        .ok_or_else(|| bad("'rows:N', 'interval:S' or 'rows:N,interval:S'"))?,
                )
            }
            "TTL_SECONDS" => {
                parsed.options.ttl_seconds = Some(
                    text.parse::<u64>()
                        .ok()
                        .filter(|v| *v > 0)
                        .ok_or_else(|| bad("a positive whole number"))?,
                )
            }
            "ACCESS_LEVEL" => {
                parsed.options.access_level = Some(match text.to_ascii_uppercase().as_str() {
                    "PUBLIC" => AccessLevel::Public,
                    "PRIVATE" => AccessLevel::Private,
                    _ => return Err(bad("'PUBLIC' or 'PRIVATE'")),
                })
            }
            _ => {
                return Err(QueryError::invalid(format!(
                    "unknown table option {key_name}; known: TYPE, FLUSH_POLICY, TTL_SECONDS, ACCESS_LEVEL"
                )));
            }
        }
    }
    Ok(parsed)
}

fn option_text(value: &Expr) -> String {
    match value {
        Expr::Value(v) => match &v.value {
            SqlValue::SingleQuotedString(s) | SqlValue::DoubleQuotedString(s) => s.clone(),
            SqlValue::Number(n, _) => n.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

fn flush_policy(text: &str) -> Option<FlushPolicy> {
    let mut policy = FlushPolicy {
        rows: None,
        interval_secs: None,
    };
    for part in text.split(',') {
        let (key, value) = part.trim().split_once(':')?;
        let value: u64 = value.trim().parse().ok().filter(|v| *v > 0)?;
        let slot = match key.trim().to_ascii_lowercase().as_str() {
            "rows" => &mut policy.rows,
            "interval" => &mut policy.interval_secs,
            _ => return None,
        };
        if slot.replace(value).is_some() {
            return None;
        }
    }
    Some(policy)
}

fn utf8(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

/// `SHOW NAMESPACES`: one row per namespace.
pub fn show_namespaces(namespaces: &[NamespaceDef], table_counts: &[usize]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        utf8("namespace_id", false),
        Field::new("table_count", DataType::Int64, false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            namespaces.iter().map(|n| n.name.as_str()),
        )),
        Arc::new(Int64Array::from_iter_values(
            table_counts.iter().map(|c| *c as i64),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `SHOW TABLES`: one row per table.
pub fn show_tables(tables: &[(String, String, &str)]) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        utf8("namespace_id", false),
        utf8("table_name", false),
        utf8("table_type", false),
    ]));
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.0.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(
            tables.iter().map(|t| t.1.as_str()),
        )),
        Arc::new(StringArray::from_iter_values(tables.iter().map(|t| t.2))),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// `DESCRIBE TABLE`: one row per column, system columns last.
pub fn describe_table(def: &TableDef) -> Result<RecordBatch> {
    let schema = Arc::new(Schema::new(vec![
        utf8("column_name", false),
        utf8("data_type", false),
        Field::new("is_nullable", DataType::Boolean, false),
        Field::new("is_primary_key", DataType::Boolean, false),
        utf8("default_value", true),
        Field::new("column_id", DataType::UInt32, true),
    ]));
    let mut names: Vec<String> = def.columns.iter().map(|c| c.name.clone()).collect();
    let mut types: Vec<String> = def
        .columns
        .iter()
        .map(|c| c.column_type.to_string())
        .collect();
    let mut nullable: Vec<bool> = def.columns.iter().map(|c| c.nullable).collect();
    let mut pk: Vec<bool> = def
        .columns
        .iter()
        .map(|c| def.primary_key == Some(c.id))
        .collect();
    let mut defaults: Vec<Option<String>> = def
        .columns
        .iter()
        .map(|c| c.default.as_ref().map(|d| d.sql_text(c.column_type)))
        .collect();
    let mut ids: Vec<Option<u32>> = def.columns.iter().map(|c| Some(c.id)).collect();
    names.push("_seq".into());
    types.push(ColumnType::BigInt.to_string());
    nullable.push(false);
    pk.push(false);
    defaults.push(None);
    ids.push(None);
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(names)),
        Arc::new(StringArray::from(types)),
        Arc::new(BooleanArray::from(nullable)),
        Arc::new(BooleanArray::from(pk)),
        Arc::new(StringArray::from(defaults)),
        Arc::new(UInt32Array::from(ids)),
    ];
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flush_policies() {
        assert_eq!(
            flush_policy("rows:100, interval:60"),
            Some(FlushPolicy {
                rows: Some(100),
                interval_secs: Some(60)
            })
        );
        assert!(flush_policy("rows:0").is_none());
        assert!(flush_policy("rows:1,rows:2").is_none());
        assert!(flush_policy("bytes:5").is_none());
        assert!(flush_policy("").is_none());
    }
}
