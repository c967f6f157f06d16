//! The limits a CreateSession answer and the credentials cache must hold, against the built
//! binary and `emulate` on 127.0.0.1: an oversized answer, a far-future expiry, a profile
//! that caps the session below the duration asked, a primed cache that must not hide a
//! broken key, and (in-process) a signature that takes seconds while the agent answers.

use std::io::{Read as _, Write as _};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::*;
use rolesanywhere_agent::pki::KeyType;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// The data (heap and anonymous memory) a child may use in [`run_bounded`].
const DATA_LIMIT: u64 = 128 * 1024 * 1024;

/// Runs `cmd` to its end with its data segment capped at [`DATA_LIMIT`] (so a child that
/// tries to hold a huge answer dies instead of passing), and returns its exit code, stdout,
/// stderr and the peak RSS (VmHWM, KiB) seen while polling its /proc status. (wait4's
/// ru_maxrss would not do: Linux carries the spawning test process's peak over the exec.)
#[allow(unsafe_code)] // audited: the `pre_exec` below (lint exception)
fn run_bounded(cmd: &mut std::process::Command) -> (Option<i32>, String, String, u64) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: setrlimit is async-signal-safe and touches only the child being set up.
    unsafe {
        cmd.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: DATA_LIMIT,
                rlim_max: DATA_LIMIT,
            };
            if libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let readers = (
        std::thread::spawn(move || {
            let mut s = String::new();
            out.read_to_string(&mut s).unwrap();
            s
        }),
        std::thread::spawn(move || {
            let mut s = String::new();
            err.read_to_string(&mut s).unwrap();
            s
        }),
    );
    let status_file = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        let hwm = std::fs::read_to_string(&status_file)
            .ok()
            .and_then(|text| {
                let line = text.lines().find(|l| l.starts_with("VmHWM:"))?.to_string();
                line.split_whitespace().nth(1)?.parse::<u64>().ok()
            })
            .unwrap_or(0);
        peak_kib = peak_kib.max(hwm);
        assert!(Instant::now() < deadline, "the child ran for a minute");
        std::thread::sleep(Duration::from_millis(1));
    };
    (
        status.code(),
        readers.0.join().unwrap(),
        readers.1.join().unwrap(),
        peak_kib,
    )
}

/// The identity flags of a leaf, with intermediates and a socket where no agent listens.
fn identity_args(m: &rolesanywhere_agent::pki::TestMatrix, dir: &std::path::Path) -> Vec<String> {
    let mut args = p256_identity_args(m);
    args.extend(["--socket".into(), path(&dir.join("no-agent.sock"))]);
    args
}

fn expiration(creds: &serde_json::Value) -> OffsetDateTime {
    OffsetDateTime::parse(creds["Expiration"].as_str().unwrap(), &Rfc3339).unwrap()
}

/// The one entry file of a cache directory.
fn only_entry(cache: &std::path::Path) -> std::path::PathBuf {
    let files: Vec<_> = std::fs::read_dir(cache.join("rolesanywhere-agent"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn an_oversized_answer_fails_fast_without_reading_it_whole() {
    let (d, m) = matrix();
    // 200 MB, sent chunked: the size is only known by reading.
    let emu = Emulator::start(&m.anchors, &["--oversized-body", "209715200"]);
    let args = identity_args(&m, d.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    let (code, out, err, max_rss_kib) =
        run_bounded(credential_process(&emu.url, &args).arg("--no-cache"));
    let took = started.elapsed();
    assert_eq!(code, Some(1), "a runtime error: {err}");
    assert!(out.is_empty(), "{out}");
    assert!(
        err.contains("larger than 65536 bytes"),
        "names the cap: {err}"
    );
    assert!(
        err.contains("does not look like an IAM Roles Anywhere endpoint"),
        "{err}"
    );
    // Before the cap the whole body was read: 211 MB resident. A run stays near 20 MB.
    assert!(
        max_rss_kib < 64 * 1024,
        "peak RSS {max_rss_kib} KiB while refusing a 200 MB answer"
    );
    assert_eq!(emu.requests().len(), 1, "not retried");
    eprintln!("refused a 200 MB answer in {took:?}, peak RSS {max_rss_kib} KiB");
}

#[test]
fn a_far_future_expiration_is_clamped_and_never_served_past_the_clamp() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &["--answer-expiration", "2099-01-01T00:00:00Z"]);
    let cache = d.path().join("cache");
    let args = identity_args(&m, d.path());
    let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
    args.extend(["--session-duration", "900"]);
    let before = OffsetDateTime::now_utc().replace_nanosecond(0).unwrap();
    let out = run(credential_process(&emu.url, &args).env("XDG_CACHE_HOME", &cache));
    let after = OffsetDateTime::now_utc();
    let first = credentials(&out);
    let exp = expiration(&first);
    let asked = time::Duration::seconds(900);
    assert!(
        exp >= before + asked && exp <= after + asked,
        "Expiration {exp} is not the signing time plus 900 s ({before}..{after})"
    );
    assert!(
        stderr(&out).contains("expiration beyond the requested duration"),
        "warned: {}",
        stderr(&out)
    );

    // The cache holds the clamped expiry, and serves it (no new CreateSession).
    let entry = only_entry(&cache);
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(!text.contains("2099"), "{text}");
    let second = credentials(&run(
        credential_process(&emu.url, &args).env("XDG_CACHE_HOME", &cache)
    ));
    assert_eq!(first, second);
    assert_eq!(emu.requests().len(), 1);

    // An entry trusted by an older version (no fetched_at, expiry in 2099) is not served.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    let obj = old.as_object_mut().unwrap();
    obj.remove("fetched_at");
    obj.insert("expiration".into(), "2099-01-01T00:00:00Z".into());
    std::fs::write(&entry, old.to_string()).unwrap();
    let third = credentials(&run(
        credential_process(&emu.url, &args).env("XDG_CACHE_HOME", &cache)
    ));
    assert_ne!(third["AccessKeyId"], first["AccessKeyId"]);
    assert!(expiration(&third) <= OffsetDateTime::now_utc() + asked);
    assert_eq!(emu.requests().len(), 2, "the 2099 entry was not served");
}

#[test]
fn a_session_capped_below_the_duration_asked_is_reused_by_its_real_lifetime() {
    let (d, m) = matrix();
    // The profile caps sessions at 1000 s; an hour is asked for (the default).
    let emu = Emulator::start(&m.anchors, &["--credential-lifetime", "1000"]);
    let cache = d.path().join("cache");
    let args = identity_args(&m, d.path());
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut keys = Vec::new();
    for _ in 0..3 {
        let c = credentials(&run(
            credential_process(&emu.url, &args).env("XDG_CACHE_HOME", &cache)
        ));
        keys.push(c["AccessKeyId"].as_str().unwrap().to_string());
    }
    assert_eq!(emu.requests().len(), 1, "3 calls, {:?}", emu.requests());
    assert!(keys.iter().all(|k| *k == keys[0]));

    // And past half of a short real lifetime the set is due: 4 s credentials are reused
    // at once and refreshed 3 s later.
    let short = Emulator::start(&m.anchors, &["--credential-lifetime", "4"]);
    let call = || {
        credentials(&run(
            credential_process(&short.url, &args).env("XDG_CACHE_HOME", &cache)
        ))
    };
    let a = call();
    assert_eq!(call(), a);
    assert_eq!(short.requests().len(), 1);
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(call()["AccessKeyId"], a["AccessKeyId"]);
    assert_eq!(short.requests().len(), 2);
}

#[test]
fn a_primed_cache_never_hides_a_broken_key() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::P256).unwrap();
    let key_pem = std::fs::read_to_string(&leaf.key).unwrap();
    let cert_pem = std::fs::read_to_string(&leaf.cert_pem).unwrap();
    let socket = path(&d.path().join("no-agent.sock"));
    let cache = d.path().join("cache");
    let key_file = d.path().join("key.pem");
    let args = |key: &str| {
        vec![
            "--certificate".to_string(),
            path(&leaf.cert_pem),
            "--private-key".to_string(),
            key.to_string(),
            "--intermediates".to_string(),
            path(&m.intermediates),
            "--socket".to_string(),
            socket.clone(),
        ]
    };
    let primed = |key: &str, env: Option<&str>| {
        let a = args(key);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut cmd = credential_process(&emu.url, &a);
        cmd.env("XDG_CACHE_HOME", &cache);
        match env {
            Some(pem) => cmd.env("RA_TEST_KEY", pem),
            None => cmd.env_remove("RA_TEST_KEY"),
        };
        cmd
    };
    // The same command with an empty cache of its own: what a cold run says.
    let cold = |key: &str| {
        let a = args(key);
        let a: Vec<&str> = a.iter().map(String::as_str).collect();
        let mut cmd = credential_process(&emu.url, &a);
        cmd.env_remove("RA_TEST_KEY");
        run(&mut cmd)
    };
    let same_as_cold = |what: &str, out: std::process::Output, key: &str| {
        let cold = cold(key);
        assert_eq!(
            cold.status.code(),
            Some(2),
            "{what}, cold: {}",
            stderr(&cold)
        );
        assert_eq!(out.status.code(), Some(2), "{what}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "{what}");
        assert_eq!(stderr(&out), stderr(&cold), "{what}");
    };
    let file = path(&key_file);

    // A key file that is gone.
    std::fs::write(&key_file, &key_pem).unwrap();
    credentials(&run(&mut primed(&file, None)));
    credentials(&run(&mut primed(&file, None)));
    assert_eq!(emu.requests().len(), 1, "primed");
    std::fs::remove_file(&key_file).unwrap();
    same_as_cold("a missing key file", run(&mut primed(&file, None)), &file);

    // The certificate written where the key was.
    std::fs::write(&key_file, &key_pem).unwrap();
    credentials(&run(&mut primed(&file, None)));
    std::fs::write(&key_file, &cert_pem).unwrap();
    same_as_cold(
        "a certificate as the key",
        run(&mut primed(&file, None)),
        &file,
    );
    // And the certificate file named as the key.
    let cert = path(&leaf.cert_pem);
    same_as_cold(
        "the certificate's path as the key",
        run(&mut primed(&cert, None)),
        &cert,
    );

    // A variable that is no longer set.
    credentials(&run(&mut primed("env:RA_TEST_KEY", Some(&key_pem))));
    credentials(&run(&mut primed("env:RA_TEST_KEY", Some(&key_pem))));
    same_as_cold(
        "an unset variable",
        run(&mut primed("env:RA_TEST_KEY", None)),
        "env:RA_TEST_KEY",
    );
    // Two sessions: the file's (the key written back with the same bytes is the same key,
    // so its entry answered again) and the variable's.
    assert_eq!(emu.requests().len(), 2, "{:?}", emu.requests());
}

/// In-process: an agent whose key takes 2 s to sign keeps answering `/healthz`.
mod slow_signer {
    use super::*;
    use rolesanywhere_agent::agent::cache::{CredentialCache, RefreshPolicy};
    use rolesanywhere_agent::agent::loader::SessionLoader;
    use rolesanywhere_agent::clock::{Clock, SystemClock};
    use rolesanywhere_agent::config::{EndpointSettings, RawSession, SessionSettings};
    use rolesanywhere_agent::identity::{Identity, IdentitySpec};
    use rolesanywhere_agent::server::{self, ServerConfig};
    use rolesanywhere_agent::session::{SessionClient, SessionError};
    use rolesanywhere_agent::signer::{Digest, KeyKind, SignError, Signer};

    /// A key store that takes `delay` per signature (a PKCS#11 token or TPM under load).
    #[derive(Debug)]
    struct SleepySigner {
        inner: Arc<dyn Signer>,
        delay: Duration,
        signing: Arc<AtomicBool>,
    }

    impl Signer for SleepySigner {
        fn key_kind(&self) -> KeyKind {
            self.inner.key_kind()
        }
        fn sign(&self, message: &[u8], digest: Digest) -> Result<Vec<u8>, SignError> {
            self.signing.store(true, Ordering::SeqCst);
            // A blocking sleep, as a token's C call would block.
            std::thread::sleep(self.delay);
            self.signing.store(false, Ordering::SeqCst);
            self.inner.sign(message, digest)
        }
        fn public_key(&self) -> Option<Vec<u8>> {
            self.inner.public_key()
        }
        fn source(&self) -> String {
            "test token 'sleepy'".into()
        }
    }

    struct Setup {
        _d: tempfile::TempDir,
        _emu: Emulator,
        client: SessionClient,
        identity: Identity,
        settings: SessionSettings,
        signing: Arc<AtomicBool>,
    }

    fn setup(delay: Duration) -> Setup {
        let (d, m) = matrix();
        let emu = Emulator::start(&m.anchors, &[]);
        let leaf = m.leaf(KeyType::P256).unwrap();
        let loaded = Identity::load(&IdentitySpec {
            certificate: Some(path(&leaf.cert_pem)),
            private_key: Some(path(&leaf.key)),
            intermediates: Some(path(&m.intermediates)),
            ..Default::default()
        })
        .unwrap();
        let signing = Arc::new(AtomicBool::new(false));
        let identity = Identity {
            signer: Arc::new(SleepySigner {
                inner: loaded.signer.clone(),
                delay,
                signing: signing.clone(),
            }),
            ..loaded
        };
        let settings = SessionSettings::from_raw(&RawSession {
            trust_anchor_arn: Some(TA),
            profile_arn: Some(PROFILE),
            role_arn: Some(ROLE),
            region: None,
            duration_seconds: 3600,
            role_session_name: None,
        })
        .unwrap();
        let endpoint = EndpointSettings {
            base_url: emu.url.clone(),
            no_verify_ssl: false,
            with_proxy: false,
            ca_bundles: Vec::new(),
        };
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let client = SessionClient::new(&endpoint, clock).unwrap();
        Setup {
            _d: d,
            _emu: emu,
            client,
            identity,
            settings,
            signing,
        }
    }

    /// One `GET /healthz` over a fresh connection: the status and how long it took.
    fn healthz(addr: std::net::SocketAddr) -> (u16, Duration) {
        let started = Instant::now();
        let mut s = std::net::TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            s,
            "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).unwrap();
        let status = text.split(' ').nth(1).unwrap().parse().unwrap();
        (status, started.elapsed())
    }

    // The binary's runtime: one thread for every endpoint and the refresher.
    #[tokio::test(flavor = "current_thread")]
    async fn healthz_answers_while_a_signature_takes_two_seconds() {
        let s = setup(Duration::from_secs(2));
        let signing = s.signing.clone();
        let loader = Arc::new(SessionLoader::new(s.client, s.identity, s.settings.clone()));
        let cache = Arc::new(CredentialCache::new(
            loader,
            RefreshPolicy::default(),
            Arc::new(SystemClock),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let config = Arc::new(ServerConfig::new(&s.settings, 64, None));
        let server = tokio::spawn(server::serve_tcp(listener, cache.clone(), config, async {
            let _ = stop_rx.await;
        }));

        // A client on its own thread polls while the runtime's one thread does the rest.
        let done = Arc::new(AtomicBool::new(false));
        let poller = {
            let (done, signing) = (done.clone(), signing.clone());
            std::thread::spawn(move || {
                let mut during_signature = Vec::new();
                while !done.load(Ordering::SeqCst) {
                    let in_signature = signing.load(Ordering::SeqCst);
                    let (status, took) = healthz(addr);
                    if in_signature && signing.load(Ordering::SeqCst) {
                        during_signature.push((status, took));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                during_signature
            })
        };
        let creds = cache.refresh().await.unwrap();
        assert!(!creds.access_key_id.is_empty());
        done.store(true, Ordering::SeqCst);
        let during = tokio::task::spawn_blocking(move || poller.join().unwrap())
            .await
            .unwrap();
        // Nothing was loaded yet, so 503: what matters is that it answers, and at once.
        assert!(
            during.len() >= 5,
            "only {} answers during the 2 s signature: {during:?}",
            during.len()
        );
        for (status, took) in &during {
            assert_eq!(*status, 503);
            assert!(
                *took < Duration::from_secs(1),
                "/healthz took {took:?} during a signature: {during:?}"
            );
        }
        let slowest = during.iter().map(|(_, took)| *took).max().unwrap();
        eprintln!(
            "{} /healthz answers during the signature, slowest {slowest:?}",
            during.len()
        );
        let _ = stop_tx.send(());
        server.await.unwrap().unwrap();
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_signature_that_never_finishes_is_a_runtime_error_naming_the_key_store() {
        let s = setup(Duration::from_secs(3));
        let client = s.client.with_sign_timeout(Duration::from_millis(500));
        let started = Instant::now();
        let err = client
            .create_session(&s.identity, &s.settings)
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "gave up in time"
        );
        assert!(matches!(err, SessionError::SignTimeout { .. }), "{err:?}");
        let text = err.to_string();
        assert!(text.contains("test token 'sleepy'"), "{text}");
        assert!(err.hint().unwrap().contains("does not answer"));
        let err = rolesanywhere_agent::error::Error::from(err);
        assert_eq!(err.exit_code(), 1);
    }
}
