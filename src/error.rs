//! The top-level error: every failure a command can end with, its exit code and its hint.
//!
//! Each boundary has its own typed error ([`crate::identity::IdentityError`],
//! [`crate::config::ConfigError`], [`crate::session::SessionError`], ...); this enum only
//! gathers them so `main` can print the chain once and pick the exit code.

use std::fmt;

use crate::chain::Chain;

/// Exit codes, documented in `--help` and the README.
pub mod exit {
    /// Credentials (or the requested output) were produced.
    pub const SUCCESS: i32 = 0;
    /// A runtime failure: the service refused, the network failed, a signature failed.
    pub const RUNTIME: i32 = 1;
    /// A usage or configuration error: bad flag, unreadable or invalid file, mismatched key.
    /// Nothing was sent to the service.
    pub const USAGE: i32 = 2;
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error(transparent)]
    Endpoint(#[from] crate::endpoint::EndpointError),
    #[error(transparent)]
    Identity(#[from] crate::identity::IdentityError),
    #[error(transparent)]
    Session(#[from] crate::session::SessionError),
    #[error(transparent)]
    Emulate(#[from] crate::emulate::EmulateError),
    #[error(transparent)]
    Sign(#[from] crate::signer::SignError),
    #[error(transparent)]
    Server(#[from] crate::server::ServerError),
    #[error(transparent)]
    CredentialsFile(#[from] crate::credentials_file::CredentialsFileError),
    /// `doctor` printed its checks and some failed: the report says which and how to fix them.
    #[error("{failed} doctor check(s) failed (see the lines marked FAIL above)")]
    ChecksFailed { failed: usize, configuration: bool },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Identity(e) if e.is_runtime() => exit::RUNTIME,
            Error::Config(_)
            | Error::Endpoint(_)
            | Error::Identity(_)
            | Error::Emulate(_)
            | Error::Server(_) => exit::USAGE,
            Error::CredentialsFile(e) if e.is_configuration() => exit::USAGE,
            Error::CredentialsFile(_) => exit::RUNTIME,
            Error::Session(e) if e.is_configuration() => exit::USAGE,
            Error::Session(_) | Error::Sign(_) | Error::Io { .. } => exit::RUNTIME,
            Error::ChecksFailed {
                configuration: true,
                ..
            } => exit::USAGE,
            Error::ChecksFailed { .. } => exit::RUNTIME,
        }
    }

    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        match self {
            Error::Config(e) => e.hint(),
            Error::Endpoint(e) => e.hint(),
            Error::Identity(e) => e.hint(),
            Error::Session(e) => e.hint(),
            Error::Emulate(e) => e.hint(),
            Error::Server(e) => e.hint(),
            Error::CredentialsFile(e) => e.hint(),
            Error::Sign(_) | Error::Io { .. } | Error::ChecksFailed { .. } => None,
        }
    }

    /// An I/O failure on something that is not user input (stdout, a temp dir).
    pub fn io(what: impl Into<String>, source: std::io::Error) -> Self {
        Error::Io {
            what: what.into(),
            source,
        }
    }
}

/// Renders an error the way `main` prints it: the message, each distinct cause, the hint.
pub struct Report<'a>(pub &'a Error);

impl fmt::Display for Report<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error: {}", Chain::new(self.0, self.0.hint()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "tpm")]
    #[test]
    fn a_broken_tpm_conversation_is_a_runtime_failure() {
        use crate::identity::IdentityError;
        use crate::identity::tpm::TpmError;
        let transport = Error::Identity(IdentityError::Tpm(TpmError::Transport {
            tcti: "swtpm:port=2321".into(),
            detail: "connection reset".into(),
        }));
        assert_eq!(transport.exit_code(), exit::RUNTIME);
        let handle = Error::Identity(IdentityError::Tpm(TpmError::BadHandle {
            value: "handle:x".into(),
        }));
        assert_eq!(handle.exit_code(), exit::USAGE);
    }
}
