//! The credential cache and its refresher: one set of credentials per identity and role,
//! refreshed in the background ahead of expiry, shared by every client.
//!
//! Rules (what SDKs expect of a local credentials endpoint, and the two faults of AWS's Go
//! helper this avoids: a CreateSession per request when due, and empty keys served after a
//! failed refresh):
//! - a refresh is due once the remaining validity falls below `min(refresh_before, lifetime / 2)`
//!   (20 minutes by default, so SDKs, which re-ask 15 minutes before expiry, never hold
//!   credentials inside their own window), brought forward by a little jitter;
//! - exactly one CreateSession is in flight at a time; concurrent callers wait for it;
//! - a failed refresh keeps the last good credentials until they expire and is retried with
//!   capped exponential backoff and jitter; each failure is logged once with its cause;
//! - nothing empty or expired is ever handed out;
//! - expiry and the refresh time are kept twice, on the wall clock and as a monotonic
//!   deadline (tokio's `Instant`): credentials are served only while both say they are
//!   valid, and the refresh is due at whichever comes first. A wall clock stepped back (NTP,
//!   a VM restored) then cannot stretch them past their real lifetime, and a suspend (which
//!   stops the monotonic clock) cannot either, since the wall clock keeps going.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::{Mutex, watch};
use tokio::time::Instant;

use super::{CredentialSource, Unavailable};
use crate::chain::Chain;
use crate::clock::Clock;
use crate::credentials::Credentials;

/// Credentials with less than this left are treated as expired, so none expires in flight.
pub const EXPIRY_MARGIN: Duration = Duration::from_secs(5);

/// When to refresh and how to retry.
#[derive(Clone, Copy, Debug)]
pub struct RefreshPolicy {
    /// Refresh when less than this remains (capped at half the lifetime). Default 20 min.
    pub refresh_before: Duration,
    /// First retry delay after a failure; doubles each time.
    pub retry_base: Duration,
    /// Longest retry delay.
    pub retry_cap: Duration,
    /// Longest single sleep, so a suspended machine or a clock step is noticed soon.
    pub max_sleep: Duration,
}

impl Default for RefreshPolicy {
    fn default() -> Self {
        RefreshPolicy {
            refresh_before: Duration::from_secs(20 * 60),
            retry_base: Duration::from_secs(2),
            retry_cap: Duration::from_secs(5 * 60),
            max_sleep: Duration::from_secs(60),
        }
    }
}

impl RefreshPolicy {
    /// How long before expiry a refresh is due, for credentials of `lifetime`.
    pub fn window(&self, lifetime: Duration) -> Duration {
        self.refresh_before.min(lifetime / 2)
    }

    /// The retry delay after `failures` consecutive failures, with full jitter.
    fn retry_delay(&self, failures: u32) -> Duration {
        let ceiling = self
            .retry_base
            .saturating_mul(1u32 << failures.saturating_sub(1).min(16))
            .min(self.retry_cap);
        // Between half and all of the ceiling: spread out, but never a busy loop.
        ceiling.mul_f64(0.5 + fastrand::f64() / 2.0)
    }
}

/// What kind of failure a [`LoadError`] is, as aws-config's `CredentialsError` tells them
/// apart: whether asking again as it is may succeed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadErrorKind {
    /// The service refused or could not be reached, a signature failed: the refresher
    /// retries it with backoff.
    Retryable,
    /// The configuration is wrong (a CA bundle that cannot be read, ...): the same request
    /// fails the same way until the files or flags are fixed. Retried all the same (a
    /// fixed file is picked up), but reported as the operator's to fix.
    Configuration,
}

/// A failed attempt to get credentials, as the cache reports it: the kind and the typed
/// cause. It prints as the cause with its distinct sources and hint (see [`Chain`]); the
/// causes are the session layer's errors, which never carry a secret.
#[derive(Clone, Debug)]
pub struct LoadError {
    kind: LoadErrorKind,
    source: Arc<dyn std::error::Error + Send + Sync>,
    hint: Option<String>,
}

impl LoadError {
    pub fn new(
        kind: LoadErrorKind,
        source: impl std::error::Error + Send + Sync + 'static,
        hint: Option<String>,
    ) -> Self {
        LoadError {
            kind,
            source: Arc::new(source),
            hint,
        }
    }

    pub fn kind(&self) -> LoadErrorKind {
        self.kind
    }

    /// The typed cause (a [`crate::session::SessionError`] in production).
    pub fn cause(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self.source.as_ref()
    }
}

impl std::fmt::Display for LoadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        Chain::new(self.source.as_ref(), self.hint.clone()).fmt(f)
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(self.source.as_ref())
    }
}

type LoadFuture<'a> = Pin<Box<dyn Future<Output = Result<Credentials, LoadError>> + Send + 'a>>;

/// Gets a new set of credentials: CreateSession in production, a fake in tests.
pub trait Loader: Send + Sync + 'static {
    fn load(&self) -> LoadFuture<'_>;
}

#[derive(Clone)]
struct Entry {
    creds: Arc<Credentials>,
    fetched_at: OffsetDateTime,
    /// When the refresher should replace it (jitter included, fixed once per entry).
    due_at: OffsetDateTime,
    /// `due_at` as a monotonic deadline.
    due_mono: Instant,
    /// The expiration as a monotonic deadline.
    valid_until: Instant,
}

impl Entry {
    /// Outside the refresh window by both clocks.
    fn is_fresh(&self, now: OffsetDateTime) -> bool {
        now < self.due_at && Instant::now() < self.due_mono
    }

    /// Valid for at least [`EXPIRY_MARGIN`] more by both clocks.
    fn is_valid(&self, now: OffsetDateTime) -> bool {
        self.creds.expiration - EXPIRY_MARGIN > now
            && Instant::now() + EXPIRY_MARGIN < self.valid_until
    }

    /// How long until the refresh is due by the first clock to get there.
    fn due_in(&self, now: OffsetDateTime) -> Duration {
        let wall = Duration::try_from(self.due_at - now).unwrap_or_default();
        wall.min(self.due_mono.saturating_duration_since(Instant::now()))
    }
}

#[derive(Default)]
struct State {
    entry: Option<Entry>,
    last_error: Option<String>,
    /// When the last load ended, well or not (`last_error` says which), for `status`.
    last_attempt: Option<OffsetDateTime>,
    /// Bumped on every successful load, so waiters can tell a refresh happened meanwhile.
    generation: u64,
}

/// The cache. Share it as `Arc<CredentialCache>`.
pub struct CredentialCache {
    state: RwLock<State>,
    loader: Arc<dyn Loader>,
    policy: RefreshPolicy,
    clock: Arc<dyn Clock>,
    /// Held for the whole of a load: the single flight.
    in_flight: Mutex<()>,
    updates: watch::Sender<Option<Arc<Credentials>>>,
}

impl CredentialCache {
    pub fn new(loader: Arc<dyn Loader>, policy: RefreshPolicy, clock: Arc<dyn Clock>) -> Self {
        CredentialCache {
            state: RwLock::new(State::default()),
            loader,
            policy,
            clock,
            in_flight: Mutex::new(()),
            updates: watch::channel(None).0,
        }
    }

    /// A receiver that sees every new set of credentials (for `update`).
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Credentials>>> {
        self.updates.subscribe()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave State half-written (each write is
        // a single assignment), so a poisoned lock is still safe to use.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|e| e.into_inner())
    }

    /// When the current credentials are due for refresh (`None` when there are none).
    pub fn due_at(&self) -> Option<OffsetDateTime> {
        self.read().entry.as_ref().map(|e| e.due_at)
    }

    /// Whether the cached credentials are still outside the refresh window at `now` (and by
    /// the monotonic clock). Only the tests ask: [`CredentialCache::get`] applies the rule
    /// to the entry it holds.
    #[cfg(test)]
    pub fn is_fresh(&self, now: OffsetDateTime) -> bool {
        self.read().entry.as_ref().is_some_and(|e| e.is_fresh(now))
    }

    /// Loads new credentials now, unless another caller's load completes while this one
    /// waits for its turn: then that result is shared. One CreateSession at a time.
    pub async fn refresh(&self) -> Result<Arc<Credentials>, LoadError> {
        let seen = self.read().generation;
        let _flight = self.in_flight.lock().await;
        {
            let state = self.read();
            if state.generation != seen
                && let Some(entry) = &state.entry
            {
                return Ok(entry.creds.clone());
            }
        }
        match self.loader.load().await {
            Ok(creds) => Ok(self.install(creds)),
            Err(e) => {
                let at = self.clock.now();
                let mut state = self.write();
                state.last_error = Some(e.to_string());
                state.last_attempt = Some(at);
                Err(e)
            }
        }
    }

    /// Installs credentials obtained outside the cache (the agent's first CreateSession,
    /// made directly so its typed error can be reported with a hint).
    pub fn seed(&self, creds: Credentials) -> Arc<Credentials> {
        self.install(creds)
    }

    /// Fresh credentials from memory, or the result of a (shared) refresh.
    pub async fn get(&self) -> Result<Arc<Credentials>, LoadError> {
        let now = self.clock.now();
        if let Some(entry) = &self.read().entry
            && entry.is_fresh(now)
        {
            return Ok(entry.creds.clone());
        }
        self.refresh().await
    }

    fn install(&self, creds: Credentials) -> Arc<Credentials> {
        let now = self.clock.now();
        let mono = Instant::now();
        let lifetime = (creds.expiration - now).max(time::Duration::ZERO);
        let lifetime = Duration::try_from(lifetime).unwrap_or_default();
        let window = self.policy.window(lifetime);
        // Jitter brings the refresh forward by up to 5% of the window (at most 2 minutes),
        // so agents started together do not refresh together.
        let jitter = window
            .mul_f64(fastrand::f64() * 0.05)
            .min(Duration::from_secs(120));
        let due_at = creds.expiration - window - jitter;
        let due_mono = mono + lifetime.saturating_sub(window + jitter);
        let creds = Arc::new(creds);
        {
            let mut state = self.write();
            state.entry = Some(Entry {
                creds: creds.clone(),
                fetched_at: now,
                due_at,
                due_mono,
                valid_until: mono + lifetime,
            });
            state.last_error = None;
            state.last_attempt = Some(now);
            state.generation += 1;
        }
        self.updates.send_replace(Some(creds.clone()));
        crate::metrics::global().set_credentials_expiry(creds.expiration.unix_timestamp());
        tracing::info!(
            access_key_id = %creds.access_key_id,
            expiration = %crate::credentials::format_expiration(creds.expiration),
            refresh_at = %crate::credentials::format_expiration(due_at),
            "obtained credentials"
        );
        creds
    }

    /// When the last load ended, and its error if it failed.
    pub fn last_attempt(&self) -> (Option<OffsetDateTime>, Option<String>) {
        let state = self.read();
        (state.last_attempt, state.last_error.clone())
    }

    /// The time the current credentials were fetched.
    pub fn fetched_at(&self) -> Option<OffsetDateTime> {
        self.read().entry.as_ref().map(|e| e.fetched_at)
    }

    /// Refreshes in the background until `shutdown` resolves: at the due time, and after a
    /// failure with backoff. Callers load the first credentials before starting it.
    pub async fn run_refresher(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        let mut failures: u32 = 0;
        loop {
            let now = self.clock.now();
            let wait = if failures > 0 {
                self.policy.retry_delay(failures)
            } else {
                self.due_in(now).unwrap_or(Duration::ZERO)
            };
            if !wait.is_zero() {
                // Waits for the due time go in short steps, so a suspended machine or a
                // clock step is noticed; a retry delay is slept whole.
                let step = if failures > 0 {
                    wait
                } else {
                    wait.min(self.policy.max_sleep)
                };
                let generation = self.read().generation;
                tokio::select! {
                    _ = &mut shutdown => return,
                    _ = tokio::time::sleep(step) => {}
                }
                // A client's request loaded a new set during the backoff: that was the
                // refresh being retried, so wait for the new set's due time instead.
                if failures > 0 && self.read().generation != generation {
                    failures = 0;
                }
                // After a step towards the due time, go round again: the wait is read
                // afresh, zero once it is due (by either clock), another step if not.
                if failures == 0 {
                    continue;
                }
            }
            let generation = self.read().generation;
            match self.refresh().await {
                Ok(_) => failures = 0,
                Err(e) => {
                    failures = failures.saturating_add(1);
                    let now = self.clock.now();
                    let expiry = self
                        .read()
                        .entry
                        .as_ref()
                        .filter(|e| e.is_valid(now))
                        .map(|e| e.creds.expiration);
                    match expiry {
                        Some(at) => tracing::warn!(
                            error = %e,
                            attempt = failures,
                            still_valid_until = %crate::credentials::format_expiration(at),
                            "refreshing credentials failed; serving the current ones until they expire"
                        ),
                        _ => tracing::error!(
                            error = %e,
                            attempt = failures,
                            "refreshing credentials failed and none are valid; answering 503 until a refresh succeeds"
                        ),
                    }
                }
            }
            // A refresh by someone else counts as success for the schedule.
            if self.read().generation != generation {
                failures = 0;
            }
        }
    }

    /// How long until the refresh is due (`None` when there are no credentials).
    fn due_in(&self, now: OffsetDateTime) -> Option<Duration> {
        self.read().entry.as_ref().map(|e| e.due_in(now))
    }
}

impl CredentialSource for CredentialCache {
    fn current(&self, now: OffsetDateTime) -> Result<Arc<Credentials>, Unavailable> {
        let state = self.read();
        match &state.entry {
            Some(entry) if entry.is_valid(now) => Ok(entry.creds.clone()),
            Some(entry) => Err(Unavailable::Expired {
                at: entry.creds.expiration,
                last_error: state.last_error.clone(),
            }),
            None => Err(Unavailable::NotYetLoaded),
        }
    }
}

#[cfg(test)]
mod tests;
