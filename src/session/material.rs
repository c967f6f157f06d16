//! What a cache hit knows about the private key and intermediates without opening a key
//! store: their sources and, for material held in a file, a variable or standard input, a
//! digest of its bytes. It goes into the cache key, so a key that is missing, unset,
//! replaced (a certificate given as the key, a rewritten file) or named differently is a
//! miss, and the full path reports the problem exactly as a cold run does.
//!
//! Nothing here parses, decrypts or unlocks anything: a hit never asks for a password, a
//! PIN, a TPM or a keyring. So a wrong password or PIN is the one mistake a hit cannot see.

use crate::identity::IdentitySpec;
use crate::identity::source::{self, Source};

/// Separates this digest from any other SHA-256 of the same bytes.
const DOMAIN: &[u8] = b"rolesanywhere-agent key material v1\0";

/// The hex digest naming `--private-key` and `--intermediates` as they are now, or `None`
/// when one cannot be read cheaply (missing file, unset variable, not a regular file): then
/// no cached answer is used and loading the identity reports the problem.
pub fn fingerprint(spec: &IdentitySpec) -> Option<String> {
    let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
    let mut part = |bytes: &[u8]| {
        hash.update(&(bytes.len() as u64).to_be_bytes());
        hash.update(bytes);
    };
    part(DOMAIN);
    for value in [&spec.private_key, &spec.intermediates] {
        match value.as_deref() {
            None => part(b"-none-"),
            // Security: only the described form of a key store reference goes in (a PKCS#11
            // URI without its pin-value), since a hash of a short PIN could be searched.
            Some(v) if in_key_store(v) => {
                part(b"store");
                part(source::describe(v).as_bytes());
            }
            Some(v) => {
                part(b"bytes");
                part(v.as_bytes());
                let bytes = read(v)?;
                part(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes).as_ref());
            }
        }
    }
    Some(hex::encode(hash.finish()))
}

/// A key kept where reading it needs the store itself (PKCS#11, the keyring, a TPM handle).
fn in_key_store(value: &str) -> bool {
    let pkcs11 = value
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"));
    #[cfg(feature = "keyring")]
    if crate::identity::keyring::is_reference(value) {
        return true;
    }
    #[cfg(feature = "tpm")]
    if crate::identity::tpm::is_handle(value) {
        return true;
    }
    pkcs11
}

/// The bytes of a file (a regular one, of at most the identity cap: never a FIFO or a device,
/// which would hang a cache hit), a variable or standard input.
fn read(value: &str) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    Source::parse(value).read().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(key: &str) -> IdentitySpec {
        IdentitySpec {
            certificate: Some("c.pem".into()),
            private_key: Some(key.into()),
            ..IdentitySpec::default()
        }
    }

    #[test]
    fn the_fingerprint_follows_the_key_bytes_and_source() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n").unwrap();
        let path = key.display().to_string();
        let first = fingerprint(&args(&path)).unwrap();
        assert_eq!(fingerprint(&args(&path)).as_ref(), Some(&first));
        // Rewritten in place: another fingerprint.
        std::fs::write(&key, "-----BEGIN CERTIFICATE-----\nAAAA\n").unwrap();
        assert_ne!(fingerprint(&args(&path)).unwrap(), first);
        // The same bytes under another name: another fingerprint.
        let copy = dir.path().join("copy.pem");
        std::fs::copy(&key, &copy).unwrap();
        assert_ne!(
            fingerprint(&args(&copy.display().to_string())),
            fingerprint(&args(&path))
        );
        // Missing files, directories and unset variables cannot be fingerprinted.
        std::fs::remove_file(&key).unwrap();
        assert_eq!(fingerprint(&args(&path)), None);
        assert_eq!(fingerprint(&args(&dir.path().display().to_string())), None);
        assert_eq!(fingerprint(&args("env:RA_TEST_MATERIAL_UNSET")), None);
    }

    #[test]
    fn key_store_references_are_named_without_their_pin() {
        let a = fingerprint(&args("pkcs11:token=t;object=k?pin-value=1234")).unwrap();
        let b = fingerprint(&args("pkcs11:token=t;object=k?pin-value=9999")).unwrap();
        // The PIN is not part of it (so it cannot be searched from the cache key).
        assert_eq!(a, b);
        let c = fingerprint(&args("pkcs11:token=t;object=other")).unwrap();
        assert_ne!(a, c);
    }
}
