//! The composition root of a Quiver node: [`AppContext`] builds every part
//! once from the configuration, in dependency order, and [`serve`] runs the
//! HTTP API until its cancellation token fires.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::serve::ListenerExt;
use quiver_api::{ApiState, Auth, RequestRate, WeakSecret, router};
use quiver_catalog::{Catalog, CatalogError, PasswordCost, hash_password, verify_password};
use quiver_common::{NodeId, UserId};
use quiver_config::Config;
use quiver_query::{QueryEngine, QueryError, run_maintenance};
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

/// The tokio runtime that plans and executes queries, so that CPU-heavy
/// work never stalls the threads serving HTTP. Shut down without waiting
/// when the last owner drops it.
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
    fn drop(&mut self) {
        if let Some(runtime) = self.0.take() {
            runtime.shutdown_background();
        }
    }
}

/// Everything a node runs on, built once from its configuration. Holds no
/// globals, so one process can run several nodes (as tests do).
#[derive(Debug, Clone)]
pub struct AppContext {
    pub config: Arc<Config>,
    pub node_id: Arc<NodeId>,
    pub store: Arc<Store>,
    pub catalog: Arc<Catalog>,
    pub engine: Arc<QueryEngine>,
    pub auth: Arc<Auth>,
    /// Each user's allowance of SQL requests.
    pub request_rate: Arc<RequestRate>,
    pub query_runtime: Arc<QueryRuntime>,
}

impl AppContext {
    pub fn build(config: Config) -> Result<Self, StartError> {
        let node_id = Arc::new(NodeId::new(&config.server.node_id)?);
        let store = Arc::new(Store::open(
            &config.storage.data_path.join("rocksdb"),
            &StoreOptions {
                sync_writes: config.storage.sync_writes,
            },
        )?);
        let cold = ColdStore::local(&config.storage.data_path.join("cold"))?;
        let tier = Arc::new(ColdTables::open(store.clone(), cold)?);
        let catalog = Arc::new(Catalog::open(tier, (*node_id).clone())?);
        let auth = Arc::new(Auth::new(&config.auth, &config.server.host)?);
        let engine = Arc::new(QueryEngine::new(
            catalog.clone(),
            &config,
            (*node_id).clone(),
        )?);
        set_root_password(&catalog, &config)?;
        let query_runtime =
            Arc::new(QueryRuntime::new(config.server.query_threads).map_err(StartError::Runtime)?);
        let request_rate = Arc::new(RequestRate::new(&config.limits));
        Ok(Self {
            config: Arc::new(config),
            node_id,
            store,
            catalog,
            engine,
            auth,
            request_rate,
            query_runtime,
        })
    }

    /// What the HTTP handlers share; `shutdown` ends WebSocket connections.
    pub fn api_state(&self, shutdown: CancellationToken) -> ApiState {
        ApiState {
            engine: self.engine.clone(),
            auth: self.auth.clone(),
            request_rate: self.request_rate.clone(),
            query_runtime: self.query_runtime.handle(),
            max_body_bytes: self.config.limits.max_body_bytes,
            websocket: self.config.websocket.clone(),
            shutdown,
        }
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
    let mut root = (*root).clone();
    root.password_hash =
        Some(hash_password(password, cost).map_err(|e| StartError::Password(e.to_string()))?);
    root.updated_at = chrono::Utc::now().timestamp_micros();
    catalog.update_user(root)?;
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
    tracing::info!(node_id = %context.node_id, %address, "quiver listening");
    let maintenance = context.query_runtime.handle().spawn(run_maintenance(
        context.engine.clone(),
        context.config.flush.clone(),
        context.config.compaction.clone(),
        shutdown.child_token(),
    ));
    let live = context
        .query_runtime
        .handle()
        .spawn(context.engine.live().clone().run(shutdown.child_token()));
    let app = router(context.api_state(shutdown.child_token()));
    let app = app.into_make_service_with_connect_info::<SocketAddr>();
    // Small answers and notifications go out at once, not after the
    // peer's delayed acknowledgement.
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
    shutdown.cancel();
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
