//! Configuration errors of `emulate`. Everything that can go wrong before the first request
//! is served ends up here; each message names the flag and the file or value at fault, and
//! `hint` says what to do about it. Request-time problems are never errors of this kind:
//! they are answered with the service's error shape (see `verify::Rejection`).

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

/// Why `emulate` could not start. All of these are configuration errors (exit code 2).
#[derive(Debug, thiserror::Error)]
pub enum EmulateError {
    #[error("cannot read {flag} file {path}: {source}")]
    Read {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{flag} file {path} holds no certificate (expected PEM 'CERTIFICATE' blocks)")]
    NoCertificate { flag: &'static str, path: PathBuf },
    #[error("{flag} file {path}: certificate #{index} cannot be used: {reason}")]
    BadCertificate {
        flag: &'static str,
        path: PathBuf,
        index: usize,
        reason: String,
    },
    #[error(
        "{flag} file {path}: certificate #{index} ({subject}) is not a CA certificate (basicConstraints CA=true is missing)"
    )]
    NotCa {
        flag: &'static str,
        path: PathBuf,
        index: usize,
        subject: String,
    },
    #[error("{flag} {value} is not a valid {what} ARN: {reason}")]
    BadArn {
        flag: &'static str,
        value: String,
        what: &'static str,
        reason: String,
    },
    #[error(
        "{flag} {value} is not in the partition, region and account of --trust-anchor-arn {anchor}"
    )]
    ArnMismatch {
        flag: &'static str,
        value: String,
        anchor: String,
    },
    #[error("--max-duration {value} is out of range: it must be between 900 and 43200 seconds")]
    MaxDuration { value: u32 },
    #[error("--fail-status {value} is not an HTTP error status (400 to 599)")]
    FailStatus { value: u16 },
    #[error("--bind {value:?} is not an IP address")]
    BadBind { value: String },
    #[error("--bind {addr} is not a loopback address: emulate only listens on loopback")]
    NotLoopback { addr: IpAddr },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("{flag} file {path}: {reason}")]
    TlsFile {
        flag: &'static str,
        path: PathBuf,
        reason: String,
    },
    #[error("cannot set up TLS: {reason}")]
    Tls { reason: String },
    #[error("cannot write {flag} file {path}: {source}")]
    Write {
        flag: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl EmulateError {
    /// A suggestion for the user, when there is a useful one.
    pub fn hint(&self) -> Option<String> {
        let hint = match self {
            EmulateError::Read { source, .. } if source.kind() == io::ErrorKind::NotFound => {
                "check the path; relative paths are taken from the current directory".to_string()
            }
            EmulateError::Read { source, .. } if source.kind() == io::ErrorKind::PermissionDenied => {
                "the file is not readable by this user".to_string()
            }
            EmulateError::Read { .. } => return None,
            EmulateError::NoCertificate { .. } => {
                "pass the CA certificate(s) of the trust anchor as PEM ('-----BEGIN CERTIFICATE-----')".to_string()
            }
            EmulateError::BadCertificate { .. } => {
                "check the file with `openssl x509 -in FILE -noout -text`".to_string()
            }
            EmulateError::NotCa { .. } => {
                "a trust anchor is a CA certificate; pass the CA that issued your certificate, not the certificate itself"
                    .to_string()
            }
            EmulateError::BadArn { what, .. } => match *what {
                "role" => "expected arn:aws:iam::ACCOUNT:role/NAME".to_string(),
                "profile" => "expected arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID".to_string(),
                _ => "expected arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID".to_string(),
            },
            EmulateError::ArnMismatch { .. } => {
                "a profile and its roles live in the trust anchor's account (and the profile in its region)".to_string()
            }
            EmulateError::MaxDuration { .. } => "omit --max-duration to use the service maximum, 43200".to_string(),
            EmulateError::FailStatus { .. } => {
                "use 429 for throttling, 500 or 503 for server errors, 403 for access denied".to_string()
            }
            EmulateError::BadBind { .. } | EmulateError::NotLoopback { .. } => {
                "use --bind 127.0.0.1 (the default) or --bind ::1".to_string()
            }
            EmulateError::Listen { source, .. } if source.kind() == io::ErrorKind::AddrInUse => {
                "the port is taken; pick another with --port, or --port 0 for any free one".to_string()
            }
            EmulateError::Listen { .. } => return None,
            EmulateError::TlsFile { .. } => {
                "--tls-certificate takes a PEM certificate chain, --tls-key a PEM private key (PKCS#8, PKCS#1 or SEC1)"
                    .to_string()
            }
            EmulateError::Tls { .. } => "try --generate-tls, or plain HTTP on loopback (the default)".to_string(),
            EmulateError::Write { .. } => "check that the directory exists and is writable".to_string(),
        };
        Some(hint)
    }

    /// The process exit code for this error: configuration errors exit with 2.
    pub fn exit_code(&self) -> i32 {
        2
    }
}
