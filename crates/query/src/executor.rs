//! The query service: parses a request's SQL, binds its parameters and runs
//! each statement against the catalog, DataFusion and the store.

use std::collections::BTreeSet;
use std::sync::Arc;

use dashmap::DashMap;
use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::CatalogProviderList;
use datafusion::catalog::MemoryCatalogProviderList;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::context::SessionState;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion::sql::sqlparser::ast::{ObjectName, ObjectType, Statement};
use quiver_catalog::{CachedTableData, Catalog, PasswordCost, TableDef, TableType};
use quiver_common::{NamespaceId, NodeId, Role, TableId, TableName, UserId};
use quiver_config::{Config, LimitsConfig, SharedConfig};

use quiver_live::LiveQueryManager;
use quiver_store::{ColdTables, Scope};

use crate::access::Access;
use crate::dialect::{QuiverStatement, TextKeyRead, bind_params, parse};
use crate::error::{QueryError, Result};
use crate::fast::{KeyRead, PointSelect, key_select, literal_insert};
use crate::provider::{CATALOG_NAME, QuiverCatalogProvider, relation_name};
use crate::system::{self, NodeCounters, NodeInfo, SYSTEM_NAMESPACE};
use crate::{ddl, dml, suggest};

/// Most rows of a literal INSERT that [`QuerySession::runs_directly`]
/// accepts: about a tenth of a millisecond of work.
pub const DIRECT_INSERT_ROWS: usize = 100;

/// What one statement produced.
pub enum StatementOutput {
    /// A result set, streamed batch by batch.
    Rows(SendableRecordBatchStream),
    /// DDL or DML: rows affected and a human-readable message.
    Done { row_count: u64, message: String },
}

impl std::fmt::Debug for StatementOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Rows(_) => f.write_str("Rows(..)"),
            Self::Done { row_count, message } => write!(f, "Done({row_count}, {message})"),
        }
    }
}

/// Built once per node: the catalog, the DataFusion session template and
/// the per-table writer locks.
pub struct QueryEngine {
    pub(crate) catalog: Arc<Catalog>,
    cold: Arc<ColdTables>,
    password_cost: PasswordCost,
    node: Arc<NodeInfo>,
    base_state: SessionState,
    /// Names of the table functions (`generate_series`, `range`, ...):
    /// DataFusion looks such a name up as a table too, before it calls
    /// the function.
    pub(crate) table_functions: Arc<BTreeSet<String>>,
    /// Serializes writers of one table (check-then-write of primary keys).
    /// An async mutex: writers hold it while DataFusion evaluates their
    /// `WHERE`, which awaits.
    writers: DashMap<TableId, Arc<tokio::sync::Mutex<()>>>,
}

/// What a [`QueryEngine`] is built from; the composition root builds
/// these parts and hands the same ones to whatever else uses them.
#[derive(Debug, Clone)]
pub struct EngineParts {
    pub catalog: Arc<Catalog>,
    /// Every table's cold segments (the catalog's tier).
    pub cold: Arc<ColdTables>,
    pub live: Arc<LiveQueryManager>,
    pub counters: Arc<NodeCounters>,
    pub config: Arc<SharedConfig>,
    pub node_id: NodeId,
}

impl std::fmt::Debug for QueryEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueryEngine").finish_non_exhaustive()
    }
}

impl QueryEngine {
    /// Builds the engine; the `[datafusion]` options apply to every
    /// session and are rejected here if unknown or invalid.
    pub fn new(parts: EngineParts) -> Result<Self> {
        let EngineParts {
            catalog,
            cold,
            live,
            counters,
            config: shared,
            node_id,
        } = parts;
        let config = shared.get();
        let datafusion_options = config.datafusion.options();
        let auth = config.auth.clone();
        // Spill files of an earlier run are of no use to this one.
        let spill_dir = config.storage.data_path.join("tmp");
        let _ = std::fs::remove_dir_all(&spill_dir);
        std::fs::create_dir_all(&spill_dir)
            .map_err(|e| QueryError::Internal(format!("creating {}: {e}", spill_dir.display())))?;
        let runtime = crate::merge::scan_runtime(
            &cold,
            config.limits.query_memory_bytes,
            spill_dir,
            config.limits.max_spill_bytes,
        )?;
        let node = Arc::new(NodeInfo {
            node_id,
            started_at: std::time::Instant::now(),
            config: shared,
            live,
            counters,
            footers: runtime.cache_manager.get_file_metadata_cache(),
        });
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_create_default_catalog_and_schema(false)
            .with_default_catalog_and_schema(CATALOG_NAME, quiver_catalog::DEFAULT_NAMESPACE);
        for (key, value) in &datafusion_options {
            config.options_mut().set(key, value).map_err(|e| {
                QueryError::invalid(format!("invalid [datafusion] option {key} = {value}: {e}"))
            })?;
        }
        // Each session gets its own catalog list, bound to its user.
        let mut base_state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_catalog_list(Arc::new(MemoryCatalogProviderList::new()))
            .with_default_features()
            .build();
        crate::functions::bound_generators(&mut base_state)?;
        let table_functions = Arc::new(base_state.table_functions().keys().cloned().collect());
        Ok(Self {
            catalog,
            cold,
            password_cost: PasswordCost {
                memory_kib: auth.password_memory_kib,
                iterations: auth.password_iterations,
            },
            node,
            base_state,
            table_functions,
            writers: DashMap::new(),
        })
    }

    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// Every table's cold segments.
    pub fn cold(&self) -> &Arc<ColdTables> {
        &self.cold
    }

    /// Appends an Arrow batch to a table without SQL (bulk loading);
    /// see [`dml::append_batch`].
    pub async fn append_batch(
        &self,
        namespace: &str,
        table: &str,
        batch: &RecordBatch,
    ) -> Result<u64> {
        dml::append_batch(self, namespace, table, batch).await
    }

    /// Hashes a password with the configured cost, off the async threads.
    pub async fn hash_password(&self, password: String) -> Result<String> {
        if password.is_empty() {
            return Err(QueryError::invalid(
                "a password must not be empty".to_string(),
            ));
        }
        let cost = self.password_cost;
        tokio::task::spawn_blocking(move || quiver_catalog::hash_password(&password, cost))
            .await
            .map_err(|e| QueryError::Internal(e.to_string()))?
            .map_err(|e| QueryError::Internal(e.to_string()))
    }

    /// Counts `rows` written to `scope` by a committed statement, toward
    /// its flush policy and the node's totals.
    pub(crate) fn committed(&self, scope: &Scope, rows: u64) {
        self.cold.pending().note(scope, rows);
        self.node
            .counters
            .rows_written
            .fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
    }

    /// Counts rows a request's statements returned, toward the node's
    /// totals.
    pub fn note_rows_read(&self, rows: u64) {
        self.node
            .counters
            .rows_read
            .fetch_add(rows, std::sync::atomic::Ordering::Relaxed);
    }

    /// Whether SQL number literals with a fraction or exponent are
    /// decimals rather than floats (a DataFusion session option).
    pub(crate) fn floats_as_decimal(&self) -> bool {
        self.base_state
            .config()
            .options()
            .sql_parser
            .parse_float_as_decimal
    }

    /// Rows per row group of new segments.
    pub(crate) fn row_group_rows(&self) -> usize {
        self.config().flush.row_group_rows
    }

    /// The node this engine serves: identity, start time, settings,
    /// counters; for `/health`, `/metrics` and `system.stats`.
    pub fn node_info(&self) -> Arc<NodeInfo> {
        self.node.clone()
    }

    pub(crate) fn node(&self) -> &NodeInfo {
        &self.node
    }

    /// The memory pool running queries and staged writes share.
    pub(crate) fn memory(&self) -> &Arc<dyn MemoryPool> {
        &self.base_state.runtime_env().memory_pool
    }

    pub(crate) fn live(&self) -> &Arc<LiveQueryManager> {
        &self.node.live
    }

    /// The configuration in effect now.
    pub fn config(&self) -> Arc<Config> {
        self.node.config.get()
    }

    pub fn limits(&self) -> LimitsConfig {
        self.config().limits
    }

    /// Checks a request's size limits, splits and parses its statements and
    /// binds `params` (only allowed with a single statement).
    pub fn prepare(&self, sql: &str, params: &[serde_json::Value]) -> Result<Vec<QuiverStatement>> {
        let limits = self.limits();
        if sql.len() > limits.max_sql_bytes {
            return Err(QueryError::SqlTooLong {
                len: sql.len(),
                limit: limits.max_sql_bytes,
            });
        }
        if params.len() > limits.max_params {
            return Err(QueryError::InvalidParameter(format!(
                "{} parameters given, more than the limit of {} ([limits] max_params)",
                params.len(),
                limits.max_params
            )));
        }
        // The common write and read need neither sqlparser nor planning.
        let floats_as_decimal = self.floats_as_decimal();
        let mut statements =
            if let Some(insert) = literal_insert::recognize(sql, params, floats_as_decimal) {
                vec![QuiverStatement::InsertLiterals(Box::new(insert))]
            } else if let Some(read) = key_select::recognize(sql, params, floats_as_decimal) {
                vec![QuiverStatement::KeySelect(Box::new(TextKeyRead {
                    read,
                    sql: sql.to_string(),
                    params: params.to_vec(),
                }))]
            } else {
                parse(sql)?
            };
        if statements.is_empty() {
            return Err(QueryError::EmptySql);
        }
        if statements.len() > limits.max_statements {
            return Err(QueryError::TooManyStatements {
                count: statements.len(),
                limit: limits.max_statements,
            });
        }
        if statements.len() > 1 && !params.is_empty() {
            return Err(QueryError::ParamsWithBatch(statements.len()));
        }
        let first = match statements.first_mut() {
            Some(QuiverStatement::ExecuteAs { statement, .. }) => Some(statement.as_mut()),
            other => other,
        };
        match first {
            Some(QuiverStatement::Standard(statement)) => bind_params(statement, params)?,
            // Bound while it was recognized.
            Some(QuiverStatement::InsertLiterals(_) | QuiverStatement::KeySelect(_)) => {}
            _ if !params.is_empty() => {
                return Err(QueryError::InvalidParameter(
                    "parameters can only be used in SELECT, INSERT, UPDATE and DELETE".into(),
                ));
            }
            _ => {}
        }
        Ok(statements)
    }

    /// A session for one request, with `namespace` (or `default`) as the
    /// namespace of unqualified table names.
    pub fn session(
        self: &Arc<Self>,
        namespace: Option<&str>,
        user: UserId,
        role: Role,
    ) -> Result<QuerySession> {
        let namespace = match namespace {
            Some(ns) => NamespaceId::new(ns)
                .map_err(|e| QueryError::InvalidParameter(format!("invalid namespace_id: {e}")))?,
            None => {
                NamespaceId::new(quiver_catalog::DEFAULT_NAMESPACE).expect("valid built-in name")
            }
        };
        Ok(QuerySession {
            engine: self.clone(),
            namespace,
            access: Access::new(user, role),
            bounded_writes: true,
        })
    }

    /// Removes what the engine keeps for a dropped table, its segment
    /// files included.
    pub(crate) async fn forget_table(&self, table: TableId) -> Result<()> {
        {
            // A subscription registering now finishes first, then ends.
            let lock = self.writer_lock(table);
            let _writers = lock.lock().await;
            self.live().end_table(table.0, "the table was dropped");
        }
        self.writers.remove(&table);
        Ok(self.cold.drop_table(table.0).await?)
    }

    pub(crate) fn writer_lock(&self, table: TableId) -> Arc<tokio::sync::Mutex<()>> {
        self.writers.entry(table).or_default().clone()
    }
}

/// What a statement means to do with a table it names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    Read,
    Write,
}

/// One request's execution state: the current namespace (changed by `USE`)
/// and the user it runs as.
#[derive(Debug)]
pub struct QuerySession {
    pub(crate) engine: Arc<QueryEngine>,
    pub(crate) namespace: NamespaceId,
    /// Who the session acts as; every table it resolves is checked
    /// against it.
    pub(crate) access: Access,
    /// Whether a statement's writes are held to `[limits] max_write_rows`.
    pub(crate) bounded_writes: bool,
}

pub(crate) fn batch_stream(batch: RecordBatch) -> SendableRecordBatchStream {
    let schema = batch.schema();
    Box::pin(RecordBatchStreamAdapter::new(
        schema,
        futures::stream::iter([Ok(batch)]),
    ))
}

pub(crate) fn done(row_count: u64, message: impl Into<String>) -> StatementOutput {
    StatementOutput::Done {
        row_count,
        message: message.into(),
    }
}

impl QuerySession {
    pub fn user(&self) -> &UserId {
        &self.access.user
    }

    pub fn role(&self) -> Role {
        self.access.role
    }

    pub fn namespace(&self) -> &NamespaceId {
        &self.namespace
    }

    /// This session's engine and namespace, as `user` with `role`.
    pub(crate) fn acting_as(&self, user: UserId, role: Role) -> QuerySession {
        QuerySession {
            engine: self.engine.clone(),
            namespace: self.namespace.clone(),
            access: Access {
                impersonated: true,
                ..Access::new(user, role)
            },
            bounded_writes: self.bounded_writes,
        }
    }

    /// The rows of `def` this session reads and writes: the session
    /// user's own in a per-user table.
    pub(crate) fn scope(&self, def: &TableDef) -> Scope {
        def.scope_for(&self.access.user)
    }

    pub(crate) fn engine(&self) -> &QueryEngine {
        &self.engine
    }

    /// A DataFusion context whose unqualified names resolve in the current
    /// namespace and whose per-user tables hold the session user's rows.
    pub(crate) fn context(&self) -> SessionContext {
        let engine = &self.engine;
        let catalogs = MemoryCatalogProviderList::new();
        catalogs.register_catalog(
            CATALOG_NAME.to_string(),
            Arc::new(QuiverCatalogProvider::new(
                engine.catalog.clone(),
                engine.cold.clone(),
                engine.node.clone(),
                self.access.clone(),
                engine.table_functions.clone(),
            )),
        );
        let mut state = SessionStateBuilder::new_from_existing(engine.base_state.clone())
            .with_catalog_list(Arc::new(catalogs))
            .build();
        state.config_mut().options_mut().catalog.default_schema = self.namespace.to_string();
        SessionContext::new_with_state(state)
    }

    /// Resolves `ns.t` or `t` to a table of the catalog that the session
    /// may use for `intent`.
    pub(crate) fn resolve_table(
        &self,
        name: &ObjectName,
        intent: Intent,
    ) -> Result<Arc<CachedTableData>> {
        let table = self.find_table(name)?;
        match intent {
            Intent::Read => self.access.check_read(table.def())?,
            Intent::Write => self.access.check_write(table.def())?,
        }
        Ok(table)
    }

    fn find_table(&self, name: &ObjectName) -> Result<Arc<CachedTableData>> {
        let (namespace, table) = self.split_name(name)?;
        let catalog = &self.engine.catalog;
        if namespace.as_str() == SYSTEM_NAMESPACE {
            return Err(QueryError::invalid(format!(
                "system.{table} is a system table; system tables are read-only"
            )));
        }
        if !catalog.namespace_exists(&namespace) {
            return Err(suggest::namespace_not_found(catalog, namespace.as_str()));
        }
        if let Some(table) = catalog.table(&namespace, &table) {
            return Ok(table);
        }
        if catalog.view(&namespace, &table).is_some() {
            return Err(QueryError::invalid(format!(
                "{namespace}.{table} is a view; views are read-only and have no table definition"
            )));
        }
        Err(suggest::table_not_found(
            catalog,
            &namespace,
            table.as_str(),
        ))
    }

    pub(crate) fn split_name(&self, name: &ObjectName) -> Result<(NamespaceId, TableName)> {
        relation_name(name, &self.namespace)
    }

    /// Runs one statement.
    pub async fn execute(&mut self, statement: QuiverStatement) -> Result<StatementOutput> {
        // The statements answered without planning run in this future;
        // the others in a boxed one, so that the many and large futures of
        // planning and DDL do not make every request's future as large
        // (tens of KiB, copied when a request's task is spawned).
        match statement {
            QuiverStatement::InsertLiterals(insert) => dml::insert_literals(self, *insert).await,
            QuiverStatement::KeySelect(read) => match PointSelect::resolve(self, &read.read) {
                Some(point) => self.run_point(point?).await,
                None => Box::pin(self.execute_standard(read.parsed()?)).await,
            },
            QuiverStatement::PointSelect(point) => self.run_point(*point).await,
            other => Box::pin(self.execute_planned(other)).await,
        }
    }

    /// Runs a statement other than those [`Self::execute`] answers itself.
    async fn execute_planned(&mut self, statement: QuiverStatement) -> Result<StatementOutput> {
        let catalog = self.engine.catalog.clone();
        match statement {
            QuiverStatement::CreateNamespace {
                name,
                if_not_exists,
            } => {
                self.require_admin("CREATE NAMESPACE")?;
                let name = NamespaceId::new(&name)?;
                if name.as_str() == SYSTEM_NAMESPACE || name.as_str() == "information_schema" {
                    return Err(QueryError::invalid(format!(
                        "namespace name {name} is reserved"
                    )));
                }
                let created = catalog.create_namespace(&name, if_not_exists)?;
                Ok(done(
                    0,
                    if created {
                        format!("Namespace {name} created")
                    } else {
                        format!("Namespace {name} already exists")
                    },
                ))
            }
            QuiverStatement::DropNamespace {
                name,
                if_exists,
                cascade,
            } => {
                self.require_admin("DROP NAMESPACE")?;
                let name = NamespaceId::new(&name)?;
                let tables: Vec<TableId> = catalog
                    .registry()
                    .tables_in(&name)
                    .iter()
                    .map(|t| t.def().id)
                    .collect();
                let dropped = catalog.drop_namespace(&name, if_exists, cascade)?;
                if dropped {
                    for id in tables {
                        self.engine.forget_table(id).await?;
                    }
                }
                Ok(done(
                    0,
                    if dropped {
                        format!("Namespace {name} dropped")
                    } else {
                        format!("Namespace {name} does not exist")
                    },
                ))
            }
            QuiverStatement::Use { name } => {
                let name = NamespaceId::new(&name)?;
                if !catalog.namespace_exists(&name) {
                    return Err(suggest::namespace_not_found(&catalog, name.as_str()));
                }
                self.namespace = name;
                Ok(done(0, format!("Using namespace {}", self.namespace)))
            }
            QuiverStatement::ShowNamespaces => {
                let namespaces = catalog.namespaces();
                let counts: Vec<usize> = namespaces
                    .iter()
                    .map(|n| catalog.registry().tables_in(&n.name).len())
                    .collect();
                Ok(StatementOutput::Rows(batch_stream(ddl::show_namespaces(
                    &namespaces,
                    &counts,
                )?)))
            }
            QuiverStatement::ShowTables { namespace } => {
                let namespaces = match namespace {
                    Some(ns) => {
                        let ns = NamespaceId::new(&ns)?;
                        if !catalog.namespace_exists(&ns) {
                            return Err(suggest::namespace_not_found(&catalog, ns.as_str()));
                        }
                        vec![ns]
                    }
                    None => catalog.namespaces().into_iter().map(|n| n.name).collect(),
                };
                let mut entries = Vec::new();
                for ns in &namespaces {
                    for table in catalog.registry().tables_in(ns) {
                        let def = table.def();
                        if !self.access.may_read(def) {
                            continue;
                        }
                        entries.push((
                            ns.to_string(),
                            def.name.to_string(),
                            def.table_type.as_str(),
                        ));
                    }
                    for view in catalog.views_in(ns) {
                        entries.push((ns.to_string(), view.name.to_string(), "VIEW"));
                    }
                }
                entries.sort();
                Ok(StatementOutput::Rows(batch_stream(ddl::show_tables(
                    &entries,
                )?)))
            }
            QuiverStatement::DescribeTable { name, history } => {
                let table = match self.split_name(&name)? {
                    (ns, table) if ns.as_str() == SYSTEM_NAMESPACE => {
                        match catalog.system_table(table.as_str()) {
                            Some(stored) => stored,
                            None if system::is_system_table(table.as_str()) => {
                                return Err(QueryError::invalid(format!(
                                    "system.{table} is computed when read and has no stored \
                                     definition; SELECT from it to see its columns"
                                )));
                            }
                            None => {
                                let hint = suggest::did_you_mean(
                                    table.as_str(),
                                    system::system_table_names(),
                                );
                                return Err(QueryError::table_not_found(format!(
                                    "system.{table}{}",
                                    hint.replace("mean ", "mean system.")
                                )));
                            }
                        }
                    }
                    _ => self.find_table(&name)?,
                };
                self.check_read(table.def())?;
                let batch = if history {
                    ddl::describe_history(&catalog.history(table.def().id).await?)?
                } else {
                    ddl::describe_table(table.def())?
                };
                Ok(StatementOutput::Rows(batch_stream(batch)))
            }
            QuiverStatement::CreateTable { table_type, create } => {
                let (namespace, table) = self.split_name(&create.name)?;
                if !catalog.namespace_exists(&namespace) {
                    return Err(suggest::namespace_not_found(&catalog, namespace.as_str()));
                }
                let def =
                    ddl::table_def(&self.context(), namespace, table, table_type, &create).await?;
                if def.table_type != TableType::User {
                    self.require_admin(&format!("CREATE {} TABLE", def.table_type.as_str()))?;
                } else if self.access.role == Role::Anonymous {
                    self.require_admin("CREATE USER TABLE")?;
                }
                let qualified = def.qualified_name();
                Ok(match catalog.create_table(def, create.if_not_exists)? {
                    Some(_) => done(0, format!("Table {qualified} created")),
                    None => done(0, format!("Table {qualified} already exists")),
                })
            }
            QuiverStatement::DropTable { name, if_exists } => {
                self.require_admin("DROP TABLE")?;
                let (namespace, table) = self.split_name(&name)?;
                if !catalog.namespace_exists(&namespace) {
                    return if if_exists {
                        Ok(done(0, format!("Table {namespace}.{table} does not exist")))
                    } else {
                        Err(QueryError::namespace_not_found(namespace.to_string()))
                    };
                }
                let id = catalog.table(&namespace, &table).map(|t| t.def().id);
                let dropped = catalog.drop_table(&namespace, &table, if_exists)?;
                if let Some(id) = id {
                    self.engine.forget_table(id).await?;
                }
                Ok(done(
                    0,
                    if dropped {
                        format!("Table {namespace}.{table} dropped")
                    } else {
                        format!("Table {namespace}.{table} does not exist")
                    },
                ))
            }
            QuiverStatement::StorageFlush { target } => {
                self.require_admin("STORAGE FLUSH")?;
                let mut rows = 0;
                let mut jobs = Vec::new();
                for table in self.storage_targets(&target, true)? {
                    let (job, outcome) = self.engine.flush_table(table.def()).await?;
                    rows += outcome.rows;
                    jobs.push(job.id);
                }
                Ok(done(
                    rows,
                    format!(
                        "Flushed {rows} row version(s) of {} table(s) to cold storage",
                        jobs.len()
                    ),
                ))
            }
            QuiverStatement::StorageCompact { target } => {
                self.require_admin("STORAGE COMPACT")?;
                let mut segments = 0;
                let mut tables = 0;
                for table in self.storage_targets(&target, false)? {
                    let (_, outcome) = self.engine.compact_table(table.def()).await?;
                    segments += outcome.segments;
                    tables += 1;
                }
                Ok(done(
                    0,
                    format!("Compacted {tables} table(s) into {segments} segment(s)"),
                ))
            }
            QuiverStatement::CreateUser {
                name,
                password,
                role,
                email,
                if_not_exists,
            } => {
                self.create_user(&name, password, role, email, if_not_exists)
                    .await
            }
            QuiverStatement::AlterUser { name, change } => self.alter_user(&name, change).await,
            QuiverStatement::DropUser { name, if_exists } => self.drop_user(&name, if_exists).await,
            QuiverStatement::KillLiveQuery { live_id } => self.kill_live_query(&live_id),
            QuiverStatement::ExecuteAs { user, statement } => {
                let mut inner = self.impersonate(&user)?;
                Box::pin(inner.execute(*statement)).await
            }
            QuiverStatement::Standard(statement) => self.execute_standard(*statement).await,
            fast @ (QuiverStatement::InsertLiterals(_)
            | QuiverStatement::KeySelect(_)
            | QuiverStatement::PointSelect(_)) => Box::pin(self.execute(fast)).await,
        }
    }

    async fn execute_standard(&mut self, statement: Statement) -> Result<StatementOutput> {
        match statement {
            Statement::Insert(insert) => dml::insert(self, insert).await,
            Statement::Update(update) => dml::update(self, update).await,
            Statement::Delete(delete) => dml::delete(self, delete).await,
            Statement::AlterTable(alter) => {
                self.require_admin("ALTER TABLE")?;
                let table = self.resolve_table(&alter.name, Intent::Write)?;
                let qualified = table.def().qualified_name();
                let table_id = table.def().id;
                let lock = self.engine.writer_lock(table_id);
                let _writer = lock.lock().await;
                let version = ddl::alter_table(
                    &self.context(),
                    &self.engine.catalog,
                    table,
                    &alter,
                    self.access.user.as_str(),
                )
                .await?;
                self.engine.live().end_table(
                    table_id.0,
                    "the table was altered; subscribe again for its new schema",
                );
                Ok(done(
                    0,
                    format!("Table {qualified} altered (schema version {version})"),
                ))
            }
            Statement::CreateView(create) => {
                self.require_admin("CREATE VIEW")?;
                self.create_view(&create).await
            }
            Statement::Drop {
                object_type: ObjectType::View,
                if_exists,
                names,
                ..
            } => {
                self.require_admin("DROP VIEW")?;
                let mut dropped = 0;
                for name in &names {
                    let (namespace, view) = self.split_name(name)?;
                    if self
                        .engine
                        .catalog
                        .drop_view(&namespace, &view, if_exists)?
                    {
                        dropped += 1;
                    }
                }
                Ok(done(0, format!("{dropped} view(s) dropped")))
            }
            statement @ (Statement::Query(_) | Statement::Explain { .. }) => {
                let read = KeyRead::of(&statement, self.engine.floats_as_decimal());
                if let Some(point) = read.and_then(|read| PointSelect::resolve(self, &read)) {
                    return self.run_point(point?).await;
                }
                let stream = self.query(statement).await?;
                Ok(StatementOutput::Rows(stream))
            }
            other => Err(QueryError::Unsupported(statement_kind(&other))),
        }
    }

    /// Whether `statements` are one statement answered without planning,
    /// in work bounded by its size: a literal INSERT of at most
    /// [`DIRECT_INSERT_ROWS`] rows (unless commits wait for the disk), or a
    /// read by primary key that resolves to one (a refusal of access
    /// counts: it is answered at once). The server answers those on the
    /// thread that received them. A key read that resolves is kept
    /// resolved in `statements`, so that running it does not resolve it
    /// again.
    pub fn runs_directly(&self, statements: &mut [QuiverStatement]) -> bool {
        let resolved = match statements {
            [QuiverStatement::InsertLiterals(insert)] => {
                return insert.rows.num_rows() <= DIRECT_INSERT_ROWS
                    && !self.engine.catalog.store().syncs_writes();
            }
            [QuiverStatement::KeySelect(read)] => match PointSelect::resolve(self, &read.read) {
                Some(Ok(point)) => point,
                // Refused: running it says so at once.
                Some(Err(_)) => return true,
                None => return false,
            },
            _ => return false,
        };
        statements[0] = QuiverStatement::PointSelect(Box::new(resolved));
        true
    }

    async fn run_point(&self, point: PointSelect) -> Result<StatementOutput> {
        crate::fast::counted(&self.engine);
        point.run(self).await
    }
}

/// The leading words of a statement, for "unsupported statement" errors.
fn statement_kind(statement: &Statement) -> String {
    let text = statement.to_string();
    text.split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}
