//! Unit tests of the emulator: configuration errors, the verifier's decisions on requests
//! signed here with the vector keys (so any field can be varied with a valid signature), and
//! the HTTP layer in-process (plain HTTP through `start`, HTTPS through `run`).

use std::path::PathBuf;
use std::time::Duration as StdDuration;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RsaKeyPair};
use base64::Engine as _;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::*;
use crate::signing::{self, Algorithm, UnsignedRequest};

const NOW: OffsetDateTime = datetime!(2026-11-24 12:33:52 UTC);
const TA: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1";
const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1";
const ROLE: &str = "arn:aws:iam::111122223333:role/exam";
const RSA_SERIAL: &str = "891573975930151669966565662908810063541989944604";

fn pki(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/vectors/pki")
        .join(name)
}

fn cert_b64(stem: &str) -> String {
    let der = CertificateDer::from_pem_file(pki(&format!("{stem}.pem"))).unwrap();
    base64::engine::general_purpose::STANDARD.encode(der.as_ref())
}

/// Intermediate CA as the trust anchor, one allowed role, the service maximum duration.
fn config(anchor: &str, roles: &[&str], max_duration: u32) -> VerifyConfig {
    VerifyConfig::from_file(
        &pki(&format!("{anchor}.pem")),
        TA,
        PROFILE,
        roles.iter().map(|r| r.to_string()).collect(),
        max_duration,
    )
    .unwrap()
}

/// A request for `POST /sessions` as the Go helper sends it, signed at `at` with the
/// `rsa-leaf` key. `body` is sent as is; the ARNs go in the query.
struct Req {
    at: OffsetDateTime,
    body: String,
    query: Vec<(String, String)>,
    chain: bool,
    region: &'static str,
    algorithm: Algorithm,
}

impl Req {
    fn new(body: &str) -> Self {
        Req {
            at: NOW,
            body: body.to_string(),
            query: vec![
                ("profileArn".into(), PROFILE.into()),
                ("roleArn".into(), ROLE.into()),
                ("trustAnchorArn".into(), TA.into()),
            ],
            chain: false,
            region: "us-east-1",
            algorithm: Algorithm::RsaSha256,
        }
    }

    fn query(mut self, name: &str, value: &str) -> Self {
        self.query.retain(|(n, _)| n != name);
        self.query.push((name.into(), value.into()));
        self
    }

    fn sign(&self) -> RequestParts {
        let unsigned = UnsignedRequest {
            host: "rolesanywhere.us-east-1.amazonaws.com".into(),
            query: self.query.clone(),
            content_type: "application/json".into(),
            body: self.body.clone().into_bytes(),
            x509: cert_b64("rsa-leaf"),
            x509_chain: self.chain.then(|| cert_b64("intermediate-ca")),
        };
        let prepared = unsigned.prepare(self.algorithm, self.region, self.at);
        let key_der = PrivatePkcs8KeyDer::from_pem_file(pki("rsa-leaf.key")).unwrap();
        let key = RsaKeyPair::from_pkcs8(key_der.secret_pkcs8_der()).unwrap();
        let mut sig = vec![0; key.public_modulus_len()];
        key.sign(
            &RSA_PKCS1_SHA256,
            &SystemRandom::new(),
            prepared.string_to_sign.as_bytes(),
            &mut sig,
        )
        .unwrap();
        let auth = signing::authorization(
            self.algorithm,
            RSA_SERIAL,
            &prepared.scope,
            &prepared.signed_headers,
            &sig,
        );
        let mut headers: Vec<(String, String)> = prepared
            .headers
            .iter()
            .map(|(n, v)| (n.to_string(), v.clone()))
            .collect();
        headers.push(("Authorization".into(), auth));
        RequestParts {
            method: "POST".into(),
            path: "/sessions".into(),
            query: prepared.canonical_query.clone(),
            headers,
            body: self.body.clone().into_bytes(),
        }
    }
}

fn rejected(req: &RequestParts, now: OffsetDateTime, cfg: &VerifyConfig) -> Rejection {
    verify(req, now, cfg).unwrap_err()
}

#[test]
fn a_request_signed_here_is_accepted_with_the_service_defaults() {
    let cfg = config("intermediate-ca", &[ROLE], 43_200);
    let accepted = verify(&Req::new("{}").sign(), NOW, &cfg).unwrap();
    assert_eq!(accepted.duration_seconds, 3600);
    assert_eq!(accepted.role_arn, ROLE);
    assert_eq!(
        accepted.role_session_name,
        "9c2b8f4e1d7a6053c4b2e19f8d7c6b5a4f3e2d1c"
    );
    assert_eq!(accepted.serial_decimal, RSA_SERIAL);
    assert_eq!(accepted.source_identity, "CN=rsa2048-leaf");
    assert_eq!(accepted.key, crate::signer::KeyKind::Rsa { bits: 2048 });
    // Through the intermediate to the root, and with an empty body.
    let mut req = Req::new("");
    req.chain = true;
    verify(&req.sign(), NOW, &config("root-ca", &[ROLE], 43_200)).unwrap();
}

#[test]
fn session_name_and_duration_come_from_the_body() {
    let cfg = config("intermediate-ca", &[], 43_200);
    let req = Req::new(r#"{"durationSeconds":900,"roleSessionName":"build@ci-1"}"#).sign();
    let accepted = verify(&req, NOW, &cfg).unwrap();
    assert_eq!(
        (
            accepted.duration_seconds,
            accepted.role_session_name.as_str()
        ),
        (900, "build@ci-1")
    );
    for body in [
        r#"{"roleSessionName":"a"}"#,
        r#"{"roleSessionName":"has space"}"#,
        r#"{"durationSeconds":899}"#,
        r#"{"durationSeconds":43201}"#,
        r#"{"durationSeconds":"3600"}"#,
        r#"{"durationSeconds":3600.5}"#,
        r#"{"durationSeconds":"#,
    ] {
        let r = rejected(&Req::new(body).sign(), NOW, &cfg);
        assert_eq!(r.error, ErrorType::Validation, "{body}: {r:?}");
        assert_eq!(r.status, 400);
    }
}

#[test]
fn the_profile_duration_cap_applies_to_requests_and_the_default() {
    let cfg = config("intermediate-ca", &[], 1800);
    let r = rejected(&Req::new(r#"{"durationSeconds":1801}"#).sign(), NOW, &cfg);
    assert_eq!(r.error, ErrorType::Validation);
    assert!(r.message.contains("1800"), "{}", r.message);
    assert_eq!(r.seen.duration_seconds, Some(1801));
    assert_eq!(r.seen.serial.as_deref(), Some(RSA_SERIAL));
    assert_eq!(r.seen.role_arn.as_deref(), Some(ROLE));
    assert_eq!(
        verify(&Req::new("{}").sign(), NOW, &cfg)
            .unwrap()
            .duration_seconds,
        1800
    );
}

#[test]
fn roles_profiles_and_trust_anchors_are_checked() {
    let listed = config("intermediate-ca", &[ROLE], 43_200);
    let other_role = Req::new("{}")
        .query("roleArn", "arn:aws:iam::111122223333:role/other")
        .sign();
    assert_eq!(
        rejected(&other_role, NOW, &listed).error,
        ErrorType::AccessDenied
    );
    // Without a role list, any role of the account is allowed, no role of another account.
    let open = config("intermediate-ca", &[], 43_200);
    verify(&other_role, NOW, &open).unwrap();
    let foreign = Req::new("{}")
        .query("roleArn", "arn:aws:iam::444455556666:role/exam")
        .sign();
    assert_eq!(
        rejected(&foreign, NOW, &open).error,
        ErrorType::AccessDenied
    );

    let profile = Req::new("{}")
        .query(
            "profileArn",
            "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p2",
        )
        .sign();
    let r = rejected(&profile, NOW, &open);
    assert_eq!((r.error, r.status), (ErrorType::ResourceNotFound, 404));
    let anchor = Req::new("{}")
        .query(
            "trustAnchorArn",
            "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta2",
        )
        .sign();
    assert_eq!(
        rejected(&anchor, NOW, &open).error,
        ErrorType::ResourceNotFound
    );
    let malformed = Req::new("{}").query("roleArn", "exam").sign();
    assert_eq!(
        rejected(&malformed, NOW, &open).error,
        ErrorType::Validation
    );
    let missing = Req::new("{}");
    let mut missing_req = missing.sign();
    missing_req.query = missing_req.query.replace("&trustAnchorArn=", "&other=");
    let r = rejected(&missing_req, NOW, &open);
    assert_eq!(r.error, ErrorType::Validation);
    assert!(r.message.contains("trustAnchorArn"), "{}", r.message);
}

#[test]
fn certificate_dates_are_checked_at_the_server_time() {
    let cfg = config("intermediate-ca", &[], 43_200);
    let mut req = Req::new("{}");
    req.at = datetime!(2036-01-02 00:00:00 UTC);
    let r = rejected(&req.sign(), req.at, &cfg);
    assert_eq!(r.error, ErrorType::AccessDenied);
    assert!(
        r.message.starts_with("Untrusted signing certificate") && r.message.contains("expired"),
        "{}",
        r.message
    );
}

#[test]
fn scope_algorithm_and_signed_headers_are_enforced() {
    let cfg = config("intermediate-ca", &[], 43_200);
    let mut req = Req::new("{}");
    req.region = "eu-west-1";
    let r = rejected(&req.sign(), NOW, &cfg);
    assert_eq!(r.error, ErrorType::AccessDenied);
    assert!(
        r.message.contains("scoped to a valid region"),
        "{}",
        r.message
    );

    // An RSA signature labelled ECDSA.
    let mut req = Req::new("{}");
    req.algorithm = Algorithm::EcdsaSha256;
    let r = rejected(&req.sign(), NOW, &cfg);
    assert_eq!(r.error, ErrorType::AccessDenied);
    assert!(r.message.contains("RSA-2048"), "{}", r.message);

    // content-type dropped from SignedHeaders (the signature no longer matters).
    let mut parts = Req::new("{}").sign();
    for (name, value) in &mut parts.headers {
        if name == "Authorization" {
            *value = value.replace("SignedHeaders=content-type;", "SignedHeaders=");
        }
    }
    let r = rejected(&parts, NOW, &cfg);
    assert_eq!(r.error, ErrorType::Validation);
    assert!(r.message.contains("content-type"), "{}", r.message);

    // A signed header missing from the request, and a header sent twice.
    let mut parts = Req::new("{}").sign();
    parts.headers.retain(|(n, _)| n != "Content-Type");
    assert_eq!(rejected(&parts, NOW, &cfg).error, ErrorType::Validation);
    let mut parts = Req::new("{}").sign();
    parts
        .headers
        .push(("x-amz-date".into(), "20261124T123352Z".into()));
    assert_eq!(rejected(&parts, NOW, &cfg).error, ErrorType::Validation);
    // No Authorization at all.
    let mut parts = Req::new("{}").sign();
    parts.headers.retain(|(n, _)| n != "Authorization");
    assert_eq!(
        rejected(&parts, NOW, &cfg).message,
        "Missing Authentication Token"
    );
}

#[test]
fn configuration_errors_name_the_flag_and_carry_hints() {
    let path = pki("rsa-leaf.pem");
    let pem = std::fs::read(&path).unwrap();
    let err = VerifyConfig::new(&pem, &path, TA, PROFILE, vec![], 43_200).unwrap_err();
    assert!(matches!(err, EmulateError::NotCa { .. }), "{err}");
    assert!(err.to_string().contains("rsa-leaf.pem") && err.hint().is_some());

    let anchor = std::fs::read(pki("root-ca.pem")).unwrap();
    let p = pki("root-ca.pem");
    let cases: Vec<(Result<VerifyConfig, EmulateError>, &str)> = vec![
        (
            VerifyConfig::new(
                &anchor,
                &p,
                "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1",
                PROFILE,
                vec![],
                3600,
            ),
            "--trust-anchor-arn",
        ),
        (
            VerifyConfig::new(
                &anchor,
                &p,
                TA,
                "arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p1",
                vec![],
                3600,
            ),
            "--profile-arn",
        ),
        (
            VerifyConfig::new(
                &anchor,
                &p,
                TA,
                PROFILE,
                vec!["arn:aws:iam::999988887777:role/x".into()],
                3600,
            ),
            "--role-arn",
        ),
        (
            VerifyConfig::new(&anchor, &p, TA, PROFILE, vec!["role/x".into()], 3600),
            "--role-arn",
        ),
        (
            VerifyConfig::new(&anchor, &p, TA, PROFILE, vec![], 50_000),
            "--max-duration",
        ),
        (
            VerifyConfig::new(b"not a certificate", &p, TA, PROFILE, vec![], 3600),
            "--trust-anchor-certificate",
        ),
        (
            VerifyConfig::from_file(&pki("missing.pem"), TA, PROFILE, vec![], 3600),
            "missing.pem",
        ),
    ];
    for (result, needle) in cases {
        let err = result.unwrap_err();
        assert!(err.to_string().contains(needle), "{err} lacks {needle}");
        assert!(err.hint().is_some(), "{err} has no hint");
        assert_eq!(err.exit_code(), 2);
        assert!(
            err.to_string().starts_with(|c: char| !c.is_uppercase()),
            "{err}"
        );
    }
}

#[test]
fn bind_accepts_loopback_only() {
    assert_eq!(
        parse_bind("127.0.0.1").unwrap(),
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert_eq!(
        parse_bind("localhost").unwrap(),
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    );
    assert!(parse_bind("[::1]").unwrap().is_loopback());
    assert!(parse_bind("127.0.0.2").unwrap().is_loopback());
    assert!(matches!(
        parse_bind("0.0.0.0"),
        Err(EmulateError::NotLoopback { .. })
    ));
    assert!(matches!(
        parse_bind("192.168.1.10"),
        Err(EmulateError::NotLoopback { .. })
    ));
    assert!(matches!(
        parse_bind("example.com"),
        Err(EmulateError::BadBind { .. })
    ));
}

/// Sends raw HTTP/1.1 bytes and reads until the server closes (the request says
/// `Connection: close`). Returns status, lower-cased headers and body.
async fn exchange<S>(mut stream: S, request: &[u8]) -> (u16, Vec<(String, String)>, String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    stream.write_all(request).await.unwrap();
    let mut raw = Vec::new();
    // The server may close a TLS stream without close_notify after a `Connection: close`
    // response; what was read until then is the whole response.
    let _ = stream.read_to_end(&mut raw).await;
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (status, headers, body.to_string())
}

fn http_bytes(parts: &RequestParts) -> Vec<u8> {
    let target = if parts.query.is_empty() {
        parts.path.clone()
    } else {
        format!("{}?{}", parts.path, parts.query)
    };
    let mut out = format!("{} {target} HTTP/1.1\r\n", parts.method);
    for (n, v) in &parts.headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str(&format!(
        "Content-Length: {}\r\nConnection: close\r\n\r\n",
        parts.body.len()
    ));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(&parts.body);
    bytes
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

#[tokio::test]
async fn http_fail_first_routing_limits_and_request_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let log_path = dir.join("requests.jsonl");
    let mut cfg = EmulateConfig::new(config("intermediate-ca", &[ROLE], 43_200));
    cfg.fail_first = 2;
    cfg.fail_status = 429;
    cfg.request_log = Some(log_path.clone());
    cfg.clock = Clock::Fixed(NOW);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = start(cfg, listener, async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    assert!(handle.url().starts_with("http://127.0.0.1:"));
    let addr = handle.local_addr();
    let good = http_bytes(&Req::new(r#"{"durationSeconds":3600}"#).sign());

    let run = async {
        for _ in 0..2 {
            let (status, headers, body) =
                exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), &good).await;
            assert_eq!(status, 429);
            assert_eq!(
                header(&headers, "x-amzn-errortype"),
                Some("ThrottlingException")
            );
            assert!(body.contains("Rate exceeded"));
        }
        let (status, headers, body) =
            exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), &good).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(header(&headers, "content-type"), Some("application/json"));
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["credentialSet"][0]["roleArn"], ROLE);

        let get = b"GET /sessions HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        let (status, headers, _) =
            exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), get).await;
        assert_eq!((status, header(&headers, "allow")), (405, Some("POST")));
        let other =
            b"POST /other HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let (status, headers, body) =
            exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), other).await;
        assert_eq!(status, 404);
        assert!(header(&headers, "x-amzn-errortype").is_some() && body.contains("message"));

        let mut big = Req::new("{}").sign();
        big.body = vec![b' '; server::MAX_BODY + 10];
        let (status, headers, _) = exchange(
            tokio::net::TcpStream::connect(addr).await.unwrap(),
            &http_bytes(&big),
        )
        .await;
        assert_eq!(
            (status, header(&headers, "x-amzn-errortype")),
            (400, Some("ValidationException"))
        );
    };
    tokio::time::timeout(StdDuration::from_secs(20), run)
        .await
        .unwrap();
    assert_eq!(handle.requests(), 6);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(StdDuration::from_secs(10), handle.wait())
        .await
        .unwrap();

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let statuses: Vec<u64> = lines
        .iter()
        .map(|l| l["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![429, 429, 201, 405, 404, 400]);
    assert_eq!(lines[0]["n"], 1);
    assert_eq!(lines[0]["error_type"], "ThrottlingException");
    assert_eq!(lines[2]["error_type"], serde_json::Value::Null);
    assert_eq!(lines[2]["role_arn"], ROLE);
    assert_eq!(lines[2]["serial"], RSA_SERIAL);
    assert_eq!(lines[2]["duration_seconds"], 3600);
    // The log never holds credentials.
    assert!(!log.contains("ASIA") && !log.contains("sessionToken"));
}

#[tokio::test]
async fn run_serves_https_with_a_generated_certificate_and_announces_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let (ready, ca_out) = (dir.join("ready"), dir.join("ca.pem"));
    // The subcommand around this module (a test may reach above its layer).
    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: crate::cli::EmulateArgs,
    }
    let args = <Cli as clap::Parser>::try_parse_from([
        "x",
        "--trust-anchor-certificate",
        pki("intermediate-ca.pem").to_str().unwrap(),
        "--trust-anchor-arn",
        TA,
        "--profile-arn",
        PROFILE,
        "--generate-tls",
        "--tls-ca-out",
        ca_out.to_str().unwrap(),
        "--ready-file",
        ready.to_str().unwrap(),
    ])
    .unwrap()
    .args;
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::commands::emulate::run(args, async move {
        let _ = stop_rx.await;
    }));

    let client = async {
        let addr: std::net::SocketAddr = loop {
            if let Ok(text) = std::fs::read_to_string(&ready) {
                break text.parse().unwrap();
            }
            tokio::time::sleep(StdDuration::from_millis(20)).await;
        };
        assert!(addr.ip().is_loopback());
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(&ca_out).unwrap())
            .unwrap();
        let provider = std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(client));
        // Signed now, since `run` uses the system clock.
        let mut req = Req::new(r#"{"durationSeconds":1000}"#);
        req.at = OffsetDateTime::now_utc();
        for name in ["localhost", "127.0.0.1"] {
            let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
            let server_name = rustls_pki_types::ServerName::try_from(name.to_string()).unwrap();
            let tls = connector.connect(server_name, tcp).await.unwrap();
            let (status, _, body) = exchange(tls, &http_bytes(&req.sign())).await;
            assert_eq!(status, 201, "{body}");
            let json: serde_json::Value = serde_json::from_str(&body).unwrap();
            let expiration = json["credentialSet"][0]["credentials"]["expiration"]
                .as_str()
                .unwrap();
            let parsed =
                OffsetDateTime::parse(expiration, &time::format_description::well_known::Rfc3339)
                    .unwrap();
            let left = parsed - OffsetDateTime::now_utc();
            assert!(
                left > Duration::seconds(900) && left <= Duration::seconds(1001),
                "{left}"
            );
        }
    };
    tokio::time::timeout(StdDuration::from_secs(20), client)
        .await
        .unwrap();
    stop_tx.send(()).unwrap();
    tokio::time::timeout(StdDuration::from_secs(10), server)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

/// An injected failure names the flag that injected it: `--fail-after`'s outage must not
/// send its reader looking for a `--fail-first` that was never given.
#[tokio::test]
async fn injected_failures_name_the_flag_that_injected_them() {
    for (first, after, flag) in [(1, None, "--fail-first"), (0, Some(0), "--fail-after")] {
        let mut cfg = EmulateConfig::new(config("intermediate-ca", &[ROLE], 43_200));
        cfg.fail_first = first;
        cfg.fail_after = after;
        cfg.fail_status = 503;
        cfg.clock = Clock::Fixed(NOW);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let handle = start(cfg, listener, async move {
            let _ = stop_rx.await;
        })
        .await
        .unwrap();
        let addr = handle.local_addr();
        let good = http_bytes(&Req::new(r#"{"durationSeconds":3600}"#).sign());
        let (status, _, body) = tokio::time::timeout(
            StdDuration::from_secs(20),
            exchange(tokio::net::TcpStream::connect(addr).await.unwrap(), &good),
        )
        .await
        .unwrap();
        assert_eq!(status, 503);
        assert!(body.contains(flag), "{flag}: {body}");
        stop_tx.send(()).unwrap();
        tokio::time::timeout(StdDuration::from_secs(10), handle.wait())
            .await
            .unwrap();
    }
}
