//! certs-example/: the script makes a CA and workload certificates with the openssl command
//! line, with the extensions Roles Anywhere requires, and every certificate it makes gets
//! credentials from `emulate` trusting that CA, as the service would give them.

use std::path::Path;
use std::process::Command;

use crate::support::*;
use x509_parser::extensions::ParsedExtension;
use x509_parser::pem::parse_x509_pem;

/// The workload certificates the script makes whatever the OpenSSL version.
const ALWAYS: [&str; 3] = ["rsa2048", "p256", "p384"];

/// Whether the local openssl can make ML-DSA-65 keys (3.5 or newer), asked independently of
/// the script so that a broken detection there fails here.
fn openssl_has_ml_dsa() -> bool {
    Command::new("openssl")
        .args(["genpkey", "-algorithm", "ML-DSA-65", "-out", "/dev/null"])
        .output()
        .expect("openssl must be installed (scripts/test.sh installs it)")
        .status
        .success()
}

struct Checked {
    ca: bool,
    digital_signature: bool,
    key_cert_sign: bool,
    crl_sign: bool,
    sha256: bool,
    cn: String,
    serial_decimal: String,
}

fn inspect(path: &Path) -> Checked {
    let pem = std::fs::read(path).unwrap();
    let (_, pem) = parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    assert_eq!(cert.version().0, 2, "{}: not X.509 v3", path.display());
    let mut checked = Checked {
        ca: false,
        digital_signature: false,
        key_cert_sign: false,
        crl_sign: false,
        // ecdsa-with-SHA256 (the CA is P-256).
        sha256: cert.signature_algorithm.algorithm.to_id_string() == "1.2.840.10045.4.3.2",
        cn: cert
            .subject()
            .iter_common_name()
            .next()
            .and_then(|cn| cn.as_str().ok())
            .unwrap_or_default()
            .to_string(),
        serial_decimal: cert.serial.to_str_radix(10),
    };
    for ext in cert.extensions() {
        match ext.parsed_extension() {
            ParsedExtension::BasicConstraints(bc) => {
                assert!(
                    ext.critical,
                    "{}: basicConstraints critical",
                    path.display()
                );
                checked.ca = bc.ca;
            }
            ParsedExtension::KeyUsage(ku) => {
                checked.digital_signature = ku.digital_signature();
                checked.key_cert_sign = ku.key_cert_sign();
                checked.crl_sign = ku.crl_sign();
            }
            _ => {}
        }
    }
    checked
}

#[test]
fn every_certificate_the_script_makes_gets_credentials_from_emulate() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("pki");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("certs-example/make-certs.sh");
    let out = run(Command::new("bash").arg(&script).arg(&out_dir));
    let text = stdout(&out);
    assert!(out.status.success(), "{text}\n{}", stderr(&out));

    let ml_dsa = openssl_has_ml_dsa();
    let mut made: Vec<&str> = ALWAYS.to_vec();
    if ml_dsa {
        made.push("mldsa65");
    } else {
        assert!(
            text.contains("skipped mldsa65") && text.contains("3.5"),
            "an OpenSSL without ML-DSA must be named as the reason:\n{text}"
        );
        assert!(!out_dir.join("mldsa65.pem").exists());
    }

    let ca = inspect(&out_dir.join("ca.pem"));
    assert!(
        ca.ca && ca.key_cert_sign && ca.crl_sign && ca.sha256,
        "CA extensions"
    );

    // The trust policy names exactly the subjects made, and the trust anchor's source holds
    // the CA certificate.
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("trust-policy.json")).unwrap())
            .unwrap();
    let statement = &policy["Statement"][0];
    assert_eq!(
        statement["Principal"]["Service"],
        "rolesanywhere.amazonaws.com"
    );
    assert_eq!(
        statement["Action"],
        serde_json::json!(["sts:AssumeRole", "sts:TagSession", "sts:SetSourceIdentity"])
    );
    let cns: Vec<String> = made.iter().map(|m| format!("certs-example-{m}")).collect();
    assert_eq!(
        statement["Condition"]["StringEquals"]["aws:PrincipalTag/x509Subject/CN"],
        serde_json::json!(cns)
    );
    let source: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.join("trust-anchor-source.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(source["sourceType"], "CERTIFICATE_BUNDLE");
    assert_eq!(
        source["sourceData"]["x509CertificateData"],
        std::fs::read_to_string(out_dir.join("ca.pem")).unwrap()
    );

    let emu = Emulator::start(&out_dir.join("ca.pem"), &[]);
    for (n, name) in made.iter().enumerate() {
        let cert = out_dir.join(format!("{name}.pem"));
        let key = out_dir.join(format!("{name}.key"));
        let leaf = inspect(&cert);
        assert!(
            !leaf.ca && leaf.digital_signature && !leaf.key_cert_sign && leaf.sha256,
            "{name}: a workload certificate is CA:FALSE with digitalSignature, signed with SHA-256"
        );
        assert_eq!(leaf.cn, format!("certs-example-{name}"));
        let out = run(&mut credential_process(
            &emu.url,
            &[
                "--certificate",
                &path(&cert),
                "--private-key",
                &path(&key),
                "--no-cache",
            ],
        ));
        credentials(&out);
        let requests = emu.requests();
        assert_eq!(requests.len(), n + 1, "{name}: one CreateSession each");
        let last = requests.last().unwrap();
        assert_eq!(last["status"], 201, "{name}: {last}");
        assert_eq!(
            last["serial"],
            leaf.serial_decimal.as_str(),
            "{name}: {last}"
        );
    }
}
