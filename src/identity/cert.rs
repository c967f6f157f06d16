//! X.509 certificates as the agent needs them: the DER to send, the serial to name, the
//! validity window to check and the public key to match against the private key.

use base64::Engine as _;
use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

use crate::signer::KeyKind;

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";
const OID_ML_DSA_44: &str = "2.16.840.1.101.3.4.3.17";
const OID_ML_DSA_65: &str = "2.16.840.1.101.3.4.3.18";
const OID_ML_DSA_87: &str = "2.16.840.1.101.3.4.3.19";

/// A parsed certificate. Cheap to clone; holds only public data.
#[derive(Clone, Debug)]
pub struct Certificate {
    der: Vec<u8>,
    serial_der: Vec<u8>,
    subject: String,
    issuer: String,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
    key_kind: Result<KeyKind, String>,
    public_key: Vec<u8>,
    is_ca: bool,
}

impl Certificate {
    /// Parses one DER certificate. The error says what is wrong, never what the bytes were.
    pub fn from_der(der: &[u8]) -> Result<Self, String> {
        let (rest, cert) = X509Certificate::from_der(der)
            .map_err(|e| format!("not a valid X.509 certificate ({e})"))?;
        if !rest.is_empty() {
            return Err("trailing data after the certificate".into());
        }
        let spki = cert.public_key();
        let is_ca = cert
            .basic_constraints()
            .ok()
            .flatten()
            .is_some_and(|bc| bc.value.ca);
        Ok(Certificate {
            // `rest` is empty (checked above): the certificate is all of `der`.
            der: der.to_vec(),
            serial_der: cert.raw_serial().to_vec(),
            subject: cert.subject().to_string(),
            issuer: cert.issuer().to_string(),
            not_before: cert.validity().not_before.to_datetime(),
            not_after: cert.validity().not_after.to_datetime(),
            key_kind: key_kind_of(spki),
            public_key: spki.subject_public_key.data.to_vec(),
            is_ca,
        })
    }

    /// The DER encoding.
    pub fn der(&self) -> &[u8] {
        &self.der
    }

    /// Base64 of the DER, as sent in `X-Amz-X509`.
    pub fn to_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.der)
    }

    /// The serial number as an unsigned decimal integer, as `Credential=` wants it.
    pub fn serial_decimal(&self) -> String {
        crate::signing::serial_to_decimal(&self.serial_der)
    }

    /// The serial's DER INTEGER content bytes.
    pub fn serial_der(&self) -> &[u8] {
        &self.serial_der
    }

    /// The serial as upper-case hex without leading zero bytes (how selectors name it).
    pub fn serial_hex(&self) -> String {
        let trimmed: Vec<u8> = self
            .serial_der
            .iter()
            .copied()
            .skip_while(|b| *b == 0)
            .collect();
        hex::encode_upper(if trimmed.is_empty() { vec![0] } else { trimmed })
    }

    pub fn subject(&self) -> &str {
        &self.subject
    }

    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    pub fn not_before(&self) -> OffsetDateTime {
        self.not_before
    }

    pub fn not_after(&self) -> OffsetDateTime {
        self.not_after
    }

    pub fn is_ca(&self) -> bool {
        self.is_ca
    }

    /// The key algorithm, or a description of the unsupported one.
    pub fn key_kind(&self) -> Result<KeyKind, &str> {
        self.key_kind.as_ref().copied().map_err(String::as_str)
    }

    /// The subjectPublicKey BIT STRING contents.
    pub fn public_key(&self) -> &[u8] {
        &self.public_key
    }

    /// SHA-1 of the DER, lower-case hex: the fingerprint the Go helper prints.
    pub fn sha1_fingerprint(&self) -> String {
        use aws_lc_rs::digest;
        hex::encode(digest::digest(&digest::SHA1_FOR_LEGACY_USE_ONLY, &self.der))
    }

    /// SHA-256 of the DER, lower-case hex.
    pub fn sha256_fingerprint(&self) -> String {
        crate::signing::sha256_hex(&self.der)
    }
}

fn key_kind_of(spki: &SubjectPublicKeyInfo<'_>) -> Result<KeyKind, String> {
    let oid = spki.algorithm.algorithm.to_id_string();
    match oid.as_str() {
        OID_RSA => match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Ok(KeyKind::Rsa {
                bits: rsa.key_size(),
            }),
            _ => Err("RSA key that does not parse".into()),
        },
        OID_EC => {
            let curve = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string())
                .unwrap_or_default();
            match curve.as_str() {
                OID_P256 => Ok(KeyKind::EcP256),
                OID_P384 => Ok(KeyKind::EcP384),
                other => Err(format!("EC key on curve {other}")),
            }
        }
        OID_ML_DSA_44 => Ok(KeyKind::MlDsa44),
        OID_ML_DSA_65 => Ok(KeyKind::MlDsa65),
        OID_ML_DSA_87 => Ok(KeyKind::MlDsa87),
        other => Err(format!("key algorithm {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vector_cert(name: &str) -> Certificate {
        let pem = std::fs::read(format!("tests/data/vectors/pki/{name}.pem")).unwrap();
        let blocks = crate::identity::pem::parse(&pem).unwrap();
        Certificate::from_der(&blocks[0].der).unwrap()
    }

    #[test]
    fn reads_serials_keys_and_validity_of_the_vector_pki() {
        let rsa = vector_cert("rsa-leaf");
        // 21 DER bytes (a 20-byte value with the top bit set): accepted on purpose, as the
        // service and the Go helper (big.Int) accept it.
        assert_eq!(rsa.serial_der().len(), 21);
        assert_eq!(
            rsa.serial_decimal(),
            "891573975930151669966565662908810063541989944604"
        );
        assert_eq!(rsa.key_kind(), Ok(KeyKind::Rsa { bits: 2048 }));
        assert_eq!(vector_cert("p256-leaf").key_kind(), Ok(KeyKind::EcP256));
        let p384 = vector_cert("p384-leaf");
        assert_eq!(p384.key_kind(), Ok(KeyKind::EcP384));
        assert_eq!(p384.serial_decimal(), "4660");
        assert_eq!(p384.serial_hex(), "1234");
        assert_eq!(
            p384.not_before(),
            ::time::macros::datetime!(2026-01-01 00:00:00 UTC)
        );
        assert!(vector_cert("root-ca").is_ca());
        assert!(!p384.is_ca());
    }

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        let err = Certificate::from_der(b"\x30\x03secret").unwrap_err();
        assert!(!err.contains("secret"));
    }
}
