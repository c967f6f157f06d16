//! `serve`: the agent. It obtains the first credentials (or exits 1 so systemd restarts
//! it), then serves them from memory over IMDSv2, the container endpoint and a Unix socket
//! while a background task refreshes them ahead of expiry. SIGHUP re-reads the certificate
//! and key; SIGTERM/SIGINT drain and exit 0.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;

use super::PreparedSession;
use crate::agent::cache::CredentialCache;
use crate::agent::loader::SessionLoader;
use crate::agent::notify::notify;
use crate::cli::ServeArgs;
use crate::clock::Clock;
use crate::error::Error;
use crate::server::{self, ServerConfig};
use crate::session::SessionClient;

pub async fn run(args: &ServeArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    server::check_bind_address(args.bind, args.allow_non_loopback)?;
    if let Some(path) = &args.socket {
        server::check_socket_dir(path)?;
    }
    let prepared = PreparedSession::from_args(&args.creds, clock.as_ref())?;
    if let Some(path) = &args.container_token_file {
        server::ensure_container_token(path).map_err(|e| {
            Error::io(
                format!("cannot create --container-token-file {}", path.display()),
                e,
            )
        })?;
    }
    let identity_key = server::IdentityKey::new(prepared.cache_key().as_str());
    let settings = prepared.settings.clone();
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
        PreparedSession::policy(&args.creds),
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
    let socket_path = if args.no_socket {
        None
    } else {
        args.socket
            .clone()
            .or_else(crate::agent::client::default_socket_path)
    };
    let unix =
        match &socket_path {
            Some(path) => {
                server::check_socket_dir(path)?;
                Some(server::bind_unix(path).map_err(|e| {
                    Error::io(format!("cannot listen on socket {}", path.display()), e)
                })?)
            }
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
    let source: Arc<dyn crate::agent::CredentialSource> = cache.clone();
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(cache.clone().run_refresher(stopped()));
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
            _ = hangup.recv() => reload(args, clock.as_ref(), &loader, &cache, &identity_key).await,
        }
    }

    notify("STOPPING=1");
    tracing::info!("shutting down: draining requests");
    let _ = stop_tx.send(true);
    // Each server bounds its own drain; this bounds the whole.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    if let Some(path) = &socket_path {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}

/// SIGHUP: re-reads the certificate and key. A broken new identity is reported and the old
/// one kept; a good one is used for a session right away, so the rotated certificate takes
/// effect without waiting for the next refresh.
async fn reload(
    args: &ServeArgs,
    clock: &dyn Clock,
    loader: &SessionLoader,
    cache: &CredentialCache,
    identity_key: &server::IdentityKey,
) {
    let fixed: Vec<String> = [
        &args.creds.certificate,
        &args.creds.private_key,
        &args.creds.intermediates,
    ]
    .into_iter()
    .flatten()
    .filter(|v| !crate::identity::source::Source::parse(v).is_rereadable())
    .map(|v| crate::identity::source::describe(v))
    .collect();
    if !fixed.is_empty() {
        tracing::warn!(
            sources = %fixed.join(", "),
            "SIGHUP: the identity comes from sources that cannot be read again; keeping the current one"
        );
        return;
    }
    notify("RELOADING=1");
    match PreparedSession::from_args(&args.creds, clock) {
        Ok(prepared) => {
            let new_key = prepared.cache_key();
            let serial = prepared.identity.certificate.serial_decimal();
            loader.set_identity(prepared.identity);
            match cache.refresh().await {
                Ok(_) => {
                    identity_key.set(new_key.as_str());
                    tracing::info!(
                        serial,
                        "SIGHUP: identity reloaded and new credentials obtained"
                    );
                }
                Err(e) => tracing::warn!(
                    serial,
                    error = %e,
                    "SIGHUP: identity reloaded, but CreateSession failed; the current credentials stay until they expire"
                ),
            }
        }
        Err(e) => tracing::error!(
            "SIGHUP: the certificate or key cannot be used, keeping the current identity: {}",
            crate::error::Report(&e)
        ),
    }
    notify("READY=1");
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

fn authority(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V6(a) => format!("[{}]:{}", a.ip(), a.port()),
        SocketAddr::V4(a) => a.to_string(),
    }
}
