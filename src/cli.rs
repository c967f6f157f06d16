//! The command line, flag for flag the Go `aws_signing_helper`'s, plus our own subcommands:
//! every clap struct lives here (`emulate`'s and `keyring`'s in their submodules).
//! These are raw values; [`crate::config`] and [`crate::identity`] validate them.

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::identity::IdentitySpec;

pub mod config_file;
mod emulate;
#[cfg(feature = "keyring")]
pub mod keyring;

pub use config_file::ConfigFileArgs;
pub use emulate::EmulateArgs;

/// Parses a secret flag value straight into a type whose `Debug` is redacted.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
}

/// Printed after `--help`.
pub const EXIT_CODES: &str = "Exit codes:\n  0  success\n  1  runtime failure (the service refused, the network failed)\n  2  usage or configuration error (bad flag, unreadable or invalid file, mismatched key); nothing was sent";

#[derive(Parser, Debug)]
#[command(
    name = "rolesanywhere-agent",
    version,
    // pflag (the Go helper's parser) lets a repeated flag override the earlier one.
    args_override_self = true,
    about = "AWS IAM Roles Anywhere credentials for workloads outside AWS (a drop-in for aws_signing_helper)",
    after_help = EXIT_CODES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Print credentials as `credential_process` JSON (for ~/.aws/config)
    #[command(after_help = EXIT_CODES)]
    CredentialProcess(CredentialProcessArgs),
    /// Serve credentials over a local IMDSv2 endpoint, a container endpoint and a socket, refreshing them ahead of expiry
    #[command(after_help = EXIT_CODES)]
    Serve(ServeArgs),
    /// Write credentials into the shared credentials file, once or continuously
    #[command(after_help = EXIT_CODES)]
    Update(UpdateArgs),
    /// Store private keys in, or delete them from, the OS keyring (Secret Service, keyutils)
    #[cfg(feature = "keyring")]
    #[command(after_help = EXIT_CODES)]
    Keyring(keyring::KeyringArgs),
    /// Declared in a build without the keyring feature (the static binary) so that `keyring`
    /// says it was left out of the build (exit 2) instead of "unrecognized subcommand"
    #[cfg(not(feature = "keyring"))]
    #[command(hide = true, disable_help_flag = true)]
    Keyring(UnbuiltArgs),
    /// Sign standard input with the private key (hex, JSON string or raw bytes)
    #[command(after_help = EXIT_CODES)]
    SignString(SignStringArgs),
    /// Print the certificate's key type, DER and serial as JSON
    #[command(
        after_help = EXIT_CODES,
        // The shared flag, with what this command does with it: no PKCS#12 (there is no
        // key to read), and a PKCS#11 URI lists the token's certificates.
        mut_arg("certificate", |a| a.help(
            "Certificate file (PEM or DER), or a PKCS#11 URI (lists the token's certificates)"
        ))
    )]
    ReadCertificateData(ReadCertificateArgs),
    /// Exit 0 when a running agent holds valid credentials (for container probes)
    Healthcheck(HealthcheckArgs),
    /// Print the version
    Version,
    /// Run a local CreateSession endpoint that verifies requests like the service
    #[command(after_help = EXIT_CODES)]
    Emulate(EmulateArgs),
    /// Run the whole flow offline: throwaway CA, local endpoint, credentials
    Demo(DemoArgs),
    /// Check a setup end to end (flags, certificate, key, chain, endpoint, clock, CreateSession, agent, ~/.aws/config) and say how to fix what fails
    #[command(after_help = DOCTOR_EXIT_CODES)]
    Doctor(DoctorArgs),
    /// Show what a running agent holds: identity, credentials (never secrets), refreshes, endpoints
    #[command(after_help = EXIT_CODES)]
    Status(StatusArgs),
}

/// Where the certificate is: the part of the identity flags `read-certificate-data` takes
/// too (it reads a certificate but no key).
#[derive(Args, Debug, Clone, Default)]
pub struct CertificateArgs {
    /// Certificate file (PEM, DER, or a PKCS#12 bundle holding the key too), or a PKCS#11 URI
    #[arg(long, value_name = "PATH")]
    pub certificate: Option<String>,
    /// Certificate selector for certificate stores and PKCS#11 (Key=...,Value=... or file://sel.json)
    #[arg(long, value_name = "SELECTOR")]
    pub cert_selector: Option<String>,
    /// PKCS#11 module
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<String>,
}

/// `--system-store-name`: accepted wherever the Go helper accepts it, and ignored (it names
/// a Windows certificate store).
#[derive(Args, Debug, Clone)]
pub struct SystemStoreArgs {
    /// Windows system store name (ignored elsewhere, as in the Go helper)
    #[arg(long, value_name = "NAME", default_value = "MY")]
    pub system_store_name: String,
}

impl Default for SystemStoreArgs {
    /// The flag's default, so that arguments built in code match parsed ones.
    fn default() -> Self {
        SystemStoreArgs {
            system_store_name: "MY".into(),
        }
    }
}

/// Whatever follows a subcommand this build left out: taken as is, never parsed.
#[derive(Args, Debug, Clone, Default)]
pub struct UnbuiltArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true, num_args = 0.., hide = true)]
    pub rest: Vec<String>,
}

/// Where the identity lives: the certificate, its key and chain, and the key stores' flags.
/// Flattened into every command that takes a key; [`IdentityArgs::spec`] is the one
/// conversion to what the loaders take.
#[derive(Args, Debug, Clone, Default)]
pub struct IdentityArgs {
    #[command(flatten)]
    pub cert: CertificateArgs,
    /// Private key file (PKCS#8, PKCS#1, SEC1 or encrypted PKCS#8), or a PKCS#11 URI, TPM handle or keyring entry,
    /// or env:NAME (a variable stays readable by the same user in /proc/PID/environ of every process holding it)
    #[arg(long, value_name = "PATH")]
    pub private_key: Option<String>,
    /// PEM bundle of intermediate CA certificates, sent as X-Amz-X509-Chain
    #[arg(long, value_name = "PATH")]
    pub intermediates: Option<String>,
    /// Among matching certificates, use the one that expires last
    #[arg(long)]
    pub use_latest_expiring_certificate: bool,
    /// Reuse the PKCS#11 user PIN for context-specific login
    #[arg(long)]
    pub reuse_pin: bool,
    /// Password of a TPM key. Visible to every local user in `ps` (and in ~/.aws/config when the line is there)
    #[arg(long, value_name = "PASSWORD", value_parser = secret)]
    pub tpm_key_password: Option<SecretString>,
    /// The TPM key has no password
    #[arg(long)]
    pub no_tpm_key_password: bool,
    /// Password of an encrypted PKCS#8 key or PKCS#12 file (else ROLESANYWHERE_PKCS8_PASSWORD, else a prompt on a terminal). Visible to every local user in `ps` (and in ~/.aws/config): prefer the variable
    #[arg(long, value_name = "PASSWORD", value_parser = secret)]
    pub pkcs8_password: Option<SecretString>,
}

impl IdentityArgs {
    /// The identity flags, as the loaders take them.
    pub fn spec(&self) -> IdentitySpec {
        IdentitySpec {
            certificate: self.cert.certificate.clone(),
            private_key: self.private_key.clone(),
            intermediates: self.intermediates.clone(),
            pkcs8_password: self.pkcs8_password.clone(),
            pkcs11_lib: self.cert.pkcs11_lib.clone(),
            reuse_pin: self.reuse_pin,
            cert_selector: self.cert.cert_selector.clone(),
            use_latest_expiring_certificate: self.use_latest_expiring_certificate,
            tpm_key_password: self.tpm_key_password.clone(),
            no_tpm_key_password: self.no_tpm_key_password,
        }
    }
}

/// The flags shared by every command that obtains credentials.
#[derive(Args, Debug, Clone, Default)]
pub struct CredentialArgs {
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Trust anchor to authenticate against
    #[arg(long, value_name = "ARN", env = "ROLESANYWHERE_TRUST_ANCHOR_ARN")]
    pub trust_anchor_arn: Option<String>,
    /// Profile to take policies from
    #[arg(long, value_name = "ARN", env = "ROLESANYWHERE_PROFILE_ARN")]
    pub profile_arn: Option<String>,
    /// Role to assume
    #[arg(long, value_name = "ARN", env = "ROLESANYWHERE_ROLE_ARN")]
    pub role_arn: Option<String>,
    /// Session duration in seconds (900..43200)
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 3600,
        allow_negative_numbers = true
    )]
    pub session_duration: i64,
    /// Signing region (default: the trust anchor's)
    #[arg(long)]
    pub region: Option<String>,
    /// CreateSession endpoint. Default: as the AWS SDKs choose it (AWS_ENDPOINT_URL_ROLESANYWHERE, AWS_ENDPOINT_URL, ~/.aws/config, then https://rolesanywhere[-fips].REGION.amazonaws.com or its partition's, FIPS and dual-stack forms)
    #[arg(long, value_name = "URL")]
    pub endpoint: Option<String>,
    /// Do not verify the endpoint's TLS certificate (warns)
    #[arg(long)]
    pub no_verify_ssl: bool,
    /// Send CreateSession through HTTPS_PROXY (honouring NO_PROXY)
    #[arg(long)]
    pub with_proxy: bool,
    /// Print debug output on stderr
    #[arg(long)]
    pub debug: bool,
    /// Role session name
    #[arg(long, value_name = "NAME")]
    pub role_session_name: Option<String>,
    #[command(flatten)]
    pub system_store: SystemStoreArgs,
    /// Extra PEM bundle of CAs to trust for the endpoint (besides the system roots and AWS_CA_BUNDLE)
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<String>,
    /// Refresh when less than this is left (capped at half the lifetime), e.g. 20m, 900s, 1h
    #[arg(long, value_name = "DURATION", default_value = "20m", value_parser = parse_duration)]
    pub refresh_before: std::time::Duration,
}

/// `credential-process`: the shared flags plus where to find a running agent and the cache.
#[derive(Args, Debug, Clone)]
pub struct CredentialProcessArgs {
    #[command(flatten)]
    pub creds: CredentialArgs,
    #[command(flatten)]
    pub config: ConfigFileArgs,
    /// Do not read or write the on-disk credentials cache
    #[arg(long)]
    pub no_cache: bool,
    /// The agent's socket to ask first (default: $XDG_RUNTIME_DIR/rolesanywhere-agent/agent.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    #[command(flatten)]
    pub creds: CredentialArgs,
    #[command(flatten)]
    pub config: ConfigFileArgs,
    /// TCP port of the IMDSv2 and container endpoints
    #[arg(long, default_value_t = crate::server::DEFAULT_PORT)]
    pub port: u16,
    /// IP TTL / IPv6 hop limit of the agent's packets, SYN-ACK included. 64 is the usual OS
    /// default; 1 stops answers at the first router (as IMDSv2 does), hosts on the same link still get them
    #[arg(long, default_value_t = crate::server::DEFAULT_HOP_LIMIT, value_parser = clap::value_parser!(u8).range(1..))]
    pub hop_limit: u8,
    /// Address to listen on (loopback unless --allow-non-loopback)
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
    /// Allow a non-loopback --bind (other hosts can then ask for credentials)
    #[arg(long)]
    pub allow_non_loopback: bool,
    /// Serve GET /v1/credentials to requests whose Authorization equals this file's content (created 0600 if missing)
    #[arg(long, value_name = "PATH")]
    pub container_token_file: Option<std::path::PathBuf>,
    /// Unix socket for credential-process (default: $XDG_RUNTIME_DIR/rolesanywhere-agent/agent.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// Do not listen on a Unix socket
    #[arg(long, conflicts_with = "socket")]
    pub no_socket: bool,
    /// Also accept requests whose Host is NAME[:PORT] (repeatable). By default only localhost,
    /// 127.0.0.1, [::1], the --bind address and the metadata addresses are accepted, so that
    /// no web page can reach the agent through DNS rebinding
    #[arg(long = "allow-host", value_name = "NAME")]
    pub allow_host: Vec<crate::server::AllowedHost>,
    /// Also serve GET /metrics (Prometheus text format) alone on ADDR:PORT, for a scraper on
    /// another host: it may be a non-loopback address, since nothing secret is served there
    /// (the Host rule still applies: scrape it by that address or an --allow-host name).
    /// /metrics is always served on the agent's own port as well
    #[arg(long = "metrics-bind", value_name = "ADDR:PORT")]
    pub metrics_bind: Option<std::net::SocketAddr>,
}

#[derive(Args, Debug, Clone)]
pub struct HealthcheckArgs {
    /// The agent's port
    #[arg(long, default_value_t = crate::server::DEFAULT_PORT)]
    pub port: u16,
    /// The agent's address
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,
}

#[derive(Args, Debug, Clone)]
pub struct UpdateArgs {
    #[command(flatten)]
    pub creds: CredentialArgs,
    #[command(flatten)]
    pub config: ConfigFileArgs,
    /// Profile of the shared credentials file to write
    #[arg(long, default_value = "default")]
    pub profile: String,
    /// Write once and exit, instead of refreshing continuously
    #[arg(long)]
    pub once: bool,
}

/// Parses `90`, `90s`, `15m`, `2h` into a duration.
pub fn parse_duration(value: &str) -> Result<std::time::Duration, String> {
    let value = value.trim();
    let (number, unit) = match value.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => value.split_at(i),
        None => (value, "s"),
    };
    let n: u64 = number
        .parse()
        .map_err(|_| format!("'{value}' is not a duration like 900s, 20m or 1h"))?;
    let seconds = match unit {
        "s" => n,
        "m" => n.saturating_mul(60),
        "h" => n.saturating_mul(3600),
        _ => return Err(format!("'{value}': the unit must be s, m or h")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
pub enum SignFormat {
    Json,
    Text,
    Bin,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
#[value(rename_all = "UPPER")]
pub enum SignDigest {
    Sha256,
    Sha384,
    Sha512,
}

#[derive(Args, Debug, Clone)]
pub struct SignStringArgs {
    #[command(flatten)]
    pub identity: IdentityArgs,
    /// Output format
    #[arg(long, value_enum, default_value = "json")]
    pub format: SignFormat,
    /// Digest applied before signing
    #[arg(long, value_enum, default_value = "SHA256")]
    pub digest: SignDigest,
    /// Print debug output on stderr
    #[arg(long)]
    pub debug: bool,
}

/// `read-certificate-data`: the certificate flags of the identity, no key.
#[derive(Args, Debug, Clone)]
pub struct ReadCertificateArgs {
    #[command(flatten)]
    pub cert: CertificateArgs,
    #[command(flatten)]
    pub system_store: SystemStoreArgs,
    /// Print debug output on stderr
    #[arg(long)]
    pub debug: bool,
}

/// Printed after `doctor --help`.
pub const DOCTOR_EXIT_CODES: &str = "Exit codes:\n  0  nothing failed (warnings allowed)\n  1  only runtime checks failed (endpoint, clock, CreateSession, agent)\n  2  a configuration check failed (flags, certificate, key, chain, ~/.aws/config)";

/// `doctor`: the flags of `credential-process`, plus what to look at and how to print.
#[derive(Args, Debug, Clone)]
pub struct DoctorArgs {
    #[command(flatten)]
    pub creds: CredentialArgs,
    #[command(flatten)]
    pub config: ConfigFileArgs,
    /// The agent's socket to ask (default: $XDG_RUNTIME_DIR/rolesanywhere-agent/agent.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// The port the agent's IMDS endpoint should be on, on 127.0.0.1 (default: the port of AWS_EC2_METADATA_SERVICE_ENDPOINT, else 9911)
    #[arg(long)]
    pub port: Option<u16>,
    /// Do not call CreateSession (every other check still runs)
    #[arg(long)]
    pub no_session: bool,
    /// Print the checks as a JSON array of {check, status, saw, fix}
    #[arg(long)]
    pub json: bool,
}

/// `status`: which agent to ask and how to print its answer.
#[derive(Args, Debug, Clone)]
pub struct StatusArgs {
    /// The agent's socket (default: $XDG_RUNTIME_DIR/rolesanywhere-agent/agent.sock)
    #[arg(long, value_name = "PATH")]
    pub socket: Option<std::path::PathBuf>,
    /// Print the agent's answer as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DemoArgs {
    /// Keep the generated files in this directory instead of a temporary one
    #[arg(long, value_name = "DIR")]
    pub keep_in: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_take_seconds_minutes_and_hours() {
        assert_eq!(parse_duration("90").unwrap().as_secs(), 90);
        assert_eq!(parse_duration("15m").unwrap().as_secs(), 900);
        assert_eq!(parse_duration("2h").unwrap().as_secs(), 7200);
        assert!(parse_duration("1d").is_err());
        assert!(parse_duration("m").is_err());
    }

    /// Every flag of every (sub)command says what it is for in `--help`.
    #[test]
    fn every_flag_has_help_text() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" && arg.get_help().is_none() {
                    missing.push(format!("{path} --{}", arg.get_long().unwrap_or(id)));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let mut missing = Vec::new();
        walk(&<Cli as clap::CommandFactory>::command(), "", &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
    }

    /// The commands that load a key take the same identity flags, from one struct.
    #[test]
    fn the_identity_flags_are_the_same_everywhere() {
        let cli = <Cli as clap::CommandFactory>::command();
        let longs = |name: &str| -> Vec<String> {
            let sub = cli.find_subcommand(name).unwrap();
            let mut v: Vec<String> = IdentityArgs::augment_args(clap::Command::new("x"))
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .filter(|l| sub.get_arguments().any(|a| a.get_long() == Some(l)))
                .collect();
            v.sort();
            v
        };
        let all = longs("credential-process");
        assert_eq!(all.len(), 10, "{all:?}");
        for name in ["serve", "update", "sign-string", "doctor"] {
            assert_eq!(longs(name), all, "{name}");
        }
    }

    /// `read-certificate-data` takes the certificate part of the identity flags and
    /// `--system-store-name`, from the same declarations as the credential commands, and
    /// nothing else (the Go helper's surface).
    #[test]
    fn read_certificate_data_shares_the_certificate_flags() {
        let cli = <Cli as clap::CommandFactory>::command();
        let longs = |name: &str| -> Vec<String> {
            let mut v: Vec<String> = cli
                .find_subcommand(name)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_long().map(str::to_string))
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            longs("read-certificate-data"),
            [
                "cert-selector",
                "certificate",
                "debug",
                "pkcs11-lib",
                "system-store-name"
            ]
        );
        for name in ["credential-process", "serve", "update"] {
            assert!(
                longs(name).contains(&"system-store-name".to_string()),
                "{name}"
            );
        }
        assert!(!longs("sign-string").contains(&"system-store-name".to_string()));
        for args in [
            vec!["x", "read-certificate-data"],
            vec!["x", "credential-process"],
        ] {
            let parsed = Cli::try_parse_from(args).unwrap();
            let store = match parsed.command {
                Command::ReadCertificateData(a) => a.system_store,
                Command::CredentialProcess(a) => a.creds.system_store,
                _ => unreachable!(),
            };
            assert_eq!(store.system_store_name, "MY");
        }
        assert_eq!(
            SystemStoreArgs::default().system_store_name,
            "MY",
            "built in code as parsed"
        );
        let parsed = Cli::try_parse_from([
            "x",
            "read-certificate-data",
            "--certificate",
            "c.pem",
            "--pkcs11-lib",
            "/lib.so",
        ])
        .unwrap();
        let Command::ReadCertificateData(args) = parsed.command else {
            panic!("parsed another command");
        };
        assert_eq!(args.cert.certificate.as_deref(), Some("c.pem"));
        assert_eq!(args.cert.pkcs11_lib.as_deref(), Some("/lib.so"));
        // Its own words for --certificate: no PKCS#12 there.
        let help = cli
            .find_subcommand("read-certificate-data")
            .unwrap()
            .get_arguments()
            .find(|a| a.get_long() == Some("certificate"))
            .and_then(|a| a.get_help())
            .unwrap()
            .to_string();
        assert!(help.contains("lists the token's certificates"), "{help}");
    }

    #[test]
    fn password_flags_never_show_in_debug_output() {
        let cli = Cli::try_parse_from([
            "rolesanywhere-agent",
            "credential-process",
            "--pkcs8-password",
            "hunter2-pkcs8",
            "--tpm-key-password",
            "hunter2-tpm",
        ])
        .unwrap();
        let text = format!("{cli:?}");
        assert!(!text.contains("hunter2"), "{text}");
        let Command::CredentialProcess(args) = cli.command else {
            panic!("parsed another command");
        };
        use secrecy::ExposeSecret as _;
        assert_eq!(
            args.creds.identity.pkcs8_password.unwrap().expose_secret(),
            "hunter2-pkcs8"
        );
    }
}
