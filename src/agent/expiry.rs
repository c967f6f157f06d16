//! Certificate expiry: the dates of the certificate in use ([`IdentityStatus`], updated on
//! rotation), the rule for "about to expire", the log lines that say so, and the degraded
//! `/healthz` body.
//!
//! The rule: warn once a day when less than 7 days, or a quarter of the certificate's
//! lifetime if that is shorter, is left (a 24-hour certificate warns in its last 6 hours,
//! not all day); report an error when the credentials in hand expire after the certificate
//! (the next refresh will fail unless the certificate is renewed first).

use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use time::OffsetDateTime;

use super::cache::CredentialCache;
use super::status::{AgentStatus, Attempt, CredentialsInfo, IdentityInfo, Reloads};
use super::{CredentialSource, Unavailable};
use crate::clock::Clock;
use crate::credentials::{Credentials, format_expiration};
use crate::identity::Certificate;

/// At most this far ahead of NotAfter is a certificate "about to expire".
pub const WARN_AHEAD: time::Duration = time::Duration::days(7);
/// A warning about the same certificate is repeated this often.
const WARN_EVERY: Duration = Duration::from_secs(24 * 60 * 60);
/// How often the monitor looks at the clock between other events.
const CHECK_EVERY: Duration = Duration::from_secs(60);

/// What the agent shows about the certificate it signs with. No secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertDates {
    pub subject: String,
    pub serial: String,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl CertDates {
    pub fn of(cert: &Certificate) -> Self {
        CertDates {
            subject: cert.subject().to_string(),
            serial: cert.serial_decimal(),
            not_before: cert.not_before(),
            not_after: cert.not_after(),
        }
    }

    /// How long before NotAfter the warnings start: 7 days or a quarter of the lifetime,
    /// whichever is shorter.
    pub fn warn_window(&self) -> time::Duration {
        WARN_AHEAD.min((self.not_after - self.not_before) / 4)
    }
}

/// The certificate in use, shared by the rotation (writer), the health endpoint and the
/// expiry monitor (readers); also the reloads' history, for `status`.
#[derive(Debug)]
pub struct IdentityStatus(RwLock<CertDates>, RwLock<Reloads>);

impl IdentityStatus {
    pub fn new(dates: CertDates) -> Self {
        IdentityStatus(RwLock::new(dates), RwLock::default())
    }

    pub fn get(&self) -> CertDates {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub fn set(&self, dates: CertDates) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = dates;
    }

    /// Counts a reload that ended with `result` (`Ok(true)`: a new certificate is in use).
    pub fn record_reload(&self, at: OffsetDateTime, result: Result<bool, String>) {
        let mut reloads = self.1.write().unwrap_or_else(PoisonError::into_inner);
        reloads.count += 1;
        if result == Ok(true) {
            reloads.rotated += 1;
        }
        let result = result.map(|rotated| {
            if rotated {
                "rotated: a new certificate is in use".to_string()
            } else {
                "unchanged".to_string()
            }
        });
        reloads.last = Some(Attempt::new(at, result));
    }

    pub fn reloads(&self) -> Reloads {
        self.1
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// What is wrong with the certificate's dates at a given moment, if anything.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assessment {
    /// Time left before NotAfter, when inside the warning window (zero once expired).
    pub expiring: Option<time::Duration>,
    /// The credentials' expiry, when it is after the certificate's NotAfter.
    pub outlived_by: Option<OffsetDateTime>,
}

impl Assessment {
    pub fn is_degraded(&self) -> bool {
        self.expiring.is_some() || self.outlived_by.is_some()
    }
}

/// Judges `cert` at `now`, with the credentials in hand expiring at `credentials`.
pub fn assess(
    cert: &CertDates,
    credentials: Option<OffsetDateTime>,
    now: OffsetDateTime,
) -> Assessment {
    let left = (cert.not_after - now).max(time::Duration::ZERO);
    Assessment {
        expiring: (left < cert.warn_window()).then_some(left),
        outlived_by: credentials.filter(|exp| *exp > cert.not_after),
    }
}

/// The `/healthz` body when the certificate is about to expire or the credentials outlive
/// it: still a 200 (the credentials served are good), but `"status":"degraded"` with both
/// dates. `None` when healthy, or when the source does not know its certificate.
pub fn degraded_health(source: &dyn CredentialSource, now: OffsetDateTime) -> Option<Vec<u8>> {
    let cert = source.certificate()?;
    let creds = source.current(now).ok()?;
    let found = assess(&cert, Some(creds.expiration), now);
    if !found.is_degraded() {
        return None;
    }
    let message = if found.outlived_by.is_some() {
        "the credentials expire after the certificate; renew the certificate"
    } else {
        "the certificate expires soon; renew it"
    };
    serde_json::to_vec(&serde_json::json!({
        "status": "degraded",
        "expiration": format_expiration(creds.expiration),
        "certificate_not_after": format_expiration(cert.not_after),
        "certificate_serial": cert.serial,
        "message": message,
    }))
    .ok()
}

/// The cache as the endpoints see it, plus the certificate's dates for `/healthz` and what
/// `status` shows.
pub struct WithIdentity {
    cache: Arc<CredentialCache>,
    status: Arc<IdentityStatus>,
    key_store: String,
    endpoints: Vec<String>,
}

impl WithIdentity {
    pub fn new(cache: Arc<CredentialCache>, status: Arc<IdentityStatus>) -> Self {
        WithIdentity {
            cache,
            status,
            key_store: String::new(),
            endpoints: Vec::new(),
        }
    }

    /// Where the key lives and what the agent listens on, for `status`.
    pub fn with_details(mut self, key_store: String, endpoints: Vec<String>) -> Self {
        self.key_store = key_store;
        self.endpoints = endpoints;
        self
    }
}

impl CredentialSource for WithIdentity {
    fn current(&self, now: OffsetDateTime) -> Result<Arc<Credentials>, Unavailable> {
        self.cache.current(now)
    }

    fn certificate(&self) -> Option<CertDates> {
        Some(self.status.get())
    }

    fn status(&self, now: OffsetDateTime) -> Option<AgentStatus> {
        let cert = self.status.get();
        let (last_attempt, last_error) = self.cache.last_attempt();
        Some(AgentStatus {
            version: env!("CARGO_PKG_VERSION").to_string(),
            identity: IdentityInfo {
                subject: cert.subject,
                serial: cert.serial,
                not_after: format_expiration(cert.not_after),
                key_store: self.key_store.clone(),
            },
            credentials: self.cache.current(now).ok().map(|c| CredentialsInfo {
                access_key_id: c.access_key_id.clone(),
                expiration: format_expiration(c.expiration),
            }),
            last_refresh: last_attempt
                .map(|at| Attempt::new(at, last_error.map_or_else(|| Ok("ok".to_string()), Err))),
            next_refresh: self.cache.due_at().map(format_expiration),
            reloads: self.status.reloads(),
            endpoints: self.endpoints.clone(),
        })
    }
}

/// Logs the expiry warnings until `shutdown` resolves: at start, after each new set of
/// credentials, and every minute; a warning for one certificate at most once a day, the
/// error once per set of credentials.
pub async fn monitor(
    status: Arc<IdentityStatus>,
    cache: Arc<CredentialCache>,
    clock: Arc<dyn Clock>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    let mut updates = cache.subscribe();
    let mut warned: Option<(String, tokio::time::Instant)> = None;
    let mut reported: Option<OffsetDateTime> = None;
    loop {
        let cert = status.get();
        let now = clock.now();
        let credentials = cache.current(now).ok().map(|c| c.expiration);
        let found = assess(&cert, credentials, now);
        if let Some(left) = found.expiring {
            let due = warned
                .as_ref()
                .is_none_or(|(serial, at)| *serial != cert.serial || at.elapsed() >= WARN_EVERY);
            if due {
                tracing::warn!(
                    serial = %cert.serial,
                    not_after = %format_expiration(cert.not_after),
                    hours_left = left.whole_hours(),
                    "the certificate expires soon: renew it (the agent picks up the renewed files by itself)"
                );
                warned = Some((cert.serial.clone(), tokio::time::Instant::now()));
            }
        }
        if let Some(expiration) = found.outlived_by
            && reported != Some(expiration)
        {
            tracing::error!(
                serial = %cert.serial,
                not_after = %format_expiration(cert.not_after),
                credentials_expiration = %format_expiration(expiration),
                "the credentials outlive the certificate: once it expires no new credentials can be obtained; renew the certificate"
            );
            reported = Some(expiration);
        }
        tokio::select! {
            _ = &mut shutdown => return,
            changed = updates.changed() => if changed.is_err() { return },
            _ = tokio::time::sleep(CHECK_EVERY) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    fn cert(days_total: i64, days_left: i64, now: OffsetDateTime) -> CertDates {
        CertDates {
            subject: String::new(),
            serial: "1".into(),
            not_before: now - time::Duration::days(days_total - days_left),
            not_after: now + time::Duration::days(days_left),
        }
    }

    #[test]
    fn warns_inside_seven_days_or_the_last_quarter() {
        let now = datetime!(2030-01-01 00:00 UTC);
        // A 90-day certificate: seven days is the shorter window.
        assert!(assess(&cert(90, 3, now), None, now).expiring.is_some());
        assert!(assess(&cert(90, 8, now), None, now).expiring.is_none());
        // A 4-day certificate: its last day (a quarter) only.
        assert!(assess(&cert(4, 2, now), None, now).expiring.is_none());
        let c = CertDates {
            subject: String::new(),
            serial: "2".into(),
            not_before: now - time::Duration::hours(20),
            not_after: now + time::Duration::hours(4),
        };
        assert_eq!(
            assess(&c, None, now).expiring,
            Some(time::Duration::hours(4))
        );
        // Expired: nothing left.
        assert_eq!(
            assess(
                &cert(10, 0, now + time::Duration::days(1)),
                None,
                now + time::Duration::days(2)
            )
            .expiring,
            Some(time::Duration::ZERO)
        );
    }

    #[test]
    fn credentials_after_not_after_are_reported() {
        let now = datetime!(2030-01-01 00:00 UTC);
        let c = cert(365, 100, now);
        let fine = assess(&c, Some(now + time::Duration::hours(1)), now);
        assert!(!fine.is_degraded());
        let late = c.not_after + time::Duration::minutes(1);
        assert_eq!(assess(&c, Some(late), now).outlived_by, Some(late));
    }
}
