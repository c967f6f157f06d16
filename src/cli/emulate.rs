//! The `emulate` subcommand's flags; [`crate::commands`] runs it with [`crate::emulate`].

use std::path::PathBuf;

use time::OffsetDateTime;

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

/// `--answer-expiration`: an RFC 3339 timestamp.
fn parse_timestamp(value: &str) -> Result<OffsetDateTime, String> {
    OffsetDateTime::parse(value, &time::format_description::well_known::Rfc3339)
        .map_err(|_| format!("'{value}' is not an RFC 3339 timestamp (2099-01-01T00:00:00Z)"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::{CommandFactory as _, Parser};

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta";
    const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p";
    const ROLE: &str = "arn:aws:iam::111122223333:role/r";

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        args: EmulateArgs,
    }

    #[test]
    fn flags_parse_with_their_defaults_and_constraints() {
        Cli::command().debug_assert();
        let base = [
            "x",
            "--trust-anchor-certificate",
            "ca.pem",
            "--trust-anchor-arn",
            TA,
            "--profile-arn",
            PROFILE,
        ];
        let cli = Cli::try_parse_from(base).unwrap();
        assert_eq!(cli.args.bind, "127.0.0.1");
        assert_eq!(
            (
                cli.args.port,
                cli.args.max_duration,
                cli.args.fail_first,
                cli.args.fail_status
            ),
            (0, 43_200, 0, 503)
        );
        assert!(cli.args.role_arns.is_empty() && !cli.args.generate_tls);
        let cli = Cli::try_parse_from(base.iter().copied().chain([
            "--role-arn",
            ROLE,
            "--role-arn",
            ROLE,
        ]))
        .unwrap();
        assert_eq!(cli.args.role_arns.len(), 2);
        assert!(
            Cli::try_parse_from(base.iter().copied().chain(["--tls-certificate", "c.pem"]))
                .is_err()
        );
        assert!(
            Cli::try_parse_from(base.iter().copied().chain(["--tls-ca-out", "ca.pem"])).is_err()
        );
        assert!(
            Cli::try_parse_from(base.iter().copied().chain([
                "--generate-tls",
                "--tls-certificate",
                "c",
                "--tls-key",
                "k"
            ]))
            .is_err()
        );
        assert!(Cli::try_parse_from(["x", "--profile-arn", PROFILE]).is_err());
    }
}
