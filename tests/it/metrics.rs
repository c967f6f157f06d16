//! `GET /metrics` on the agent's port and on `--metrics-bind`: every metric the issue names is
//! there and moves with what the agent does; the metrics listener serves nothing else and
//! keeps the `Host` rule; no secret appears in the text.

use std::time::{Duration, Instant};

use crate::support::*;
use rolesanywhere_agent::pki;

/// The value of the sample whose name and labels are exactly `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (k, v) = l.rsplit_once(' ')?;
        (k == series).then(|| v.parse().ok()).flatten()
    })
}

fn scrape(addr: &str) -> String {
    let (status, headers, body) = http(addr, "GET", "/metrics", &[]);
    assert_eq!(status, 200, "{body}");
    let ct = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    body
}

const OK: &str = "rolesanywhere_create_session_total{result=\"ok\",error=\"\"}";

#[test]
fn every_metric_is_present_and_moves_with_a_refresh() {
    let (_d, m) = matrix();
    // 12-second credentials: a refresh is due after about 6 s.
    let emu = Emulator::start(&m.anchors, &["--credential-lifetime", "12"]);
    // The identity files are copies, so the test can renew them under the agent.
    let dir = scratch_dir("metrics-identity");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let p256 = m.leaf(pki::KeyType::P256).unwrap();
    std::fs::copy(&p256.cert_pem, &cert).unwrap();
    std::fs::copy(&p256.key, &key).unwrap();
    let mut args = serve_args(&m, &emu, &["--no-socket"]);
    for a in args.iter_mut() {
        if *a == path(&p256.cert_pem) {
            *a = path(&cert);
        } else if *a == path(&p256.key) {
            *a = path(&key);
        }
    }
    let agent = Agent::start(&args, &[]);

    let token = imds_token(&agent.addr);
    let (status, creds) = imds_credentials(&agent.addr, &token);
    assert_eq!(status, 200);
    let first = scrape(&agent.addr);
    for name in [
        "rolesanywhere_credentials_expiry_timestamp_seconds",
        "rolesanywhere_certificate_not_after_timestamp_seconds",
        "rolesanywhere_create_session_duration_seconds_count",
        "rolesanywhere_identity_reloads_total",
        "rolesanywhere_build_info{version=\"0.1.0\"}",
        "rolesanywhere_http_requests_total{route=\"imds-credentials\",status=\"200\"}",
        "rolesanywhere_http_requests_total{route=\"imds-token\",status=\"200\"}",
    ] {
        assert!(sample(&first, name).is_some(), "{name} missing:\n{first}");
    }
    assert_eq!(sample(&first, OK), Some(1.0), "{first}");
    let expiry = sample(&first, "rolesanywhere_credentials_expiry_timestamp_seconds").unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as f64;
    assert!(expiry > now && expiry <= now + 13.0, "{expiry} vs {now}");
    let not_after = sample(
        &first,
        "rolesanywhere_certificate_not_after_timestamp_seconds",
    )
    .unwrap();
    assert!(not_after > now + 86_400.0, "{not_after}");

    // Nothing secret: the credentials' secret key and token never appear.
    let v: serde_json::Value = serde_json::from_str(&creds).unwrap();
    for secret in ["SecretAccessKey", "Token"] {
        let s = v[secret].as_str().unwrap();
        assert!(!first.contains(s), "{secret} in /metrics");
    }
    assert!(!first.contains(&token), "the IMDS token in /metrics");

    // After the refresh the counter and the expiry have moved.
    let deadline = Instant::now() + Duration::from_secs(20);
    let later = loop {
        let text = scrape(&agent.addr);
        if sample(&text, OK).unwrap_or(0.0) >= 2.0 {
            break text;
        }
        assert!(Instant::now() < deadline, "no refresh counted:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    };
    assert!(sample(&later, "rolesanywhere_credentials_expiry_timestamp_seconds").unwrap() > expiry);
    assert!(
        sample(
            &later,
            "rolesanywhere_create_session_duration_seconds_count"
        )
        .unwrap()
            >= 2.0
    );
    assert!(
        sample(
            &later,
            "rolesanywhere_http_requests_total{route=\"metrics\",status=\"200\"}"
        )
        .unwrap()
            >= 1.0
    );
    assert_eq!(emu.requests().len() as f64, sample(&later, OK).unwrap());

    // A renewed certificate (another key too) is loaded without a signal, and counted.
    let rsa = m.leaf(pki::KeyType::Rsa2048).unwrap();
    std::fs::copy(&rsa.key, dir.join("key.new")).unwrap();
    std::fs::copy(&rsa.cert_pem, dir.join("cert.new")).unwrap();
    std::fs::rename(dir.join("key.new"), &key).unwrap();
    std::fs::rename(dir.join("cert.new"), &cert).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while sample(&scrape(&agent.addr), "rolesanywhere_identity_reloads_total") != Some(1.0) {
        assert!(Instant::now() < deadline, "the renewal was not counted");
        std::thread::sleep(Duration::from_millis(100));
    }

    // A foreign Host is refused on /metrics too, and counted.
    let (status, _, _) = http(&agent.addr, "GET", "/metrics", &[("Host", "evil.example")]);
    assert_eq!(status, 403);
    let text = scrape(&agent.addr);
    assert!(
        sample(
            &text,
            "rolesanywhere_http_requests_total{route=\"refused-host\",status=\"403\"}"
        )
        .unwrap()
            >= 1.0,
        "{text}"
    );
}

#[test]
fn failed_sessions_are_counted_by_kind() {
    let (_d, m) = matrix();
    // The first session succeeds; every later one (the refresh, ~6 s in) is refused.
    let emu = Emulator::start(
        &m.anchors,
        &[
            "--credential-lifetime",
            "12",
            "--fail-after",
            "1",
            "--fail-status",
            "403",
        ],
    );
    let agent = Agent::start(&serve_args(&m, &emu, &["--no-socket"]), &[]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let text = scrape(&agent.addr);
        let errors: f64 = text
            .lines()
            .filter(|l| l.starts_with("rolesanywhere_create_session_total{result=\"error\""))
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum();
        if errors >= 1.0 {
            assert_eq!(sample(&text, OK), Some(1.0), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no failure counted:\n{text}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn the_metrics_listener_serves_metrics_alone() {
    let (_d, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    // A free port for the metrics listener (bound and released just before).
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bind = format!("127.0.0.1:{port}");
    let agent = Agent::start(
        &serve_args(
            &m,
            &emu,
            &[
                "--no-socket",
                "--metrics-bind",
                &bind,
                "--allow-host",
                "prometheus.internal",
            ],
        ),
        &[],
    );
    assert!(
        agent
            .stdout_lines
            .iter()
            .any(|l| l == &format!("Metrics at http://{bind}/metrics")),
        "{:?}",
        agent.stdout_lines
    );
    let text = scrape(&bind);
    assert_eq!(sample(&text, OK), Some(1.0), "{text}");

    // Nothing else lives there: no token, no credentials, no health.
    for (method, path) in [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", "/v1/credentials"),
        ("GET", "/healthz"),
    ] {
        let (status, _, body) = http(
            &bind,
            method,
            path,
            &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
        );
        assert_eq!(status, 404, "{method} {path}: {body}");
    }
    // The Host rule holds: a foreign name is refused, an --allow-host name passes.
    let (status, _, _) = http(&bind, "GET", "/metrics", &[("Host", "evil.example")]);
    assert_eq!(status, 403);
    let (status, _, _) = http(
        &bind,
        "GET",
        "/metrics",
        &[("Host", &format!("prometheus.internal:{port}"))],
    );
    assert_eq!(status, 200);
}
