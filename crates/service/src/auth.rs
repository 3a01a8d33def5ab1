//! Authentication: credentials in, [`Principal`] out. HS256 access and
//! refresh tokens, user name and password (Basic over HTTP), the sign-in
//! lockout, and root's password-less loopback rule, the same for every
//! protocol.
//!
//! `root` exists from a node's first start. Until it has a password it can
//! sign in without one, from loopback only.

use std::net::SocketAddr;
use std::sync::Arc;

use base64::Engine as _;
use dashmap::DashMap;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use quiver_catalog::{Catalog, UserRecord, verify_password};
use quiver_common::{ErrorCode, Role, UserId};
use quiver_config::AuthConfig;
use serde::{Deserialize, Serialize};

use crate::error::ServiceError;
use crate::limits::LoginGuard;

/// Shortest accepted `[auth] jwt_secret` off loopback, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub role: Role,
}

/// What a client presented to prove who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credentials {
    /// Nothing.
    Missing,
    /// An access token.
    Bearer(String),
    /// A user name and password.
    Password { user: String, password: String },
    /// Something that is none of those.
    Malformed,
}

impl Credentials {
    /// Reads an HTTP `Authorization` value: `Bearer <token>` or
    /// `Basic <base64 of user:password>`.
    pub fn from_authorization(value: Option<&str>) -> Self {
        let Some(value) = value else {
            return Self::Missing;
        };
        let Some((scheme, credentials)) = value.split_once(' ') else {
            return Self::Malformed;
        };
        if scheme.eq_ignore_ascii_case("bearer") {
            return Self::Bearer(credentials.trim().to_string());
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(credentials.trim())
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok());
            if let Some((user, password)) = decoded.as_deref().and_then(|d| d.split_once(':')) {
                return Self::Password {
                    user: user.to_string(),
                    password: password.to_string(),
                };
            }
        }
        Self::Malformed
    }
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

/// A signed-in user's tokens, with their expiry (seconds since the epoch).
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub access_expires_at: i64,
    pub refresh: String,
    pub refresh_expires_at: i64,
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

/// Token keys and lifetimes, the users they name, and the sign-in lockout.
pub struct Auth {
    catalog: Arc<Catalog>,
    keys: TokenKeys,
    logins: LoginGuard,
}

/// Signs and checks tokens.
struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    access_ttl_secs: i64,
    refresh_ttl_secs: i64,
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
    pub fn new(config: &AuthConfig, host: &str, catalog: Arc<Catalog>) -> Result<Self, WeakSecret> {
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
            catalog,
            keys: TokenKeys {
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                access_ttl_secs: config.access_token_ttl_secs as i64,
                refresh_ttl_secs: config.refresh_token_ttl_secs as i64,
                verified: DashMap::new(),
            },
            logins: LoginGuard::new(config),
        })
    }

    /// The principal `credentials` prove, or why not.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        peer: SocketAddr,
    ) -> Result<Principal, ServiceError> {
        let user = match credentials {
            Credentials::Missing => {
                return Err(ServiceError::new(
                    ErrorCode::MissingAuthorization,
                    "send Authorization: Bearer <token> (from /v1/api/auth/login) or Basic \
                     credentials",
                ));
            }
            Credentials::Bearer(token) => {
                let claims = self.keys.verify(&token, TokenKind::Access)?;
                // The user's current role counts, not the one the token
                // was made with.
                self.token_user(&claims)?
            }
            Credentials::Password { user, password } => {
                self.check_password(&user, password, peer).await?
            }
            Credentials::Malformed => return Err(invalid_credentials()),
        };
        Ok(Principal {
            user: user.id.clone(),
            role: user.role,
        })
    }

    /// Signs a user in with a name and password: the user and fresh tokens.
    pub async fn login(
        &self,
        name: &str,
        password: String,
        peer: SocketAddr,
    ) -> Result<(Arc<UserRecord>, Tokens), ServiceError> {
        let user = self.check_password(name, password, peer).await?;
        let tokens = self.tokens(&user);
        Ok((user, tokens))
    }

    /// Fresh tokens for the user a refresh token names.
    pub fn refresh(&self, refresh_token: &str) -> Result<(Arc<UserRecord>, Tokens), ServiceError> {
        let claims = self.keys.verify(refresh_token, TokenKind::Refresh)?;
        let user = self.token_user(&claims)?;
        let tokens = self.tokens(&user);
        Ok((user, tokens))
    }

    /// The user an access token names, as stored now.
    pub fn token_user_of(&self, access_token: &str) -> Result<Arc<UserRecord>, ServiceError> {
        let claims = self.keys.verify(access_token, TokenKind::Access)?;
        self.token_user(&claims)
    }

    /// Both tokens for `user`.
    pub fn tokens(&self, user: &UserRecord) -> Tokens {
        let now = chrono::Utc::now().timestamp();
        let (access, access_expires_at) = self.keys.token(user, TokenKind::Access, now);
        let (refresh, refresh_expires_at) = self.keys.token(user, TokenKind::Refresh, now);
        Tokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
        }
    }

    /// Checks a user name and password. `root` without a password accepts
    /// an empty one, from loopback only. Hash checks run off the async
    /// threads. Repeated failures lock the user out for a while.
    async fn check_password(
        &self,
        name: &str,
        password: String,
        peer: SocketAddr,
    ) -> Result<Arc<UserRecord>, ServiceError> {
        let id = UserId::parse(name).map_err(|_| invalid_credentials())?;
        let user = self.catalog.user(&id).ok_or_else(invalid_credentials)?;
        self.logins.check(&id)?;
        let matches = match user.password_hash.clone() {
            None => peer.ip().is_loopback() && password.is_empty(),
            Some(hash) => tokio::task::spawn_blocking(move || verify_password(&password, &hash))
                .await
                .unwrap_or(false),
        };
        if matches {
            self.logins.succeeded(&id);
            Ok(user)
        } else {
            self.logins.failed(&id);
            Err(invalid_credentials())
        }
    }

    /// The user a valid token names, as stored now.
    fn token_user(&self, claims: &Claims) -> Result<Arc<UserRecord>, ServiceError> {
        UserId::parse(&claims.sub)
            .ok()
            .and_then(|id| self.catalog.user(&id))
            .ok_or_else(|| ServiceError::new(ErrorCode::InvalidCredentials, "unknown user"))
    }
}

impl TokenKeys {
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
    /// The claims of a valid token of `kind`.
    fn verify(&self, token: &str, kind: TokenKind) -> Result<Claims, ServiceError> {
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
            return Err(ServiceError::new(ErrorCode::InvalidCredentials, message));
        }
        Ok(claims)
    }

    /// Checks a token's signature and expiry and reads its claims.
    fn decode(&self, token: &str) -> Result<Claims, ServiceError> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &validation)
            .map(|data| data.claims)
            .map_err(|e| match e.kind() {
                ErrorKind::ExpiredSignature => token_expired(),
                _ => ServiceError::new(ErrorCode::InvalidCredentials, "invalid token"),
            })
    }
}

fn token_expired() -> ServiceError {
    ServiceError::new(
        ErrorCode::TokenExpired,
        "the token has expired; sign in again",
    )
}

fn invalid_credentials() -> ServiceError {
    ServiceError::new(
        ErrorCode::InvalidCredentials,
        "invalid user name or password",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> TokenKeys {
        TokenKeys {
            encoding: EncodingKey::from_secret(b"a test secret of enough bytes...."),
            decoding: DecodingKey::from_secret(b"a test secret of enough bytes...."),
            access_ttl_secs: 24 * 3600,
            refresh_ttl_secs: 7 * 24 * 3600,
            verified: DashMap::new(),
        }
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

    fn code(result: Result<Claims, ServiceError>) -> ErrorCode {
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

    #[test]
    fn authorization_values_read_as_credentials() {
        use base64::Engine as _;
        let basic = |text: &str| {
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(text)
            )
        };
        assert_eq!(Credentials::from_authorization(None), Credentials::Missing);
        assert_eq!(
            Credentials::from_authorization(Some("bearer  abc ")),
            Credentials::Bearer("abc".to_string())
        );
        assert_eq!(
            Credentials::from_authorization(Some(&basic("ana:s3:cret"))),
            Credentials::Password {
                user: "ana".to_string(),
                password: "s3:cret".to_string()
            }
        );
        for malformed in ["Bearer", "Digest abc", "Basic !!!", &basic("no-colon")] {
            assert_eq!(
                Credentials::from_authorization(Some(malformed)),
                Credentials::Malformed,
                "{malformed}"
            );
        }
    }
}
