//! Private keys read from files: PKCS#8 (plain or encrypted), PKCS#1 RSA and SEC1 EC, in
//! PEM or DER. RSA and P-256 sign with aws-lc-rs; P-384 (which must sign SHA-256, a pairing
//! aws-lc-rs does not offer) and P-256 with SHA-384/512 (for `sign-string`) with RustCrypto.

use std::fmt;

use aws_lc_rs::{rand::SystemRandom, rsa, signature as sig};
use pkcs8::{DecodePrivateKey, EncodePrivateKey};
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

use super::pem;
use crate::signer::{Digest, KeyKind, SignError, Signer};

/// Why a key file could not become a signer. Never carries key bytes.
#[derive(Debug, PartialEq, Eq)]
pub enum KeyProblem {
    /// The file holds a certificate, not a key.
    IsCertificate,
    /// No block or encoding we know.
    NotAKey(String),
    /// An encrypted key and no password was available.
    NeedsPassword,
    /// The password did not decrypt the key (or the cipher is not supported).
    WrongPassword,
    /// OpenSSL's old `Proc-Type: 4,ENCRYPTED` PEM encryption.
    LegacyEncrypted,
    /// A TPM key blob.
    Tpm,
    /// A key type we cannot sign with.
    Unsupported(String),
}

/// Supplies the password for an encrypted key, only when one is needed.
pub trait PasswordSource {
    fn password(&self) -> Option<SecretString>;
}

enum Inner {
    Rsa(rsa::KeyPair),
    P256 {
        fast: sig::EcdsaKeyPair,
        any_digest: p256::ecdsa::SigningKey,
    },
    P384(p384::ecdsa::SigningKey),
}

/// A private key held in memory, loaded from a file, a variable or standard input.
pub struct FileKey {
    inner: Inner,
    source: String,
}

// Security: the key material must never reach a log line or a panic message.
impl fmt::Debug for FileKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKey")
            .field("kind", &self.key_kind())
            .field("source", &self.source)
            .field("key", &"<redacted>")
            .finish()
    }
}

impl FileKey {
    /// Reads a key from the bytes of a key file. `source` names where they came from
    /// (`file PATH`, `variable NAME`) in messages.
    pub fn from_file_bytes(
        data: &[u8],
        source: &str,
        password: &dyn PasswordSource,
    ) -> Result<Self, KeyProblem> {
        if !pem::looks_like_pem(data) {
            // DER: only unencrypted PKCS#8 or PKCS#1/SEC1 are plausible.
            return Self::from_pkcs8(data, source)
                .or_else(|_| Self::from_pkcs1(data, source))
                .or_else(|_| Self::from_sec1(data, source))
                .map_err(|_| KeyProblem::NotAKey("neither PEM nor a DER private key".into()));
        }
        let blocks = pem::parse(data).map_err(|e| KeyProblem::NotAKey(e.to_string()))?;
        let mut saw_certificate = false;
        for block in &blocks {
            match block.label.as_str() {
                "PRIVATE KEY" => return Self::from_pkcs8(&block.der, source),
                "RSA PRIVATE KEY" | "EC PRIVATE KEY" if block.has_headers => {
                    return Err(KeyProblem::LegacyEncrypted);
                }
                "RSA PRIVATE KEY" => return Self::from_pkcs1(&block.der, source),
                "EC PRIVATE KEY" => return Self::from_sec1(&block.der, source),
                "ENCRYPTED PRIVATE KEY" => {
                    let der = decrypt_pkcs8(&block.der, password)?;
                    return Self::from_pkcs8(&der, source);
                }
                "TSS2 PRIVATE KEY" => return Err(KeyProblem::Tpm),
                "CERTIFICATE" | "TRUSTED CERTIFICATE" => saw_certificate = true,
                _ => {}
            }
        }
        if saw_certificate {
            return Err(KeyProblem::IsCertificate);
        }
        let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
        Err(KeyProblem::NotAKey(format!(
            "no private key block (found {})",
            labels.join(", ")
        )))
    }

    /// Reads an unencrypted PKCS#8 `PrivateKeyInfo`.
    pub fn from_pkcs8(der: &[u8], source: &str) -> Result<Self, KeyProblem> {
        let info = pkcs8::PrivateKeyInfoRef::try_from(der)
            .map_err(|_| KeyProblem::NotAKey("the PRIVATE KEY block is not PKCS#8".into()))?;
        let inner = match info.algorithm.oid.to_string().as_str() {
            "1.2.840.113549.1.1.1" => Inner::Rsa(
                rsa::KeyPair::from_pkcs8(der)
                    .map_err(|e| KeyProblem::Unsupported(format!("RSA key rejected: {e}")))?,
            ),
            "1.2.840.10045.2.1" => {
                let curve = info
                    .algorithm
                    .parameters_oid()
                    .map(|o| o.to_string())
                    .unwrap_or_default();
                match curve.as_str() {
                    "1.2.840.10045.3.1.7" => Inner::P256 {
                        fast: sig::EcdsaKeyPair::from_pkcs8(
                            &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                            der,
                        )
                        .map_err(|e| KeyProblem::Unsupported(format!("P-256 key rejected: {e}")))?,
                        any_digest: p256::ecdsa::SigningKey::from_pkcs8_der(der)
                            .map_err(|_| KeyProblem::Unsupported("P-256 key rejected".into()))?,
                    },
                    "1.3.132.0.34" => Inner::P384(
                        p384::ecdsa::SigningKey::from_pkcs8_der(der)
                            .map_err(|_| KeyProblem::Unsupported("P-384 key rejected".into()))?,
                    ),
                    other => {
                        return Err(KeyProblem::Unsupported(format!("EC key on curve {other}")));
                    }
                }
            }
            "1.3.101.112" => return Err(KeyProblem::Unsupported("Ed25519 key".into())),
            other => return Err(KeyProblem::Unsupported(format!("key algorithm {other}"))),
        };
        Ok(FileKey {
            inner,
            source: source.to_string(),
        })
    }

    fn from_pkcs1(der: &[u8], source: &str) -> Result<Self, KeyProblem> {
        let pair = rsa::KeyPair::from_der(der).map_err(|e| {
            KeyProblem::NotAKey(format!(
                "the RSA PRIVATE KEY block is not a usable PKCS#1 key ({e})"
            ))
        })?;
        Ok(FileKey {
            inner: Inner::Rsa(pair),
            source: source.to_string(),
        })
    }

    fn from_sec1(der: &[u8], source: &str) -> Result<Self, KeyProblem> {
        // Re-encode as PKCS#8 so that one constructor knows every key type.
        let pkcs8: Zeroizing<Vec<u8>> = if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
            to_pkcs8(k.to_pkcs8_der())?
        } else if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
            to_pkcs8(k.to_pkcs8_der())?
        } else {
            return Err(KeyProblem::NotAKey(
                "the EC PRIVATE KEY block is not a P-256 or P-384 SEC1 key".into(),
            ));
        };
        Self::from_pkcs8(&pkcs8, source)
    }
}

fn to_pkcs8(doc: pkcs8::Result<pkcs8::SecretDocument>) -> Result<Zeroizing<Vec<u8>>, KeyProblem> {
    let doc = doc.map_err(|_| KeyProblem::NotAKey("EC key could not be re-encoded".into()))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

fn decrypt_pkcs8(
    der: &[u8],
    password: &dyn PasswordSource,
) -> Result<Zeroizing<Vec<u8>>, KeyProblem> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der)
        .map_err(|_| KeyProblem::NotAKey("the ENCRYPTED PRIVATE KEY block is not PKCS#8".into()))?;
    let password = password.password().ok_or(KeyProblem::NeedsPassword)?;
    let doc = info
        .decrypt(password.expose_secret().as_bytes())
        .map_err(|_| KeyProblem::WrongPassword)?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

fn backend(source: &str, reason: impl fmt::Display) -> SignError {
    SignError::Backend {
        source_name: source.to_string(),
        reason: reason.to_string(),
    }
}

impl Signer for FileKey {
    fn key_kind(&self) -> KeyKind {
        match &self.inner {
            Inner::Rsa(k) => KeyKind::Rsa {
                bits: k.public_modulus_len() * 8,
            },
            Inner::P256 { .. } => KeyKind::EcP256,
            Inner::P384(_) => KeyKind::EcP384,
        }
    }

    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignError> {
        use p256::ecdsa::signature::hazmat::PrehashSigner;
        match &self.inner {
            Inner::Rsa(k) => {
                let padding: &'static dyn sig::RsaEncoding = match digest {
                    Digest::Sha256 => &sig::RSA_PKCS1_SHA256,
                    Digest::Sha384 => &sig::RSA_PKCS1_SHA384,
                    Digest::Sha512 => &sig::RSA_PKCS1_SHA512,
                };
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(padding, &SystemRandom::new(), message, &mut out)
                    .map_err(|e| backend(&self.source, e))?;
                Ok(out)
            }
            Inner::P256 { fast, .. } if digest == Digest::Sha256 => fast
                .sign(&SystemRandom::new(), message)
                .map(|s| s.as_ref().to_vec())
                .map_err(|e| backend(&self.source, e)),
            Inner::P256 { any_digest, .. } => {
                let s: p256::ecdsa::Signature = any_digest
                    .sign_prehash(&digest.hash(message))
                    .map_err(|e| backend(&self.source, e))?;
                Ok(s.to_der().as_bytes().to_vec())
            }
            Inner::P384(k) => {
                let s: p384::ecdsa::Signature = k
                    .sign_prehash(&digest.hash(message))
                    .map_err(|e| backend(&self.source, e))?;
                Ok(s.to_der().as_bytes().to_vec())
            }
        }
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        use aws_lc_rs::signature::KeyPair as _;
        Some(match &self.inner {
            Inner::Rsa(k) => k.public_key().as_ref().to_vec(),
            Inner::P256 { fast, .. } => fast.public_key().as_ref().to_vec(),
            Inner::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
        })
    }

    fn source(&self) -> String {
        self.source.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct NoPassword;
    impl PasswordSource for NoPassword {
        fn password(&self) -> Option<SecretString> {
            None
        }
    }

    fn load(name: &str) -> FileKey {
        let data = std::fs::read(format!("tests/data/vectors/pki/{name}.key")).unwrap();
        FileKey::from_file_bytes(&data, name, &NoPassword).unwrap()
    }

    #[test]
    fn loads_every_vector_key_and_verifies_its_own_signatures() {
        for (name, kind) in [
            ("rsa-leaf", KeyKind::Rsa { bits: 2048 }),
            ("p256-leaf", KeyKind::EcP256),
            ("p384-leaf", KeyKind::EcP384),
        ] {
            let key = load(name);
            assert_eq!(key.key_kind(), kind);
            let public = key.public_key().unwrap();
            for digest in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
                let s = key.sign(b"message", digest).unwrap();
                assert!(
                    crate::signer::verify(kind, &public, b"message", digest, &s),
                    "{name} {digest:?}"
                );
                assert!(!crate::signer::verify(kind, &public, b"other", digest, &s));
            }
        }
    }

    #[test]
    fn debug_never_shows_key_material() {
        let key = load("p256-leaf");
        let text = format!("{key:?}");
        assert!(text.contains("<redacted>"));
        let pem = std::fs::read_to_string("tests/data/vectors/pki/p256-leaf.key").unwrap();
        for line in pem.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!text.contains(line));
        }
    }

    #[test]
    fn tells_certificates_and_garbage_apart_from_keys() {
        let cert = std::fs::read("tests/data/vectors/pki/rsa-leaf.pem").unwrap();
        assert_eq!(
            FileKey::from_file_bytes(&cert, "c", &NoPassword).err(),
            Some(KeyProblem::IsCertificate)
        );
        assert!(matches!(
            FileKey::from_file_bytes(b"hello", "x", &NoPassword).err(),
            Some(KeyProblem::NotAKey(_))
        ));
        let tpm = b"-----BEGIN TSS2 PRIVATE KEY-----\nAQID\n-----END TSS2 PRIVATE KEY-----\n";
        assert_eq!(
            FileKey::from_file_bytes(tpm, "t", &NoPassword).err(),
            Some(KeyProblem::Tpm)
        );
    }
}
