//! ML-DSA-44/65/87 (post-quantum) certificates end to end: the built binary's
//! `credential-process` against `emulate` with keys in each of RFC 9881's three PKCS#8
//! private-key forms, plain and encrypted, under ML-DSA and ECDSA CAs; an ML-DSA-87 leaf with
//! an intermediate chain in the headers; bad ML-DSA inputs; `sign-string` and
//! `read-certificate-data`.

use std::io::Write as _;
use std::path::Path;
use std::process::Stdio;

use crate::support::*;
use rolesanywhere_agent::pki::{
    Ca, GeneratedKey, Issued, KeyType, LeafOptions, MlDsaKeyForm, Validity, ml_dsa_pkcs8,
};
use rolesanywhere_agent::signer::{self, Digest, KeyKind};

const PASSWORD: &str = "ml-dsa-password";

fn window() -> Validity {
    Validity::relative_to_now(time::Duration::hours(-1), time::Duration::days(1))
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    path(&p)
}

fn kind_of(t: KeyType) -> KeyKind {
    match t {
        KeyType::MlDsa44 => KeyKind::MlDsa44,
        KeyType::MlDsa65 => KeyKind::MlDsa65,
        KeyType::MlDsa87 => KeyKind::MlDsa87,
        other => panic!("not ML-DSA: {other}"),
    }
}

/// Writes a leaf's certificate and its key in `form` (plain and encrypted); returns the
/// certificate path, the plain key path and the encrypted key path.
fn leaf_files(dir: &Path, stem: &str, leaf: &Issued, form: MlDsaKeyForm) -> [String; 3] {
    let key = leaf.key.with_ml_dsa_form(form).unwrap();
    [
        write(dir, &format!("{stem}.pem"), leaf.cert_pem.as_bytes()),
        write(
            dir,
            &format!("{stem}-{}.key", form.name()),
            key.pkcs8_pem().unwrap().as_bytes(),
        ),
        write(
            dir,
            &format!("{stem}-{}.enc.key", form.name()),
            key.encrypted_pkcs8_pem(PASSWORD).unwrap().as_bytes(),
        ),
    ]
}

#[test]
fn every_level_form_and_encryption_obtains_credentials_under_ml_dsa_and_ecdsa_cas() {
    let dir = tempfile::tempdir().unwrap();
    let ml_root = Ca::new_root("ML-DSA Root", KeyType::MlDsa65, window()).unwrap();
    let ec_root = Ca::new_root("ECDSA Root", KeyType::P256, window()).unwrap();
    let anchors = dir.path().join("anchors.pem");
    std::fs::write(
        &anchors,
        format!("{}{}", ml_root.cert_pem(), ec_root.cert_pem()),
    )
    .unwrap();
    let emu = Emulator::start(&anchors, &[]);
    let mut sent = 0;
    for (ca_name, ca) in [("mldsa-ca", &ml_root), ("ecdsa-ca", &ec_root)] {
        for t in KeyType::ML_DSA {
            let leaf = ca
                .issue_leaf(&format!("{t} workload"), t, LeafOptions::new(window()))
                .unwrap();
            for form in MlDsaKeyForm::ALL {
                let stem = format!("{ca_name}-{t}");
                let [cert, key, encrypted] = leaf_files(dir.path(), &stem, &leaf, form);
                let what = format!("{ca_name} {t} {form:?}");
                let out = run(credential_process(&emu.url, &[]).args([
                    "--certificate",
                    &cert,
                    "--private-key",
                    &key,
                ]));
                assert!(out.status.success(), "{what} plain: {}", stderr(&out));
                credentials(&out);
                let out = run(credential_process(&emu.url, &[]).args([
                    "--certificate",
                    &cert,
                    "--private-key",
                    &encrypted,
                    "--pkcs8-password",
                    PASSWORD,
                ]));
                assert!(out.status.success(), "{what} encrypted: {}", stderr(&out));
                credentials(&out);
                sent += 2;
            }
        }
    }
    // The emulator accepts only `AWS4-X509-MLDSA` for an ML-DSA certificate, and verifies
    // the ML-DSA signature on the leaf (ML-DSA CA) with aws-lc-rs.
    let log = emu.requests();
    assert_eq!(log.len(), sent);
    assert!(log.iter().all(|r| r["status"] == 201), "{log:?}");
}

#[test]
fn ml_dsa_87_leaf_with_an_intermediate_chain_in_the_headers() {
    let dir = tempfile::tempdir().unwrap();
    // The largest certificates: ML-DSA-87 keys signed with ML-DSA-87 all the way up
    // (about 7.5 KB of DER each, 10 KB of base64 in a header), and an ECDSA root over an
    // ML-DSA intermediate.
    let ml_root = Ca::new_root("ML-DSA-87 Root", KeyType::MlDsa87, window()).unwrap();
    let ml_inter = ml_root
        .issue_intermediate("ML-DSA-87 Intermediate", KeyType::MlDsa87, window())
        .unwrap();
    let ml_inter2 = ml_inter
        .issue_intermediate("ML-DSA-87 Intermediate 2", KeyType::MlDsa87, window())
        .unwrap();
    let ec_root = Ca::new_root("ECDSA Root", KeyType::P256, window()).unwrap();
    let ec_inter = ec_root
        .issue_intermediate("ML-DSA-65 Intermediate", KeyType::MlDsa65, window())
        .unwrap();
    let anchors = dir.path().join("anchors.pem");
    std::fs::write(
        &anchors,
        format!("{}{}", ml_root.cert_pem(), ec_root.cert_pem()),
    )
    .unwrap();
    let emu = Emulator::start(&anchors, &[]);
    let cases: [(&str, Vec<&Ca>); 3] = [
        ("one ML-DSA-87 intermediate", vec![&ml_inter]),
        ("two ML-DSA-87 intermediates", vec![&ml_inter2, &ml_inter]),
        ("ML-DSA-65 intermediate under ECDSA", vec![&ec_inter]),
    ];
    for (what, chain) in cases {
        let leaf = chain[0]
            .issue_leaf(
                "ML-DSA-87 workload",
                KeyType::MlDsa87,
                LeafOptions::new(window()),
            )
            .unwrap();
        assert!(
            leaf.cert_der.len() > 6000,
            "{what}: {}",
            leaf.cert_der.len()
        );
        let [cert, key, _] = leaf_files(dir.path(), "chain-leaf", &leaf, MlDsaKeyForm::Both);
        let bundle: String = chain.iter().map(|c| c.cert_pem()).collect();
        let inter = write(dir.path(), "intermediates.pem", bundle.as_bytes());
        let out = run(credential_process(&emu.url, &[]).args([
            "--certificate",
            &cert,
            "--private-key",
            &key,
            "--intermediates",
            &inter,
        ]));
        assert!(out.status.success(), "{what}: {}", stderr(&out));
        credentials(&out);
        // Without the chain the same leaf is not trusted: the chain really was checked.
        let out = run(credential_process(&emu.url, &[]).args([
            "--certificate",
            &cert,
            "--private-key",
            &key,
        ]));
        assert_eq!(out.status.code(), Some(1), "{what}: {}", stderr(&out));
    }
    let log = emu.requests();
    let statuses: Vec<u64> = log.iter().map(|r| r["status"].as_u64().unwrap()).collect();
    assert_eq!(statuses, [201, 403, 201, 403, 201, 403], "{log:?}");
}

#[test]
fn mismatched_seed_and_expanded_key_and_ml_dsa_key_with_rsa_certificate_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root", KeyType::P256, window()).unwrap();
    let anchors = write(dir.path(), "anchors.pem", root.cert_pem().as_bytes());
    let emu = Emulator::start(Path::new(&anchors), &[]);
    let leaf = root
        .issue_leaf("ML-DSA-65", KeyType::MlDsa65, LeafOptions::new(window()))
        .unwrap();
    let rsa = root
        .issue_leaf("RSA", KeyType::Rsa2048, LeafOptions::new(window()))
        .unwrap();
    let other = GeneratedKey::generate(KeyType::MlDsa65).unwrap();
    let mixed = ml_dsa_pkcs8(
        KeyType::MlDsa65,
        Some(&leaf.key.ml_dsa_seed().unwrap()),
        Some(&other.ml_dsa_expanded().unwrap()),
    )
    .unwrap();
    let mixed_pem =
        pkcs8::der::pem::encode_string("PRIVATE KEY", pkcs8::LineEnding::LF, &mixed).unwrap();
    let cert = write(dir.path(), "leaf.pem", leaf.cert_pem.as_bytes());
    let mixed_key = write(dir.path(), "mixed.key", mixed_pem.as_bytes());
    let ml_key = write(
        dir.path(),
        "leaf.key",
        leaf.key.pkcs8_pem().unwrap().as_bytes(),
    );
    let rsa_cert = write(dir.path(), "rsa.pem", rsa.cert_pem.as_bytes());
    let cases = [
        (
            "seed and expanded key of different keys",
            [cert.clone(), mixed_key],
            "seed and expanded key do not match",
        ),
        (
            "ML-DSA key with an RSA certificate",
            [rsa_cert, ml_key],
            "does not belong to the certificate",
        ),
    ];
    for (what, [c, k], message) in cases {
        let out =
            run(credential_process(&emu.url, &[]).args(["--certificate", &c, "--private-key", &k]));
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{what}: {err}");
        assert!(out.stdout.is_empty(), "{what}");
        assert!(
            err.contains(message),
            "{what}: expected '{message}' in:\n{err}"
        );
    }
    assert!(emu.requests().is_empty(), "nothing may be sent");
}

#[test]
fn sign_string_signs_the_raw_input_and_read_certificate_data_names_the_parameter_set() {
    let dir = tempfile::tempdir().unwrap();
    let root = Ca::new_root("Root", KeyType::MlDsa44, window()).unwrap();
    for t in KeyType::ML_DSA {
        let leaf = root
            .issue_leaf("leaf", t, LeafOptions::new(window()))
            .unwrap();
        let [cert, key, _] = leaf_files(dir.path(), "sign", &leaf, MlDsaKeyForm::Seed);
        let input = b"AWS4-X509-MLDSA\n20261124T123352Z\nscope\nabc";
        let c = rolesanywhere_agent::identity::parse_certificates(leaf.cert_pem.as_bytes())
            .unwrap()
            .remove(0);
        let mut signatures = Vec::new();
        for digest in ["SHA256", "SHA512"] {
            let mut child = agent()
                .args(["sign-string", "--format", "text", "--digest", digest])
                .args(["--private-key", &key])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            child.stdin.take().unwrap().write_all(input).unwrap();
            let out = child.wait_with_output().unwrap();
            assert!(out.status.success(), "{t}: {}", stderr(&out));
            let sig = hex::decode(stdout(&out)).unwrap();
            // `--digest` does not apply: the signature is pure ML-DSA over the raw input.
            assert!(
                signer::verify(kind_of(t), c.public_key(), input, Digest::Sha256, &sig),
                "{t} {digest}: the signature is pure ML-DSA over the raw input"
            );
            signatures.push(sig);
        }
        // Hedged (randomised) ML-DSA: two signatures of the same input differ; both verify.
        assert_eq!(signatures.len(), 2);

        let out = run(agent().args(["read-certificate-data", "--certificate", &cert]));
        assert!(out.status.success(), "{t}: {}", stderr(&out));
        let v: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
        let name = kind_of(t).family();
        assert_eq!(v["keyType"], name);
        assert_eq!(v["supportedAlgorithms"], serde_json::json!([name]));
        assert_eq!(v["serialNumber"], c.serial_decimal());
    }
}
