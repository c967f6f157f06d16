//! `emulate`: a local IAM Roles Anywhere CreateSession endpoint that verifies requests the
//! way the service does (SigV4-X509 signature, certificate chain to the trust anchor, clock
//! skew, ARNs, duration) and issues made-up credentials. It serves offline development, the
//! `demo` subcommand and the integration tests; it only ever listens on loopback.
//!
//! This module owns:
//! - [`start`] / [`EmulateHandle`], the library form used by `demo` and the tests;
//! - [`verify()`], the pure decision on one request, separate from HTTP so the golden vectors
//!   can be replayed with a pinned clock;
//! - [`EmulateError`], its configuration errors (exit code 2).

mod arn;
mod body;
mod chain;
mod error;
mod response;
mod server;
mod tls;
mod verify;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use time::OffsetDateTime;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use error::EmulateError;
pub use response::{error_body, session_body};
/// TLS for [`EmulateConfig::tls`]: a throwaway CA and loopback server certificate
/// (`generate_tls`, which also returns the CA PEM for clients), or PEM files.
pub use tls::{
    GeneratedTls, from_files as tls_from_files, generate as generate_tls,
    generate_kept as generate_tls_kept,
};
pub use verify::{
    Accepted, DEFAULT_DURATION, ErrorType, MAX_DURATION, MIN_DURATION, Rejection, RequestParts,
    Seen, VerifyConfig, route, verify,
};

/// Where the emulator's clock comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Clock {
    /// The system clock.
    #[default]
    System,
    /// A fixed instant, to replay recorded requests.
    Fixed(OffsetDateTime),
    /// The system clock set off by this much (a service whose clock disagrees with ours).
    Offset(time::Duration),
}

impl Clock {
    /// The current instant by this clock.
    pub fn now(&self) -> OffsetDateTime {
        match self {
            Clock::System => OffsetDateTime::now_utc(),
            Clock::Fixed(at) => *at,
            Clock::Offset(by) => OffsetDateTime::now_utc() + *by,
        }
    }
}

/// Everything [`start`] needs besides the listener.
#[derive(Debug, Clone)]
pub struct EmulateConfig {
    /// Trust anchor, profile, roles and duration cap.
    pub verify: VerifyConfig,
    /// Serve HTTPS with this configuration; `None` is plain HTTP.
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// Answer the first N requests with `fail_status`.
    pub fail_first: u64,
    /// Status of the injected failures (400..=599).
    pub fail_status: u16,
    /// Answer every request after the first N with `fail_status`.
    pub fail_after: Option<u64>,
    /// Issue credentials valid this long instead of the requested duration.
    pub credential_lifetime: Option<u32>,
    /// Answer accepted requests with a chunked 201 body of this many bytes.
    pub oversized_body: Option<u64>,
    /// Answer this expiration instead of now plus the lifetime.
    pub answer_expiration: Option<OffsetDateTime>,
    /// Hold every request after the first N without an answer.
    pub stall_after: Option<u64>,
    /// Delay before each answer.
    pub response_delay: std::time::Duration,
    /// Append a JSON line per request to this file.
    pub request_log: Option<PathBuf>,
    pub clock: Clock,
}

impl EmulateConfig {
    /// Plain HTTP, no injected failures, no request log, system clock.
    pub fn new(verify: VerifyConfig) -> Self {
        EmulateConfig {
            verify,
            tls: None,
            fail_first: 0,
            fail_status: 503,
            fail_after: None,
            credential_lifetime: None,
            oversized_body: None,
            answer_expiration: None,
            stall_after: None,
            response_delay: std::time::Duration::ZERO,
            request_log: None,
            clock: Clock::System,
        }
    }
}

/// A running emulator. Dropping the handle does not stop it; resolve the `shutdown` future
/// given to [`start`].
#[derive(Debug)]
pub struct EmulateHandle {
    addr: SocketAddr,
    https: bool,
    requests: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl EmulateHandle {
    /// Stops serving at once, without waiting for requests in flight.
    pub fn abort(&self) {
        self.task.abort();
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The endpoint URL for clients, e.g. `http://127.0.0.1:41234`.
    pub fn url(&self) -> String {
        let scheme = if self.https { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// Requests received so far (any path, injected failures included).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    /// Waits until the server has shut down.
    pub async fn wait(self) {
        // A panic in the server task has already been reported by tokio; nothing to add.
        let _ = self.task.await;
    }
}

/// Starts serving on `listener` (which must be bound to a loopback address) on a tokio task
/// that runs until `shutdown` resolves.
pub async fn start(
    config: EmulateConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<EmulateHandle, EmulateError> {
    let unspecified = SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), 0);
    let addr = listener
        .local_addr()
        .map_err(|source| EmulateError::Listen {
            addr: unspecified,
            source,
        })?;
    if !addr.ip().is_loopback() {
        return Err(EmulateError::NotLoopback { addr: addr.ip() });
    }
    if !(400..=599).contains(&config.fail_status) {
        return Err(EmulateError::FailStatus {
            value: config.fail_status,
        });
    }
    let log = match &config.request_log {
        Some(path) => Some(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| EmulateError::Write {
                    flag: "--request-log",
                    path: path.clone(),
                    source,
                })?,
        )),
        None => None,
    };
    let requests = Arc::new(AtomicU64::new(0));
    let https = config.tls.is_some();
    let tls = config.tls.map(tokio_rustls::TlsAcceptor::from);
    tracing::info!(
        %addr,
        https,
        trust_anchor_arn = config.verify.trust_anchor_arn(),
        profile_arn = config.verify.profile_arn(),
        "emulate: listening"
    );
    let state = Arc::new(server::State {
        verify: config.verify,
        fail_first: config.fail_first,
        fail_status: config.fail_status,
        fail_after: config.fail_after,
        credential_lifetime: config.credential_lifetime,
        oversized_body: config.oversized_body,
        answer_expiration: config.answer_expiration,
        stall_after: config.stall_after,
        response_delay: config.response_delay,
        clock: config.clock,
        requests: requests.clone(),
        log,
    });
    let task = tokio::spawn(server::serve(listener, state, tls, shutdown));
    Ok(EmulateHandle {
        addr,
        https,
        requests,
        task,
    })
}

/// `--bind`: an IP address or `localhost`, loopback only.
pub fn parse_bind(value: &str) -> Result<IpAddr, EmulateError> {
    let trimmed = value.trim().trim_start_matches('[').trim_end_matches(']');
    let ip = if trimmed.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        trimmed
            .parse::<IpAddr>()
            .map_err(|_| EmulateError::BadBind {
                value: value.to_string(),
            })?
    };
    if !ip.is_loopback() {
        return Err(EmulateError::NotLoopback { addr: ip });
    }
    Ok(ip)
}

/// Writes a file through a temporary sibling and a rename, so a reader polling for it never
/// sees it half-written.
pub fn write_atomic(path: &Path, contents: &[u8], flag: &'static str) -> Result<(), EmulateError> {
    let err = |source| EmulateError::Write {
        flag,
        path: path.to_path_buf(),
        source,
    };
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    std::fs::write(&tmp, contents).map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

#[cfg(test)]
mod tests;
