//! Request limits over real HTTP: the per-user rate, the query timeout and
//! the failed sign-in lockout, each set in the config.

use quiver_tests::{ROOT_BASIC, TestServer, basic};
use serde_json::json;

#[tokio::test]
async fn each_user_has_their_own_request_rate() {
    let server = TestServer::start_with(|c| {
        c.limits.queries_per_second = 1;
        c.limits.query_burst = 3;
    })
    .await;
    // The burst allows three requests at once, then one per second.
    server
        .sql_ok("CREATE USER 'alice' WITH PASSWORD 'pw' ROLE user")
        .await;
    server.sql_ok("SELECT 1").await;
    server.sql_ok("SELECT 2").await;
    let refused = server.sql("SELECT 3").await;
    assert_eq!(refused.status, 429, "{}", refused.body);
    assert_eq!(refused.code(), "RATE_LIMIT_EXCEEDED");
    assert!(refused.message().contains("root"), "{}", refused.message());
    assert!(refused.message().contains("queries_per_second"));
    // Another user's allowance is untouched.
    let alice = server.sql_as(&basic("alice", "pw"), "SELECT 1").await;
    assert_eq!(alice.status, 200, "{}", alice.body);
    server.stop().await;
}

#[tokio::test]
async fn a_query_past_the_timeout_is_cancelled_with_408() {
    let server = TestServer::start_with(|c| c.limits.query_timeout_ms = 300).await;
    let slow = server
        .sql("SELECT COUNT(*) FROM generate_series(1, 5000000000) WHERE value % 7 = 3")
        .await;
    assert_eq!(slow.status, 408, "{}", slow.body);
    assert_eq!(slow.code(), "QUERY_TIMEOUT");
    assert!(
        slow.message().contains("query_timeout_ms"),
        "{}",
        slow.message()
    );
    // The node keeps serving, and a statement that finished before the
    // limit stays committed.
    server
        .sql_ok("CREATE TABLE t (id BIGINT PRIMARY KEY); INSERT INTO t VALUES (1)")
        .await;
    let answer = server.sql_ok("SELECT COUNT(*) FROM t").await;
    assert_eq!(answer.rows(0)[0][0], "1");
    server.stop().await;
}

/// Signs in from `source`, one of this machine's loopback addresses.
async fn login_from(
    source: [u8; 4],
    server: &TestServer,
    user: &str,
    password: &str,
) -> (u16, serde_json::Value) {
    let client = reqwest::Client::builder()
        .local_address(std::net::IpAddr::from(source))
        .build()
        .unwrap();
    let response = client
        .post(format!("{}/v1/api/auth/login", server.base_url))
        .json(&json!({ "username": user, "password": password }))
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

async fn login(server: &TestServer, user: &str, password: &str) -> (u16, serde_json::Value) {
    login_from([127, 0, 0, 1], server, user, password).await
}

#[tokio::test]
async fn repeated_failed_sign_ins_lock_the_address_out() {
    let server = TestServer::start_with(|c| {
        c.auth.max_failed_logins = 3;
        c.auth.lockout_secs = 600;
    })
    .await;
    server
        .sql_ok(
            "CREATE USER 'alice' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'bob' WITH PASSWORD 'pw' ROLE user",
        )
        .await;
    // Alice has signed in from here before.
    assert_eq!(login(&server, "alice", "pw").await.0, 200);
    // Failures count across sign-in, Basic credentials and unknown names.
    assert_eq!(login(&server, "bob", "wrong").await.0, 401);
    let basic_wrong = server.sql_as(&basic("bob", "nope"), "SELECT 1").await;
    assert_eq!(basic_wrong.status, 401);
    assert_eq!(login(&server, "nobody", "still wrong").await.0, 401);

    // Refused now: even the right password, on both paths, for any
    // account that has not signed in from this address.
    let (status, body) = login(&server, "bob", "pw").await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "RATE_LIMIT_EXCEEDED");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("from this address"),
        "{body}"
    );
    let locked = server.sql_as(&basic("bob", "pw"), "SELECT 1").await;
    assert_eq!(locked.status, 429, "{}", locked.body);
    // Those who signed in from here before still get in: alice, and root
    // (whose requests set this test up).
    assert_eq!(login(&server, "alice", "pw").await.0, 200);
    let root = server.sql_as(ROOT_BASIC, "SELECT 1").await;
    assert_eq!(root.status, 200, "{}", root.body);
    // Another address is not affected.
    assert_eq!(
        login_from([127, 0, 0, 2], &server, "bob", "pw").await.0,
        200
    );
    server.stop().await;
}
