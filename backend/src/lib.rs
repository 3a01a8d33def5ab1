//! The composition root of a Quiver node: [`AppContext`] builds every part
//! once from the configuration, in dependency order, and [`serve`] runs the
//! HTTP API until its cancellation token fires.

pub mod logging;
mod reload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use quiver_api::{ApiState, ConnectionLimits, Metrics, router};
use quiver_catalog::{Catalog, CatalogError, PasswordCost, hash_password, verify_password};
use quiver_common::{NodeId, UserId};
use quiver_config::{Config, ConfigError, Reload, SharedConfig, WebSocketConfig};
use quiver_live::{LiveLimits, LiveQueryManager};
use quiver_query::{EngineParts, NodeCounters, QueryEngine, QueryError, run_maintenance};
use quiver_service::{Auth, RequestService, WeakSecret};
use quiver_store::{ColdError, ColdStore, ColdTables, Store, StoreError, StoreOptions};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("invalid server.node_id: {0}")]
    NodeId(#[from] quiver_common::IdError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Cold(#[from] ColdError),
    #[error(transparent)]
    Auth(#[from] WeakSecret),
    #[error("cannot set root's password: {0}")]
    Password(String),
    #[error(transparent)]
    Catalog(#[from] CatalogError),
    #[error("{0}")]
    Query(#[from] QueryError),
    #[error("cannot start the query runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("cannot listen on {address}: {source}")]
    Bind {
        address: String,
        #[source]
        source: std::io::Error,
    },
}

/// How long an idle blocking thread of the query runtime (segment file
/// reads and writes, password hashing, compaction's row removal) waits for
/// work before it exits. Tokio's 10 s made a node under steady load start
/// and end such threads all the time; an idle thread costs little, and
/// each new one takes fresh memory from the allocators.
const BLOCKING_THREAD_KEEP_ALIVE: Duration = Duration::from_secs(600);

/// How long a stopping node waits for the statements still running on
/// its query runtime to stop.
const QUERY_RUNTIME_STOP: Duration = Duration::from_secs(5);

/// The tokio runtime that plans and executes queries, so that CPU-heavy
/// work never stalls the threads serving HTTP.
#[derive(Debug)]
pub struct QueryRuntime(Option<tokio::runtime::Runtime>);

impl QueryRuntime {
    pub fn new(threads: usize) -> std::io::Result<Self> {
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(2, |n| n.get()),
            n => n,
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("quiver-query")
            .thread_keep_alive(BLOCKING_THREAD_KEEP_ALIVE)
            .enable_all()
            .build()?;
        Ok(Self(Some(runtime)))
    }

    pub fn handle(&self) -> tokio::runtime::Handle {
        self.0
            .as_ref()
            .expect("runtime lives until drop")
            .handle()
            .clone()
    }
}

impl Drop for QueryRuntime {
    /// Outside an async context (the binary, once it has stopped
    /// serving), waits up to [`QUERY_RUNTIME_STOP`] for the statements
    /// still running to stop at their next await, so that none is still
    /// inside the store when the process exits; within one (tests), where
    /// waiting is not allowed, lets them go.
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            if tokio::runtime::Handle::try_current().is_ok() {
                runtime.shutdown_background();
            } else {
                runtime.shutdown_timeout(QUERY_RUNTIME_STOP);
            }
        }
    }
}

/// Everything a node runs on, built once from its configuration. Holds no
/// globals, so one process can run several nodes (as tests do).
#[derive(Clone)]
pub struct AppContext {
    /// The configuration in effect; see [`AppContext::reload`].
    pub config: Arc<SharedConfig>,
    pub node_id: Arc<NodeId>,
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    /// The node's live queries: subscriptions and their notifications.
    pub live: Arc<LiveQueryManager>,
    pub engine: Arc<QueryEngine>,
    /// What every request goes through, whatever its protocol.
    pub service: Arc<RequestService>,
    pub query_runtime: Arc<QueryRuntime>,
    pub metrics: Arc<Metrics>,
    /// Applies a new `[logging] level`; set by the binary, which owns the
    /// log subscriber.
    pub log_level: Option<Arc<LevelSetter>>,
}

/// Puts a `tracing` filter into effect, or says why it is invalid.
pub type LevelSetter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

impl std::fmt::Debug for AppContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppContext")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl AppContext {
    /// Builds a node from a configuration made in code.
    pub fn build(config: Config) -> Result<Self, StartError> {
        Self::build_shared(Arc::new(SharedConfig::fixed(config)))
    }

    /// Builds a node that can reload its configuration from where `shared`
    /// came from.
    pub fn build_shared(shared: Arc<SharedConfig>) -> Result<Self, StartError> {
        let config = shared.get();
        let node_id = Arc::new(NodeId::new(&config.server.node_id)?);
        let store = Arc::new(Store::open(
            &config.storage.data_path.join("rocksdb"),
            &StoreOptions {
                sync_writes: config.storage.sync_writes,
                memtable_bytes: config.storage.memtable_bytes as usize,
                block_cache_bytes: config.storage.block_cache_bytes as usize,
            },
        )?);
        let cold = ColdStore::local(&config.storage.data_path.join("cold"))?
            .with_page_cache(config.storage.page_cache_bytes);
        let tier = Arc::new(ColdTables::open(store.clone(), cold)?);
        let catalog = Arc::new(Catalog::open(tier.clone(), (*node_id).clone())?);
        // Recovery: segment files of dropped tables go, hot rows count
        // toward their flush policies again.
        quiver_query::recover(&catalog)?;
        let live = Arc::new(LiveQueryManager::new(
            (*node_id).clone(),
            live_limits(&config.websocket),
        ));
        let counters = Arc::new(NodeCounters::default());
        let engine = Arc::new(QueryEngine::new(EngineParts {
            catalog: catalog.clone(),
            cold: tier,
            live: live.clone(),
            counters,
            config: shared.clone(),
            node_id: (*node_id).clone(),
        })?);
        let auth = Arc::new(Auth::new(
            &config.auth,
            &config.server.host,
            catalog.clone(),
        )?);
        set_root_password(&catalog, &config)?;
        let query_runtime =
            Arc::new(QueryRuntime::new(config.server.query_threads).map_err(StartError::Runtime)?);
        let service = Arc::new(RequestService::new(
            engine.clone(),
            auth,
            shared.clone(),
            query_runtime.handle(),
        ));
        let metrics = Arc::new(Metrics::new(
            engine.node_info(),
            catalog.clone(),
            service.query_seconds().clone(),
        ));
        Ok(Self {
            config: shared,
            node_id,
            store,
            catalog,
            live,
            engine,
            service,
            query_runtime,
            metrics,
            log_level: None,
        })
    }

    /// Reads the configuration's source again and puts its reloadable
    /// settings into effect; an invalid file changes nothing. Logs what
    /// changed, what waits for a restart, or why nothing did.
    pub fn reload(&self, trigger: &str) -> Result<Reload, ConfigError> {
        let source = self.config.source().to_string();
        let checked = self.config.reload_checked(|next| {
            logging::check_level(&next.logging.level).map_err(|message| ConfigError::Value {
                key: "logging.level",
                source_name: source,
                message,
            })
        });
        let report = match checked {
            Ok(report) => report,
            Err(e) => {
                // One log line, whatever the parser's message looks like.
                let error = e
                    .to_string()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::error!(%trigger, %error, "configuration not reloaded; the running settings stay");
                return Err(e);
            }
        };
        if !report.needs_restart.is_empty() {
            tracing::warn!(
                %trigger,
                keys = %report.needs_restart.join(", "),
                "changed settings need a restart to take effect"
            );
        }
        if report.applied.is_empty() {
            tracing::info!(%trigger, "configuration reloaded; nothing to apply");
            return Ok(report);
        }
        self.live
            .set_limits(live_limits(&self.config.get().websocket));
        if report.applied.iter().any(|k| k == "logging.level")
            && let Some(set_level) = &self.log_level
            && let Err(e) = set_level(&self.config.get().logging.level)
        {
            tracing::error!(error = %e, "cannot apply logging.level");
        }
        tracing::info!(
            %trigger,
            keys = %report.applied.join(", "),
            "configuration reloaded"
        );
        Ok(report)
    }

    /// What the HTTP handlers share; `shutdown` ends WebSocket connections.
    pub fn api_state(&self, shutdown: CancellationToken) -> ApiState {
        ApiState {
            service: self.service.clone(),
            config: self.config.clone(),
            live: self.live.clone(),
            node: self.engine.node_info(),
            metrics: self.metrics.clone(),
            shutdown,
        }
    }
}

/// The live query limits of `[websocket]`, which are pushed to the
/// manager rather than read on each use.
fn live_limits(websocket: &WebSocketConfig) -> LiveLimits {
    LiveLimits {
        max_subscriptions_per_connection: websocket.max_subscriptions_per_connection,
        max_subscriptions_per_user: websocket.max_subscriptions_per_user,
        queue_capacity: websocket.queue_capacity,
    }
}

/// Gives `root` the password `[auth] root_password` names, unless it
/// already has that one.
fn set_root_password(catalog: &Catalog, config: &Config) -> Result<(), StartError> {
    let password = &config.auth.root_password;
    if password.is_empty() {
        return Ok(());
    }
    let Some(root) = catalog.user(&UserId::root()) else {
        return Ok(());
    };
    if root
        .password_hash
        .as_deref()
        .is_some_and(|hash| verify_password(password, hash))
    {
        return Ok(());
    }
    let cost = PasswordCost {
        memory_kib: config.auth.password_memory_kib,
        iterations: config.auth.password_iterations,
    };
    let hash = hash_password(password, cost).map_err(|e| StartError::Password(e.to_string()))?;
    catalog.modify_user(&root.id, |root| {
        root.password_hash = Some(hash);
        root.updated_at = chrono::Utc::now().timestamp_micros();
        // Tokens issued under the old password end with it.
        root.token_epoch += 1;
    })?;
    Ok(())
}

/// Binds the configured address (port 0 picks a free one).
pub async fn bind(config: &Config) -> Result<TcpListener, StartError> {
    let address = format!("{}:{}", config.server.host, config.server.port);
    TcpListener::bind(&address)
        .await
        .map_err(|source| StartError::Bind { address, source })
}

/// Serves the API on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish and syncs the store. Storage maintenance
/// (flushes, compactions, STREAM expiry) runs on the query runtime for as
/// long as the server does.
pub async fn serve(
    context: AppContext,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let address: SocketAddr = listener.local_addr()?;
    let triggers = reload::Triggers::install(&context);
    tracing::info!(node_id = %context.node_id, %address, "quiver listening");
    let maintenance = context.query_runtime.handle().spawn(run_maintenance(
        context.engine.clone(),
        shutdown.child_token(),
    ));
    let reloader = tokio::spawn(reload::run(
        context.clone(),
        triggers,
        shutdown.child_token(),
    ));
    let live = context
        .query_runtime
        .handle()
        .spawn(context.live.clone().run(shutdown.child_token()));
    let app = router(context.api_state(shutdown.child_token()));
    let server = context.config.get().server.clone();
    let limits = ConnectionLimits {
        max_connections: server.max_connections,
        max_per_address: server.max_connections_per_address,
        header_timeout: Duration::from_secs(server.header_timeout_secs),
        shutdown_grace: Duration::from_secs(server.shutdown_timeout_secs),
    };
    let served = quiver_api::serve(listener, app, limits, shutdown.clone()).await;
    shutdown.cancel();
    if let Err(e) = reloader.await {
        tracing::error!(error = %e, "the configuration reloader stopped abnormally");
    }
    if let Err(e) = maintenance.await {
        tracing::error!(error = %e, "storage maintenance stopped abnormally");
    }
    if let Err(e) = live.await {
        tracing::error!(error = %e, "the live query dispatcher stopped abnormally");
    }
    served?;
    if let Err(e) = context.store.sync() {
        tracing::error!(error = %e, "syncing the store at shutdown failed");
    }
    tracing::info!(node_id = %context.node_id, "quiver stopped");
    Ok(())
}
