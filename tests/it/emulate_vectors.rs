//! Replays the recorded CreateSession requests of `tests/data/vectors` through the emulator's
//! verifier with the clock pinned to the vectors' instant: every recorded request must be
//! accepted, and tampered copies must be refused with the service's error type. One request
//! also goes through the HTTP server in-process on 127.0.0.1, to pin the HTTP layer too.

use std::path::{Path, PathBuf};
use std::time::Duration as StdDuration;

use rolesanywhere_agent::emulate::{
    self, Clock, EmulateConfig, ErrorType, RequestParts, VerifyConfig,
};
use serde_json::Value;
use time::macros::datetime;
use time::{Duration, OffsetDateTime};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

const NOW: OffsetDateTime = datetime!(2026-11-24 12:33:52 UTC);

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/vectors")
}

/// The JSON files of a vectors folder, sorted, loaded.
fn load_dir(sub: &str) -> Vec<(String, Value)> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(vectors().join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
        .into_iter()
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (
                name,
                serde_json::from_slice(&std::fs::read(&p).unwrap()).unwrap(),
            )
        })
        .collect()
}

fn cases() -> Vec<(String, Value)> {
    let cases = load_dir("cases");
    assert_eq!(cases.len(), 8, "expected the 8 recorded cases");
    cases
}

fn str_of<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key}"))
}

/// The request exactly as recorded; edge cases carry the query as the source sent it.
fn request_of(case: &Value) -> RequestParts {
    let r = &case["request"];
    let query = r
        .get("query")
        .or_else(|| r.get("query_sent_by_source"))
        .and_then(Value::as_str)
        .unwrap();
    RequestParts {
        method: str_of(r, "method").to_string(),
        path: str_of(r, "path").to_string(),
        query: query.to_string(),
        headers: r["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                (
                    h[0].as_str().unwrap().to_string(),
                    h[1].as_str().unwrap().to_string(),
                )
            })
            .collect(),
        body: str_of(r, "body").as_bytes().to_vec(),
    }
}

fn config_with(case: &Value, anchor: &Path, roles: Vec<String>) -> VerifyConfig {
    let inputs = &case["inputs"];
    VerifyConfig::from_file(
        anchor,
        str_of(inputs, "trust_anchor_arn"),
        str_of(inputs, "profile_arn"),
        roles,
        43_200,
    )
    .unwrap()
}

/// The configuration the case is meant to be accepted with.
fn config_for(case: &Value) -> VerifyConfig {
    let inputs = &case["inputs"];
    let anchor = vectors().join(str_of(inputs, "trust_anchor_certificate"));
    config_with(case, &anchor, vec![str_of(inputs, "role_arn").to_string()])
}

fn set_header(req: &mut RequestParts, name: &str, f: impl Fn(&str) -> String) {
    let mut found = false;
    for (n, v) in &mut req.headers {
        if n.eq_ignore_ascii_case(name) {
            *v = f(v);
            found = true;
        }
    }
    assert!(found, "no {name} header");
}

fn expect_rejected(
    name: &str,
    what: &str,
    req: &RequestParts,
    now: OffsetDateTime,
    cfg: &VerifyConfig,
    error: ErrorType,
    message: &str,
) {
    match emulate::verify(req, now, cfg) {
        Ok(_) => panic!("{name}: {what} was accepted"),
        Err(r) => {
            assert_eq!(r.error, error, "{name}: {what}: {r:?}");
            assert_eq!(r.status, error.status(), "{name}: {what}");
            assert!(
                r.message.contains(message),
                "{name}: {what}: message {:?} lacks {message:?}",
                r.message
            );
        }
    }
}

#[test]
fn every_recorded_case_is_accepted() {
    for (name, case) in cases() {
        let accepted = emulate::verify(&request_of(&case), NOW, &config_for(&case))
            .unwrap_or_else(|r| panic!("{name} rejected: {r:?}"));
        let inputs = &case["inputs"];
        assert_eq!(accepted.role_arn, str_of(inputs, "role_arn"), "{name}");
        assert_eq!(accepted.duration_seconds, 3600, "{name}");
        assert_eq!(
            accepted.serial_decimal,
            str_of(&case["expected"], "serial_decimal"),
            "{name}"
        );
        assert_eq!(accepted.region, "us-east-1");
        assert!(
            accepted.source_identity.starts_with("CN=")
                && accepted.source_identity.ends_with("-leaf"),
            "{name}"
        );
        // The session body built from it has the service's shape.
        let body = emulate::session_body(&accepted, NOW, None);
        assert_eq!(
            body["credentialSet"][0]["credentials"]["expiration"],
            "2026-11-24T13:33:52Z"
        );
        assert_eq!(
            body["credentialSet"][0]["roleArn"],
            str_of(inputs, "role_arn")
        );
    }
}

#[test]
fn every_canonicalisation_edge_case_is_accepted() {
    // The edge cases add query parameters and headers a real request lacks, and send spaces
    // in the query as `+`: the verifier must decode and re-encode them to the signed form.
    let edges = load_dir("edge");
    assert!(edges.len() >= 7);
    for (name, case) in edges {
        emulate::verify(&request_of(&case), NOW, &config_for(&case))
            .unwrap_or_else(|r| panic!("{name} rejected: {r:?}"));
    }
}

#[test]
fn recorded_cases_are_accepted_when_the_profile_lists_no_roles() {
    for (name, case) in cases() {
        let anchor = vectors().join(str_of(&case["inputs"], "trust_anchor_certificate"));
        emulate::verify(
            &request_of(&case),
            NOW,
            &config_with(&case, &anchor, vec![]),
        )
        .unwrap_or_else(|r| panic!("{name} rejected: {r:?}"));
    }
}

#[test]
fn the_skew_window_is_five_minutes() {
    for (name, case) in cases() {
        let (req, cfg) = (request_of(&case), config_for(&case));
        for minutes in [-5, 5] {
            emulate::verify(&req, NOW + Duration::minutes(minutes), &cfg)
                .unwrap_or_else(|r| panic!("{name} at {minutes} min: {r:?}"));
        }
        let denied = ErrorType::AccessDenied;
        expect_rejected(
            &name,
            "server clock 6 min ahead",
            &req,
            NOW + Duration::minutes(6),
            &cfg,
            denied,
            "Signature expired",
        );
        expect_rejected(
            &name,
            "server clock 6 min behind",
            &req,
            NOW - Duration::minutes(6),
            &cfg,
            denied,
            "Signature not yet current",
        );
        let mut early = req.clone();
        set_header(&mut early, "X-Amz-Date", |_| "20261124T122752Z".to_string());
        expect_rejected(
            &name,
            "date 6 min early",
            &early,
            NOW,
            &cfg,
            denied,
            "Signature expired",
        );
        let mut late = req.clone();
        set_header(&mut late, "X-Amz-Date", |_| "20261124T123952Z".to_string());
        expect_rejected(
            &name,
            "date 6 min late",
            &late,
            NOW,
            &cfg,
            denied,
            "Signature not yet current",
        );
    }
}

#[test]
fn tampered_copies_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let unrelated_ca = {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Unrelated CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let path = tmp.path().join("unrelated-ca.pem");
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        path
    };
    let denied = ErrorType::AccessDenied;
    for (name, case) in cases() {
        let (req, cfg) = (request_of(&case), config_for(&case));
        let bad_sig = "Unable to verify signature";

        let mut t = req.clone();
        set_header(&mut t, "Authorization", |v| {
            // Flip one bit in the last signature byte (lower-case hex).
            let (head, last) = v.split_at(v.len() - 2);
            let byte = u8::from_str_radix(last, 16).unwrap() ^ 0x01;
            format!("{head}{byte:02x}")
        });
        expect_rejected(
            &name,
            "signature byte flipped",
            &t,
            NOW,
            &cfg,
            denied,
            bad_sig,
        );

        let mut t = req.clone();
        let body = String::from_utf8(t.body.clone()).unwrap();
        assert!(body.contains("3600"), "{name}");
        t.body = body.replacen("3600", "3601", 1).into_bytes();
        expect_rejected(&name, "body changed", &t, NOW, &cfg, denied, bad_sig);

        let mut t = req.clone();
        set_header(&mut t, "Host", |_| {
            "rolesanywhere.us-east-2.amazonaws.com".to_string()
        });
        expect_rejected(&name, "Host changed", &t, NOW, &cfg, denied, bad_sig);

        let mut t = req.clone();
        set_header(&mut t, "Content-Type", |_| "text/plain".to_string());
        expect_rejected(
            &name,
            "Content-Type changed",
            &t,
            NOW,
            &cfg,
            denied,
            bad_sig,
        );

        if !t.query.is_empty() {
            let mut t = req.clone();
            t.query = t.query.replace("role%2Fexam", "role%2Fexan");
            expect_rejected(&name, "query changed", &t, NOW, &cfg, denied, bad_sig);
        }

        let mut t = req.clone();
        let serial = str_of(&case["expected"], "serial_decimal");
        // Same length, last digit changed: still a plausible serial, just not this one.
        let (stem, last) = serial.split_at(serial.len() - 1);
        let other = format!("{stem}{}", if last == "1" { "2" } else { "1" });
        set_header(&mut t, "Authorization", |v| {
            v.replace(
                &format!("Credential={serial}/"),
                &format!("Credential={other}/"),
            )
        });
        expect_rejected(
            &name,
            "serial changed in Credential",
            &t,
            NOW,
            &cfg,
            denied,
            "Invalid certificate serial number in Credential",
        );

        // Trust anchors that did not issue the chain.
        let wrong = config_with(&case, &unrelated_ca, vec![]);
        expect_rejected(
            &name,
            "unrelated trust anchor",
            &req,
            NOW,
            &wrong,
            denied,
            "Untrusted signing certificate",
        );
        if case["inputs"]["chain"].as_array().unwrap().is_empty() {
            let root = config_with(&case, &vectors().join("pki/root-ca.pem"), vec![]);
            expect_rejected(
                &name,
                "root anchor without the intermediate",
                &req,
                NOW,
                &root,
                denied,
                "Untrusted signing certificate",
            );
        } else {
            let mut t = req.clone();
            t.headers
                .retain(|(n, _)| !n.eq_ignore_ascii_case("X-Amz-X509-Chain"));
            // Without the chain header the signed header list names a header that is gone.
            expect_rejected(
                &name,
                "chain header removed",
                &t,
                NOW,
                &cfg,
                ErrorType::Validation,
                "x-amz-x509-chain",
            );
        }

        // Unknown resources.
        let other_ta = VerifyConfig::from_file(
            &vectors().join(str_of(&case["inputs"], "trust_anchor_certificate")),
            "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/other",
            "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1",
            vec![],
            43_200,
        )
        .unwrap();
        expect_rejected(
            &name,
            "unknown trust anchor ARN",
            &req,
            NOW,
            &other_ta,
            ErrorType::ResourceNotFound,
            "trust-anchor/ta1",
        );
        let other_profile = VerifyConfig::from_file(
            &vectors().join(str_of(&case["inputs"], "trust_anchor_certificate")),
            "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1",
            "arn:aws:rolesanywhere:us-east-1:111122223333:profile/other",
            vec![],
            43_200,
        )
        .unwrap();
        expect_rejected(
            &name,
            "unknown profile ARN",
            &req,
            NOW,
            &other_profile,
            ErrorType::ResourceNotFound,
            "profile/p1",
        );
        let other_role = config_with(
            &case,
            &vectors().join(str_of(&case["inputs"], "trust_anchor_certificate")),
            vec!["arn:aws:iam::111122223333:role/other".to_string()],
        );
        expect_rejected(
            &name,
            "role not in the profile",
            &req,
            NOW,
            &other_role,
            denied,
            "role/exam",
        );
        let short = VerifyConfig::from_file(
            &vectors().join(str_of(&case["inputs"], "trust_anchor_certificate")),
            "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1",
            "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1",
            vec![],
            1800,
        )
        .unwrap();
        expect_rejected(
            &name,
            "duration above the profile cap",
            &req,
            NOW,
            &short,
            ErrorType::Validation,
            "1800",
        );

        // Malformed requests.
        let mut t = req.clone();
        t.headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case("X-Amz-X509"));
        expect_rejected(
            &name,
            "no X-Amz-X509",
            &t,
            NOW,
            &cfg,
            ErrorType::Validation,
            "X-Amz-X509",
        );
        let mut t = req.clone();
        set_header(&mut t, "X-Amz-X509", |v| format!("{v}!"));
        expect_rejected(
            &name,
            "X-Amz-X509 not base64",
            &t,
            NOW,
            &cfg,
            ErrorType::Validation,
            "base64",
        );
        let mut t = req.clone();
        t.body = b"{\"durationSeconds\":".to_vec();
        expect_rejected(
            &name,
            "body not JSON",
            &t,
            NOW,
            &cfg,
            ErrorType::Validation,
            "JSON",
        );
        let mut t = req.clone();
        set_header(&mut t, "X-Amz-Date", |_| "2026-11-24T12:33:52Z".to_string());
        expect_rejected(
            &name,
            "X-Amz-Date not basic ISO 8601",
            &t,
            NOW,
            &cfg,
            ErrorType::Validation,
            "YYYYMMDDTHHMMSSZ",
        );
    }
}

#[test]
fn an_rsa_signature_presented_as_ecdsa_is_refused() {
    for (name, case) in cases().into_iter().filter(|(n, _)| n.ends_with("-rsa")) {
        let mut t = request_of(&case);
        set_header(&mut t, "Authorization", |v| {
            v.replace("AWS4-X509-RSA-SHA256", "AWS4-X509-ECDSA-SHA256")
        });
        expect_rejected(
            &name,
            "algorithm relabelled",
            &t,
            NOW,
            &config_for(&case),
            ErrorType::AccessDenied,
            "Unable to verify signature",
        );
    }
}

/// Raw HTTP/1.1 bytes of a recorded request, `Connection: close` added (unsigned).
fn http_bytes(req: &RequestParts) -> Vec<u8> {
    let target = if req.query.is_empty() {
        req.path.clone()
    } else {
        format!("{}?{}", req.path, req.query)
    };
    let mut head = format!("{} {target} HTTP/1.1\r\n", req.method);
    for (n, v) in &req.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let mut bytes = head.into_bytes();
    bytes.extend_from_slice(&req.body);
    bytes
}

async fn send(addr: std::net::SocketAddr, bytes: &[u8]) -> (u16, String, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8(raw).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, head.to_ascii_lowercase(), body.to_string())
}

#[tokio::test]
async fn a_recorded_request_is_accepted_over_http_on_loopback() {
    let case = cases()
        .into_iter()
        .find(|(n, _)| n == "query-rsa-chain")
        .unwrap()
        .1;
    let req = request_of(&case);
    // The recorded request carries its Content-Length header already.
    assert!(
        req.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-length"))
    );
    let mut config = EmulateConfig::new(config_for(&case));
    config.clock = Clock::Fixed(NOW);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let handle = emulate::start(config, listener, async move {
        let _ = stop_rx.await;
    })
    .await
    .unwrap();
    let addr = handle.local_addr();
    assert!(addr.ip().is_loopback());

    let exchange = async {
        let (status, head, body) = send(addr, &http_bytes(&req)).await;
        assert_eq!(status, 201, "{body}");
        assert!(head.contains("content-type: application/json"), "{head}");
        let json: Value = serde_json::from_str(&body).unwrap();
        let set = &json["credentialSet"][0];
        assert_eq!(set["roleArn"], "arn:aws:iam::111122223333:role/exam");
        assert_eq!(set["sourceIdentity"], "CN=rsa2048-leaf");
        assert_eq!(set["credentials"]["expiration"], "2026-11-24T13:33:52Z");
        assert!(
            set["credentials"]["accessKeyId"]
                .as_str()
                .unwrap()
                .starts_with("ASIA")
        );
        assert!(
            set["assumedRoleUser"]["arn"]
                .as_str()
                .unwrap()
                .ends_with(":assumed-role/exam/9c2b8f4e1d7a6053c4b2e19f8d7c6b5a4f3e2d1c")
        );
        assert!(
            json["subjectArn"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:rolesanywhere:us-east-1:111122223333:subject/")
        );

        // The same request with a flipped body byte: the service's 403 shape.
        let mut tampered = req.clone();
        tampered.body = String::from_utf8(req.body.clone())
            .unwrap()
            .replace("3600", "3601")
            .into_bytes();
        let (status, head, body) = send(addr, &http_bytes(&tampered)).await;
        assert_eq!(status, 403);
        assert!(
            head.contains("x-amzn-errortype: accessdeniedexception"),
            "{head}"
        );
        let json: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(json["message"], "Unable to verify signature");
    };
    tokio::time::timeout(StdDuration::from_secs(20), exchange)
        .await
        .unwrap();
    assert_eq!(handle.requests(), 2);
    stop_tx.send(()).unwrap();
    tokio::time::timeout(StdDuration::from_secs(10), handle.wait())
        .await
        .unwrap();
}
