use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A node's whole configuration. Every field has a default, so an empty
/// file (or none) gives a single embedded node on `127.0.0.1:8080`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub limits: LimitsConfig,
    pub flush: FlushConfig,
    pub compaction: CompactionConfig,
    pub websocket: WebSocketConfig,
    pub auth: AuthConfig,
    pub logging: LoggingConfig,
    pub metrics: MetricsConfig,
    pub datafusion: DataFusionConfig,
}

impl Config {
    /// Every effective setting as `(section.key, value)`, sorted, with
    /// secrets (keys ending in `secret` or `password`) masked.
    pub fn settings(&self) -> Vec<(String, String)> {
        self.entries()
            .into_iter()
            .map(|(key, value)| {
                let secret = key.ends_with("secret") || key.ends_with("password");
                (
                    key,
                    if secret {
                        "********".to_string()
                    } else {
                        value
                    },
                )
            })
            .collect()
    }

    /// Every effective setting as `section.key -> value`, unmasked.
    pub(crate) fn entries(&self) -> BTreeMap<String, String> {
        let table = toml::Table::try_from(self).expect("the config model serializes");
        let mut out = BTreeMap::new();
        flatten("", &table, &mut out);
        out
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// This node's identity: 1-64 characters of `[A-Za-z0-9_-]`.
    pub node_id: String,
    /// Address to listen on.
    pub host: String,
    /// Port to listen on; 0 picks a free one.
    pub port: u16,
    /// Threads of the runtime that plans and executes queries, apart from
    /// the threads serving HTTP; 0 means one per CPU core.
    pub query_threads: usize,
    /// Seconds in-flight requests get to finish after a shutdown signal;
    /// then the node stops anyway.
    pub shutdown_timeout_secs: u64,
    /// Reload the configuration file when it changes (it is also reloaded
    /// on SIGHUP).
    pub watch_config: bool,
    /// HTTP and WebSocket connections open at once; a connection past it
    /// is closed as soon as it is accepted. Takes effect at start.
    pub max_connections: usize,
    /// Connections open at once from one client address. Takes effect at
    /// start.
    pub max_connections_per_address: usize,
    /// Seconds a connection has to send a request's head, counted from
    /// when it is ready for one; also how long a kept-alive connection
    /// may sit idle. Takes effect at start.
    pub header_timeout_secs: u64,
    /// Seconds a request's body may take to arrive.
    pub body_timeout_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            node_id: "node-1".to_string(),
            host: "127.0.0.1".to_string(),
            port: 8080,
            query_threads: 0,
            shutdown_timeout_secs: 30,
            watch_config: true,
            max_connections: 10_000,
            max_connections_per_address: 4_096,
            header_timeout_secs: 10,
            body_timeout_secs: 60,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory holding all of the node's data.
    pub data_path: PathBuf,
    /// Fsync the write-ahead log before acknowledging each write. Without it
    /// an acknowledged write survives a process crash; with it, also a power
    /// loss.
    pub sync_writes: bool,
    /// Most bytes of decoded segment pages kept for reads by primary key
    /// (0: none kept).
    pub page_cache_bytes: u64,
    /// Bytes of written rows RocksDB gathers in memory, over all its
    /// memtables, before it writes them to a table file.
    pub memtable_bytes: u64,
    /// Bytes of RocksDB table file blocks kept in memory, their indexes
    /// and filters included.
    pub block_cache_bytes: u64,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_path: PathBuf::from("./data"),
            sync_writes: false,
            page_cache_bytes: 64 * 1024 * 1024,
            memtable_bytes: 64 * 1024 * 1024,
            block_cache_bytes: 32 * 1024 * 1024,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest accepted HTTP request body, in bytes.
    pub max_body_bytes: usize,
    /// Longest accepted SQL text, in bytes.
    pub max_sql_bytes: usize,
    /// Most `$n` parameters in one request.
    pub max_params: usize,
    /// Most statements in one request.
    pub max_statements: usize,
    /// Most rows one statement may return; more is a `RESULT_TOO_LARGE` error.
    pub max_result_rows: usize,
    /// Most bytes of encoded results one request may return; more is a
    /// `RESULT_TOO_LARGE` error.
    pub max_result_bytes: usize,
    /// Longest a request's statements may run, in milliseconds; past it
    /// the request is cancelled with `QUERY_TIMEOUT` (0: no limit).
    pub query_timeout_ms: u64,
    /// SQL requests each user may make per second, on average; more is a
    /// `RATE_LIMIT_EXCEEDED` error (0: no limit).
    pub queries_per_second: u32,
    /// Requests a user may make at once above that rate.
    pub query_burst: u32,
    /// Memory all running queries may hold together for their operators
    /// (hash tables, sorts, aggregates), in bytes; a query that needs more
    /// than its share spills to disk where it can and otherwise fails with
    /// `RESOURCES_EXHAUSTED`. Takes effect at start.
    pub query_memory_bytes: usize,
    /// Disk queries may spill to, in bytes, under `<data_path>/tmp`.
    /// Takes effect at start.
    pub max_spill_bytes: u64,
    /// Most rows one statement may write (`INSERT ... SELECT`, `UPDATE`,
    /// `DELETE`): the rows are counted as they are read and a statement
    /// past the limit is refused before it writes anything. The rows it
    /// holds count against `query_memory_bytes`.
    pub max_write_rows: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_sql_bytes: 1024 * 1024,
            max_params: 1000,
            max_statements: 1000,
            max_result_rows: 100_000,
            max_result_bytes: 256 * 1024 * 1024,
            query_timeout_ms: 30_000,
            queries_per_second: 1000,
            query_burst: 2000,
            query_memory_bytes: 4 * 1024 * 1024 * 1024,
            max_spill_bytes: 32 * 1024 * 1024 * 1024,
            max_write_rows: 1_000_000,
        }
    }
}

/// When hot rows move to Parquet, for tables without a `FLUSH_POLICY` of
/// their own; a table's policy replaces both parts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlushConfig {
    /// Flush a table once it has this many hot rows (0: never by count).
    pub rows: u64,
    /// Flush a table whose oldest hot row is this many seconds old
    /// (0: never by age).
    pub interval_secs: u64,
    /// How often the background flusher checks the tables, in milliseconds.
    pub check_interval_ms: u64,
    /// Rows per Parquet row group.
    pub row_group_rows: usize,
}

impl Default for FlushConfig {
    fn default() -> Self {
        Self {
            rows: 100_000,
            interval_secs: 300,
            check_interval_ms: 1000,
            row_group_rows: 122_880,
        }
    }
}

/// Users, passwords and tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// HS256 key for access and refresh tokens; at least 32 bytes on any
    /// address but loopback.
    pub jwt_secret: String,
    /// Sets `root`'s password at start when not empty.
    pub root_password: String,
    /// Lifetime of access tokens, in seconds.
    pub access_token_ttl_secs: u64,
    /// Lifetime of refresh tokens, in seconds.
    pub refresh_token_ttl_secs: u64,
    /// Argon2id memory cost of password hashes, in KiB.
    pub password_memory_kib: u32,
    /// Argon2id passes over that memory.
    pub password_iterations: u32,
    /// Failed password checks in a row after which a user is locked out
    /// (0: never).
    pub max_failed_logins: u32,
    /// How long a lockout lasts, in seconds.
    pub lockout_secs: u64,
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            jwt_secret: String::new(),
            root_password: String::new(),
            access_token_ttl_secs: 3600,
            refresh_token_ttl_secs: 7 * 24 * 3600,
            password_memory_kib: 19 * 1024,
            password_iterations: 2,
            max_failed_logins: 5,
            lockout_secs: 300,
        }
    }
}

/// Live queries over `/v1/ws`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebSocketConfig {
    /// Seconds a new connection has to authenticate.
    pub auth_timeout_secs: u64,
    /// Seconds between the server's ping frames.
    pub ping_interval_secs: u64,
    /// Seconds without any frame from the client after which it is
    /// disconnected.
    pub client_timeout_secs: u64,
    /// Subscriptions one connection may hold.
    pub max_subscriptions_per_connection: usize,
    /// Subscriptions one user may hold over all their connections.
    pub max_subscriptions_per_user: usize,
    /// Messages a client may send per second on one connection; more are
    /// answered with `RATE_LIMIT_EXCEEDED` and ignored.
    pub max_messages_per_second: u32,
    /// Notifications a connection may have waiting; a subscription that
    /// would pass it is dropped with `SUBSCRIPTION_OVERFLOW`.
    pub queue_capacity: usize,
    /// Largest accepted client frame, in bytes.
    pub max_message_bytes: usize,
    /// Bytes each connection reads into at a time; larger frames still
    /// arrive whole. Every open connection holds this much.
    pub read_buffer_bytes: usize,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        Self {
            auth_timeout_secs: 10,
            ping_interval_secs: 15,
            client_timeout_secs: 45,
            max_subscriptions_per_connection: 100,
            max_subscriptions_per_user: 1000,
            max_messages_per_second: 200,
            queue_capacity: 1024,
            max_message_bytes: 1024 * 1024,
            read_buffer_bytes: 8 * 1024,
        }
    }
}

/// When a table's segments are merged into one.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Compact a table automatically once it has this many segments
    /// (0: only on `STORAGE COMPACT`).
    pub max_segments: usize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self { max_segments: 8 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LoggingConfig {
    /// `tracing` filter: a level (`info`) or directives (`info,quiver_query=debug`).
    pub level: String,
    pub format: LogFormat,
    /// Requests that run at least this many milliseconds are logged with
    /// their SQL (passwords masked); 0 logs every request, -1 none.
    pub slow_query_ms: i64,
}

impl Default for LoggingConfig {
    fn default() -> Self {
        Self {
            level: "info".to_string(),
            format: LogFormat::Text,
            slow_query_ms: 1000,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsConfig {
    /// Whether `/metrics` answers without credentials; otherwise it needs
    /// a user of the service role or above.
    pub public: bool,
}

/// Options passed straight to DataFusion's `SessionConfig`, by their
/// DataFusion names with or without the `datafusion.` prefix, e.g.
/// `"execution.batch_size" = 8192` or a `[datafusion.execution]` table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataFusionConfig(pub toml::Table);

impl DataFusionConfig {
    /// The options as `(datafusion.<key>, value)` pairs, nested tables
    /// flattened with dots.
    pub fn options(&self) -> Vec<(String, String)> {
        let mut out = BTreeMap::new();
        flatten("", &self.0, &mut out);
        out.into_iter()
            .map(|(k, v)| {
                let key = if k.starts_with("datafusion.") {
                    k
                } else {
                    format!("datafusion.{k}")
                };
                (key, v)
            })
            .collect()
    }
}

fn flatten(prefix: &str, table: &toml::Table, out: &mut BTreeMap<String, String>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.clone()
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            toml::Value::Table(inner) => flatten(&path, inner, out),
            toml::Value::String(s) => {
                out.insert(path, s.clone());
            }
            other => {
                out.insert(path, other.to_string());
            }
        }
    }
}
