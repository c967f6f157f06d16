//! `emulate`: a local IAM Roles Anywhere CreateSession endpoint that verifies requests the
//! way the service does (SigV4-X509 signature, certificate chain to the trust anchor, clock
//! skew, ARNs, duration) and issues made-up credentials. It serves offline development, the
//! `demo` subcommand and the integration tests; it only ever listens on loopback.
//!
//! This module owns:
//! - [`EmulateArgs`] (the `emulate` subcommand's flags) and [`run`], the subcommand itself;
//! - [`start`] / [`EmulateHandle`], the library form used by `demo` and the tests;
//! - [`verify()`], the pure decision on one request, separate from HTTP so the golden vectors
//!   can be replayed with a pinned clock;
//! - [`EmulateError`], its configuration errors (exit code 2).

mod arn;
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
pub use tls::{from_files as tls_from_files, generate as generate_tls};
pub use verify::{
    Accepted, DEFAULT_DURATION, ErrorType, MAX_DURATION, MIN_DURATION, Rejection, RequestParts,
    Seen, VerifyConfig, route, verify,
};

/// Flags of `rolesanywhere-agent emulate`.
#[derive(Debug, Clone, clap::Args)]
pub struct EmulateArgs {
    /// PEM bundle of the trust anchor's CA certificate(s)
    #[arg(long, value_name = "PATH")]
    pub trust_anchor_certificate: PathBuf,
    /// ARN of the emulated trust anchor; its region is the region requests must be scoped to
    #[arg(long, value_name = "ARN")]
    pub trust_anchor_arn: String,
    /// ARN of the emulated profile
    #[arg(long, value_name = "ARN")]
    pub profile_arn: String,
    /// A role the profile allows (repeatable); without any, every role in the trust anchor's account is allowed
    #[arg(long = "role-arn", value_name = "ARN")]
    pub role_arns: Vec<String>,
    /// TCP port; 0 picks a free one (see --ready-file)
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Loopback address to listen on (127.0.0.1, ::1 or localhost); other addresses are refused
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: String,
    /// Serve HTTPS with this PEM certificate chain (needs --tls-key)
    #[arg(
        long,
        value_name = "PATH",
        requires = "tls_key",
        conflicts_with = "generate_tls"
    )]
    pub tls_certificate: Option<PathBuf>,
    /// PEM private key for --tls-certificate
    #[arg(long, value_name = "PATH", requires = "tls_certificate")]
    pub tls_key: Option<PathBuf>,
    /// Serve HTTPS with a throwaway certificate for 127.0.0.1, localhost and ::1
    #[arg(long)]
    pub generate_tls: bool,
    /// With --generate-tls: write the throwaway CA certificate (PEM) here for clients to trust
    #[arg(long, value_name = "PATH", requires = "generate_tls")]
    pub tls_ca_out: Option<PathBuf>,
    /// The profile's maximum session duration in seconds; longer requests are refused
    #[arg(long, value_name = "SECONDS", default_value_t = 43_200)]
    pub max_duration: u32,
    /// Answer the first N requests with --fail-status (for retry tests)
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub fail_first: u64,
    /// HTTP status of the injected failures (429 throttling, 5xx server errors, 403 ...)
    #[arg(long, value_name = "CODE", default_value_t = 503)]
    pub fail_status: u16,
    /// Answer every request after the first N with --fail-status (a service outage, for tests)
    #[arg(long, value_name = "N")]
    pub fail_after: Option<u64>,
    /// Issue credentials valid this long instead of the requested duration (for refresh tests)
    #[arg(long, value_name = "SECONDS")]
    pub credential_lifetime: Option<u32>,
    /// Answer each accepted CreateSession with a 201 body of this many bytes, sent chunked (a
    /// broken or hostile endpoint, for the client's response cap tests)
    #[arg(long, value_name = "BYTES")]
    pub oversized_body: Option<u64>,
    /// Answer this Expiration (RFC 3339) whatever the duration asked (for the clamp tests)
    #[arg(long, value_name = "TIMESTAMP", value_parser = parse_timestamp)]
    pub answer_expiration: Option<OffsetDateTime>,
    /// Run the service's clock this many seconds ahead of the system clock (negative: behind),
    /// to see how clients report clock skew
    #[arg(long, value_name = "SECONDS", allow_negative_numbers = true)]
    pub clock_offset: Option<i64>,
    /// Never answer the requests after the first N (a hanging service, for shutdown tests)
    #[arg(long, value_name = "N")]
    pub stall_after: Option<u64>,
    /// Wait this long before answering each CreateSession (a slow service, for tests)
    #[arg(long, value_name = "MS", default_value_t = 0)]
    pub response_delay_ms: u64,
    /// Append one JSON line per request received (n, status, error_type, role_arn, serial, duration_seconds)
    #[arg(long, value_name = "PATH")]
    pub request_log: Option<PathBuf>,
    /// Once listening, write the bound address (e.g. 127.0.0.1:41234) to this file
    #[arg(long, value_name = "PATH")]
    pub ready_file: Option<PathBuf>,
}

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

/// `--answer-expiration`: an RFC 3339 timestamp.
fn parse_timestamp(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("'{value}' is not an RFC 3339 timestamp (2099-01-01T00:00:00Z)"))
}

/// `--bind`: an IP address or `localhost`, loopback only.
fn parse_bind(value: &str) -> Result<IpAddr, EmulateError> {
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
fn write_atomic(path: &Path, contents: &[u8], flag: &'static str) -> Result<(), EmulateError> {
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

/// The `emulate` subcommand: loads the configuration, listens, announces the address, and
/// serves until `shutdown` resolves.
pub async fn run(
    args: EmulateArgs,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), EmulateError> {
    let ip = parse_bind(&args.bind)?;
    let verify = VerifyConfig::from_file(
        &args.trust_anchor_certificate,
        &args.trust_anchor_arn,
        &args.profile_arn,
        args.role_arns.clone(),
        args.max_duration,
    )?;
    if !(400..=599).contains(&args.fail_status) {
        return Err(EmulateError::FailStatus {
            value: args.fail_status,
        });
    }
    let tls = match (&args.tls_certificate, &args.tls_key, args.generate_tls) {
        (None, None, false) => None,
        (Some(cert), Some(key), false) => Some(tls::from_files(cert, key)?),
        (None, None, true) => {
            let (config, ca_pem) = tls::generate(ip)?;
            match &args.tls_ca_out {
                Some(out) => write_atomic(out, ca_pem.as_bytes(), "--tls-ca-out")?,
                None => tracing::warn!(
                    "emulate: --generate-tls without --tls-ca-out: clients have no CA to trust"
                ),
            }
            Some(config)
        }
        (_, _, true) => {
            return Err(EmulateError::Tls {
                reason: "--generate-tls cannot be combined with --tls-certificate/--tls-key"
                    .to_string(),
            });
        }
        _ => {
            return Err(EmulateError::Tls {
                reason: "--tls-certificate and --tls-key must be given together".to_string(),
            });
        }
    };
    let addr = SocketAddr::new(ip, args.port);
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| EmulateError::Listen { addr, source })?;
    let config = EmulateConfig {
        verify,
        tls,
        fail_first: args.fail_first,
        fail_status: args.fail_status,
        fail_after: args.fail_after,
        credential_lifetime: args.credential_lifetime,
        oversized_body: args.oversized_body,
        answer_expiration: args.answer_expiration,
        stall_after: args.stall_after,
        response_delay: std::time::Duration::from_millis(args.response_delay_ms),
        request_log: args.request_log.clone(),
        clock: match args.clock_offset {
            Some(seconds) => Clock::Offset(time::Duration::seconds(seconds)),
            None => Clock::System,
        },
    };
    let handle = start(config, listener, shutdown).await?;
    if let Some(path) = &args.ready_file
        && let Err(e) = write_atomic(
            path,
            handle.local_addr().to_string().as_bytes(),
            "--ready-file",
        )
    {
        handle.task.abort();
        return Err(e);
    }
    println!("listening on {}", handle.url());
    // Scripts wait for this line; make sure it leaves the buffer now.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    handle.wait().await;
    Ok(())
}

#[cfg(test)]
mod tests;
