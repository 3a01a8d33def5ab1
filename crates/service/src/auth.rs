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
use quiver_catalog::{Catalog, PasswordCost, RefreshFamily, UserRecord, hash_password};
use quiver_common::{ErrorCode, Role, UserId};
use quiver_config::AuthConfig;
use serde::{Deserialize, Serialize};
use tokio::sync::OnceCell;

use crate::error::ServiceError;
use crate::signin::SignIns;

/// Shortest accepted `[auth] jwt_secret` off loopback, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Who a request acts as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub user: UserId,
    pub role: Role,
    /// Which user of that name, and in which token epoch, as when the
    /// principal was proven: see [`Auth::current`].
    created_at: i64,
    token_epoch: i64,
}

impl Principal {
    fn of(user: &UserRecord) -> Self {
        Self {
            user: user.id.clone(),
            role: user.role,
            created_at: user.created_at,
            token_epoch: user.token_epoch,
        }
    }
}

/// Where a request comes from, as far as sign-in cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Whether the request named this machine as the server it wants: an
    /// HTTP `Host` of a loopback name or address. Protocols without such
    /// a name count as naming it.
    names_loopback: bool,
}

impl Peer {
    /// A request from `addr` that named the server `host` (HTTP's
    /// `Host`), or nothing (`None`: a protocol without a host name).
    pub fn new(addr: SocketAddr, host: Option<&str>) -> Self {
        Self {
            addr,
            names_loopback: host.is_none_or(host_is_loopback),
        }
    }

    /// Whether the request both comes from and is addressed to this
    /// machine: a page on another site that resolves its own name to
    /// 127.0.0.1 (DNS rebinding) or a proxy on this host forwarding
    /// others' requests fails the second half.
    pub fn is_local(&self) -> bool {
        self.addr.ip().is_loopback() && self.names_loopback
    }
}

/// Whether an HTTP `Host` value (a name or address, with or without a
/// port) is this machine's loopback.
fn host_is_loopback(host: &str) -> bool {
    let name = match host.strip_prefix('[') {
        // `[::1]:8080`
        Some(rest) => match rest.split_once(']') {
            Some((name, _)) => name,
            None => return false,
        },
        None => match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => host,
        },
    };
    let name = name.strip_suffix('.').unwrap_or(name);
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
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
    /// The user's creation time: a later user of the same name is not
    /// the one the token was issued to.
    uid: i64,
    /// The user's token epoch at issue.
    ep: i64,
    /// The sign-in the token descends from (see [`RefreshFamily`]).
    fam: String,
    /// This token's own id.
    jti: String,
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

/// Token keys and lifetimes, the users they name, the sign-ins tokens
/// descend from, and the sign-in lockout.
pub struct Auth {
    catalog: Arc<Catalog>,
    keys: TokenKeys,
    signins: SignIns,
    /// Checked in place of a password hash for an unknown user, so that
    /// an unknown name takes as long as a wrong password.
    decoy: OnceCell<String>,
    cost: PasswordCost,
    /// Live refresh-token families by id, as stored in the catalog.
    families: DashMap<String, RefreshFamily>,
}

/// Families stored past which a sign-in first sweeps out expired ones.
const FAMILY_SWEEP_AT: usize = 10_000;

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
            keys: TokenKeys {
                encoding: EncodingKey::from_secret(secret.as_bytes()),
                decoding: DecodingKey::from_secret(secret.as_bytes()),
                access_ttl_secs: config.access_token_ttl_secs as i64,
                refresh_ttl_secs: config.refresh_token_ttl_secs as i64,
                verified: DashMap::new(),
            },
            signins: SignIns::new(config),
            decoy: OnceCell::new(),
            cost: PasswordCost {
                memory_kib: config.password_memory_kib,
                iterations: config.password_iterations,
            },
            families: live_families(&catalog),
            catalog,
        })
    }

    /// The principal `credentials` prove, or why not.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        peer: Peer,
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
        Ok(Principal::of(&user))
    }

    /// `principal` as its user stands now (with their current role), for
    /// a connection that proved it earlier; refused once the user has
    /// signed out, changed password or role, or been dropped since.
    pub fn current(&self, principal: &Principal) -> Result<Principal, ServiceError> {
        let user = self
            .catalog
            .user(&principal.user)
            .filter(|u| u.created_at == principal.created_at)
            .ok_or_else(|| ServiceError::new(ErrorCode::InvalidCredentials, "unknown user"))?;
        if user.token_epoch != principal.token_epoch {
            return Err(revoked());
        }
        Ok(Principal::of(&user))
    }

    /// Signs a user in with a name and password: the user and fresh tokens.
    pub async fn login(
        &self,
        name: &str,
        password: String,
        peer: Peer,
    ) -> Result<(Arc<UserRecord>, Tokens), ServiceError> {
        let user = self.check_password(name, password, peer).await?;
        let tokens = self.tokens(&user)?;
        Ok((user, tokens))
    }

    /// Fresh tokens for the user a refresh token names. Each refresh token
    /// is good for one refresh: the answer carries its successor. Using one
    /// a second time ends its family (every token of that sign-in), since
    /// one of the two users of it is not who the token was issued to.
    pub fn refresh(&self, refresh_token: &str) -> Result<(Arc<UserRecord>, Tokens), ServiceError> {
        let claims = self.keys.verify(refresh_token, TokenKind::Refresh)?;
        let user = self.token_user(&claims)?;
        let now = chrono::Utc::now().timestamp();
        let next = new_token_id();
        let rotated = match self.families.get_mut(&claims.fam) {
            Some(mut family) if family.newest == claims.jti => {
                let mut stored = family.clone();
                stored.newest = next.clone();
                stored.expires_at = now + self.keys.lifetime();
                self.catalog
                    .put_refresh_family(&stored)
                    .map_err(|e| ServiceError::new(ErrorCode::InternalError, e.to_string()))?;
                *family = stored;
                true
            }
            _ => false,
        };
        if !rotated {
            self.forget_families(|family| family.id == claims.fam);
            return Err(ServiceError::new(
                ErrorCode::InvalidCredentials,
                "this refresh token was already used or its sign-in has ended; sign in again",
            ));
        }
        let tokens = self.keys.tokens(&user, now, &claims.fam, next);
        Ok((user, tokens))
    }

    /// Signs the user an access token names out everywhere: every token
    /// issued to the user so far stops working.
    pub fn logout(&self, access_token: &str) -> Result<Arc<UserRecord>, ServiceError> {
        let claims = self.keys.verify(access_token, TokenKind::Access)?;
        let user = self.token_user(&claims)?;
        self.end_tokens(&user.id)?;
        Ok(user)
    }

    /// Ends every token issued to `user` so far (on sign-out, a password
    /// or role change, or DROP USER).
    pub fn end_tokens(&self, user: &UserId) -> Result<(), ServiceError> {
        self.catalog
            .end_tokens(user)
            .map_err(|e| ServiceError::new(ErrorCode::InternalError, e.to_string()))?;
        self.forget_families(|family| family.user == *user);
        Ok(())
    }

    /// Removes the families `ended` picks, here and where they are stored;
    /// a failure to store that leaves records no token can use any more
    /// (their user's epoch or their newest id moved on), so it is only
    /// logged.
    fn forget_families(&self, ended: impl Fn(&RefreshFamily) -> bool) {
        let ids: Vec<String> = self
            .families
            .iter()
            .filter(|family| ended(family))
            .map(|family| family.key().clone())
            .collect();
        for id in &ids {
            self.families.remove(id);
        }
        if let Err(e) = self
            .catalog
            .remove_refresh_families(ids.iter().map(String::as_str))
        {
            tracing::warn!(error = %e, "could not remove ended refresh-token families");
        }
    }

    /// The user an access token names, as stored now.
    pub fn token_user_of(&self, access_token: &str) -> Result<Arc<UserRecord>, ServiceError> {
        let claims = self.keys.verify(access_token, TokenKind::Access)?;
        self.token_user(&claims)
    }

    /// Both tokens of a new sign-in of `user`.
    pub fn tokens(&self, user: &UserRecord) -> Result<Tokens, ServiceError> {
        let now = chrono::Utc::now().timestamp();
        if self.families.len() >= FAMILY_SWEEP_AT {
            self.sweep(now);
        }
        let family = RefreshFamily {
            id: new_token_id(),
            user: user.id.clone(),
            newest: new_token_id(),
            expires_at: now + self.keys.lifetime(),
        };
        self.catalog
            .put_refresh_family(&family)
            .map_err(|e| ServiceError::new(ErrorCode::InternalError, e.to_string()))?;
        let tokens = self
            .keys
            .tokens(user, now, &family.id, family.newest.clone());
        self.families.insert(family.id.clone(), family);
        Ok(tokens)
    }

    /// Forgets families whose tokens have all expired.
    fn sweep(&self, now: i64) {
        self.forget_families(|family| family.expires_at < now);
    }

    /// Checks a user name and password. `root` without a password accepts
    /// an empty one, from this machine only. Attempts are limited per
    /// address and per account (`signin.rs`); an unknown user costs a
    /// password check too.
    async fn check_password(
        &self,
        name: &str,
        password: String,
        peer: Peer,
    ) -> Result<Arc<UserRecord>, ServiceError> {
        let id = UserId::parse(name).map_err(|_| invalid_credentials())?;
        let attempt = self.signins.begin(&id, peer.addr.ip())?;
        let user = self.catalog.user(&id);
        let hash = match &user {
            Some(user) => user.password_hash.clone(),
            None => Some(self.decoy().await?),
        };
        let matches = match hash {
            None => peer.is_local() && password.is_empty(),
            Some(hash) => self.signins.verify(password, hash).await?,
        };
        match user {
            Some(user) if matches => {
                attempt.succeeded();
                Ok(user)
            }
            _ => {
                attempt.failed();
                Err(invalid_credentials())
            }
        }
    }

    /// A hash of no one's password, made once at the configured cost.
    async fn decoy(&self) -> Result<String, ServiceError> {
        let cost = self.cost;
        self.decoy
            .get_or_try_init(|| async move {
                let secret = new_token_id();
                tokio::task::spawn_blocking(move || hash_password(&secret, cost))
                    .await
                    .map_err(|e| ServiceError::new(ErrorCode::InternalError, e.to_string()))?
                    .map_err(|e| ServiceError::new(ErrorCode::InternalError, e.to_string()))
            })
            .await
            .cloned()
    }

    /// The user a valid token names, as stored now, if the token is still
    /// theirs: issued to this user (not an earlier one of the same name),
    /// in their current token epoch, from a sign-in that has not ended.
    fn token_user(&self, claims: &Claims) -> Result<Arc<UserRecord>, ServiceError> {
        let user = UserId::parse(&claims.sub)
            .ok()
            .and_then(|id| self.catalog.user(&id))
            .filter(|user| user.created_at == claims.uid)
            .ok_or_else(|| ServiceError::new(ErrorCode::InvalidCredentials, "unknown user"))?;
        if user.token_epoch != claims.ep || !self.families.contains_key(&claims.fam) {
            return Err(revoked());
        }
        Ok(user)
    }
}

/// The refresh-token families stored, without the expired ones (which
/// are removed). Without them every refresh token is refused: its user
/// signs in again.
fn live_families(catalog: &Catalog) -> DashMap<String, RefreshFamily> {
    let now = chrono::Utc::now().timestamp();
    let families = match catalog.refresh_families() {
        Ok(families) => families,
        Err(e) => {
            tracing::warn!(error = %e, "could not read refresh-token families");
            Vec::new()
        }
    };
    let (live, expired): (Vec<_>, Vec<_>) = families.into_iter().partition(|f| f.expires_at >= now);
    if !expired.is_empty()
        && let Err(e) = catalog.remove_refresh_families(expired.iter().map(|f| f.id.as_str()))
    {
        tracing::warn!(error = %e, "could not remove expired refresh-token families");
    }
    live.into_iter().map(|f| (f.id.clone(), f)).collect()
}

fn new_token_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

impl TokenKeys {
    /// How long a sign-in's family is kept: as long as its last token.
    fn lifetime(&self) -> i64 {
        self.access_ttl_secs.max(self.refresh_ttl_secs)
    }

    /// An access token and the refresh token `refresh_id` of `family`.
    fn tokens(&self, user: &UserRecord, now: i64, family: &str, refresh_id: String) -> Tokens {
        let (access, access_expires_at) =
            self.token(user, TokenKind::Access, now, family, new_token_id());
        let (refresh, refresh_expires_at) =
            self.token(user, TokenKind::Refresh, now, family, refresh_id);
        Tokens {
            access,
            access_expires_at,
            refresh,
            refresh_expires_at,
        }
    }

    fn token(
        &self,
        user: &UserRecord,
        kind: TokenKind,
        now: i64,
        family: &str,
        id: String,
    ) -> (String, i64) {
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
            uid: user.created_at,
            ep: user.token_epoch,
            fam: family.to_string(),
            jti: id,
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

fn revoked() -> ServiceError {
    ServiceError::new(
        ErrorCode::InvalidCredentials,
        "signed out, or the user's password or role changed since; sign in again",
    )
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
            token_epoch: 0,
        }
    }

    fn code(result: Result<Claims, ServiceError>) -> ErrorCode {
        result.expect_err("refused").code
    }

    #[test]
    fn a_remembered_token_still_expires_and_keeps_its_kind() {
        let auth = auth();
        let now = chrono::Utc::now().timestamp();
        let (token, _) = auth.token(&user(), TokenKind::Access, now, "f", new_token_id());
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
        let (token, _) = auth.token(&user(), TokenKind::Access, now, "f", new_token_id());
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
            let (token, _) = auth.token(&user(), TokenKind::Access, now - age, "f", new_token_id());
            auth.verify(&token, TokenKind::Access).unwrap();
        }
        assert!(auth.verified.len() <= VERIFIED_TOKENS);
        assert!(!auth.verified.is_empty());
    }

    #[test]
    fn only_requests_addressed_to_loopback_from_loopback_are_local() {
        let loopback: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let remote: SocketAddr = "10.0.0.7:5000".parse().unwrap();
        for host in [
            "localhost",
            "LOCALHOST:8080",
            "localhost.",
            "127.0.0.1",
            "127.0.0.1:8080",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(Peer::new(loopback, Some(host)).is_local(), "{host}");
            assert!(!Peer::new(remote, Some(host)).is_local(), "{host}");
        }
        for host in [
            "",
            "evil.example",
            "evil.example:8080",
            "localhost.evil.example",
            "127.0.0.1.nip.io",
            "10.0.0.1",
            "[::1",
        ] {
            assert!(!Peer::new(loopback, Some(host)).is_local(), "{host}");
        }
        assert!(Peer::new(loopback, None).is_local());
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
