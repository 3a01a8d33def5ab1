//! Authentication: HS256 access and refresh tokens, Basic credentials, the
//! `/v1/api/auth/*` endpoints, and the principal every SQL request runs as.
//!
//! `root` exists from a node's first start. Until it has a password it can
//! sign in without one, from loopback only; `/v1/api/auth/setup` (loopback
//! only) or `[auth] root_password` gives it one.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use base64::Engine as _;
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quiver_catalog::{Catalog, UserRecord, verify_password};
use quiver_common::{ErrorCode, Role, UserId};
use quiver_config::AuthConfig;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::error::ApiError;
use crate::limits::LoginGuard;
use crate::routes::ApiState;

/// Shortest accepted `[auth] jwt_secret` off loopback, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub role: Role,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    sub: String,
    role: Role,
    iat: i64,
    exp: i64,
    token_type: TokenKind,
}

/// Why a node cannot serve with its `[auth]` settings.
#[derive(Debug, thiserror::Error)]
#[error(
    "[auth] jwt_secret must be set to at least {MIN_SECRET_BYTES} bytes when listening on {host} \
     (set it in config.toml or QUIVER_AUTH__JWT_SECRET)"
)]
pub struct WeakSecret {
    pub host: String,
}

/// Most tokens whose signature [`Auth`] remembers having checked.
const VERIFIED_TOKENS: usize = 4096;

/// Token keys and lifetimes.
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl_secs: i64,
    refresh_ttl_secs: i64,
    logins: LoginGuard,
    /// Claims of tokens whose signature checked out, by the token's exact
    /// text: a client sends the same token with every request, and
    /// checking its HMAC and decoding its JSON each time cost as much as
    /// answering a primary-key read. Expiry is still checked on every use.
    verified: DashMap<Box<str>, Claims>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

/// Whether `host` only accepts connections from this machine.
pub fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

impl Auth {
    /// Keys from `[auth]`. A node listening beyond loopback needs a real
    /// secret; on loopback an empty one becomes a random secret per start.
    pub fn new(config: &AuthConfig, host: &str) -> Result<Self, WeakSecret> {
        let secret = if config.jwt_secret.is_empty() && is_loopback_host(host) {
            format!(
                "{}{}",
                uuid::Uuid::new_v4().simple(),
                uuid::Uuid::new_v4().simple()
            )
        } else if config.jwt_secret.len() < MIN_SECRET_BYTES && !is_loopback_host(host) {
            return Err(WeakSecret {
                host: host.to_string(),
            });
        } else {
            config.jwt_secret.clone()
        };
        Ok(Self {
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            decoding: DecodingKey::from_secret(secret.as_bytes()),
            access_ttl_secs: config.access_token_ttl_secs as i64,
            refresh_ttl_secs: config.refresh_token_ttl_secs as i64,
            logins: LoginGuard::new(config),
            verified: DashMap::new(),
        })
    }

    fn token(&self, user: &UserRecord, kind: TokenKind, now: i64) -> (String, i64) {
        let ttl = match kind {
            TokenKind::Access => self.access_ttl_secs,
            TokenKind::Refresh => self.refresh_ttl_secs,
        };
        let claims = Claims {
            sub: user.id.to_string(),
            role: user.role,
            iat: now,
            exp: now + ttl,
            token_type: kind,
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .expect("HS256 signing cannot fail");
        (token, now + ttl)
    }

    /// The login response for `user`: both tokens and their expiry.
    fn session_body(&self, user: &UserRecord) -> serde_json::Value {
        let now = chrono::Utc::now().timestamp();
        let (access, expires) = self.token(user, TokenKind::Access, now);
        let (refresh, refresh_expires) = self.token(user, TokenKind::Refresh, now);
        json!({
            "user": user_json(user),
            "admin_ui_access": admin(user.role),
            "expires_at": rfc3339(expires),
            "access_token": access,
            "refresh_token": refresh,
            "refresh_expires_at": rfc3339(refresh_expires),
        })
    }

    /// The claims of a valid token of `kind`.
    fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, ApiError> {
        let claims = match self.verified.get(token) {
            Some(claims) => {
                // As the decoder checks it, without leeway.
                if claims.exp < chrono::Utc::now().timestamp() {
                    return Err(token_expired());
                }
                claims.clone()
            }
            None => {
                let claims = self.decode(token)?;
                if self.verified.len() >= VERIFIED_TOKENS {
                    // Mostly expired ones by then; those in use come back
                    // on their next request.
                    self.verified.clear();
                }
                self.verified.insert(token.into(), claims.clone());
                claims
            }
        };
        if claims.token_type != kind {
            let message = match kind {
                TokenKind::Access => "a refresh token is only accepted at /v1/api/auth/refresh",
                TokenKind::Refresh => "an access token cannot refresh a session",
            };
            return Err(ApiError::new(ErrorCode::InvalidCredentials, message));
        }
        Ok(claims)
    }

    /// Checks a token's signature and expiry and reads its claims.
    fn decode(&self, token: &str) -> Result<Claims, ApiError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => token_expired(),
                _ => ApiError::new(ErrorCode::InvalidCredentials, "invalid token"),
            })
    }
}

fn token_expired() -> ApiError {
    ApiError::new(
        ErrorCode::TokenExpired,
        "the token has expired; sign in again",
    )
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

fn invalid_credentials() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidCredentials,
        "invalid user name or password",
    )
}

/// Checks a user name and password. `root` without a password accepts an
/// empty one, from loopback only. Hash checks run off the async threads.
/// Repeated failures lock the user out for a while.
async fn check_password(
    state: &ApiState,
    name: &str,
    password: String,
    peer: SocketAddr,
) -> Result<Arc<UserRecord>, ApiError> {
    let id = UserId::parse(name).map_err(|_| invalid_credentials())?;
    let user = state
        .engine
        .catalog()
        .user(&id)
        .ok_or_else(invalid_credentials)?;
    let logins = &state.auth.logins;
    logins.check(&id)?;
    let matches = match user.password_hash.clone() {
        None => peer.ip().is_loopback() && password.is_empty(),
        Some(hash) => tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false),
    };
    if matches {
        logins.succeeded(&id);
        Ok(user)
    } else {
        logins.failed(&id);
        Err(invalid_credentials())
    }
}

/// The principal of a request, from `Authorization: Bearer <access token>`
/// or `Authorization: Basic <user:password>`.
pub async fn authenticate(
    state: &ApiState,
    headers: &HeaderMap,
    peer: SocketAddr,
) -> Result<Principal, ApiError> {
    let Some(value) = headers.get(AUTHORIZATION) else {
        return Err(ApiError::new(
            ErrorCode::MissingAuthorization,
            "send Authorization: Bearer <token> (from /v1/api/auth/login) or Basic credentials",
        ));
    };
    let value = value.to_str().map_err(|_| invalid_credentials())?;
    let (scheme, credentials) = value.split_once(' ').ok_or_else(invalid_credentials)?;
    if scheme.eq_ignore_ascii_case("bearer") {
        let claims = state.auth.verify(credentials.trim(), TokenKind::Access)?;
        // The user's current role counts, not the one the token was made with.
        let user = token_user(state, &claims)?;
        return Ok(Principal {
            user: user.id.clone(),
            role: user.role,
        });
    }
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(credentials.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(invalid_credentials)?;
        let (name, password) = decoded.split_once(':').ok_or_else(invalid_credentials)?;
        let user = check_password(state, name, password.to_string(), peer).await?;
        return Ok(Principal {
            user: user.id.clone(),
            role: user.role,
        });
    }
    Err(invalid_credentials())
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<LoginRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Json(request) = body.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("expected {{\"user\": \"...\", \"password\": \"...\"}}: {e}"),
        )
    })?;
    let user = check_password(&state, &request.user, request.password, peer).await?;
    Ok(Json(state.auth.session_body(&user)))
}

/// The principal an access token names, for WebSocket connections that
/// authenticate with a message.
pub(crate) fn token_principal(state: &ApiState, token: &str) -> Result<Principal, ApiError> {
    let claims = state.auth.verify(token.trim(), TokenKind::Access)?;
    let user = token_user(state, &claims)?;
    Ok(Principal {
        user: user.id.clone(),
        role: user.role,
    })
}

/// The user a valid token names, as stored now.
fn token_user(state: &ApiState, claims: &Claims) -> Result<Arc<UserRecord>, ApiError> {
    UserId::parse(&claims.sub)
        .ok()
        .and_then(|id| state.engine.catalog().user(&id))
        .ok_or_else(|| ApiError::new(ErrorCode::InvalidCredentials, "unknown user"))
}

fn bearer(headers: &HeaderMap) -> Result<&str, ApiError> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::MissingAuthorization,
                "send Authorization: Bearer <token>",
            )
        })
}

/// `POST /v1/api/auth/refresh` with the refresh token as Bearer.
pub(crate) async fn refresh(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let claims = state.auth.verify(bearer(&headers)?, TokenKind::Refresh)?;
    let user = token_user(&state, &claims)?;
    Ok(Json(state.auth.session_body(&user)))
}

/// `GET /v1/api/auth/me` with an access token.
pub(crate) async fn me(
    State(state): State<ApiState>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let claims = state.auth.verify(bearer(&headers)?, TokenKind::Access)?;
    let user = token_user(&state, &claims)?;
    Ok(Json(json!({
        "user": user_json(&user),
        "admin_ui_access": admin(user.role),
    })))
}

fn needs_setup(catalog: &Catalog) -> bool {
    catalog
        .user(&UserId::root())
        .is_some_and(|root| root.password_hash.is_none())
}

/// `GET /v1/api/auth/status`.
pub(crate) async fn status(State(state): State<ApiState>) -> Json<serde_json::Value> {
    let needs = needs_setup(state.engine.catalog());
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
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    body: Result<Json<SetupRequest>, axum::extract::rejection::JsonRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !peer.ip().is_loopback() {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "setup is only accepted from the server's own machine",
        ));
    }
    let catalog = state.engine.catalog();
    if !needs_setup(catalog) {
        return Err(ApiError::new(
            ErrorCode::PermissionDenied,
            "setup is done: root already has a password",
        ));
    }
    let Json(request) = body.map_err(|e| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!("expected {{\"user\", \"password\", \"root_password\", \"email\"?}}: {e}"),
        )
    })?;
    let id = UserId::parse(&request.user)
        .map_err(|e| ApiError::new(ErrorCode::InvalidParameter, e.to_string()))?;
    let engine = &state.engine;
    let fail = |e| ApiError::from_query(e, None);
    let root_hash = engine
        .hash_password(request.root_password)
        .await
        .map_err(fail)?;
    let hash = engine.hash_password(request.password).await.map_err(fail)?;
    let now = chrono::Utc::now().timestamp_micros();
    let user = UserRecord {
        id,
        role: Role::Dba,
        email: request.email,
        password_hash: Some(hash),
        created_at: now,
        updated_at: now,
    };
    let user = catalog
        .create_user(user)
        .map_err(|e| ApiError::from_query(e.into(), None))?;
    let mut root = (*catalog.user(&UserId::root()).expect("root exists")).clone();
    root.password_hash = Some(root_hash);
    root.updated_at = now;
    catalog
        .update_user(root)
        .map_err(|e| ApiError::from_query(e.into(), None))?;
    Ok(Json(state.auth.session_body(&user)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let config = AuthConfig {
            access_token_ttl_secs: 24 * 3600,
            ..AuthConfig::default()
        };
        Auth::new(&config, "127.0.0.1").expect("loopback needs no secret")
    }

    fn user() -> UserRecord {
        UserRecord {
            id: UserId::parse("alice").expect("valid name"),
            role: Role::User,
            email: None,
            password_hash: None,
            created_at: 0,
            updated_at: 0,
        }
    }

    fn code(result: Result<Claims, ApiError>) -> ErrorCode {
        result.expect_err("refused").code
    }

    #[test]
    fn a_remembered_token_still_expires_and_keeps_its_kind() {
        let auth = auth();
        let now = chrono::Utc::now().timestamp();
        let (token, _) = auth.token(&user(), TokenKind::Access, now);
        assert_eq!(auth.verify(&token, TokenKind::Access).unwrap().sub, "alice");
        assert_eq!(auth.verified.len(), 1);
        // Remembered, but only for the kind it is.
        assert_eq!(
            code(auth.verify(&token, TokenKind::Refresh)),
            ErrorCode::InvalidCredentials
        );
        assert!(auth.verify(&token, TokenKind::Access).is_ok());
        // A token whose expiry passes while remembered is refused.
        auth.verified.get_mut(token.as_str()).unwrap().exp = now - 1;
        assert_eq!(
            code(auth.verify(&token, TokenKind::Access)),
            ErrorCode::TokenExpired
        );
    }

    #[test]
    fn only_the_exact_text_of_a_checked_token_is_remembered() {
        let auth = auth();
        let now = chrono::Utc::now().timestamp();
        let (token, _) = auth.token(&user(), TokenKind::Access, now);
        auth.verify(&token, TokenKind::Access).unwrap();
        let mut tampered = token.clone().into_bytes();
        let last = tampered.len() - 1;
        tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            code(auth.verify(&tampered, TokenKind::Access)),
            ErrorCode::InvalidCredentials
        );
        assert_eq!(auth.verified.len(), 1, "a refused token is not remembered");
    }

    #[test]
    fn remembered_tokens_are_bounded() {
        let auth = auth();
        let now = chrono::Utc::now().timestamp();
        for age in 0..=VERIFIED_TOKENS as i64 {
            // A different issue time makes a different token.
            let (token, _) = auth.token(&user(), TokenKind::Access, now - age);
            auth.verify(&token, TokenKind::Access).unwrap();
        }
        assert!(auth.verified.len() <= VERIFIED_TOKENS);
        assert!(!auth.verified.is_empty());
    }
}
