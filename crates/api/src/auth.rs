//! `/v1/api/auth/*`: sign-in, token refresh, the signed-in user and a
//! node's first setup, over the request service's authentication.
//!
//! `root` exists from a node's first start. Until it has a password it can
//! sign in without one, from loopback only; `/v1/api/auth/setup` (loopback
//! only) or `[auth] root_password` gives it one.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::{AUTHORIZATION, HOST};
use quiver_catalog::UserRecord;
use quiver_common::{ErrorCode, Role};
use quiver_service::{Credentials, Peer, Setup, Tokens};
use serde::Deserialize;
use serde_json::json;

use crate::error::ApiError;
use crate::routes::ApiState;

/// Where a request comes from, and whether its `Host` names this machine.
pub(crate) fn peer(addr: SocketAddr, headers: &HeaderMap) -> Peer {
    let host = headers.get(HOST).and_then(|v| v.to_str().ok());
    // HTTP/1.1 requires a Host; a request without one names nothing.
    Peer::new(addr, Some(host.unwrap_or_default()))
}

/// The credentials of a request's `Authorization` header.
pub(crate) fn credentials(headers: &HeaderMap) -> Credentials {
    match headers.get(AUTHORIZATION).map(|v| v.to_str()) {
        None => Credentials::Missing,
        Some(Ok(value)) => Credentials::from_authorization(Some(value)),
        Some(Err(_)) => Credentials::Malformed,
    }
}

fn admin(role: Role) -> bool {
    matches!(role, Role::Dba | Role::System)
}

fn rfc3339(epoch_secs: i64) -> String {
    chrono::DateTime::from_timestamp(epoch_secs, 0)
        .unwrap_or_default()
        .to_rfc3339()
}

fn micros_rfc3339(micros: i64) -> String {
    chrono::DateTime::from_timestamp_micros(micros)
        .unwrap_or_default()
        .to_rfc3339()
}

fn user_json(user: &UserRecord) -> serde_json::Value {
    json!({
        "id": user.id.as_str(),
        "role": user.role,
        "email": user.email,
        "created_at": micros_rfc3339(user.created_at),
        "updated_at": micros_rfc3339(user.updated_at),
    })
}

/// The login response for `user`: both tokens and their expiry.
fn session_body(user: &UserRecord, tokens: &Tokens) -> serde_json::Value {
    json!({
        "user": user_json(user),
        "admin_ui_access": admin(user.role),
        "expires_at": rfc3339(tokens.access_expires_at),
        "access_token": tokens.access,
        "refresh_token": tokens.refresh,
        "refresh_expires_at": rfc3339(tokens.refresh_expires_at),
    })
}

#[derive(Debug, Deserialize)]
pub(crate) struct LoginRequest {
    #[serde(alias = "username")]
    user: String,
    #[serde(default)]
    password: String,
}

/// `POST /v1/api/auth/login`.
pub(crate) async fn login(
    State(state): State<ApiState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("expected {{\"user\": \"...\", \"password\": \"...\"}}: {e}"),
        )
    })?;
    let (user, tokens) = state
        .service
        .auth()
        .login(&request.user, request.password, peer(addr, &headers))
        .await?;
    Ok(Json(session_body(&user, &tokens)))
}

fn bearer(headers: &HeaderMap) -> Result<String, ApiError> {
    match credentials(headers) {
        Credentials::Bearer(token) => Ok(token),
        _ => Err(ApiError::new(
            ErrorCode::MissingAuthorization,
            "send Authorization: Bearer <token>",
        )),
    }
}

/// `POST /v1/api/auth/refresh` with the refresh token as Bearer.
pub(crate) async fn refresh(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (user, tokens) = state.service.auth().refresh(&bearer(&headers)?)?;
    Ok(Json(session_body(&user, &tokens)))
}

/// `POST /v1/api/auth/logout` with an access token: every token issued
/// to its user so far stops working, on every device.
pub(crate) async fn logout(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = state.service.auth().logout(&bearer(&headers)?)?;
    state.live.end_user(&user.id, "the user signed out");
    Ok(Json(json!({
        "user": user.id.as_str(),
        "message": "signed out: every token issued to this user so far has ended",
    })))
}

/// `GET /v1/api/auth/me` with an access token.
pub(crate) async fn me(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user = state.service.auth().token_user_of(&bearer(&headers)?)?;
    Ok(Json(json!({
        "user": user_json(&user),
        "admin_ui_access": admin(user.role),
    })))
}

/// `GET /v1/api/auth/status`.
pub(crate) async fn status(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let needs = state.service.needs_setup();
    Json(json!({
        "needs_setup": needs,
        "message": if needs {
            "root has no password yet: POST /v1/api/auth/setup from this machine"
        } else {
            "ready"
        },
    }))
}

#[derive(Debug, Deserialize)]
pub(crate) struct SetupRequest {
    #[serde(alias = "username")]
    user: String,
    password: String,
    root_password: String,
    #[serde(default)]
    email: Option<String>,
}

/// `POST /v1/api/auth/setup`: from loopback, while root has no password,
/// sets root's password and creates a first `dba` user; answers as a
/// login of that user.
pub(crate) async fn setup(
    State(state): State<ApiState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Json<SetupRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let peer = peer(addr, &headers);
    state.service.setup_allowed(peer)?;
    let Json(request) = body.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("expected {{\"user\", \"password\", \"root_password\", \"email\"?}}: {e}"),
        )
    })?;
    let setup = Setup {
        user: request.user,
        password: request.password,
        root_password: request.root_password,
        email: request.email,
    };
    let (user, tokens) = state.service.setup(setup, peer).await?;
    Ok(Json(session_body(&user, &tokens)))
}
