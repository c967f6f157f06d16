//! The key group: the private key loads from its store (file, PKCS#12, PKCS#11, TPM, keyring)
//! and belongs to the certificate.

use super::certificate::Loaded;
use super::{Kind, Report};
use crate::chain::Chain;
use crate::identity::{IdentityError, IdentitySpec};

const KIND: Kind = Kind::Config;

/// Checks the key; true when it loaded and matches.
pub(super) fn check(spec: &IdentitySpec, loaded: &Loaded, report: &mut Report) -> bool {
    let identity = match (&loaded.identity, &loaded.error, &loaded.certificate) {
        (Some(identity), _, _) => identity,
        (None, Some(e), Some(_)) => {
            report.fail_maybe("key.load", KIND, Chain::new(e, None).to_string(), e.hint());
            report.skip("key.matches", KIND, "needs the key to load");
            return false;
        }
        _ => {
            report.skip("key.load", KIND, "needs the certificate");
            report.skip("key.matches", KIND, "needs the key to load");
            return false;
        }
    };
    let signer = &identity.signer;
    report.ok(
        "key.load",
        KIND,
        format!("{} key from {}", signer.key_kind(), signer.source()),
    );
    // The pre-flight check of every command, asked at the certificate's first valid instant
    // so that only the key's type and match are judged here (validity has its own line).
    let cert_path = spec.certificate.as_deref().unwrap_or_default();
    match identity.check(cert_path, identity.certificate.not_before()) {
        Ok(()) => {
            report.ok(
                "key.matches",
                KIND,
                "the private key belongs to the certificate's public key",
            );
            true
        }
        Err(
            e @ (IdentityError::KeyMismatch { .. }
            | IdentityError::UnsupportedCertificateKey { .. }),
        ) => {
            report.fail_maybe("key.matches", KIND, e.to_string(), e.hint());
            false
        }
        Err(e) => {
            report.fail_maybe(
                "key.matches",
                KIND,
                Chain::new(&e, None).to_string(),
                e.hint(),
            );
            false
        }
    }
}
