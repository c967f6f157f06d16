//! What a running agent reports about itself to `status` (`GET /v1/status` on its unix
//! socket): the identity in use, the credentials' key id and expiry, the refresh and reload
//! history, and where it listens. Shared by the server, which writes it, and the client,
//! which reads it.
//!
//! Security: nothing secret is in it. The access key id names credentials but cannot use
//! them; the secret access key and the session token never enter this type.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The agent's answer. Times are `YYYY-MM-DDTHH:MM:SSZ`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// The agent's version.
    pub version: String,
    pub identity: IdentityInfo,
    /// The credentials held, if any are valid now.
    pub credentials: Option<CredentialsInfo>,
    /// The last CreateSession the agent made (the first one at start counts).
    pub last_refresh: Option<Attempt>,
    /// When the credentials held are due for refresh (a failed refresh retries sooner).
    pub next_refresh: Option<String>,
    pub reloads: Reloads,
    /// What it listens on, one line each (`imds http://127.0.0.1:9911/`, `socket PATH`, ...).
    pub endpoints: Vec<String>,
}

/// The certificate in use and where its key lives.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityInfo {
    pub subject: String,
    /// Decimal, as in the SigV4 credential scope.
    pub serial: String,
    pub not_after: String,
    /// The key's store and name (`file /etc/...`, `pkcs11:...`, `TPM handle ...`).
    pub key_store: String,
}

/// Names the credentials without making them usable.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CredentialsInfo {
    pub access_key_id: String,
    pub expiration: String,
}

/// One attempt (a refresh or a reload) and how it ended.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub at: String,
    pub ok: bool,
    /// `ok`, what changed, or why it failed (the error chain, which holds no secret).
    pub result: String,
}

impl Attempt {
    pub fn new(at: OffsetDateTime, result: Result<String, String>) -> Self {
        let (ok, result) = match result {
            Ok(r) => (true, r),
            Err(e) => (false, e),
        };
        Attempt {
            at: crate::credentials::format_expiration(at),
            ok,
            result,
        }
    }
}

/// Reloads of the identity (certificate renewals noticed on disk, SIGHUP).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reloads {
    /// Reloads attempted since start.
    pub count: u64,
    /// Of which put a new certificate in use.
    pub rotated: u64,
    pub last: Option<Attempt>,
}
