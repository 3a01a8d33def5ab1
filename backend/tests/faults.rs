//! Storage faults on the real binary: a data directory the node cannot
//! create stops it with one clear line; a disk that fills while clients
//! write refuses writes with a clear error, keeps answering reads, and
//! loses no acknowledged row.

mod common;

use std::time::Duration;

use common::{piped, sigterm, start, start_command, write_config};
use serde_json::{Value, json};
use tokio::process::Command;

async fn sql(url: &str, sql: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{url}/v1/api/sql"))
        .basic_auth("root", Some(""))
        .json(&json!({ "sql": sql }))
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the server answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("a JSON body"))
}

fn count(body: &Value) -> i64 {
    let cell = &body["results"][0]["rows"][0][0];
    cell.as_str()
        .and_then(|s| s.parse().ok())
        .or_else(|| cell.as_i64())
        .unwrap_or_else(|| panic!("a count: {body}"))
}

#[tokio::test]
async fn a_data_directory_that_cannot_be_created_stops_the_node_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, "not a directory").unwrap();
    // A regular file where the directory should be, and a path in /proc,
    // which nobody can create directories in (root included).
    for (data_path, reason) in [
        (file.display().to_string(), "Not a directory"),
        (
            "/proc/quiver-data".to_string(),
            "cannot create data directory",
        ),
    ] {
        let config = write_config(
            dir.path(),
            &format!("[server]\nport = 0\n[storage]\ndata_path = {data_path:?}\n"),
        );
        let mut command = common::quiver();
        command
            .env("RUST_BACKTRACE", "1")
            .arg("--config")
            .arg(&config);
        let output = tokio::time::timeout(Duration::from_secs(30), command.output())
            .await
            .expect("exits within 30 s")
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("quiver: cannot create data directory") && last.contains(reason),
            "{stderr}"
        );
        assert_eq!(
            stderr.lines().count(),
            1,
            "one line, no backtrace: {stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_refuses_writes_clearly_and_loses_no_acknowledged_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nport = 0\n[storage]\ndata_path = {:?}\n[flush]\nrows = 1000000\n",
            dir.path().join("data").display().to_string()
        ),
    );
    // The node may write no file beyond 3 MB: its write-ahead log fills
    // up as a full disk would (EFBIG instead of ENOSPC, with the signal
    // that would otherwise end the process ignored).
    let mut limited = Command::new("bash");
    limited.args([
        "-c",
        "trap '' XFSZ; ulimit -f 3000; exec \"$0\" --config \"$1\"",
        env!("CARGO_BIN_EXE_quiver"),
    ]);
    limited.arg(&config);
    piped(&mut limited);
    let (mut child, address, log) = start_command(limited).await;
    let (status, body) = sql(
        &address,
        "CREATE NAMESPACE f; CREATE TABLE f.t (id BIGINT PRIMARY KEY, body TEXT)",
    )
    .await;
    assert_eq!(status, 200, "{body}");

    let body_text = "x".repeat(20_000);
    let mut acknowledged = 0;
    let refusal = loop {
        let id = acknowledged + 1;
        let (status, body) = sql(
            &address,
            &format!("INSERT INTO f.t VALUES ({id}, '{body_text}')"),
        )
        .await;
        if status != 200 {
            break (status, body);
        }
        acknowledged = id;
        assert!(acknowledged < 1000, "the limit never hit");
    };
    let (status, body) = refusal;
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "INTERNAL_ERROR", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("storage unavailable: File too large"),
        "{message}"
    );
    assert!(!message.contains('/'), "no path in the message: {message}");
    log.wait_for(&["storage unavailable", "File too large"])
        .await;

    // Reads still work, and every acknowledged row is there.
    let (status, body) = sql(&address, "SELECT count(*) FROM f.t").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(count(&body), acknowledged);
    // Later writes are refused the same way, not hung or half-applied.
    let (status, body) = sql(&address, "INSERT INTO f.t VALUES (-1, 'small')").await;
    assert_eq!(status, 500, "{body}");
    sigterm(&mut child).await;

    // With space again, the node starts with every acknowledged row and
    // takes writes.
    let (mut child, address) = start(&config).await;
    let (_, body) = sql(
        &address,
        "SELECT count(*) FROM f.t WHERE id BETWEEN 1 AND 1000 AND length(body) = 20000",
    )
    .await;
    assert_eq!(count(&body), acknowledged);
    let (_, body) = sql(&address, "SELECT count(*) FROM f.t").await;
    assert!(count(&body) <= acknowledged + 1, "{body}");
    let (status, body) = sql(&address, "INSERT INTO f.t VALUES (5000, 'after')").await;
    assert_eq!(status, 200, "{body}");
    assert!(sigterm(&mut child).await.success());
    println!("{acknowledged} rows acknowledged before the disk was full");
}
