//! `serve`, the agent, run as a process against `emulate` on 127.0.0.1: real botocore
//! clients through IMDS, the container endpoint and credential_process; one CreateSession
//! however many clients ask; never an empty or expired key; signals and systemd.

use std::time::{Duration, Instant};

use crate::support::*;
use rolesanywhere_agent::pki::{KeyType, TEST_PASSWORD};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

#[test]
fn botocore_gets_one_session_through_imds_the_container_endpoint_and_credential_process() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let token_file = d.path().join("container-token");
    let socket = d.path().join("agent.sock");
    let agent = Agent::start(
        &serve_args(
            &m,
            &emu,
            &[
                "--container-token-file",
                &path(&token_file),
                "--socket",
                &path(&socket),
            ],
        ),
        &[],
    );
    assert!(agent.url.starts_with("http://127.0.0.1:"), "{}", agent.url);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(
        token.len() >= 22 && !token.ends_with('\n'),
        "a fresh token without newline"
    );

    let imds = botocore(
        BOTOCORE_WHO,
        &[(
            "AWS_EC2_METADATA_SERVICE_ENDPOINT",
            &format!("{}/", agent.url),
        )],
        d.path(),
    );
    assert!(imds.status.success(), "{}", stderr(&imds));
    let imds_out = stdout(&imds);
    assert!(imds_out.starts_with("iam-role ASIA"), "{imds_out}");

    let container = botocore(
        BOTOCORE_WHO,
        &[
            (
                "AWS_CONTAINER_CREDENTIALS_FULL_URI",
                &format!("{}/v1/credentials", agent.url),
            ),
            ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", &path(&token_file)),
        ],
        d.path(),
    );
    assert!(container.status.success(), "{}", stderr(&container));
    let container_out = stdout(&container);
    assert!(
        container_out.starts_with("container-role ASIA"),
        "{container_out}"
    );

    // credential_process with the same identity asks the agent first.
    let leaf = m.leaf(KeyType::P256).unwrap();
    let config = d.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\ncredential_process = {} credential-process --certificate {} --private-key {} --intermediates {} --trust-anchor-arn {TA} --profile-arn {PROFILE} --role-arn {ROLE} --endpoint {} --socket {} --no-cache\n",
            bin(),
            path(&leaf.cert_pem),
            path(&leaf.key),
            path(&m.intermediates),
            emu.url,
            path(&socket)
        ),
    )
    .unwrap();
    let process = botocore(
        BOTOCORE_WHO,
        &[("AWS_CONFIG_FILE", &path(&config))],
        d.path(),
    );
    assert!(process.status.success(), "{}", stderr(&process));
    let process_out = stdout(&process);
    assert!(
        process_out.starts_with("custom-process ASIA"),
        "{process_out}"
    );

    // Three clients, three routes, one session.
    let key = |s: &str| s.split_whitespace().nth(1).unwrap().to_string();
    assert_eq!(key(&imds_out), key(&container_out));
    assert_eq!(key(&imds_out), key(&process_out));
    assert_eq!(emu.requests().len(), 1, "{:?}", emu.requests());
}

#[test]
fn a_cached_answer_needs_the_certificate_not_the_key() {
    // A key that needs a PIN, a TPM or a D-Bus round trip is not opened while the cache
    // answers; here the key is encrypted and the second call gives a wrong password, to
    // prove nothing is decrypted (the key's bytes are only compared, see session_limits.rs).
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::P256).unwrap();
    let cache = d.path().join("cache");
    let key = path(&leaf.encrypted_key);
    let args = [
        "--certificate",
        &path(&leaf.cert_pem),
        "--private-key",
        &key,
        "--intermediates",
        &path(&m.intermediates),
        "--socket",
        &path(&d.path().join("no-agent.sock")),
    ];
    let with_password = |password: &str| {
        let mut cmd = credential_process(&emu.url, &args);
        cmd.env("XDG_CACHE_HOME", &cache)
            .env("ROLESANYWHERE_PKCS8_PASSWORD", password);
        cmd
    };
    let first = credentials(&run(&mut with_password(TEST_PASSWORD)));
    let second = credentials(&run(&mut with_password("not the password")));
    assert_eq!(first, second);
    assert_eq!(
        emu.requests().len(),
        1,
        "the second answer came from the cache"
    );

    // When a CreateSession is due, the key is loaded and its problem reported as before.
    let out = run(with_password("not the password").arg("--no-cache"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stdout(&out).is_empty());
    assert!(stderr(&out).contains(&key), "{}", stderr(&out));
    assert_eq!(
        emu.requests().len(),
        1,
        "nothing sent with a wrong password"
    );
}

#[test]
fn credential_process_without_an_agent_reuses_the_disk_cache() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let leaf = m.leaf(KeyType::Rsa2048).unwrap();
    let cache = d.path().join("cache");
    let args = [
        "--certificate",
        &path(&leaf.cert_pem),
        "--private-key",
        &path(&leaf.key),
        "--intermediates",
        &path(&m.intermediates),
        "--socket",
        &path(&d.path().join("no-agent.sock")),
    ];
    let first = credentials(&run(
        credential_process(&emu.url, &args).env("XDG_CACHE_HOME", &cache)
    ));
    let second = credentials(&run(
        credential_process(&emu.url, &args).env("XDG_CACHE_HOME", &cache)
    ));
    assert_eq!(first, second);
    assert_eq!(
        emu.requests().len(),
        1,
        "the second call came from the cache"
    );

    // botocore through a credential_process line gets the cached set too.
    let config = d.path().join("config");
    std::fs::write(
        &config,
        format!(
            "[default]\ncredential_process = {} credential-process {} --trust-anchor-arn {TA} --profile-arn {PROFILE} --role-arn {ROLE} --endpoint {}\n",
            bin(),
            args.join(" "),
            emu.url
        ),
    )
    .unwrap();
    let out = botocore(
        BOTOCORE_WHO,
        &[
            ("AWS_CONFIG_FILE", &path(&config)),
            ("XDG_CACHE_HOME", &path(&cache)),
        ],
        d.path(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out).split_whitespace().nth(1),
        first["AccessKeyId"].as_str(),
        "botocore got the cached credentials"
    );
    assert_eq!(emu.requests().len(), 1, "no new CreateSession for botocore");
    let files: Vec<_> = std::fs::read_dir(cache.join("rolesanywhere-agent"))
        .unwrap()
        .collect();
    assert_eq!(files.len(), 1);
    let text = std::fs::read_to_string(files[0].as_ref().unwrap().path()).unwrap();
    assert!(!text.contains("PRIVATE KEY") && !text.contains("CERTIFICATE"));

    // --no-cache goes to the service; another duration is another cache entry.
    credentials(&run(credential_process(&emu.url, &args)
        .arg("--no-cache")
        .env("XDG_CACHE_HOME", &cache)));
    assert_eq!(emu.requests().len(), 2);
    credentials(&run(credential_process(&emu.url, &args)
        .args(["--session-duration", "1800"])
        .env("XDG_CACHE_HOME", &cache)));
    assert_eq!(emu.requests().len(), 3);

    // A 15-minute --refresh-before still finds the hour-long set fresh.
    credentials(&run(credential_process(&emu.url, &args)
        .args(["--refresh-before", "15m"])
        .env("XDG_CACHE_HOME", &cache)));
    assert_eq!(emu.requests().len(), 3);

    // A service that caps the session below the hour asked is judged by the lifetime it
    // grants: 15 minutes have a 450 s window, so the set is reused (session_limits.rs has
    // the expiry side).
    let short = Emulator::start(&m.anchors, &["--credential-lifetime", "900"]);
    credentials(&run(
        credential_process(&short.url, &args).env("XDG_CACHE_HOME", &cache)
    ));
    credentials(&run(
        credential_process(&short.url, &args).env("XDG_CACHE_HOME", &cache)
    ));
    assert_eq!(short.requests().len(), 1, "the capped set is reused");
}

#[test]
fn two_hundred_concurrent_requests_during_a_refresh_cost_one_create_session() {
    let (_d, m) = matrix();
    // 16-second credentials: the refresh is due after 7.6 to 8 s (half the lifetime, less
    // the jitter); the slow service keeps it in flight for 2 s while the clients ask, well
    // before the old set counts as expired (5 s before its end, at 11 s).
    let emu = Emulator::start(
        &m.anchors,
        &["--credential-lifetime", "16", "--response-delay-ms", "2000"],
    );
    let agent = Agent::start(&serve_args(&m, &emu, &["--no-socket"]), &[]);
    let started = Instant::now();
    assert_eq!(emu.requests().len(), 1);
    std::thread::sleep(Duration::from_millis(8_500).saturating_sub(started.elapsed()));
    let token = imds_token(&agent.addr);
    let threads: Vec<_> = (0..200)
        .map(|_| {
            let (addr, token) = (agent.addr.clone(), token.clone());
            std::thread::spawn(move || imds_credentials(&addr, &token))
        })
        .collect();
    for t in threads {
        let (status, body) = t.join().unwrap();
        assert_eq!(status, 200, "{body}");
        let v = json(&body);
        assert!(!v["AccessKeyId"].as_str().unwrap().is_empty());
        assert!(!v["SecretAccessKey"].as_str().unwrap().is_empty());
    }
    // Wait for the refresh to land, then check it was the only one.
    let deadline = Instant::now() + Duration::from_secs(8);
    while emu.requests().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(emu.requests().len(), 2, "{:?}", emu.requests());
}

#[test]
fn an_outage_never_yields_empty_or_expired_keys() {
    let (_d, m) = matrix();
    // 12-second credentials, then every CreateSession fails.
    let emu = Emulator::start(
        &m.anchors,
        &[
            "--credential-lifetime",
            "12",
            "--fail-after",
            "1",
            "--fail-status",
            "503",
        ],
    );
    let agent = Agent::start(&serve_args(&m, &emu, &["--no-socket"]), &[]);
    let token = imds_token(&agent.addr);
    let mut saw_503 = false;
    let mut first_503: Option<Instant> = None;
    // The set runs out 5 s before its end (7 s in); polled until the agent has answered 503
    // for 2 s while retrying, or 16 s at most.
    let deadline = Instant::now() + Duration::from_secs(16);
    while Instant::now() < deadline {
        if first_503.is_some_and(|t| t.elapsed() >= Duration::from_secs(2))
            && emu.requests().len() >= 3
        {
            break;
        }
        let (status, body) = imds_credentials(&agent.addr, &token);
        match status {
            200 => {
                assert!(!saw_503, "credentials came back after running out: {body}");
                let v = json(&body);
                for k in ["AccessKeyId", "SecretAccessKey", "Token"] {
                    assert!(!v[k].as_str().unwrap().is_empty(), "empty {k}: {body}");
                }
                let exp = time::OffsetDateTime::parse(
                    v["Expiration"].as_str().unwrap(),
                    &time::format_description::well_known::Rfc3339,
                )
                .unwrap();
                assert!(
                    exp > time::OffsetDateTime::now_utc(),
                    "expired key handed out: {body}"
                );
            }
            503 => {
                saw_503 = true;
                first_503.get_or_insert_with(Instant::now);
                assert!(json(&body).is_object(), "503 carries a JSON error: {body}");
            }
            other => panic!("unexpected {other}: {body}"),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(saw_503, "after expiry the agent answers 503");
    assert!(
        emu.requests().len() >= 3,
        "the agent kept retrying: {:?}",
        emu.requests()
    );
    let (status, _, _) = http(&agent.addr, "GET", "/healthz", &[]);
    assert_eq!(status, 503);
}

#[test]
fn sighup_rotates_the_certificate_and_keeps_the_old_identity_when_the_new_one_is_broken() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let cert = d.path().join("live-cert.pem");
    let key = d.path().join("live-key.pem");
    let first = m.leaf(KeyType::P256).unwrap();
    std::fs::copy(&first.cert_pem, &cert).unwrap();
    std::fs::copy(&first.key, &key).unwrap();
    let mut args = serve_args(&m, &emu, &["--no-socket"]);
    args[1] = path(&cert);
    args[3] = path(&key);
    let agent = Agent::start(&args, &[]);
    let serial = |n: usize| emu.requests()[n]["serial"].as_str().unwrap().to_string();
    let first_serial = serial(0);

    // Rotate to another certificate and key: the next session uses it, right away.
    let second = m.leaf(KeyType::Rsa2048).unwrap();
    std::fs::copy(&second.cert_pem, &cert).unwrap();
    std::fs::copy(&second.key, &key).unwrap();
    agent.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    while emu.requests().len() < 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(emu.requests().len(), 2);
    assert_ne!(serial(1), first_serial, "the rotated certificate was used");

    // A broken certificate is reported and the current identity kept.
    std::fs::write(&cert, "not a certificate").unwrap();
    agent.signal("HUP");
    std::thread::sleep(Duration::from_millis(1500));
    let token = imds_token(&agent.addr);
    assert_eq!(imds_credentials(&agent.addr, &token).0, 200);
    assert_eq!(emu.requests().len(), 2, "no session with a broken identity");
    agent.signal("TERM");
    let (code, err) = agent.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("keeping the current identity"), "{err}");
}

#[test]
fn sigterm_drains_and_exits_0_with_systemd_notifications() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let notify_path = d.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let agent = Agent::start(
        &serve_args(&m, &emu, &["--no-socket"]),
        &[("NOTIFY_SOCKET", &path(&notify_path))],
    );
    let mut buf = [0u8; 256];
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"READY=1");
    agent.signal("TERM");
    let n = notify.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"STOPPING=1");
    let (code, err) = agent.wait(Duration::from_secs(15));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn serve_refuses_bad_binds_and_exits_1_when_the_first_session_fails() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &["--fail-first", "100", "--fail-status", "403"]);
    let out =
        run(agent()
            .arg("serve")
            .args(serve_args(&m, &emu, &["--bind", "0.0.0.0", "--no-socket"])));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("--allow-non-loopback"),
        "{}",
        stderr(&out)
    );
    assert!(emu.requests().is_empty());

    let out = run(agent()
        .arg("serve")
        .args(serve_args(&m, &emu, &["--port", "0", "--no-socket"])));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CreateSession failed: AccessDeniedException (403)"),
        "{}",
        stderr(&out)
    );
    assert!(
        out.stdout.is_empty(),
        "nothing announced before the first credentials"
    );
}

#[test]
fn update_rewrites_only_the_key_lines_once_or_on_every_refresh() {
    let (d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &["--credential-lifetime", "12"]);
    let file = d.path().join("credentials");
    let original = "# team credentials\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = keep-me\n\n[ci] ; the runner\nregion = eu-west-1\naws_access_key_id = OLD\naws_secret_access_key = OLD\naws_session_token = OLD\noutput = json\n\n[last]\nregion = us-east-1";
    std::fs::write(&file, original).unwrap();
    let base = serve_args(&m, &emu, &[]);
    let out = run(agent()
        .arg("update")
        .args(&base)
        .args(["--profile", "ci", "--once"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &file));
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&file).unwrap();
    let ci_keys: Vec<&str> = text.lines().filter(|l| l.starts_with("aws_")).collect();
    assert_eq!(ci_keys.len(), 5, "{text}");
    assert!(text.starts_with("# team credentials\n[other]\naws_access_key_id = AKIAOTHER\naws_secret_access_key = keep-me\n\n[ci] ; the runner\nregion = eu-west-1\naws_access_key_id = ASIA"), "{text}");
    assert!(
        text.ends_with("output = json\n\n[last]\nregion = us-east-1"),
        "{text}"
    );
    assert!(!text.contains("OLD"));
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // Continuous: a new set is written after each refresh (12 s credentials refresh at ~6 s).
    let key_of = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("aws_access_key_id = ASIA"))
            .unwrap()
            .to_string()
    };
    let before = key_of(&std::fs::read_to_string(&file).unwrap());
    let child = agent()
        .arg("update")
        .args(&base)
        .args(["--profile", "ci"])
        .env("AWS_SHARED_CREDENTIALS_FILE", &file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let updater = Agent {
        child,
        url: String::new(),
        addr: String::new(),
        stdout_lines: vec![],
    };
    let mut seen = std::collections::HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < 3 && Instant::now() < deadline {
        seen.insert(key_of(&std::fs::read_to_string(&file).unwrap()));
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        seen.len() >= 3,
        "the file was rewritten on refresh: {seen:?}"
    );
    assert!(seen.contains(&before));
    updater.signal("TERM");
    let (code, err) = updater.wait(Duration::from_secs(10));
    assert_eq!(code, Some(0), "{err}");
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .ends_with("[last]\nregion = us-east-1")
    );
}
