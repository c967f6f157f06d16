//! Key generation and the private-key encodings the signing helper accepts.

use std::fmt;

use pkcs8::der::Encode;
use pkcs8::der::asn1::OctetStringRef;
use pkcs8::pkcs5::pbes2;
use pkcs8::{DecodePrivateKey, EncryptedPrivateKeyInfoRef, ObjectIdentifier, PrivateKeyInfoRef};
use rcgen::{KeyPair, PublicKeyData, RsaKeySize, SignatureAlgorithm};
use zeroize::Zeroizing;

use super::{PBKDF2_ITERATIONS, PkiError, pem_encode, random_fill};
use crate::der;

/// `rsaEncryption` (RFC 8017).
const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// `id-ml-dsa-44/65/87` (FIPS 204, RFC 9881).
const ML_DSA_44: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.17");
const ML_DSA_65: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.18");
const ML_DSA_87: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.3.19");

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
    /// ML-DSA-44 (FIPS 204), post-quantum.
    MlDsa44,
    /// ML-DSA-65 (FIPS 204), post-quantum.
    MlDsa65,
    /// ML-DSA-87 (FIPS 204), post-quantum.
    MlDsa87,
}

/// How an ML-DSA private key is written inside PKCS#8 (RFC 9881 `ML-DSA-PrivateKey`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MlDsaKeyForm {
    /// `seed [0] IMPLICIT OCTET STRING (SIZE (32))`: the 32-byte seed only.
    Seed,
    /// `expandedKey OCTET STRING`: the FIPS 204 expanded private key only.
    Expanded,
    /// `both SEQUENCE { seed, expandedKey }`: OpenSSL 3.5's default.
    Both,
}

impl MlDsaKeyForm {
    /// Every form, seed-only first.
    pub const ALL: [MlDsaKeyForm; 3] = [
        MlDsaKeyForm::Seed,
        MlDsaKeyForm::Expanded,
        MlDsaKeyForm::Both,
    ];

    /// Short lowercase name: `seed`, `expanded`, `both`.
    pub fn name(self) -> &'static str {
        match self {
            MlDsaKeyForm::Seed => "seed",
            MlDsaKeyForm::Expanded => "expanded",
            MlDsaKeyForm::Both => "both",
        }
    }
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

    /// The ML-DSA key types (not in [`KeyType::ALL`], which the classic test matrix uses).
    pub const ML_DSA: [KeyType; 3] = [KeyType::MlDsa44, KeyType::MlDsa65, KeyType::MlDsa87];

    /// Short lowercase name, used as a file stem: `rsa2048`, `rsa3072`, `rsa4096`, `p256`, `p384`.
    pub fn name(self) -> &'static str {
        match self {
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
            KeyType::P256 => "p256",
            KeyType::P384 => "p384",
            KeyType::MlDsa44 => "mldsa44",
            KeyType::MlDsa65 => "mldsa65",
            KeyType::MlDsa87 => "mldsa87",
        }
    }

    /// Whether this is an RSA key type.
    pub fn is_rsa(self) -> bool {
        matches!(self, KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096)
    }

    /// Whether this is an elliptic-curve key type.
    pub fn is_ec(self) -> bool {
        matches!(self, KeyType::P256 | KeyType::P384)
    }

    /// Whether this is an ML-DSA key type.
    pub fn is_ml_dsa(self) -> bool {
        matches!(self, KeyType::MlDsa44 | KeyType::MlDsa65 | KeyType::MlDsa87)
    }

    /// The PKCS#8 / SPKI algorithm OID of an ML-DSA key type.
    fn ml_dsa_oid(self) -> Option<ObjectIdentifier> {
        match self {
            KeyType::MlDsa44 => Some(ML_DSA_44),
            KeyType::MlDsa65 => Some(ML_DSA_65),
            KeyType::MlDsa87 => Some(ML_DSA_87),
            _ => None,
        }
    }

    /// aws-lc-rs's signing algorithm of an ML-DSA key type.
    fn ml_dsa_signing(self) -> Option<&'static aws_lc_rs::signature::PqdsaSigningAlgorithm> {
        use aws_lc_rs::signature as sig;
        match self {
            KeyType::MlDsa44 => Some(&sig::ML_DSA_44_SIGNING),
            KeyType::MlDsa65 => Some(&sig::ML_DSA_65_SIGNING),
            KeyType::MlDsa87 => Some(&sig::ML_DSA_87_SIGNING),
            _ => None,
        }
    }

    /// The signature algorithm rcgen uses when a key of this type signs a certificate.
    fn signature_algorithm(self) -> &'static SignatureAlgorithm {
        match self {
            KeyType::Rsa2048 | KeyType::Rsa3072 | KeyType::Rsa4096 => &rcgen::PKCS_RSA_SHA256,
            KeyType::P256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyType::P384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyType::MlDsa44 => &rcgen::PKCS_ML_DSA_44,
            KeyType::MlDsa65 => &rcgen::PKCS_ML_DSA_65,
            KeyType::MlDsa87 => &rcgen::PKCS_ML_DSA_87,
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
            KeyType::P256
            | KeyType::P384
            | KeyType::MlDsa44
            | KeyType::MlDsa65
            | KeyType::MlDsa87 => KeyPair::generate_for(alg)?,
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
        if self.key_type.is_ml_dsa() {
            use aws_lc_rs::encoding::AsDer as _;
            use aws_lc_rs::signature::KeyPair as _;
            let pair = self.ml_dsa_pair()?;
            let der = pair
                .public_key()
                .as_der()
                .map_err(|_| PkiError::encoding("ML-DSA public key", "cannot encode"))?;
            return Ok(der.as_ref().to_vec());
        }
        Ok(self.key_pair()?.subject_public_key_info())
    }

    /// ML-DSA only: the 32-byte seed the key was generated from.
    pub fn ml_dsa_seed(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        self.ml_dsa_oid()?;
        let info = PrivateKeyInfoRef::try_from(self.pkcs8.as_slice())
            .map_err(|e| PkiError::encoding("PKCS#8 key", e))?;
        // rcgen (aws-lc-rs) writes the seed-only form: `80 20 <seed>`.
        match info.private_key.as_bytes() {
            [0x80, 0x20, seed @ ..] if seed.len() == 32 => Ok(Zeroizing::new(seed.to_vec())),
            _ => Err(PkiError::encoding(
                "ML-DSA key",
                "the generated PKCS#8 is not in the seed-only form",
            )),
        }
    }

    /// ML-DSA only: the FIPS 204 expanded private key, derived from the seed.
    pub fn ml_dsa_expanded(&self) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        use aws_lc_rs::encoding::AsRawBytes as _;
        let raw = self
            .ml_dsa_pair()?
            .private_key()
            .as_raw_bytes()
            .map_err(|_| PkiError::encoding("ML-DSA key", "cannot expand the seed"))?;
        Ok(Zeroizing::new(raw.as_ref().to_vec()))
    }

    /// ML-DSA only: unencrypted PKCS#8 DER with the private key in `form`.
    pub fn ml_dsa_pkcs8_der(&self, form: MlDsaKeyForm) -> Result<Zeroizing<Vec<u8>>, PkiError> {
        let seed = self.ml_dsa_seed()?;
        let expanded = self.ml_dsa_expanded()?;
        match form {
            MlDsaKeyForm::Seed => ml_dsa_pkcs8(self.key_type, Some(&seed), None),
            MlDsaKeyForm::Expanded => ml_dsa_pkcs8(self.key_type, None, Some(&expanded)),
            MlDsaKeyForm::Both => ml_dsa_pkcs8(self.key_type, Some(&seed), Some(&expanded)),
        }
    }

    /// ML-DSA only: the same key with its PKCS#8 rewritten in `form`, so that
    /// [`pkcs8_pem`](Self::pkcs8_pem) and [`encrypted_pkcs8_pem`](Self::encrypted_pkcs8_pem)
    /// write that form.
    pub fn with_ml_dsa_form(&self, form: MlDsaKeyForm) -> Result<GeneratedKey, PkiError> {
        Ok(GeneratedKey {
            key_type: self.key_type,
            pkcs8: self.ml_dsa_pkcs8_der(form)?,
        })
    }

    fn ml_dsa_oid(&self) -> Result<ObjectIdentifier, PkiError> {
        self.key_type.ml_dsa_oid().ok_or(PkiError::WrongKeyType {
            operation: "ML-DSA encoding",
            key_type: self.key_type,
        })
    }

    fn ml_dsa_pair(&self) -> Result<aws_lc_rs::signature::PqdsaKeyPair, PkiError> {
        let alg = self
            .key_type
            .ml_dsa_signing()
            .ok_or(PkiError::WrongKeyType {
                operation: "ML-DSA encoding",
                key_type: self.key_type,
            })?;
        aws_lc_rs::signature::PqdsaKeyPair::from_pkcs8(alg, &self.pkcs8)
            .map_err(|e| PkiError::encoding("ML-DSA key", e))
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
            KeyType::Rsa2048
            | KeyType::Rsa3072
            | KeyType::Rsa4096
            | KeyType::MlDsa44
            | KeyType::MlDsa65
            | KeyType::MlDsa87 => {
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

/// An ML-DSA PKCS#8 `PrivateKeyInfo` (version 0, no parameters) built from its parts:
/// seed only, expanded key only, or both (RFC 9881). Giving a seed and an expanded key of
/// different keys makes the inconsistent file tests need; nothing checks they agree.
pub fn ml_dsa_pkcs8(
    key_type: KeyType,
    seed: Option<&[u8]>,
    expanded: Option<&[u8]>,
) -> Result<Zeroizing<Vec<u8>>, PkiError> {
    let oid = key_type.ml_dsa_oid().ok_or(PkiError::WrongKeyType {
        operation: "ML-DSA encoding",
        key_type,
    })?;
    // Every buffer that holds key bytes is a `Zeroizing` one, written in place.
    let mut private_key = Zeroizing::new(Vec::new());
    match (seed, expanded) {
        (Some(seed), None) => der::push_tlv(&mut private_key, 0x80, seed),
        (None, Some(expanded)) => der::push_tlv(&mut private_key, 0x04, expanded),
        (Some(seed), Some(expanded)) => {
            let mut both = Zeroizing::new(Vec::new());
            der::push_tlv(&mut both, 0x04, seed);
            der::push_tlv(&mut both, 0x04, expanded);
            der::push_tlv(&mut private_key, 0x30, &both);
        }
        (None, None) => return Err(PkiError::Invalid("no ML-DSA key material".into())),
    }
    let oid_der = oid
        .to_der()
        .map_err(|e| PkiError::encoding("ML-DSA key", e))?;
    let mut body = Zeroizing::new(vec![0x02, 0x01, 0x00]);
    der::push_tlv(&mut body, 0x30, &oid_der);
    der::push_tlv(&mut body, 0x04, &private_key);
    let mut out = Zeroizing::new(Vec::new());
    der::push_tlv(&mut out, 0x30, &body);
    Ok(out)
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
    fn ml_dsa_forms_hold_the_same_key() {
        use aws_lc_rs::signature::{KeyPair, ML_DSA_65_SIGNING, PqdsaKeyPair};
        let key = GeneratedKey::generate(KeyType::MlDsa65).unwrap();
        assert!(key.key_type().is_ml_dsa() && !key.key_type().is_ec());
        let seed = key.ml_dsa_seed().unwrap();
        let expanded = key.ml_dsa_expanded().unwrap();
        assert_eq!((seed.len(), expanded.len()), (32, 4032));
        let public = key.public_key_der().unwrap();
        for form in MlDsaKeyForm::ALL {
            let der = key.ml_dsa_pkcs8_der(form).unwrap();
            let info = PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
            assert_eq!(info.algorithm.oid, ML_DSA_65);
            assert!(info.algorithm.parameters.is_none());
            let first = info.private_key.as_bytes()[0];
            let expected = match form {
                MlDsaKeyForm::Seed => 0x80,
                MlDsaKeyForm::Expanded => 0x04,
                MlDsaKeyForm::Both => 0x30,
            };
            assert_eq!(first, expected, "{form:?}");
            // aws-lc-rs reads every form as the same key.
            let pair = PqdsaKeyPair::from_pkcs8(&ML_DSA_65_SIGNING, &der).unwrap();
            assert!(public.ends_with(pair.public_key().as_ref()), "{form:?}");
            let plain = decrypt_pkcs8(
                &key.with_ml_dsa_form(form)
                    .unwrap()
                    .encrypted_pkcs8_der("pw")
                    .unwrap(),
                "pw",
            )
            .unwrap();
            assert_eq!(plain.as_bytes(), der.as_slice());
        }
        assert!(matches!(
            GeneratedKey::generate(KeyType::P256).unwrap().ml_dsa_seed(),
            Err(PkiError::WrongKeyType { .. })
        ));
        assert!(matches!(key.sec1_der(), Err(PkiError::WrongKeyType { .. })));
    }

    #[test]
    fn debug_hides_key_material() {
        let key = GeneratedKey::generate(KeyType::P256).unwrap();
        let shown = format!("{key:?}");
        assert_eq!(shown, "GeneratedKey { key_type: P256, .. }");
    }
}
