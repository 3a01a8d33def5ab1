//! The `system` namespace, read-only to SQL. Most of its tables are the
//! catalog's stored system tables, scanned like any table. Three describe
//! the running process and are computed at scan time: `settings` (the
//! effective configuration), `stats` (uptime, counts, sizes) and
//! `live_queries` (the live subscriptions); each is a [`LiveTable`] behind
//! one generic [`TableProvider`] adapter.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{SchemaProvider, Session, TableProvider};
use datafusion::common::DataFusionError;
use datafusion::execution::TaskContext;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::logical_expr::{Expr, TableType};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::streaming::{PartitionStream, StreamingTableExec};
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use quiver_catalog::{Catalog, SystemTable, arrow_type};
use quiver_common::{ColumnType, NodeId};
use quiver_config::SharedConfig;
use quiver_live::LiveQueryManager;

use crate::access::Access;
use crate::error::QueryError;
use crate::provider::{QuiverTable, external};
use crate::suggest;
use quiver_store::{ColdTables, Scope};

pub use quiver_catalog::SYSTEM_NAMESPACE;

/// What the system tables describe besides the catalog: the node itself.
#[derive(Debug)]
pub struct NodeInfo {
    pub node_id: NodeId,
    pub started_at: Instant,
    /// The configuration in effect.
    pub config: Arc<SharedConfig>,
    /// The node's live queries.
    pub live: Arc<LiveQueryManager>,
    pub counters: Arc<NodeCounters>,
    /// The scans' cache of segment footers and page indexes.
    pub footers: Arc<FileMetadataCache>,
}

/// Totals since the node started.
#[derive(Debug, Default)]
pub struct NodeCounters {
    /// Rows returned to clients.
    pub rows_read: AtomicU64,
    /// Rows inserted, updated or deleted.
    pub rows_written: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_micros: AtomicU64,
    pub compactions: AtomicU64,
    pub compaction_micros: AtomicU64,
    /// Statements answered without query planning: literal INSERTs and
    /// primary-key SELECTs.
    pub fast_path_statements: AtomicU64,
}

/// The node's gauges and counters at one moment: what `system.stats`
/// shows and `/metrics` exports.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStats {
    pub uptime_seconds: u64,
    pub namespaces: u64,
    pub tables: u64,
    pub views: u64,
    /// Approximate bytes of hot rows (RocksDB files and memtables).
    pub hot_bytes: u64,
    /// Bytes of current Parquet segments.
    pub cold_bytes: u64,
    pub websocket_connections: u64,
    pub live_subscriptions: u64,
    pub notifications_sent: u64,
    pub notifications_overflowed: u64,
    pub rows_read: u64,
    pub rows_written: u64,
    pub flushes: u64,
    pub flush_seconds: f64,
    pub compactions: u64,
    pub compaction_seconds: f64,
    pub fast_path_statements: u64,
    /// RocksDB memtables, active and immutable.
    pub memtable_bytes: u64,
    /// RocksDB index and filter blocks held outside its block cache.
    pub table_reader_bytes: u64,
    /// RocksDB's cached blocks.
    pub block_cache_bytes: u64,
    /// Decoded segment pages cached for reads by key.
    pub page_cache_bytes: u64,
    /// Segment footers held by the scans' metadata cache.
    pub cached_footers: u64,
}

impl NodeInfo {
    pub fn stats(&self, catalog: &Catalog) -> NodeStats {
        let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let seconds = |c: &AtomicU64| c.load(Ordering::Relaxed) as f64 / 1e6;
        let live = self.live.stats();
        let memory = catalog.store().memory();
        NodeStats {
            uptime_seconds: self.started_at.elapsed().as_secs(),
            namespaces: catalog.namespaces().len() as u64,
            tables: catalog.registry().len() as u64,
            views: catalog.views().len() as u64,
            hot_bytes: catalog.store().approximate_row_bytes(),
            cold_bytes: catalog.tier().cold_bytes(),
            websocket_connections: live.connections,
            live_subscriptions: live.subscriptions,
            notifications_sent: live.notifications,
            notifications_overflowed: live.overflows,
            rows_read: count(&self.counters.rows_read),
            rows_written: count(&self.counters.rows_written),
            flushes: count(&self.counters.flushes),
            flush_seconds: seconds(&self.counters.flush_micros),
            compactions: count(&self.counters.compactions),
            compaction_seconds: seconds(&self.counters.compaction_micros),
            fast_path_statements: count(&self.counters.fast_path_statements),
            memtable_bytes: memory.memtables,
            table_reader_bytes: memory.table_readers,
            block_cache_bytes: memory.block_cache,
            page_cache_bytes: catalog.tier().cold().cached_page_bytes(),
            cached_footers: self.footers.len() as u64,
        }
    }
}

/// A system table computed at scan time: its schema, and its rows as of
/// now.
pub(crate) trait LiveTable: std::fmt::Debug + Send + Sync {
    fn schema(&self) -> SchemaRef;
    fn rows(&self, catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch>;
}

const LIVE_TABLES: [&str; 3] = ["live_queries", "settings", "stats"];

fn live_table(name: &str) -> Option<Arc<dyn LiveTable>> {
    Some(match name {
        "live_queries" => Arc::new(LiveQueries),
        "settings" => Arc::new(Settings),
        "stats" => Arc::new(Stats),
        _ => return None,
    })
}

/// The names of every system table, sorted.
pub(crate) fn system_table_names() -> Vec<&'static str> {
    let mut names: Vec<_> = SystemTable::ALL.iter().map(|t| t.name()).collect();
    names.extend(LIVE_TABLES);
    names.sort_unstable();
    names
}

pub(crate) fn is_system_table(name: &str) -> bool {
    SystemTable::from_name(name).is_some() || LIVE_TABLES.contains(&name)
}

/// DataFusion's view of the `system` namespace.
#[derive(Debug)]
pub(crate) struct SystemSchema {
    pub(crate) catalog: Arc<Catalog>,
    pub(crate) cold: Arc<ColdTables>,
    pub(crate) node: Arc<NodeInfo>,
    /// Only dba and system may read system tables.
    pub(crate) access: Access,
    /// Names DataFusion looks up as tables before calling the function.
    pub(crate) table_functions: Arc<BTreeSet<String>>,
}

#[async_trait]
impl SchemaProvider for SystemSchema {
    fn table_names(&self) -> Vec<String> {
        if !self.access.is_admin() {
            return Vec::new();
        }
        system_table_names()
            .into_iter()
            .map(str::to_string)
            .collect()
    }

    async fn table(&self, name: &str) -> Result<Option<Arc<dyn TableProvider>>, DataFusionError> {
        if !is_system_table(name) {
            if self.table_functions.contains(name) {
                return Ok(None);
            }
            let hint = suggest::did_you_mean(name, system_table_names());
            let hint = hint.replace("mean ", "mean system.");
            return Err(external(QueryError::TableNotFound {
                name: format!("system.{name}"),
                hint,
            }));
        }
        self.access
            .require_admin(&format!("reading system.{name}"))
            .map_err(external)?;
        if let Some(table) = self.catalog.system_table(name) {
            let scope = Scope::table(table.def().id.0);
            return Ok(Some(Arc::new(QuiverTable::new(
                table,
                self.cold.clone(),
                scope,
            ))));
        }
        Ok(live_table(name).map(|table| {
            Arc::new(LiveTableProvider {
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

/// Adapts any [`LiveTable`] to DataFusion; rows are produced when the
/// scan executes.
#[derive(Debug)]
struct LiveTableProvider {
    table: Arc<dyn LiveTable>,
    catalog: Arc<Catalog>,
    node: Arc<NodeInfo>,
}

#[async_trait]
impl TableProvider for LiveTableProvider {
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
        let partition = LiveScan {
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
struct LiveScan {
    table: Arc<dyn LiveTable>,
    catalog: Arc<Catalog>,
    node: Arc<NodeInfo>,
    schema: SchemaRef,
}

impl PartitionStream for LiveScan {
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

fn batch(schema: SchemaRef, columns: Vec<ArrayRef>) -> datafusion::error::Result<RecordBatch> {
    Ok(RecordBatch::try_new(schema, columns)?)
}

#[derive(Debug)]
struct Settings;

impl LiveTable for Settings {
    fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new(vec![text("name", false), text("value", false)]))
    }

    fn rows(&self, _catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let settings = node.config.get().settings();
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from_iter_values(
                    settings.iter().map(|(k, _)| k.as_str()),
                )),
                Arc::new(StringArray::from_iter_values(
                    settings.iter().map(|(_, v)| v.as_str()),
                )),
            ],
        )
    }
}

#[derive(Debug)]
struct LiveQueries;

impl LiveTable for LiveQueries {
    fn schema(&self) -> SchemaRef {
        let timestamp = |name: &str, nullable: bool| {
            Field::new(name, arrow_type(ColumnType::Timestamp), nullable)
        };
        Arc::new(Schema::new(vec![
            text("live_id", false),
            Field::new("connection_id", DataType::Int64, false),
            text("subscription_id", false),
            text("user_id", false),
            text("namespace_id", false),
            text("table_name", false),
            text("query", false),
            text("options", false),
            timestamp("created_at", false),
            timestamp("last_update", true),
            Field::new("changes", DataType::Int64, false),
            text("node_id", false),
        ]))
    }

    fn rows(&self, _catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let all = node.live.subscriptions();
        let strings = |f: &dyn Fn(&quiver_live::Subscription) -> String| {
            Arc::new(StringArray::from_iter_values(all.iter().map(|s| f(s)))) as ArrayRef
        };
        batch(
            self.schema(),
            vec![
                strings(&|s| s.live_id.to_string()),
                Arc::new(Int64Array::from_iter_values(
                    all.iter().map(|s| s.connection as i64),
                )),
                strings(&|s| s.subscription_id.clone()),
                strings(&|s| s.user.to_string()),
                strings(&|s| s.plan.namespace.clone()),
                strings(&|s| s.plan.table.clone()),
                strings(&|s| s.query.clone()),
                strings(&|s| s.options.clone()),
                Arc::new(TimestampMicrosecondArray::from_iter_values(
                    all.iter().map(|s| s.created_at),
                )),
                Arc::new(TimestampMicrosecondArray::from_iter(
                    all.iter().map(|s| Some(s.last_update()).filter(|t| *t > 0)),
                )),
                Arc::new(Int64Array::from_iter_values(
                    all.iter().map(|s| s.changes() as i64),
                )),
                strings(&|_| node.node_id.to_string()),
            ],
        )
    }
}

#[derive(Debug)]
struct Stats;

impl LiveTable for Stats {
    fn schema(&self) -> SchemaRef {
        let int = |name: &str| Field::new(name, DataType::Int64, false);
        let float = |name: &str| Field::new(name, DataType::Float64, false);
        Arc::new(Schema::new(vec![
            text("node_id", false),
            int("uptime_seconds"),
            int("namespace_count"),
            int("table_count"),
            int("view_count"),
            int("hot_bytes"),
            int("cold_bytes"),
            int("websocket_connections"),
            int("live_subscriptions"),
            int("notifications_sent"),
            int("notifications_overflowed"),
            int("rows_read"),
            int("rows_written"),
            int("flushes"),
            float("flush_seconds"),
            int("compactions"),
            float("compaction_seconds"),
            int("fast_path_statements"),
            int("memtable_bytes"),
            int("table_reader_bytes"),
            int("block_cache_bytes"),
            int("page_cache_bytes"),
            int("cached_footers"),
        ]))
    }

    fn rows(&self, catalog: &Catalog, node: &NodeInfo) -> datafusion::error::Result<RecordBatch> {
        let stats = node.stats(catalog);
        let int = |v: u64| Arc::new(Int64Array::from(vec![v as i64])) as ArrayRef;
        let float = |v: f64| Arc::new(Float64Array::from(vec![v])) as ArrayRef;
        batch(
            self.schema(),
            vec![
                Arc::new(StringArray::from(vec![node.node_id.as_str()])),
                int(stats.uptime_seconds),
                int(stats.namespaces),
                int(stats.tables),
                int(stats.views),
                int(stats.hot_bytes),
                int(stats.cold_bytes),
                int(stats.websocket_connections),
                int(stats.live_subscriptions),
                int(stats.notifications_sent),
                int(stats.notifications_overflowed),
                int(stats.rows_read),
                int(stats.rows_written),
                int(stats.flushes),
                float(stats.flush_seconds),
                int(stats.compactions),
                float(stats.compaction_seconds),
                int(stats.fast_path_statements),
                int(stats.memtable_bytes),
                int(stats.table_reader_bytes),
                int(stats.block_cache_bytes),
                int(stats.page_cache_bytes),
                int(stats.cached_footers),
            ],
        )
    }
}
