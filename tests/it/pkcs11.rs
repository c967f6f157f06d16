//! PKCS#11 against a real SoftHSM2 made for this test run (see `pkcs11_util`): the built
//! binary obtains credentials from `emulate` on 127.0.0.1 with RSA-2048, P-256 and P-384
//! keys on the token, chosen by label, by id, by certificate selector, with the key on the
//! token and the certificate in a file, and through the agent (`serve`); configuration
//! mistakes exit 2 with a hint and send nothing. In-process: every digest signs and
//! verifies, a token that logged out under the signer is recovered, a PIN the token refuses
//! on re-login is not tried again, a key alone signs (for `sign-string`), and the
//! certificate listing names each certificate with a URI that finds it again.
//!
//! The tokens:
//! - `ra-main`: RSA-2048 (id 01), P-256 (id 02) and P-384 (id 03, no public key object, so
//!   the pre-flight signs a probe) keys with their certificates; the intermediate CA
//!   certificate (no id); a P-256 key (id 10) whose certificate is only in a file.
//! - `ra-renew`: two certificates with the same subject, expiring a day apart (ids 21, 22).
//! - `ra-always`: an RSA key with CKA_ALWAYS_AUTHENTICATE (id 31).
//! - `ra-lock`: a P-256 key (id 41), for the wrong-PIN and changed-PIN tests (so no other
//!   test can be hurt by a token counting failed logins).
//!
//! Every token also holds the intermediate CA certificate, so the chain comes from the
//! token; `emulate` trusts only the root. The tests take turns with the tokens (see
//! `ONE_AT_A_TIME`), and every run of the binary is bounded in time.

#![cfg(feature = "pkcs11")]

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{LazyLock, Mutex, MutexGuard};

use crate::support::softhsm::{Object, SoftHsm};
use crate::support::*;
use rolesanywhere_agent::identity::{Identity, IdentitySpec, pkcs11};
use rolesanywhere_agent::pki::{Ca, Issued, KeyType, LeafOptions, Validity};
use rolesanywhere_agent::signer::{Digest, Signer as _, verify};
use time::Duration;

const PIN: &str = "123456";

struct Fixture {
    hsm: SoftHsm,
    _dir: tempfile::TempDir,
    anchors: PathBuf,
    intermediate: PathBuf,
    /// The certificate of the key with id 10 (not on the token).
    file_cert: PathBuf,
    /// A file holding the PIN, for `pin-source`.
    pin_file: PathBuf,
    leaves: HashMap<&'static str, Issued>,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(build_fixture);

/// SoftHSM's file store does not stand logins from several processes at once: a login
/// rewrites the token's file, and a process starting meanwhile may not see that token at
/// all. So the tests that use the tokens take turns.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The fixture, and this test's turn with the tokens (held until the guard drops).
fn fixture() -> (MutexGuard<'static, ()>, &'static Fixture) {
    let turn = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    (turn, &FIXTURE)
}

/// The one environment write in the test process (lint exception, audited).
///
/// SAFETY: `set_var` is unsafe because C code on another thread may read the environment
/// at the same moment. It runs once (inside the `LazyLock` above), before any test loads
/// SoftHSM, and std's own reads take the same lock; what remains is a C `getenv` on another
/// test thread at that instant, which this test binary accepts: the variable cannot reach
/// SoftHSM any other way (it has no initialisation argument for its configuration).
#[allow(unsafe_code)]
fn set_softhsm_conf(conf: &std::path::Path) {
    unsafe { std::env::set_var("SOFTHSM2_CONF", conf) };
}

fn build_fixture() -> Fixture {
    let hsm = SoftHsm::new();
    // SoftHSM reads SOFTHSM2_CONF when the module is initialised. The in-process tests load
    // it into this process, so point it at our tokens now, before any of them can (every
    // test goes through this fixture first, and nothing else here reads the variable).
    set_softhsm_conf(&hsm.conf);

    let ca_validity = Validity::relative_to_now(-Duration::hours(2), Duration::days(3));
    let root = Ca::new_root("pkcs11 test root", KeyType::P256, ca_validity).unwrap();
    let inter = root
        .issue_intermediate("pkcs11 test intermediate", KeyType::P256, ca_validity)
        .unwrap();
    let leaf = |cn: &str, t: KeyType, hours: i64| {
        let v = Validity::relative_to_now(-Duration::hours(1), Duration::hours(hours));
        inter.issue_leaf(cn, t, LeafOptions::new(v)).unwrap()
    };
    let mut leaves = HashMap::new();
    leaves.insert("rsa2048", leaf("leaf-rsa2048", KeyType::Rsa2048, 24));
    leaves.insert("p256", leaf("leaf-p256", KeyType::P256, 24));
    leaves.insert("p384", leaf("leaf-p384", KeyType::P384, 24));
    leaves.insert("file", leaf("file-p256", KeyType::P256, 24));
    leaves.insert("renew-old", leaf("renewing", KeyType::P256, 24));
    leaves.insert("renew-new", leaf("renewing", KeyType::P256, 48));
    leaves.insert("always", leaf("always-auth", KeyType::Rsa2048, 24));
    leaves.insert("lock", leaf("lock-p256", KeyType::P256, 24));

    let put = |token: &str, name: &str, id: u8, label: &str, public: bool, always: bool| {
        let l = &leaves[name];
        let key = l.key.pkcs8_der();
        hsm.import(token, PIN, Object::PrivateKey, key, &[id], label, always);
        if public {
            let spki = l.key.public_key_der().unwrap();
            hsm.import(token, PIN, Object::PublicKey, &spki, &[id], label, false);
        }
        hsm.import(
            token,
            PIN,
            Object::Certificate,
            &l.cert_der,
            &[id],
            label,
            false,
        );
    };
    hsm.init_token("ra-main", PIN);
    put("ra-main", "rsa2048", 0x01, "leaf-rsa2048", true, false);
    put("ra-main", "p256", 0x02, "leaf-p256", true, false);
    put("ra-main", "p384", 0x03, "leaf-p384", false, false);
    hsm.import(
        "ra-main",
        PIN,
        Object::Certificate,
        inter.cert_der(),
        &[],
        "intermediate",
        false,
    );
    hsm.import(
        "ra-main",
        PIN,
        Object::PrivateKey,
        leaves["file"].key.pkcs8_der(),
        &[0x10],
        "file-key",
        false,
    );
    hsm.init_token("ra-renew", PIN);
    let put_intermediate = |token: &str| {
        let der = inter.cert_der();
        hsm.import(
            token,
            PIN,
            Object::Certificate,
            der,
            &[],
            "intermediate",
            false,
        );
    };
    put_intermediate("ra-renew");
    put("ra-renew", "renew-old", 0x21, "renew-old", true, false);
    put("ra-renew", "renew-new", 0x22, "renew-new", true, false);
    hsm.init_token("ra-always", PIN);
    put_intermediate("ra-always");
    put("ra-always", "always", 0x31, "always", true, true);
    hsm.init_token("ra-lock", PIN);
    put_intermediate("ra-lock");
    put("ra-lock", "lock", 0x41, "lock", true, false);

    let dir = tempfile::tempdir().unwrap();
    let anchors = dir.path().join("root.pem");
    std::fs::write(&anchors, root.cert_pem()).unwrap();
    let intermediate = dir.path().join("intermediate.pem");
    std::fs::write(&intermediate, inter.cert_pem()).unwrap();
    let file_cert = dir.path().join("file-p256.pem");
    std::fs::write(&file_cert, &leaves["file"].cert_pem).unwrap();
    let pin_file = dir.path().join("pin");
    std::fs::write(&pin_file, format!("{PIN}\n")).unwrap();
    Fixture {
        hsm,
        _dir: dir,
        anchors,
        intermediate,
        file_cert,
        pin_file,
        leaves,
    }
}

fn serial(name: &str) -> String {
    let der = &FIXTURE.leaves[name].cert_der;
    rolesanywhere_agent::identity::Certificate::from_der(der)
        .unwrap()
        .serial_decimal()
}

/// `credential-process` against `emu` using our SoftHSM, with no PIN in the environment.
fn cp(emu: &Emulator, args: &[&str]) -> Command {
    let mut cmd = credential_process(&emu.url, &[]);
    cmd.args(args)
        .env("SOFTHSM2_CONF", &FIXTURE.hsm.conf)
        .env_remove(pkcs11::PIN_ENV);
    cmd
}

/// Every run of the binary is bounded: a hung token fails the test instead of hanging it.
fn run_limited(cmd: &mut Command) -> std::process::Output {
    crate::support::softhsm::run_bounded(cmd, std::time::Duration::from_secs(120))
}

fn module() -> &'static str {
    &FIXTURE.hsm.module
}

fn last_serial(emu: &Emulator) -> String {
    let requests = emu.requests();
    let last = requests.last().expect("a request was sent");
    assert_eq!(last["status"], 201, "{last}");
    last["serial"].as_str().unwrap_or_default().to_string()
}

#[test]
fn each_key_type_by_label_by_id_and_with_both_uris() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let pin_source = format!("file:{}", fx.pin_file.display());
    for (name, id) in [("rsa2048", "%01"), ("p256", "%02"), ("p384", "%03")] {
        let variants: Vec<(String, Vec<String>, Option<&str>)> = vec![
            (
                "by label, pin-value".into(),
                vec![
                    "--certificate".into(),
                    format!("pkcs11:token=ra-main;object=leaf-{name}?pin-value={PIN}"),
                    "--pkcs11-lib".into(),
                    module().into(),
                ],
                None,
            ),
            (
                "by id, PIN from the environment, module-path".into(),
                vec![
                    "--certificate".into(),
                    format!("pkcs11:token=ra-main;id={id}?module-path={}", module()),
                ],
                Some(PIN),
            ),
            (
                "certificate and key URIs, pin-source".into(),
                vec![
                    "--certificate".into(),
                    format!("pkcs11:token=ra-main;id={id};type=cert"),
                    "--private-key".into(),
                    format!(
                        "pkcs11:token=ra-main;object=leaf-{name};type=private?pin-source={pin_source}"
                    ),
                    "--pkcs11-lib".into(),
                    module().into(),
                ],
                None,
            ),
        ];
        for (what, args, env_pin) in variants {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let mut cmd = cp(&emu, &args);
            if let Some(pin) = env_pin {
                cmd.env(pkcs11::PIN_ENV, pin);
            }
            let out = run_limited(&mut cmd);
            assert!(
                out.status.success(),
                "{name} {what}: exit {:?}\n{}",
                out.status.code(),
                stderr(&out)
            );
            credentials(&out);
            // The chain came from the token: emulate trusts only the root.
            assert_eq!(last_serial(&emu), serial(name), "{name} {what}");
        }
    }
}

#[test]
fn a_cert_selector_picks_among_the_token_certificates() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let uri = format!("pkcs11:token=ra-main?pin-value={PIN}");
    let out = run_limited(&mut cp(
        &emu,
        &[
            "--certificate",
            &uri,
            "--pkcs11-lib",
            module(),
            "--cert-selector",
            "Key=x509Subject,Value=CN=leaf-p384",
        ],
    ));
    credentials(&out);
    assert_eq!(last_serial(&emu), serial("p384"));

    let selector_file = fx._dir.path().join("selector.json");
    let serial_hex =
        rolesanywhere_agent::identity::Certificate::from_der(&fx.leaves["rsa2048"].cert_der)
            .unwrap()
            .serial_hex();
    std::fs::write(
        &selector_file,
        format!(r#"[{{"Key":"x509Serial","Value":"{serial_hex}"}},{{"Key":"x509Issuer","Value":"O=rolesanywhere-agent throwaway PKI - not for trust,CN=pkcs11 test intermediate"}}]"#),
    )
    .unwrap();
    let selector = format!("file://{}", selector_file.display());
    let out = run_limited(&mut cp(
        &emu,
        &[
            "--certificate",
            &uri,
            "--pkcs11-lib",
            module(),
            "--cert-selector",
            &selector,
        ],
    ));
    credentials(&out);
    assert_eq!(last_serial(&emu), serial("rsa2048"));
}

#[test]
fn the_latest_expiring_certificate_is_chosen_only_when_asked() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let uri = format!("pkcs11:token=ra-renew?pin-value={PIN}");
    let out = run_limited(&mut cp(
        &emu,
        &["--certificate", &uri, "--pkcs11-lib", module()],
    ));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("several certificates match"), "{err}");
    assert!(
        err.contains("object=renew-old") && err.contains("object=renew-new"),
        "{err}"
    );
    assert!(err.contains("--use-latest-expiring-certificate"), "{err}");

    let out = run_limited(&mut cp(
        &emu,
        &[
            "--certificate",
            &uri,
            "--pkcs11-lib",
            module(),
            "--use-latest-expiring-certificate",
        ],
    ));
    credentials(&out);
    assert_eq!(last_serial(&emu), serial("renew-new"));
    assert_eq!(emu.requests().len(), 1);
}

#[test]
fn key_on_the_token_with_the_certificate_in_a_file() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let out = run_limited(
        cp(
            &emu,
            &[
                "--certificate",
                &path(&fx.file_cert),
                "--intermediates",
                &path(&fx.intermediate),
                "--private-key",
                "pkcs11:token=ra-main;id=%10",
                "--pkcs11-lib",
                module(),
            ],
        )
        .env(pkcs11::PIN_ENV, PIN),
    );
    credentials(&out);
    assert_eq!(last_serial(&emu), serial("file"));
}

#[test]
fn a_key_that_wants_its_pin_for_every_signature_needs_reuse_pin() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let uri = format!("pkcs11:token=ra-always;object=always?pin-value={PIN}");
    let base = ["--certificate", uri.as_str(), "--pkcs11-lib", module()];
    let out = run_limited(&mut cp(&emu, &base));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("CKA_ALWAYS_AUTHENTICATE"), "{err}");
    assert!(err.contains("--reuse-pin"), "{err}");
    assert!(emu.requests().is_empty());

    let mut with_reuse = base.to_vec();
    with_reuse.push("--reuse-pin");
    let out = run_limited(&mut cp(&emu, &with_reuse));
    credentials(&out);
    assert_eq!(last_serial(&emu), serial("always"));
}

#[test]
fn the_default_module_is_p11_kit_proxy() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let uri = format!("pkcs11:token=ra-main;object=leaf-p256?pin-value={PIN}");
    let out = run_limited(&mut cp(&emu, &["--certificate", &uri]));
    let proxy_installed = [
        "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
        "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
        "/usr/lib64/p11-kit-proxy.so",
        "/usr/lib/p11-kit-proxy.so",
    ]
    .iter()
    .any(|p| std::path::Path::new(p).exists());
    if proxy_installed {
        // p11-kit loads SoftHSM from its registration, which reads SOFTHSM2_CONF too.
        credentials(&out);
        assert_eq!(last_serial(&emu), serial("p256"));
    } else {
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(stderr(&out).contains("--pkcs11-lib"), "{}", stderr(&out));
    }
}

#[test]
fn configuration_mistakes_exit_2_with_a_hint_and_send_nothing() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let m = module();
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "wrong PIN",
            vec![
                "--certificate".into(),
                "pkcs11:token=ra-lock;object=lock?pin-value=000000".into(),
            ],
            "the PIN for token 'ra-lock'",
            "not retried",
        ),
        (
            "missing token",
            vec![
                "--certificate".into(),
                format!("pkcs11:token=no-such-token?pin-value={PIN}"),
            ],
            "no token in the PKCS#11 module",
            "pkcs11-tool --module",
        ),
        (
            "no PIN anywhere",
            vec!["--certificate".into(), "pkcs11:token=ra-main;id=%02".into()],
            "needs a PIN and none was given",
            pkcs11::PIN_ENV,
        ),
        (
            "no such certificate, no PIN",
            vec!["--certificate".into(), "pkcs11:token=ra-main;id=%99".into()],
            "no certificate on token 'ra-main'",
            "pkcs11-tool --module",
        ),
        (
            "several certificates, no selector",
            vec![
                "--certificate".into(),
                format!("pkcs11:token=ra-main?pin-value={PIN}"),
            ],
            "several certificates match",
            "--cert-selector",
        ),
        (
            "selector matching nothing",
            vec![
                "--certificate".into(),
                format!("pkcs11:token=ra-main?pin-value={PIN}"),
                "--cert-selector".into(),
                "Key=x509Subject,Value=CN=nobody".into(),
            ],
            "none the selector",
            "--cert-selector",
        ),
        (
            "certificate without a key",
            vec![
                "--certificate".into(),
                format!("pkcs11:token=ra-main;object=intermediate?pin-value={PIN}"),
            ],
            "no private key on token 'ra-main'",
            "CKA_ID",
        ),
        (
            "key for another certificate",
            vec![
                "--certificate".into(),
                format!("pkcs11:token=ra-main;object=leaf-p256?pin-value={PIN}"),
                "--private-key".into(),
                "pkcs11:token=ra-main;object=leaf-rsa2048".into(),
            ],
            "does not belong to the certificate pkcs11:token=ra-main;id=%02;object=leaf-p256;type=cert",
            "CKA_ID",
        ),
        (
            "unknown URI attribute",
            vec![
                "--certificate".into(),
                "pkcs11:token=ra-main;colour=blue".into(),
            ],
            "`colour`",
            "RFC 7512",
        ),
        (
            "no such module",
            vec![
                "--certificate".into(),
                "pkcs11:token=ra-main".into(),
                "--pkcs11-lib".into(),
                "/nonexistent/libnothing.so".into(),
            ],
            "cannot load the PKCS#11 module /nonexistent/libnothing.so",
            "architecture",
        ),
    ];
    for (what, mut args, message, hint) in cases {
        if !args.iter().any(|a| a == "--pkcs11-lib") {
            args.extend(["--pkcs11-lib".to_string(), m.to_string()]);
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = run_limited(&mut cp(&emu, &args));
        let err = assert_usage_error(what, &out, message, hint);
        assert!(!err.contains(PIN), "{what}: the PIN leaked:\n{err}");
    }
    assert!(emu.requests().is_empty(), "{:?}", emu.requests());
}

/// Loads an identity in this process.
fn load(certificate: &str, private_key: Option<&str>) -> Identity {
    let spec = IdentitySpec {
        certificate: Some(certificate.to_string()),
        private_key: private_key.map(str::to_string),
        pkcs11_lib: Some(module().to_string()),
        ..IdentitySpec::default()
    };
    Identity::load(&spec).unwrap_or_else(|e| panic!("{certificate}: {e}"))
}

#[test]
fn every_digest_signs_and_verifies_in_process() {
    let (_turn, _) = fixture();
    for name in ["rsa2048", "p256", "p384"] {
        let identity = load(
            &format!("pkcs11:token=ra-main;object=leaf-{name}?pin-value={PIN}"),
            None,
        );
        identity
            .check("pkcs11 test", time::OffsetDateTime::now_utc())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // P-384 has no public key object on the token: the pre-flight signed a probe.
        assert_eq!(
            identity.signer.public_key().is_some(),
            name != "p384",
            "{name}"
        );
        assert_eq!(
            identity.chain.len(),
            1,
            "{name}: the intermediate from the token"
        );
        let kind = identity.certificate.key_kind().unwrap();
        assert_eq!(identity.signer.key_kind(), kind);
        for digest in [Digest::Sha256, Digest::Sha384, Digest::Sha512] {
            let message = b"string to sign";
            let signature = identity.signer.sign(message, digest).unwrap();
            assert!(
                verify(
                    kind,
                    identity.certificate.public_key(),
                    message,
                    digest,
                    &signature
                ),
                "{name} {digest:?}"
            );
        }
        assert!(
            identity.signer.source().contains("token=ra-main"),
            "{}",
            identity.signer.source()
        );
    }
}

#[test]
fn a_token_that_logged_out_under_the_signer_is_recovered() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    let (_turn, _) = fixture();
    let identity = load(
        &format!("pkcs11:token=ra-main;id=%02?pin-value={PIN}"),
        None,
    );
    let kind = identity.certificate.key_kind().unwrap();
    let message = b"before";
    let signature = identity.signer.sign(message, Digest::Sha256).unwrap();
    assert!(verify(
        kind,
        identity.certificate.public_key(),
        message,
        Digest::Sha256,
        &signature
    ));

    // Another user of the same module in this process logs the token out: the login is
    // the token's, so the signer's session loses it and its key handle no longer works
    // (SoftHSM answers CKR_OBJECT_HANDLE_INVALID, other tokens CKR_USER_NOT_LOGGED_IN), as
    // after the token was pulled and put back. Without the recovery this signature fails.
    let ctx = Pkcs11::new(module()).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label() == "ra-main"))
        .expect("ra-main is present");
    let session = ctx.open_ro_session(slot).unwrap();
    session.logout().unwrap();
    drop(session);

    let message = b"after";
    let signature = identity.signer.sign(message, Digest::Sha256).unwrap();
    assert!(verify(
        kind,
        identity.certificate.public_key(),
        message,
        Digest::Sha256,
        &signature
    ));
}

#[test]
fn certificates_are_listed_with_uris_that_find_them_again() {
    let (_turn, _) = fixture();
    let listed = pkcs11::list_certificates("pkcs11:token=ra-main", Some(module())).unwrap();
    let mut subjects: Vec<String> = listed
        .iter()
        .map(|(c, _)| c.subject().to_string())
        .collect();
    subjects.sort();
    assert_eq!(
        subjects,
        [
            "CN=leaf-p256",
            "CN=leaf-p384",
            "CN=leaf-rsa2048",
            "CN=pkcs11 test intermediate, O=rolesanywhere-agent throwaway PKI - not for trust"
        ]
    );
    for (cert, uri) in &listed {
        assert!(
            uri.starts_with("pkcs11:")
                && uri.contains("token=ra-main")
                && uri.ends_with("type=cert"),
            "{uri}"
        );
        let again = pkcs11::list_certificates(uri, Some(module())).unwrap();
        assert_eq!(again.len(), 1, "{uri}");
        assert_eq!(again[0].0.der(), cert.der());
    }
    let err = pkcs11::list_certificates("pkcs11:token=absent", Some(module())).unwrap_err();
    assert!(err.to_string().contains("tokens present"), "{err}");
}

#[test]
fn a_refused_pin_is_not_tried_again() {
    use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
    use secrecy::SecretString;
    let (_turn, _) = fixture();
    // ra-lock is the token whose PIN tests may get wrong; nothing else logs in to it.
    let identity = load(
        &format!("pkcs11:token=ra-lock;id=%41?pin-value={PIN}"),
        None,
    );
    identity.signer.sign(b"first", Digest::Sha256).unwrap();

    // The PIN changes under the running signer (an administrator rotated it), and the
    // token logs out, so the next signature must log in again with the old PIN.
    let ctx = Pkcs11::new(module()).unwrap();
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    let slot = ctx
        .get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| ctx.get_token_info(*s).is_ok_and(|i| i.label() == "ra-lock"))
        .expect("ra-lock is present");
    let session = ctx.open_rw_session(slot).unwrap();
    session
        .set_pin(
            &SecretString::from(PIN.to_string()),
            &SecretString::from("654321".to_string()),
        )
        .unwrap();
    session.logout().unwrap();
    drop(session);

    let first = identity.signer.sign(b"second", Digest::Sha256).unwrap_err();
    assert!(first.to_string().contains("incorrect"), "{first}");
    let second = identity.signer.sign(b"third", Digest::Sha256).unwrap_err();
    assert!(second.to_string().contains("not trying again"), "{second}");
}

#[test]
fn the_agent_serves_credentials_signed_on_the_token() {
    let (_turn, fx) = fixture();
    let emu = Emulator::start(&fx.anchors, &[]);
    let certificate = "pkcs11:token=ra-main;object=leaf-p384";
    let args: Vec<String> = ["--certificate", certificate, "--pkcs11-lib", module()]
        .into_iter()
        .chain(ARN_FLAGS)
        .chain(["--endpoint", &emu.url])
        .map(|s| s.to_string())
        .collect();
    let conf = fx.hsm.conf.display().to_string();
    let agent = Agent::start(
        &args,
        &[("SOFTHSM2_CONF", conf.as_str()), (pkcs11::PIN_ENV, PIN)],
    );
    let token = imds_token(&agent.addr);
    let (status, body) = imds_credentials(&agent.addr, &token);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"AccessKeyId\""), "{body}");
    assert_eq!(last_serial(&emu), serial("p384"));
}

#[test]
fn a_key_alone_signs_for_sign_string() {
    let (_turn, fx) = fixture();
    let signer = pkcs11::load_signer(
        &format!("pkcs11:token=ra-main;id=%01?pin-value={PIN}"),
        Some(module()),
        false,
    )
    .unwrap();
    let cert = rolesanywhere_agent::identity::Certificate::from_der(&fx.leaves["rsa2048"].cert_der)
        .unwrap();
    let signature = signer.sign(b"to sign", Digest::Sha512).unwrap();
    assert!(verify(
        cert.key_kind().unwrap(),
        cert.public_key(),
        b"to sign",
        Digest::Sha512,
        &signature
    ));
    let err = pkcs11::load_signer(
        &format!("pkcs11:token=ra-main?pin-value={PIN}"),
        Some(module()),
        false,
    )
    .unwrap_err();
    assert!(err.to_string().contains("several private keys"), "{err}");
}
