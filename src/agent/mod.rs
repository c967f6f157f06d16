//! The agent: credentials kept in memory and refreshed ahead of expiry in the background,
//! served to many clients without ever putting CreateSession on a request's path.
//!
//! [`CredentialSource`] is what the endpoints read from; [`cache`] implements it. The
//! identity in use follows renewals on disk or on a token ([`rotation`]), and its expiry is
//! watched ([`expiry`]).

pub mod cache;
pub mod client;
pub mod expiry;
pub mod loader;
pub mod notify;
pub mod rotation;
pub mod status;

use std::fmt;
use std::sync::Arc;

use time::OffsetDateTime;

use crate::credentials::Credentials;

/// Why no credentials can be handed out right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Unavailable {
    /// The first CreateSession has not completed yet.
    NotYetLoaded,
    /// The last good credentials expired at this time and every refresh since has failed.
    Expired {
        at: OffsetDateTime,
        last_error: Option<String>,
    },
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Unavailable::NotYetLoaded => f.write_str("credentials are not loaded yet"),
            Unavailable::Expired { at, last_error } => {
                write!(
                    f,
                    "credentials expired at {}",
                    crate::credentials::format_expiration(*at)
                )?;
                if let Some(e) = last_error {
                    write!(f, " and refreshing failed: {e}")?;
                }
                Ok(())
            }
        }
    }
}

/// Where the endpoints get credentials from. Implementations answer from memory and never
/// block on the network: SDKs give an IMDS lookup one second.
pub trait CredentialSource: Send + Sync + 'static {
    /// Credentials valid at `now`, never empty or expired.
    fn current(&self, now: OffsetDateTime) -> Result<Arc<Credentials>, Unavailable>;

    /// The dates of the certificate the credentials come from, when known (`/healthz`
    /// reports "degraded" near its expiry).
    fn certificate(&self) -> Option<expiry::CertDates> {
        None
    }

    /// What `status` shows, when the source knows it (the agent's; not a bare cache).
    fn status(&self, _now: OffsetDateTime) -> Option<status::AgentStatus> {
        None
    }
}
