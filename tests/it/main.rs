//! The integration tests, in one binary so AWS-LC and the crate are linked once: each module
//! is one area (the old `tests/<name>.rs`), `support` holds the shared helpers (the built
//! binary, the test PKI, `emulate`, raw HTTP, SoftHSM, certificate rotation).
//!
//! A new test file `tests/it/<name>.rs` is added with one `mod <name>;` line below; run one
//! area with `cargo test --test it <name>::`.

// Test code: a panic is a failed test, so unwrapping, expecting and indexing are the point.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod agent;
mod botocore;
mod certs_example;
mod config_file;
mod credential_process;
mod credentials_file;
mod demo;
mod doctor;
mod emulate_vectors;
mod hostile_http;
mod hostile_local;
mod keyring;
mod metrics;
mod mldsa;
mod pkcs11;
mod pki_roundtrip;
mod rotation;
mod server_endpoints;
mod session_limits;
mod sign_and_read;
mod signing_vectors;
mod soak;
mod sources;
mod status;
mod tls_and_proxy;
mod tpm;
