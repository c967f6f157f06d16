//! Route-level tests: every status code decided by `routes`, answered without a socket
//! (the socket side is in `tests/it/server_endpoints.rs`).

use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method};
use secrecy::SecretString;
use time::OffsetDateTime;

use super::body::Payload;
use super::routes::{Endpoints, Handler, UnixEndpoints};
use super::*;
use crate::agent::Unavailable;
use crate::credentials::Credentials;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/team/app-role";
const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzEXAMPLEKEY";
const SESSION: &str = "IQoJb3JpZ2luX2VjEXAMPLESESSIONTOKEN+/=";

// One copy of the fake, shared with the integration tests.
#[path = "../../tests/it/support/fake_source.rs"]
mod fake_source;
use fake_source::FakeSource;

impl FakeSource {
    fn valid() -> Arc<Self> {
        FakeSource::answering(Ok(creds(SECRET)))
    }
}

fn creds(secret: &str) -> Arc<Credentials> {
    Arc::new(Credentials {
        access_key_id: "ASIAEXAMPLEKEYID".into(),
        secret_access_key: SecretString::from(secret.to_string()),
        session_token: SecretString::from(SESSION.to_string()),
        expiration: OffsetDateTime::now_utc() + time::Duration::hours(1),
        role_arn: None,
    })
}

fn config() -> ServerConfig {
    ServerConfig {
        role_name: role_name_from_arn(ROLE_ARN).to_string(),
        role_arn: ROLE_ARN.to_string(),
        account_id: "123456789012".into(),
        region: "eu-west-3".into(),
        hop_limit: DEFAULT_HOP_LIMIT,
        container_token_file: None,
        limits: Limits::default(),
        allowed_hosts: Vec::new(),
        stats: Arc::default(),
    }
}

/// The listener the route tests pretend to be on (for the `Host` rule).
const BOUND: &str = "127.0.0.1:9911";

fn endpoints(source: Arc<FakeSource>, config: ServerConfig) -> Arc<Endpoints> {
    let bound = BOUND.parse().expect("addr");
    Arc::new(Endpoints::new(source, Arc::new(config), Some(bound)))
}

/// One request as the connection would hand it over, with `Host: 127.0.0.1:9911` unless
/// `headers` name a Host themselves.
fn call<H: Handler>(
    h: &Arc<H>,
    method: Method,
    path: &str,
    headers: &[(&str, &str)],
) -> hyper::Response<Payload> {
    let mut map = HeaderMap::new();
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        map.insert(hyper::header::HOST, HeaderValue::from_static(BOUND));
    }
    for (k, v) in headers {
        map.append(
            HeaderName::from_bytes(k.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let mut head = hyper::Request::builder()
        .method(method)
        .uri(path)
        .body(())
        .expect("request")
        .into_parts()
        .0;
    head.headers = map;
    match H::respond(h, &head) {
        routes::Answer::Now(r) => r,
        routes::Answer::Later(f) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(f),
    }
}

fn body(r: &hyper::Response<Payload>) -> String {
    String::from_utf8(r.body().as_bytes().to_vec()).expect("utf8")
}

fn header<'a>(r: &'a hyper::Response<Payload>, name: &str) -> Option<&'a str> {
    r.headers().get(name).and_then(|v| v.to_str().ok())
}

fn token(h: &Arc<Endpoints>, ttl: &str) -> String {
    let r = call(
        h,
        Method::PUT,
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", ttl)],
    );
    assert_eq!(r.status(), 200);
    body(&r)
}

#[test]
fn token_put_echoes_the_ttl_and_returns_256_random_bits() {
    let h = endpoints(FakeSource::valid(), config());
    let r = call(
        &h,
        Method::PUT,
        "/latest/api/token",
        &[("x-aws-ec2-metadata-token-ttl-seconds", "21600")],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(
        header(&r, "x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert_eq!(header(&r, "content-type"), Some("text/plain"));
    let t = body(&r);
    assert_eq!(t.len(), 64);
    assert_ne!(t, token(&h, "21600"));
}

#[test]
fn token_put_without_a_valid_ttl_is_400() {
    let h = endpoints(FakeSource::valid(), config());
    let r = call(&h, Method::PUT, "/latest/api/token", &[]);
    assert_eq!(r.status(), 400);
    for bad in ["0", "21601", "abc", "-5", ""] {
        let r = call(
            &h,
            Method::PUT,
            "/latest/api/token",
            &[("x-aws-ec2-metadata-token-ttl-seconds", bad)],
        );
        assert_eq!(r.status(), 400, "ttl {bad:?}");
    }
}

#[test]
fn metadata_gets_need_a_live_token() {
    let h = endpoints(FakeSource::valid(), config());
    let paths = [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials/app-role",
        "/latest/meta-data/iam/security-credentials-extended/app-role",
        "/latest/meta-data/placement/region",
        "/latest/meta-data/placement/availability-zone",
    ];
    for path in paths {
        assert_eq!(call(&h, Method::GET, path, &[]).status(), 401, "{path}");
        let r = call(
            &h,
            Method::GET,
            path,
            &[("x-aws-ec2-metadata-token", &"0".repeat(64))],
        );
        assert_eq!(r.status(), 401, "{path}");
        assert_eq!(
            call(
                &h,
                Method::GET,
                path,
                &[("x-aws-ec2-metadata-token", "short")]
            )
            .status(),
            401
        );
    }
}

#[test]
fn role_list_credentials_and_placement() {
    let h = endpoints(FakeSource::valid(), config());
    let t = token(&h, "600");
    let auth = [("x-aws-ec2-metadata-token", t.as_str())];
    for path in [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials",
        "/latest/meta-data/iam/security-credentials-extended/",
        "/latest/meta-data/iam/security-credentials-extended",
    ] {
        let r = call(&h, Method::GET, path, &auth);
        assert_eq!(r.status(), 200, "{path}");
        assert_eq!(body(&r), "app-role", "no trailing newline");
    }

    let r = call(
        &h,
        Method::GET,
        "/latest/meta-data/iam/security-credentials/app-role",
        &auth,
    );
    assert_eq!(r.status(), 200);
    let ttl: u64 = header(&r, "x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.parse().ok())
        .expect("ttl echoed");
    assert!((599..=600).contains(&ttl), "{ttl}");
    let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
    assert_eq!(v["Code"], "Success");
    assert_eq!(v["Type"], "AWS-HMAC");
    assert_eq!(v["AccessKeyId"], "ASIAEXAMPLEKEYID");
    assert_eq!(v["SecretAccessKey"], SECRET);
    assert_eq!(v["Token"], SESSION);
    assert!(v.get("AccountId").is_none());
    for field in ["Expiration", "LastUpdated"] {
        let s = v[field].as_str().expect("string");
        assert_eq!(s.len(), 20, "{field}: {s}");
        assert!(s.ends_with('Z'), "{field}: {s}");
        assert!(OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok());
    }

    let r = call(
        &h,
        Method::GET,
        "/latest/meta-data/iam/security-credentials-extended/app-role",
        &auth,
    );
    assert_eq!(r.status(), 200);
    let e: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
    assert_eq!(e["AccountId"], "123456789012");
    assert_eq!(e["Token"], SESSION);

    let r = call(&h, Method::GET, "/latest/meta-data/placement/region", &auth);
    assert_eq!((r.status().as_u16(), body(&r)), (200, "eu-west-3".into()));
    let r = call(
        &h,
        Method::GET,
        "/latest/meta-data/placement/availability-zone",
        &auth,
    );
    assert_eq!((r.status().as_u16(), body(&r)), (200, "eu-west-3a".into()));
}

#[test]
fn unknown_roles_and_paths_are_404_never_200() {
    let h = endpoints(FakeSource::valid(), config());
    let t = token(&h, "600");
    let auth = [("x-aws-ec2-metadata-token", t.as_str())];
    for path in [
        "/latest/meta-data/iam/security-credentials/other-role",
        "/latest/meta-data/iam/security-credentials/app-role/",
        "/latest/meta-data/iam/security-credentials/app-role/x",
        "/latest/meta-data/iam/security-credentials-extended/other",
        "/latest/meta-data/iam/security-credentialsX",
        "/latest/meta-data/",
        "/latest/meta-data/iam/info",
        "/latest/dynamic/instance-identity/document",
        "/",
        "/v1/credentials",
        "/v1/process-credentials",
        "/healthz/",
    ] {
        for method in [Method::GET, Method::PUT, Method::POST] {
            let r = call(&h, method.clone(), path, &auth);
            assert_eq!(r.status(), 404, "{method} {path}");
        }
    }
}

#[test]
fn extended_paths_are_404_when_the_account_is_unknown() {
    let h = endpoints(
        FakeSource::valid(),
        ServerConfig {
            account_id: String::new(),
            ..config()
        },
    );
    let t = token(&h, "600");
    let auth = [("x-aws-ec2-metadata-token", t.as_str())];
    for path in [
        "/latest/meta-data/iam/security-credentials-extended/",
        "/latest/meta-data/iam/security-credentials-extended/app-role",
    ] {
        assert_eq!(call(&h, Method::GET, path, &auth).status(), 404, "{path}");
    }
    let r = call(
        &h,
        Method::GET,
        "/latest/meta-data/iam/security-credentials/app-role",
        &auth,
    );
    assert_eq!(r.status(), 200);
}

#[test]
fn wrong_methods_are_405_with_allow() {
    let h = endpoints(FakeSource::valid(), config());
    let t = token(&h, "600");
    let auth = [
        ("x-aws-ec2-metadata-token", t.as_str()),
        ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
    ];
    let r = call(&h, Method::GET, "/latest/api/token", &auth);
    assert_eq!(r.status(), 405);
    assert_eq!(header(&r, "allow"), Some("PUT"));
    for (method, path) in [
        (
            Method::PUT,
            "/latest/meta-data/iam/security-credentials/app-role",
        ),
        (Method::POST, "/latest/meta-data/iam/security-credentials/"),
        (Method::DELETE, "/latest/meta-data/placement/region"),
        (
            Method::HEAD,
            "/latest/meta-data/iam/security-credentials/app-role",
        ),
        (Method::POST, "/healthz"),
    ] {
        let r = call(&h, method.clone(), path, &auth);
        assert_eq!(r.status(), 405, "{method} {path}");
        assert_eq!(header(&r, "allow"), Some("GET"));
    }
}

#[test]
fn x_forwarded_for_is_refused_on_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "container-secret").expect("write");
    let h = endpoints(
        FakeSource::valid(),
        ServerConfig {
            container_token_file: Some(token_file),
            ..config()
        },
    );
    let t = token(&h, "600");
    for (method, path) in [
        (Method::PUT, "/latest/api/token"),
        (Method::GET, "/latest/meta-data/iam/security-credentials/"),
        (
            Method::GET,
            "/latest/meta-data/iam/security-credentials/app-role",
        ),
        (
            Method::GET,
            "/latest/meta-data/iam/security-credentials-extended/app-role",
        ),
        (Method::GET, "/latest/meta-data/placement/region"),
        (Method::GET, "/latest/meta-data/placement/availability-zone"),
        (Method::GET, "/v1/credentials"),
        (Method::GET, "/healthz"),
        (Method::GET, "/nowhere"),
    ] {
        let r = call(
            &h,
            method.clone(),
            path,
            &[
                ("x-aws-ec2-metadata-token", &t),
                ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
                ("authorization", "container-secret"),
                ("x-forwarded-for", "10.0.0.1"),
            ],
        );
        assert_eq!(r.status(), 403, "{method} {path}");
        assert!(!body(&r).contains(SECRET));
    }
}

#[test]
fn unavailable_credentials_are_503_json_on_every_credential_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "container-secret").expect("write");
    let source = FakeSource::valid();
    let h = endpoints(
        source.clone(),
        ServerConfig {
            container_token_file: Some(token_file),
            ..config()
        },
    );
    let t = token(&h, "600");
    let auth = [
        ("x-aws-ec2-metadata-token", t.as_str()),
        ("authorization", "container-secret"),
    ];
    // Serve once so there is a rendered body to be dropped.
    let r = call(&h, Method::GET, "/v1/credentials", &auth);
    assert_eq!(r.status(), 200);
    source.set(Err(Unavailable::Expired {
        at: OffsetDateTime::now_utc(),
        last_error: Some("CreateSession: AccessDenied".into()),
    }));
    for path in [
        "/latest/meta-data/iam/security-credentials/app-role",
        "/latest/meta-data/iam/security-credentials-extended/app-role",
    ] {
        let r = call(&h, Method::GET, path, &auth);
        assert_eq!(r.status(), 503, "{path}");
        let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
        assert_eq!(v["Code"], "CredentialsUnavailable");
        assert!(
            v["Message"]
                .as_str()
                .is_some_and(|m| m.contains("AccessDenied"))
        );
    }
    let r = call(&h, Method::GET, "/v1/credentials", &auth);
    assert_eq!(r.status(), 503);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
    assert_eq!(v["code"], "CredentialsUnavailable");
    let r = call(&h, Method::GET, "/healthz", &[]);
    assert_eq!(r.status(), 503);

    source.set(Err(Unavailable::NotYetLoaded));
    let r = call(
        &h,
        Method::GET,
        "/latest/meta-data/iam/security-credentials/app-role",
        &auth,
    );
    assert_eq!(r.status(), 503);
    // The role list does not depend on the credentials.
    let r = call(
        &h,
        Method::GET,
        "/latest/meta-data/iam/security-credentials/",
        &auth,
    );
    assert_eq!(r.status(), 200);
}

#[test]
fn new_credentials_are_served_as_soon_as_the_source_has_them() {
    let source = FakeSource::valid();
    let h = endpoints(source.clone(), config());
    let t = token(&h, "600");
    let auth = [("x-aws-ec2-metadata-token", t.as_str())];
    let path = "/latest/meta-data/iam/security-credentials/app-role";
    assert!(body(&call(&h, Method::GET, path, &auth)).contains(SECRET));
    source.set(Ok(creds("rotated-secret-key")));
    let b = body(&call(&h, Method::GET, path, &auth));
    assert!(b.contains("rotated-secret-key") && !b.contains(SECRET));
}

#[test]
fn container_endpoint_checks_the_token_file_on_every_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "first-token").expect("write");
    let h = endpoints(
        FakeSource::valid(),
        ServerConfig {
            container_token_file: Some(token_file.clone()),
            ..config()
        },
    );
    let r = call(
        &h,
        Method::GET,
        "/v1/credentials",
        &[("authorization", "first-token")],
    );
    assert_eq!(r.status(), 200);
    assert_eq!(header(&r, "content-type"), Some("application/json"));
    let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
    assert_eq!(v["AccessKeyId"], "ASIAEXAMPLEKEYID");
    assert_eq!(v["SecretAccessKey"], SECRET);
    assert_eq!(v["Token"], SESSION);
    assert_eq!(v["RoleArn"], ROLE_ARN);
    assert_eq!(v["AccountId"], "123456789012");
    assert!(v["Expiration"].as_str().is_some_and(|e| e.ends_with('Z')));

    for headers in [
        &[][..],
        &[("authorization", "wrong-token")][..],
        &[("authorization", "first-toke")][..],
        &[("authorization", "first-tokenX")][..],
        &[("authorization", "")][..],
    ] {
        let r = call(&h, Method::GET, "/v1/credentials", headers);
        assert_eq!(r.status(), 401, "{headers:?}");
        let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
        assert_eq!(v["code"], "Unauthorized");
        assert!(v["message"].is_string());
    }

    // Rotation: the new token works at once, the old one stops. A trailing newline in the
    // file is tolerated (HTTP cannot carry it in the header).
    std::fs::write(&token_file, "second-token\n").expect("write");
    let old = call(
        &h,
        Method::GET,
        "/v1/credentials",
        &[("authorization", "first-token")],
    );
    assert_eq!(old.status(), 401);
    let new = call(
        &h,
        Method::GET,
        "/v1/credentials",
        &[("authorization", "second-token")],
    );
    assert_eq!(new.status(), 200);

    // An empty or missing token file authorises nobody.
    std::fs::write(&token_file, "").expect("write");
    let r = call(&h, Method::GET, "/v1/credentials", &[("authorization", "")]);
    assert_eq!(r.status(), 401);
    std::fs::remove_file(&token_file).expect("rm");
    let r = call(
        &h,
        Method::GET,
        "/v1/credentials",
        &[("authorization", "second-token")],
    );
    assert_eq!(r.status(), 401);
}

#[test]
fn healthz_shows_expiration_only() {
    let h = endpoints(FakeSource::valid(), config());
    let r = call(&h, Method::GET, "/healthz", &[]);
    assert_eq!(r.status(), 200);
    let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
    assert_eq!(v["status"], "ok");
    assert!(v["expiration"].as_str().is_some_and(|e| e.ends_with('Z')));
    assert!(!body(&r).contains(SECRET) && !body(&r).contains("ASIA"));
}

#[test]
fn unix_socket_routes_check_the_identity_key() {
    let source = FakeSource::valid();
    let key = IdentityKey::new("ABCDEF0123");
    let h = Arc::new(UnixEndpoints::new(source.clone(), key.clone()));
    for presented in ["abcdef0123", "ABCDEF0123"] {
        let r = call(
            &h,
            Method::GET,
            "/v1/process-credentials",
            &[("x-identity-key", presented)],
        );
        assert_eq!(r.status(), 200);
        assert_eq!(body(&r), creds(SECRET).to_process_json().as_str());
    }
    for headers in [
        &[][..],
        &[("x-identity-key", "abcdef012")][..],
        &[("x-identity-key", "")][..],
    ] {
        let r = call(&h, Method::GET, "/v1/process-credentials", headers);
        assert_eq!(r.status(), 404, "{headers:?}");
        assert_eq!(
            body(&r),
            r#"{"message":"this agent serves another identity"}"#
        );
    }
    // SIGHUP switches the key for the running socket.
    key.set("99");
    let r = call(
        &h,
        Method::GET,
        "/v1/process-credentials",
        &[("x-identity-key", "abcdef0123")],
    );
    assert_eq!(r.status(), 404);
    let r = call(
        &h,
        Method::GET,
        "/v1/process-credentials",
        &[("x-identity-key", "99")],
    );
    assert_eq!(r.status(), 200);

    let r = call(
        &h,
        Method::POST,
        "/v1/process-credentials",
        &[("x-identity-key", "99")],
    );
    assert_eq!(r.status(), 405);
    assert_eq!(call(&h, Method::GET, "/healthz", &[]).status(), 200);
    assert_eq!(
        call(
            &h,
            Method::GET,
            "/latest/meta-data/iam/security-credentials/",
            &[]
        )
        .status(),
        404
    );
    let r = call(
        &h,
        Method::GET,
        "/v1/process-credentials",
        &[("x-identity-key", "99"), ("x-forwarded-for", "1.2.3.4")],
    );
    assert_eq!(r.status(), 403);

    source.set(Err(Unavailable::NotYetLoaded));
    let r = call(
        &h,
        Method::GET,
        "/v1/process-credentials",
        &[("x-identity-key", "99")],
    );
    assert_eq!(r.status(), 503);
    assert_eq!(call(&h, Method::GET, "/healthz", &[]).status(), 503);
}

#[test]
fn an_empty_identity_key_matches_nothing() {
    let h = Arc::new(UnixEndpoints::new(
        FakeSource::valid(),
        IdentityKey::new(""),
    ));
    let r = call(
        &h,
        Method::GET,
        "/v1/process-credentials",
        &[("x-identity-key", "")],
    );
    assert_eq!(r.status(), 404);
    assert!(!format!("{:?}", IdentityKey::new("ab")).is_empty());
}

#[test]
fn bind_addresses_must_be_loopback_unless_allowed() {
    for ok in ["127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"] {
        let addr: IpAddr = ok.parse().expect("ip");
        assert_eq!(check_bind_address(addr, false), Ok(()), "{ok}");
    }
    for bad in ["0.0.0.0", "::", "10.0.0.5", "169.254.170.2", "fd00:ec2::23"] {
        let addr: IpAddr = bad.parse().expect("ip");
        let err = check_bind_address(addr, false).expect_err(bad);
        assert_eq!(err, ServerError::NotLoopback(addr));
        assert!(err.hint().is_some());
        assert_eq!(check_bind_address(addr, true), Ok(()), "{bad} allowed");
    }
}

#[test]
fn server_config_comes_from_the_session_settings() {
    let settings = SessionSettings {
        trust_anchor_arn: crate::config::Arn::parse(
            "arn:aws:rolesanywhere:eu-west-3:123456789012:trust-anchor/ta",
        )
        .expect("arn"),
        profile_arn: crate::config::Arn::parse(
            "arn:aws:rolesanywhere:eu-west-3:123456789012:profile/p",
        )
        .expect("arn"),
        role_arn: crate::config::Arn::parse(ROLE_ARN).expect("arn"),
        region: "eu-west-3".into(),
        duration_seconds: 3600,
        role_session_name: None,
    };
    let c = ServerConfig::new(&settings, 3, None);
    assert_eq!(c.role_name, "app-role");
    assert_eq!(c.role_arn, ROLE_ARN);
    assert_eq!(c.account_id, "123456789012");
    assert_eq!(c.region, "eu-west-3");
    assert_eq!(c.hop_limit, 3);
    assert_eq!(c.limits, Limits::default());
    assert_eq!(role_name_from_arn("no-slash"), "no-slash");
}

#[test]
fn default_limits_match_the_documented_values() {
    let l = Limits::default();
    assert_eq!(l.max_connections, 256);
    assert_eq!(l.header_read_timeout, Duration::from_secs(5));
    assert_eq!(l.keep_alive_timeout, Duration::from_secs(60));
    assert_eq!(l.max_head_bytes, 16 * 1024);
    assert_eq!(l.shutdown_grace, Duration::from_secs(5));
    assert_eq!(l.max_connection_lifetime, Duration::from_secs(300));
    assert_eq!(l.max_requests_per_connection, 1000);
}

/// One request on its own connection to `addr`: the status and the body.
async fn exchange(addr: std::net::SocketAddr, head: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
    tcp.write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
        .await
        .expect("write");
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.expect("read");
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[tokio::test]
async fn serve_tcp_answers_the_routes_over_a_socket() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve_tcp(
        listener,
        FakeSource::valid(),
        Arc::new(config()),
        async move {
            let _ = stopped.await;
        },
    ));
    let port = addr.port();
    let (status, token) = exchange(
        addr,
        &format!(
            "PUT /latest/api/token HTTP/1.1\r\nHost: localhost:{port}\r\nX-aws-ec2-metadata-token-ttl-seconds: 60\r\nContent-Length: 0\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = exchange(
        addr,
        &format!(
            "GET /latest/meta-data/iam/security-credentials/app-role HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nX-aws-ec2-metadata-token: {token}\r\n"
        ),
    )
    .await;
    assert_eq!(status, 200);
    assert!(body.contains(SESSION), "{body}");
    let (status, _) = exchange(
        addr,
        &format!("GET /nowhere HTTP/1.1\r\nHost: localhost:{port}\r\n"),
    )
    .await;
    assert_eq!(status, 404);
    // DNS rebinding: a page's own name in Host is refused before any route.
    let (status, _) = exchange(addr, "GET /healthz HTTP/1.1\r\nHost: evil.example:8080\r\n").await;
    assert_eq!(status, 403);
    let _ = stop.send(());
    server.await.expect("join").expect("serve_tcp");
}

#[test]
fn a_foreign_host_is_refused_before_routing_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "container-secret").expect("write");
    let cfg = ServerConfig {
        container_token_file: Some(token_file),
        allowed_hosts: vec!["agent.internal".parse().expect("valid")],
        ..config()
    };
    let stats = cfg.stats.clone();
    let h = endpoints(FakeSource::valid(), cfg);
    let t = token(&h, "600");
    let auth = [
        ("x-aws-ec2-metadata-token", t.as_str()),
        ("x-aws-ec2-metadata-token-ttl-seconds", "60"),
        ("authorization", "container-secret"),
    ];
    let routes = [
        (Method::PUT, "/latest/api/token"),
        (Method::GET, "/latest/meta-data/iam/security-credentials/"),
        (
            Method::GET,
            "/latest/meta-data/iam/security-credentials/app-role",
        ),
        (Method::GET, "/latest/meta-data/placement/region"),
        (Method::GET, "/v1/credentials"),
        (Method::GET, "/healthz"),
        (Method::GET, "/nowhere"),
        (Method::DELETE, "/healthz"),
    ];
    for (method, path) in &routes {
        let mut headers = auth.to_vec();
        headers.push(("host", "evil.example:9911"));
        let r = call(&h, method.clone(), path, &headers);
        assert_eq!(r.status(), 403, "{method} {path}");
        assert_eq!(header(&r, "content-type"), Some("application/json"));
        let v: serde_json::Value = serde_json::from_str(&body(&r)).expect("json");
        assert_eq!(v["code"], "Forbidden");
        assert!(v["message"].as_str().is_some_and(|m| m.contains("Host")));
        assert!(
            !body(&r).contains("evil"),
            "the client's value is not echoed"
        );
        // X-Forwarded-For still comes first (its own 403).
        headers.push(("x-forwarded-for", "10.0.0.1"));
        let r = call(&h, method.clone(), path, &headers);
        assert_eq!(r.status(), 403);
        assert!(body(&r).contains("proxy") || body(&r) == "Forbidden");
    }
    assert_eq!(stats.refused_host(), routes.len() as u64);
    for host in ["agent.internal", "AGENT.internal.:9911", "localhost:9911"] {
        let mut headers = auth.to_vec();
        headers.push(("host", host));
        let r = call(&h, Method::GET, "/healthz", &headers);
        assert_eq!(r.status(), 200, "{host}");
        let r = call(&h, Method::GET, "/v1/credentials", &headers);
        assert_eq!(r.status(), 200, "{host}");
    }
    assert_eq!(stats.refused_host(), routes.len() as u64);
}
