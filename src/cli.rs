//! The command line, flag for flag the Go `aws_signing_helper`'s, plus our own subcommands.
//! These are raw values; [`crate::config`] and [`crate::identity`] validate them.

use clap::{Args, Parser, Subcommand, ValueEnum};

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
    CredentialProcess(CredentialArgs),
    /// Sign standard input with the private key (hex, JSON string or raw bytes)
    #[command(after_help = EXIT_CODES)]
    SignString(SignStringArgs),
    /// Print the certificate's key type, DER and serial as JSON
    #[command(after_help = EXIT_CODES)]
    ReadCertificateData(ReadCertificateArgs),
    /// Print the version
    Version,
    /// Run a local CreateSession endpoint that verifies requests like the service
    #[command(after_help = EXIT_CODES)]
    Emulate(crate::emulate::EmulateArgs),
    /// Run the whole flow offline: throwaway CA, local endpoint, credentials
    Demo(DemoArgs),
}

/// The flags shared by every command that obtains credentials.
#[derive(Args, Debug, Clone, Default)]
pub struct CredentialArgs {
    /// Certificate file (PEM, DER, or a PKCS#12 bundle holding the key too)
    #[arg(long, value_name = "PATH")]
    pub certificate: Option<String>,
    /// Private key file (PKCS#8, PKCS#1, SEC1 or encrypted PKCS#8)
    #[arg(long, value_name = "PATH")]
    pub private_key: Option<String>,
    /// PEM bundle of intermediate CA certificates, sent as X-Amz-X509-Chain
    #[arg(long, value_name = "PATH")]
    pub intermediates: Option<String>,
    /// Trust anchor to authenticate against
    #[arg(long, value_name = "ARN")]
    pub trust_anchor_arn: Option<String>,
    /// Profile to take policies from
    #[arg(long, value_name = "ARN")]
    pub profile_arn: Option<String>,
    /// Role to assume
    #[arg(long, value_name = "ARN")]
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
    /// CreateSession endpoint (default: https://rolesanywhere.REGION.amazonaws.com)
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
    /// Certificate selector for certificate stores and PKCS#11 (Key=...,Value=... or file://sel.json)
    #[arg(long, value_name = "SELECTOR")]
    pub cert_selector: Option<String>,
    /// Windows system store name (ignored elsewhere, as in the Go helper)
    #[arg(long, value_name = "NAME", default_value = "MY")]
    pub system_store_name: String,
    /// Among matching certificates, use the one that expires last
    #[arg(long)]
    pub use_latest_expiring_certificate: bool,
    /// PKCS#11 module
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<String>,
    /// Reuse the PKCS#11 user PIN for context-specific login
    #[arg(long)]
    pub reuse_pin: bool,
    /// Password of a TPM key
    #[arg(long, value_name = "PASSWORD")]
    pub tpm_key_password: Option<String>,
    /// The TPM key has no password
    #[arg(long)]
    pub no_tpm_key_password: bool,
    /// Password of an encrypted PKCS#8 key or PKCS#12 file (else ROLESANYWHERE_PKCS8_PASSWORD, else a prompt on a terminal)
    #[arg(long, value_name = "PASSWORD")]
    pub pkcs8_password: Option<String>,
    /// Extra PEM bundle of CAs to trust for the endpoint (besides the system roots and AWS_CA_BUNDLE)
    #[arg(long, value_name = "PATH")]
    pub ca_bundle: Option<String>,
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
    /// Private key file
    #[arg(long, value_name = "PATH")]
    pub private_key: Option<String>,
    /// Certificate file (needed only for a PKCS#12 bundle)
    #[arg(long, value_name = "PATH")]
    pub certificate: Option<String>,
    /// Output format
    #[arg(long, value_enum, default_value = "json")]
    pub format: SignFormat,
    /// Digest applied before signing
    #[arg(long, value_enum, default_value = "SHA256")]
    pub digest: SignDigest,
    #[arg(long, value_name = "SELECTOR")]
    pub cert_selector: Option<String>,
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<String>,
    #[arg(long)]
    pub reuse_pin: bool,
    #[arg(long, value_name = "PASSWORD")]
    pub tpm_key_password: Option<String>,
    #[arg(long)]
    pub no_tpm_key_password: bool,
    #[arg(long, value_name = "PASSWORD")]
    pub pkcs8_password: Option<String>,
    #[arg(long)]
    pub debug: bool,
}

#[derive(Args, Debug, Clone)]
pub struct ReadCertificateArgs {
    /// Certificate file
    #[arg(long, value_name = "PATH")]
    pub certificate: Option<String>,
    #[arg(long, value_name = "SELECTOR")]
    pub cert_selector: Option<String>,
    #[arg(long, value_name = "NAME", default_value = "MY")]
    pub system_store_name: String,
    #[arg(long, value_name = "PATH")]
    pub pkcs11_lib: Option<String>,
    #[arg(long)]
    pub debug: bool,
}

#[derive(Args, Debug, Clone, Default)]
pub struct DemoArgs {
    /// Keep the generated files in this directory instead of a temporary one
    #[arg(long, value_name = "DIR")]
    pub keep_in: Option<std::path::PathBuf>,
}
