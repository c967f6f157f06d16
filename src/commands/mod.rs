//! One function per subcommand. Each validates everything it was given before it touches a
//! key or the network, then does its one job.

mod credential_process;
mod demo;
mod doctor;
pub(crate) mod emulate;
mod healthcheck;
#[cfg(feature = "keyring")]
mod keyring;
mod read_certificate_data;
mod serve;
mod session_flags;
mod sign_string;
mod status;
mod update;

use std::sync::Arc;

use crate::cli::{Cli, Command, IdentityArgs};
use crate::clock::{Clock, SystemClock};
use crate::config::ConfigError;
use crate::error::Error;

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), Error> {
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    match cli.command {
        Command::CredentialProcess(args) => credential_process::run(&args, clock).await,
        Command::Serve(args) => serve::run(&args, clock).await,
        Command::Update(args) => update::run(&args, clock).await,
        #[cfg(feature = "keyring")]
        Command::Keyring(args) => keyring::run(&args).await,
        #[cfg(not(feature = "keyring"))]
        Command::Keyring(_) => Err(ConfigError::NotSupported {
            flag: "the keyring subcommand",
            why: "this binary was built without the keyring feature (the static build leaves it out): use a build with the default features",
        }
        .into()),
        Command::SignString(args) => sign_string::run(&args),
        Command::ReadCertificateData(args) => read_certificate_data::run(&args),
        Command::Healthcheck(args) => healthcheck::run(&args),
        Command::Version => {
            println!("{}", env!("CARGO_PKG_VERSION"));
            Ok(())
        }
        Command::Emulate(args) => Ok(emulate::run(args, shutdown_signal()).await?),
        Command::Demo(args) => demo::run(&args).await,
        Command::Doctor(args) => doctor::run(&args, clock).await,
        Command::Status(args) => status::run(&args),
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Refuses, with a clear message, the Go helper's flags whose key stores are not built.
/// They are accepted by the parser so a Go helper command line never fails as "unknown flag".
pub fn refuse_unbuilt_features(args: &IdentityArgs) -> Result<(), ConfigError> {
    let tpm = "this build has no TPM support (built without the tpm feature)";
    let is = |v: &Option<String>, prefix: &str| v.as_deref().is_some_and(|s| s.starts_with(prefix));
    let pkcs11 = is(&args.cert.certificate, "pkcs11:")
        || is(&args.private_key, "pkcs11:")
        || args.cert.pkcs11_lib.is_some();
    let no_pkcs11 = if cfg!(feature = "pkcs11") {
        "certificate stores (Windows, macOS) are not supported; on Linux select among a PKCS#11 token's certificates with --certificate pkcs11:..."
    } else {
        "this build has no PKCS#11 support (built without the pkcs11 feature)"
    };
    let tpm_built = cfg!(feature = "tpm");
    let checks: [(bool, &'static str, &'static str); 6] = [
        (
            is(&args.private_key, "handle:") && !tpm_built,
            "--private-key handle:",
            tpm,
        ),
        (
            (args.tpm_key_password.is_some() || args.no_tpm_key_password) && !tpm_built,
            "--tpm-key-password/--no-tpm-key-password",
            tpm,
        ),
        (
            pkcs11 && !cfg!(feature = "pkcs11"),
            "--certificate/--private-key pkcs11:",
            no_pkcs11,
        ),
        (
            args.reuse_pin && !pkcs11,
            "--reuse-pin",
            "it applies to PKCS#11 keys only",
        ),
        (
            args.cert.cert_selector.is_some() && !pkcs11,
            "--cert-selector",
            no_pkcs11,
        ),
        (
            args.use_latest_expiring_certificate && !pkcs11,
            "--use-latest-expiring-certificate",
            no_pkcs11,
        ),
    ];
    for (hit, flag, why) in checks {
        if hit {
            return Err(ConfigError::NotSupported { flag, why });
        }
    }
    Ok(())
}

/// Runs in builds without the keyring feature (`cargo test --no-default-features --features
/// tpm`): the subcommand stays known and says why it cannot run.
#[cfg(all(test, not(feature = "keyring")))]
mod unbuilt_tests {
    use clap::Parser as _;

    #[tokio::test]
    async fn keyring_in_a_build_without_it_says_so_and_exits_2() {
        for args in [
            &["x", "keyring"][..],
            &[
                "x",
                "keyring",
                "import",
                "--service",
                "s",
                "--account",
                "a",
                "key.pem",
            ],
            &["x", "keyring", "--help"],
        ] {
            let cli = crate::cli::Cli::try_parse_from(args).unwrap();
            let err = super::run(cli).await.unwrap_err();
            assert_eq!(err.exit_code(), crate::error::exit::USAGE, "{args:?}");
            assert!(
                err.to_string()
                    .contains("built without the keyring feature"),
                "{args:?}: {err}"
            );
        }
    }
}
