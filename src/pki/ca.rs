//! Certificate authorities and the certificates they issue.

use std::fmt;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use super::{GeneratedKey, KeyType, PkiError, pem_encode, random_fill};

/// Organization name put in every CA subject, as a warning to whoever looks at one.
const CA_ORGANIZATION: &str = "rolesanywhere-agent throwaway PKI - not for trust";

/// Length of the random serial numbers given when none is asked for.
const SERIAL_LEN: usize = 16;

/// A certificate validity window (`notBefore` ..= `notAfter`, whole seconds, UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    /// First instant the certificate is valid.
    pub not_before: OffsetDateTime,
    /// Last instant the certificate is valid.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// A window from `not_before` to `not_after`.
    pub fn new(not_before: OffsetDateTime, not_after: OffsetDateTime) -> Self {
        Validity {
            not_before,
            not_after,
        }
    }

    /// A window relative to the current time, truncated to whole seconds:
    /// from `now + from` to `now + to` (use negative durations for the past).
    ///
    /// Out-of-range results saturate; issuing a certificate with them then fails.
    pub fn relative_to_now(from: Duration, to: Duration) -> Self {
        let now = now_seconds();
        Validity::new(now.saturating_add(from), now.saturating_add(to))
    }

    /// Checks that the window is non-empty and representable in a certificate.
    fn check(&self) -> Result<(), PkiError> {
        if self.not_before >= self.not_after {
            return Err(PkiError::Invalid(format!(
                "validity starts ({}) at or after it ends ({})",
                self.not_before, self.not_after
            )));
        }
        // 0001-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z: what GeneralizedTime can hold.
        const RANGE: std::ops::RangeInclusive<i64> = -62_135_596_800..=253_402_300_799;
        for t in [self.not_before, self.not_after] {
            if !RANGE.contains(&t.unix_timestamp()) {
                return Err(PkiError::Invalid(format!(
                    "validity date out of range: {t}"
                )));
            }
        }
        Ok(())
    }
}

/// The current UTC time, truncated to whole seconds (what a certificate can hold).
pub(super) fn now_seconds() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(0).unwrap_or(now)
}

/// How to issue a leaf certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafOptions {
    /// First instant the certificate is valid.
    pub not_before: OffsetDateTime,
    /// Last instant the certificate is valid.
    pub not_after: OffsetDateTime,
    /// Big-endian serial number magnitude (1 to 20 bytes after leading zeros, not all zero);
    /// it is always encoded as a positive INTEGER, so a value whose top bit is set gets a
    /// leading zero octet. `None`: a random positive 16-byte serial.
    pub serial: Option<Vec<u8>>,
}

impl LeafOptions {
    /// Options for a leaf valid during `validity`, with a random serial.
    pub fn new(validity: Validity) -> Self {
        LeafOptions {
            not_before: validity.not_before,
            not_after: validity.not_after,
            serial: None,
        }
    }

    /// The same options with a fixed serial (see [`LeafOptions::serial`]).
    #[must_use]
    pub fn with_serial(mut self, serial: impl Into<Vec<u8>>) -> Self {
        self.serial = Some(serial.into());
        self
    }
}

/// An issued certificate and its private key.
#[derive(Clone)]
pub struct Issued {
    /// The certificate, DER.
    pub cert_der: Vec<u8>,
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`, LF line endings).
    pub cert_pem: String,
    /// The certificate's private key.
    pub key: GeneratedKey,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("cert_der_len", &self.cert_der.len())
            .field("key", &self.key)
            .finish()
    }
}

/// The certificate DER, so an `Issued` can stand wherever certificate bytes are asked for
/// (e.g. the chain of [`pkcs12`](super::pkcs12)).
impl AsRef<[u8]> for Issued {
    fn as_ref(&self) -> &[u8] {
        &self.cert_der
    }
}

impl Issued {
    fn new(cert: &rcgen::Certificate, key: GeneratedKey) -> Result<Self, PkiError> {
        let cert_der = cert.der().to_vec();
        let cert_pem = pem_encode("CERTIFICATE", &cert_der)?;
        Ok(Issued {
            cert_der,
            cert_pem,
            key,
        })
    }
}

/// A certificate authority (root or intermediate) that can issue certificates.
///
/// It keeps its own certificate and key; its key never leaves memory unless the caller
/// writes [`Ca::certificate`]`().key` somewhere.
pub struct Ca {
    cert: Issued,
    issuer: Issuer<'static, KeyPair>,
}

impl fmt::Debug for Ca {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ca")
            .field("cert", &self.cert)
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// A new self-signed root CA named `name` (subject CN) with a fresh `key_type` key.
    ///
    /// The certificate has basicConstraints CA=true without a path length limit and keyUsage
    /// keyCertSign, cRLSign and digitalSignature. It signs itself with its own key's algorithm.
    pub fn new_root(name: &str, key_type: KeyType, validity: Validity) -> Result<Ca, PkiError> {
        let params = ca_params(name, validity)?;
        let (key, pair) = GeneratedKey::generate_pair(key_type)?;
        let cert = params.self_signed(&pair)?;
        Ok(Ca {
            cert: Issued::new(&cert, key)?,
            issuer: Issuer::new(params, pair),
        })
    }

    /// A new intermediate CA named `name`, issued (and signed) by this CA.
    ///
    /// Same extensions as a root, plus an authorityKeyIdentifier.
    pub fn issue_intermediate(
        &self,
        name: &str,
        key_type: KeyType,
        validity: Validity,
    ) -> Result<Ca, PkiError> {
        let mut params = ca_params(name, validity)?;
        params.use_authority_key_identifier_extension = true;
        let (key, pair) = GeneratedKey::generate_pair(key_type)?;
        let cert = params.signed_by(&pair, &self.issuer)?;
        Ok(Ca {
            cert: Issued::new(&cert, key)?,
            issuer: Issuer::new(params, pair),
        })
    }

    /// A new end-entity certificate for `common_name` (its only subject attribute), with a
    /// fresh `key_type` key, signed by this CA.
    ///
    /// Extensions: basicConstraints CA=false (critical), keyUsage digitalSignature,
    /// extendedKeyUsage clientAuth, subjectKeyIdentifier, authorityKeyIdentifier.
    pub fn issue_leaf(
        &self,
        common_name: &str,
        key_type: KeyType,
        options: LeafOptions,
    ) -> Result<Issued, PkiError> {
        let validity = Validity::new(options.not_before, options.not_after);
        validity.check()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.serial_number = Some(match options.serial {
            Some(serial) => explicit_serial(&serial)?,
            None => random_serial()?,
        });
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let (key, pair) = GeneratedKey::generate_pair(key_type)?;
        let cert = params.signed_by(&pair, &self.issuer)?;
        Issued::new(&cert, key)
    }

    /// This CA's own certificate and key.
    pub fn certificate(&self) -> &Issued {
        &self.cert
    }

    /// This CA's certificate, DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert.cert_der
    }

    /// This CA's certificate, PEM.
    pub fn cert_pem(&self) -> &str {
        &self.cert.cert_pem
    }
}

/// Parameters shared by roots and intermediates.
fn ca_params(name: &str, validity: Validity) -> Result<CertificateParams, PkiError> {
    validity.check()?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.distinguished_name.push(DnType::CommonName, name);
    params
        .distinguished_name
        .push(DnType::OrganizationName, CA_ORGANIZATION);
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    params.serial_number = Some(random_serial()?);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
    ];
    Ok(params)
}

/// A random positive serial of exactly [`SERIAL_LEN`] content octets (top bit clear, first
/// octet non-zero, so DER needs no padding and strips nothing).
fn random_serial() -> Result<SerialNumber, PkiError> {
    let mut bytes = [0u8; SERIAL_LEN];
    random_fill(&mut bytes)?;
    bytes[0] &= 0x7f;
    if bytes[0] == 0 {
        bytes[0] = 0x01;
    }
    Ok(SerialNumber::from_slice(&bytes))
}

/// A caller-chosen serial, checked against RFC 5280's limits on the magnitude.
fn explicit_serial(serial: &[u8]) -> Result<SerialNumber, PkiError> {
    let magnitude = crate::der::strip_leading_zeros(serial);
    if magnitude.is_empty() {
        return Err(PkiError::Invalid("serial number must be positive".into()));
    }
    if magnitude.len() > 20 {
        return Err(PkiError::Invalid(format!(
            "serial number has {} octets, at most 20 allowed",
            magnitude.len()
        )));
    }
    Ok(SerialNumber::from_slice(magnitude))
}

#[cfg(test)]
mod tests {
    use super::*;
    use x509_parser::extensions::ParsedExtension;
    use x509_parser::prelude::{FromDer, X509Certificate};

    fn hours(h: i64) -> Duration {
        Duration::hours(h)
    }

    #[test]
    fn leaf_is_an_end_entity_client_certificate() {
        let root = Ca::new_root(
            "Test Root",
            KeyType::P256,
            Validity::relative_to_now(hours(-2), hours(48)),
        )
        .unwrap();
        let window = Validity::relative_to_now(hours(-1), hours(24));
        let leaf = root
            .issue_leaf("workload", KeyType::Rsa2048, LeafOptions::new(window))
            .unwrap();
        let (rest, cert) = X509Certificate::from_der(&leaf.cert_der).unwrap();
        assert!(rest.is_empty());
        let (_, ca) = X509Certificate::from_der(root.cert_der()).unwrap();

        assert_eq!(cert.issuer(), ca.subject());
        cert.verify_signature(Some(ca.public_key())).unwrap();
        ca.verify_signature(None).unwrap();
        assert_eq!(
            cert.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.10045.4.3.2"
        );
        assert_eq!(cert.subject().to_string(), "CN=workload");
        assert_eq!(cert.raw_serial().len(), SERIAL_LEN);
        assert!(cert.raw_serial()[0] & 0x80 == 0 && cert.raw_serial()[0] != 0);
        assert_eq!(
            cert.validity().not_before.timestamp(),
            window.not_before.unix_timestamp()
        );
        assert_eq!(
            cert.validity().not_after.timestamp(),
            window.not_after.unix_timestamp()
        );

        let bc = cert.basic_constraints().unwrap().unwrap();
        assert!(bc.critical && !bc.value.ca);
        let ku = cert.key_usage().unwrap().unwrap().value;
        assert!(ku.digital_signature() && !ku.key_cert_sign());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.client_auth && !eku.server_auth);
        assert!(cert.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::AuthorityKeyIdentifier(_)
        )));
        // The leaf's key is the one in the certificate.
        assert_eq!(
            leaf.key.public_key_der().unwrap(),
            cert.tbs_certificate.subject_pki.raw
        );

        let ca_bc = ca.basic_constraints().unwrap().unwrap().value;
        assert!(ca_bc.ca);
        assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
    }

    #[test]
    fn rsa_root_signs_with_sha256_and_intermediate_chains() {
        let root = Ca::new_root(
            "R",
            KeyType::Rsa2048,
            Validity::relative_to_now(hours(-1), hours(1)),
        )
        .unwrap();
        let inter = root
            .issue_intermediate(
                "I",
                KeyType::P256,
                Validity::relative_to_now(hours(-1), hours(1)),
            )
            .unwrap();
        let (_, r) = X509Certificate::from_der(root.cert_der()).unwrap();
        let (_, i) = X509Certificate::from_der(inter.cert_der()).unwrap();
        assert_eq!(
            i.signature_algorithm.algorithm.to_id_string(),
            "1.2.840.113549.1.1.11"
        );
        i.verify_signature(Some(r.public_key())).unwrap();
        assert_eq!(i.issuer(), r.subject());
        assert!(i.basic_constraints().unwrap().unwrap().value.ca);
    }

    #[test]
    fn explicit_serials() {
        let root = Ca::new_root(
            "R",
            KeyType::P256,
            Validity::relative_to_now(hours(-1), hours(1)),
        )
        .unwrap();
        let window = Validity::relative_to_now(hours(-1), hours(1));
        let high = vec![0x9c; 20];
        let leaf = root
            .issue_leaf(
                "x",
                KeyType::P256,
                LeafOptions::new(window).with_serial(high.clone()),
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&leaf.cert_der).unwrap();
        assert_eq!(cert.raw_serial(), [&[0u8][..], &high].concat());

        let leaf = root
            .issue_leaf(
                "x",
                KeyType::P256,
                LeafOptions::new(window).with_serial([0, 0x12, 0x34]),
            )
            .unwrap();
        let (_, cert) = X509Certificate::from_der(&leaf.cert_der).unwrap();
        assert_eq!(cert.raw_serial(), [0x12, 0x34]);

        for bad in [vec![], vec![0, 0], vec![1; 21]] {
            let err = root
                .issue_leaf(
                    "x",
                    KeyType::P256,
                    LeafOptions::new(window).with_serial(bad),
                )
                .unwrap_err();
            assert!(matches!(err, PkiError::Invalid(_)), "{err}");
        }
    }

    #[test]
    fn unusable_validity_is_refused() {
        let backwards = Validity::relative_to_now(hours(1), hours(-1));
        assert!(matches!(
            Ca::new_root("R", KeyType::P256, backwards),
            Err(PkiError::Invalid(_))
        ));
        let too_far = Validity::new(
            time::macros::datetime!(0000-06-01 0:00 UTC),
            time::macros::datetime!(2000-01-01 0:00 UTC),
        );
        assert!(matches!(
            Ca::new_root("R", KeyType::P256, too_far),
            Err(PkiError::Invalid(_))
        ));
        let root = Ca::new_root(
            "R",
            KeyType::P256,
            Validity::relative_to_now(hours(-1), hours(1)),
        )
        .unwrap();
        let leaf = root.issue_leaf("x", KeyType::P256, LeafOptions::new(backwards));
        assert!(matches!(leaf, Err(PkiError::Invalid(_))));
        assert_eq!(now_seconds().nanosecond(), 0);
    }
}
