//! Password sign-in attempts: who may try a password now, and the bounded
//! pool that checks them.
//!
//! - **Per address**: an address whose attempts fail `max_failed_logins`
//!   times is refused for `lockout_secs`, whatever account it names.
//! - **Per account**: after `max_failed_logins` failures in a row an
//!   account is slowed down, not locked: one attempt per window, the window
//!   doubling with each further failure up to `lockout_secs`.
//! - An address that has signed in to an account before is held to
//!   neither limit for that account, so nobody can lock a user out of
//!   their own account from where they use it.
//! - Failures fade after `lockout_secs` without another.
//! - Attempts are counted when they start: parallel attempts cannot pass
//!   the limits by all starting before the first one fails.
//! - Password checks (Argon2id, memory-hard) run a few at a time on the
//!   blocking pool, with a bounded queue: a burst of sign-ins waits or is
//!   refused instead of allocating each check's memory at once.

use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dashmap::DashMap;
use quiver_catalog::verify_password;
use quiver_common::{ErrorCode, UserId};
use quiver_config::AuthConfig;
use tokio::sync::Semaphore;

use crate::error::ServiceError;

/// Password checks waiting for the pool, per check it runs at once,
/// past which a sign-in is refused.
const QUEUE_PER_WORKER: usize = 32;

/// (account, address) pairs remembered as having signed in; past this
/// many the memory starts over.
const TRUSTED: usize = 100_000;

/// The first wait of a slowed-down account.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub(crate) struct SignIns {
    max_failures: u32,
    lockout: Duration,
    addresses: DashMap<IpAddr, Strikes>,
    accounts: DashMap<UserId, Strikes>,
    trusted: DashMap<(UserId, IpAddr), ()>,
    checks: Semaphore,
    queue: usize,
    waiting: AtomicUsize,
}

#[derive(Debug, Default)]
struct Strikes {
    failures: u32,
    running: u32,
    until: Option<Instant>,
    /// When the last failure was; failures older than the lockout time are
    /// forgotten.
    last_failure: Option<Instant>,
}

impl Strikes {
    fn wait(&self, now: Instant) -> Option<Duration> {
        self.until
            .map(|until| until.saturating_duration_since(now))
            .filter(|left| !left.is_zero())
    }

    /// Forgets failures older than `lockout`.
    fn age(&mut self, now: Instant, lockout: Duration) {
        let stale = self
            .last_failure
            .is_some_and(|last| now.saturating_duration_since(last) > lockout);
        if stale && self.wait(now).is_none() {
            self.failures = 0;
            self.until = None;
            self.last_failure = None;
        }
    }

    /// Whether the entry still matters: an attempt running, a wait, or a
    /// recent failure.
    fn live(&self, now: Instant, lockout: Duration) -> bool {
        self.running > 0
            || self.wait(now).is_some()
            || self
                .last_failure
                .is_some_and(|last| now.saturating_duration_since(last) <= lockout)
    }

    fn failed(&mut self, now: Instant) {
        self.failures += 1;
        self.last_failure = Some(now);
    }
}

/// Addresses or accounts tracked past which idle entries are swept out.
const TRACKED: usize = 100_000;

/// One password attempt, counted from its start; dropping it unfinished
/// (the request went away) counts nothing.
#[derive(Debug)]
pub(crate) struct Attempt<'a> {
    guard: &'a SignIns,
    user: UserId,
    address: IpAddr,
    /// Whether the address's and the account's counts hold this attempt.
    counted_on_address: bool,
    counted_on_account: bool,
    finished: bool,
}

impl SignIns {
    pub(crate) fn new(auth: &AuthConfig) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, usize::from);
        Self {
            max_failures: auth.max_failed_logins,
            lockout: Duration::from_secs(auth.lockout_secs),
            addresses: DashMap::new(),
            accounts: DashMap::new(),
            trusted: DashMap::new(),
            checks: Semaphore::new(workers),
            queue: workers * QUEUE_PER_WORKER,
            waiting: AtomicUsize::new(0),
        }
    }

    /// Starts an attempt of `address` at `user`'s password, or refuses it.
    /// An address that has signed in to `user` before is held to neither
    /// count for that account: its attempts there are its own user's.
    pub(crate) fn begin(
        &self,
        user: &UserId,
        address: IpAddr,
    ) -> Result<Attempt<'_>, ServiceError> {
        let mut attempt = Attempt {
            guard: self,
            user: user.clone(),
            address,
            counted_on_address: false,
            counted_on_account: false,
            finished: false,
        };
        if self.max_failures == 0 || self.trusted.contains_key(&(user.clone(), address)) {
            return Ok(attempt);
        }
        let now = Instant::now();
        self.sweep(now);
        {
            let mut strikes = self.addresses.entry(address).or_default();
            strikes.age(now, self.lockout);
            if let Some(left) = strikes.wait(now) {
                return Err(address_refused(left, self.max_failures));
            }
            if strikes.failures + strikes.running >= self.max_failures {
                return Err(address_refused(self.lockout, self.max_failures));
            }
            strikes.running += 1;
            attempt.counted_on_address = true;
        }
        let mut strikes = self.accounts.entry(user.clone()).or_default();
        strikes.age(now, self.lockout);
        let refused = match strikes.wait(now) {
            Some(left) => Some(left),
            // Past the limit, one attempt at a time.
            None if strikes.failures >= self.max_failures && strikes.running > 0 => {
                Some(FIRST_BACKOFF)
            }
            None if strikes.failures < self.max_failures
                && strikes.failures + strikes.running >= self.max_failures =>
            {
                Some(FIRST_BACKOFF)
            }
            None => None,
        };
        if let Some(left) = refused {
            drop(strikes);
            // Dropping `attempt` gives back the address's reservation.
            return Err(ServiceError::new(
                ErrorCode::RateLimitExceeded,
                format!(
                    "sign-ins to {user} are slowed after repeated failures; try again in {} s",
                    left.as_secs().max(1)
                ),
            ));
        }
        strikes.running += 1;
        attempt.counted_on_account = true;
        Ok(attempt)
    }

    /// Checks `password` against `hash` on the blocking pool, a few at a
    /// time; refused when too many checks already wait.
    pub(crate) async fn verify(
        &self,
        password: String,
        hash: String,
    ) -> Result<bool, ServiceError> {
        let waiting = Waiting::join(&self.waiting, self.queue).ok_or_else(|| {
            ServiceError::new(
                ErrorCode::RateLimitExceeded,
                "too many sign-ins at once; retry shortly",
            )
        })?;
        let permit = self.checks.acquire().await;
        drop(waiting);
        let _permit =
            permit.map_err(|_| ServiceError::new(ErrorCode::InternalError, "stopping"))?;
        tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .map_err(|e| ServiceError::new(ErrorCode::InternalError, e.to_string()))
    }

    /// Forgets idle entries once there are many: unknown names and new
    /// addresses must not grow memory without end.
    fn sweep(&self, now: Instant) {
        if self.addresses.len() > TRACKED {
            self.addresses.retain(|_, s| s.live(now, self.lockout));
        }
        if self.accounts.len() > TRACKED {
            self.accounts.retain(|_, s| s.live(now, self.lockout));
        }
    }

    fn release(&self, attempt: &Attempt<'_>) {
        if attempt.counted_on_address
            && let Some(mut strikes) = self.addresses.get_mut(&attempt.address)
        {
            strikes.running = strikes.running.saturating_sub(1);
        }
        if attempt.counted_on_account
            && let Some(mut strikes) = self.accounts.get_mut(&attempt.user)
        {
            strikes.running = strikes.running.saturating_sub(1);
        }
    }
}

impl Attempt<'_> {
    /// The password was right: the account's failures are forgotten and
    /// the address is trusted for the account. The address's failures
    /// stand (a success at one's own account buys no more guesses at
    /// others'); they fade after the lockout time.
    pub(crate) fn succeeded(mut self) {
        self.finished = true;
        let guard = self.guard;
        if guard.max_failures == 0 {
            return;
        }
        guard.release(&self);
        if let Some(mut strikes) = guard.accounts.get_mut(&self.user) {
            *strikes = Strikes {
                running: strikes.running,
                ..Strikes::default()
            };
        }
        if guard.trusted.len() >= TRUSTED {
            guard.trusted.clear();
        }
        guard.trusted.insert((self.user.clone(), self.address), ());
    }

    /// The password was wrong (or the user unknown).
    pub(crate) fn failed(mut self) {
        self.finished = true;
        let guard = self.guard;
        guard.release(&self);
        let now = Instant::now();
        if self.counted_on_address
            && let Some(mut strikes) = guard.addresses.get_mut(&self.address)
        {
            strikes.failed(now);
            if strikes.failures >= guard.max_failures {
                strikes.until = Some(now + guard.lockout);
                strikes.failures = 0;
                tracing::warn!(
                    address = %self.address,
                    "address refused after repeated failed sign-ins"
                );
            }
        }
        if self.counted_on_account
            && let Some(mut strikes) = guard.accounts.get_mut(&self.user)
        {
            strikes.failed(now);
            if strikes.failures >= guard.max_failures {
                let doublings = (strikes.failures - guard.max_failures).min(16);
                let wait = (FIRST_BACKOFF * 2u32.pow(doublings)).min(guard.lockout);
                strikes.until = Some(now + wait);
                tracing::warn!(user = %self.user, "sign-ins slowed after repeated failures");
            }
        }
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.guard.release(self);
        }
    }
}

/// A place in the queue for the hashing pool, given back however the
/// wait ends (a request that goes away included).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn join(waiting: &'a AtomicUsize, queue: usize) -> Option<Self> {
        if waiting.fetch_add(1, Ordering::AcqRel) >= queue {
            waiting.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Self(waiting))
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

fn address_refused(left: Duration, max_failures: u32) -> ServiceError {
    ServiceError::new(
        ErrorCode::RateLimitExceeded,
        format!(
            "too many failed sign-ins from this address ({max_failures} in a row); try again in \
             {} s",
            left.as_secs().max(1)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(max: u32) -> SignIns {
        SignIns::new(&AuthConfig {
            max_failed_logins: max,
            lockout_secs: 60,
            ..AuthConfig::default()
        })
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([10, 0, 0, last])
    }

    #[test]
    fn parallel_attempts_cannot_pass_the_limit() {
        let guard = guard(3);
        let alice = UserId::parse("alice").unwrap();
        let started: Vec<_> = (0..500).map(|_| guard.begin(&alice, ip(1))).collect();
        let (running, refused): (Vec<_>, Vec<_>) = started.into_iter().partition(Result::is_ok);
        assert_eq!(running.len(), 3, "only the limit's worth start");
        assert!(
            refused
                .iter()
                .all(|r| r.as_ref().unwrap_err().code == ErrorCode::RateLimitExceeded)
        );
        for attempt in running {
            attempt.unwrap().failed();
        }
        let refused = guard.begin(&alice, ip(1)).unwrap_err();
        assert!(
            refused.message.contains("this address"),
            "{}",
            refused.message
        );
    }

    #[test]
    fn others_failures_slow_an_account_but_never_lock_out_its_own_address() {
        let guard = guard(3);
        let alice = UserId::parse("alice").unwrap();
        guard.begin(&alice, ip(1)).unwrap().succeeded();
        // Attackers from many addresses, each below the address limit.
        for n in 0..3 {
            guard.begin(&alice, ip(100 + n)).unwrap().failed();
        }
        let slowed = guard.begin(&alice, ip(200)).unwrap_err();
        assert!(slowed.message.contains("slowed"), "{}", slowed.message);
        // Alice, from where she signed in before, still gets in.
        guard.begin(&alice, ip(1)).unwrap().succeeded();
        // And her success ends the slow-down for everyone.
        assert!(guard.begin(&alice, ip(201)).is_ok());
    }

    #[test]
    fn an_attempt_dropped_unfinished_counts_nothing() {
        let guard = guard(1);
        let alice = UserId::parse("alice").unwrap();
        drop(guard.begin(&alice, ip(1)).unwrap());
        guard.begin(&alice, ip(1)).unwrap().succeeded();
    }
}
