//! The certificate group: it loads, is not a CA, allows digitalSignature, has a key type and
//! signature algorithm the service accepts, a well-encoded serial, and is inside its validity
//! window (a warning under seven days left).

use time::OffsetDateTime;
use x509_parser::prelude::{FromDer, X509Certificate};

use super::{Kind, Report, days};
use crate::identity::{Certificate, Identity, IdentityError, IdentitySpec, source};

const KIND: Kind = Kind::Config;
/// Under this much validity left, a warning.
const WARN_LEFT: time::Duration = time::Duration::days(7);

/// The identity as far as it loads: the leaf (read alone when it can be), and everything
/// else or why not.
pub(super) struct Loaded {
    pub certificate: Option<Certificate>,
    pub identity: Option<Identity>,
    pub error: Option<IdentityError>,
}

/// Loads the identity once (a password or PIN is asked for at most once) and reports
/// whether the certificate could be read.
pub(super) fn load(spec: &IdentitySpec, report: &mut Report) -> Loaded {
    let peeked = Identity::peek_certificate(spec).or_else(|| read_leaf(spec));
    let (identity, error) = match Identity::load(spec) {
        Ok(identity) => (Some(identity), None),
        Err(e) => (None, Some(e)),
    };
    let certificate = peeked.or_else(|| identity.as_ref().map(|i| i.certificate.clone()));
    let from = spec
        .certificate
        .as_deref()
        .map(source::describe)
        .unwrap_or_else(|| "--certificate".into());
    match (&certificate, &error) {
        (Some(cert), _) => report.ok(
            "certificate.load",
            KIND,
            format!(
                "{from}: subject {}, issuer {}, serial {}",
                cert.subject(),
                cert.issuer(),
                cert.serial_decimal()
            ),
        ),
        (None, Some(e)) => report.fail_maybe(
            "certificate.load",
            KIND,
            crate::chain::Chain::new(e, None).to_string(),
            e.hint(),
        ),
        (None, None) => report.fail(
            "certificate.load",
            KIND,
            format!("{from} holds no certificate"),
            "pass the workload's certificate with --certificate",
        ),
    }
    Loaded {
        certificate,
        identity,
        error,
    }
}

/// The first certificate of `--certificate` when it is a PEM or DER file, a variable or
/// standard input, even without `--private-key` (which [`Identity::peek_certificate`]
/// wants), so the certificate is judged on its own when the key is what is missing.
fn read_leaf(spec: &IdentitySpec) -> Option<Certificate> {
    read_all(spec.certificate.as_deref()?)?.into_iter().next()
}

/// The intermediates as the loader would send them (`--intermediates`, else the
/// certificates after the leaf in its file), read without the key: so the chain is checked
/// even when the key does not load.
pub(super) fn read_chain(spec: &IdentitySpec) -> Option<Vec<Certificate>> {
    match &spec.intermediates {
        Some(path) => read_all(path),
        None => Some(
            read_all(spec.certificate.as_deref()?)?
                .into_iter()
                .skip(1)
                .collect(),
        ),
    }
}

/// Every certificate of a file, variable or standard input (not a PKCS#11 token).
fn read_all(value: &str) -> Option<Vec<Certificate>> {
    if value
        .get(..7)
        .is_some_and(|p| p.eq_ignore_ascii_case("pkcs11:"))
    {
        return None;
    }
    let data = source::Source::parse(value).read().ok()?;
    crate::identity::parse_certificates(&data).ok()
}

/// Checks the leaf; true when nothing failed.
pub(super) fn check(cert: &Certificate, now: OffsetDateTime, report: &mut Report) -> bool {
    let before = report.checks.len();
    if cert.is_ca() {
        report.fail(
            "certificate.not-ca",
            KIND,
            format!(
                "{} is a CA certificate (basicConstraints CA:TRUE)",
                cert.subject()
            ),
            "pass the workload's own certificate, issued by the CA, not the CA's: the service refuses a CA certificate as the signer",
        );
    } else {
        report.ok(
            "certificate.not-ca",
            KIND,
            "an end-entity certificate (not a CA)",
        );
    }
    match X509Certificate::from_der(cert.der()) {
        Ok((_, x509)) => {
            key_usage(&x509, report);
            signature_algorithm(&x509, report);
        }
        Err(e) => report.fail(
            "certificate.extensions",
            KIND,
            format!("the certificate does not parse as X.509: {e}"),
            "reissue the certificate",
        ),
    }
    match cert.key_kind() {
        Ok(kind) => report.ok("certificate.key-type", KIND, format!("{kind} public key")),
        Err(what) => report.fail(
            "certificate.key-type",
            KIND,
            format!("a {what}, which IAM Roles Anywhere does not accept"),
            "issue the certificate for an RSA (2048 bits or more) or EC P-256/P-384 key",
        ),
    }
    serial(cert, report);
    validity(cert, now, report);
    !report
        .checks
        .iter()
        .skip(before)
        .any(|c| c.status == super::Status::Fail)
}

fn key_usage(x509: &X509Certificate<'_>, report: &mut Report) {
    match x509.key_usage() {
        Ok(Some(ku)) if ku.value.digital_signature() => {
            report.ok("certificate.key-usage", KIND, "keyUsage includes digitalSignature")
        }
        Ok(Some(ku)) => report.fail(
            "certificate.key-usage",
            KIND,
            format!("keyUsage is {} without digitalSignature", ku.value),
            "reissue the certificate with keyUsage digitalSignature (the service refuses it otherwise)",
        ),
        Ok(None) => report.warn(
            "certificate.key-usage",
            KIND,
            "the certificate has no keyUsage extension",
            "reissue it with keyUsage digitalSignature, as IAM Roles Anywhere documents",
        ),
        Err(e) => report.fail(
            "certificate.key-usage",
            KIND,
            format!("the keyUsage extension does not parse: {e}"),
            "reissue the certificate",
        ),
    }
}

/// The certificate's own signature: SHA-1 and MD5 are refused by the service.
fn signature_algorithm(x509: &X509Certificate<'_>, report: &mut Report) {
    let oid = x509.signature_algorithm.algorithm.to_id_string();
    let (name, good) = match oid.as_str() {
        "1.2.840.113549.1.1.11" => ("sha256WithRSAEncryption", Some(true)),
        "1.2.840.113549.1.1.12" => ("sha384WithRSAEncryption", Some(true)),
        "1.2.840.113549.1.1.13" => ("sha512WithRSAEncryption", Some(true)),
        "1.2.840.113549.1.1.10" => ("RSASSA-PSS", Some(true)),
        "1.2.840.10045.4.3.2" => ("ecdsa-with-SHA256", Some(true)),
        "1.2.840.10045.4.3.3" => ("ecdsa-with-SHA384", Some(true)),
        "1.2.840.10045.4.3.4" => ("ecdsa-with-SHA512", Some(true)),
        "2.16.840.1.101.3.4.3.17" => ("ML-DSA-44", Some(true)),
        "2.16.840.1.101.3.4.3.18" => ("ML-DSA-65", Some(true)),
        "2.16.840.1.101.3.4.3.19" => ("ML-DSA-87", Some(true)),
        "1.2.840.113549.1.1.5" => ("sha1WithRSAEncryption", Some(false)),
        "1.2.840.10045.4.1" => ("ecdsa-with-SHA1", Some(false)),
        "1.2.840.113549.1.1.4" => ("md5WithRSAEncryption", Some(false)),
        _ => ("", None),
    };
    match good {
        Some(true) => report.ok("certificate.signature", KIND, format!("signed with {name}")),
        Some(false) => report.fail(
            "certificate.signature",
            KIND,
            format!("signed with {name}"),
            "have the CA reissue it with SHA-256 or stronger: the service refuses SHA-1 and MD5",
        ),
        None => report.warn(
            "certificate.signature",
            KIND,
            format!("signed with an algorithm this tool does not know ({oid})"),
            "IAM Roles Anywhere accepts RSA and ECDSA with SHA-256 or stronger",
        ),
    }
}

/// The serial's DER INTEGER: positive, at most 20 octets of value, minimally encoded.
fn serial(cert: &Certificate, report: &mut Report) {
    let raw = cert.serial_der();
    let value = raw.iter().skip_while(|b| **b == 0).count();
    let problem = match raw.first() {
        None => Some("the serial number is empty"),
        Some(b) if b & 0x80 != 0 => Some("the serial number is negative"),
        Some(_) if value == 0 => Some("the serial number is zero"),
        Some(_) if value > 20 => Some("the serial number is longer than 20 octets (RFC 5280)"),
        _ => None,
    };
    let redundant =
        raw.len() > 1 && raw.first() == Some(&0) && raw.get(1).is_some_and(|b| b & 0x80 == 0);
    match problem {
        Some(p) => report.fail(
            "certificate.serial",
            KIND,
            format!("{p} (hex {})", cert.serial_hex()),
            "have the CA reissue it with a positive serial of at most 20 octets",
        ),
        None if redundant => report.warn(
            "certificate.serial",
            KIND,
            format!(
                "serial {} is not minimally encoded (a redundant leading zero octet)",
                cert.serial_hex()
            ),
            "strict parsers refuse such serials: have the CA reissue the certificate",
        ),
        None => report.ok(
            "certificate.serial",
            KIND,
            format!("serial {} ({value} octets)", cert.serial_decimal()),
        ),
    }
}

fn validity(cert: &Certificate, now: OffsetDateTime, report: &mut Report) {
    let (from, until) = (
        crate::identity::rfc3339(cert.not_before()),
        crate::identity::rfc3339(cert.not_after()),
    );
    let subject = cert.subject();
    if now > cert.not_after() {
        report.fail(
            "certificate.validity",
            KIND,
            format!(
                "{subject} expired at {until} ({} ago)",
                days(now - cert.not_after())
            ),
            "renew the certificate with your CA (or check this host's clock)",
        );
    } else if now < cert.not_before() {
        report.fail(
            "certificate.validity",
            KIND,
            format!(
                "{subject} is not valid until {from} (in {})",
                days(cert.not_before() - now)
            ),
            "check this host's clock (timedatectl status), or wait until the certificate is valid",
        );
    } else if cert.not_after() - now < WARN_LEFT {
        report.warn(
            "certificate.validity",
            KIND,
            format!(
                "{subject} expires at {until}: {} left",
                days(cert.not_after() - now)
            ),
            "renew it soon (serve picks up the renewed files by itself)",
        );
    } else {
        report.ok(
            "certificate.validity",
            KIND,
            format!("valid until {until}: {} left", days(cert.not_after() - now)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::commands::doctor::Status;
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair, KeyUsagePurpose};

    fn judged(edit: impl FnOnce(&mut CertificateParams)) -> Vec<(String, Status)> {
        let mut params = CertificateParams::new(vec!["leaf.test".to_string()]).unwrap();
        params.not_before = OffsetDateTime::now_utc() - time::Duration::hours(1);
        params.not_after = OffsetDateTime::now_utc() + time::Duration::days(30);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        edit(&mut params);
        let key = KeyPair::generate().unwrap();
        let der = params.self_signed(&key).unwrap().der().to_vec();
        let cert = Certificate::from_der(&der).unwrap();
        let mut report = Report::default();
        check(&cert, OffsetDateTime::now_utc(), &mut report);
        report
            .checks
            .into_iter()
            .map(|c| (c.name, c.status))
            .collect()
    }

    fn status_of(checks: &[(String, Status)], name: &str) -> Status {
        checks.iter().find(|(n, _)| n == name).unwrap().1
    }

    #[test]
    fn a_good_leaf_passes_and_each_fault_is_its_own_line() {
        let good = judged(|_| {});
        assert!(good.iter().all(|(_, s)| *s == Status::Ok), "{good:?}");
        let no_signature = judged(|p| p.key_usages = vec![KeyUsagePurpose::KeyEncipherment]);
        assert_eq!(
            status_of(&no_signature, "certificate.key-usage"),
            Status::Fail
        );
        let no_extension = judged(|p| p.key_usages = Vec::new());
        assert_eq!(
            status_of(&no_extension, "certificate.key-usage"),
            Status::Warn
        );
        let ca = judged(|p| p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained));
        assert_eq!(status_of(&ca, "certificate.not-ca"), Status::Fail);
        let not_yet = judged(|p| {
            p.not_before = OffsetDateTime::now_utc() + time::Duration::days(1);
        });
        assert_eq!(status_of(&not_yet, "certificate.validity"), Status::Fail);
    }
}
