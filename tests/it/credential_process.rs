//! The built binary's `credential-process` against `emulate` on 127.0.0.1: every key type
//! and format, with and without intermediates; bad inputs exit 2 with nothing on stdout and
//! nothing sent; service failures, retries and hints.

use crate::support::*;
use rolesanywhere_agent::pki::{KeyType, TEST_PASSWORD};

/// A named way of passing an identity: flags and environment variables.
type Variant = (String, Vec<String>, Vec<(&'static str, &'static str)>);

#[test]
fn every_key_type_and_format_obtains_credentials() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let inter = path(&m.intermediates);
    let mut expected_requests = 0;
    for t in KeyType::ALL {
        let leaf = m.leaf(t).unwrap();
        let cert = path(&leaf.cert_pem);
        let mut variants: Vec<Variant> = vec![
            (
                "pkcs8".into(),
                vec![
                    "--certificate".into(),
                    cert.clone(),
                    "--private-key".into(),
                    path(&leaf.key),
                ],
                vec![],
            ),
            (
                "der certificate".into(),
                vec![
                    "--certificate".into(),
                    path(&leaf.cert_der),
                    "--private-key".into(),
                    path(&leaf.key),
                ],
                vec![],
            ),
            (
                "encrypted, password flag".into(),
                vec![
                    "--certificate".into(),
                    cert.clone(),
                    "--private-key".into(),
                    path(&leaf.encrypted_key),
                    "--pkcs8-password".into(),
                    TEST_PASSWORD.into(),
                ],
                vec![],
            ),
            (
                "encrypted, password variable".into(),
                vec![
                    "--certificate".into(),
                    cert.clone(),
                    "--private-key".into(),
                    path(&leaf.encrypted_key),
                ],
                vec![("ROLESANYWHERE_PKCS8_PASSWORD", TEST_PASSWORD)],
            ),
            (
                "pkcs12".into(),
                vec![
                    "--certificate".into(),
                    path(&leaf.pkcs12),
                    "--pkcs8-password".into(),
                    TEST_PASSWORD.into(),
                ],
                vec![],
            ),
        ];
        if let Some(k) = leaf.pkcs1_key.as_ref().or(leaf.sec1_key.as_ref()) {
            variants.push((
                "pkcs1/sec1".into(),
                vec![
                    "--certificate".into(),
                    cert.clone(),
                    "--private-key".into(),
                    path(k),
                ],
                vec![],
            ));
        }
        for (what, mut args, env) in variants {
            // PKCS#12 carries its own chain; the others send the bundle.
            if what != "pkcs12" {
                args.extend(["--intermediates".to_string(), inter.clone()]);
            }
            let mut cmd = credential_process(&emu.url, &[]);
            cmd.args(&args);
            for (k, v) in env {
                cmd.env(k, v);
            }
            let out = run(&mut cmd);
            assert!(out.status.success(), "{t} {what}: {}", stderr(&out));
            credentials(&out);
            expected_requests += 1;
        }
    }
    let log = emu.requests();
    assert_eq!(log.len(), expected_requests);
    assert!(log.iter().all(|r| r["status"] == 201), "{log:?}");
}

#[test]
fn without_intermediates_a_root_issued_leaf_works_and_an_intermediate_issued_one_is_refused() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let out = run(credential_process(&emu.url, &[]).args([
        "--certificate",
        &path(&m.direct_p256.cert),
        "--private-key",
        &path(&m.direct_p256.key),
    ]));
    credentials(&out);

    // The service's 403 for an untrusted chain: exit 1, the service's words, and a hint.
    let leaf = m.leaf(KeyType::P256).unwrap();
    let out = run(credential_process(&emu.url, &[]).args([
        "--certificate",
        &path(&leaf.cert_pem),
        "--private-key",
        &path(&leaf.key),
    ]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(out.stdout.is_empty());
    let err = stderr(&out);
    assert!(
        err.contains("CreateSession failed: AccessDeniedException (403)"),
        "{err}"
    );
    assert!(
        err.contains("hint:") && err.contains("--intermediates"),
        "{err}"
    );
    assert_eq!(emu.requests().len(), 2, "403 is not retried");
}

#[test]
fn a_full_chain_certificate_file_sends_its_intermediates() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::Rsa2048).unwrap();
    let full = d.path().join("fullchain.pem");
    let mut pem = std::fs::read_to_string(&leaf.cert_pem).unwrap();
    pem.push_str(&std::fs::read_to_string(&m.intermediates).unwrap());
    std::fs::write(&full, pem).unwrap();
    credentials(&run(credential_process(&emu.url, &[]).args([
        "--certificate",
        &path(&full),
        "--private-key",
        &path(&leaf.key),
    ])));
}

#[test]
fn bad_inputs_exit_2_print_nothing_and_send_nothing() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::P256).unwrap();
    let rsa = m.leaf(KeyType::Rsa2048).unwrap();
    let cert = path(&leaf.cert_pem);
    let key = path(&leaf.key);
    let missing = path(&d.path().join("no-such-file.pem"));
    let unreadable = d.path().join("unreadable.pem");
    std::fs::create_dir(&unreadable).unwrap();
    let cases: Vec<(&str, Vec<String>, &str, &str)> = vec![
        (
            "mismatched key",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                path(&m.other_key),
            ],
            "does not belong to the certificate",
            "openssl",
        ),
        (
            "key of another type",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                path(&rsa.key),
            ],
            "does not belong to the certificate",
            "pair the right files",
        ),
        (
            "expired",
            vec![
                "--certificate".into(),
                path(&m.expired.cert),
                "--private-key".into(),
                path(&m.expired.key),
            ],
            "expired at",
            "renew",
        ),
        (
            "not yet valid",
            vec![
                "--certificate".into(),
                path(&m.future.cert),
                "--private-key".into(),
                path(&m.future.key),
            ],
            "is not valid until",
            "clock",
        ),
        (
            "garbage certificate",
            vec![
                "--certificate".into(),
                path(&m.garbage_pem),
                "--private-key".into(),
                key.clone(),
            ],
            "is not a certificate",
            "expected a PEM file",
        ),
        (
            "text as certificate",
            vec![
                "--certificate".into(),
                path(&m.not_pem),
                "--private-key".into(),
                key.clone(),
            ],
            "is not a certificate",
            "expected a PEM file",
        ),
        (
            "text as key",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                path(&m.not_pem),
            ],
            "is not a private key",
            "PKCS#8",
        ),
        (
            "certificate as key",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                cert.clone(),
            ],
            "holds a certificate, not a private key",
            "swap",
        ),
        (
            "missing file",
            vec![
                "--certificate".into(),
                missing.clone(),
                "--private-key".into(),
                key.clone(),
            ],
            "cannot read --certificate file",
            "check the path",
        ),
        (
            "directory as file",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                path(&unreadable),
            ],
            "cannot read --private-key file",
            "check the path",
        ),
        (
            "missing key flag",
            vec!["--certificate".into(), cert.clone()],
            "--private-key is required",
            "--private-key",
        ),
        (
            "encrypted, no password",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                path(&leaf.encrypted_key),
            ],
            "no password was given",
            "ROLESANYWHERE_PKCS8_PASSWORD",
        ),
        (
            "encrypted, wrong password",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                path(&leaf.encrypted_key),
                "--pkcs8-password".into(),
                "nope".into(),
            ],
            "does not decrypt",
            "--pkcs8-password",
        ),
        (
            "pkcs12, wrong password",
            vec![
                "--certificate".into(),
                path(&leaf.pkcs12),
                "--pkcs8-password".into(),
                "nope".into(),
            ],
            "password does not open it",
            "--pkcs8-password",
        ),
        (
            "short duration",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                key.clone(),
                "--session-duration".into(),
                "899".into(),
            ],
            "outside 900..43200",
            "3600",
        ),
        (
            "long duration",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                key.clone(),
                "--session-duration".into(),
                "43201".into(),
            ],
            "outside 900..43200",
            "3600",
        ),
        (
            "bad role ARN",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                key.clone(),
                "--role-arn".into(),
                "exam".into(),
            ],
            "--role-arn value 'exam' is not a valid ARN",
            "arn:aws:iam::ACCOUNT:role/NAME",
        ),
        (
            "regions differ",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                key.clone(),
                "--profile-arn".into(),
                "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p1".into(),
            ],
            "the trust anchor is in us-east-1 but the profile is in eu-west-1",
            "same region",
        ),
        (
            "TPM handle without a password flag",
            vec![
                "--certificate".into(),
                cert.clone(),
                "--private-key".into(),
                "handle:0x81000001".into(),
            ],
            if cfg!(feature = "tpm") {
                "needs --tpm-key-password PASSWORD, or --no-tpm-key-password"
            } else {
                "not supported"
            },
            if cfg!(feature = "tpm") {
                "Go helper"
            } else {
                "README"
            },
        ),
        (
            "PKCS#11 URI",
            vec![
                "--certificate".into(),
                "pkcs11:token=x;colour=blue?pin-value=1234".into(),
            ],
            if cfg!(feature = "pkcs11") {
                "`colour` is not a PKCS#11 URI path attribute"
            } else {
                "not supported"
            },
            if cfg!(feature = "pkcs11") {
                "RFC 7512"
            } else {
                "README"
            },
        ),
    ];
    for (what, args, message, hint) in cases {
        let out = run(credential_process(&emu.url, &[]).args(&args));
        assert_usage_error(what, &out, message, hint);
    }
    assert!(
        emu.requests().is_empty(),
        "no request may be sent for bad input: {:?}",
        emu.requests()
    );
}

#[test]
fn error_messages_never_echo_key_material() {
    let (d, m) = matrix();
    let leaf = m.leaf(KeyType::P256).unwrap();
    let key_text = std::fs::read_to_string(&leaf.key).unwrap();
    // A key file with one corrupted character: the parser fails, and must not echo it.
    let broken = d.path().join("broken.key");
    std::fs::write(&broken, key_text.replacen('A', "!", 1)).unwrap();
    // A key given as the certificate.
    for args in [
        vec![
            "--certificate".to_string(),
            path(&leaf.key),
            "--private-key".into(),
            path(&leaf.key),
        ],
        vec![
            "--certificate".to_string(),
            path(&leaf.cert_pem),
            "--private-key".into(),
            path(&broken),
        ],
    ] {
        let out = run(credential_process("http://127.0.0.1:9", &["--debug"]).args(&args));
        assert_eq!(out.status.code(), Some(2));
        let err = stderr(&out);
        for line in key_text
            .lines()
            .filter(|l| !l.starts_with("-----") && l.len() > 8)
        {
            assert!(!err.contains(line), "stderr echoes key material:\n{err}");
        }
    }
}

#[test]
fn a_503_then_success_is_retried_and_persistent_failure_gives_up_after_3_attempts() {
    let (_d, m) = matrix();
    let leaf = m.leaf(KeyType::P384).unwrap();
    let args = [
        "--certificate",
        &path(&leaf.cert_pem),
        "--private-key",
        &path(&leaf.key),
        "--intermediates",
        &path(&m.intermediates),
    ];

    let emu = Emulator::start(&m.anchors, &["--fail-first", "1", "--fail-status", "503"]);
    credentials(&run(credential_process(&emu.url, &[]).args(args)));
    let statuses: Vec<u64> = emu
        .requests()
        .iter()
        .map(|r| r["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![503, 201]);

    let emu = Emulator::start(&m.anchors, &["--fail-first", "10", "--fail-status", "429"]);
    let out = run(credential_process(&emu.url, &[]).args(args));
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    assert!(stderr(&out).contains("(429)"), "{}", stderr(&out));
    assert_eq!(emu.requests().len(), 3);
}

#[test]
fn an_unreachable_endpoint_is_a_runtime_error_with_a_hint() {
    let (_d, m) = matrix();
    let leaf = m.leaf(KeyType::P256).unwrap();
    // Port 9 (discard) on loopback: nothing listens there.
    let out = run(credential_process("http://127.0.0.1:9", &[]).args([
        "--certificate",
        &path(&leaf.cert_pem),
        "--private-key",
        &path(&leaf.key),
    ]));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");
    assert!(err.contains("hint:"), "{err}");
}

#[test]
fn a_service_clock_an_hour_off_gets_the_clock_hint_with_the_local_time() {
    let (_d, m) = matrix();
    let leaf = m.leaf(KeyType::P256).unwrap();
    // An hour behind: "Signature not yet current"; an hour ahead: "Signature expired".
    for (offset, says) in [
        ("-3600", "Signature not yet current"),
        ("3600", "Signature expired"),
    ] {
        let emu = Emulator::start(&m.anchors, &["--clock-offset", offset]);
        let out = run(credential_process(&emu.url, &["--no-cache"]).args([
            "--certificate",
            &path(&leaf.cert_pem),
            "--private-key",
            &path(&leaf.key),
            "--intermediates",
            &path(&m.intermediates),
        ]));
        assert_eq!(out.status.code(), Some(1));
        let err = stderr(&out);
        assert!(err.contains(says), "{err}");
        let hint = err.split("hint:").nth(1).unwrap_or_default();
        assert!(hint.contains("clock") && hint.contains("NTP"), "{err}");
        assert!(!hint.contains("trust"), "not the trust hint: {err}");
        // The local time is shown, to compare with a correct clock.
        let year = time::OffsetDateTime::now_utc().year().to_string();
        assert!(hint.contains(&format!("read {year}-")), "{err}");
    }
}

#[test]
fn a_go_helper_command_line_is_accepted_unchanged() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::Rsa2048).unwrap();
    let out = run(credential_process(&emu.url, &[]).args([
        "--certificate",
        &path(&leaf.cert_pem),
        "--private-key",
        &path(&leaf.key),
        "--intermediates",
        &path(&m.intermediates),
        "--session-duration",
        "900",
        "--region",
        "us-east-1",
        "--role-session-name",
        "ci-runner.42",
        "--system-store-name",
        "MY",
        "--with-proxy",
        "--debug",
    ]));
    let v = credentials(&out);
    let log = emu.requests();
    assert_eq!(log[0]["duration_seconds"], 900);
    // --debug logs to stderr, never the secrets.
    let err = stderr(&out);
    assert!(err.contains("pre-flight checks passed"), "{err}");
    for secret in ["SecretAccessKey", "SessionToken"] {
        let value = v[secret].as_str().unwrap();
        assert!(!err.contains(value), "{secret} leaked to stderr");
    }
}

#[test]
fn rust_log_that_is_not_a_filter_is_named_and_logs_carry_no_colour_codes() {
    let out = run(agent()
        .arg("version")
        .env("RUST_LOG", "rolesanywhere_agent=loud"));
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), env!("CARGO_PKG_VERSION"));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("RUST_LOG is not a list of TARGET=LEVEL"),
        "{err}"
    );
    assert!(err.contains("Hint: RUST_LOG=debug"), "{err}");
    // stderr is a pipe here, not a terminal: no ANSI escapes in what journald would store.
    assert!(!err.contains('\u{1b}'), "{err:?}");
}

#[test]
fn version_help_and_usage_errors() {
    let out = run(agent().arg("version"));
    assert_eq!(stdout(&out).trim(), env!("CARGO_PKG_VERSION"));
    let out = run(agent().args(["credential-process", "--help"]));
    let help = stdout(&out);
    for flag in [
        "--certificate",
        "--private-key",
        "--intermediates",
        "--trust-anchor-arn",
        "--profile-arn",
        "--role-arn",
        "--session-duration",
        "--region",
        "--endpoint",
        "--no-verify-ssl",
        "--with-proxy",
        "--debug",
        "--role-session-name",
        "--cert-selector",
        "--system-store-name",
        "--use-latest-expiring-certificate",
        "--pkcs11-lib",
        "--reuse-pin",
        "--tpm-key-password",
        "--no-tpm-key-password",
        "--pkcs8-password",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}");
    }
    assert!(help.contains("Exit codes:"));
    let out = run(agent().args(["credential-process", "--no-such-flag"]));
    assert_eq!(out.status.code(), Some(2));
    let out = run(agent().args(["credential-process", "--session-duration", "abc"]));
    assert_eq!(out.status.code(), Some(2));
}

/// A request signed for another region than the endpoint's gets a hint about the region,
/// not the trust-policy hint of other access denials.
#[test]
fn a_wrong_region_gets_the_region_hint() {
    let dir = tempfile::tempdir().unwrap();
    let pki = rolesanywhere_agent::pki::write_demo_pki(dir.path()).unwrap();
    let emu = Emulator::start(&pki.ca_cert, &[]);
    let out = run(&mut credential_process(
        &emu.url,
        &[
            "--certificate",
            &path(&pki.cert),
            "--private-key",
            &path(&pki.key),
            "--region",
            "us-west-2",
            "--no-cache",
        ],
    ));
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("scoped to a valid region"), "{err}");
    assert!(err.contains("--region"), "{err}");
    assert!(!err.contains("trust policy"), "{err}");
}
