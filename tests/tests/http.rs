//! The SQL endpoint over real HTTP: envelope, errors, params, batches,
//! types, limits and persistence across restarts.

use quiver_tests::TestServer;
use serde_json::json;

#[tokio::test]
async fn select_one_has_the_contract_envelope() {
    let server = TestServer::start().await;
    let response = server.sql("SELECT 1 AS one, 'x' AS two").await;
    assert_eq!(response.status, 200);
    let body = &response.body;
    assert_eq!(body["status"], "success");
    assert!(body["took"].as_f64().unwrap() >= 0.0);
    let result = &body["results"][0];
    assert_eq!(result["row_count"], 1);
    assert_eq!(result["as_user"], "root");
    assert_eq!(result["rows"], json!([["1", "x"]]));
    assert_eq!(
        result["schema"][0],
        json!({"name": "one", "data_type": "BigInt", "index": 0, "flags": ["nn"]})
    );
    assert_eq!(result["schema"][1]["data_type"], "Text");
    server.stop().await;
}

#[tokio::test]
async fn health_names_the_node() {
    let server = TestServer::start_with(|c| c.server.node_id = "edge-42".into()).await;
    for path in ["/health", "/v1/api/healthcheck"] {
        let response = server.get(path).await;
        assert_eq!(response.status, 200);
        assert_eq!(response.body["status"], "healthy");
        assert_eq!(response.body["api_version"], "v1");
        assert_eq!(response.body["node_id"], "edge-42");
        assert!(response.body["version"].is_string());
        assert!(response.body["build_date"].is_string());
    }
    let missing = server.get("/v1/api/nothing").await;
    assert_eq!(missing.status, 404);
    assert_eq!(missing.body["error"]["code"], "NOT_FOUND");
    let wrong_method = server.get("/v1/api/sql").await;
    assert_eq!(wrong_method.status, 405);
    assert_eq!(wrong_method.body["error"]["code"], "METHOD_NOT_ALLOWED");
    server.stop().await;
}

#[tokio::test]
async fn two_nodes_in_one_process_are_independent() {
    let a = TestServer::start_with(|c| c.server.node_id = "a".into()).await;
    let b = TestServer::start_with(|c| c.server.node_id = "b".into()).await;
    a.sql_ok("CREATE NAMESPACE only_a").await;
    let on_b = b.sql("USE only_a").await;
    assert_eq!(on_b.code(), "TABLE_NOT_FOUND");
    assert_eq!(a.get("/health").await.body["node_id"], "a");
    assert_eq!(b.get("/health").await.body["node_id"], "b");
    a.stop().await;
    b.stop().await;
}

#[tokio::test]
async fn data_survives_restart_and_seq_keeps_increasing() {
    let server = TestServer::start().await;
    server.sql_ok("CREATE NAMESPACE app; CREATE TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, at TIMESTAMP DEFAULT NOW())").await;
    server
        .sql_ok("INSERT INTO app.notes (id, body) VALUES (1, 'one'), (2, 'two'), (3, 'three')")
        .await;
    server
        .sql_ok(
            "DELETE FROM app.notes WHERE id = 2; UPDATE app.notes SET body = 'uno' WHERE id = 1",
        )
        .await;
    let before = server.sql_ok("SELECT MAX(_seq) FROM app.notes").await;
    let max_before: i64 = before.rows(0)[0][0].as_str().unwrap().parse().unwrap();

    let server = server.restart().await;
    let response = server
        .sql_ok("SELECT id, body FROM app.notes ORDER BY id")
        .await;
    assert_eq!(
        response.rows(0),
        &vec![json!(["1", "uno"]), json!(["3", "three"])]
    );
    let tables = server.sql_ok("SHOW TABLES IN app").await;
    assert_eq!(tables.rows(0).len(), 1);
    server
        .sql_ok("INSERT INTO app.notes (id, body) VALUES (4, 'four')")
        .await;
    let after = server
        .sql_ok("SELECT _seq FROM app.notes WHERE id = 4")
        .await;
    let seq_after: i64 = after.rows(0)[0][0].as_str().unwrap().parse().unwrap();
    assert!(seq_after > max_before, "{seq_after} <= {max_before}");
    // The primary key is still enforced against rows from before the restart.
    let duplicate = server
        .sql("INSERT INTO app.notes (id, body) VALUES (3, 'again')")
        .await;
    assert_eq!(duplicate.code(), "SQL_EXECUTION_ERROR");
    server.stop().await;
}

#[tokio::test]
async fn params_bind_positionally() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE TABLE default.p (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE, ok BOOLEAN)",
        )
        .await;
    let insert = server
        .post(json!({"sql": "INSERT INTO p VALUES ($1, $2, $3, $4)", "params": [7, "o'neil", 2.5, true]}))
        .await;
    assert_eq!(insert.status, 200, "{}", insert.body);
    assert_eq!(insert.body["results"][0]["row_count"], 1);
    let select = server
        .post(json!({"sql": "SELECT name, score, ok FROM p WHERE id = $1 AND name = $2", "params": [7, "o'neil"]}))
        .await;
    assert_eq!(select.rows(0), &vec![json!(["o'neil", 2.5, true])]);

    let too_few = server
        .post(json!({"sql": "SELECT $1, $2", "params": [1]}))
        .await;
    assert_eq!((too_few.status, too_few.code()), (400, "INVALID_PARAMETER"));
    let too_many = server
        .post(json!({"sql": "SELECT $1", "params": [1, 2]}))
        .await;
    assert_eq!(
        (too_many.status, too_many.code()),
        (400, "INVALID_PARAMETER")
    );
    let not_scalar = server
        .post(json!({"sql": "SELECT $1", "params": [{"a": 1}]}))
        .await;
    assert_eq!(not_scalar.code(), "INVALID_PARAMETER");
    let batch = server
        .post(json!({"sql": "SELECT $1; SELECT 2", "params": [1]}))
        .await;
    assert_eq!((batch.status, batch.code()), (400, "PARAMS_WITH_BATCH"));
    let wrong_type = server
        .post(json!({"sql": "INSERT INTO p (id) VALUES ($1)", "params": ["seven"]}))
        .await;
    assert_eq!(
        (wrong_type.status, wrong_type.code()),
        (400, "SQL_EXECUTION_ERROR")
    );
    assert!(
        wrong_type.message().contains("column id"),
        "{}",
        wrong_type.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn batches_return_one_result_per_statement_and_stop_at_the_first_error() {
    let server = TestServer::start().await;
    let response = server
        .sql("CREATE NAMESPACE b; CREATE TABLE b.t (id INT PRIMARY KEY); INSERT INTO b.t VALUES (1), (2); SELECT COUNT(*) AS n FROM b.t")
        .await;
    assert_eq!(response.status, 200, "{}", response.body);
    let results = response.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[2]["row_count"], 2);
    assert_eq!(results[2]["message"], "Inserted 2 row(s)");
    assert!(results[2].get("rows").is_none());
    assert_eq!(results[3]["rows"], json!([["2"]]));

    let failing = server
        .sql("INSERT INTO b.t VALUES (3); SELECT * FROM b.missing; INSERT INTO b.t VALUES (4)")
        .await;
    assert_eq!(failing.status, 404);
    assert_eq!(failing.code(), "TABLE_NOT_FOUND");
    assert_eq!(failing.message(), "table not found: b.missing");
    assert_eq!(failing.body["error"]["details"]["statement_index"], 1);
    assert_eq!(failing.body["status"], "error");
    assert_eq!(failing.body["results"], json!([]));
    // Statements before the failing one took effect, those after did not.
    let count = server.sql_ok("SELECT id FROM b.t ORDER BY id").await;
    assert_eq!(count.rows(0), &vec![json!([1]), json!([2]), json!([3])]);
    server.stop().await;
}

#[tokio::test]
async fn namespace_id_sets_the_default_namespace() {
    let server = TestServer::start().await;
    server
        .sql_ok("CREATE NAMESPACE inv; CREATE TABLE inv.stock (sku TEXT PRIMARY KEY, qty INT)")
        .await;
    let insert = server
        .post(json!({"sql": "INSERT INTO stock VALUES ('a', 1)", "namespace_id": "inv"}))
        .await;
    assert_eq!(insert.status, 200, "{}", insert.body);
    let select = server
        .post(json!({"sql": "SELECT qty FROM stock", "namespace_id": "inv"}))
        .await;
    assert_eq!(select.rows(0), &vec![json!([1])]);
    let unqualified = server.sql("SELECT qty FROM stock").await;
    assert_eq!(unqualified.code(), "TABLE_NOT_FOUND");
    assert_eq!(unqualified.message(), "table not found: default.stock");
    let bad = server
        .post(json!({"sql": "SELECT 1", "namespace_id": "no such"}))
        .await;
    assert_eq!(bad.code(), "INVALID_PARAMETER");
    server.stop().await;
}

#[tokio::test]
async fn bad_requests_get_the_error_envelope() {
    let server = TestServer::start_with(|c| {
        c.limits.max_body_bytes = 4096;
        c.limits.max_sql_bytes = 1000;
        c.limits.max_result_rows = 5;
        c.limits.max_statements = 3;
        c.limits.max_params = 2;
    })
    .await;
    let cases: Vec<(reqwest::Body, u16, &str)> = vec![
        ("{not json".into(), 400, "INVALID_PARAMETER"),
        ("[]".into(), 400, "INVALID_PARAMETER"),
        (
            json!({"sql": 5}).to_string().into(),
            400,
            "INVALID_PARAMETER",
        ),
        (json!({"sql": ""}).to_string().into(), 400, "EMPTY_SQL"),
        (json!({}).to_string().into(), 400, "EMPTY_SQL"),
        (
            json!({"sql": " ;; -- nothing\n"}).to_string().into(),
            400,
            "EMPTY_SQL",
        ),
        (
            json!({"sql": "SELEKT 1"}).to_string().into(),
            400,
            "INVALID_SQL",
        ),
        (
            json!({"sql": "SELECT * FROM default.nope"})
                .to_string()
                .into(),
            404,
            "TABLE_NOT_FOUND",
        ),
        (
            json!({"sql": "SELECT * FROM nons.nope"}).to_string().into(),
            404,
            "TABLE_NOT_FOUND",
        ),
        (
            json!({"sql": format!("SELECT '{}'", "x".repeat(1000))})
                .to_string()
                .into(),
            400,
            "INVALID_SQL",
        ),
        ("x".repeat(5000).into(), 413, "PAYLOAD_TOO_LARGE"),
        (
            json!({"sql": "SELECT 1; SELECT 2; SELECT 3; SELECT 4"})
                .to_string()
                .into(),
            400,
            "INVALID_SQL",
        ),
        (
            json!({"sql": "SELECT $1", "params": [1, 2, 3]})
                .to_string()
                .into(),
            400,
            "INVALID_PARAMETER",
        ),
        (
            json!({"sql": "SELECT * FROM generate_series(1, 10)"})
                .to_string()
                .into(),
            400,
            "RESULT_TOO_LARGE",
        ),
        (
            json!({"sql": "GRANT SELECT ON default.t TO bob"})
                .to_string()
                .into(),
            400,
            "INVALID_SQL",
        ),
        (
            json!({"sql": "SELECT 1", "extra": true}).to_string().into(),
            400,
            "INVALID_PARAMETER",
        ),
    ];
    for (body, status, code) in cases {
        let response = server.post_raw(body).await;
        assert_eq!(
            (response.status, response.code()),
            (status, code),
            "{}",
            response.body
        );
        assert_eq!(response.body["status"], "error");
        assert!(!response.message().is_empty());
        assert!(response.body["took"].is_number());
    }
    let fits = server.sql("SELECT * FROM generate_series(1, 5)").await;
    assert_eq!(fits.status, 200);
    let too_large = server.sql("SELECT * FROM generate_series(1, 10)").await;
    assert!(
        too_large.message().contains("max_result_rows"),
        "{}",
        too_large.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn every_type_round_trips_over_http() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE TABLE default.t (id INT PRIMARY KEY, b BOOLEAN, s SMALLINT, big BIGINT, f FLOAT, d DOUBLE, \
             txt TEXT, ts TIMESTAMP, dt DATE, j JSON, by BYTES, u UUID, dec DECIMAL(10,2))",
        )
        .await;
    let insert = server
        .post(json!({
            "sql": "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, decode($11, 'base64'), $12, $13)",
            "params": [1, true, 7, "9007199254740993", 0.5, 1.25, "snow ☃", "2024-01-02T03:04:05.000006Z",
                       "2024-12-31", "{\"k\":[true,null]}", "AAEC/w==", "7d444840-9dc0-11d1-b245-5ffdce74fad2", "10.25"]
        }))
        .await;
    assert_eq!(insert.status, 200, "{}", insert.body);
    server.sql_ok("INSERT INTO t (id) VALUES (2)").await;
    let select = server
        .sql_ok("SELECT id, b, s, big, f, d, txt, ts, dt, j, by, u, dec FROM t ORDER BY id")
        .await;
    let schema: Vec<_> = select.body["results"][0]["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["data_type"].clone())
        .collect();
    assert_eq!(
        schema,
        vec![
            json!("Int"),
            json!("Boolean"),
            json!("SmallInt"),
            json!("BigInt"),
            json!("Float"),
            json!("Double"),
            json!("Text"),
            json!("Timestamp"),
            json!("Date"),
            json!("Json"),
            json!("Bytes"),
            json!("Uuid"),
            json!({"Decimal": {"precision": 10, "scale": 2}}),
        ]
    );
    assert_eq!(
        select.body["results"][0]["schema"][0]["flags"],
        json!(["pk", "nn"])
    );
    assert_eq!(
        select.rows(0)[0],
        json!([1, true, 7, "9007199254740993", 0.5, 1.25, "snow ☃", 1704164645000006i64, "2024-12-31",
               {"k": [true, null]}, "AAEC/w==", "7d444840-9dc0-11d1-b245-5ffdce74fad2", "10.25"])
    );
    assert_eq!(
        select.rows(0)[1],
        json!([
            2, null, null, null, null, null, null, null, null, null, null, null, null
        ])
    );
    server.stop().await;
}

#[tokio::test]
async fn altered_tables_keep_their_rows_and_history_across_restart() {
    let server = TestServer::start().await;
    server
        .sql_ok("CREATE TABLE default.acct (id INT PRIMARY KEY, owner TEXT, balance INT)")
        .await;
    server
        .sql_ok("INSERT INTO acct VALUES (1, 'ann', 10), (2, 'ben', 20)")
        .await;
    server
        .sql_ok(
            "ALTER TABLE acct RENAME COLUMN owner TO holder; ALTER TABLE acct DROP COLUMN balance; \
             ALTER TABLE acct ADD COLUMN currency TEXT DEFAULT 'EUR'",
        )
        .await;
    let server = server.restart().await;
    let rows = server
        .sql_ok("SELECT id, holder, currency FROM acct ORDER BY id")
        .await;
    assert_eq!(
        rows.rows(0),
        &vec![json!([1, "ann", "EUR"]), json!([2, "ben", "EUR"])]
    );
    let history = server.sql_ok("DESCRIBE TABLE acct HISTORY").await;
    let versions: Vec<(u64, String, String)> = history
        .rows(0)
        .iter()
        .map(|r| {
            (
                r[0].as_u64().unwrap(),
                r[2].as_str().unwrap().to_string(),
                r[3].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(
        versions,
        vec![
            (
                1,
                "CREATE TABLE".into(),
                "id INT, owner TEXT, balance INT".into()
            ),
            (
                2,
                "RENAME COLUMN owner TO holder".into(),
                "id INT, holder TEXT, balance INT".into()
            ),
            (
                3,
                "DROP COLUMN balance".into(),
                "id INT, holder TEXT".into()
            ),
            (
                4,
                "ADD COLUMN currency TEXT DEFAULT 'EUR'".into(),
                "id INT, holder TEXT, currency TEXT".into()
            ),
        ]
    );
    assert!(history.rows(0).iter().all(|r| r[1].as_i64().unwrap() > 0));
    server.stop().await;
}

#[tokio::test]
async fn views_survive_restart() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE shop; CREATE TABLE shop.sales (id INT PRIMARY KEY, amount INT); \
             INSERT INTO shop.sales VALUES (1, 5), (2, 7); \
             USE shop; CREATE VIEW total AS SELECT SUM(amount) AS total FROM sales; \
             CREATE VIEW shop.doubled AS SELECT total * 2 AS twice FROM total",
        )
        .await;
    let server = server.restart().await;
    let doubled = server.sql_ok("SELECT twice FROM shop.doubled").await;
    assert_eq!(doubled.rows(0), &vec![json!(["24"])]);
    let listed = server.sql_ok("SHOW TABLES IN shop").await;
    assert_eq!(listed.rows(0).len(), 3);
    server.sql_ok("DROP TABLE shop.sales").await;
    let broken = server.sql("SELECT * FROM shop.doubled").await;
    assert_eq!(broken.code(), "TABLE_NOT_FOUND");
    assert!(
        broken.message().contains("read by view shop.total"),
        "{}",
        broken.message()
    );
    assert!(
        broken.message().contains("DROP VIEW shop.total"),
        "{}",
        broken.message()
    );
    server.stop().await;
}

#[tokio::test]
async fn password_hashes_never_reach_sql() {
    let server = TestServer::start().await;
    let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$secret-hash";
    server
        .context
        .catalog
        .create_user(quiver_catalog::UserRecord {
            id: quiver_common::UserId::new("ana"),
            role: quiver_common::Role::User,
            email: None,
            password_hash: Some(hash.to_string()),
            created_at: 0,
            updated_at: 0,
            token_epoch: 0,
        })
        .unwrap();
    server
        .sql_ok("CREATE VIEW everyone AS SELECT * FROM system.users")
        .await;
    for sql in [
        "SELECT * FROM system.users",
        "SELECT * FROM everyone",
        "SELECT * FROM information_schema.columns WHERE table_name = 'users'",
        "DESCRIBE TABLE system.users",
    ] {
        let response = server.sql_ok(sql).await;
        let text = response.body.to_string();
        assert!(!text.contains("secret-hash"), "{sql}: {text}");
        assert!(!text.contains("password"), "{sql}: {text}");
    }
    let users = server
        .sql_ok("SELECT user_id, role FROM system.users ORDER BY user_id")
        .await;
    assert_eq!(
        users.rows(0),
        &vec![json!(["ana", "user"]), json!(["root", "system"])]
    );
    let refused = server.sql("SELECT password_hash FROM system.users").await;
    assert_eq!(refused.status, 400);
    server.stop().await;
}
