use std::io::Write;
use std::path::PathBuf;

use super::*;
use crate::LogFormat;

fn write_config(text: &str) -> TempConfig {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(text.as_bytes()).unwrap();
    TempConfig(file.path().to_path_buf(), file)
}

/// A config file that lives as long as the value.
struct TempConfig(PathBuf, #[allow(dead_code)] tempfile::NamedTempFile);

fn no_env() -> Vec<(String, String)> {
    Vec::new()
}

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn defaults_are_a_single_local_node() {
    let (config, source) = load(None, no_env()).unwrap();
    assert_eq!(source, ConfigSource::Defaults);
    assert_eq!(config.server.host, "127.0.0.1");
    assert_eq!(config.server.port, 8080);
    assert_eq!(config.storage.data_path, PathBuf::from("./data"));
    assert_eq!(config.logging.format, LogFormat::Text);
}

#[test]
fn file_values_are_read() {
    let file = write_config(
        "[server]\nnode_id = \"edge-7\"\nport = 9001\n[limits]\nmax_result_rows = 5\n[logging]\nformat = \"json\"\n",
    );
    let (config, source) = load(Some(&file.0), no_env()).unwrap();
    assert_eq!(source, ConfigSource::File(file.0.clone()));
    assert_eq!(config.server.node_id, "edge-7");
    assert_eq!(config.server.port, 9001);
    assert_eq!(config.limits.max_result_rows, 5);
    assert_eq!(config.logging.format, LogFormat::Json);
}

#[test]
fn unknown_key_names_key_and_line() {
    let file = write_config("[server]\nport = 9001\nprot = 9002\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("prot"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains(&file.0.display().to_string()), "{err}");
}

#[test]
fn unknown_section_is_an_error() {
    let file = write_config("[sever]\nport = 1\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("sever"), "{err}");
}

#[test]
fn wrong_type_names_key_and_line() {
    let file = write_config("[server]\n\nport = \"eighty\"\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("port"), "{err}");
}

#[test]
fn invalid_node_id_is_refused() {
    let file = write_config("[server]\nnode_id = \"node one\"\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("server.node_id"), "{err}");
    let err = load(None, env(&[("QUIVER_SERVER__NODE_ID", &"x".repeat(65))]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("server.node_id"), "{err}");
}

#[test]
fn zero_limits_are_refused() {
    let file = write_config("[limits]\nmax_sql_bytes = 0\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("limits.max_sql_bytes"), "{err}");
}

#[test]
fn memtables_below_a_mebibyte_are_refused() {
    let file = write_config("[storage]\nmemtable_bytes = 65536\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("storage.memtable_bytes"), "{err}");
    let file = write_config("[storage]\nmemtable_bytes = 1048576\nblock_cache_bytes = 0\n");
    let (config, _) = load(Some(&file.0), no_env()).unwrap();
    assert_eq!(config.storage.memtable_bytes, 1 << 20);
    assert_eq!(config.storage.block_cache_bytes, 0);
}

#[test]
fn rate_and_lockout_settings_are_checked() {
    let file = write_config("[limits]\nqueries_per_second = 10\nquery_burst = 5\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("limits.query_burst"), "{err}");
    let file = write_config("[auth]\nmax_failed_logins = 3\nlockout_secs = 0\n");
    let err = load(Some(&file.0), no_env()).unwrap_err().to_string();
    assert!(err.contains("auth.lockout_secs"), "{err}");
    let file = write_config("[limits]\nqueries_per_second = 0\nquery_timeout_ms = 0\n");
    let (config, _) = load(Some(&file.0), no_env()).unwrap();
    assert_eq!(config.limits.queries_per_second, 0);
}

#[test]
fn env_overrides_file_and_defaults() {
    let file = write_config("[server]\nport = 9001\n");
    let (config, _) = load(
        Some(&file.0),
        env(&[
            ("QUIVER_SERVER__PORT", "9000"),
            ("QUIVER_STORAGE__DATA_PATH", "/tmp/q"),
            ("QUIVER_STORAGE__SYNC_WRITES", "true"),
            ("QUIVER_STORAGE__PAGE_CACHE_BYTES", "0"),
            ("QUIVER_DATAFUSION__EXECUTION__BATCH_SIZE", "1024"),
            ("OTHER_VAR", "ignored"),
        ]),
    )
    .unwrap();
    assert_eq!(config.server.port, 9000);
    assert_eq!(config.storage.data_path, PathBuf::from("/tmp/q"));
    assert!(config.storage.sync_writes);
    assert_eq!(config.storage.page_cache_bytes, 0);
    assert_eq!(
        config.datafusion.options(),
        vec![(
            "datafusion.execution.batch_size".to_string(),
            "1024".to_string()
        )]
    );
}

#[test]
fn bad_env_override_names_the_variable() {
    let err = load(None, env(&[("QUIVER_SERVER__PORT", "lots")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("QUIVER_SERVER__PORT"), "{err}");
    let err = load(None, env(&[("QUIVER_SERVER__PROT", "1")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("QUIVER_SERVER__PROT"), "{err}");
    let err = load(None, env(&[("QUIVER_PORT", "1")]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("QUIVER_PORT"), "{err}");
}

#[test]
fn datafusion_options_flatten() {
    let file = write_config(
        "[datafusion]\n\"execution.target_partitions\" = 2\n[datafusion.sql_parser]\nenable_ident_normalization = true\n",
    );
    let (config, _) = load(Some(&file.0), no_env()).unwrap();
    assert_eq!(
        config.datafusion.options(),
        vec![
            (
                "datafusion.execution.target_partitions".to_string(),
                "2".to_string()
            ),
            (
                "datafusion.sql_parser.enable_ident_normalization".to_string(),
                "true".to_string()
            ),
        ]
    );
}

/// Every key of the model, as dotted paths.
fn keys(prefix: &str, table: &toml::Table, out: &mut Vec<String>) {
    for (k, v) in table {
        let path = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(inner) if prefix.is_empty() => keys(&path, inner, out),
            _ => out.push(path),
        }
    }
}

#[test]
fn example_config_parses_and_documents_every_key() {
    let example = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../config.example.toml");
    let (config, _) = load(Some(&example), no_env()).unwrap();
    assert_eq!(config.server, Config::default().server);
    assert_eq!(config.limits, Config::default().limits);

    let text = std::fs::read_to_string(&example).unwrap();
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    let mut expected = Vec::new();
    keys("", &defaults, &mut expected);
    for key in expected {
        let (section, name) = key.split_once('.').unwrap();
        let section_at = text
            .find(&format!("[{section}]"))
            .unwrap_or_else(|| panic!("example lacks section [{section}]"));
        assert!(
            text[section_at..].contains(&format!("{name} = ")),
            "example does not document {key}"
        );
    }
    assert!(text.contains("[datafusion]"), "example lacks [datafusion]");
}

#[test]
fn settings_list_every_effective_key() {
    let (config, _) = load(None, env(&[("QUIVER_SERVER__PORT", "9100")])).unwrap();
    let settings = config.settings();
    assert!(settings.contains(&("server.port".to_string(), "9100".to_string())));
    assert!(settings.iter().any(|(k, _)| k == "limits.max_result_rows"));
    let value = |key: &str| settings.iter().find(|(k, _)| k == key).unwrap().1.clone();
    assert_eq!(value("auth.jwt_secret"), "********");
    assert_eq!(value("auth.root_password"), "********");
    assert_eq!(value("auth.access_token_ttl_secs"), "3600");
    assert!(settings.windows(2).all(|w| w[0].0 < w[1].0));
}

#[test]
fn the_configuration_doc_lists_every_key_and_whether_it_reloads() {
    let doc = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
    let text = std::fs::read_to_string(&doc).unwrap();
    let defaults = toml::Table::try_from(Config::default()).unwrap();
    let mut expected = Vec::new();
    keys("", &defaults, &mut expected);
    for key in expected {
        let row = text
            .lines()
            .find(|l| l.starts_with(&format!("| `{key}` |")))
            .unwrap_or_else(|| panic!("docs/configuration.md lacks {key}"));
        let reload = row.split(" | ").nth(3).unwrap();
        let marker = if crate::reloadable(&key) {
            "live"
        } else {
            "restart"
        };
        assert_eq!(reload, marker, "{key}");
        let env = format!("QUIVER_{}", key.to_uppercase().replace('.', "__"));
        assert!(row.contains(&env), "{key} row lacks {env}");
    }
}
