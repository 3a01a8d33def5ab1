//! Sign-in and tokens over real HTTP: login, refresh, me, status, setup,
//! Basic credentials, and every way a credential can be wrong.

use base64::Engine as _;
use quiver_tests::{ROOT_BASIC, TestServer, basic, post_json};
use serde_json::{Value, json};

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";

async fn start() -> TestServer {
    TestServer::start_with(|c| c.auth.jwt_secret = SECRET.to_string()).await
}

async fn get_with(server: &TestServer, path: &str, auth: &str) -> (u16, Value) {
    let response = server
        .client()
        .get(format!("{}{path}", server.base_url))
        .header("authorization", auth)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A token signed with `secret`, with the given claims.
fn token(secret: &str, claims: Value) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

#[tokio::test]
async fn login_refresh_and_me_follow_the_contract() {
    let server = start().await;
    server
        .sql_ok("CREATE USER 'ana' WITH PASSWORD 'correct horse' ROLE dba EMAIL 'ana@example.com'")
        .await;

    let (status, login) = post_json(
        &server,
        "/v1/api/auth/login",
        None,
        json!({"username": "ana", "password": "correct horse"}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    assert_eq!(login["user"]["id"], "ana");
    assert_eq!(login["user"]["role"], "dba");
    assert_eq!(login["user"]["email"], "ana@example.com");
    assert_eq!(login["admin_ui_access"], true);
    for key in ["expires_at", "refresh_expires_at", "user"] {
        assert!(!login[key].is_null(), "{key} missing: {login}");
    }
    chrono::DateTime::parse_from_rfc3339(login["expires_at"].as_str().unwrap()).unwrap();
    let access = format!("Bearer {}", login["access_token"].as_str().unwrap());
    let refresh = format!("Bearer {}", login["refresh_token"].as_str().unwrap());

    let (status, me) = get_with(&server, "/v1/api/auth/me", &access).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["user"]["id"], "ana");
    assert_eq!(me["admin_ui_access"], true);

    let answer = server
        .post_as(&access, r#"{"sql": "SELECT 1 AS one"}"#)
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(answer.body["results"][0]["as_user"], "ana");

    // Refresh tokens work only at /refresh, and access tokens not there.
    let (status, refreshed) =
        post_json(&server, "/v1/api/auth/refresh", Some(&refresh), json!({})).await;
    assert_eq!(status, 200, "{refreshed}");
    assert!(refreshed["access_token"].is_string());
    let (status, body) = post_json(&server, "/v1/api/auth/refresh", Some(&access), json!({})).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("INVALID_CREDENTIALS"))
    );
    let misuse = server.post_as(&refresh, r#"{"sql": "SELECT 1"}"#).await;
    assert_eq!(misuse.status, 401);
    assert_eq!(misuse.code(), "INVALID_CREDENTIALS");
    let (status, _) = get_with(&server, "/v1/api/auth/me", &refresh).await;
    assert_eq!(status, 401);

    // Wrong passwords and unknown users look the same.
    for (user, password) in [("ana", "wrong"), ("nobody", "correct horse")] {
        let (status, body) = post_json(
            &server,
            "/v1/api/auth/login",
            None,
            json!({"user": user, "password": password}),
        )
        .await;
        assert_eq!(status, 401);
        assert_eq!(body["error"]["code"], "INVALID_CREDENTIALS");
        assert_eq!(body["error"]["message"], "invalid user name or password");
    }
    // Basic credentials work on the SQL endpoint too.
    let answer = server
        .post_as(&basic("ana", "correct horse"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!(answer.status, 200);
    let answer = server
        .post_as(&basic("ana", "nope"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!(answer.code(), "INVALID_CREDENTIALS");
    server.stop().await;
}

#[tokio::test]
async fn missing_expired_tampered_and_foreign_tokens_are_refused() {
    let server = start().await;
    let missing = server.post_as("", r#"{"sql": "SELECT 1"}"#).await;
    assert_eq!(missing.status, 401);
    assert_eq!(missing.code(), "MISSING_AUTHORIZATION");

    let claims = |exp: i64, kind: &str| {
        json!({"sub": "root", "role": "system", "iat": now() - 10, "exp": exp, "token_type": kind,
               "uid": 0, "ep": 0, "fam": "f", "jti": "j"})
    };
    let (status, login) = post_json(
        &server,
        "/v1/api/auth/login",
        None,
        json!({"user": "root", "password": ""}),
    )
    .await;
    assert_eq!(status, 200, "{login}");
    let valid = login["access_token"].as_str().unwrap().to_string();
    let ok = server
        .post_as(&format!("Bearer {valid}"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!(ok.status, 200, "{}", ok.body);
    // Signed with the node's secret, but issued by no sign-in of this node.
    let forged = token(SECRET, claims(now() + 600, "access"));
    let answer = server
        .post_as(&format!("Bearer {forged}"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!((answer.status, answer.code()), (401, "INVALID_CREDENTIALS"));

    let expired = token(SECRET, claims(now() - 5, "access"));
    let answer = server
        .post_as(&format!("Bearer {expired}"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!((answer.status, answer.code()), (401, "TOKEN_EXPIRED"));

    let foreign = token(
        "some-other-secret-that-is-also-long-0000000",
        claims(now() + 600, "access"),
    );
    let answer = server
        .post_as(&format!("Bearer {foreign}"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!((answer.status, answer.code()), (401, "INVALID_CREDENTIALS"));

    // Flip one character of the payload: the signature no longer matches.
    let mut parts: Vec<String> = valid.split('.').map(str::to_string).collect();
    let mut payload = parts[1].clone().into_bytes();
    payload[5] = if payload[5] == b'A' { b'B' } else { b'A' };
    parts[1] = String::from_utf8(payload).unwrap();
    let tampered = parts.join(".");
    let answer = server
        .post_as(&format!("Bearer {tampered}"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!((answer.status, answer.code()), (401, "INVALID_CREDENTIALS"));

    let unsigned = token(SECRET, claims(now() + 600, "access"));
    let none_alg = format!(
        "{}.{}.",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#),
        unsigned.split('.').nth(1).unwrap()
    );
    let answer = server
        .post_as(&format!("Bearer {none_alg}"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!((answer.status, answer.code()), (401, "INVALID_CREDENTIALS"));

    for garbage in [
        "Bearer",
        "Bearer x.y.z",
        "Token abc",
        "Basic !!!",
        "Basic cm9vdA==",
    ] {
        let answer = server.post_as(garbage, r#"{"sql": "SELECT 1"}"#).await;
        assert_eq!(answer.status, 401, "{garbage}: {}", answer.body);
    }
    server.stop().await;
}

#[tokio::test]
async fn setup_gives_root_a_password_once() {
    let server = start().await;
    let status = server.get("/v1/api/auth/status").await;
    assert_eq!(status.body["needs_setup"], true);

    let (code, body) = post_json(
        &server,
        "/v1/api/auth/setup",
        None,
        json!({"user": "admin", "password": "admin-pass", "root_password": "root-pass"}),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["user"]["id"], "admin");
    assert_eq!(body["user"]["role"], "dba");
    assert!(body["access_token"].is_string());

    let status = server.get("/v1/api/auth/status").await;
    assert_eq!(status.body["needs_setup"], false);
    // Root now needs its password, even from loopback.
    let answer = server.post_as(ROOT_BASIC, r#"{"sql": "SELECT 1"}"#).await;
    assert_eq!(answer.code(), "INVALID_CREDENTIALS");
    let answer = server
        .post_as(&basic("root", "root-pass"), r#"{"sql": "SELECT 1"}"#)
        .await;
    assert_eq!(answer.status, 200);

    let (code, body) = post_json(
        &server,
        "/v1/api/auth/setup",
        None,
        json!({"user": "admin2", "password": "x", "root_password": "y"}),
    )
    .await;
    assert_eq!(code, 403, "{body}");
    assert_eq!(body["error"]["code"], "PERMISSION_DENIED");
    server.stop().await;
}

#[tokio::test]
async fn root_password_from_the_config_and_no_hash_ever_leaves() {
    let server = TestServer::start_with(|c| {
        c.auth.jwt_secret = SECRET.to_string();
        c.auth.root_password = "configured".to_string();
    })
    .await;
    let answer = server.post_as(ROOT_BASIC, r#"{"sql": "SELECT 1"}"#).await;
    assert_eq!(answer.code(), "INVALID_CREDENTIALS");
    let root = basic("root", "configured");
    let answer = server
        .post_as(
            &root,
            r#"{"sql": "CREATE USER 'eve' WITH PASSWORD 'secret-pw' ROLE user"}"#,
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let everything = [
        server
            .post_as(&root, r#"{"sql": "SELECT * FROM system.users"}"#)
            .await
            .body,
        post_json(
            &server,
            "/v1/api/auth/login",
            None,
            json!({"user": "eve", "password": "secret-pw"}),
        )
        .await
        .1,
        server.get("/v1/api/auth/status").await.body,
    ];
    for body in everything {
        let text = body.to_string();
        assert!(!text.contains("argon2"), "{text}");
        assert!(!text.contains("secret-pw"), "{text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_weak_secret_stops_a_node_listening_beyond_loopback() {
    let dir = tempfile::tempdir().unwrap();
    for secret in ["", "short"] {
        let mut config = quiver_tests::test_config(dir.path());
        config.server.host = "0.0.0.0".to_string();
        config.auth.jwt_secret = secret.to_string();
        let error = quiver::AppContext::build(config).unwrap_err().to_string();
        assert!(error.contains("jwt_secret"), "{error}");
        assert!(error.contains("32"), "{error}");
    }
    let mut config = quiver_tests::test_config(dir.path());
    config.server.host = "0.0.0.0".to_string();
    config.auth.jwt_secret = SECRET.to_string();
    assert!(quiver::AppContext::build(config).is_ok());
}
