//! Throws random and mangled SQL and request bodies at a running server:
//! every answer must be a well-formed envelope with a 2xx or 4xx status,
//! and the server must still answer correctly afterwards.

use std::time::Duration;

use quiver_tests::TestServer;
use serde_json::{Value, json};

const SEED_STATEMENTS: &[&str] = &[
    "SELECT id, name FROM fz.t WHERE id = 1",
    "SELECT COUNT(*), MAX(score) FROM fz.t GROUP BY name HAVING COUNT(*) > 0",
    "INSERT INTO fz.t (id, name, score) VALUES (100, 'x', 1.5)",
    "UPDATE fz.t SET score = score + 1 WHERE name LIKE 'a%'",
    "DELETE FROM fz.t WHERE id > 1000",
    "CREATE TABLE fz.u (id BIGINT PRIMARY KEY, v TEXT DEFAULT 'd') WITH (FLUSH_POLICY = 'rows:10')",
    "SELECT a.id FROM fz.t a JOIN fz.t b ON a.id = b.id ORDER BY 1 LIMIT 3",
    "WITH c AS (SELECT * FROM fz.t) SELECT SUM(score) OVER (ORDER BY id) FROM c",
    "INSERT INTO fz.t VALUES (5, 'e', 2.0) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name",
    "SHOW TABLES IN fz; DESCRIBE TABLE fz.t; SHOW NAMESPACES",
    "SELECT CAST(name AS INT), $1 FROM fz.t",
    "DROP TABLE IF EXISTS fz.zz; CREATE NAMESPACE IF NOT EXISTS fz2",
];

const TOKENS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "INSERT",
    "INTO",
    "VALUES",
    "UPDATE",
    "SET",
    "DELETE",
    "CREATE",
    "TABLE",
    "NAMESPACE",
    "DROP",
    "USE",
    "SHOW",
    "DESCRIBE",
    "fz.t",
    "fz",
    "t",
    "id",
    "name",
    "score",
    "(",
    ")",
    ",",
    ";",
    "*",
    "=",
    "<>",
    "+",
    "-",
    "/",
    "'",
    "'a'",
    "\"",
    "1",
    "-1",
    "0.5",
    "NULL",
    "AND",
    "OR",
    "NOT",
    "IN",
    "LIKE",
    "BETWEEN",
    "JOIN",
    "ON",
    "GROUP BY",
    "ORDER BY",
    "LIMIT",
    "$1",
    "$0",
    "$99",
    "ON CONFLICT",
    "DO NOTHING",
    "EXCLUDED.name",
    "PRIMARY KEY",
    "BIGINT",
    "TEXT",
    "WITH",
    "AS",
    "CASE",
    "WHEN",
    "END",
    "--",
    "/*",
    "*/",
    "\\",
    "\u{0}",
    "☃",
    "9999999999999999999999",
];

fn mangle(rng: &mut fastrand::Rng, sql: &str) -> String {
    let mut chars: Vec<char> = sql.chars().collect();
    for _ in 0..rng.usize(1..6) {
        if chars.is_empty() {
            break;
        }
        let at = rng.usize(..chars.len());
        match rng.u8(..5) {
            0 => {
                chars.remove(at);
            }
            1 => chars.insert(
                at,
                rng.choice(['(', ')', '\'', ';', ',', '"', ' ', '$', '0'])
                    .unwrap(),
            ),
            2 => chars.truncate(at),
            3 => {
                let end = (at + rng.usize(1..10)).min(chars.len());
                let copy: Vec<char> = chars[at..end].to_vec();
                chars.splice(at..at, copy);
            }
            _ => chars[at] = char::from(rng.u8(32..127)),
        }
    }
    chars.into_iter().collect()
}

fn token_soup(rng: &mut fastrand::Rng) -> String {
    (0..rng.usize(1..15))
        .map(|_| *rng.choice(TOKENS).unwrap())
        .collect::<Vec<_>>()
        .join(" ")
}

fn random_body(rng: &mut fastrand::Rng) -> Vec<u8> {
    match rng.u8(..6) {
        0 => (0..rng.usize(0..200)).map(|_| rng.u8(..)).collect(),
        1 => json!({"sql": token_soup(rng), "params": [rng.i64(..), "s", null, true]})
            .to_string()
            .into_bytes(),
        2 => json!({"sql": [1, 2]}).to_string().into_bytes(),
        3 => format!("{{\"sql\": \"{}", token_soup(rng)).into_bytes(),
        4 => json!({"sql": "SELECT 1", "namespace_id": token_soup(rng)})
            .to_string()
            .into_bytes(),
        _ => json!({"sql": "SELECT $1", "params": [[1], {"a": 2}]})
            .to_string()
            .into_bytes(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mangled_input_never_breaks_the_server() {
    let server = TestServer::start().await;
    server
        .sql_ok("CREATE NAMESPACE fz; CREATE TABLE fz.t (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE)")
        .await;
    server
        .sql_ok("INSERT INTO fz.t VALUES (1, 'a', 1.0), (2, 'b', 2.0), (3, 'c', NULL)")
        .await;
    // A table the random input never names, to check afterwards.
    server
        .sql_ok("CREATE NAMESPACE keep; CREATE TABLE keep.items (id BIGINT PRIMARY KEY); INSERT INTO keep.items VALUES (1), (2), (3)")
        .await;
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = format!("{}/v1/api/sql", server.base_url);
    let mut rng = fastrand::Rng::with_seed(0x51ee_d00d);
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..1200 {
        let body: Vec<u8> = match i % 4 {
            0 | 1 => {
                let seed = rng.choice(SEED_STATEMENTS).unwrap();
                let sql = mangle(&mut rng, seed);
                let params = if sql.contains('$') {
                    json!([1])
                } else {
                    json!([])
                };
                json!({"sql": sql, "params": params})
                    .to_string()
                    .into_bytes()
            }
            2 => json!({"sql": token_soup(&mut rng)})
                .to_string()
                .into_bytes(),
            _ => random_body(&mut rng),
        };
        let response = client
            .post(&url)
            .header("content-type", "application/json")
            .header("authorization", quiver_tests::ROOT_BASIC)
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "request {i} failed: {e}: {}",
                    String::from_utf8_lossy(&body)
                )
            });
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let parsed: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("request {i}: body is not JSON ({e}): {text}"));
        assert!(
            status == 200 || (400..500).contains(&status),
            "request {i} got {status} for {}: {text}",
            String::from_utf8_lossy(&body)
        );
        if status != 200 {
            assert_eq!(parsed["status"], "error", "{text}");
            assert!(
                parsed["error"]["code"]
                    .as_str()
                    .is_some_and(|c| !c.is_empty()),
                "{text}"
            );
        }
        *statuses.entry(status).or_default() += 1;
    }
    eprintln!(
        "statuses of {} random requests: {statuses:?}",
        statuses.values().sum::<usize>()
    );
    // Most inputs are broken, but some must have gone through.
    assert!(
        statuses.get(&200).copied().unwrap_or(0) > 10,
        "{statuses:?}"
    );
    assert!(
        statuses.get(&400).copied().unwrap_or(0) > 500,
        "{statuses:?}"
    );

    // The server still answers correctly.
    let after = server.sql_ok("SELECT id FROM keep.items ORDER BY id").await;
    assert_eq!(
        after.rows(0),
        &vec![json!(["1"]), json!(["2"]), json!(["3"])]
    );
    let one = server.sql_ok("SELECT 1 + 1 AS two").await;
    assert_eq!(one.rows(0), &vec![json!(["2"])]);
    assert_eq!(server.get("/health").await.status, 200);
    server.stop().await;
}
