//! Authorization over real HTTP: every role against every kind of
//! statement and table, allowed or denied with 403 PERMISSION_DENIED.

use quiver_tests::{ROOT_BASIC, TestServer, basic};

const ROLES: [&str; 4] = ["user", "service", "dba", "system"];

#[tokio::test]
async fn each_role_is_allowed_exactly_its_statements() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.mine (id BIGINT PRIMARY KEY, v INT); \
             CREATE TABLE app.private (id BIGINT PRIMARY KEY, v INT); \
             CREATE TABLE app.public (id BIGINT PRIMARY KEY, v INT) WITH (ACCESS_LEVEL = 'PUBLIC'); \
             CREATE STREAM TABLE app.events (kind TEXT) WITH (TTL_SECONDS = 600); \
             CREATE VIEW app.private_view AS SELECT id FROM app.private; \
             INSERT INTO app.private VALUES (1, 1); INSERT INTO app.public VALUES (1, 1); \
             CREATE USER 'a_user' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'a_service' WITH PASSWORD 'pw' ROLE service; \
             CREATE USER 'a_dba' WITH PASSWORD 'pw' ROLE dba; \
             CREATE USER 'a_system' WITH PASSWORD 'pw' ROLE system",
        )
        .await;

    // (statement, allowed for user, service, dba, system); `{r}` is the
    // role's name and `{i}` its number, so each role writes its own rows
    // and objects.
    let matrix: Vec<(&str, [bool; 4])> = vec![
        ("SELECT * FROM app.mine", [true, true, true, true]),
        (
            "INSERT INTO app.mine VALUES ({i}, 1)",
            [true, true, true, true],
        ),
        (
            "INSERT INTO app.events VALUES ('{r}')",
            [true, true, true, true],
        ),
        ("SELECT * FROM app.events", [true, true, true, true]),
        ("SELECT * FROM app.public", [true, true, true, true]),
        ("SELECT * FROM app.private", [false, true, true, true]),
        ("SELECT * FROM app.private_view", [false, true, true, true]),
        (
            "SELECT m.id FROM app.mine m JOIN app.private p ON p.id = m.id",
            [false, true, true, true],
        ),
        (
            "SELECT (SELECT COUNT(*) FROM app.private) AS n",
            [false, true, true, true],
        ),
        (
            "EXPLAIN SELECT * FROM app.private",
            [false, true, true, true],
        ),
        ("DESCRIBE TABLE app.private", [false, true, true, true]),
        (
            "INSERT INTO app.mine SELECT id + {i}00, v FROM app.private",
            [false, true, true, true],
        ),
        (
            "INSERT INTO app.public VALUES (2, 2) ON CONFLICT (id) DO NOTHING",
            [false, true, true, true],
        ),
        (
            "UPDATE app.public SET v = 3 WHERE id = 1",
            [false, true, true, true],
        ),
        (
            "DELETE FROM app.private WHERE id = 99",
            [false, true, true, true],
        ),
        ("SELECT * FROM system.users", [false, false, true, true]),
        ("SELECT * FROM system.stats", [false, false, true, true]),
        (
            "CREATE USER TABLE app.notes_{r} (id BIGINT PRIMARY KEY)",
            [true, true, true, true],
        ),
        (
            "CREATE TABLE app.shared_{r} (id BIGINT PRIMARY KEY)",
            [false, false, true, true],
        ),
        ("CREATE NAMESPACE ns_{r}", [false, false, true, true]),
        (
            "CREATE VIEW app.view_{r} AS SELECT 1 AS one",
            [false, false, true, true],
        ),
        (
            "ALTER TABLE app.public ADD COLUMN c_{r} INT",
            [false, false, true, true],
        ),
        ("STORAGE FLUSH TABLE app.public", [false, false, true, true]),
        (
            "CREATE USER 'made_by_{r}' WITH PASSWORD 'x' ROLE user",
            [false, false, true, true],
        ),
        (
            "ALTER USER 'a_user' SET ROLE user",
            [false, false, true, true],
        ),
        ("DROP TABLE app.shared_{r}", [false, false, true, true]),
    ];
    let mut checked = 0;
    for (template, allowed) in &matrix {
        for (i, role) in ROLES.iter().enumerate() {
            let sql = template
                .replace("{r}", role)
                .replace("{i}", &(i + 1).to_string());
            let auth = basic(&format!("a_{role}"), "pw");
            let body = serde_json::json!({ "sql": sql }).to_string();
            let answer = server.post_as(&auth, body).await;
            if allowed[i] {
                assert_eq!(answer.status, 200, "{role}: {sql}: {}", answer.body);
            } else {
                assert_eq!(answer.status, 403, "{role}: {sql}: {}", answer.body);
                assert_eq!(answer.code(), "PERMISSION_DENIED");
                assert!(
                    answer.message().contains(&format!("a_{role}")),
                    "the denial names who: {}",
                    answer.message()
                );
            }
            checked += 1;
        }
    }
    assert_eq!(checked, matrix.len() * ROLES.len());

    // Everyone may change their own password, and only their own.
    let own = server
        .post_as(
            &basic("a_user", "pw"),
            r#"{"sql": "ALTER USER 'a_user' SET PASSWORD 'new-pw'"}"#,
        )
        .await;
    assert_eq!(own.status, 200, "{}", own.body);
    let other = server
        .post_as(
            &basic("a_user", "new-pw"),
            r#"{"sql": "ALTER USER 'a_service' SET PASSWORD 'mine-now'"}"#,
        )
        .await;
    assert_eq!(other.status, 403);
    let root = server
        .post_as(ROOT_BASIC, r#"{"sql": "SELECT COUNT(*) FROM app.private"}"#)
        .await;
    assert_eq!(root.status, 200);
    server.stop().await;
}
