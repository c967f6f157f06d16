//! Certificate renewal under a running `serve`, without a signal: the three ways files are
//! replaced (Kubernetes `..data` symlink swap, in-place overwrite, rename into place), a
//! half-written pair, expiry warnings with `/healthz` degraded, and the reload lifecycle
//! (SIGTERM during a hanging reload, a SIGHUP storm, a FIFO certificate at SIGHUP).
//!
//! Each test drives the built binary against `emulate` on 127.0.0.1 and reads emulate's
//! request log: which certificate serial signed each CreateSession, and whether any was
//! rejected. Credentials live 20 s there, so a refresh comes every ~10 s.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::support::rotation::{
    Pki, SecretVolume, Serve, key_pem, overwrite, rename_into_place, serial,
};
use crate::support::{self, Emulator, http, path};
use rolesanywhere_agent::identity::Certificate;
use rolesanywhere_agent::pki::Issued;

/// Waits (at most `limit`) for a CreateSession signed with `serial`.
fn wait_for_serial(emu: &Emulator, serial: &str, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if emu
            .requests()
            .iter()
            .any(|r| r["serial"].as_str() == Some(serial))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

/// Every request accepted, and once the new serial appears, no old one after it.
fn assert_clean_switch(emu: &Emulator, old: &str, new: &str) {
    let requests = emu.requests();
    let rejected: Vec<_> = requests.iter().filter(|r| r["status"] != 201).collect();
    assert!(rejected.is_empty(), "rejected requests: {rejected:?}");
    let serials: Vec<&str> = requests
        .iter()
        .map(|r| r["serial"].as_str().unwrap())
        .collect();
    let first_new = serials.iter().position(|s| *s == new).unwrap();
    assert!(
        serials[..first_new].iter().all(|s| *s == old),
        "{serials:?}"
    );
    assert!(
        serials[first_new..].iter().all(|s| *s == new),
        "{serials:?}"
    );
}

/// Runs one rotation style: start on leaf A, `rotate` to leaf B, expect the agent to notice
/// within 5 s (its log says so, with both serials) and the next CreateSession to carry B.
fn rotation_style(
    setup: impl FnOnce(&Path, &Issued) -> (PathBuf, PathBuf, Box<dyn FnOnce(&Issued)>),
) {
    let pki = Pki::new();
    // 12-second credentials: the next session is the refresh, due about 6 s after start
    // (half the lifetime); the test waits for it and no longer.
    let emu = Emulator::start(&pki.anchor, &["--credential-lifetime", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki.leaf(), pki.leaf());
    let (cert, key, rotate) = setup(dir.path(), &a);
    let socket = dir.path().join("agent.sock");
    let serve = Serve::start(&cert, &key, &emu, &["--socket", &path(&socket)]);
    assert_eq!(emu.requests()[0]["serial"], serial(&a));
    rotate(&b);
    assert!(
        serve.wait_log("identity rotated", Duration::from_secs(5)),
        "the rotation was not noticed within 5 s:\n{}",
        serve.log()
    );
    // The socket answers a credential-process that reads the new files (no CreateSession
    // of its own; the agent's next refresh is seconds away).
    let before = emu.requests().len();
    let out = support::run(&mut support::credential_process(
        &emu.url,
        &[
            "--certificate",
            &path(&cert),
            "--private-key",
            &path(&key),
            "--socket",
            &path(&socket),
        ],
    ));
    support::credentials(&out);
    assert_eq!(
        emu.requests().len(),
        before,
        "credential-process was answered by the agent: {}",
        support::stderr(&out)
    );
    let log = serve.log();
    assert!(
        log.contains(&serial(&a)) && log.contains(&serial(&b)),
        "the log names both serials:\n{log}"
    );
    assert!(
        wait_for_serial(&emu, &serial(&b), Duration::from_secs(20)),
        "no CreateSession with the new certificate: {:?}",
        emu.requests()
    );
    assert_clean_switch(&emu, &serial(&a), &serial(&b));
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_kubernetes_secret_symlink_swap_is_used_for_the_next_session() {
    rotation_style(|dir, a| {
        let mut volume = SecretVolume::new(dir, a);
        let (cert, key) = (volume.cert(), volume.key());
        (cert, key, Box::new(move |b: &Issued| volume.publish(b)))
    });
}

#[test]
fn files_overwritten_in_place_are_used_for_the_next_session() {
    rotation_style(|dir, a| {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        overwrite(&cert, &a.cert_pem);
        overwrite(&key, &key_pem(a));
        let (c, k) = (cert.clone(), key.clone());
        (
            cert,
            key,
            Box::new(move |b: &Issued| {
                overwrite(&k, &key_pem(b));
                overwrite(&c, &b.cert_pem);
            }),
        )
    });
}

#[test]
fn files_renamed_into_place_are_used_for_the_next_session() {
    rotation_style(|dir, a| {
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        rename_into_place(&cert, &a.cert_pem);
        rename_into_place(&key, &key_pem(a));
        let (c, k) = (cert.clone(), key.clone());
        (
            cert,
            key,
            Box::new(move |b: &Issued| {
                rename_into_place(&k, &key_pem(b));
                rename_into_place(&c, &b.cert_pem);
            }),
        )
    });
}

#[test]
fn a_half_written_pair_is_never_sent() {
    let pki = Pki::new();
    let emu = Emulator::start(&pki.anchor, &["--credential-lifetime", "20"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki.leaf(), pki.leaf());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    overwrite(&cert, &a.cert_pem);
    overwrite(&key, &key_pem(&a));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    let started = Instant::now();
    // The refresh of the 20 s credentials is due ~9.5-10 s after start: replace the key just
    // before it and the certificate 3 s later, so the refresh falls inside the mismatch.
    std::thread::sleep(Duration::from_millis(8_500).saturating_sub(started.elapsed()));
    overwrite(&key, &key_pem(&b));
    std::thread::sleep(Duration::from_secs(3));
    let during = emu.requests();
    overwrite(&cert, &b.cert_pem);
    assert!(
        during.len() >= 2,
        "a refresh fell inside the mismatch window: {during:?}"
    );
    assert!(
        during
            .iter()
            .all(|r| r["serial"].as_str() == Some(&serial(&a))),
        "{during:?}"
    );
    assert!(
        wait_for_serial(&emu, &serial(&b), Duration::from_secs(20)),
        "{:?}",
        emu.requests()
    );
    assert_clean_switch(&emu, &serial(&a), &serial(&b));
    let log = serve.log();
    assert_eq!(
        log.matches("cannot be used yet").count(),
        1,
        "the inconsistent pair is reported once:\n{log}"
    );
    assert!(log.contains("does not belong to the certificate"), "{log}");
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn a_certificate_with_three_days_left_warns_and_degrades_health() {
    let pki = Pki::new();
    let emu = Emulator::start(&pki.anchor, &[]);
    let dir = tempfile::tempdir().unwrap();
    // Issued 30 days ago, 3 days left: inside the 7-day window (a quarter is 8 days).
    let leaf = pki.leaf_valid(time::Duration::days(-30), time::Duration::days(3));
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    overwrite(&cert, &leaf.cert_pem);
    overwrite(&key, &key_pem(&leaf));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    let (status, _, body) = http(&serve.addr, "GET", "/healthz", &[]);
    assert_eq!(status, 200, "{body}");
    let v = json(&body);
    assert_eq!(v["status"], "degraded", "{body}");
    let not_after = Certificate::from_der(&leaf.cert_der).unwrap().not_after();
    assert_eq!(
        v["certificate_not_after"],
        rolesanywhere_agent::credentials::format_expiration(not_after),
        "{body}"
    );
    assert!(
        v["expiration"].as_str().is_some_and(|e| e.ends_with('Z')),
        "{body}"
    );
    assert!(
        serve.wait_log("the certificate expires soon", Duration::from_secs(5)),
        "{}",
        serve.log()
    );
    assert_eq!(serve.log().matches("expires soon").count(), 1);
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));

    // A certificate that ends before the credentials do: an error, and degraded too.
    let short = pki.leaf_valid(time::Duration::days(-1), time::Duration::minutes(30));
    overwrite(&cert, &short.cert_pem);
    overwrite(&key, &key_pem(&short));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    assert!(
        serve.wait_log(
            "the credentials outlive the certificate",
            Duration::from_secs(5)
        ),
        "{}",
        serve.log()
    );
    let (status, _, body) = http(&serve.addr, "GET", "/healthz", &[]);
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)["status"], "degraded", "{body}");
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));

    // A healthy certificate stays "ok".
    let fine = pki.leaf();
    overwrite(&cert, &fine.cert_pem);
    overwrite(&key, &key_pem(&fine));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    let (_, _, body) = http(&serve.addr, "GET", "/healthz", &[]);
    assert_eq!(json(&body)["status"], "ok", "{body}");
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
}

#[test]
fn sigterm_during_a_reload_against_a_hanging_endpoint_exits_in_bound() {
    let pki = Pki::new();
    // The first CreateSession is answered, every later one hangs.
    let emu = Emulator::start(&pki.anchor, &["--stall-after", "1"]);
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.leaf();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    overwrite(&cert, &leaf.cert_pem);
    overwrite(&key, &key_pem(&leaf));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    serve.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while emu.requests().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(emu.requests().len(), 2, "the reload is in flight");
    // The endpoints keep answering during the reload.
    let (status, _, body) = http(&serve.addr, "GET", "/healthz", &[]);
    assert_eq!(status, 200, "{body}");
    let sent = Instant::now();
    // The documented bound is 10 s (serve's STOP_BOUND); 15 s leaves room for a slow CI.
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
    eprintln!("exit after SIGTERM took {:?}", sent.elapsed());
}

#[test]
fn a_sighup_storm_makes_at_most_two_create_sessions() {
    let pki = Pki::new();
    let emu = Emulator::start(&pki.anchor, &[]);
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.leaf();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    overwrite(&cert, &leaf.cert_pem);
    overwrite(&key, &key_pem(&leaf));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    assert_eq!(emu.requests().len(), 1);
    // 100 SIGHUPs over about a second, each after the previous reload could have finished.
    let pid = serve.child.id().to_string();
    let storm = std::process::Command::new("sh")
        .args([
            "-c",
            "i=0; while [ $i -lt 100 ]; do kill -HUP $1; sleep 0.01; i=$((i+1)); done",
            "sh",
            &pid,
        ])
        .status()
        .unwrap();
    assert!(storm.success());
    // Let the pending reload run (it waits out the 2 s spacing).
    std::thread::sleep(Duration::from_secs(4));
    let requests = emu.requests();
    assert!(
        (2..=3).contains(&requests.len()),
        "one start-up session plus at most two reloads: {} sessions",
        requests.len()
    );
    let (status, _, _) = http(&serve.addr, "GET", "/healthz", &[]);
    assert_eq!(status, 200);
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_fifo_certificate_at_sighup_freezes_nothing() {
    let pki = Pki::new();
    let emu = Emulator::start(&pki.anchor, &[]);
    let dir = tempfile::tempdir().unwrap();
    let leaf = pki.leaf();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    overwrite(&cert, &leaf.cert_pem);
    overwrite(&key, &key_pem(&leaf));
    let serve = Serve::start(&cert, &key, &emu, &["--no-socket"]);
    fs::remove_file(&cert).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&cert)
        .status()
        .unwrap();
    assert!(made.success());
    serve.signal("HUP");
    // /healthz answers throughout (each request bounded at 10 s by the helper; a frozen
    // runtime would not answer at all).
    let until = Instant::now() + Duration::from_secs(3);
    while Instant::now() < until {
        let asked = Instant::now();
        let (status, _, body) = http(&serve.addr, "GET", "/healthz", &[]);
        assert_eq!(status, 200, "{body}");
        assert!(
            asked.elapsed() < Duration::from_secs(1),
            "{:?}",
            asked.elapsed()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // The reload fails (refused, or timed out while the read is stuck) naming the file.
    assert!(
        serve.wait_log(
            "SIGHUP: the certificate or key cannot be used",
            Duration::from_secs(25)
        ),
        "{}",
        serve.log()
    );
    let log = serve.log();
    let line = log
        .lines()
        .find(|l| l.contains("SIGHUP: the certificate or key cannot be used"))
        .unwrap();
    assert!(line.contains(&path(&cert)), "{line}");
    assert_eq!(serve.stop(Duration::from_secs(15)), Some(0));
}

#[test]
fn a_certificate_renewed_on_a_pkcs11_token_is_used_for_the_next_session() {
    use crate::support::softhsm::{Object, SoftHsm, run_bounded};
    const PIN: &str = "rot-pin-1234";
    let pki = Pki::new();
    let emu = Emulator::start(&pki.anchor, &["--credential-lifetime", "20"]);
    let hsm = SoftHsm::new();
    hsm.init_token("ra-rot", PIN);
    let (a, b) = (pki.leaf(), pki.leaf());
    hsm.import(
        "ra-rot",
        PIN,
        Object::PrivateKey,
        a.key.pkcs8_der(),
        &[1],
        "key-a",
        false,
    );
    hsm.import(
        "ra-rot",
        PIN,
        Object::Certificate,
        &a.cert_der,
        &[1],
        "workload",
        false,
    );
    let conf = path(&hsm.conf);
    let mut cmd = support::agent();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("serve.log");
    cmd.args(["serve", "--port", "0", "--no-socket", "--certificate"])
        .arg("pkcs11:token=ra-rot;object=workload;type=cert")
        .args(["--pkcs11-lib", &hsm.module])
        .args(support::ARN_FLAGS)
        .args(["--endpoint", &emu.url])
        .env("SOFTHSM2_CONF", &conf)
        .env("ROLESANYWHERE_PKCS11_PIN", PIN)
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(&log).unwrap());
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.requests().is_empty() {
        assert!(
            Instant::now() < deadline,
            "{}",
            fs::read_to_string(&log).unwrap()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(emu.requests()[0]["serial"], serial(&a));
    // The renewal: the new key and certificate written, the old certificate removed.
    hsm.import(
        "ra-rot",
        PIN,
        Object::PrivateKey,
        b.key.pkcs8_der(),
        &[2],
        "key-b",
        false,
    );
    let out = run_bounded(
        std::process::Command::new("pkcs11-tool")
            .args(["--module", &hsm.module, "--token-label", "ra-rot"])
            .args([
                "--login",
                "--pin",
                PIN,
                "--delete-object",
                "--type",
                "cert",
                "--id",
                "01",
            ])
            .env("SOFTHSM2_CONF", &conf),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    hsm.import(
        "ra-rot",
        PIN,
        Object::Certificate,
        &b.cert_der,
        &[2],
        "workload",
        false,
    );
    let found = wait_for_serial(&emu, &serial(&b), Duration::from_secs(25));
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        found,
        "{:?}\n{}",
        emu.requests(),
        fs::read_to_string(&log).unwrap()
    );
    assert_clean_switch(&emu, &serial(&a), &serial(&b));
}

#[test]
fn update_follows_a_renewal_too() {
    let pki = Pki::new();
    // 12-second credentials: the renewal is used at the refresh, about 6 s in.
    let emu = Emulator::start(&pki.anchor, &["--credential-lifetime", "12"]);
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (pki.leaf(), pki.leaf());
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    overwrite(&cert, &a.cert_pem);
    overwrite(&key, &key_pem(&a));
    let mut child = support::agent()
        .args([
            "update",
            "--profile",
            "rotating",
            "--certificate",
            &path(&cert),
        ])
        .args(["--private-key", &path(&key)])
        .args(support::ARN_FLAGS)
        .args(["--endpoint", &emu.url])
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            dir.path().join("credentials"),
        )
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while emu.requests().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    rename_into_place(&key, &key_pem(&b));
    rename_into_place(&cert, &b.cert_pem);
    let found = wait_for_serial(&emu, &serial(&b), Duration::from_secs(25));
    let _ = child.kill();
    let _ = child.wait();
    assert!(found, "{:?}", emu.requests());
    assert_clean_switch(&emu, &serial(&a), &serial(&b));
}
