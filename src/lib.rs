//! rolesanywhere-agent: AWS IAM Roles Anywhere credentials for workloads outside AWS.
//!
//! How the pieces fit, top-down:
//! - [`cli`] parses the Go helper's command line; [`config`] validates it into typed settings
//!   before any key is touched or any socket opened.
//! - [`identity`] loads the certificate, chain and private key, and checks them pre-flight;
//!   the key sits behind [`signer::Signer`], the one interface every key store implements.
//! - [`signing`] holds the pure SigV4-X509 rules; [`session`] is the CreateSession client that
//!   signs and sends the request, retrying what can be retried.
//! - [`endpoint`] chooses the CreateSession endpoint as the AWS SDKs do (flags, variables,
//!   `~/.aws/config`, partition, FIPS, dual-stack).
//! - [`credentials`] is the secret-bearing result and its output formats.
//! - [`commands`] runs each subcommand (`demo` wires them together offline); [`emulate`] is
//!   a local CreateSession service that verifies requests like the real one; [`pki`]
//!   makes throwaway certificate authorities for the demo and the tests.
//! - [`metrics`] counts what the agent does, for `GET /metrics`; it depends on nothing else
//!   here, so every layer can record into it.
//!
//! A module names only modules of lower layers (commands > cli, error > server > agent,
//! emulate > session > identity, disk cache > signer, pki > leaf helpers such as [`chain`]);
//! `layers.rs` lists the layers and a unit test checks every `crate::` path against them.

pub mod agent;
pub mod chain;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod credentials;
pub mod credentials_file;
pub mod der;
pub mod disk_cache;
pub mod emulate;
pub mod endpoint;
pub mod error;
pub mod files;
pub mod identity;
pub mod metrics;
pub mod percent;
pub mod pki;
pub mod private_dir;
pub mod server;
pub mod session;
pub mod signer;
pub mod signing;
pub mod timefmt;

#[cfg(test)]
mod layers;
