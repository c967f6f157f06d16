//! Private keys read from files: PKCS#8 (plain or encrypted), PKCS#1 RSA and SEC1 EC, in
//! PEM or DER. RSA and P-256 sign with aws-lc-rs; P-384 (which must sign SHA-256, a pairing
//! aws-lc-rs does not offer) and P-256 with SHA-384/512 (for `sign-string`) with RustCrypto.
//! ML-DSA-44/65/87 keys (PKCS#8 in any of RFC 9881's three private-key forms) sign with
//! aws-lc-rs: pure ML-DSA over the message, empty context, hedged (randomised) signing.

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
        /// Kept for SHA-384/512 signatures (`sign-string`), which aws-lc's P-256 pair does
        /// not make. Parsed only when asked: the RustCrypto parse recomputes the public key
        /// in software, which was most of a warm `credential-process` run.
        pkcs8: Zeroizing<Vec<u8>>,
    },
    P384(p384::ecdsa::SigningKey),
    MlDsa {
        kind: KeyKind,
        pair: sig::PqdsaKeyPair,
    },
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
                        pkcs8: Zeroizing::new(der.to_vec()),
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
            oid @ (OID_ML_DSA_44 | OID_ML_DSA_65 | OID_ML_DSA_87) => {
                ml_dsa_key(oid, info.private_key.as_bytes())?
            }
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
        // Re-encoded as PKCS#8 so that one constructor knows every key type.
        Self::from_pkcs8(&sec1_to_pkcs8(der)?, source)
    }
}

const OID_ML_DSA_44: &str = "2.16.840.1.101.3.4.3.17";
const OID_ML_DSA_65: &str = "2.16.840.1.101.3.4.3.18";
const OID_ML_DSA_87: &str = "2.16.840.1.101.3.4.3.19";

/// An ML-DSA key from the contents of PKCS#8's privateKey OCTET STRING, in any of RFC 9881's
/// forms: `seed [0] IMPLICIT OCTET STRING`, `expandedKey OCTET STRING`, or
/// `both SEQUENCE { seed OCTET STRING, expandedKey OCTET STRING }`. A `both` whose halves
/// belong to different keys is refused.
fn ml_dsa_key(oid: &str, private_key: &[u8]) -> Result<Inner, KeyProblem> {
    use aws_lc_rs::encoding::AsRawBytes as _;
    let (kind, alg): (KeyKind, &'static sig::PqdsaSigningAlgorithm) = match oid {
        OID_ML_DSA_44 => (KeyKind::MlDsa44, &sig::ML_DSA_44_SIGNING),
        OID_ML_DSA_65 => (KeyKind::MlDsa65, &sig::ML_DSA_65_SIGNING),
        _ => (KeyKind::MlDsa87, &sig::ML_DSA_87_SIGNING),
    };
    let malformed = || {
        KeyProblem::NotAKey(format!(
            "the {kind} private key is not a seed, an expanded key or both (RFC 9881)"
        ))
    };
    let rejected = |what: &str, e: aws_lc_rs::error::KeyRejected| {
        KeyProblem::Unsupported(format!("{kind} {what} rejected: {e}"))
    };
    let (tag, content, rest) = crate::der::read_tlv(private_key).ok_or_else(malformed)?;
    if !rest.is_empty() {
        return Err(malformed());
    }
    let pair = match tag {
        0x80 => sig::PqdsaKeyPair::from_seed(alg, content).map_err(|e| rejected("seed", e))?,
        0x04 => sig::PqdsaKeyPair::from_raw_private_key(alg, content)
            .map_err(|e| rejected("expanded key", e))?,
        0x30 => {
            let (t1, seed, rest) = crate::der::read_tlv(content).ok_or_else(malformed)?;
            let (t2, expanded, rest) = crate::der::read_tlv(rest).ok_or_else(malformed)?;
            if t1 != 0x04 || t2 != 0x04 || !rest.is_empty() {
                return Err(malformed());
            }
            let pair = sig::PqdsaKeyPair::from_seed(alg, seed).map_err(|e| rejected("seed", e))?;
            let derived = pair.private_key().as_raw_bytes().map_err(|_| {
                KeyProblem::Unsupported(format!("{kind} seed could not be expanded"))
            })?;
            if derived.as_ref() != expanded {
                return Err(KeyProblem::NotAKey(format!(
                    "the {kind} key's seed and expanded key do not match (they belong to \
                     different keys): the key file is corrupt or was assembled wrongly"
                )));
            }
            pair
        }
        _ => return Err(malformed()),
    };
    Ok(Inner::MlDsa { kind, pair })
}

/// A SEC1 `ECPrivateKey` (P-256 or P-384) as PKCS#8 DER.
pub(crate) fn sec1_to_pkcs8(der: &[u8]) -> Result<Zeroizing<Vec<u8>>, KeyProblem> {
    let doc = if let Ok(k) = p256::SecretKey::from_sec1_der(der) {
        k.to_pkcs8_der()
    } else if let Ok(k) = p384::SecretKey::from_sec1_der(der) {
        k.to_pkcs8_der()
    } else {
        return Err(KeyProblem::NotAKey(
            "the EC PRIVATE KEY block is not a P-256 or P-384 SEC1 key".into(),
        ));
    };
    let doc = doc.map_err(|_| KeyProblem::NotAKey("the EC key could not be re-encoded".into()))?;
    Ok(Zeroizing::new(doc.as_bytes().to_vec()))
}

/// Decrypts an `EncryptedPrivateKeyInfo`, asking `password` only now that one is needed.
pub(crate) fn decrypt_pkcs8(
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
            Inner::MlDsa { kind, .. } => *kind,
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
            Inner::P256 { pkcs8, .. } => {
                let key = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8)
                    .map_err(|e| backend(&self.source, e))?;
                let s: p256::ecdsa::Signature = key
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
            // Pure ML-DSA over the message itself: the digest does not apply.
            Inner::MlDsa { pair, .. } => {
                let mut out = vec![0u8; pair.algorithm().signature_len()];
                let n = pair
                    .sign(message, &mut out)
                    .map_err(|e| backend(&self.source, e))?;
                out.truncate(n);
                Ok(out)
            }
        }
    }

    fn public_key(&self) -> Option<Vec<u8>> {
        use aws_lc_rs::signature::KeyPair as _;
        Some(match &self.inner {
            Inner::Rsa(k) => k.public_key().as_ref().to_vec(),
            Inner::P256 { fast, .. } => fast.public_key().as_ref().to_vec(),
            Inner::P384(k) => k.verifying_key().to_sec1_point(false).as_bytes().to_vec(),
            Inner::MlDsa { pair, .. } => pair.public_key().as_ref().to_vec(),
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

    /// Every ML-DSA level, every RFC 9881 form, plain and encrypted: the key loads, signs a
    /// fixed string to sign with pure ML-DSA, and the signature verifies with the public key
    /// of the certificate issued for it.
    #[test]
    fn ml_dsa_keys_in_every_form_sign_what_the_certificate_verifies() {
        use crate::pki::{Ca, KeyType, LeafOptions, MlDsaKeyForm, Validity};
        struct Password;
        impl PasswordSource for Password {
            fn password(&self) -> Option<SecretString> {
                Some(SecretString::from("pw"))
            }
        }
        let sts = "AWS4-X509-MLDSA\n20261124T123352Z\n\
                   20261124/us-east-1/rolesanywhere/aws4_request\n\
                   0f5e7f4d6b3fa0cf1c8a4b7f2e9d3c1a5b6e8f0a2c4d6e8f0a1b3c5d7e9f1a2b";
        let window = Validity::relative_to_now(time::Duration::hours(-1), time::Duration::hours(1));
        let root = Ca::new_root("ML-DSA root", KeyType::MlDsa65, window).unwrap();
        for (key_type, kind) in [
            (KeyType::MlDsa44, KeyKind::MlDsa44),
            (KeyType::MlDsa65, KeyKind::MlDsa65),
            (KeyType::MlDsa87, KeyKind::MlDsa87),
        ] {
            let leaf = root
                .issue_leaf("leaf", key_type, LeafOptions::new(window))
                .unwrap();
            let cert = crate::identity::cert::Certificate::from_der(&leaf.cert_der).unwrap();
            assert_eq!(cert.key_kind(), Ok(kind));
            for form in MlDsaKeyForm::ALL {
                let generated = leaf.key.with_ml_dsa_form(form).unwrap();
                let plain = generated.pkcs8_pem().unwrap();
                let encrypted = generated.encrypted_pkcs8_pem("pw").unwrap();
                for (how, data) in [
                    ("plain", plain.as_bytes()),
                    ("encrypted", encrypted.as_bytes()),
                ] {
                    let key = FileKey::from_file_bytes(data, "k", &Password)
                        .unwrap_or_else(|e| panic!("{kind} {form:?} {how}: {e:?}"));
                    assert_eq!(key.key_kind(), kind);
                    assert_eq!(key.public_key().unwrap(), cert.public_key());
                    // The digest argument does not matter: the message is signed raw.
                    let sig = key.sign(sts.as_bytes(), Digest::Sha384).unwrap();
                    assert!(
                        crate::signer::verify(
                            kind,
                            cert.public_key(),
                            sts.as_bytes(),
                            Digest::Sha256,
                            &sig
                        ),
                        "{kind} {form:?} {how}"
                    );
                    assert!(!crate::signer::verify(
                        kind,
                        cert.public_key(),
                        b"another string",
                        Digest::Sha256,
                        &sig
                    ));
                }
            }
        }
    }

    #[test]
    fn ml_dsa_seed_and_expanded_key_of_different_keys_are_refused() {
        use crate::pki::{GeneratedKey, KeyType, ml_dsa_pkcs8};
        let a = GeneratedKey::generate(KeyType::MlDsa44).unwrap();
        let b = GeneratedKey::generate(KeyType::MlDsa44).unwrap();
        let der = ml_dsa_pkcs8(
            KeyType::MlDsa44,
            Some(&a.ml_dsa_seed().unwrap()),
            Some(&b.ml_dsa_expanded().unwrap()),
        )
        .unwrap();
        match FileKey::from_pkcs8(&der, "k") {
            Err(KeyProblem::NotAKey(why)) => assert!(why.contains("do not match"), "{why}"),
            other => panic!("{other:?}"),
        }
        // A seed of the wrong length and garbage in place of the key are refused too.
        let short = ml_dsa_pkcs8(KeyType::MlDsa44, Some(&[7u8; 31]), None).unwrap();
        assert!(FileKey::from_pkcs8(&short, "k").is_err());
        let mut garbage = ml_dsa_pkcs8(KeyType::MlDsa44, Some(&[7u8; 32]), None).unwrap();
        let at = garbage.len() - 34;
        garbage[at] = 0x05;
        assert!(FileKey::from_pkcs8(&garbage, "k").is_err());
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
