use std::path::{Path, PathBuf};

use quiver_common::NodeId;
use serde::Deserialize;

use crate::model::Config;

/// Environment variables starting with this prefix override config keys:
/// `QUIVER_SERVER__PORT=9000` sets `[server] port`.
pub const ENV_PREFIX: &str = "QUIVER_";

/// Where the configuration came from, for messages and `system.settings`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigSource {
    /// No file: built-in defaults (and environment overrides).
    Defaults,
    File(PathBuf),
}

impl std::fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Defaults => f.write_str("built-in defaults"),
            Self::File(path) => write!(f, "{}", path.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("invalid environment variable {var}: {message}")]
    Env { var: String, message: String },
    #[error("invalid value for `{key}` (from {source_name}): {message}")]
    Value {
        key: &'static str,
        source_name: String,
        message: String,
    },
}

/// Loads the configuration: `path` if given, else `./config.toml` if it
/// exists, else built-in defaults; then applies `QUIVER_...` overrides from
/// `env` and validates the result.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<(Config, ConfigSource), ConfigError> {
    let source = match path {
        Some(path) => ConfigSource::File(path.to_path_buf()),
        None if Path::new("config.toml").is_file() => ConfigSource::File("config.toml".into()),
        None => ConfigSource::Defaults,
    };
    let config = load_from(&source, env)?;
    Ok((config, source))
}

/// Loads the configuration from `source`, applies `QUIVER_...` overrides
/// from `env` and validates the result.
pub fn load_from(
    source: &ConfigSource,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut table = match source {
        ConfigSource::Defaults => toml::Table::new(),
        ConfigSource::File(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            parse_file(path, &text)?
        }
    };

    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(k, _)| k.starts_with(ENV_PREFIX))
        .collect();
    overrides.sort();
    for (var, raw) in overrides {
        apply_env(&mut table, &var, &raw)?;
        // Checking after each override pins an error on the variable that
        // caused it.
        Config::deserialize(toml::Value::Table(table.clone())).map_err(|e| ConfigError::Env {
            var: var.clone(),
            message: e.message().to_string(),
        })?;
    }

    let config = Config::deserialize(toml::Value::Table(table)).map_err(|e| ConfigError::File {
        path: PathBuf::from(source.to_string()),
        message: e.message().to_string(),
    })?;
    validate(&config, source)?;
    Ok(config)
}

/// Parses and type-checks a file's text, so that errors carry its line and column.
fn parse_file(path: &Path, text: &str) -> Result<toml::Table, ConfigError> {
    let file_error = |e: toml::de::Error| ConfigError::File {
        path: path.to_path_buf(),
        message: e.to_string().trim_end().to_string(),
    };
    toml::from_str::<Config>(text).map_err(file_error)?;
    toml::from_str::<toml::Table>(text).map_err(file_error)
}

fn apply_env(table: &mut toml::Table, var: &str, raw: &str) -> Result<(), ConfigError> {
    let env_error = |message: String| ConfigError::Env {
        var: var.to_string(),
        message,
    };
    let path: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(str::to_ascii_lowercase)
        .collect();
    if path.len() < 2 || path.iter().any(String::is_empty) {
        return Err(env_error(
            "expected QUIVER_<SECTION>__<KEY>, e.g. QUIVER_SERVER__PORT".to_string(),
        ));
    }
    // A value is read as TOML when it parses as a scalar (9000, true, 1.5),
    // otherwise taken as a plain string.
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .filter(|v| !v.is_table())
        .unwrap_or_else(|| toml::Value::String(raw.to_string()));

    let (last, parents) = path.split_last().expect("path has at least two parts");
    let mut current = table;
    for part in parents {
        let entry = current
            .entry(part.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry
            .as_table_mut()
            .ok_or_else(|| env_error(format!("`{part}` is not a section")))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// Smaller memtables would turn every few writes into a table file.
const MIN_MEMTABLE_BYTES: u64 = 1024 * 1024;

fn validate(config: &Config, source: &ConfigSource) -> Result<(), ConfigError> {
    let bad = |key: &'static str, message: String| ConfigError::Value {
        key,
        source_name: source.to_string(),
        message,
    };
    NodeId::new(&config.server.node_id).map_err(|e| bad("server.node_id", e.to_string()))?;
    let server = &config.server;
    for (key, value) in [
        ("server.max_connections", server.max_connections as u64),
        (
            "server.max_connections_per_address",
            server.max_connections_per_address as u64,
        ),
        ("server.header_timeout_secs", server.header_timeout_secs),
        ("server.body_timeout_secs", server.body_timeout_secs),
    ] {
        if value == 0 {
            return Err(bad(key, "must be greater than 0".to_string()));
        }
    }
    if config.server.host.trim().is_empty() {
        return Err(bad("server.host", "must not be empty".to_string()));
    }
    if config.storage.data_path.as_os_str().is_empty() {
        return Err(bad("storage.data_path", "must not be empty".to_string()));
    }
    if config.storage.memtable_bytes < MIN_MEMTABLE_BYTES {
        return Err(bad(
            "storage.memtable_bytes",
            format!("must be at least {MIN_MEMTABLE_BYTES} (1 MiB)"),
        ));
    }
    let limits = &config.limits;
    for (key, value) in [
        ("limits.max_body_bytes", limits.max_body_bytes),
        ("limits.max_sql_bytes", limits.max_sql_bytes),
        ("limits.max_statements", limits.max_statements),
        ("limits.max_result_rows", limits.max_result_rows),
        ("limits.max_result_bytes", limits.max_result_bytes),
        ("limits.query_memory_bytes", limits.query_memory_bytes),
        ("limits.max_write_rows", limits.max_write_rows),
    ] {
        if value == 0 {
            return Err(bad(key, "must be greater than 0".to_string()));
        }
    }
    if limits.queries_per_second > 0 && limits.query_burst < limits.queries_per_second {
        return Err(bad(
            "limits.query_burst",
            format!(
                "must be at least limits.queries_per_second ({})",
                limits.queries_per_second
            ),
        ));
    }
    let ws = &config.websocket;
    for (key, value) in [
        ("websocket.auth_timeout_secs", ws.auth_timeout_secs as usize),
        (
            "websocket.ping_interval_secs",
            ws.ping_interval_secs as usize,
        ),
        (
            "websocket.client_timeout_secs",
            ws.client_timeout_secs as usize,
        ),
        (
            "websocket.max_subscriptions_per_connection",
            ws.max_subscriptions_per_connection,
        ),
        (
            "websocket.max_subscriptions_per_user",
            ws.max_subscriptions_per_user,
        ),
        (
            "websocket.max_messages_per_second",
            ws.max_messages_per_second as usize,
        ),
        ("websocket.queue_capacity", ws.queue_capacity),
        ("websocket.max_message_bytes", ws.max_message_bytes),
        ("websocket.read_buffer_bytes", ws.read_buffer_bytes),
    ] {
        if value == 0 {
            return Err(bad(key, "must be greater than 0".to_string()));
        }
    }
    if config.flush.check_interval_ms == 0 {
        return Err(bad(
            "flush.check_interval_ms",
            "must be greater than 0".to_string(),
        ));
    }
    if config.flush.row_group_rows == 0 {
        return Err(bad(
            "flush.row_group_rows",
            "must be greater than 0".to_string(),
        ));
    }
    let auth = &config.auth;
    if auth.password_memory_kib < 8 {
        return Err(bad(
            "auth.password_memory_kib",
            "must be at least 8".to_string(),
        ));
    }
    if auth.password_iterations == 0 {
        return Err(bad(
            "auth.password_iterations",
            "must be greater than 0".to_string(),
        ));
    }
    if auth.max_failed_logins > 0 && auth.lockout_secs == 0 {
        return Err(bad(
            "auth.lockout_secs",
            "must be greater than 0 when auth.max_failed_logins is set".to_string(),
        ));
    }
    if auth.access_token_ttl_secs == 0 || auth.refresh_token_ttl_secs == 0 {
        return Err(bad(
            "auth.access_token_ttl_secs",
            "token lifetimes must be greater than 0".to_string(),
        ));
    }
    if config.logging.level.trim().is_empty() {
        return Err(bad("logging.level", "must not be empty".to_string()));
    }
    if config.logging.slow_query_ms < -1 {
        return Err(bad(
            "logging.slow_query_ms",
            "must be -1 (off), 0 (every request) or a number of milliseconds".to_string(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
