//! The agent's local endpoints, answered from memory through [`CredentialSource`]:
//!
//! - on TCP ([`serve_tcp`], loopback unless allowed by [`check_bind_address`]):
//!   - an IMDSv2-compatible service (`PUT /latest/api/token`, then token-guarded GETs of
//!     `/latest/meta-data/iam/security-credentials[/{role}]`, the `-extended` variants,
//!     `/latest/meta-data/placement/region` and `.../availability-zone`);
//!   - the ECS-style container endpoint `GET /v1/credentials`, guarded by the token file
//!     (only when [`ServerConfig::container_token_file`] is set);
//!   - `GET /healthz` for container probes (no secrets, no token);
//! - on a unix socket ([`serve_unix`], [`bind_unix`]): `GET /v1/process-credentials` for this
//!   agent's own `credential-process` clients, `GET /v1/status` for `status`, and `/healthz`.
//!
//! This module owns:
//! - the public API below ([`ServerConfig`], [`Limits`], [`UnixConfig`], [`router`],
//!   [`serve_tcp`], [`serve_unix`], [`bind_unix`], [`ensure_container_token`],
//!   [`check_bind_address`], [`set_hop_limit`]);
//! - `routes`: routing, status codes and answers (the security checks live there);
//! - `host`: the `Host` rule against DNS rebinding ([`AllowedHost`] for `--allow-host`);
//! - `tokens`: the IMDSv2 session tokens;
//! - `render`: credential bodies rendered once per credential set and wiped on drop;
//! - `conn`: accept loop, connection table (evicting rather than refusing), timeouts and
//!   graceful shutdown;
//! - `files`: the unix socket file and the container token file;
//! - `body`: the one-buffer response body.
//!
//! Secrets (IMDS tokens, the container token, the secret key and session token) never reach
//! a log line: handlers log route names and statuses, never header values or bodies.

pub mod body;
mod conn;
mod files;
mod host;
mod render;
mod routes;
mod tokens;

// Fuzz targets only (fuzz/); not an API.
#[doc(hidden)]
pub mod fuzzing;

use std::fmt;
use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, UnixListener};

use crate::agent::CredentialSource;
use crate::config::SessionSettings;
use routes::{Endpoints, UnixEndpoints};

pub use conn::{set_hop_limit, set_listener_hop_limit};
pub use files::{bind_unix, ensure_container_token};
pub use host::AllowedHost;
pub use tokens::{MAX_TOKENS, MAX_TTL_SECONDS};

/// The Go helper's default port for `serve`.
pub const DEFAULT_PORT: u16 = 9911;
/// The Go helper's default IP TTL / hop limit on responses.
pub const DEFAULT_HOP_LIMIT: u8 = 64;

/// Resource bounds for one listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once (per uid on the unix socket). Accept never waits: a new
    /// connection beyond it closes the least recently active one (idle keep-alive, silent or
    /// slow head). The process needs about this many file descriptors per listener, plus a
    /// few.
    pub max_connections: usize,
    /// Time from a request's first byte (or from accept) to its complete head.
    pub header_read_timeout: Duration,
    /// A keep-alive connection with no request for this long is closed.
    pub keep_alive_timeout: Duration,
    /// Largest request line plus headers; larger heads are answered 431.
    pub max_head_bytes: usize,
    /// After shutdown, how long in-flight requests get before their connections are closed.
    pub shutdown_grace: Duration,
    /// A connection older than this answers its next request with `Connection: close`, and
    /// is closed if idle: a holder cannot keep a slot forever by sending a request now and then.
    pub max_connection_lifetime: Duration,
    /// Requests on one connection; the last one is answered with `Connection: close`.
    pub max_requests_per_connection: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: 256,
            header_read_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(60),
            max_head_bytes: 16 * 1024,
            shutdown_grace: Duration::from_secs(5),
            max_connection_lifetime: Duration::from_secs(300),
            max_requests_per_connection: 1000,
        }
    }
}

/// Counters the endpoints keep (read them with the accessors, e.g. for a metrics page).
#[derive(Debug, Default)]
pub struct ServerStats {
    pub(crate) refused_host: AtomicU64,
    pub(crate) evicted_connections: AtomicU64,
}

impl ServerStats {
    /// Requests refused because their `Host` did not name the agent (DNS rebinding).
    pub fn refused_host(&self) -> u64 {
        self.refused_host.load(Ordering::Relaxed)
    }

    /// Connections closed to make room for a new one when the table was full.
    pub fn evicted_connections(&self) -> u64 {
        self.evicted_connections.load(Ordering::Relaxed)
    }
}

/// What the TCP endpoints serve.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// The last path segment of the role ARN (what IMDS lists).
    pub role_name: String,
    pub role_arn: String,
    /// Empty when unknown: then the `-extended` IMDS paths answer 404 (SDKs fall back to the
    /// legacy ones) and no `AccountId` is sent.
    pub account_id: String,
    pub region: String,
    /// IPv4 TTL / IPv6 unicast hop limit set on every accepted socket (1..=255).
    pub hop_limit: u8,
    /// Enables `GET /v1/credentials`, authorised by this file's content.
    pub container_token_file: Option<PathBuf>,
    pub limits: Limits,
    /// Names besides the agent's own that requests may carry in `Host` (`--allow-host`).
    pub allowed_hosts: Vec<AllowedHost>,
    /// Updated by the server; keep a clone of the `Arc` to read it.
    pub stats: Arc<ServerStats>,
}

impl ServerConfig {
    /// The configuration for a session: role name, ARN, account and region from `settings`,
    /// default [`Limits`].
    pub fn new(
        settings: &SessionSettings,
        hop_limit: u8,
        container_token_file: Option<PathBuf>,
    ) -> Self {
        let role_arn = settings.role_arn.as_str();
        ServerConfig {
            role_name: role_name_from_arn(role_arn).to_string(),
            role_arn: role_arn.to_string(),
            account_id: settings.role_arn.account.clone(),
            region: settings.region.clone(),
            hop_limit,
            container_token_file,
            limits: Limits::default(),
            allowed_hosts: Vec::new(),
            stats: Arc::default(),
        }
    }
}

/// `arn:aws:iam::123456789012:role/path/app` -> `app`.
pub fn role_name_from_arn(role_arn: &str) -> &str {
    role_arn.rsplit('/').next().unwrap_or(role_arn)
}

/// The identity key the unix socket serves: a hex digest naming the certificate, key and
/// session settings (see `credential-process`'s cache key). Clones share one value, so
/// `serve` can switch it on SIGHUP while the socket keeps serving.
#[derive(Clone, Default)]
pub struct IdentityKey(Arc<RwLock<Box<[u8]>>>);

impl IdentityKey {
    pub fn new(key: &str) -> Self {
        let shared = IdentityKey::default();
        shared.set(key);
        shared
    }

    /// Replaces the key; requests from then on must present the new one.
    pub fn set(&self, key: &str) {
        self.set_inner(key_bytes(key));
    }

    fn set_inner(&self, bytes: Box<[u8]>) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = bytes;
    }

    /// Whether `presented` names this identity (hex compared case-insensitively; an empty
    /// key matches nothing).
    pub(crate) fn matches(&self, presented: &[u8]) -> bool {
        let presented = key_bytes_raw(presented);
        let current = self.0.read().unwrap_or_else(PoisonError::into_inner);
        !current.is_empty()
            && aws_lc_rs::constant_time::verify_slices_are_equal(&presented, &current).is_ok()
    }
}

fn key_bytes(key: &str) -> Box<[u8]> {
    key_bytes_raw(key.as_bytes())
}

fn key_bytes_raw(key: &[u8]) -> Box<[u8]> {
    key.trim_ascii().to_ascii_lowercase().into_boxed_slice()
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let current = self.0.read().unwrap_or_else(PoisonError::into_inner);
        f.debug_tuple("IdentityKey")
            .field(&String::from_utf8_lossy(&current))
            .finish()
    }
}

/// What the unix socket serves.
#[derive(Clone, Debug, Default)]
pub struct UnixConfig {
    /// A client whose `X-Identity-Key` differs gets 404 and runs its own CreateSession.
    pub identity_key: IdentityKey,
    pub limits: Limits,
    /// Updated by the server; keep a clone of the `Arc` to read it.
    pub stats: Arc<ServerStats>,
}

impl From<IdentityKey> for UnixConfig {
    fn from(identity_key: IdentityKey) -> Self {
        UnixConfig {
            identity_key,
            ..UnixConfig::default()
        }
    }
}

/// Configuration errors of the endpoints.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ServerError {
    #[error(
        "refusing to listen on {0}: it is not a loopback address and would expose credentials to other hosts (allow it explicitly to override)"
    )]
    NotLoopback(IpAddr),
    #[error(
        "refusing to put the socket in {}: the directory is writable by every user and has no sticky bit (mode {mode:o}), so another user could replace the socket", dir.display()
    )]
    UnsafeSocketDir { dir: PathBuf, mode: u32 },
}

impl ServerError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        match self {
            ServerError::NotLoopback(_) => Some(
                "bind 127.0.0.1 or ::1 (the default), or pass --allow-non-loopback if every host that can reach this address may read the credentials".into(),
            ),
            ServerError::UnsafeSocketDir { dir, .. } => Some(format!(
                "pass a --socket in a directory only you can write (the default is under $XDG_RUNTIME_DIR), or `chmod o-w {}`",
                dir.display()
            )),
        }
    }
}

/// Refuses a socket path whose directory other users can write without the sticky bit
/// ([`bind_unix`] refuses it too; this gives the configuration error before anything starts).
pub fn check_socket_dir(path: &std::path::Path) -> Result<(), ServerError> {
    match files::unsafe_socket_dir(path) {
        Some((dir, mode)) => Err(ServerError::UnsafeSocketDir { dir, mode }),
        None => Ok(()),
    }
}

/// Loopback addresses (127.0.0.0/8, ::1, and IPv4-mapped loopback) pass; anything else is
/// refused unless `allow_non_loopback`, and then warned about.
pub fn check_bind_address(addr: IpAddr, allow_non_loopback: bool) -> Result<(), ServerError> {
    if addr.to_canonical().is_loopback() {
        return Ok(());
    }
    if !allow_non_loopback {
        return Err(ServerError::NotLoopback(addr));
    }
    tracing::warn!(
        %addr,
        "server: listening on a non-loopback address: any host that can reach it and pass the hop limit can ask for credentials"
    );
    Ok(())
}

/// Serves the TCP routes on `listener` until `shutdown` resolves; then stops accepting, lets
/// in-flight requests finish within [`Limits::shutdown_grace`], and returns.
///
/// The hop limit goes on the listening socket (so the SYN-ACK carries it) and on each
/// accepted one. Fails at once if `config.hop_limit` is 0 or cannot be set. The listener's
/// address is not checked here (see [`check_bind_address`]); it is what the `Host` rule
/// accepts besides the loopback names.
pub async fn serve_tcp(
    listener: TcpListener,
    source: Arc<dyn CredentialSource>,
    config: Arc<ServerConfig>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    if config.hop_limit == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the hop limit must be 1..=255",
        ));
    }
    set_listener_hop_limit(&listener, config.hop_limit)?;
    let bound = listener.local_addr()?;
    let (limits, stats) = (config.limits, config.stats.clone());
    let acceptor = conn::Tcp {
        listener,
        hop_limit: config.hop_limit,
    };
    let endpoints = Arc::new(Endpoints::new(source, config, Some(bound)));
    conn::serve(acceptor, endpoints, limits, stats, shutdown).await
}

/// Serves `GET /metrics` alone on `listener` (`serve --metrics-bind`) until `shutdown`
/// resolves. The address may be a non-loopback one: nothing secret is served, but requests
/// still pass the `Host` rule (the bound address, the loopback names, `allowed_hosts`).
pub async fn serve_metrics(
    listener: TcpListener,
    allowed_hosts: &[AllowedHost],
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let bound = listener.local_addr()?;
    let endpoints = Arc::new(routes::MetricsEndpoints::new(Some(bound), allowed_hosts));
    let acceptor = conn::Tcp {
        listener,
        hop_limit: DEFAULT_HOP_LIMIT,
    };
    conn::serve(
        acceptor,
        endpoints,
        limits,
        Arc::new(ServerStats::default()),
        shutdown,
    )
    .await
}

/// Serves the unix socket routes on `listener` (made by [`bind_unix`]) until `shutdown`
/// resolves, with the same graceful stop as [`serve_tcp`]. `config` is a [`UnixConfig`] or
/// just an [`IdentityKey`] (default limits).
pub async fn serve_unix(
    listener: UnixListener,
    source: Arc<dyn CredentialSource>,
    config: impl Into<UnixConfig>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let config = config.into();
    let endpoints = Arc::new(UnixEndpoints::new(source, config.identity_key));
    conn::serve(
        conn::Unix { listener },
        endpoints,
        config.limits,
        config.stats,
        shutdown,
    )
    .await
}

#[cfg(test)]
mod tests;
