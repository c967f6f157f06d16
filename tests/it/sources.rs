//! Identities without key files: `env:NAME` and `-` (standard input) for --certificate,
//! --private-key and --intermediates. Secrets read this way are never echoed or logged.

use std::io::Write as _;
use std::process::Stdio;

use crate::support::*;
use rolesanywhere_agent::pki::KeyType;

fn pem(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap()
}

/// Runs `cmd` with `input` on standard input.
fn with_stdin(cmd: &mut std::process::Command, input: &str) -> std::process::Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // A command that fails early may exit before reading: a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(input.as_bytes());
    child.wait_with_output().unwrap()
}

#[test]
fn credential_process_reads_identities_from_variables_and_standard_input() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::P384).unwrap();

    // All three from variables, at the most verbose log level.
    let out = run(credential_process(&emu.url, &["--debug"])
        .args([
            "--certificate",
            "env:RA_CERT",
            "--private-key",
            "env:RA_KEY",
            "--intermediates",
            "env:RA_CHAIN",
        ])
        .env("RA_CERT", pem(&leaf.cert_pem))
        .env("RA_KEY", pem(&leaf.key))
        .env("RA_CHAIN", pem(&m.intermediates))
        .env("RUST_LOG", "trace"));
    credentials(&out);
    let key_pem = pem(&leaf.key);
    let err = stderr(&out);
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!err.contains(line), "key material in the log:\n{err}");
    }

    // Certificate, chain and key in one PEM stream on standard input.
    let stream = format!(
        "{}{}{}",
        pem(&leaf.cert_pem),
        pem(&m.intermediates),
        key_pem
    );
    let out = with_stdin(
        credential_process(&emu.url, &["--debug"])
            .args(["--certificate", "-", "--private-key", "-"])
            .env("RUST_LOG", "trace"),
        &stream,
    );
    credentials(&out);
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!stderr(&out).contains(line), "key material in the log");
    }

    // Mixed: certificate from a file, key from a variable.
    credentials(&run(credential_process(&emu.url, &[])
        .args([
            "--certificate",
            &path(&leaf.cert_pem),
            "--private-key",
            "env:RA_KEY",
            "--intermediates",
            &path(&m.intermediates),
        ])
        .env("RA_KEY", &key_pem)));
    assert_eq!(emu.requests().len(), 3);
}

#[test]
fn missing_variables_empty_input_and_a_key_alone_are_clear_errors_naming_the_source() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::P256).unwrap();
    let key_pem = pem(&leaf.key);

    let out = run(credential_process(&emu.url, &[])
        .args([
            "--certificate",
            "env:RA_NOT_SET",
            "--private-key",
            "env:RA_KEY",
        ])
        .env("RA_KEY", &key_pem));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "--certificate env:RA_NOT_SET: the environment variable RA_NOT_SET is not set"
        ),
        "{}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("hint: export RA_NOT_SET"),
        "{}",
        stderr(&out)
    );

    let out = with_stdin(
        credential_process(&emu.url, &[]).args(["--certificate", "-", "--private-key", "-"]),
        "",
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--certificate standard input is empty"),
        "{}",
        stderr(&out)
    );

    // Only a key on standard input: no certificate, and the key is not echoed.
    let out = with_stdin(
        credential_process(&emu.url, &[]).args(["--certificate", "-", "--private-key", "-"]),
        &key_pem,
    );
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(
        err.contains("--certificate standard input is not a certificate"),
        "{err}"
    );
    for line in key_pem.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!err.contains(line), "key echoed:\n{err}");
    }

    // A certificate where the key should be, from a variable.
    let out = run(credential_process(&emu.url, &[])
        .args([
            "--certificate",
            &path(&leaf.cert_pem),
            "--private-key",
            "env:RA_KEY",
        ])
        .env("RA_KEY", pem(&leaf.cert_pem)));
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out)
            .contains("--private-key variable RA_KEY holds a certificate, not a private key"),
        "{}",
        stderr(&out)
    );
    assert!(out.stdout.is_empty());
    assert!(emu.requests().is_empty());
}

#[test]
fn serve_reads_standard_input_once_and_keeps_that_identity_on_sighup() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::Rsa2048).unwrap();
    let mut args = serve_args(&m, &emu, &["--no-socket"]);
    args[1] = "env:RA_CERT".into();
    args[3] = "env:RA_KEY".into();
    let agent = Agent::start(
        &args,
        &[
            ("RA_CERT", &pem(&leaf.cert_pem)),
            ("RA_KEY", &pem(&leaf.key)),
        ],
    );
    let token = imds_token(&agent.addr);
    assert_eq!(imds_credentials(&agent.addr, &token).0, 200);
    agent.signal("HUP");
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(imds_credentials(&agent.addr, &token).0, 200);
    agent.signal("TERM");
    let (code, err) = agent.wait(std::time::Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains("cannot be read again; keeping the current one"),
        "{err}"
    );
    assert!(err.contains("variable RA_CERT"), "{err}");
    assert_eq!(emu.requests().len(), 1);
}
