//! Per-user tables over real HTTP: each user reads and writes only their
//! own rows, hot and cold, through every kind of query; `EXECUTE AS USER`
//! acts as another user within the role rules.

use quiver_tests::{ROOT_BASIC, Response, TestServer, basic};
use serde_json::Value;

async fn as_user(server: &TestServer, user: &str, sql: &str) -> Response {
    let answer = server.sql_as(&basic(user, "pw"), sql).await;
    assert_eq!(answer.status, 200, "{user}: {sql}: {}", answer.body);
    answer
}

/// The rows of the first result, as `id:text` strings.
fn pairs(answer: &Response) -> Vec<String> {
    answer
        .rows(0)
        .iter()
        .map(|row| {
            let cell = |v: &Value| match v {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            format!("{}:{}", cell(&row[0]), cell(&row[1]))
        })
        .collect()
}

async fn setup() -> TestServer {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT, owner TEXT DEFAULT CURRENT_USER()); \
             CREATE STREAM TABLE app.events (kind TEXT) WITH (TTL_SECONDS = 600); \
             CREATE TABLE app.tags (id BIGINT PRIMARY KEY, tag TEXT) WITH (ACCESS_LEVEL = 'PUBLIC'); \
             INSERT INTO app.tags VALUES (1, 'one'), (2, 'two'), (3, 'three'); \
             CREATE VIEW app.note_view AS SELECT id, body FROM app.notes; \
             CREATE USER 'alice' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'bob' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'svc' WITH PASSWORD 'pw' ROLE service; \
             CREATE USER 'ops' WITH PASSWORD 'pw' ROLE dba",
        )
        .await;
    // The same primary keys in both users' rows.
    as_user(
        &server,
        "alice",
        "INSERT INTO app.notes (id, body) VALUES (1, 'a1'), (2, 'a2')",
    )
    .await;
    as_user(
        &server,
        "bob",
        "INSERT INTO app.notes (id, body) VALUES (1, 'b1'), (2, 'b2'), (3, 'b3')",
    )
    .await;
    as_user(&server, "alice", "INSERT INTO app.events VALUES ('a')").await;
    as_user(&server, "bob", "INSERT INTO app.events VALUES ('b'), ('b')").await;
    server
}

/// Every way of reading the table, from alice's and bob's side.
async fn check_reads(server: &TestServer) {
    let alice = |sql: &'static str| as_user(server, "alice", sql);
    let bob = |sql: &'static str| as_user(server, "bob", sql);
    let select = "SELECT id, body FROM app.notes ORDER BY id";
    assert_eq!(pairs(&alice(select).await), ["1:a1", "2:a2"]);
    assert_eq!(pairs(&bob(select).await), ["1:b1", "2:b2", "3:b3"]);
    let point = "SELECT id, body FROM app.notes WHERE id = 3";
    assert!(pairs(&alice(point).await).is_empty());
    assert_eq!(pairs(&bob(point).await), ["3:b3"]);
    let count = "SELECT COUNT(*), MAX(body) FROM app.notes";
    assert_eq!(pairs(&alice(count).await), ["2:a2"]);
    assert_eq!(pairs(&bob(count).await), ["3:b3"]);
    let view = "SELECT id, body FROM app.note_view ORDER BY id";
    assert_eq!(pairs(&alice(view).await), ["1:a1", "2:a2"]);
    let join = "SELECT n.id, t.tag FROM app.notes n JOIN app.tags t ON t.id = n.id ORDER BY n.id";
    assert_eq!(pairs(&alice(join).await), ["1:one", "2:two"]);
    let self_join =
        "SELECT a.id, b.body FROM app.notes a JOIN app.notes b ON a.id = b.id ORDER BY a.id";
    assert_eq!(pairs(&bob(self_join).await), ["1:b1", "2:b2", "3:b3"]);
    let subquery = "SELECT id, body FROM app.tags t JOIN (SELECT id AS nid, body FROM app.notes) n \
                    ON n.nid = t.id WHERE t.id IN (SELECT id FROM app.notes) ORDER BY id";
    assert_eq!(pairs(&alice(subquery).await).len(), 2);
    let owners = "SELECT COUNT(*), MIN(owner) FROM app.notes";
    assert_eq!(pairs(&alice(owners).await), ["2:alice"]);
    let events = "SELECT COUNT(*), MIN(kind) FROM app.events";
    assert_eq!(pairs(&alice(events).await), ["1:a"]);
    assert_eq!(pairs(&bob(events).await), ["2:b"]);
    // EXPLAIN ANALYZE counts the user's own rows only.
    let text = explain_analyze(server, "alice").await;
    assert!(
        !text.contains("output_rows=3") && !text.contains("output_rows=5"),
        "{text}"
    );
    // Root reads its own rows, which are none.
    let root = server
        .sql_as(ROOT_BASIC, "SELECT COUNT(*) FROM app.notes")
        .await;
    assert_eq!(root.rows(0)[0][0], "0");
}

async fn explain_analyze(server: &TestServer, user: &str) -> String {
    let answer = as_user(server, user, "EXPLAIN ANALYZE SELECT * FROM app.notes").await;
    answer.body.to_string()
}

#[tokio::test]
async fn each_user_reads_only_their_own_rows_hot_and_cold() {
    let server = setup().await;
    check_reads(&server).await;

    // Flushed per user: each owner has a manifest of their own.
    server.sql_ok("STORAGE FLUSH TABLE app.notes").await;
    let table_dir = std::fs::read_dir(server.data_dir().join("cold"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.join("u616c696365").join("manifest.json").exists())
        .expect("alice's segments under a directory of her own");
    assert!(table_dir.join("u626f62").join("manifest.json").exists());
    assert!(!table_dir.join("manifest.json").exists());
    check_reads(&server).await;
    // Scanning segments, the plan's row counts are the user's own.
    let text = explain_analyze(&server, "alice").await;
    assert!(text.contains("output_rows=2"), "{text}");

    // Writes after the flush stay per user: same keys, merged per owner.
    as_user(
        &server,
        "alice",
        "UPDATE app.notes SET body = 'a1x' WHERE id = 1",
    )
    .await;
    let deleted = as_user(&server, "bob", "DELETE FROM app.notes WHERE id = 2").await;
    assert_eq!(deleted.body["results"][0]["row_count"], 1);
    let upsert = as_user(
        &server,
        "alice",
        "INSERT INTO app.notes (id, body) VALUES (3, 'a3')",
    )
    .await;
    assert_eq!(upsert.body["results"][0]["row_count"], 1);
    let duplicate = server
        .sql_as(
            &basic("bob", "pw"),
            "INSERT INTO app.notes (id, body) VALUES (3, 'again')",
        )
        .await;
    assert_eq!(duplicate.status, 400, "{}", duplicate.body);
    server.sql_ok("STORAGE FLUSH TABLE app.notes").await;
    server.sql_ok("STORAGE COMPACT TABLE app.notes").await;
    let server = server.restart().await;
    let select = "SELECT id, body FROM app.notes ORDER BY id";
    assert_eq!(
        pairs(&as_user(&server, "alice", select).await),
        ["1:a1x", "2:a2", "3:a3"]
    );
    assert_eq!(
        pairs(&as_user(&server, "bob", select).await),
        ["1:b1", "3:b3"]
    );
    let jobs = server
        .sql_ok("SELECT COUNT(*) FROM system.jobs WHERE job_type = 'flush' AND status = 'completed' AND target = 'app.notes'")
        .await;
    assert_eq!(jobs.rows(0)[0][0], "2");
    server.stop().await;
}

#[tokio::test]
async fn execute_as_user_acts_as_a_lower_role() {
    let server = setup().await;
    let answer = server
        .sql_ok("EXECUTE AS USER 'alice' (SELECT id, body FROM app.notes ORDER BY id)")
        .await;
    assert_eq!(pairs(&answer), ["1:a1", "2:a2"]);
    assert_eq!(answer.body["results"][0]["as_user"], "alice");

    // A service writes into a user's rows on their behalf.
    let insert = as_user(
        &server,
        "svc",
        "EXECUTE AS USER 'bob' (INSERT INTO app.notes (id, body) VALUES (9, 'by svc'))",
    )
    .await;
    assert_eq!(insert.body["results"][0]["as_user"], "bob");
    let bob = as_user(
        &server,
        "bob",
        "SELECT id, body, owner FROM app.notes WHERE id = 9",
    )
    .await;
    assert_eq!(bob.rows(0)[0][2], "bob");
    let svc_own = as_user(&server, "svc", "SELECT COUNT(*) FROM app.notes").await;
    assert_eq!(svc_own.rows(0)[0][0], "0");

    // Parameters bind inside the wrapped statement.
    let params = server
        .post(serde_json::json!({
            "sql": "EXECUTE AS USER 'bob' (SELECT body FROM app.notes WHERE id = $1)",
            "params": [3],
        }))
        .await;
    assert_eq!(params.status, 200, "{}", params.body);
    assert_eq!(params.rows(0)[0][0], "b3");

    // The acting user's own permissions apply inside.
    let denied = server
        .sql("EXECUTE AS USER 'alice' (CREATE NAMESPACE nope)")
        .await;
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.message().contains("alice"), "{}", denied.message());

    for (who, target) in [
        ("alice", "bob"),
        ("svc", "ops"),
        ("svc", "svc"),
        ("ops", "ops"),
    ] {
        let answer = server
            .sql_as(
                &basic(who, "pw"),
                &format!("EXECUTE AS USER '{target}' (SELECT 1)"),
            )
            .await;
        assert_eq!(answer.status, 403, "{who} as {target}: {}", answer.body);
        assert_eq!(answer.code(), "PERMISSION_DENIED");
    }
    as_user(&server, "ops", "EXECUTE AS USER 'svc' (SELECT 1)").await;
    let unknown = server.sql("EXECUTE AS USER 'nobody' (SELECT 1)").await;
    assert_eq!(unknown.status, 400, "{}", unknown.body);
    assert!(unknown.message().contains("nobody"));
    server.stop().await;
}
