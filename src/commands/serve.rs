//! `serve`: the agent. It obtains the first credentials (or exits 1 so systemd restarts
//! it), then serves them from memory over IMDSv2, the container endpoint and a Unix socket
//! while a background task refreshes them ahead of expiry. A renewed certificate is picked
//! up by itself ([`crate::agent::rotation`]); SIGHUP re-reads the certificate and key and
//! refreshes at once. SIGTERM/SIGINT drain and exit 0 within [`STOP_BOUND`], whatever is in
//! flight (a reload against a hanging endpoint included).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{Notify, watch};

use super::session_flags;
use crate::agent::cache::CredentialCache;
use crate::agent::expiry::{self, CertDates, IdentityStatus};
use crate::agent::loader::SessionLoader;
use crate::agent::notify::notify;
use crate::agent::rotation::{Baseline, Rotation};
use crate::cli::ServeArgs;
use crate::clock::Clock;
use crate::error::Error;
use crate::server::{self, ServerConfig};
use crate::session::{PreparedSession, SessionClient};

/// From SIGTERM/SIGINT to exit, at most (plus the socket file's removal): the servers'
/// drain is bounded by their own grace, and whatever else is in flight is abandoned.
pub const STOP_BOUND: Duration = Duration::from_secs(10);

pub async fn run(args: &ServeArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    server::check_bind_address(args.bind, args.allow_non_loopback)?;
    // Checked before the first CreateSession: a socket directory others could tamper with is
    // a configuration error, found without sending anything.
    let socket_path = if args.no_socket {
        None
    } else {
        args.socket
            .clone()
            .or_else(crate::agent::client::default_socket_path)
    };
    if let Some(path) = &socket_path {
        server::check_socket_dir(path)?;
    }
    let spec = session_flags::spec(&args.creds)?;
    let baseline = Baseline::take(&spec.identity);
    let prepared = PreparedSession::load(&spec, clock.as_ref())?;
    if let Some(path) = &args.container_token_file {
        server::ensure_container_token(path).map_err(|e| {
            Error::io(
                format!("cannot create --container-token-file {}", path.display()),
                e,
            )
        })?;
    }
    let identity_key = server::IdentityKey::new(prepared.cache_key().as_str());
    let status = Arc::new(IdentityStatus::new(CertDates::of(
        &prepared.identity.certificate,
    )));
    let settings = prepared.settings.clone();
    let key_store = prepared.identity.signer.source();
    let client = SessionClient::new(&prepared.endpoint, clock.clone())?;

    // The first credentials come before any socket opens: a service that cannot get them
    // should fail loudly (exit 1, restarted by systemd), not serve 503s.
    let first = client.create_session(&prepared.identity, &settings).await?;
    let loader = Arc::new(SessionLoader::new(
        client,
        prepared.identity,
        settings.clone(),
    ));
    let cache = Arc::new(CredentialCache::new(
        loader.clone(),
        session_flags::policy(&args.creds),
        clock.clone(),
    ));
    cache.seed(first);

    let config = Arc::new(ServerConfig {
        allowed_hosts: args.allow_host.clone(),
        ..ServerConfig::new(&settings, args.hop_limit, args.container_token_file.clone())
    });
    let addr = SocketAddr::new(args.bind, args.port);
    let tcp = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {addr} (--bind/--port)"), e))?;
    let local = tcp
        .local_addr()
        .map_err(|e| Error::io("cannot read the listening address", e))?;
    let unix = match &socket_path {
        Some(path) => Some(
            server::bind_unix(path)
                .map_err(|e| Error::io(format!("cannot listen on socket {}", path.display()), e))?,
        ),
        None => None,
    };

    let metrics = match args.metrics_bind {
        Some(addr) => Some(bind_metrics(addr).await?),
        None => None,
    };

    let (stop_tx, stop_rx) = watch::channel(false);
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let source: Arc<dyn crate::agent::CredentialSource> = Arc::new(
        expiry::WithIdentity::new(cache.clone(), status.clone()).with_details(
            key_store,
            listening(
                local,
                args.container_token_file.as_deref(),
                socket_path.as_deref(),
                metrics.as_ref().map(|(_, at)| at.as_str()),
            ),
        ),
    );
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(cache.clone().run_refresher(stopped()));
    let reloads = spawn_identity_tasks(
        &mut tasks,
        Rotation::new(
            spec,
            clock.clone(),
            loader.clone(),
            Some(Box::new({
                let key = identity_key.clone();
                move |new: &str| key.set(new)
            })),
            status.clone(),
            baseline,
        ),
        cache.clone(),
        status,
        clock.clone(),
        &stopped,
    );
    {
        let (source, config, shutdown) = (source.clone(), config.clone(), stopped());
        tasks.spawn(async move {
            if let Err(e) = server::serve_tcp(tcp, source, config, shutdown).await {
                tracing::error!(error = %e, "the TCP endpoint failed");
            }
        });
    }
    if let Some(unix) = unix {
        let (source, key, shutdown) = (source.clone(), identity_key.clone(), stopped());
        tasks.spawn(async move {
            if let Err(e) = server::serve_unix(unix, source, key, shutdown).await {
                tracing::error!(error = %e, "the socket endpoint failed");
            }
        });
    }

    let metrics_at = metrics.as_ref().map(|(_, at)| at.clone());
    if let Some((listener, _)) = metrics {
        let (hosts, limits, shutdown) = (config.allowed_hosts.clone(), config.limits, stopped());
        tasks.spawn(async move {
            if let Err(e) = server::serve_metrics(listener, &hosts, limits, shutdown).await {
                tracing::error!(error = %e, "the metrics endpoint failed");
            }
        });
    }

    // Signal handlers go in before anything announces readiness: a supervisor may send
    // SIGTERM the moment it sees READY=1 or the start-up lines.
    let mut term =
        signal(SignalKind::terminate()).map_err(|e| Error::io("cannot watch SIGTERM", e))?;
    let mut hangup =
        signal(SignalKind::hangup()).map_err(|e| Error::io("cannot watch SIGHUP", e))?;
    let mut interrupt =
        signal(SignalKind::interrupt()).map_err(|e| Error::io("cannot watch SIGINT", e))?;

    let host = match local {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    };
    // Before the Go helper's three lines, which stay together for scripts that read them.
    if let Some(at) = &metrics_at {
        println!("Metrics at http://{at}/metrics");
    }
    println!("Local server started on {host}");
    println!("Make it available to the SDKs by running:");
    println!("export AWS_EC2_METADATA_SERVICE_ENDPOINT=http://{host}/");
    if let Some(path) = &args.container_token_file {
        println!("For containers sharing this network namespace:");
        println!("export AWS_CONTAINER_CREDENTIALS_FULL_URI=http://{host}/v1/credentials");
        println!(
            "export AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE={}",
            path.display()
        );
    }
    if let Some(path) = &socket_path {
        println!(
            "credential-process asks the agent first at {}",
            path.display()
        );
    }
    let _ = std::io::Write::flush(&mut std::io::stdout());
    notify("READY=1");

    loop {
        tokio::select! {
            _ = interrupt.recv() => break,
            _ = term.recv() => break,
            // Never awaited here: a reload against a hanging endpoint must not hold up
            // SIGTERM. A storm of SIGHUPs leaves at most one reload pending.
            _ = hangup.recv() => reloads.notify_one(),
        }
    }

    notify("STOPPING=1");
    tracing::info!("shutting down: draining requests");
    let _ = stop_tx.send(true);
    // Each server bounds its own drain; this bounds the whole. Tasks still running then
    // (a CreateSession against a hanging endpoint) are aborted when `tasks` drops.
    let _ = tokio::time::timeout(STOP_BOUND, async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if let Some(path) = &socket_path {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// Starts what follows the identity: the renewal watcher, the expiry monitor and the SIGHUP
/// reloader. Returns the reloader's wake-up, for the signal loop.
fn spawn_identity_tasks<F>(
    tasks: &mut tokio::task::JoinSet<()>,
    rotation: Arc<Rotation>,
    cache: Arc<CredentialCache>,
    status: Arc<IdentityStatus>,
    clock: Arc<dyn Clock>,
    stopped: &impl Fn() -> F,
) -> Arc<Notify>
where
    F: Future<Output = ()> + Send + 'static,
{
    tasks.spawn(rotation.clone().run(stopped()));
    tasks.spawn(expiry::monitor(status, cache.clone(), clock, stopped()));
    let reloads = Arc::new(Notify::new());
    tasks.spawn(reloader(rotation, cache, reloads.clone(), stopped()));
    reloads
}

/// The least time between the starts of two SIGHUP reloads (each forces a CreateSession).
const RELOAD_SPACING: Duration = Duration::from_secs(2);

/// Runs the SIGHUP reloads one at a time until `shutdown`: `Notify` keeps at most one
/// wake-up while a reload runs or [`RELOAD_SPACING`] has not passed, so a storm of signals
/// makes one reload now and one more after it, however many arrive.
async fn reloader(
    rotation: Arc<Rotation>,
    cache: Arc<CredentialCache>,
    requests: Arc<Notify>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = requests.notified() => {}
        }
        let started = tokio::time::Instant::now();
        notify("RELOADING=1");
        tokio::select! {
            _ = &mut shutdown => return,
            _ = rotation.hangup(&cache) => {}
        }
        notify("READY=1");
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep_until(started + RELOAD_SPACING) => {}
        }
    }
}

/// The `--metrics-bind` listener, and its address as a URL authority for the start-up line.
async fn bind_metrics(addr: SocketAddr) -> Result<(tokio::net::TcpListener, String), Error> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| Error::io(format!("cannot listen on {addr} (--metrics-bind)"), e))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("cannot read the metrics listening address", e))?;
    if !local.ip().to_canonical().is_loopback() {
        tracing::info!(%local, "serving /metrics on a non-loopback address (counts and timestamps only, no credentials)");
    }
    Ok((listener, authority(local)))
}

/// What the agent listens on, one line each, for `status`.
fn listening(
    tcp: SocketAddr,
    token_file: Option<&std::path::Path>,
    socket: Option<&std::path::Path>,
    metrics: Option<&str>,
) -> Vec<String> {
    let host = authority(tcp);
    let mut lines = vec![format!("imds http://{host}/")];
    if let Some(path) = token_file {
        lines.push(format!(
            "container http://{host}/v1/credentials (token file {})",
            path.display()
        ));
    }
    if let Some(path) = socket {
        lines.push(format!("socket {}", path.display()));
    }
    if let Some(at) = metrics {
        lines.push(format!("metrics http://{at}/metrics"));
    }
    lines
}

fn authority(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    }
}
