//! The one interface every private key sits behind. Files, PKCS#11 tokens, the OS keyring
//! and TPMs implement [`Signer`]; everything above it (CreateSession, `sign-string`, the
//! agent) only sees this trait, so a key never has to leave its store.

use std::fmt;

/// The public key algorithm of a key, which picks the SigV4-X509 algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    /// RSA with the modulus size in bits.
    Rsa { bits: usize },
    /// ECDSA on NIST P-256.
    EcP256,
    /// ECDSA on NIST P-384.
    EcP384,
    /// ML-DSA-44 (FIPS 204).
    MlDsa44,
    /// ML-DSA-65 (FIPS 204).
    MlDsa65,
    /// ML-DSA-87 (FIPS 204).
    MlDsa87,
}

impl KeyKind {
    /// The `Authorization` algorithm for a request signed with this key.
    pub fn algorithm(self) -> crate::signing::Algorithm {
        match self {
            KeyKind::Rsa { .. } => crate::signing::Algorithm::RsaSha256,
            KeyKind::EcP256 | KeyKind::EcP384 => crate::signing::Algorithm::EcdsaSha256,
            KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => {
                crate::signing::Algorithm::MlDsa
            }
        }
    }

    /// `RSA` or `EC`, as the Go helper's `read-certificate-data` names key types; ML-DSA
    /// keys are named by parameter set (`ML-DSA-65`), the names the Go helper's ML-DSA code uses.
    pub fn family(self) -> &'static str {
        match self {
            KeyKind::Rsa { .. } => "RSA",
            KeyKind::EcP256 | KeyKind::EcP384 => "EC",
            KeyKind::MlDsa44 => "ML-DSA-44",
            KeyKind::MlDsa65 => "ML-DSA-65",
            KeyKind::MlDsa87 => "ML-DSA-87",
        }
    }

    /// Whether this is an ML-DSA key (which signs the message itself, never a digest).
    pub fn is_ml_dsa(self) -> bool {
        matches!(self, KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87)
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyKind::Rsa { bits } => write!(f, "RSA-{bits}"),
            KeyKind::EcP256 => f.write_str("EC P-256"),
            KeyKind::EcP384 => f.write_str("EC P-384"),
            KeyKind::MlDsa44 | KeyKind::MlDsa65 | KeyKind::MlDsa87 => f.write_str(self.family()),
        }
    }
}

/// The hash a signer applies to the message before signing it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Digest {
    #[default]
    Sha256,
    Sha384,
    Sha512,
}

impl Digest {
    /// Hashes `message` with this digest.
    pub fn hash(self, message: &[u8]) -> Vec<u8> {
        use aws_lc_rs::digest;
        let alg = match self {
            Digest::Sha256 => &digest::SHA256,
            Digest::Sha384 => &digest::SHA384,
            Digest::Sha512 => &digest::SHA512,
        };
        digest::digest(alg, message).as_ref().to_vec()
    }
}

/// Why a signature could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("the {key} key cannot sign with {digest:?}")]
    UnsupportedDigest { key: KeyKind, digest: Digest },
    #[error("signing with {source_name} failed: {reason}")]
    Backend { source_name: String, reason: String },
}

/// A private key that signs on behalf of a certificate.
///
/// `sign` receives the whole message and hashes it itself, because tokens such as PKCS#11
/// `CKM_SHA256_RSA_PKCS` want the message, not a digest. Signatures are returned in the
/// protocol's encoding: RSASSA-PKCS1-v1_5 bytes for RSA, DER `SEQUENCE{r,s}` for ECDSA.
/// ML-DSA keys sign the message itself (pure ML-DSA, empty context) and ignore `digest`.
pub trait Signer: Send + Sync + fmt::Debug {
    /// The key's algorithm.
    fn key_kind(&self) -> KeyKind;

    /// Signs `message` after hashing it with `digest` (ML-DSA: signs `message` as it is).
    fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignError>;

    /// The subjectPublicKey bits (what a certificate's SPKI BIT STRING holds: PKCS#1
    /// `RSAPublicKey` DER, or an uncompressed EC point), when the store can tell without
    /// signing. `None` makes the pre-flight check sign a probe and verify it instead.
    fn public_key(&self) -> Option<Vec<u8>>;

    /// Where the key lives, for messages and logs ("file key.pem", "pkcs11 token 'x'").
    fn source(&self) -> String;
}

/// Verifies `signature` over `message` with the public key bits of a certificate, the way
/// the service does. Used by the pre-flight check and by `emulate`. For ML-DSA `digest` is
/// ignored: the signature is pure ML-DSA over `message` with an empty context.
pub fn verify(
    kind: KeyKind,
    public_key: &[u8],
    message: &[u8],
    digest: Digest,
    signature: &[u8],
) -> bool {
    use aws_lc_rs::signature as sig;
    let alg: &'static dyn sig::VerificationAlgorithm = match (kind, digest) {
        (KeyKind::Rsa { .. }, Digest::Sha256) => &sig::RSA_PKCS1_2048_8192_SHA256,
        (KeyKind::Rsa { .. }, Digest::Sha384) => &sig::RSA_PKCS1_2048_8192_SHA384,
        (KeyKind::Rsa { .. }, Digest::Sha512) => &sig::RSA_PKCS1_2048_8192_SHA512,
        (KeyKind::EcP256, Digest::Sha256) => &sig::ECDSA_P256_SHA256_ASN1,
        (KeyKind::EcP256, Digest::Sha384) => &sig::ECDSA_P256_SHA384_ASN1,
        (KeyKind::EcP256, Digest::Sha512) => &sig::ECDSA_P256_SHA512_ASN1,
        (KeyKind::EcP384, Digest::Sha256) => &sig::ECDSA_P384_SHA256_ASN1,
        (KeyKind::EcP384, Digest::Sha384) => &sig::ECDSA_P384_SHA384_ASN1,
        (KeyKind::EcP384, Digest::Sha512) => &sig::ECDSA_P384_SHA512_ASN1,
        (KeyKind::MlDsa44, _) => &sig::ML_DSA_44,
        (KeyKind::MlDsa65, _) => &sig::ML_DSA_65,
        (KeyKind::MlDsa87, _) => &sig::ML_DSA_87,
    };
    sig::UnparsedPublicKey::new(alg, public_key)
        .verify(message, signature)
        .is_ok()
}
