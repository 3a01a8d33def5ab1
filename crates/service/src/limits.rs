//! Per-user limits on SQL requests and on sign-in: a request rate per
//! user (`RATE_LIMIT_EXCEEDED`) and a lockout after repeated failed
//! password checks.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use quiver_common::{ErrorCode, UserId};
use quiver_config::{AuthConfig, LimitsConfig};

use crate::error::ServiceError;

/// How many SQL requests each user may make: a token bucket per user,
/// rebuilt (full) when `[limits]` changes.
#[derive(Debug)]
pub struct RequestRate {
    buckets: ArcSwap<Buckets>,
}

struct Buckets {
    per_second: u32,
    burst: u32,
    limiter: Option<DefaultKeyedRateLimiter<UserId>>,
}

impl std::fmt::Debug for Buckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Buckets")
            .field("per_second", &self.per_second)
            .field("burst", &self.burst)
            .finish_non_exhaustive()
    }
}

impl Buckets {
    fn new(limits: &LimitsConfig) -> Self {
        let limiter = NonZeroU32::new(limits.queries_per_second).map(|rate| {
            let burst = NonZeroU32::new(limits.query_burst)
                .unwrap_or(rate)
                .max(rate);
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self {
            per_second: limits.queries_per_second,
            burst: limits.query_burst,
            limiter,
        }
    }
}

impl RequestRate {
    pub fn new(limits: &LimitsConfig) -> Self {
        Self {
            buckets: ArcSwap::from_pointee(Buckets::new(limits)),
        }
    }

    /// Takes one request from `user`'s allowance under `limits`, or
    /// refuses it.
    pub fn check(&self, user: &UserId, limits: &LimitsConfig) -> Result<(), ServiceError> {
        let mut buckets = self.buckets.load_full();
        if (buckets.per_second, buckets.burst) != (limits.queries_per_second, limits.query_burst) {
            buckets = Arc::new(Buckets::new(limits));
            self.buckets.store(buckets.clone());
        }
        let Some(limiter) = &buckets.limiter else {
            return Ok(());
        };
        limiter.check_key(user).map_err(|_| {
            ServiceError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "user {user} sent more than {} SQL requests per second \
                     ([limits] queries_per_second); retry shortly",
                    buckets.per_second
                ),
            )
        })
    }
}

/// Failed password checks per user, and who is locked out until when.
#[derive(Debug)]
pub struct LoginGuard {
    max_failures: u32,
    lockout: Duration,
    users: DashMap<UserId, Failures>,
}

#[derive(Debug, Default)]
struct Failures {
    count: u32,
    locked_until: Option<Instant>,
}

impl LoginGuard {
    pub fn new(auth: &AuthConfig) -> Self {
        Self {
            max_failures: auth.max_failed_logins,
            lockout: Duration::from_secs(auth.lockout_secs),
            users: DashMap::new(),
        }
    }

    /// Refuses a password check for a user who is locked out.
    pub fn check(&self, user: &UserId) -> Result<(), ServiceError> {
        let Some(entry) = self.users.get(user) else {
            return Ok(());
        };
        let Some(until) = entry.locked_until else {
            return Ok(());
        };
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(());
        }
        Err(ServiceError::new(
            ErrorCode::RateLimitExceeded,
            format!(
                "user {user} is locked out after {} failed sign-ins; try again in {} s",
                self.max_failures,
                left.as_secs().max(1)
            ),
        ))
    }

    /// Counts a failed check; the last one allowed starts a lockout.
    pub fn failed(&self, user: &UserId) {
        if self.max_failures == 0 {
            return;
        }
        let mut entry = self.users.entry(user.clone()).or_default();
        if entry
            .locked_until
            .is_some_and(|until| until <= Instant::now())
        {
            *entry = Failures::default();
        }
        entry.count += 1;
        if entry.count >= self.max_failures {
            entry.count = 0;
            entry.locked_until = Some(Instant::now() + self.lockout);
            tracing::warn!(user = %user, "user locked out after repeated failed sign-ins");
        }
    }

    /// A successful check clears the user's failures.
    pub fn succeeded(&self, user: &UserId) {
        self.users.remove(user);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lockout_starts_at_the_limit_and_success_clears_failures() {
        let guard = LoginGuard::new(&AuthConfig {
            max_failed_logins: 3,
            lockout_secs: 60,
            ..AuthConfig::default()
        });
        let alice = UserId::parse("alice").unwrap();
        guard.failed(&alice);
        guard.failed(&alice);
        guard.succeeded(&alice);
        guard.failed(&alice);
        guard.failed(&alice);
        assert!(guard.check(&alice).is_ok());
        guard.failed(&alice);
        let err = guard.check(&alice).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimitExceeded);
        assert!(err.message.contains("locked out"), "{}", err.message);
        assert!(guard.check(&UserId::parse("bob").unwrap()).is_ok());
    }

    #[test]
    fn rate_allows_the_burst_then_refuses_per_user() {
        let limits = LimitsConfig {
            queries_per_second: 1,
            query_burst: 3,
            ..LimitsConfig::default()
        };
        let rate = RequestRate::new(&limits);
        let alice = UserId::parse("alice").unwrap();
        for _ in 0..3 {
            rate.check(&alice, &limits).unwrap();
        }
        let err = rate.check(&alice, &limits).unwrap_err();
        assert_eq!(err.code, ErrorCode::RateLimitExceeded);
        rate.check(&UserId::parse("bob").unwrap(), &limits).unwrap();
        let unlimited = LimitsConfig {
            queries_per_second: 0,
            ..LimitsConfig::default()
        };
        for _ in 0..10_000 {
            rate.check(&alice, &unlimited).unwrap();
        }
        // Back to a limit: the buckets start full again.
        for _ in 0..3 {
            rate.check(&alice, &limits).unwrap();
        }
        assert!(rate.check(&alice, &limits).is_err());
    }
}
