//! `emulate`: the subcommand around [`crate::emulate`]. It turns the flags into an
//! [`EmulateConfig`], listens on loopback, announces the address (stdout and
//! `--ready-file`) and serves until SIGINT/SIGTERM.

use std::net::SocketAddr;

use tokio::net::TcpListener;

use crate::cli::EmulateArgs;
use crate::emulate::{self, EmulateConfig, EmulateError, VerifyConfig, parse_bind, write_atomic};

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
        (Some(cert), Some(key), false) => Some(emulate::tls_from_files(cert, key)?),
        (None, None, true) => {
            let (config, ca_pem) = emulate::generate_tls(ip)?;
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
            Some(seconds) => emulate::Clock::Offset(time::Duration::seconds(seconds)),
            None => emulate::Clock::System,
        },
    };
    let handle = emulate::start(config, listener, shutdown).await?;
    if let Some(path) = &args.ready_file
        && let Err(e) = write_atomic(
            path,
            handle.local_addr().to_string().as_bytes(),
            "--ready-file",
        )
    {
        handle.abort();
        return Err(e);
    }
    println!("listening on {}", handle.url());
    // Scripts wait for this line; make sure it leaves the buffer now.
    let _ = std::io::Write::flush(&mut std::io::stdout());
    handle.wait().await;
    Ok(())
}
