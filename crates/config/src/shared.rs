//! The configuration a running node reads: one immutable snapshot behind an
//! [`ArcSwap`], so readers never block and a reload replaces it whole.

use std::collections::BTreeSet;
use std::sync::Arc;

use arc_swap::ArcSwap;

use crate::load::{ConfigError, ConfigSource, load_from};
use crate::model::{Config, LimitsConfig};

/// Whether a change to `key` (`section.key`) takes effect without a
/// restart. Identity, addresses, storage, authentication keys, the log
/// format and DataFusion's session options are read once at start.
pub fn reloadable(key: &str) -> bool {
    const SECTIONS: [&str; 5] = ["limits.", "flush.", "compaction.", "websocket.", "metrics."];
    const AT_START: [&str; 2] = ["limits.query_memory_bytes", "limits.max_spill_bytes"];
    (SECTIONS.iter().any(|section| key.starts_with(section)) && !AT_START.contains(&key))
        || key == "logging.level"
        || key == "logging.slow_query_ms"
}

/// What a reload changed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reload {
    /// Keys whose new values are now in effect.
    pub applied: Vec<String>,
    /// Keys that changed but keep their old values until a restart.
    pub needs_restart: Vec<String>,
}

/// The node's current configuration, where it came from, and the
/// environment overrides it was started with.
#[derive(Debug)]
pub struct SharedConfig {
    current: ArcSwap<Config>,
    source: ConfigSource,
    env: Vec<(String, String)>,
}

impl SharedConfig {
    pub fn new(config: Config, source: ConfigSource, env: Vec<(String, String)>) -> Self {
        Self {
            current: ArcSwap::from_pointee(config),
            source,
            env,
        }
    }

    /// A configuration built in code, with no file to reload from.
    pub fn fixed(config: Config) -> Self {
        Self::new(config, ConfigSource::Defaults, Vec::new())
    }

    /// The configuration in effect now. Lock-free.
    pub fn get(&self) -> Arc<Config> {
        self.current.load_full()
    }

    pub fn source(&self) -> &ConfigSource {
        &self.source
    }

    /// Reads the source again and applies it. An invalid file changes
    /// nothing.
    pub fn reload(&self) -> Result<Reload, ConfigError> {
        self.reload_checked(|_| Ok(()))
    }

    /// [`reload`](Self::reload), with `check` as a last validation of
    /// the new configuration (for what only the caller can validate).
    pub fn reload_checked(
        &self,
        check: impl FnOnce(&Config) -> Result<(), ConfigError>,
    ) -> Result<Reload, ConfigError> {
        let config = load_from(&self.source, self.env.iter().cloned())?;
        check(&config)?;
        Ok(self.apply(config))
    }

    /// Puts the reloadable part of `next` into effect; every other setting
    /// keeps its current value.
    pub fn apply(&self, next: Config) -> Reload {
        let current = self.get();
        let before = current.entries();
        let after = next.entries();
        let mut report = Reload::default();
        let keys: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for key in keys {
            if before.get(key) == after.get(key) {
                continue;
            }
            if reloadable(key) {
                report.applied.push(key.clone());
            } else {
                report.needs_restart.push(key.clone());
            }
        }
        if !report.applied.is_empty() {
            let mut effective = (*current).clone();
            effective.limits = LimitsConfig {
                query_memory_bytes: current.limits.query_memory_bytes,
                max_spill_bytes: current.limits.max_spill_bytes,
                ..next.limits
            };
            effective.flush = next.flush;
            effective.compaction = next.compaction;
            effective.websocket = next.websocket;
            effective.metrics = next.metrics;
            effective.logging.level = next.logging.level;
            effective.logging.slow_query_ms = next.logging.slow_query_ms;
            debug_assert!(
                effective
                    .entries()
                    .iter()
                    .all(|(k, v)| !reloadable(k) || after.get(k) == Some(v)),
                "every reloadable key is copied"
            );
            self.current.store(Arc::new(effective));
        }
        report
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reloadable_changes_apply_and_others_wait_for_a_restart() {
        let shared = SharedConfig::fixed(Config::default());
        let mut next = Config::default();
        next.limits.max_result_rows = 7;
        next.websocket.queue_capacity = 9;
        next.logging.level = "debug".into();
        next.server.node_id = "other".into();
        next.storage.data_path = "/elsewhere".into();
        let report = shared.apply(next);
        assert_eq!(
            report.applied,
            [
                "limits.max_result_rows",
                "logging.level",
                "websocket.queue_capacity"
            ]
        );
        assert_eq!(
            report.needs_restart,
            ["server.node_id", "storage.data_path"]
        );
        let now = shared.get();
        assert_eq!(now.limits.max_result_rows, 7);
        assert_eq!(now.websocket.queue_capacity, 9);
        assert_eq!(now.logging.level, "debug");
        assert_eq!(now.server.node_id, "node-1");
        assert_eq!(now.storage.data_path, Config::default().storage.data_path);
    }

    #[test]
    fn an_unchanged_file_changes_nothing() {
        let shared = SharedConfig::fixed(Config::default());
        let before = shared.get();
        assert_eq!(shared.apply(Config::default()), Reload::default());
        assert!(Arc::ptr_eq(&before, &shared.get()));
    }

    #[test]
    fn an_invalid_file_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[limits]\nmax_result_rows = 5\n").unwrap();
        let source = ConfigSource::File(path.clone());
        let shared = SharedConfig::new(load_from(&source, []).unwrap(), source, Vec::new());
        std::fs::write(&path, "[limits]\nmax_result_rows = \"many\"\n").unwrap();
        let error = shared.reload().unwrap_err().to_string();
        assert!(error.contains("max_result_rows"), "{error}");
        assert_eq!(shared.get().limits.max_result_rows, 5);
        std::fs::write(&path, "[limits]\nmax_result_rows = 6\n").unwrap();
        assert_eq!(shared.reload().unwrap().applied, ["limits.max_result_rows"]);
        assert_eq!(shared.get().limits.max_result_rows, 6);
    }
}
