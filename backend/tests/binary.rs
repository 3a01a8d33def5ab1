//! The `quiver` binary as an operator runs it: config file, environment
//! overrides, start-up errors, serving, SIGTERM, restart.

mod common;

use std::time::Duration;

use common::{quiver, sigterm, start, write_config};
use tokio::process::Command;

async fn failure(mut command: Command) -> String {
    let output = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("exits promptly")
        .expect("runs");
    assert!(!output.status.success(), "expected a start-up failure");
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn unknown_key_stops_start_up_naming_key_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[server]\nport = 0\nnode = \"x\"\n");
    let mut command = quiver();
    command.arg("--config").arg(&path);
    let stderr = failure(command).await;
    assert!(stderr.contains("node"), "{stderr}");
    assert!(stderr.contains("line 3"), "{stderr}");
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
}

#[tokio::test]
async fn invalid_environment_override_stops_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), "[server]\nport = 0\n");
    let mut command = quiver();
    command
        .arg("--config")
        .arg(&path)
        .env("QUIVER_SERVER__PORT", "eighty");
    let stderr = failure(command).await;
    assert!(stderr.contains("QUIVER_SERVER__PORT"), "{stderr}");
}

#[tokio::test]
async fn missing_config_file_is_an_error() {
    let mut command = quiver();
    command.arg("--config").arg("/nonexistent/quiver.toml");
    let stderr = failure(command).await;
    assert!(stderr.contains("/nonexistent/quiver.toml"), "{stderr}");
}

#[tokio::test]
async fn serves_stops_on_sigterm_and_keeps_data() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nnode_id = \"bin-node\"\nport = 0\n[storage]\ndata_path = {:?}\n",
            data.display().to_string()
        ),
    );
    let client = reqwest::Client::new();

    let (mut child, address) = start(&config).await;
    let health: serde_json::Value = client
        .get(format!("http://{address}/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["node_id"], "bin-node");
    let write = client
        .post(format!("http://{address}/v1/api/sql"))
        .basic_auth("root", Some(""))
        .body(r#"{"sql":"CREATE TABLE default.kept (id INT PRIMARY KEY, v TEXT); INSERT INTO kept VALUES (1, 'one')"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(write.status(), 200);
    assert!(
        sigterm(&mut child).await.success(),
        "exit code after SIGTERM"
    );

    let (mut child, address) = start(&config).await;
    let read: serde_json::Value = client
        .post(format!("http://{address}/v1/api/sql"))
        .basic_auth("root", Some(""))
        .body(r#"{"sql":"SELECT v FROM kept WHERE id = 1"}"#)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(read["results"][0]["rows"], serde_json::json!([["one"]]));
    assert!(sigterm(&mut child).await.success());
}
