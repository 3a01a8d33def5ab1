use std::path::{Path, PathBuf};

use quiver::AppContext;
use quiver_config::Config;
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// A running node serving real HTTP on a free loopback port.
pub struct TestServer {
    pub base_url: String,
    pub context: AppContext,
    data_dir: PathBuf,
    shutdown: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    client: reqwest::Client,
    _temp: Option<tempfile::TempDir>,
}

/// An HTTP answer: status and parsed JSON body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub body: Value,
}

impl Response {
    /// The error code of an error envelope.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// `results[i].rows`.
    pub fn rows(&self, i: usize) -> &Vec<Value> {
        self.body["results"][i]["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("no rows in result {i}: {}", self.body))
    }
}

/// `Authorization` for `root` while it has no password.
pub const ROOT_BASIC: &str = "Basic cm9vdDo=";

/// `Authorization` with Basic credentials.
pub fn basic(user: &str, password: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Basic {encoded}")
}

/// A config for a test node: port 0, data in `dir`, cheap password hashes.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config::default();
    config.server.port = 0;
    config.server.node_id = "test-node".to_string();
    config.storage.data_path = dir.to_path_buf();
    // Cheap password hashes keep tests fast.
    config.auth.password_memory_kib = 64;
    config.auth.password_iterations = 1;
    // Tests send requests as fast as they can; the rate limit has its own
    // tests.
    config.limits.queries_per_second = 0;
    config
}

impl TestServer {
    /// Starts a node with default settings in a fresh temporary directory.
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    /// Starts a node in a fresh temporary directory after `edit` adjusts
    /// its config.
    pub async fn start_with(edit: impl FnOnce(&mut Config)) -> Self {
        let temp = tempfile::tempdir().expect("temp dir");
        let mut config = test_config(temp.path());
        edit(&mut config);
        let mut server = Self::start_config(config).await;
        server._temp = Some(temp);
        server
    }

    /// Starts a node from a complete config.
    pub async fn start_config(config: Config) -> Self {
        let data_dir = config.storage.data_path.clone();
        let context = AppContext::build(config).expect("node builds");
        let listener = quiver::bind(&context.config.get()).await.expect("bind");
        let address = listener.local_addr().expect("local addr");
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(quiver::serve(context.clone(), listener, shutdown.clone()));
        Self {
            base_url: format!("http://{address}"),
            context,
            data_dir,
            shutdown,
            task,
            client: reqwest::Client::new(),
            _temp: None,
        }
    }

    /// Stops the node and starts a new one on the same data directory.
    pub async fn restart(self) -> Self {
        self.restart_with(|_| {}).await
    }

    /// Like [`TestServer::restart`], with the config adjusted by `edit`.
    pub async fn restart_with(self, edit: impl FnOnce(&mut Config)) -> Self {
        let mut config = (*self.context.config.get()).clone();
        edit(&mut config);
        let temp = self.stop().await;
        let mut server = Self::start_config(config).await;
        server._temp = temp;
        server
    }

    /// Stops the node, waiting until its store is closed. Returns the
    /// temporary directory (if the harness made one) so that data can
    /// outlive the node.
    pub async fn stop(self) -> Option<tempfile::TempDir> {
        let Self {
            context,
            shutdown,
            task,
            _temp,
            ..
        } = self;
        shutdown.cancel();
        task.await
            .expect("server task")
            .expect("server stops cleanly");
        drop(context);
        _temp
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    /// Posts a raw body to `/v1/api/sql` as `root` (Basic credentials
    /// with the empty password root has until one is set, from loopback).
    pub async fn post_raw(&self, body: impl Into<reqwest::Body>) -> Response {
        self.post_as(ROOT_BASIC, body).await
    }

    /// Posts a raw body to `/v1/api/sql` with `authorization` as the
    /// `Authorization` header (none when empty).
    pub async fn post_as(&self, authorization: &str, body: impl Into<reqwest::Body>) -> Response {
        let mut request = self
            .client
            .post(format!("{}/v1/api/sql", self.base_url))
            .header("content-type", "application/json")
            .body(body);
        if !authorization.is_empty() {
            request = request.header("authorization", authorization);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body read");
        let body = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("status {status}: body is not JSON ({e}): {text}"));
        Response { status, body }
    }

    /// Posts a JSON request to `/v1/api/sql`.
    pub async fn post(&self, request: Value) -> Response {
        self.post_raw(request.to_string()).await
    }

    /// Runs SQL (no params) and returns the answer.
    pub async fn sql(&self, sql: &str) -> Response {
        self.post(serde_json::json!({ "sql": sql })).await
    }

    /// Runs SQL (no params) with `authorization`.
    pub async fn sql_as(&self, authorization: &str, sql: &str) -> Response {
        let body = serde_json::json!({ "sql": sql }).to_string();
        self.post_as(authorization, body).await
    }

    /// Runs SQL that must succeed.
    pub async fn sql_ok(&self, sql: &str) -> Response {
        let response = self.sql(sql).await;
        assert_eq!(response.status, 200, "{sql}: {}", response.body);
        response
    }

    pub async fn get(&self, path: &str) -> Response {
        let response = self
            .client
            .get(format!("{}{path}", self.base_url))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        Response { status, body }
    }
}

/// Posts SQL to a node from any task: it owns what it needs.
#[derive(Debug, Clone)]
pub struct SqlPoster {
    client: reqwest::Client,
    url: String,
}

impl SqlPoster {
    /// Posts `sql` with `authorization`: the status and the JSON answer
    /// (null when it is not JSON).
    pub async fn post(&self, authorization: &str, sql: &str) -> (u16, Value) {
        let response = self
            .client
            .post(&self.url)
            .header("authorization", authorization)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .expect("request sent");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }
}

impl TestServer {
    /// A poster of SQL to this node, for spawned tasks.
    pub fn sql_poster(&self) -> SqlPoster {
        SqlPoster {
            client: self.client.clone(),
            url: format!("{}/v1/api/sql", self.base_url),
        }
    }
}

/// Posts `body` as JSON to `path` of `server`, with `auth` as the
/// `Authorization` header if given: the status and the JSON answer (null
/// when it is not JSON).
pub async fn post_json(
    server: &TestServer,
    path: &str,
    auth: Option<&str>,
    body: Value,
) -> (u16, Value) {
    let mut request = server
        .client()
        .post(format!("{}{path}", server.base_url))
        .json(&body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}
