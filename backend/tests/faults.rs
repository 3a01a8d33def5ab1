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

/// Every file under `dir`.
fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .flatten()
        .flat_map(|entry| {
            let path = entry.path();
            if path.is_dir() {
                walk(&path)
            } else {
                vec![path]
            }
        })
        .collect()
}

/// `n` characters that zstd cannot shrink much, different for each seed.
fn noise(seed: u64, n: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ALPHABET[(state >> 33) as usize % ALPHABET.len()] as char
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_during_a_flush_fails_the_job_and_keeps_every_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nport = 0\n[storage]\ndata_path = {:?}\n[flush]\nrows = 1000000\n",
            dir.path().join("data").display().to_string()
        ),
    );
    // No file beyond 3 MB. The rows go to two write-ahead logs of about
    // 2.5 MB each (dropping a table switches to a new one), so every
    // write fits; their segment, about 3.7 MB, does not.
    let mut limited = Command::new("bash");
    limited.args([
        "-c",
        "trap '' XFSZ; ulimit -f 3000; exec \"$0\" --config \"$1\"",
        env!("CARGO_BIN_EXE_quiver"),
    ]);
    limited.arg(&config);
    piped(&mut limited);
    let (mut child, address, _log) = start_command(limited).await;
    let (status, body) = sql(
        &address,
        "CREATE NAMESPACE f; CREATE TABLE f.t (id BIGINT PRIMARY KEY, body TEXT)",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    const ROWS: u64 = 250;
    const ROW_BYTES: usize = 20_000;
    for id in 1..=ROWS {
        if id == ROWS / 2 + 1 {
            let logs = || {
                walk(&dir.path().join("data").join("rocksdb"))
                    .into_iter()
                    .filter(|f| f.extension().is_some_and(|e| e == "log"))
                    .max()
            };
            let before = logs();
            let (status, body) = sql(
                &address,
                "CREATE TABLE f.other (id BIGINT PRIMARY KEY); DROP TABLE f.other",
            )
            .await;
            assert_eq!(status, 200, "{body}");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while logs() == before {
                assert!(
                    std::time::Instant::now() < deadline,
                    "no new write-ahead log"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let text = noise(id, ROW_BYTES);
        let (status, body) = sql(
            &address,
            &format!("INSERT INTO f.t VALUES ({id}, '{text}')"),
        )
        .await;
        assert_eq!(status, 200, "row {id}: {body}");
    }
    let expected_bytes = ROWS as i64 * ROW_BYTES as i64;
    let check = |body: &Value| {
        let row = &body["results"][0]["rows"][0];
        let number = |v: &Value| {
            v.as_str()
                .and_then(|s| s.parse::<i64>().ok())
                .or_else(|| v.as_i64())
        };
        (number(&row[0]), number(&row[1]))
    };
    let all = "SELECT count(*), sum(length(body)) FROM f.t";

    let (status, body) = sql(&address, "STORAGE FLUSH TABLE f.t").await;
    assert_eq!(status, 500, "the flush cannot have fit: {body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message == "segment files cannot be read or written: File too large",
        "{message}"
    );
    assert!(!message.contains('/'), "no path in the message: {message}");
    // Nothing half-written is left among the segment files.
    let leftovers: Vec<_> = walk(&dir.path().join("data").join("cold"))
        .into_iter()
        .filter(|path| !path.ends_with("manifest.json"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (status, body) = sql(
        &address,
        "SELECT status, message FROM system.jobs WHERE job_type = 'flush' AND status = 'failed'",
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let failed = body["results"][0]["rows"].as_array().unwrap();
    assert_eq!(failed.len(), 1, "{body}");
    assert!(
        failed[0][1].as_str().unwrap().contains("File too large"),
        "{body}"
    );

    // Every row is still there, hot, and the table takes writes.
    let (status, body) = sql(&address, all).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(check(&body), (Some(ROWS as i64), Some(expected_bytes)));
    let (status, body) = sql(&address, "INSERT INTO f.t VALUES (0, 'small')").await;
    assert_eq!(status, 200, "{body}");
    sigterm(&mut child).await;

    // With space again, the node has every row, and the flush succeeds.
    let (mut child, address) = start(&config).await;
    let (_, body) = sql(&address, all).await;
    assert_eq!(
        check(&body),
        (Some(ROWS as i64 + 1), Some(expected_bytes + 5))
    );
    let (status, body) = sql(&address, "STORAGE FLUSH TABLE f.t").await;
    assert_eq!(status, 200, "{body}");
    let files = walk(&dir.path().join("data").join("cold"));
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet")),
        "{files:?}"
    );
    let (_, body) = sql(&address, all).await;
    assert_eq!(
        check(&body),
        (Some(ROWS as i64 + 1), Some(expected_bytes + 5))
    );
    let (_, body) = sql(&address, "SELECT body FROM f.t WHERE id = 77").await;
    assert_eq!(
        body["results"][0]["rows"][0][0],
        json!(noise(77, ROW_BYTES))
    );
    assert!(sigterm(&mut child).await.success());
}
