//! The `system` namespace: read-only tables describing the node. Each is a
//! [`SystemTable`] (a schema and a way to produce its rows) behind one
//! generic [`TableProvider`] adapter. They are computed from the catalog at
//! scan time.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt32Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use std::time::Instant;

use quiver_catalog::Catalog;
use quiver_common::NodeId;

/// The namespace of the system tables; no user namespace may take it.
pub const SYSTEM_NAMESPACE: &str = "system";

/// What the system tables describe besides the catalog: the node itself.
#[derive(Debug)]
pub struct NodeInfo {
    pub node_id: NodeId,
    pub started_at: Instant,
    /// The effective configuration, secrets masked.
    pub settings: Vec<(String, String)>,
}

/// A system table: its schema, and its rows as of now.
pub(crate) trait SystemTable: std::fmt::Debug + Send + Sync {
    fn schema(&self) -> SchemaRef;
    fn rows(&self, catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch>;
}

/// The names of the system tables.
pub(crate) const SYSTEM_TABLES: [&str; 6] = [
    "columns",
    "namespaces",
    "settings",
    "stats",
    "tables",
    "views",
];

fn system_table(name: &str) -> Option<Arc<dyn SystemTable>> {
    Some(match name {
        "namespaces" => Arc::new(Namespaces),
        "tables" => Arc::new(Tables),
        "columns" => Arc::new(Columns),
        "views" => Arc::new(Views),
        "settings" => Arc::new(Settings),
        "stats" => Arc::new(Stats),
        _ => return None,
    })
}

pub(crate) fn is_system_table(name: &str) -> bool {
    SYSTEM_TABLES.contains(&name)
}

/// DataFusion's view of the `system` namespace.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) node: Arc<NodeInfo>,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        SYSTEM_TABLES.iter().map(|t| t.to_string()).collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        Ok(system_table(name).map(|table| {
            Arc::new(SystemTableProvider {
                table,
                catalog: self.catalog.clone(),
                node: self.node.clone(),
            }) as Arc<dyn TableProvider>
        }))
    }

    fn table_exist(&self, name: &str) -> bool {
        is_system_table(name)
    }
}

/// Adapts any [`SystemTable`] to DataFusion; rows are produced when the
/// scan executes.
#[derive(Debug)]
struct SystemTableProvider {
    table: Arc<dyn SystemTable>,
    catalog: Arc<Catalog>,
    node: Arc<NodeInfo>,
}

#[async_trait]
impl TableProvider for SystemTableProvider {
    fn schema(&self) -> SchemaRef {
        self.table.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let partition = SystemScan {
            table: self.table.clone(),
            catalog: self.catalog.clone(),
            node: self.node.clone(),
            schema: self.table.schema(),
        };
        Ok(Arc::new(StreamingTableExec::try_new(
            self.table.schema(),
            vec![Arc::new(partition)],
            projection,
            [],
            false,
            limit,
        )?))
    }
}

#[derive(Debug)]
struct SystemScan {
    table: Arc<dyn SystemTable>,
    catalog: Arc<Catalog>,
    node: Arc<NodeInfo>,
    schema: SchemaRef,
}

impl PartitionStream for SystemScan {
    fn schema(&self) -> &SchemaRef {
        &self.schema
    }

    fn execute(&self, _ctx: Arc<TaskContext>) -> SendableRecordBatchStream {
        let (table, catalog, node) = (self.table.clone(), self.catalog.clone(), self.node.clone());
        let stream = futures::stream::once(async move { table.rows(&catalog, &node) });
        Box::pin(RecordBatchStreamAdapter::new(self.schema.clone(), stream))
    }
}

fn text(name: &str, nullable: bool) -> Field {
    Field::new(name, DataType::Utf8, nullable)
}

fn timestamp(name: &str) -> Field {
    Field::new(
        name,
        DataType::Timestamp(TimeUnit::Microsecond, None),
        false,
    )
}

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> datafusion::error::Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[derive(Debug)]
struct Namespaces;

impl SystemTable for Namespaces {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            text("namespace_id", false),
            Field::new("table_count", DataType::Int64, false),
            Field::new("view_count", DataType::Int64, false),
            timestamp("created_at"),
        ]))
    }

    fn rows(&self, catalog: &Catalog, _node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let namespaces = catalog.namespaces();
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    namespaces.iter().map(|n| n.name.as_str()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    namespaces
                        .iter()
                        .map(|n| catalog.registry().tables_in(&n.name).len() as i64),
                )),
                Arc::new(Int64Array::from_iter_values(
                    namespaces
                        .iter()
                        .map(|n| catalog.views_in(&n.name).len() as i64),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    namespaces.iter().map(|n| n.created_at),
                )),
            ],
        )
    }
}

#[derive(Debug)]
struct Tables;

impl SystemTable for Tables {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            text("namespace_id", false),
            text("table_name", false),
            text("table_type", false),
            Field::new("table_id", DataType::Int64, false),
            Field::new("schema_version", DataType::UInt32, false),
            Field::new("column_count", DataType::UInt32, false),
            text("primary_key", true),
            text("flush_policy", true),
            Field::new("ttl_seconds", DataType::Int64, true),
            text("access_level", true),
            timestamp("created_at"),
        ]))
    }

    fn rows(&self, catalog: &Catalog, _node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let tables = catalog.tables();
        let defs: Vec<_> = tables.iter().map(|t| t.def()).collect();
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.namespace.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    defs.iter().map(|d| d.table_type.as_str()),
                )),
                Arc::new(Int64Array::from_iter_values(
                    defs.iter().map(|d| d.id.0 as i64),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    defs.iter().map(|d| d.schema_version),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    defs.iter().map(|d| d.columns.len() as u32),
                )),
                Arc::new(StringArray::from_iter(
                    defs.iter()
                        .map(|d| d.primary_key_column().map(|c| c.name.clone())),
                )),
                Arc::new(StringArray::from_iter(
                    defs.iter()
                        .map(|d| d.options.flush_policy.map(|p| p.to_string())),
                )),
                Arc::new(Int64Array::from_iter(
                    defs.iter().map(|d| d.options.ttl_seconds.map(|t| t as i64)),
                )),
                Arc::new(StringArray::from_iter(
                    defs.iter()
                        .map(|d| d.options.access_level.map(|a| a.as_str())),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    defs.iter().map(|d| d.created_at),
                )),
            ],
        )
    }
}

#[derive(Debug)]
struct Columns;

impl SystemTable for Columns {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            text("namespace_id", false),
            text("table_name", false),
            text("column_name", false),
            Field::new("column_id", DataType::UInt32, false),
            Field::new("ordinal", DataType::UInt32, false),
            text("data_type", false),
            Field::new("is_nullable", DataType::Boolean, false),
            Field::new("is_primary_key", DataType::Boolean, false),
            text("default_value", true),
        ]))
    }

    fn rows(&self, catalog: &Catalog, _node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let tables = catalog.tables();
        let columns: Vec<_> = tables
            .iter()
            .flat_map(|t| {
                let def = t.def();
                def.columns
                    .iter()
                    .enumerate()
                    .map(move |(i, c)| (def, i, c))
            })
            .collect();
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    columns.iter().map(|(d, _, _)| d.namespace.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    columns.iter().map(|(d, _, _)| d.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    columns.iter().map(|(_, _, c)| c.name.as_str()),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    columns.iter().map(|(_, _, c)| c.id),
                )),
                Arc::new(UInt32Array::from_iter_values(
                    columns.iter().map(|(_, i, _)| *i as u32 + 1),
                )),
                Arc::new(StringArray::from_iter_values(
                    columns.iter().map(|(_, _, c)| c.column_type.to_string()),
                )),
                Arc::new(BooleanArray::from_iter(
                    columns.iter().map(|(_, _, c)| Some(c.nullable)),
                )),
                Arc::new(BooleanArray::from_iter(
                    columns
                        .iter()
                        .map(|(d, _, c)| Some(d.primary_key == Some(c.id))),
                )),
                Arc::new(StringArray::from_iter(columns.iter().map(|(_, _, c)| {
                    c.default.as_ref().map(|v| v.sql_text(c.column_type))
                }))),
            ],
        )
    }
}

#[derive(Debug)]
struct Views;

impl SystemTable for Views {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            text("namespace_id", false),
            text("view_name", false),
            text("definition", false),
            text("reads", false),
            timestamp("created_at"),
        ]))
    }

    fn rows(&self, catalog: &Catalog, _node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let views = catalog.views();
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    views.iter().map(|v| v.namespace.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    views.iter().map(|v| v.name.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    views.iter().map(|v| v.sql.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    views.iter().map(|v| v.reads.join(", ")),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    views.iter().map(|v| v.created_at),
                )),
            ],
        )
    }
}

#[derive(Debug)]
struct Settings;

impl SystemTable for Settings {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![text("name", false), text("value", false)]))
    }

    fn rows(&self, _catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    node.settings.iter().map(|(k, _)| k.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    node.settings.iter().map(|(_, v)| v.as_str()),
                )),
            ],
        )
    }
}

#[derive(Debug)]
struct Stats;

impl SystemTable for Stats {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![
            text("node_id", false),
            Field::new("uptime_seconds", DataType::Int64, false),
            Field::new("namespace_count", DataType::Int64, false),
            Field::new("table_count", DataType::Int64, false),
            Field::new("view_count", DataType::Int64, false),
            Field::new("hot_bytes", DataType::Int64, false),
        ]))
    }

    fn rows(&self, catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let namespaces = catalog.namespaces();

        let one = |v: i64| Arc::new(Int64Array::from(vec![v])) as ArrayRef;
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from(vec![node.node_id.as_str()])),
                one(node.started_at.elapsed().as_secs() as i64),
                one(namespaces.len() as i64),
                one(catalog.registry().len() as i64),
                one(catalog.views().len() as i64),
                one(catalog.store().approximate_row_bytes() as i64),
            ],
        )
    }
}
