//! Certificates and private keys from file bytes: PEM (any labels, headers), DER
//! certificates, PKCS#8 (plain and encrypted), PKCS#1 RSA and SEC1 EC keys.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rolesanywhere_agent::identity::file::{FileKey, PasswordSource};
use rolesanywhere_agent::identity::{parse_certificates, pem};
use rolesanywhere_agent::signer::{self, Digest, Signer};
use secrecy::SecretString;

/// The password the encrypted seeds use.
struct Password;

impl PasswordSource for Password {
    fn password(&self) -> Option<SecretString> {
        Some(SecretString::from("fuzz"))
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = pem::parse(data);
    if let Ok(certs) = parse_certificates(data) {
        for c in certs {
            // What `read-certificate-data`, the pre-flight checks and the signer read.
            let _ = (c.subject(), c.issuer(), c.serial_decimal(), c.serial_hex());
            let _ = (c.not_before(), c.not_after(), c.is_ca(), c.key_kind());
            let _ = (c.public_key(), c.sha256_fingerprint(), c.to_base64());
        }
    }
    if let Ok(key) = FileKey::from_file_bytes(data, "fuzz input", &Password) {
        // A key that loads must sign, and its own public key must verify what it signed.
        let message = b"fuzz";
        let signature = key.sign(message, Digest::Sha256);
        if let (Ok(signature), Some(public)) = (signature, key.public_key()) {
            assert!(
                signer::verify(key.key_kind(), &public, message, Digest::Sha256, &signature),
                "a loaded key made a signature its own public key does not verify"
            );
        }
    }
});
