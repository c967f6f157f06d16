//! Round-trip checks of the throwaway test PKI (`rolesanywhere_agent::pki`): every file that
//! `write_test_matrix` writes decodes back to what it claims to be, chains to the right CA, and
//! is accepted by OpenSSL too (`openssl` missing fails the test).

use std::fs;
use std::path::Path;
use std::process::Command;

use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING, EcdsaKeyPair,
    EcdsaSigningAlgorithm, KeyPair, RsaKeyPair,
};
use p12_keystore::{KeyStore, Pkcs12Archive, Pkcs12ImportPolicy};
use pkcs8::pkcs5::pbes2;
use pkcs8::{DecodePrivateKey, EncryptedPrivateKeyInfoRef};
use rolesanywhere_agent::pki::{KeyType, LeafFiles, TEST_PASSWORD, TestMatrix, Validity};
use time::{Duration, OffsetDateTime};
use x509_parser::certificate::X509Certificate;
use x509_parser::pem::parse_x509_pem;
use x509_parser::public_key::PublicKey;

const ECDSA_WITH_SHA256: &str = "1.2.840.10045.4.3.2";
const SHA256_WITH_RSA: &str = "1.2.840.113549.1.1.11";
/// Slack between the test's clock reading and the matrix's (RSA-4096 generation is slow).
const SLACK_SECONDS: i64 = 300;

/// The process's test matrix (one `write_test_matrix` run, copied per test) and when it was
/// generated.
fn matrix() -> (tempfile::TempDir, TestMatrix, OffsetDateTime) {
    crate::support::matrix_generated_at()
}

/// Reads a PEM file: (label, DER).
fn read_pem(path: &Path) -> (String, Vec<u8>) {
    let text = fs::read(path).unwrap();
    let (label, der) =
        pkcs8::der::pem::decode_vec(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (label.to_owned(), der)
}

/// Reads a certificate PEM file as DER.
fn cert_der(path: &Path) -> Vec<u8> {
    let text = fs::read(path).unwrap();
    let (rest, pem) = parse_x509_pem(&text).unwrap();
    assert!(rest.is_empty(), "{}: trailing data", path.display());
    assert_eq!(pem.label, "CERTIFICATE");
    pem.contents
}

fn parse(der: &[u8]) -> X509Certificate<'_> {
    let (rest, cert) = x509_parser::parse_x509_certificate(der).unwrap();
    assert!(rest.is_empty());
    cert
}

/// The subjectPublicKey bits of a certificate.
fn spki_bits<'a>(cert: &'a X509Certificate<'_>) -> &'a [u8] {
    &cert.public_key().subject_public_key.data
}

fn ec_alg(key_type: KeyType) -> &'static EcdsaSigningAlgorithm {
    match key_type {
        KeyType::P256 => &ECDSA_P256_SHA256_ASN1_SIGNING,
        KeyType::P384 => &ECDSA_P384_SHA384_ASN1_SIGNING,
        other => panic!("not an EC key type: {other}"),
    }
}

/// The public key (RSA: PKCS#1 RSAPublicKey; EC: uncompressed point) of a PKCS#8 key.
fn public_of_pkcs8(key_type: KeyType, pkcs8: &[u8]) -> Vec<u8> {
    if key_type.is_rsa() {
        RsaKeyPair::from_pkcs8(pkcs8)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec()
    } else {
        EcdsaKeyPair::from_pkcs8(ec_alg(key_type), pkcs8)
            .unwrap()
            .public_key()
            .as_ref()
            .to_vec()
    }
}

#[cfg(unix)]
fn assert_mode(path: &Path, expected: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mode = fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, expected, "{}", path.display());
}
#[cfg(not(unix))]
fn assert_mode(_: &Path, _: u32) {}

fn assert_near(actual: i64, expected: OffsetDateTime, what: &str) {
    let diff = (actual - expected.unix_timestamp()).abs();
    assert!(
        diff <= SLACK_SECONDS,
        "{what}: {actual} is {diff}s from {expected}"
    );
}

fn assert_validity(cert: &X509Certificate<'_>, validity: &Validity) {
    assert_eq!(
        cert.validity().not_before.timestamp(),
        validity.not_before.unix_timestamp()
    );
    assert_eq!(
        cert.validity().not_after.timestamp(),
        validity.not_after.unix_timestamp()
    );
}

/// End-entity profile for IAM Roles Anywhere: CA=false, digitalSignature, clientAuth,
/// SHA-256 signature, random positive 16-byte serial.
fn assert_end_entity(cert: &X509Certificate<'_>) {
    let bc = cert.basic_constraints().unwrap().expect("basicConstraints");
    assert!(!bc.value.ca);
    let ku = cert.key_usage().unwrap().expect("keyUsage").value;
    assert!(ku.digital_signature());
    assert!(!ku.key_cert_sign());
    let eku = cert
        .extended_key_usage()
        .unwrap()
        .expect("extendedKeyUsage")
        .value;
    assert!(eku.client_auth);
    let serial = cert.raw_serial();
    assert_eq!(serial.len(), 16);
    assert!(serial[0] != 0 && serial[0] & 0x80 == 0);
}

#[test]
fn cas_chain_and_bundles_hold_the_right_certificates() {
    let (_dir, m, now) = matrix();
    let root_der = cert_der(&m.root);
    let inter_der = cert_der(&m.intermediate);
    let root = parse(&root_der);
    let inter = parse(&inter_der);

    assert_eq!(root.subject(), root.issuer());
    root.verify_signature(None).unwrap();
    assert_eq!(
        root.signature_algorithm.algorithm.to_id_string(),
        SHA256_WITH_RSA
    );
    assert_eq!(inter.issuer(), root.subject());
    inter.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(
        inter.signature_algorithm.algorithm.to_id_string(),
        SHA256_WITH_RSA
    );
    for ca in [&root, &inter] {
        assert!(ca.basic_constraints().unwrap().unwrap().value.ca);
        assert!(ca.key_usage().unwrap().unwrap().value.key_cert_sign());
        assert_validity(ca, &m.ca_validity);
    }
    assert_near(
        root.validity().not_before.timestamp(),
        now - Duration::days(3),
        "CA notBefore",
    );
    // RSA-2048 root, P-256 intermediate.
    match root.public_key().parsed().unwrap() {
        PublicKey::RSA(rsa) => assert_eq!(rsa.key_size(), 2048),
        other => panic!("root key is not RSA: {other:?}"),
    }
    match inter.public_key().parsed().unwrap() {
        PublicKey::EC(point) => assert_eq!(point.key_size(), 256),
        other => panic!("intermediate key is not EC: {other:?}"),
    }

    assert_eq!(m.anchors, m.dir.join("anchors").join("root.pem"));
    assert_eq!(fs::read(&m.anchors).unwrap(), fs::read(&m.root).unwrap());
    assert_eq!(
        fs::read(&m.intermediates).unwrap(),
        fs::read(&m.intermediate).unwrap()
    );
    for path in [&m.root, &m.intermediate, &m.anchors, &m.intermediates] {
        assert_mode(path, 0o644);
    }
}

fn check_leaf(
    m: &TestMatrix,
    inter: &X509Certificate<'_>,
    root: &X509Certificate<'_>,
    leaf: &LeafFiles,
) {
    let t = leaf.key_type;
    let name = t.name();
    let dir = &m.dir;
    assert_eq!(leaf.cert_pem, dir.join(format!("{name}.pem")));
    assert_eq!(leaf.cert_der, dir.join(format!("{name}.der")));
    assert_eq!(leaf.key, dir.join(format!("{name}.key")));
    assert_eq!(leaf.encrypted_key, dir.join(format!("{name}.enc.key")));
    assert_eq!(leaf.pkcs12, dir.join(format!("{name}.p12")));

    // Certificate: PEM and DER agree, chains to the intermediate (not the root).
    let der = cert_der(&leaf.cert_pem);
    assert_eq!(der, fs::read(&leaf.cert_der).unwrap(), "{name}");
    let cert = parse(&der);
    assert_eq!(cert.subject().to_string(), format!("CN=leaf-{name}"));
    assert_eq!(cert.issuer(), inter.subject(), "{name}");
    cert.verify_signature(Some(inter.public_key()))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    assert!(cert.verify_signature(Some(root.public_key())).is_err());
    assert_eq!(
        cert.signature_algorithm.algorithm.to_id_string(),
        ECDSA_WITH_SHA256
    );
    assert_end_entity(&cert);
    assert_validity(&cert, &leaf.validity);
    assert!(cert.validity().is_valid());

    // PKCS#8: the certificate's key.
    let (label, pkcs8_der) = read_pem(&leaf.key);
    assert_eq!(label, "PRIVATE KEY");
    let public = public_of_pkcs8(t, &pkcs8_der);
    assert_eq!(public, spki_bits(&cert), "{name}: key does not match cert");

    // PKCS#1 (RSA) or SEC1 (EC): the same key.
    let pkcs1 = dir.join(format!("{name}.pkcs1.key"));
    let sec1 = dir.join(format!("{name}.sec1.key"));
    if t.is_rsa() {
        assert_eq!(leaf.pkcs1_key.as_deref(), Some(pkcs1.as_path()));
        assert_eq!(leaf.sec1_key, None);
        assert!(!sec1.exists());
        let (label, der) = read_pem(&pkcs1);
        assert_eq!(label, "RSA PRIVATE KEY");
        let pair = RsaKeyPair::from_der(&der).unwrap();
        assert_eq!(pair.public_key().as_ref(), public.as_slice());
        assert_eq!(pair.public_modulus_len() * 8, rsa_bits(t));
        assert_mode(&pkcs1, 0o600);
    } else {
        assert_eq!(leaf.sec1_key.as_deref(), Some(sec1.as_path()));
        assert_eq!(leaf.pkcs1_key, None);
        assert!(!pkcs1.exists());
        let (label, der) = read_pem(&sec1);
        assert_eq!(label, "EC PRIVATE KEY");
        let pair = EcdsaKeyPair::from_private_key_der(ec_alg(t), &der).unwrap();
        assert_eq!(pair.public_key().as_ref(), public.as_slice());
        let same = match t {
            KeyType::P256 => {
                p256::SecretKey::from_sec1_der(&der).unwrap()
                    == p256::SecretKey::from_pkcs8_der(&pkcs8_der).unwrap()
            }
            _ => {
                p384::SecretKey::from_sec1_der(&der).unwrap()
                    == p384::SecretKey::from_pkcs8_der(&pkcs8_der).unwrap()
            }
        };
        assert!(same, "{name}: SEC1 and PKCS#8 differ");
        assert_mode(&sec1, 0o600);
    }

    // Encrypted PKCS#8: PBES2, PBKDF2-HMAC-SHA256, AES-256-CBC; decrypts to the same DER.
    let (label, enc) = read_pem(&leaf.encrypted_key);
    assert_eq!(label, "ENCRYPTED PRIVATE KEY");
    let info = EncryptedPrivateKeyInfoRef::try_from(enc.as_slice()).unwrap();
    let params = info.encryption_algorithm.pbes2().expect("PBES2");
    assert_eq!(
        params.kdf.pbkdf2().expect("PBKDF2").prf,
        pbes2::Pbkdf2Prf::HmacWithSha256
    );
    assert!(matches!(
        params.encryption,
        pbes2::EncryptionScheme::Aes256Cbc { .. }
    ));
    let plain = info.decrypt(TEST_PASSWORD).unwrap();
    assert_eq!(plain.as_bytes(), pkcs8_der.as_slice(), "{name}");
    assert!(info.decrypt("wrong-password").is_err());

    // PKCS#12: the key plus the leaf and the intermediate.
    let p12 = fs::read(&leaf.pkcs12).unwrap();
    let archive = Pkcs12Archive::from_pkcs12(&p12, TEST_PASSWORD).unwrap();
    assert_eq!(archive.keys.len(), 1);
    assert_eq!(archive.keys[0].key.as_der(), pkcs8_der.as_slice());
    let certs: Vec<&[u8]> = archive.certs.iter().map(|c| c.cert.as_der()).collect();
    assert_eq!(certs.len(), 2);
    assert_eq!(certs[0], der.as_slice());
    assert_eq!(certs[1], inter.as_ref());
    let store = KeyStore::from_pkcs12(&p12, TEST_PASSWORD, Pkcs12ImportPolicy::Strict).unwrap();
    let (_, chain) = store.private_key_chain().expect("key chain");
    assert_eq!(chain.certs().len(), 2);
    assert!(Pkcs12Archive::from_pkcs12(&p12, "wrong-password").is_err());

    assert_mode(&leaf.cert_pem, 0o644);
    assert_mode(&leaf.cert_der, 0o644);
    assert_mode(&leaf.key, 0o600);
    assert_mode(&leaf.encrypted_key, 0o600);
    assert_mode(&leaf.pkcs12, 0o600);
}

fn rsa_bits(t: KeyType) -> usize {
    match t {
        KeyType::Rsa2048 => 2048,
        KeyType::Rsa3072 => 3072,
        KeyType::Rsa4096 => 4096,
        other => panic!("not RSA: {other}"),
    }
}

#[test]
fn every_leaf_round_trips_in_every_encoding() {
    let (_dir, m, now) = matrix();
    let root_der = cert_der(&m.root);
    let inter_der = cert_der(&m.intermediate);
    let root = parse(&root_der);
    let inter = parse(&inter_der);

    let types: Vec<KeyType> = m.leaves.iter().map(|l| l.key_type).collect();
    assert_eq!(types, KeyType::ALL);
    for leaf in &m.leaves {
        assert_near(
            leaf.validity.not_before.unix_timestamp(),
            now - Duration::hours(1),
            "leaf notBefore",
        );
        check_leaf(&m, &inter, &root, leaf);
    }
    assert_eq!(
        m.leaf(KeyType::P384).map(|l| l.common_name.as_str()),
        Some("leaf-p384")
    );
}

#[test]
fn special_cases() {
    let (_dir, m, now) = matrix();
    let root_der = cert_der(&m.root);
    let inter_der = cert_der(&m.intermediate);
    let root = parse(&root_der);
    let inter = parse(&inter_der);

    // Issued directly by the root: verifies without intermediates.
    assert_eq!(m.direct_p256.cert, m.dir.join("direct-p256.pem"));
    assert_eq!(m.direct_p256.key, m.dir.join("direct-p256.key"));
    let der = cert_der(&m.direct_p256.cert);
    let direct = parse(&der);
    assert_eq!(direct.issuer(), root.subject());
    direct.verify_signature(Some(root.public_key())).unwrap();
    assert_eq!(
        direct.signature_algorithm.algorithm.to_id_string(),
        SHA256_WITH_RSA
    );
    assert_end_entity(&direct);
    assert!(direct.validity().is_valid());

    // Expired and not-yet-valid leaves, each with its key.
    for (files, stem, nb, na) in [
        (
            &m.expired,
            "expired",
            now - Duration::days(2),
            now - Duration::days(1),
        ),
        (
            &m.future,
            "future",
            now + Duration::days(1),
            now + Duration::days(30),
        ),
    ] {
        assert_eq!(files.cert, m.dir.join(format!("{stem}.pem")));
        assert_eq!(files.key, m.dir.join(format!("{stem}.key")));
        let der = cert_der(&files.cert);
        let cert = parse(&der);
        assert_eq!(cert.subject().to_string(), format!("CN={stem}"));
        cert.verify_signature(Some(inter.public_key())).unwrap();
        assert_end_entity(&cert);
        assert_validity(&cert, &files.validity);
        assert_near(cert.validity().not_before.timestamp(), nb, stem);
        assert_near(cert.validity().not_after.timestamp(), na, stem);
        assert!(
            !cert.validity().is_valid(),
            "{stem} should not be valid now"
        );
        let (label, key) = read_pem(&files.key);
        assert_eq!(label, "PRIVATE KEY");
        assert_eq!(public_of_pkcs8(KeyType::P256, &key), spki_bits(&cert));
        assert_mode(&files.key, 0o600);
    }
    let expired_der = cert_der(&m.expired.cert);
    let expired = parse(&expired_der);
    assert!(expired.validity().not_after.timestamp() < now.unix_timestamp());
    let future_der = cert_der(&m.future.cert);
    let future = parse(&future_der);
    assert!(future.validity().not_before.timestamp() > now.unix_timestamp());

    // other.key: a valid P-256 key that matches none of the certificates.
    assert_eq!(m.other_key, m.dir.join("other.key"));
    let (label, other) = read_pem(&m.other_key);
    assert_eq!(label, "PRIVATE KEY");
    let other_public = public_of_pkcs8(KeyType::P256, &other);
    let mut all_certs = vec![
        m.root.clone(),
        m.intermediate.clone(),
        m.direct_p256.cert.clone(),
    ];
    all_certs.extend([m.expired.cert.clone(), m.future.cert.clone()]);
    all_certs.extend(m.leaves.iter().map(|l| l.cert_pem.clone()));
    for path in &all_certs {
        let der = cert_der(path);
        assert_ne!(spki_bits(&parse(&der)), other_public.as_slice());
    }
    assert_mode(&m.other_key, 0o600);

    // garbage.pem: well-formed PEM labelled CERTIFICATE, but not a certificate.
    assert_eq!(m.garbage_pem, m.dir.join("garbage.pem"));
    let (label, garbage) = read_pem(&m.garbage_pem);
    assert_eq!(label, "CERTIFICATE");
    assert!(!garbage.is_empty());
    assert!(x509_parser::parse_x509_certificate(&garbage).is_err());

    // notpem.txt: plain text.
    assert_eq!(m.not_pem, m.dir.join("notpem.txt"));
    let text = fs::read_to_string(&m.not_pem).unwrap();
    assert_eq!(text.trim_end(), "this is not a certificate");
    assert!(pkcs8::der::pem::decode_vec(text.as_bytes()).is_err());
}

/// Runs openssl with `args`; returns stdout on success, panics with stderr on failure.
fn openssl(args: &[&str]) -> String {
    let out = Command::new("openssl").args(args).output().unwrap();
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Fails the test, saying how to get it, when `openssl` cannot run: the README promises that
/// a missing tool fails the suite instead of skipping the check.
fn require_openssl() {
    let ok = Command::new("openssl")
        .arg("version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "`openssl version` does not run: this test cross-checks the PKI with OpenSSL; install \
         the openssl package (scripts/test.sh does)"
    );
}

#[test]
fn openssl_accepts_the_files() {
    require_openssl();
    let (_dir, m, _) = matrix();
    let s = |p: &Path| p.to_str().unwrap().to_owned();
    let pass = format!("pass:{TEST_PASSWORD}");
    let anchors = s(&m.anchors);
    let intermediates = s(&m.intermediates);

    for leaf in &m.leaves {
        let name = leaf.key_type.name();
        let out = openssl(&[
            "pkcs12",
            "-in",
            &s(&leaf.pkcs12),
            "-passin",
            &pass,
            "-nodes",
            "-info",
        ]);
        assert_eq!(
            out.matches("-----BEGIN CERTIFICATE-----").count(),
            2,
            "{name}"
        );
        assert_eq!(
            out.matches("-----BEGIN PRIVATE KEY-----").count(),
            1,
            "{name}"
        );

        // The encrypted, PKCS#1 and SEC1 forms are the same key as the PKCS#8 one.
        let reference = openssl(&["pkey", "-in", &s(&leaf.key)]);
        let decrypted = openssl(&["pkey", "-in", &s(&leaf.encrypted_key), "-passin", &pass]);
        assert_eq!(decrypted, reference, "{name}");
        for other in [&leaf.pkcs1_key, &leaf.sec1_key].into_iter().flatten() {
            assert_eq!(openssl(&["pkey", "-in", &s(other)]), reference, "{name}");
        }

        openssl(&[
            "verify",
            "-CAfile",
            &anchors,
            "-untrusted",
            &intermediates,
            "-purpose",
            "sslclient",
            "-x509_strict",
            &s(&leaf.cert_pem),
        ]);
    }
    openssl(&[
        "verify",
        "-CAfile",
        &anchors,
        "-x509_strict",
        &s(&m.direct_p256.cert),
    ]);

    for bad in [&m.expired.cert, &m.future.cert] {
        let status = Command::new("openssl")
            .args(["verify", "-CAfile", &anchors, "-untrusted", &intermediates])
            .arg(bad)
            .output()
            .unwrap()
            .status;
        assert!(!status.success(), "{} should not verify", bad.display());
    }
}
