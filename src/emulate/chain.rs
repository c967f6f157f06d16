//! Certificate checks of the emulated service: the key kind of a signing certificate, and the
//! path from the leaf through the intermediates it sent to one of the trust anchor's
//! certificates, with signatures, names, validity dates and CA constraints checked the way a
//! PKIX verifier does. No revocation: the emulator has no CRL configuration.

use x509_parser::certificate::X509Certificate;
use x509_parser::oid_registry::{
    OID_EC_P256, OID_KEY_TYPE_EC_PUBLIC_KEY, OID_NIST_EC_P384, OID_PKCS1_RSAENCRYPTION,
    OID_PKCS1_RSASSAPSS, OID_PKCS1_SHA256WITHRSA, OID_PKCS1_SHA384WITHRSA, OID_PKCS1_SHA512WITHRSA,
    OID_SIG_ECDSA_WITH_SHA256, OID_SIG_ECDSA_WITH_SHA384, OID_SIG_ECDSA_WITH_SHA512,
    OID_SIG_ED25519,
};

use crate::signer::KeyKind;

/// Parses one DER certificate, refusing trailing bytes (a header holding two certificates
/// glued together must not pass as the first one).
pub(crate) fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("trailing bytes after the certificate".to_string()),
        Err(e) => Err(e.to_string()),
    }
}

/// The key kind of a certificate's subject public key, or a reason it is not supported.
pub(crate) fn key_kind(cert: &X509Certificate<'_>) -> Result<KeyKind, String> {
    let spki = cert.public_key();
    let alg = &spki.algorithm.algorithm;
    if *alg == OID_PKCS1_RSAENCRYPTION {
        match spki.parsed() {
            Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Ok(KeyKind::Rsa {
                bits: crate::der::bit_length(rsa.modulus),
            }),
            _ => Err("malformed RSA public key".to_string()),
        }
    } else if *alg == OID_KEY_TYPE_EC_PUBLIC_KEY {
        let curve = spki
            .algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.as_oid().ok());
        match curve {
            Some(c) if c == OID_EC_P256 => Ok(KeyKind::EcP256),
            Some(c) if c == OID_NIST_EC_P384 => Ok(KeyKind::EcP384),
            Some(c) => Err(format!(
                "EC curve {c} is not supported (P-256 and P-384 are)"
            )),
            None => Err("EC public key without a named curve".to_string()),
        }
    } else if let Some(kind) = ml_dsa_kind(alg) {
        Ok(kind)
    } else {
        Err(format!(
            "public key algorithm {alg} is not supported (RSA, EC P-256, P-384 and ML-DSA are)"
        ))
    }
}

/// `id-ml-dsa-44/65/87` (FIPS 204, RFC 9881): both the key and the signature algorithm.
fn ml_dsa_kind(oid: &x509_parser::der_parser::oid::Oid<'_>) -> Option<KeyKind> {
    match oid.to_id_string().as_str() {
        "2.16.840.1.101.3.4.3.17" => Some(KeyKind::MlDsa44),
        "2.16.840.1.101.3.4.3.18" => Some(KeyKind::MlDsa65),
        "2.16.840.1.101.3.4.3.19" => Some(KeyKind::MlDsa87),
        _ => None,
    }
}

/// The subject as `CN=...` for `sourceIdentity`: the service sets the source identity to
/// the subject's common name.
pub(crate) fn source_identity(cert: &X509Certificate<'_>) -> String {
    match cert
        .subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
    {
        Some(cn) => format!("CN={cn}"),
        None => cert.subject().to_string(),
    }
}

/// A short name of a certificate for messages: its subject.
fn name(cert: &X509Certificate<'_>) -> String {
    let s = cert.subject().to_string();
    if s.is_empty() {
        "(empty subject)".to_string()
    } else {
        s
    }
}

/// The service refuses MD5 and SHA-1 signed certificates; only these are accepted.
fn strong_signature(cert: &X509Certificate<'_>) -> Result<(), String> {
    let alg = &cert.signature_algorithm.algorithm;
    let strong = [
        OID_PKCS1_SHA256WITHRSA,
        OID_PKCS1_SHA384WITHRSA,
        OID_PKCS1_SHA512WITHRSA,
        OID_PKCS1_RSASSAPSS,
        OID_SIG_ECDSA_WITH_SHA256,
        OID_SIG_ECDSA_WITH_SHA384,
        OID_SIG_ECDSA_WITH_SHA512,
        OID_SIG_ED25519,
    ];
    if strong.iter().any(|oid| oid == alg) || ml_dsa_kind(alg).is_some() {
        Ok(())
    } else {
        Err(format!(
            "certificate '{}' is signed with {alg}, which is not SHA-256 or stronger",
            name(cert)
        ))
    }
}

/// `now` (Unix seconds) must be inside the certificate's validity period.
fn within_validity(cert: &X509Certificate<'_>, now: i64, role: &str) -> Result<(), String> {
    let v = cert.validity();
    if now < v.not_before.timestamp() {
        return Err(format!(
            "{role} '{}' is not valid before {}",
            name(cert),
            v.not_before
        ));
    }
    if now > v.not_after.timestamp() {
        return Err(format!(
            "{role} '{}' expired at {}",
            name(cert),
            v.not_after
        ));
    }
    Ok(())
}

/// The checks every CA on the path must pass: CA=true, key usage allows certificate signing,
/// and a pathLenConstraint that allows `below` intermediate CAs under it.
fn usable_ca(cert: &X509Certificate<'_>, below: u32, role: &str) -> Result<(), String> {
    let bc = cert.basic_constraints().map_err(|e| {
        format!(
            "{role} '{}' has a malformed basicConstraints: {e}",
            name(cert)
        )
    })?;
    let Some(bc) = bc.filter(|bc| bc.value.ca) else {
        return Err(format!(
            "{role} '{}' is not a CA (basicConstraints CA=true missing)",
            name(cert)
        ));
    };
    if let Some(limit) = bc.value.path_len_constraint
        && below > limit
    {
        return Err(format!(
            "{role} '{}' allows {limit} intermediate CA(s) below it, the path has {below}",
            name(cert)
        ));
    }
    if let Ok(Some(ku)) = cert.key_usage()
        && !ku.value.key_cert_sign()
    {
        return Err(format!(
            "{role} '{}' key usage does not allow certificate signing",
            name(cert)
        ));
    }
    Ok(())
}

/// Whether `parent` issued `child`: the names match and the signature verifies with the
/// parent's key. `Err` carries why a name match did not verify, so the message can say so.
fn issued_by(child: &X509Certificate<'_>, parent: &X509Certificate<'_>) -> Result<bool, String> {
    if child.issuer().as_raw() != parent.subject().as_raw() {
        return Ok(false);
    }
    // x509-parser does not know the ML-DSA signature OIDs: verify those with aws-lc-rs.
    if let Some(kind) = ml_dsa_kind(&child.signature_algorithm.algorithm) {
        let parent_key = parent.public_key();
        let ok = ml_dsa_kind(&parent_key.algorithm.algorithm) == Some(kind)
            && child.signature_algorithm.parameters.is_none()
            && crate::signer::verify(
                kind,
                &parent_key.subject_public_key.data,
                child.tbs_certificate.as_ref(),
                crate::signer::Digest::Sha256,
                &child.signature_value.data,
            );
        return if ok {
            Ok(true)
        } else {
            Err(format!(
                "the {kind} signature on '{}' does not verify with the key of '{}'",
                name(child),
                name(parent)
            ))
        };
    }
    match child.verify_signature(Some(parent.public_key())) {
        Ok(()) => Ok(true),
        Err(e) => Err(format!(
            "the signature on '{}' does not verify with the key of '{}': {e}",
            name(child),
            name(parent)
        )),
    }
}

/// Checks the end-entity certificate on its own: dates, signature hash, not a CA, and a key
/// usage (when present) that allows digital signatures.
pub(crate) fn check_leaf(leaf: &X509Certificate<'_>, now: i64) -> Result<(), String> {
    within_validity(leaf, now, "signing certificate")?;
    strong_signature(leaf)?;
    if let Ok(Some(bc)) = leaf.basic_constraints()
        && bc.value.ca
    {
        return Err(format!(
            "signing certificate '{}' is a CA certificate",
            name(leaf)
        ));
    }
    if let Ok(Some(ku)) = leaf.key_usage()
        && !ku.value.digital_signature()
    {
        return Err(format!(
            "signing certificate '{}' key usage does not include digitalSignature",
            name(leaf)
        ));
    }
    Ok(())
}

/// Builds and checks a path leaf -> intermediates (any order, each used once) -> an anchor.
/// `Err` is a human reason, logged and sent after "Untrusted signing certificate: ".
pub(crate) fn verify_path(
    leaf: &X509Certificate<'_>,
    intermediates: &[X509Certificate<'_>],
    anchors: &[X509Certificate<'_>],
    now: i64,
) -> Result<(), String> {
    check_leaf(leaf, now)?;
    // Each intermediate leaves this list once it is used, so none is used twice.
    let mut unused: Vec<&X509Certificate<'_>> = intermediates.iter().collect();
    let mut current = leaf;
    let mut problem: Option<String> = None;
    // At most one step per intermediate, plus the final step to an anchor. `below` counts
    // the intermediate CAs between the CA being checked and the leaf, for pathLenConstraint.
    for below in (0u32..).take(intermediates.len() + 1) {
        for anchor in anchors {
            match issued_by(current, anchor) {
                Ok(true) => {
                    within_validity(anchor, now, "trust anchor certificate")?;
                    return usable_ca(anchor, below, "trust anchor certificate");
                }
                Ok(false) => {}
                Err(why) => problem = Some(why),
            }
        }
        let mut next = None;
        for (i, candidate) in unused.iter().enumerate() {
            match issued_by(current, candidate) {
                Ok(true) => {
                    next = Some(i);
                    break;
                }
                Ok(false) => {}
                Err(why) => problem = Some(why),
            }
        }
        let Some(inter) = next.map(|i| unused.remove(i)) else {
            break;
        };
        within_validity(inter, now, "intermediate certificate")?;
        strong_signature(inter)?;
        usable_ca(inter, below, "intermediate certificate")?;
        current = inter;
    }
    Err(problem.unwrap_or_else(|| {
        format!(
            "no trust anchor certificate or intermediate in X-Amz-X509-Chain issued '{}' (issuer '{}')",
            name(current),
            current.issuer()
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pem(stem: &str) -> Vec<u8> {
        use rustls_pki_types::{CertificateDer, pem::PemObject};
        let path = format!(
            "{}/tests/data/vectors/pki/{stem}.pem",
            env!("CARGO_MANIFEST_DIR")
        );
        CertificateDer::from_pem_file(path).unwrap().to_vec()
    }

    // 2026-11-24T12:33:52Z, the vectors' instant.
    const NOW: i64 = 1_795_523_632;

    #[test]
    fn vector_keys_are_recognised() {
        let (rsa, p256, p384) = (pem("rsa-leaf"), pem("p256-leaf"), pem("p384-leaf"));
        assert_eq!(
            key_kind(&parse_der(&rsa).unwrap()).unwrap(),
            KeyKind::Rsa { bits: 2048 }
        );
        assert_eq!(
            key_kind(&parse_der(&p256).unwrap()).unwrap(),
            KeyKind::EcP256
        );
        assert_eq!(
            key_kind(&parse_der(&p384).unwrap()).unwrap(),
            KeyKind::EcP384
        );
        assert_eq!(
            source_identity(&parse_der(&rsa).unwrap()),
            "CN=rsa2048-leaf"
        );
    }

    #[test]
    fn vector_paths_verify_directly_and_through_the_intermediate() {
        let (leaf, inter, root) = (pem("rsa-leaf"), pem("intermediate-ca"), pem("root-ca"));
        let (leaf, inter, root) = (
            parse_der(&leaf).unwrap(),
            parse_der(&inter).unwrap(),
            parse_der(&root).unwrap(),
        );
        verify_path(&leaf, &[], std::slice::from_ref(&inter), NOW).unwrap();
        verify_path(
            &leaf,
            std::slice::from_ref(&inter),
            std::slice::from_ref(&root),
            NOW,
        )
        .unwrap();
        // The anchor may also sit in a bundle with unrelated CAs.
        verify_path(
            &leaf,
            std::slice::from_ref(&inter),
            &[inter.clone(), root.clone()],
            NOW,
        )
        .unwrap();
        let err = verify_path(&leaf, &[], std::slice::from_ref(&root), NOW).unwrap_err();
        assert!(err.contains("no trust anchor"), "{err}");
    }

    #[test]
    fn dates_are_enforced_for_leaf_and_anchor() {
        let (leaf, inter) = (pem("p256-leaf"), pem("intermediate-ca"));
        let (leaf, inter) = (parse_der(&leaf).unwrap(), parse_der(&inter).unwrap());
        // 2036-01-02: everything has expired.
        let err = verify_path(&leaf, &[], std::slice::from_ref(&inter), 2_082_844_800).unwrap_err();
        assert!(err.contains("expired"), "{err}");
        // 2025-12-31: not yet valid.
        let err = verify_path(&leaf, &[], std::slice::from_ref(&inter), 1_767_139_200).unwrap_err();
        assert!(err.contains("not valid before"), "{err}");
    }

    #[test]
    fn a_leaf_is_not_accepted_as_an_issuer() {
        let (leaf, other) = (pem("p256-leaf"), pem("p384-leaf"));
        let (leaf, other) = (parse_der(&leaf).unwrap(), parse_der(&other).unwrap());
        assert!(
            verify_path(
                &leaf,
                std::slice::from_ref(&other),
                std::slice::from_ref(&other),
                NOW
            )
            .is_err()
        );
    }

    #[test]
    fn ml_dsa_keys_and_ml_dsa_signed_chains_verify_and_tampering_is_caught() {
        use crate::pki::{Ca, KeyType, LeafOptions, Validity};
        let window = Validity::relative_to_now(time::Duration::hours(-1), time::Duration::hours(1));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let root = Ca::new_root("R", KeyType::MlDsa44, window).unwrap();
        let inter = root
            .issue_intermediate("I", KeyType::MlDsa87, window)
            .unwrap();
        let other_root = Ca::new_root("R", KeyType::MlDsa44, window).unwrap();
        let leaf = inter
            .issue_leaf("L", KeyType::MlDsa65, LeafOptions::new(window))
            .unwrap();
        let (root_der, inter_der, other_der) =
            (root.cert_der(), inter.cert_der(), other_root.cert_der());
        let root_cert = parse_der(root_der).unwrap();
        let inter_cert = parse_der(inter_der).unwrap();
        let leaf_cert = parse_der(&leaf.cert_der).unwrap();
        assert_eq!(key_kind(&leaf_cert).unwrap(), KeyKind::MlDsa65);
        assert_eq!(key_kind(&inter_cert).unwrap(), KeyKind::MlDsa87);
        verify_path(
            &leaf_cert,
            std::slice::from_ref(&inter_cert),
            std::slice::from_ref(&root_cert),
            now,
        )
        .unwrap();
        // Same names, another key: the ML-DSA signature does not verify.
        let other = parse_der(other_der).unwrap();
        let err = verify_path(
            &leaf_cert,
            std::slice::from_ref(&inter_cert),
            std::slice::from_ref(&other),
            now,
        )
        .unwrap_err();
        assert!(err.contains("ML-DSA-44 signature"), "{err}");
        // A flipped bit in the leaf's signature.
        let mut bad = leaf.cert_der.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        let bad = parse_der(&bad).unwrap();
        let err = verify_path(&bad, &[], std::slice::from_ref(&inter_cert), now).unwrap_err();
        assert!(err.contains("does not verify"), "{err}");
    }
}
