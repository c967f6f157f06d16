//! `demo`: the whole credential flow offline, in one process. It makes a throwaway CA and a
//! workload certificate, starts `emulate` on loopback with a throwaway TLS certificate, runs
//! the same code path as `credential-process` against it, and shows each step. The secret
//! key and session token are printed redacted.

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::sync::Arc;

use super::session_flags;
use crate::cli::{CertificateArgs, CredentialArgs, DemoArgs, IdentityArgs};
use crate::clock::{Clock, SystemClock};
use crate::emulate::{self, EmulateConfig, VerifyConfig};
use crate::error::Error;
use crate::session::fetch_credentials;

const TRUST_ANCHOR_ARN: &str =
    "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/demo-anchor";
const PROFILE_ARN: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/demo-profile";
const ROLE_ARN: &str = "arn:aws:iam::111122223333:role/demo-role";

pub async fn run(args: &DemoArgs) -> Result<(), Error> {
    let temp;
    let kept;
    let dir: &Path = match &args.keep_in {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| Error::io(format!("cannot create {}", dir.display()), e))?;
            // Absolute, so that the commands printed at the end work from any directory and
            // in ~/.aws/config.
            kept = std::fs::canonicalize(dir)
                .map_err(|e| Error::io(format!("cannot resolve {}", dir.display()), e))?;
            &kept
        }
        None => {
            temp = tempfile::tempdir()
                .map_err(|e| Error::io("cannot create a temporary directory", e))?;
            temp.path()
        }
    };
    println!("rolesanywhere-agent demo: the IAM Roles Anywhere credential flow, offline\n");

    let pki = crate::pki::write_demo_pki(dir).map_err(|e| {
        Error::io(
            "cannot write the demo PKI",
            std::io::Error::other(e.to_string()),
        )
    })?;
    println!(
        "1. Made a throwaway CA and a P-256 workload certificate in {}",
        dir.display()
    );
    println!("     trust anchor CA  {}", pki.ca_cert.display());
    println!("     certificate      {}", pki.cert.display());
    println!(
        "     private key      {} (PKCS#8, mode 0600)",
        pki.key.display()
    );

    let verify = VerifyConfig::from_file(
        &pki.ca_cert,
        TRUST_ANCHOR_ARN,
        PROFILE_ARN,
        vec![ROLE_ARN.to_string()],
        43_200,
    )?;
    let generated = emulate::generate_tls_kept(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let tls_ca = dir.join("emulate-tls-ca.pem");
    std::fs::write(&tls_ca, &generated.ca_pem)
        .map_err(|e| Error::io(format!("cannot write {}", tls_ca.display()), e))?;
    // Kept files are for running `emulate` again by hand: the TLS certificate and key go
    // with the CA file, which would otherwise name a CA no later `emulate` could serve with.
    let kept_tls = match &args.keep_in {
        Some(_) => Some(keep_tls(dir, &generated)?),
        None => None,
    };
    let tls = generated.config;
    let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .map_err(|e| Error::io("cannot listen on 127.0.0.1", e))?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut config = EmulateConfig::new(verify);
    config.tls = Some(tls);
    let server = emulate::start(config, listener, async move {
        let _ = stopped.await;
    })
    .await?;
    println!(
        "\n2. Started `emulate`, a local CreateSession service, at {}",
        server.url()
    );
    println!(
        "     it verifies the SigV4-X509 signature, the chain to the trust anchor and the clock, like the service"
    );

    let cred_args = CredentialArgs {
        identity: IdentityArgs {
            cert: CertificateArgs {
                certificate: Some(pki.cert.display().to_string()),
                ..CertificateArgs::default()
            },
            private_key: Some(pki.key.display().to_string()),
            ..IdentityArgs::default()
        },
        trust_anchor_arn: Some(TRUST_ANCHOR_ARN.into()),
        profile_arn: Some(PROFILE_ARN.into()),
        role_arn: Some(ROLE_ARN.into()),
        session_duration: 3600,
        endpoint: Some(server.url()),
        ca_bundle: Some(tls_ca.display().to_string()),
        ..CredentialArgs::default()
    };
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let mut prepared = session_flags::prepare(&cred_args, clock.as_ref())?;
    // The demo trusts its own throwaway CA only, whatever AWS_CA_BUNDLE says.
    prepared
        .endpoint
        .ca_bundles
        .retain(|(flag, _)| *flag == "--ca-bundle");
    let cert = &prepared.identity.certificate;
    println!("\n3. Pre-flight checks passed: the key matches the certificate, which is valid now");
    println!(
        "     subject {}  serial {}",
        cert.subject(),
        cert.serial_decimal()
    );
    println!(
        "     valid until {}",
        crate::credentials::format_expiration(cert.not_after())
    );

    let result = fetch_credentials(&prepared, clock).await;
    let requests = server.requests();
    let _ = stop.send(());
    server.wait().await;
    let credentials = result?;
    println!(
        "\n4. Signed CreateSession with {} over TLS; the service accepted it ({requests} request) and answered:",
        prepared.identity.signer.key_kind().algorithm().as_str()
    );
    println!("{}", indent(&credentials.to_redacted_json()));

    println!("\n5. With real ARNs and your CA-issued certificate, put this in ~/.aws/config:");
    println!("     [profile roles-anywhere]");
    println!(
        "     credential_process = rolesanywhere-agent credential-process --certificate {} --private-key {} --trust-anchor-arn {TRUST_ANCHOR_ARN} --profile-arn {PROFILE_ARN} --role-arn {ROLE_ARN}",
        pki.cert.display(),
        pki.key.display()
    );
    match kept_tls {
        Some((tls_cert, tls_key)) => {
            println!(
                "\n6. The same flow by hand with the kept files: `emulate` in one terminal (port {DEMO_PORT}), then `credential-process` (or the profile line with these flags):"
            );
            println!(
                "     rolesanywhere-agent emulate --trust-anchor-certificate {} --trust-anchor-arn {TRUST_ANCHOR_ARN} --profile-arn {PROFILE_ARN} --role-arn {ROLE_ARN} --port {DEMO_PORT} --tls-certificate {} --tls-key {}",
                pki.ca_cert.display(),
                tls_cert.display(),
                tls_key.display()
            );
            println!(
                "     rolesanywhere-agent credential-process --certificate {} --private-key {} --trust-anchor-arn {TRUST_ANCHOR_ARN} --profile-arn {PROFILE_ARN} --role-arn {ROLE_ARN} --endpoint https://127.0.0.1:{DEMO_PORT} --ca-bundle {}",
                pki.cert.display(),
                pki.key.display(),
                tls_ca.display()
            );
            println!("   (the certificate is valid for a day: run the demo again for a new one)");
        }
        None => {
            println!("\n(the throwaway files are deleted now; pass --keep-in DIR to keep them)");
        }
    }
    Ok(())
}

/// The port the printed `emulate` command listens on (any free port does).
const DEMO_PORT: u16 = 18443;

/// Writes the throwaway TLS server chain and key beside the demo's files (the key 0600), so
/// that `emulate --tls-certificate --tls-key` serves again under the kept `emulate-tls-ca.pem`.
fn keep_tls(
    dir: &Path,
    generated: &emulate::GeneratedTls,
) -> Result<(std::path::PathBuf, std::path::PathBuf), Error> {
    let cert = dir.join("emulate-tls.pem");
    let key = dir.join("emulate-tls.key");
    std::fs::write(&cert, &generated.chain_pem)
        .map_err(|e| Error::io(format!("cannot write {}", cert.display()), e))?;
    crate::files::write_atomically(&key, generated.key_pem.as_bytes(), 0o600)
        .map_err(|e| Error::io(format!("cannot write {}", key.display()), e))?;
    Ok((cert, key))
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("     {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
