//! Large results over real HTTP: streamed as produced (chunked), bounded
//! by rows and bytes, and a failure after the first bytes still ends the
//! answer as one well-formed envelope.

use quiver_tests::{ROOT_BASIC, TestServer};
use serde_json::{Value, json};

/// Rows of about 30 bytes each in JSON.
fn rows_sql(rows: usize) -> String {
    format!("SELECT value AS id, 'row ' || value AS label FROM range({rows})")
}

struct Raw {
    status: u16,
    chunked: bool,
    chunks: usize,
    body: Value,
}

/// Posts `sql` as root and reads the answer chunk by chunk.
async fn post(server: &TestServer, sql: &str) -> Raw {
    let mut response = server
        .client()
        .post(format!("{}/v1/api/sql", server.base_url))
        .header("authorization", ROOT_BASIC)
        .json(&json!({ "sql": sql }))
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let chunked = response.headers().get("content-length").is_none();
    let mut bytes = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = response.chunk().await.expect("body read") {
        bytes.extend_from_slice(&chunk);
        chunks += 1;
    }
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|e| {
        panic!(
            "not one JSON document ({e}): {}",
            String::from_utf8_lossy(&bytes)
        )
    });
    Raw {
        status,
        chunked,
        chunks,
        body,
    }
}

#[tokio::test]
async fn a_large_result_is_streamed_and_complete() {
    let server = TestServer::start().await;
    let answer = post(&server, &rows_sql(60_000)).await;
    assert_eq!(answer.status, 200);
    assert!(answer.chunked, "a large answer has no length up front");
    assert!(answer.chunks > 1, "sent in {} chunk(s)", answer.chunks);
    assert_eq!(answer.body["status"], "success");
    assert!(answer.body["took"].as_f64().unwrap() > 0.0);
    let rows = answer.body["results"][0]["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 60_000);
    assert_eq!(answer.body["results"][0]["row_count"], 60_000);
    // Every row once (in the order the scan's partitions produced them).
    let mut ids: Vec<u64> = rows
        .iter()
        .map(|row| {
            let id = row[0].as_str().unwrap();
            assert_eq!(row[1], format!("row {id}"));
            id.parse().unwrap()
        })
        .collect();
    ids.sort_unstable();
    assert!(ids.iter().copied().eq(0..60_000));

    // A small one still arrives whole, with its length.
    let small = post(&server, "SELECT 1 AS one").await;
    assert!(!small.chunked);
    assert_eq!(small.body["status"], "success");
    server.stop().await;
}

#[tokio::test]
async fn limits_passed_after_the_first_bytes_end_the_stream_with_an_error() {
    // Batches of 8,192 rows of about 23 bytes: the answer has begun by
    // the time either cap is passed.
    let server = TestServer::start_with(|c| c.limits.max_result_bytes = 600_000).await;
    let bytes = post(&server, &format!("SELECT 1 AS n; {}", rows_sql(50_000))).await;
    assert_eq!(
        bytes.status, 200,
        "the status was sent with the first bytes"
    );
    assert_eq!(bytes.body["status"], "error", "{}", bytes.body["error"]);
    assert_eq!(bytes.body["error"]["code"], "RESULT_TOO_LARGE");
    assert!(
        bytes.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_result_bytes")
    );
    assert_eq!(bytes.body["error"]["details"]["statement_index"], 1);
    assert_eq!(bytes.body["results"][0]["row_count"], 1);
    let sent = bytes.body["results"][1]["rows"].as_array().unwrap().len();
    assert!(sent > 0 && sent < 50_000, "{sent} rows before the cap");
    assert_eq!(bytes.body["results"][1]["row_count"], sent);

    server.stop().await;

    let server = TestServer::start_with(|c| c.limits.max_result_rows = 20_000).await;
    let rows = post(&server, &rows_sql(60_000)).await;
    assert_eq!(rows.status, 200);
    assert_eq!(rows.body["status"], "error");
    assert_eq!(rows.body["error"]["code"], "RESULT_TOO_LARGE");
    assert!(
        rows.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("max_result_rows")
    );
    server.stop().await;
}

#[tokio::test]
async fn limits_passed_before_any_byte_is_sent_get_their_status() {
    let server = TestServer::start_with(|c| c.limits.max_result_bytes = 1000).await;
    let answer = post(&server, &rows_sql(1000)).await;
    assert_eq!(answer.status, 400);
    assert!(!answer.chunked);
    assert_eq!(answer.body["status"], "error");
    assert_eq!(answer.body["error"]["code"], "RESULT_TOO_LARGE");
    assert_eq!(answer.body["results"], json!([]));
    server.stop().await;
}
