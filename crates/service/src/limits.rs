//! Per-user limits on SQL requests: a request rate per user
//! (`RATE_LIMIT_EXCEEDED`). Sign-in attempts are limited in `signin.rs`.

use std::num::NonZeroU32;
use std::sync::Arc;

use arc_swap::ArcSwap;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use quiver_common::{ErrorCode, UserId};
use quiver_config::LimitsConfig;

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

#[cfg(test)]
mod tests {
    use super::*;

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
