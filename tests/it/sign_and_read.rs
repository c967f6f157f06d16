//! `sign-string` and `read-certificate-data`, the Go helper's diagnostic commands.

use std::io::Write as _;
use std::process::Stdio;

use crate::support::*;
use rolesanywhere_agent::identity::parse_certificates;
use rolesanywhere_agent::signer::{self, Digest};

const VECTORS: &str = "tests/data/vectors/pki";

fn sign(key: &str, extra: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = agent()
        .args(["sign-string", "--private-key", key])
        .args(extra)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails early (bad flag) may exit before reading: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input);
    child.wait_with_output().unwrap()
}

#[test]
fn sign_string_signs_stdin_with_every_digest_and_format() {
    for name in ["rsa-leaf", "p256-leaf", "p384-leaf"] {
        let cert = parse_certificates(&std::fs::read(format!("{VECTORS}/{name}.pem")).unwrap())
            .unwrap()
            .remove(0);
        let kind = cert.key_kind().unwrap();
        let key = format!("{VECTORS}/{name}.key");
        for (flag, digest) in [
            ("SHA256", Digest::Sha256),
            ("SHA384", Digest::Sha384),
            ("SHA512", Digest::Sha512),
        ] {
            let text = sign(
                &key,
                &["--format", "text", "--digest", flag],
                b"string to sign\n",
            );
            assert!(text.status.success(), "{name} {flag}: {}", stderr(&text));
            let sig = hex::decode(stdout(&text)).unwrap();
            assert!(
                signer::verify(kind, cert.public_key(), b"string to sign\n", digest, &sig),
                "{name} {flag}"
            );

            let bin = sign(
                &key,
                &["--format", "bin", "--digest", flag],
                b"string to sign\n",
            );
            assert!(
                signer::verify(
                    kind,
                    cert.public_key(),
                    b"string to sign\n",
                    digest,
                    &bin.stdout
                ),
                "{name} {flag} bin"
            );
        }
        // The default is JSON (a quoted hex string) over SHA-256.
        let json = sign(&key, &[], b"abc");
        let hex_sig: String = serde_json::from_slice(&json.stdout).unwrap();
        assert!(signer::verify(
            kind,
            cert.public_key(),
            b"abc",
            Digest::Sha256,
            &hex::decode(hex_sig).unwrap()
        ));
    }
    // RSA PKCS#1 v1.5 is deterministic: the same input gives the same bytes.
    let a = sign(
        &format!("{VECTORS}/rsa-leaf.key"),
        &["--format", "text"],
        b"x",
    );
    let b = sign(
        &format!("{VECTORS}/rsa-leaf.key"),
        &["--format", "text"],
        b"x",
    );
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn sign_string_refuses_bad_flags_and_files() {
    let out = sign(
        &format!("{VECTORS}/rsa-leaf.key"),
        &["--digest", "MD5"],
        b"x",
    );
    assert_eq!(out.status.code(), Some(2));
    let out = sign(&format!("{VECTORS}/rsa-leaf.pem"), &[], b"x");
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("holds a certificate"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn read_certificate_data_prints_the_go_helper_json() {
    let out = run(agent().args([
        "read-certificate-data",
        "--certificate",
        &format!("{VECTORS}/rsa-leaf.pem"),
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keyType"], "RSA");
    assert_eq!(
        v["serialNumber"],
        "891573975930151669966565662908810063541989944604"
    );
    assert_eq!(
        v["supportedAlgorithms"],
        serde_json::json!(["RSASHA256", "RSASHA384", "RSASHA512"])
    );
    let vector: serde_json::Value =
        serde_json::from_slice(&std::fs::read("tests/data/vectors/cases/query-rsa.json").unwrap())
            .unwrap();
    let x509 = vector["request"]["headers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h[0] == "X-Amz-X509")
        .unwrap()[1]
        .clone();
    assert_eq!(v["certificateData"], x509);
    // Field order as the Go helper's struct.
    let text = stdout(&out);
    let order: Vec<usize> = [
        "keyType",
        "certificateData",
        "serialNumber",
        "supportedAlgorithms",
    ]
    .iter()
    .map(|k| text.find(k).unwrap())
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{text}");

    let out = run(agent().args([
        "read-certificate-data",
        "--certificate",
        &format!("{VECTORS}/p384-leaf.pem"),
    ]));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["keyType"], "EC");
    assert_eq!(v["serialNumber"], "4660");

    let out = run(agent().args([
        "read-certificate-data",
        "--certificate",
        &format!("{VECTORS}/rsa-leaf.key"),
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
}
