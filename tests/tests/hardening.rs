//! Attacks on a running node, each tried the way an attacker would: tokens
//! that should have died, roles that try to climb, column defaults and
//! upserts that try to become queries, sign-in floods, requests addressed
//! to another host name, and the order in which flushed data reaches the
//! disk.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use quiver_tests::{ROOT_BASIC, TestServer, WsClient, basic, post_json};
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

async fn start() -> TestServer {
    TestServer::start_with(|c| c.auth.jwt_secret = SECRET.to_string()).await
}

/// Signs `user` in: (access, refresh) as `Authorization` values.
async fn login(server: &TestServer, user: &str, password: &str) -> (String, String) {
    let (status, body) = post_json(
        server,
        "/v1/api/auth/login",
        None,
        json!({"user": user, "password": password}),
    )
    .await;
    assert_eq!(status, 200, "{user}: {body}");
    (
        format!("Bearer {}", body["access_token"].as_str().unwrap()),
        format!("Bearer {}", body["refresh_token"].as_str().unwrap()),
    )
}

async fn refresh(server: &TestServer, refresh: &str) -> (u16, Value) {
    post_json(server, "/v1/api/auth/refresh", Some(refresh), json!({})).await
}

/// The status and error code of `SELECT 1` sent with `auth`.
async fn select_one(server: &TestServer, auth: &str) -> (u16, String) {
    let answer = server.sql_as(auth, "SELECT 1").await;
    (answer.status, answer.code().to_string())
}

const REVOKED: (u16, &str) = (401, "INVALID_CREDENTIALS");

fn revoked(outcome: (u16, String)) -> bool {
    (outcome.0, outcome.1.as_str()) == REVOKED
}

#[tokio::test]
async fn a_password_change_a_role_change_and_sign_out_end_every_earlier_token() {
    let server = start().await;
    server
        .sql_ok("CREATE USER 'ana' WITH PASSWORD 'first-pw' ROLE user")
        .await;

    // A password changed by the user ends the user's earlier tokens.
    let (access, refresh_token) = login(&server, "ana", "first-pw").await;
    assert_eq!(select_one(&server, &access).await.0, 200);
    let changed = server
        .sql_as(&access, "ALTER USER 'ana' SET PASSWORD 'second-pw'")
        .await;
    assert_eq!(changed.status, 200, "{}", changed.body);
    assert!(revoked(select_one(&server, &access).await));
    assert_eq!(refresh(&server, &refresh_token).await.0, 401);

    // So does one changed by an administrator, and a role change.
    let (access, _) = login(&server, "ana", "second-pw").await;
    server
        .sql_ok("ALTER USER 'ana' SET PASSWORD 'third-pw'")
        .await;
    assert!(revoked(select_one(&server, &access).await));
    let (access, _) = login(&server, "ana", "third-pw").await;
    server.sql_ok("ALTER USER 'ana' SET ROLE service").await;
    assert!(revoked(select_one(&server, &access).await));

    // Signing out ends every token of the user, on every device.
    let (phone, phone_refresh) = login(&server, "ana", "third-pw").await;
    let (laptop, _) = login(&server, "ana", "third-pw").await;
    let (status, body) = post_json(&server, "/v1/api/auth/logout", Some(&laptop), json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert!(revoked(select_one(&server, &laptop).await));
    assert!(revoked(select_one(&server, &phone).await));
    assert_eq!(refresh(&server, &phone_refresh).await.0, 401);
    // Basic credentials still work: only tokens end.
    assert_eq!(select_one(&server, &basic("ana", "third-pw")).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_a_reused_one_ends_its_sign_in() {
    let server = TestServer::start_with(|c| c.auth.jwt_secret = SECRET.to_string()).await;
    server
        .sql_ok("CREATE USER 'ana' WITH PASSWORD 'pw' ROLE user")
        .await;
    let (_, first) = login(&server, "ana", "pw").await;
    let (status, body) = refresh(&server, &first).await;
    assert_eq!(status, 200, "{body}");
    let second = format!("Bearer {}", body["refresh_token"].as_str().unwrap());
    let access = format!("Bearer {}", body["access_token"].as_str().unwrap());
    assert_ne!(first, second, "each refresh hands out a new refresh token");
    assert_eq!(select_one(&server, &access).await.0, 200);

    // The family survives a restart.
    let server = server.restart().await;
    let (status, body) = refresh(&server, &second).await;
    assert_eq!(status, 200, "{body}");
    let third = format!("Bearer {}", body["refresh_token"].as_str().unwrap());
    let access = format!("Bearer {}", body["access_token"].as_str().unwrap());

    // Someone replays the first token: refused, and the whole sign-in
    // ends, for the thief and the rightful holder alike.
    let (status, body) = refresh(&server, &first).await;
    assert_eq!(status, 401, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already used"),
        "{body}"
    );
    assert_eq!(refresh(&server, &third).await.0, 401);
    assert!(revoked(select_one(&server, &access).await));
    // Another sign-in of the same user is not touched.
    let (other, _) = login(&server, "ana", "pw").await;
    assert_eq!(select_one(&server, &other).await.0, 200);
    server.stop().await;
}

#[tokio::test]
async fn a_new_user_of_a_dropped_name_gets_neither_its_tokens_nor_its_rows() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT); \
             CREATE USER 'bob' WITH PASSWORD 'old-pw' ROLE user",
        )
        .await;
    let (old_token, _) = login(&server, "bob", "old-pw").await;
    let wrote = server
        .sql_as(
            &old_token,
            "INSERT INTO app.notes VALUES (1, 'old bob''s secret')",
        )
        .await;
    assert_eq!(wrote.status, 200, "{}", wrote.body);
    server.sql_ok("STORAGE FLUSH TABLE app.notes").await;
    server
        .sql_as(&old_token, "INSERT INTO app.notes VALUES (2, 'still hot')")
        .await;

    let dropped = server.sql_ok("DROP USER 'bob'").await;
    assert_eq!(
        dropped.body["results"][0]["row_count"], 2,
        "{}",
        dropped.body
    );
    server
        .sql_ok("CREATE USER 'bob' WITH PASSWORD 'new-pw' ROLE user")
        .await;
    assert!(
        revoked(select_one(&server, &old_token).await),
        "the old bob's token is not the new bob's"
    );
    let (new_token, _) = login(&server, "bob", "new-pw").await;
    let rows = server
        .sql_as(&new_token, "SELECT count(*) AS n FROM app.notes")
        .await;
    assert_eq!(rows.status, 200, "{}", rows.body);
    assert_eq!(rows.rows(0)[0][0], "0", "{}", rows.body);
    server.stop().await;
}

#[tokio::test]
async fn open_websockets_end_when_their_user_changes() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.prices (id BIGINT PRIMARY KEY, v BIGINT); \
             CREATE USER 'svc' WITH PASSWORD 'pw' ROLE service; \
             CREATE USER 'eve' WITH PASSWORD 'pw' ROLE service",
        )
        .await;
    // Demoted while subscribed: the connection ends, with the reason.
    let (token, _) = login(&server, "svc", "pw").await;
    let mut ws = WsClient::signed_in(&server, &token).await;
    ws.subscribe("p", "SELECT * FROM app.prices", None).await;
    server.sql_ok("ALTER USER 'svc' SET ROLE user").await;
    let mut told = Vec::new();
    loop {
        let message = ws.next().await;
        let closed = message["type"] == "closed";
        told.push(message);
        if closed {
            break;
        }
    }
    let last = told.last().unwrap()["frame"].as_str().unwrap().to_string();
    assert!(last.contains("role changed"), "{told:?}");
    // The server forgets the connection.
    let deadline = Instant::now() + Duration::from_secs(5);
    while server.context.live.connection_count() > 0 {
        assert!(
            Instant::now() < deadline,
            "the connection is still registered"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Dropped: likewise.
    let mut ws = WsClient::signed_in(&server, &basic("eve", "pw")).await;
    ws.subscribe("p", "SELECT * FROM app.prices", None).await;
    server.sql_ok("DROP USER 'eve'").await;
    let closed = loop {
        let message = ws.next().await;
        if message["type"] == "closed" {
            break message;
        }
    };
    assert!(
        closed["frame"].as_str().unwrap().contains("dropped"),
        "{closed}"
    );
    server.stop().await;
}

#[tokio::test]
async fn user_management_only_reaches_roles_below_the_callers() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE USER 'dora' WITH PASSWORD 'pw' ROLE dba; \
             CREATE USER 'dave' WITH PASSWORD 'pw' ROLE dba; \
             CREATE USER 'sam' WITH PASSWORD 'pw' ROLE service; \
             CREATE USER 'alice' WITH PASSWORD 'alice-pw' ROLE user; \
             ALTER USER 'root' SET PASSWORD 'root-pw'",
        )
        .await;
    let root = basic("root", "root-pw");
    let dora = basic("dora", "pw");
    let sam = basic("sam", "pw");
    let refused = [
        (&dora, "CREATE USER 'evil' WITH PASSWORD 'x' ROLE system"),
        (&dora, "CREATE USER 'evil' WITH PASSWORD 'x' ROLE dba"),
        (&dora, "ALTER USER 'dora' SET ROLE system"),
        (&dora, "ALTER USER 'dave' SET PASSWORD 'taken'"),
        (&dora, "ALTER USER 'dave' SET ROLE user"),
        (&dora, "DROP USER 'dave'"),
        (&dora, "ALTER USER 'root' SET PASSWORD 'taken'"),
        (&dora, "ALTER USER 'sam' SET ROLE dba"),
        (&sam, "CREATE USER 'evil' WITH PASSWORD 'x' ROLE user"),
        (
            &sam,
            "EXECUTE AS USER 'alice' (ALTER USER 'alice' SET PASSWORD 'taken')",
        ),
    ];
    for (auth, sql) in refused {
        let answer = server.sql_as(auth, sql).await;
        assert_eq!(answer.status, 403, "{sql}: {}", answer.body);
        assert_eq!(answer.code(), "PERMISSION_DENIED", "{sql}");
    }
    // Nothing of that happened.
    assert_eq!(
        select_one(&server, &basic("alice", "alice-pw")).await.0,
        200
    );
    assert_eq!(select_one(&server, &basic("dave", "pw")).await.0, 200);
    assert_eq!(select_one(&server, &root).await.0, 200);
    let roles = server
        .sql_as(
            &root,
            "SELECT user_id, role FROM system.users WHERE user_id IN ('dora', 'sam', 'evil') \
             ORDER BY user_id",
        )
        .await;
    assert_eq!(
        roles.rows(0),
        &vec![json!(["dora", "dba"]), json!(["sam", "service"])]
    );

    let allowed = [
        (&dora, "CREATE USER 'newbie' WITH PASSWORD 'x' ROLE service"),
        (&dora, "ALTER USER 'sam' SET ROLE user"),
        (&dora, "ALTER USER 'alice' SET PASSWORD 'reset-by-dba'"),
        (&dora, "ALTER USER 'dora' SET PASSWORD 'own'"),
        (&root, "CREATE USER 'sys2' WITH PASSWORD 'x' ROLE system"),
        (&root, "ALTER USER 'dave' SET ROLE service"),
        (&root, "ALTER USER 'root' SET PASSWORD 'root-pw2'"),
    ];
    for (auth, sql) in allowed {
        let answer = server.sql_as(auth, sql).await;
        assert_eq!(answer.status, 200, "{sql}: {}", answer.body);
    }
    server.stop().await;
}

#[tokio::test]
async fn a_default_is_a_value_never_a_query() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.secret (id BIGINT PRIMARY KEY, s TEXT) \
             WITH (ACCESS_LEVEL = 'PRIVATE'); INSERT INTO app.secret VALUES (1, 'launch codes')",
        )
        .await;
    for default in [
        "(SELECT s FROM app.secret)",
        "(SELECT max(user_id) FROM system.users)",
        "EXISTS (SELECT 1 FROM app.secret)",
        "other_column",
        "upper(other_column)",
        "1 IN (SELECT id FROM app.secret)",
        "NOW() + INTERVAL '1 day'",
    ] {
        let sql = format!(
            "CREATE TABLE app.t (id BIGINT PRIMARY KEY, other_column TEXT, v TEXT DEFAULT {default})"
        );
        let answer = server.sql(&sql).await;
        assert_eq!(answer.status, 400, "{default}: {}", answer.body);
        assert!(
            answer.message().contains("must be a value"),
            "{default}: {}",
            answer.body
        );
        assert!(!answer.body.to_string().contains("launch codes"));
        let sql = "CREATE TABLE app.t2 (id BIGINT PRIMARY KEY, other_column TEXT, v TEXT)";
        server
            .sql_ok(&format!(
                "{sql}; ALTER TABLE app.t2 ALTER COLUMN v SET DEFAULT 'x'"
            ))
            .await;
        let answer = server
            .sql(&format!(
                "ALTER TABLE app.t2 ALTER COLUMN v SET DEFAULT {default}"
            ))
            .await;
        assert_eq!(answer.status, 400, "ALTER {default}: {}", answer.body);
        server.sql_ok("DROP TABLE app.t2").await;
    }
    // Values, and expressions of values, are fine.
    server
        .sql_ok(
            "CREATE TABLE app.ok (id BIGINT PRIMARY KEY, a TEXT DEFAULT 'x' || 'y', \
             b BIGINT DEFAULT (2 * 21), c TEXT DEFAULT upper('abc'), d TIMESTAMP DEFAULT (NOW()), \
             e BIGINT DEFAULT -1); INSERT INTO app.ok (id) VALUES (1)",
        )
        .await;
    let row = server
        .sql_ok("SELECT a, b, c, d IS NOT NULL, e FROM app.ok")
        .await;
    assert_eq!(row.rows(0)[0], json!(["xy", "42", "ABC", true, "-1"]));
    server.stop().await;
}

#[tokio::test]
async fn no_identifier_in_an_upsert_becomes_sql() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.kv (k BIGINT PRIMARY KEY, v TEXT); \
             INSERT INTO app.kv VALUES (1, 'one')",
        )
        .await;
    for column in [
        r#""v FROM kv; DROP TABLE kv; --""#,
        r#""v"" FROM kv --""#,
        r#""nope""#,
        r#""__row""#,
    ] {
        let sql = format!(
            "INSERT INTO app.kv VALUES (1, 'two') ON CONFLICT (k) DO UPDATE SET v = EXCLUDED.{column}"
        );
        let answer = server.sql(&sql).await;
        assert_eq!(answer.status, 400, "{column}: {}", answer.body);
        assert!(
            answer.message().contains("column"),
            "{column}: {}",
            answer.body
        );
    }
    // The table is untouched, and a real upsert still works, with a
    // WHERE that reads both versions.
    let answer = server
        .sql_ok(
            "INSERT INTO app.kv VALUES (1, 'two') ON CONFLICT (k) DO UPDATE SET v = kv.v || '+' || \
             EXCLUDED.v WHERE EXCLUDED.v <> kv.v; SELECT v FROM app.kv",
        )
        .await;
    assert_eq!(answer.rows(1)[0], json!(["one+two"]));
    server.stop().await;
}

/// A client that connects from `source` (any 127.0.0.0/8 address is this
/// machine's loopback).
fn client_from(source: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::from(source))
        .build()
        .unwrap()
}

async fn login_from(
    client: &reqwest::Client,
    server: &TestServer,
    user: &str,
    password: &str,
) -> (u16, String) {
    let response = client
        .post(format!("{}/v1/api/auth/login", server.base_url))
        .json(&json!({"user": user, "password": password}))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test]
async fn sign_in_floods_neither_pass_the_limit_nor_lock_out_the_owner() {
    let server = TestServer::start_with(|c| {
        c.auth.jwt_secret = SECRET.to_string();
        c.auth.max_failed_logins = 5;
        c.auth.lockout_secs = 300;
    })
    .await;
    server
        .sql_ok("CREATE USER 'carol' WITH PASSWORD 'right-pw' ROLE user")
        .await;
    // Carol signs in from her machine once.
    let carol = client_from([127, 0, 0, 2]);
    assert_eq!(
        login_from(&carol, &server, "carol", "right-pw").await.0,
        200
    );

    // 500 wrong passwords at once from one address: only the limit's
    // worth are even checked.
    let attacker = client_from([127, 0, 0, 3]);
    let attempts = (0..500).map(|i| {
        let attacker = attacker.clone();
        let server = &server;
        async move { login_from(&attacker, server, "carol", &format!("guess-{i}")).await }
    });
    let outcomes = futures::future::join_all(attempts).await;
    let checked = outcomes
        .iter()
        .filter(|(_, code)| code == "INVALID_CREDENTIALS")
        .count();
    let refused = outcomes
        .iter()
        .filter(|(status, code)| *status == 429 && code == "RATE_LIMIT_EXCEEDED")
        .count();
    assert_eq!(checked, 5, "{outcomes:?}");
    assert_eq!(checked + refused, 500);
    // Even the right password is refused from that address now.
    assert_eq!(
        login_from(&attacker, &server, "carol", "right-pw").await,
        (429, "RATE_LIMIT_EXCEEDED".to_string())
    );
    // Carol, from where she signed in before, still gets in. (That the
    // account is slowed for new addresses meanwhile is timed, and held in
    // `signin.rs`'s own tests.)
    assert_eq!(
        login_from(&carol, &server, "carol", "right-pw").await.0,
        200
    );
    server.stop().await;
}

#[tokio::test]
async fn an_unknown_user_costs_a_password_check() {
    // A hash that takes long enough to see: 32 MiB of Argon2id.
    let server = TestServer::start_with(|c| {
        c.auth.jwt_secret = SECRET.to_string();
        c.auth.password_memory_kib = 32 * 1024;
        c.auth.password_iterations = 2;
        c.auth.max_failed_logins = 0;
    })
    .await;
    server
        .sql_ok("CREATE USER 'dan' WITH PASSWORD 'right-pw' ROLE user")
        .await;
    let median = |mut times: Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    let mut wrong = Vec::new();
    let mut unknown = Vec::new();
    let client = client_from([127, 0, 0, 5]);
    // The first unknown name makes the node's decoy hash.
    login_from(&client, &server, "nobody", "x").await;
    for i in 0..5 {
        let started = Instant::now();
        let outcome = login_from(&client, &server, "dan", &format!("wrong-{i}")).await;
        wrong.push(started.elapsed());
        let started = Instant::now();
        let unknown_outcome = login_from(&client, &server, &format!("nobody{i}"), "wrong").await;
        unknown.push(started.elapsed());
        assert_eq!(outcome, unknown_outcome, "the two answers are the same");
    }
    let (wrong, unknown) = (median(wrong), median(unknown));
    // Without the decoy an unknown name answers in well under a tenth of
    // the time.
    assert!(
        unknown * 2 >= wrong,
        "unknown user {unknown:?} against wrong password {wrong:?}"
    );
    server.stop().await;
}

async fn with_host(
    server: &TestServer,
    path: &str,
    host: &str,
    auth: Option<&str>,
    body: Value,
) -> u16 {
    let mut request = server
        .client()
        .post(format!("{}{path}", server.base_url))
        .header("host", host)
        .json(&body);
    if let Some(auth) = auth {
        request = request.header("authorization", auth);
    }
    request.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn password_less_root_answers_only_requests_addressed_to_this_machine() {
    // Every refusal below is a failed sign-in; none may lock the address.
    let server = TestServer::start_with(|c| {
        c.auth.jwt_secret = SECRET.to_string();
        c.auth.max_failed_logins = 0;
    })
    .await;
    let port = server.base_url.rsplit(':').next().unwrap().to_string();
    let sql = json!({"sql": "SELECT 1"});
    for host in [
        "evil.example",
        &format!("rebound.example:{port}"),
        "10.1.2.3",
    ] {
        assert_eq!(
            with_host(&server, "/v1/api/sql", host, Some(ROOT_BASIC), sql.clone()).await,
            401,
            "{host}"
        );
        let login = json!({"user": "root", "password": ""});
        assert_eq!(
            with_host(&server, "/v1/api/auth/login", host, None, login).await,
            401,
            "{host}"
        );
        let setup = json!({"user": "admin", "password": "a", "root_password": "r"});
        assert_eq!(
            with_host(&server, "/v1/api/auth/setup", host, None, setup).await,
            403,
            "{host}"
        );
    }
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
    ] {
        assert_eq!(
            with_host(&server, "/v1/api/sql", &host, Some(ROOT_BASIC), sql.clone()).await,
            200,
            "{host}"
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn metrics_need_credentials_unless_made_public() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE USER 'u' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'scraper' WITH PASSWORD 'pw' ROLE service",
        )
        .await;
    let get = |auth: Option<String>| {
        let mut request = server.client().get(format!("{}/metrics", server.base_url));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(get(None).await, 401);
    assert_eq!(get(Some(basic("u", "pw"))).await, 403);
    assert_eq!(get(Some(basic("scraper", "pw"))).await, 200);
    server.stop().await;

    let public = TestServer::start_with(|c| c.metrics.public = true).await;
    let status = public
        .client()
        .get(format!("{}/metrics", public.base_url))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16();
    assert_eq!(status, 200);
    public.stop().await;
}

#[tokio::test]
async fn a_flush_removes_nothing_before_what_replaces_it_is_on_disk() {
    let server = start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; CREATE SHARED TABLE app.t (id BIGINT PRIMARY KEY, v TEXT) \
             WITH (FLUSH_POLICY = 'rows:1000000'); \
             INSERT INTO app.t VALUES (1, 'a'), (2, 'b')",
        )
        .await;
    let def = server
        .context
        .catalog
        .table(
            &quiver_common::NamespaceId::new("app").unwrap(),
            &quiver_common::TableName::new("t").unwrap(),
        )
        .unwrap();
    let scope = def.def().scope_for(&quiver_common::UserId::root());
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let tier = server.context.engine.cold().clone();
    {
        let events = events.clone();
        let store = tier.store().clone();
        let scope = scope.clone();
        tier.cold().on_sync(Box::new(move |path| {
            let hot = store.count_rows(&scope, 100).unwrap();
            events
                .lock()
                .unwrap()
                .push(format!("synced {path} with {hot} hot rows"));
        }));
    }
    {
        let events = events.clone();
        tier.cold().on_delete(Box::new(move |path| {
            events.lock().unwrap().push(format!("deleted {path}"));
        }));
    }
    server.sql_ok("STORAGE FLUSH TABLE app.t").await;
    server.sql_ok("INSERT INTO app.t VALUES (3, 'c')").await;
    server.sql_ok("STORAGE FLUSH TABLE app.t").await;
    let flushed = events.lock().unwrap().clone();
    server.sql_ok("STORAGE COMPACT TABLE app.t").await;
    let all = events.lock().unwrap().clone();
    let compacted = &all[flushed.len()..];

    // Each flush: the segment, then its manifest, both synced while the
    // rows they hold are still hot.
    let synced: Vec<&String> = flushed.iter().filter(|e| e.starts_with("synced")).collect();
    assert_eq!(synced.len(), 4, "{flushed:?}");
    assert!(
        synced[0].contains("seg-1.parquet") && synced[0].ends_with("with 2 hot rows"),
        "{flushed:?}"
    );
    assert!(
        synced[1].contains("manifest") && synced[1].ends_with("with 2 hot rows"),
        "{flushed:?}"
    );
    assert!(
        synced[2].contains("seg-2.parquet") && synced[2].ends_with("with 1 hot rows"),
        "{flushed:?}"
    );
    assert!(
        synced[3].contains("manifest") && synced[3].ends_with("with 1 hot rows"),
        "{flushed:?}"
    );
    // Compaction: the merged segment and the manifest naming it reach the
    // disk before the segments it replaces are deleted.
    let position = |what: &dyn Fn(&String) -> bool| compacted.iter().position(what);
    let merged = position(&|e| e.starts_with("synced") && e.contains(".parquet")).expect("merged");
    let manifest =
        position(&|e| e.starts_with("synced") && e.contains("manifest")).expect("manifest");
    let first_delete = position(&|e| e.starts_with("deleted")).expect("old segments deleted");
    assert!(
        merged < manifest && manifest < first_delete,
        "{compacted:?}"
    );
    server.stop().await;
}

#[tokio::test]
async fn queries_past_the_memory_limit_fail_while_the_node_serves_others() {
    let server = TestServer::start_with(|c| {
        c.limits.query_memory_bytes = 64 * 1024 * 1024;
        c.limits.max_write_rows = 100_000;
        c.limits.query_timeout_ms = 300_000;
    })
    .await;
    server
        .sql_ok("CREATE NAMESPACE app; CREATE SHARED TABLE app.big (id BIGINT PRIMARY KEY, v TEXT)")
        .await;
    // Queries together; each INSERT alone, since its rows draw on the
    // same memory the queries exhaust.
    let mut slowest = fail_while_serving(
        &server,
        &[
            (
                "SELECT count(*) FROM generate_series(1, 300000000) a \
                 JOIN generate_series(1, 300000000) b ON a.value = b.value",
                "RESOURCES_EXHAUSTED",
            ),
            (
                "SELECT array_agg(value) FROM generate_series(1, 1000000000)",
                "RESOURCES_EXHAUSTED",
            ),
            ("SELECT repeat('x', 1000000000) AS s", "SQL_EXECUTION_ERROR"),
        ],
    )
    .await;
    // Past the row limit, and within it but past the memory (90,000 rows
    // of 2,000 bytes: 180 MB of rows to write).
    for heavy in [
        (
            "INSERT INTO app.big SELECT value, 'x' FROM generate_series(1, 100000000)",
            "SQL_EXECUTION_ERROR",
        ),
        (
            "INSERT INTO app.big SELECT value, repeat('x', 2000) FROM generate_series(1, 90000)",
            "RESOURCES_EXHAUSTED",
        ),
    ] {
        slowest = slowest.max(fail_while_serving(&server, &[heavy]).await);
    }
    let started = Instant::now();
    server.sql_ok("SELECT 1").await;
    slowest = slowest.max(started.elapsed());
    assert!(
        slowest < Duration::from_secs(1),
        "SELECT 1 took {slowest:?}"
    );
    let count = server.sql_ok("SELECT count(*) FROM app.big").await;
    assert_eq!(
        count.rows(0)[0][0],
        "0",
        "nothing of the refused INSERTs was written"
    );
    // Within both limits, the same statement writes.
    server
        .sql_ok("INSERT INTO app.big SELECT value, repeat('x', 2000) FROM generate_series(1, 5000)")
        .await;
    let count = server.sql_ok("SELECT count(*) FROM app.big").await;
    assert_eq!(count.rows(0)[0][0], "5000");
    server.stop().await;
}

/// Runs `heavy` statements at once, each expected to fail with its code,
/// while `SELECT 1` is asked every 100 ms; returns the slowest answer.
async fn fail_while_serving(server: &TestServer, heavy: &[(&'static str, &str)]) -> Duration {
    let running: Vec<_> = heavy
        .iter()
        .map(|&(sql, _)| {
            let poster = server.sql_poster();
            tokio::spawn(async move { poster.post(ROOT_BASIC, sql).await })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    while running.iter().any(|task| !task.is_finished()) {
        let started = Instant::now();
        let answer = server.sql("SELECT 1 AS one").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (task, &(sql, expected)) in running.into_iter().zip(heavy) {
        let (status, body) = task.await.unwrap();
        let code = body["error"]["code"].as_str().unwrap_or_default();
        assert!(status >= 400 && code == expected, "{sql}: {status} {body}");
        let message = body["error"]["message"].as_str().unwrap_or_default();
        if code == "RESOURCES_EXHAUSTED" {
            assert!(message.contains("query_memory_bytes"), "{message}");
        }
        if sql.contains("repeat('x', 1000000000)") {
            assert!(message.contains("256 MiB"), "{body}");
        }
        if sql.contains("100000000)") {
            assert!(message.contains("max_write_rows"), "{body}");
        }
    }
    slowest
}

/// Server-side sockets of `port` that are open (ESTABLISHED) with a peer at
/// `peer`, from the kernel's table.
fn established(port: u16, peer: [u8; 4]) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    let remote = format!(
        "{:02X}{:02X}{:02X}{:02X}:",
        peer[3], peer[2], peer[1], peer[0]
    );
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            fields.len() > 3
                && fields[1].ends_with(&local)
                && fields[2].starts_with(&remote)
                && fields[3] == "01"
        })
        .count()
}

#[tokio::test]
async fn trickling_sockets_neither_starve_other_clients_nor_hold_the_nodes_files() {
    let server = TestServer::start_with(|c| {
        c.server.max_connections_per_address = 200;
        c.server.header_timeout_secs = 2;
    })
    .await;
    let address: std::net::SocketAddr = server
        .base_url
        .trim_start_matches("http://")
        .parse()
        .unwrap();
    let attacker = [127, 0, 0, 3];
    // 2,000 sockets from one address, each sending a request head a byte
    // at a time, never finishing it.
    let mut sockets = Vec::with_capacity(2000);
    for _ in 0..2000 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from((attacker, 0)))
            .unwrap();
        sockets.push(socket.connect(address).await.unwrap());
    }
    let trickle = tokio::spawn(async move {
        use tokio::io::AsyncWriteExt as _;
        let head = b"POST /v1/api/sql HTTP/1.1\r\nHost: localhost\r\n";
        for byte in head.iter().cycle().take(40) {
            for socket in &mut sockets {
                let _ = socket.write_all(&[*byte]).await;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        sockets
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The node holds at most its per-address cap of them...
    let held = established(address.port(), attacker);
    assert!(held <= 200, "{held} attacker sockets open in the node");
    assert!(held > 0, "the node accepted some");
    // ...and a client elsewhere is served at once.
    let client = client_from([127, 0, 0, 2]);
    let started = Instant::now();
    let response = client
        .post(format!("{}/v1/api/sql", server.base_url))
        .header("authorization", ROOT_BASIC)
        .json(&json!({"sql": "SELECT 1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
    // Heads that never finish are closed after [server] header_timeout_secs.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(established(address.port(), attacker), 0);
    drop(trickle.await.unwrap());
    server.stop().await;
}

#[tokio::test]
async fn a_body_that_never_arrives_is_cut_off() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let server = TestServer::start_with(|c| c.server.body_timeout_secs = 1).await;
    let address = server.base_url.trim_start_matches("http://").to_string();
    let mut socket = tokio::net::TcpStream::connect(&address).await.unwrap();
    socket
        .write_all(
            format!(
                "POST /v1/api/sql HTTP/1.1\r\nHost: localhost\r\nAuthorization: {ROOT_BASIC}\r\n\
                 Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"sql\""
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), socket.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "the node answered and closed within 10 s");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("body_timeout_secs"), "{answer}");
    server.stop().await;
}
