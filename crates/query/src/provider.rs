//! DataFusion's view of Quiver: the `quiver` catalog whose schemas are
//! namespaces and whose tables scan RocksDB lazily, batch by batch, with
//! projection, limit and primary-key equality pushed down. Each session
//! has its own catalog provider, bound to who the session acts as: a table
//! the session may not read does not resolve, and a per-user table scans
//! that user's rows, hot and cold, and nothing else.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BinaryArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::Schema;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{CatalogProvider, SchemaProvider, Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::source_as_provider;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{
    BinaryExpr, Expr, LogicalPlan, Operator, TableProviderFilterPushDown, TableType,
};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::union::UnionExec;
use datafusion::sql::sqlparser::ast::ObjectName;
use quiver_catalog::{CachedTableData, Catalog, ColumnDef, SEQ_COLUMN};
use quiver_common::{NamespaceId, TableName};
use quiver_store::{HotRows, Manifest, Scope, StoredRow, Value, segment_column};

use crate::merge::{InputLayout, MergeExec, needs_merge, segment_scans};
use quiver_store::ColdTables;

use crate::access::Access;
use crate::convert::{OutputColumn, array_to_values, rows_to_batch};
use crate::error::QueryError;
use crate::suggest;
use crate::system::{NodeInfo, SYSTEM_NAMESPACE, SystemSchema};

/// The name DataFusion knows the Quiver catalog by.
pub const CATALOG_NAME: &str = "quiver";

/// The namespace and table a name like `t`, `ns.t` or `quiver.ns.t`
/// refers to, with `default` as the namespace of unqualified names.
pub(crate) fn relation_name(
    name: &ObjectName,
    default: &NamespaceId,
) -> crate::error::Result<(NamespaceId, TableName)> {
    let parts: Vec<String> = name
        .0
        .iter()
        .map(|p| {
            p.as_ident()
                .map(|i| i.value.clone())
                .unwrap_or_else(|| p.to_string())
        })
        .collect();
    let (namespace, table) = match parts.as_slice() {
        [table] => (default.clone(), table.as_str()),
        [ns, table] => (NamespaceId::new(ns)?, table.as_str()),
        [catalog, ns, table] if catalog.eq_ignore_ascii_case(CATALOG_NAME) => {
            (NamespaceId::new(ns)?, table.as_str())
        }
        _ => return Err(QueryError::table_not_found(name.to_string())),
    };
    let table = TableName::new(table)
        .map_err(|_| QueryError::table_not_found(format!("{namespace}.{table}")))?;
    Ok((namespace, table))
}

/// The `quiver` catalog of one session, bound to who the session acts
/// as: a table resolves only if the session may read it, so every way
/// of naming a table in SQL passes the same check.
#[derive(Debug)]
pub struct QuiverCatalogProvider {
    catalog: Arc<Catalog>,
    cold: Arc<ColdTables>,
    node: Arc<NodeInfo>,
    access: Access,
    table_functions: Arc<BTreeSet<String>>,
}

impl QuiverCatalogProvider {
    pub(crate) fn new(
        catalog: Arc<Catalog>,
        cold: Arc<ColdTables>,
        node: Arc<NodeInfo>,
        access: Access,
        table_functions: Arc<BTreeSet<String>>,
    ) -> Self {
        Self {
            catalog,
            cold,
            node,
            access,
            table_functions,
        }
    }
}

impl CatalogProvider for QuiverCatalogProvider {
    /// The namespaces, and `system` for the roles that may read it.
    fn schema_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .catalog
            .namespaces()
            .into_iter()
            .map(|n| n.name.to_string())
            .collect();
        if self.access.is_admin() {
            names.push(SYSTEM_NAMESPACE.to_string());
        }
        names
    }

    fn schema(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        if name == SYSTEM_NAMESPACE {
            return Some(Arc::new(SystemSchema {
                catalog: self.catalog.clone(),
                cold: self.cold.clone(),
                node: self.node.clone(),
                access: self.access.clone(),
                table_functions: self.table_functions.clone(),
            }));
        }
        let namespace = NamespaceId::new(name)
            .ok()
            .filter(|ns| self.catalog.namespace_exists(ns));
        Some(Arc::new(NamespaceProvider {
            catalog: self.catalog.clone(),
            cold: self.cold.clone(),
            name: name.to_string(),
            namespace,
            access: self.access.clone(),
            table_functions: self.table_functions.clone(),
        }))
    }
}

/// One namespace as the session sees it; `namespace` is `None` when no
/// namespace has that name, and then every table in it is "not found".
#[derive(Debug)]
struct NamespaceProvider {
    catalog: Arc<Catalog>,
    cold: Arc<ColdTables>,
    name: String,
    namespace: Option<NamespaceId>,
    access: Access,
    table_functions: Arc<BTreeSet<String>>,
}

#[async_trait]
impl SchemaProvider for NamespaceProvider {
    /// The tables the session may read (what `information_schema` lists).
    fn table_names(&self) -> Vec<String> {
        let Some(namespace) = &self.namespace else {
            return Vec::new();
        };
        self.catalog
            .registry()
            .tables_in(namespace)
            .iter()
            .filter(|t| self.access.may_read(t.def()))
            .map(|t| t.def().name.to_string())
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        // DataFusion looks a table function's name up as a table before
        // calling the function: such a name resolves only when it is a
        // table here.
        let function_name = self.table_functions.contains(name);
        let Some(namespace) = &self.namespace else {
            if function_name {
                return Ok(None);
            }
            return Err(external(suggest::namespace_not_found(
                &self.catalog,
                &self.name,
            )));
        };
        let table = TableName::new(name)
            .ok()
            .and_then(|t| self.catalog.table(namespace, &t));
        let Some(table) = table else {
            if function_name {
                return Ok(None);
            }
            return Err(external(suggest::table_not_found(
                &self.catalog,
                namespace,
                name,
            )));
        };
        if let Err(denied) = self.access.check_read(table.def()) {
            if function_name {
                // Maybe a call of the function: refused only if scanned.
                return Ok(Some(Arc::new(RefusedTable {
                    table,
                    access: self.access.clone(),
                })));
            }
            return Err(external(denied));
        }
        let scope = table.def().scope_for(&self.access.user);
        Ok(Some(Arc::new(QuiverTable::new(
            table,
            self.cold.clone(),
            scope,
        ))))
    }

    fn table_exist(&self, name: &str) -> bool {
        let Some(namespace) = &self.namespace else {
            return false;
        };
        TableName::new(name)
            .ok()
            .is_some_and(|name| self.catalog.table(namespace, &name).is_some())
    }
}

/// A table the session may not read, under a table function's name:
/// planning a call of the function looks it up; a plan that reads it is
/// refused ([`refuse_unreadable`]), and so is a scan of it. It shows no
/// columns.
#[derive(Debug)]
pub(crate) struct RefusedTable {
    table: Arc<CachedTableData>,
    access: Access,
}

impl RefusedTable {
    fn refusal(&self) -> QueryError {
        match self.access.check_read(self.table.def()) {
            Err(denied) => denied,
            Ok(()) => QueryError::Internal("a refused table was found readable".to_string()),
        }
    }
}

/// Fails if `plan` reads a table the session was refused: one that
/// resolved only because a table function has its name.
pub(crate) fn refuse_unreadable(plan: &LogicalPlan) -> Result<(), QueryError> {
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
        {
            let provider: &dyn std::any::Any = provider.as_ref();
            if let Some(table) = provider.downcast_ref::<RefusedTable>() {
                refused = Some(table.refusal());
                return Ok(TreeNodeRecursion::Stop);
            }
        }
        Ok(TreeNodeRecursion::Continue)
    })?;
    refused.map_or(Ok(()), Err)
}

#[async_trait]
impl TableProvider for RefusedTable {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::empty())
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        _projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        Err(external(self.refusal()))
    }
}

/// A Quiver table as DataFusion scans it: the hot rows of one scope, and
/// its cold segments once it has flushed.
#[derive(Debug)]
pub struct QuiverTable {
    table: Arc<CachedTableData>,
    cold: Arc<ColdTables>,
    scope: Scope,
}

impl QuiverTable {
    pub fn new(table: Arc<CachedTableData>, cold: Arc<ColdTables>, scope: Scope) -> Self {
        Self { table, cold, scope }
    }

    /// The primary-key value `expr` pins, if it is `pk = literal`.
    fn key_filter(&self, expr: &Expr) -> Option<Value> {
        let pk = self.table.def().primary_key_column()?;
        let Expr::BinaryExpr(BinaryExpr {
            left,
            op: Operator::Eq,
            right,
        }) = expr
        else {
            return None;
        };
        let literal = match (left.as_ref(), right.as_ref()) {
            (Expr::Column(c), Expr::Literal(v, _)) | (Expr::Literal(v, _), Expr::Column(c))
                if c.name == pk.name =>
            {
                v
            }
            _ => return None,
        };
        literal_value(literal, pk)
    }
}

/// A literal as a stored value of `column`, cast as a comparison with it
/// would; `None` when it does not fit or is NULL.
pub(crate) fn literal_value(
    literal: &datafusion::scalar::ScalarValue,
    column: &ColumnDef,
) -> Option<Value> {
    let array = literal.to_array().ok()?;
    let value = array_to_values(&array, column).ok()?.pop()?;
    (!value.is_null()).then_some(value)
}

#[async_trait]
impl TableProvider for QuiverTable {
    fn schema(&self) -> SchemaRef {
        self.table.arrow_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Every filter is offered to the scan and also applied on top of it.
    /// The scan uses `pk = literal` for a point lookup in the hot store and
    /// any filter to prune segments, but it cannot promise exactness: a
    /// flush may publish segments between planning and the scan, and
    /// segments are pruned by file, row group and page, not by row.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> datafusion::error::Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let schema = self.table.arrow_schema();
        let def = self.table.def();
        let indices: Vec<usize> = match projection {
            Some(p) => p.clone(),
            None => (0..schema.fields().len()).collect(),
        };
        let projected = Arc::new(schema.project(&indices)?);
        // Filters offered here were answered Exact or Inexact above; key
        // filters with different values select nothing.
        let mut keys = filters.iter().filter_map(|f| self.key_filter(f));
        let point = match keys.next() {
            None => Point::All,
            Some(first) if keys.all(|k| k == first) => Point::Key(first),
            Some(_) => Point::Nothing,
        };
        // A read at a cut (a subscription's snapshot) brings the manifest
        // and hot rows of that moment; any other reads them as they stand.
        let (manifest, hot) = match state
            .config()
            .get_extension::<ReadPoint>()
            .filter(|point| point.scope == self.scope)
        {
            Some(point) => (point.manifest.clone(), point.hot.clone()),
            None => (
                self.cold.manifest(&self.scope),
                HotRows::current(self.cold.store().clone()),
            ),
        };
        let batch_size = state.config().batch_size().max(1);
        if manifest.segments.is_empty() {
            let columns = indices
                .iter()
                .map(|&i| match def.columns.get(i) {
                    Some(c) => OutputColumn::of(c),
                    None => {
                        debug_assert_eq!(schema.field(i).name(), SEQ_COLUMN);
                        OutputColumn::Seq
                    }
                })
                .collect();
            let partition = HotScan {
                source: Arc::new(ScanSource {
                    hot,
                    scope: self.scope.clone(),
                    schema: projected.clone(),
                    columns,
                    batch_size,
                    with_key: false,
                    with_deleted: false,
                    _manifest: manifest,
                }),
                point,
                limit,
            };
            return Ok(Arc::new(StreamingTableExec::try_new(
                projected,
                vec![Arc::new(partition)],
                None,
                [],
                false,
                limit,
            )?));
        }

        let hot_range = hot.key_range(&self.scope).map_err(external)?;
        let merge = needs_merge(
            &manifest,
            hot_range.as_ref().map(|(a, b)| (a.as_ref(), b.as_ref())),
        );
        let column_ids: Vec<u32> = indices
            .iter()
            .filter_map(|&i| def.columns.get(i).map(|c| c.id))
            .collect();
        let seq_projected = indices.iter().any(|&i| i >= def.columns.len());
        let tombstones = manifest.segments.iter().any(|s| s.tombstones > 0);
        let layout = InputLayout::new(def, column_ids, merge, seq_projected, tombstones);
        let mut hot_columns: Vec<OutputColumn> = layout
            .column_ids
            .iter()
            .map(|id| OutputColumn::of(def.columns.iter().find(|c| c.id == *id).expect("column")))
            .collect();
        if layout.has(SEQ_COLUMN) {
            hot_columns.push(OutputColumn::Seq);
        }
        if layout.has(quiver_store::DELETED_COLUMN) {
            hot_columns.push(OutputColumn::Deleted);
        }
        let hot = HotScan {
            source: Arc::new(ScanSource {
                hot,
                scope: self.scope.clone(),
                schema: layout.schema.clone(),
                columns: hot_columns,
                batch_size,
                with_key: merge,
                // Without overlap a hot delete marker hides nothing.
                with_deleted: merge,
                _manifest: manifest.clone(),
            }),
            point,
            limit: None,
        };
        let ordering = merge.then(|| layout.merge_ordering());
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();
        // A table whose rows are all in segments (a flushed, untouched
        // table) is read from its segments alone.
        if hot_range.is_some() || merge {
            inputs.push(Arc::new(StreamingTableExec::try_new(
                layout.schema.clone(),
                vec![Arc::new(hot)],
                None,
                ordering,
                false,
                None,
            )?));
        }
        inputs.extend(segment_scans(state, def, &layout, &manifest, filters).await?);
        let input = UnionExec::try_new(inputs)?;
        let outputs = indices
            .iter()
            .map(|&i| match def.columns.get(i) {
                Some(c) => layout.schema.index_of(&segment_column(c.id)),
                None => layout.schema.index_of(SEQ_COLUMN),
            })
            .collect::<std::result::Result<Vec<_>, _>>()?;
        let exact_rows =
            (!merge && !tombstones && hot_range.is_none()).then(|| manifest.rows() as usize);
        Ok(Arc::new(MergeExec::new(
            input, &layout, outputs, projected, manifest, exact_rows,
        )))
    }
}

/// One scope of a table as it stood at one moment: the manifest and the
/// hot rows of that moment. Set as an extension of a session's config,
/// it is what scans of that scope read.
#[derive(Debug)]
pub(crate) struct ReadPoint {
    pub(crate) scope: Scope,
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) hot: HotRows,
}

impl ReadPoint {
    /// The scope as it stands now. Take it where no commit to the scope
    /// can run (under the table's writer lock) to get a cut at a known
    /// `_seq`. The manifest is taken first: while it is held, a flush
    /// removes none of the hot rows it wrote to segments, so the two
    /// together hold every row.
    pub(crate) fn now(cold: &ColdTables, scope: &Scope) -> Self {
        let manifest = cold.manifest(scope);
        Self {
            scope: scope.clone(),
            manifest,
            hot: HotRows::frozen(cold.store().clone()),
        }
    }
}

#[derive(Debug, Clone)]
enum Point {
    All,
    Key(Value),
    Nothing,
}

/// A lazy scan of a table's hot rows in primary-key order.
#[derive(Debug)]
struct HotScan {
    source: Arc<ScanSource>,
    point: Point,
    limit: Option<usize>,
}

/// What every stream of a scan reads from and produces.
#[derive(Debug)]
struct ScanSource {
    hot: HotRows,
    scope: Scope,
    schema: SchemaRef,
    columns: Vec<OutputColumn>,
    batch_size: usize,
    /// Prepend each row's store key (`_key`), for merging with segments.
    with_key: bool,
    /// Keep delete markers, which hide older versions in segments.
    with_deleted: bool,
    /// The manifest the scan was planned with, held until it is done.
    _manifest: Arc<Manifest>,
}

impl ScanSource {
    fn batch(&self, rows: &[(&[u8], &StoredRow)]) -> Result<RecordBatch, QueryError> {
        let stored: Vec<&StoredRow> = rows.iter().map(|(_, r)| *r).collect();
        if !self.with_key {
            return rows_to_batch(&self.schema, &self.columns, &stored);
        }
        let values_schema = Arc::new(Schema::new(self.schema.fields()[1..].to_vec()));
        let values = rows_to_batch(&values_schema, &self.columns, &stored)?;
        let mut columns: Vec<ArrayRef> = vec![Arc::new(BinaryArray::from_iter_values(
            rows.iter().map(|(k, _)| *k),
        ))];
        columns.extend(values.columns().iter().cloned());
        let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
        RecordBatch::try_new_with_options(self.schema.clone(), columns, &options)
            .map_err(|e| QueryError::Internal(format!("building scan batch: {e}")))
    }
}

struct ScanState {
    scan: Arc<ScanSource>,
    after: Option<Box<[u8]>>,
    remaining: usize,
    done: bool,
}

impl PartitionStream for HotScan {
    fn schema(&self) -> &SchemaRef {
        &self.source.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let shared = self.source.clone();
        let schema = shared.schema.clone();
        let remaining = self.limit.unwrap_or(usize::MAX);
        match &self.point {
            Point::Nothing => empty_stream(schema),
            Point::Key(key) => {
                let key = shared.scope.key(key);
                let stream = futures::stream::once(async move {
                    let found = match &key {
                        Some(key) => shared.hot.get_row(key).map_err(external)?,
                        None => None,
                    };
                    let rows: Vec<(&[u8], &StoredRow)> = match (&key, &found) {
                        (Some(key), Some(row)) if shared.with_deleted || !row.deleted => {
                            vec![(key.as_slice(), row)]
                        }
                        _ => Vec::new(),
                    };
                    shared.batch(&rows).map_err(external)
                });
                Box::pin(RecordBatchStreamAdapter::new(schema, stream))
            }
            Point::All => {
                let state = ScanState {
                    scan: shared,
                    after: None,
                    remaining,
                    done: false,
                };
                let stream = futures::stream::unfold(state, |mut state| async move {
                    let batch = next_chunk(&mut state);
                    batch.map(|b| (b, state))
                });
                Box::pin(RecordBatchStreamAdapter::new(schema, stream))
            }
        }
    }
}

fn empty_stream(schema: SchemaRef) -> SendableRecordBatchStream {
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::empty(),
    ))
}

pub(crate) fn external(e: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(e))
}

/// Reads the next non-empty batch, or `None` at the end of the table.
fn next_chunk(
    state: &mut ScanState,
) -> Option<datafusion::error::Result<datafusion::arrow::record_batch::RecordBatch>> {
    let shared = state.scan.clone();
    while !state.done && state.remaining > 0 {
        let want = shared.batch_size.min(state.remaining);
        let chunk = match shared
            .hot
            .scan_rows(&shared.scope, state.after.as_deref(), want)
        {
            Ok(chunk) => chunk,
            Err(e) => {
                state.done = true;
                return Some(Err(external(e)));
            }
        };
        state.done = chunk.resume_after.is_none();
        state.after = chunk.resume_after;
        let live: Vec<(&[u8], &StoredRow)> = chunk
            .rows
            .iter()
            .map(|(k, r)| (k.as_ref(), r))
            .filter(|(_, r)| shared.with_deleted || !r.deleted)
            .take(state.remaining)
            .collect();
        if live.is_empty() {
            continue;
        }
        state.remaining -= live.len();
        return Some(shared.batch(&live).map_err(external));
    }
    None
}
