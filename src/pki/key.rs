//! Key generation and the private-key encodings the signing helper accepts.

use std::fmt;

use pkcs8::der::Encode;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::pkcs5::pbes2;
use pkcs8::{DecodePrivateKey, EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef};
use rcgen::{KeyPair, PublicKeyData, RsaKeySize, SignatureAlgorithm};
use zeroize::Zeroizing;

use super::{PBKDF2_ITERATIONS, PkiError, pem_encode, random_fill};

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The kinds of key the throwaway PKI can generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyType {
    /// RSA, 2048-bit modulus.
    Rsa2048,
    /// RSA, 3072-bit modulus.
    Rsa3072,
    /// RSA, 4096-bit modulus.
    Rsa4096,
    /// ECDSA on NIST P-256 (secp256r1).
    P256,
    /// ECDSA on NIST P-384 (secp384r1).
    P384,
}

impl KeyType {
    /// Every key type, RSA first.
    pub const ALL: [KeyType; 5] = [
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
        KeyType::P256,
        KeyType::P384,
    ];

    /// Short lowercase name, used as a file stem: `rsa2048`, `rsa3072`, `rsa4096`, `p256`, `p384`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
        }
    }

    /// Whether this is an RSA key type.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// Whether this is an elliptic-curve key type.
    pub fn is_ec(self) -> bool {
        !self.is_rsa()
    }

    /// The signature algorithm rcgen uses when a key of this type signs a certificate.
    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A freshly generated private key, held as PKCS#8 DER in memory that is zeroed on drop.
///
/// `Debug` shows only the key type.
#[derive(Clone)]
pub struct GeneratedKey {
    key_type: KeyType,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GeneratedKey")
            .field("key_type", &self.key_type)
            .finish_non_exhaustive()
    }
}

impl GeneratedKey {
    /// Generates a new random key of `key_type` (aws-lc-rs via rcgen).
    pub fn generate(key_type: KeyType) -> Result<Self, PkiError> {
        Ok(Self::generate_pair(key_type)?.0)
    }

    /// Generates a key, returning it together with the rcgen key pair that signs with it.
    pub(super) fn generate_pair(key_type: KeyType) -> Result<(Self, KeyPair), PkiError> {
        let alg = key_type.signature_algorithm();
        let pair = match key_type {
            KeyType::Rsa2048 => KeyPair::generate_rsa_for(alg, RsaKeySize::_2048)?,
            KeyType::Rsa3072 => KeyPair::generate_rsa_for(alg, RsaKeySize::_3072)?,
            KeyType::Rsa4096 => KeyPair::generate_rsa_for(alg, RsaKeySize::_4096)?,
            KeyType::P256 | KeyType::P384 => KeyPair::generate_for(alg)?,
        };
        let key = GeneratedKey {
            key_type,
            pkcs8: Zeroizing::new(pair.serialized_der().to_vec()),
        };
        Ok((key, pair))
    }

    /// Rebuilds the rcgen key pair (for signing) from the stored PKCS#8.
    pub(super) fn key_pair(&self) -> Result<KeyPair, PkiError> {
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from(self.pkcs8.as_slice());
        Ok(KeyPair::from_pkcs8_der_and_sign_algo(
            &der,
            self.key_type.signature_algorithm(),
        )?)
    }

    /// The type of this key.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The key as unencrypted PKCS#8 `PrivateKeyInfo` DER.
    pub fn pkcs8_der(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The key as unencrypted PKCS#8 PEM (`-----BEGIN PRIVATE KEY-----`).
    pub fn pkcs8_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        pem_encode("PRIVATE KEY", &self.pkcs8).map(Zeroizing::new)
    }

    /// The public half as X.509 `SubjectPublicKeyInfo` DER, as it appears in a certificate.
    pub fn public_key_der(&self) -> Result<Vec<u8>, PkiError> {
        Ok(self.key_pair()?.subject_public_key_info())
    }

    /// RSA only: the PKCS#1 `RSAPrivateKey` DER (the content of PKCS#8's privateKey).
    pub fn pkcs1_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        if !self.key_type.is_rsa() {
            return Err(PkiError::WrongKeyType {
                operation: "PKCS#1 encoding",
                key_type: self.key_type,
            });
        }
        let info = PrivateKeyInfoRef::try_from(self.pkcs8.as_slice())
            .map_err(|e| PkiError::encoding("PKCS#8 key", e))?;
        if info.algorithm.oid != RSA_ENCRYPTION {
            return Err(PkiError::encoding(
                "PKCS#1 key",
                format!("unexpected key algorithm {}", info.algorithm.oid),
            ));
        }
        Ok(Zeroizing::new(info.private_key.as_bytes().to_vec()))
    }

    /// RSA only: PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`).
    pub fn pkcs1_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        let der = self.pkcs1_der()?;
        pem_encode("RSA PRIVATE KEY", &der).map(Zeroizing::new)
    }

    /// EC only: the SEC1 (RFC 5915) `ECPrivateKey` DER, with the curve and public key.
    pub fn sec1_der(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let der = match self.key_type {
            KeyType::P256 => p256::SecretKey::from_pkcs8_der(&self.pkcs8)
                .map_err(|e| PkiError::encoding("PKCS#8 key", e))?
                .to_sec1_der(),
            KeyType::P384 => p384::SecretKey::from_pkcs8_der(&self.pkcs8)
                .map_err(|e| PkiError::encoding("PKCS#8 key", e))?
                .to_sec1_der(),
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => {
                return Err(PkiError::WrongKeyType {
                    operation: "SEC1 encoding",
                    key_type: self.key_type,
                });
            }
        };
        der.map_err(|e| PkiError::encoding("SEC1 key", e))
    }

    /// EC only: SEC1 PEM (`-----BEGIN EC PRIVATE KEY-----`).
    pub fn sec1_pem(&self) -> Result<Zeroizing<String>, PkiError> {
        let der = self.sec1_der()?;
        pem_encode("EC PRIVATE KEY", &der).map(Zeroizing::new)
    }

    /// Encrypted PKCS#8 DER (`EncryptedPrivateKeyInfo`): PBES2 with PBKDF2-HMAC-SHA256
    /// ([`PBKDF2_ITERATIONS`] iterations, random 16-byte salt) and AES-256-CBC (random IV).
    ///
    /// Decrypting it yields exactly [`pkcs8_der`](Self::pkcs8_der).
    pub fn encrypted_pkcs8_der(&self, password: &str) -> Result<Vec<u8>, PkiError> {
        let mut salt = [0u8; 16];
        let mut iv = [0u8; 16];
        random_fill(&mut salt)?;
        random_fill(&mut iv)?;
        let params =
            pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, iv)
                .map_err(|e| PkiError::encoding("PBES2 parameters", e))?;
        let ciphertext = params
            .encrypt(password, &self.pkcs8)
            .map_err(|e| PkiError::encoding("encrypted PKCS#8 key", e))?;
        let encrypted_data = OctetStringRef::new(&ciphertext)
            .map_err(|e| PkiError::encoding("encrypted PKCS#8 key", e))?;
        let info = EncryptedPrivateKeyInfoRef {
            encryption_algorithm: params.into(),
            encrypted_data,
        };
        info.to_der()
            .map_err(|e| PkiError::encoding("encrypted PKCS#8 key", e))
    }

    /// Encrypted PKCS#8 PEM (`-----BEGIN ENCRYPTED PRIVATE KEY-----`); see
    /// [`encrypted_pkcs8_der`](Self::encrypted_pkcs8_der).
    pub fn encrypted_pkcs8_pem(&self, password: &str) -> Result<String, PkiError> {
        let der = self.encrypted_pkcs8_der(password)?;
        pem_encode("ENCRYPTED PRIVATE KEY", &der)
    }
}

/// Decrypts an encrypted PKCS#8 DER document; test helper shared by the unit tests.
#[cfg(test)]
pub(super) fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<pkcs8::SecretDocument, PkiError> {
    let info = EncryptedPrivateKeyInfoRef::try_from(der)
        .map_err(|e| PkiError::encoding("encrypted PKCS#8 key", e))?;
    info.decrypt(password)
        .map_err(|e| PkiError::encoding("encrypted PKCS#8 key", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ec_public_point(key: &GeneratedKey) -> Vec<u8> {
        use aws_lc_rs::signature::{
            ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair, KeyPair,
        };
        let alg = match key.key_type() {
            KeyType::P256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
            KeyType::P384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
            other => panic!("not EC: {other}"),
        };
        EcdsaKeyPair::from_pkcs8(alg, key.pkcs8_der())
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec()
    }

    #[test]
    fn names_are_file_stems() {
        let names: Vec<_> = KeyType::ALL.iter().map(|k| k.name()).collect();
        assert_eq!(names, ["rsa2048", "rsa3072", "rsa4096", "p256", "p384"]);
        assert!(KeyType::Rsa3072.is_rsa() && !KeyType::Rsa3072.is_ec());
        assert!(KeyType::P384.is_ec() && !KeyType::P384.is_rsa());
    }

    #[test]
    fn rsa_key_encodings_agree() {
        use aws_lc_rs::signature::{KeyPair, RsaKeyPair};
        let key = GeneratedKey::generate(KeyType::Rsa2048).unwrap();
        let from_pkcs8 = RsaKeyPair::from_pkcs8(key.pkcs8_der()).unwrap();
        assert_eq!(from_pkcs8.public_modulus_len(), 256);
        let pkcs1 = key.pkcs1_der().unwrap();
        let from_pkcs1 = RsaKeyPair::from_der(&pkcs1).unwrap();
        assert_eq!(
            from_pkcs8.public_key().as_ref(),
            from_pkcs1.public_key().as_ref()
        );
        assert!(
            key.pkcs1_pem()
                .unwrap()
                .starts_with("-----BEGIN RSA PRIVATE KEY-----\n")
        );
        assert!(matches!(key.sec1_der(), Err(PkiError::WrongKeyType { .. })));
    }

    #[test]
    fn ec_key_encodings_agree() {
        for key_type in [KeyType::P256, KeyType::P384] {
            let key = GeneratedKey::generate(key_type).unwrap();
            let sec1 = key.sec1_der().unwrap();
            let same = match key_type {
                KeyType::P256 => {
                    p256::SecretKey::from_sec1_der(&sec1).unwrap()
                        == p256::SecretKey::from_pkcs8_der(key.pkcs8_der()).unwrap()
                }
                _ => {
                    p384::SecretKey::from_sec1_der(&sec1).unwrap()
                        == p384::SecretKey::from_pkcs8_der(key.pkcs8_der()).unwrap()
                }
            };
            assert!(same, "{key_type}: SEC1 and PKCS#8 differ");
            assert!(
                key.sec1_pem()
                    .unwrap()
                    .starts_with("-----BEGIN EC PRIVATE KEY-----\n")
            );
            assert!(matches!(
                key.pkcs1_der(),
                Err(PkiError::WrongKeyType { .. })
            ));
            // The SPKI from rcgen carries the same point as aws-lc-rs derives.
            let spki = key.public_key_der().unwrap();
            assert!(spki.ends_with(&ec_public_point(&key)));
        }
    }

    #[test]
    fn encrypted_pkcs8_round_trips_with_openssl_default_scheme() {
        let key = GeneratedKey::generate(KeyType::P256).unwrap();
        let pem = key.encrypted_pkcs8_pem("pw").unwrap();
        assert!(pem.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----\n"));
        let der = key.encrypted_pkcs8_der("pw").unwrap();
        let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
        let params = info.encryption_algorithm.pbes2().unwrap();
        let kdf = params.kdf.pbkdf2().unwrap();
        assert_eq!(kdf.iteration_count, PBKDF2_ITERATIONS);
        assert_eq!(kdf.prf, pbes2::Pbkdf2Prf::HmacWithSha256);
        assert!(matches!(
            params.encryption,
            pbes2::EncryptionScheme::Aes256Cbc { .. }
        ));
        let plain = decrypt_pkcs8(&der, "pw").unwrap();
        assert_eq!(plain.as_bytes(), key.pkcs8_der());
        assert!(decrypt_pkcs8(&der, "wrong").is_err());
        // Fresh salt and IV every time.
        assert_ne!(der, key.encrypted_pkcs8_der("pw").unwrap());
    }

    #[test]
    fn debug_hides_key_material() {
        let key = GeneratedKey::generate(KeyType::P256).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "GeneratedKey { key_type: P256, .. }");
    }
}
