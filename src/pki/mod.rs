//! Throwaway certificate authorities for the `demo` subcommand and the tests.
//!
//! **Test and demo PKI only — never use anything made here for trust.** Every key is generated
//! on the spot, CA keys exist only in memory, nothing is revoked or audited, and the encrypted
//! files use the fixed, public password [`TEST_PASSWORD`] or whatever the caller passes in.
//!
//! What it makes:
//! - [`GeneratedKey`]: a fresh private key of a [`KeyType`], held as PKCS#8 DER in
//!   [`zeroize::Zeroizing`] memory, and exportable as PKCS#8, PKCS#1 (RSA), SEC1 (EC) and
//!   encrypted PKCS#8 (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, random salt and IV).
//! - [`Ca`]: a root or intermediate certificate authority that issues intermediates and
//!   end-entity ("leaf") certificates. Leaves are what IAM Roles Anywhere expects of a workload
//!   certificate: `basicConstraints` CA=false, `keyUsage` digitalSignature, `extendedKeyUsage`
//!   clientAuth, and a random positive 16-byte serial unless one is given.
//! - [`pkcs12`]: a PKCS#12 file in the shape OpenSSL 3 writes by default (PBES2 AES-256-CBC with
//!   PBKDF2-HMAC-SHA256 for both the key and the certificates, HMAC-SHA256 MAC, 2048 iterations).
//! - [`write_demo_pki`] and [`write_test_matrix`]: ready-made sets of files on disk.
//!
//! Signature algorithms follow the issuer's key (rcgen picks them): an RSA issuer signs with
//! `sha256WithRSAEncryption`, a P-256 issuer with `ecdsa-with-SHA256`, and a P-384 issuer with
//! `ecdsa-with-SHA384`, and an ML-DSA issuer with `id-ml-dsa-44/65/87` (pure ML-DSA).
//! Prefer RSA or P-256 issuers when SHA-256 signatures matter (they do for
//! IAM Roles Anywhere); the ready-made sets only use those.
//!
//! Files that hold a private key are written with mode 0600 (on Unix); a file already at that
//! path is removed first, so it is never written through a symlink or with looser permissions.

mod ca;
mod files;
mod key;
mod pkcs12;

pub use ca::{Ca, Issued, LeafOptions, Validity};
pub use files::{CertKeyFiles, DemoPki, LeafFiles, TestMatrix, write_demo_pki, write_test_matrix};
pub use key::{GeneratedKey, KeyType, MlDsaKeyForm, ml_dsa_pkcs8};
pub use pkcs12::pkcs12;

use std::path::PathBuf;

/// The password of every encrypted file that [`write_test_matrix`] writes.
pub const TEST_PASSWORD: &str = "test-password";

/// PBKDF2 iteration count for encrypted PKCS#8 and PKCS#12 files: OpenSSL 3's default.
///
/// Low on purpose: these files protect throwaway keys, and tests decrypt them many times.
pub const PBKDF2_ITERATIONS: u32 = 2048;

/// Why making or writing a throwaway PKI failed. Messages never contain key material.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen refused to generate a key or a certificate.
    #[error("certificate or key generation failed: {0}")]
    Generate(#[from] rcgen::Error),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// Encoding or decoding a key or certificate structure failed.
    #[error("cannot encode {what}: {detail}")]
    Encoding {
        /// What was being encoded.
        what: &'static str,
        /// The underlying error, as text.
        detail: String,
    },
    /// The operation needs another kind of key (e.g. PKCS#1 of an EC key).
    #[error("{operation} is not available for a {key_type} key")]
    WrongKeyType {
        /// The operation that was asked for.
        operation: &'static str,
        /// The key it was asked of.
        key_type: KeyType,
    },
    /// A caller-supplied parameter is unusable.
    #[error("invalid parameter: {0}")]
    Invalid(String),
    /// Writing a file (or creating a directory) failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl PkiError {
    fn encoding(what: &'static str, detail: impl std::fmt::Display) -> Self {
        PkiError::Encoding {
            what,
            detail: detail.to_string(),
        }
    }
}

/// Fills `buf` from the system's secure random number generator.
fn random_fill(buf: &mut [u8]) -> Result<(), PkiError> {
    aws_lc_rs::rand::fill(buf).map_err(|_| PkiError::Random)
}

/// PEM-encodes `der` under `label` with LF line endings.
fn pem_encode(label: &str, der: &[u8]) -> Result<String, PkiError> {
    pkcs8::der::pem::encode_string(label, pkcs8::LineEnding::LF, der)
        .map_err(|e| PkiError::encoding("PEM", e))
}
