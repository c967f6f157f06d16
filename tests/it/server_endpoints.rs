//! The agent's local endpoints over real sockets: the IMDSv2 token flow, the container
//! endpoint, the unix socket, connection bounds and timeouts, graceful shutdown, and that no
//! secret reaches a log line. A fake `CredentialSource` stands in for the refreshing cache;
//! a small raw HTTP/1.1 client shows exactly what goes over the wire.

use std::io;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rolesanywhere_agent::agent::{CredentialSource, Unavailable};
use rolesanywhere_agent::credentials::Credentials;
use rolesanywhere_agent::server::{
    self, DEFAULT_HOP_LIMIT, IdentityKey, Limits, ServerConfig, UnixConfig,
};
use secrecy::SecretString;
use time::OffsetDateTime;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream, UnixStream};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const ROLE_ARN: &str = "arn:aws:iam::123456789012:role/app-role";
const ACCESS_KEY: &str = "ASIAFAKEACCESSKEYID1";
const SECRET: &str = "fakeSecretAccessKey/abcdefghijklmnopqrstu";
const SESSION: &str = "FakeSessionTokenIQoJb3JpZ2luX2VjEHAaCXVzLWVhc3QtMSJHMEUCIQD";
const IDENTITY: &str = "5f3a9c0d1e2b4a6c8d7e9f0a1b2c3d4e5f60718293a4b5c6d7e8f90123456789";
/// Every exchange in these tests is on loopback and answered from memory.
const IO_TIMEOUT: Duration = Duration::from_secs(5);

// ---------------------------------------------------------------------------------------
// Fake source

// One copy of the fake, shared with the route unit tests.
#[path = "support/fake_source.rs"]
mod fake_source;
use fake_source::FakeSource;

impl FakeSource {
    fn valid() -> Arc<Self> {
        FakeSource::answering(Ok(creds()))
    }
}

fn creds() -> Arc<Credentials> {
    Arc::new(Credentials {
        access_key_id: ACCESS_KEY.into(),
        secret_access_key: SecretString::from(SECRET.to_string()),
        session_token: SecretString::from(SESSION.to_string()),
        expiration: OffsetDateTime::now_utc() + time::Duration::hours(1),
        role_arn: None,
    })
}

fn expired() -> Result<Arc<Credentials>, Unavailable> {
    Err(Unavailable::Expired {
        at: OffsetDateTime::now_utc(),
        last_error: Some("CreateSession failed: AccessDeniedException".into()),
    })
}

fn config(container_token_file: Option<&Path>, limits: Limits) -> ServerConfig {
    ServerConfig {
        role_name: server::role_name_from_arn(ROLE_ARN).to_string(),
        role_arn: ROLE_ARN.into(),
        account_id: "123456789012".into(),
        region: "us-east-2".into(),
        hop_limit: DEFAULT_HOP_LIMIT,
        container_token_file: container_token_file.map(Path::to_path_buf),
        limits,
        allowed_hosts: Vec::new(),
        stats: Arc::default(),
    }
}

// ---------------------------------------------------------------------------------------
// Servers

struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<io::Result<()>>,
}

impl Running {
    /// Triggers shutdown and returns how long `serve_*` took to return.
    async fn stop(mut self) -> Duration {
        let started = Instant::now();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let result = tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("serve returns after shutdown")
            .expect("task not aborted");
        assert!(result.is_ok(), "{result:?}");
        started.elapsed()
    }
}

async fn start_tcp(source: Arc<FakeSource>, config: ServerConfig) -> (SocketAddr, Running) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_tcp(
        listener,
        source,
        Arc::new(config),
        async move {
            let _ = rx.await;
        },
    ));
    (
        addr,
        Running {
            stop: Some(tx),
            task,
        },
    )
}

async fn start_unix(
    source: Arc<FakeSource>,
    path: &Path,
    config: impl Into<UnixConfig>,
) -> Running {
    let listener = server::bind_unix(path).expect("bind_unix");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_unix(
        listener,
        source,
        config.into(),
        async move {
            let _ = rx.await;
        },
    ));
    Running {
        stop: Some(tx),
        task,
    }
}

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

struct Client<S> {
    stream: S,
    buf: Vec<u8>,
}

async fn tcp(addr: SocketAddr) -> Client<TcpStream> {
    let stream = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    Client {
        stream,
        buf: Vec::new(),
    }
}

async fn unix(path: &Path) -> Client<UnixStream> {
    Client {
        stream: UnixStream::connect(path).await.expect("connect"),
        buf: Vec::new(),
    }
}

fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" || method == "POST" {
        r.push_str("Content-Length: 0\r\n");
    }
    r.push_str("\r\n");
    r
}

impl<S: AsyncRead + AsyncWrite + Unpin> Client<S> {
    async fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)]) -> Resp {
        let raw = request(method, path, headers);
        tokio::time::timeout(IO_TIMEOUT, self.exchange(raw.as_bytes()))
            .await
            .expect("answered in time")
            .expect("answered")
    }

    async fn exchange(&mut self, raw: &[u8]) -> io::Result<Resp> {
        self.stream.write_all(raw).await?;
        self.read_response().await
    }

    async fn fill(&mut self) -> io::Result<()> {
        if self.stream.read_buf(&mut self.buf).await? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    async fn read_response(&mut self) -> io::Result<Resp> {
        let head_end = loop {
            if let Some(p) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break p;
            }
            self.fill().await?;
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let status = lines
            .next()
            .and_then(|l| l.split(' ').nth(1))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad status line in {head:?}")))?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        while self.buf.len() < head_end + 4 + len {
            self.fill().await?;
        }
        let body =
            String::from_utf8_lossy(&self.buf[head_end + 4..head_end + 4 + len]).into_owned();
        self.buf.drain(..head_end + 4 + len);
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    /// Waits for the server to close the connection; returns how long that took.
    async fn closed_within(&mut self, limit: Duration) -> Duration {
        let started = Instant::now();
        let mut scratch = [0u8; 1024];
        loop {
            match tokio::time::timeout(limit, self.stream.read(&mut scratch)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
                Ok(Ok(_)) => continue,
                Err(_) => panic!("the server did not close the connection within {limit:?}"),
            }
        }
    }
}

async fn imds_token(c: &mut Client<TcpStream>, ttl: &str) -> String {
    let r = c
        .send(
            "PUT",
            "/latest/api/token",
            &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

const CREDS_PATH: &str = "/latest/meta-data/iam/security-credentials/app-role";

// ---------------------------------------------------------------------------------------
// IMDSv2

#[tokio::test]
async fn imds_token_flow_like_an_sdk() {
    let (addr, server) = start_tcp(FakeSource::valid(), config(None, Limits::default())).await;
    let mut c = tcp(addr).await;

    let r = c
        .send(
            "PUT",
            "/latest/api/token",
            &[("X-aws-ec2-metadata-token-ttl-seconds", "21600")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("x-aws-ec2-metadata-token-ttl-seconds"),
        Some("21600")
    );
    assert_eq!(r.header("content-type"), Some("text/plain"));
    let token = r.body;
    assert!(token.len() >= 32, "at least 128 bits as hex: {token}");
    let auth = [("X-aws-ec2-metadata-token", token.as_str())];

    // Same keep-alive connection throughout, like the SDKs' pools.
    for path in [
        "/latest/meta-data/iam/security-credentials/",
        "/latest/meta-data/iam/security-credentials",
    ] {
        let r = c.send("GET", path, &auth).await;
        assert_eq!((r.status, r.body.as_str()), (200, "app-role"), "{path}");
    }
    let r = c.send("GET", CREDS_PATH, &auth).await;
    assert_eq!(r.status, 200);
    let ttl: u64 = r
        .header("x-aws-ec2-metadata-token-ttl-seconds")
        .and_then(|v| v.parse().ok())
        .expect("ttl echoed on the credential response");
    assert!((21590..=21600).contains(&ttl), "{ttl}");
    let v = r.json();
    assert_eq!(v["Code"], "Success");
    assert_eq!(v["Type"], "AWS-HMAC");
    assert_eq!(v["AccessKeyId"], ACCESS_KEY);
    assert_eq!(v["SecretAccessKey"], SECRET);
    assert_eq!(v["Token"], SESSION);
    let exp = v["Expiration"].as_str().expect("expiration");
    assert_eq!(exp.len(), "2030-01-01T00:00:00Z".len(), "{exp}");
    assert!(exp.ends_with('Z') && !exp.contains('.'), "{exp}");
    assert!(v["LastUpdated"].as_str().is_some_and(|s| s.ends_with('Z')));

    let r = c
        .send(
            "GET",
            "/latest/meta-data/iam/security-credentials-extended/app-role",
            &auth,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["AccountId"], "123456789012");

    let r = c
        .send("GET", "/latest/meta-data/placement/region", &auth)
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "us-east-2"));
    let r = c
        .send(
            "GET",
            "/latest/meta-data/placement/availability-zone",
            &auth,
        )
        .await;
    assert_eq!((r.status, r.body.as_str()), (200, "us-east-2a"));
    server.stop().await;
}

#[tokio::test]
async fn imds_status_codes() {
    let (addr, server) = start_tcp(FakeSource::valid(), config(None, Limits::default())).await;
    let mut c = tcp(addr).await;
    let token = imds_token(&mut c, "60").await;
    let auth = [("X-aws-ec2-metadata-token", token.as_str())];

    assert_eq!(c.send("PUT", "/latest/api/token", &[]).await.status, 400);
    for bad in ["0", "21601", "ten", "-1"] {
        let r = c
            .send(
                "PUT",
                "/latest/api/token",
                &[("X-aws-ec2-metadata-token-ttl-seconds", bad)],
            )
            .await;
        assert_eq!(r.status, 400, "{bad}");
    }
    assert_eq!(c.send("GET", CREDS_PATH, &[]).await.status, 401);
    let wrong = "f".repeat(64);
    assert_eq!(
        c.send("GET", CREDS_PATH, &[("X-aws-ec2-metadata-token", &wrong)])
            .await
            .status,
        401
    );
    for path in [
        "/latest/meta-data/iam/security-credentials/other-role",
        "/latest/meta-data/",
        "/latest/user-data",
        "/anything",
    ] {
        assert_eq!(c.send("GET", path, &auth).await.status, 404, "{path}");
    }
    let r = c.send("GET", "/latest/api/token", &auth).await;
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("PUT"));
    let r = c.send("POST", CREDS_PATH, &auth).await;
    assert_eq!(r.status, 405);
    let r = c
        .send(
            "GET",
            CREDS_PATH,
            &[
                ("X-aws-ec2-metadata-token", &token),
                ("X-Forwarded-For", "203.0.113.9"),
            ],
        )
        .await;
    assert_eq!(r.status, 403);
    // No container endpoint without a token file.
    assert_eq!(c.send("GET", "/v1/credentials", &[]).await.status, 404);
    server.stop().await;
}

#[tokio::test]
async fn the_257th_token_evicts_the_first() {
    let (addr, server) = start_tcp(FakeSource::valid(), config(None, Limits::default())).await;
    let mut c = tcp(addr).await;
    let first = imds_token(&mut c, "3600").await;
    let second = imds_token(&mut c, "3600").await;
    for _ in 2..server::MAX_TOKENS {
        imds_token(&mut c, "3600").await;
    }
    let r = c
        .send("GET", CREDS_PATH, &[("X-aws-ec2-metadata-token", &first)])
        .await;
    assert_eq!(r.status, 200, "256 tokens are all live");
    let newest = imds_token(&mut c, "3600").await;
    for (token, status) in [(&first, 401), (&second, 200), (&newest, 200)] {
        let r = c
            .send("GET", CREDS_PATH, &[("X-aws-ec2-metadata-token", token)])
            .await;
        assert_eq!(r.status, status);
    }
    server.stop().await;
}

#[tokio::test]
async fn tokens_expire_after_their_ttl() {
    let (addr, server) = start_tcp(FakeSource::valid(), config(None, Limits::default())).await;
    let mut c = tcp(addr).await;
    let token = imds_token(&mut c, "1").await;
    let auth = [("X-aws-ec2-metadata-token", token.as_str())];
    let r = c.send("GET", CREDS_PATH, &auth).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-aws-ec2-metadata-token-ttl-seconds"), Some("1"));
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert_eq!(c.send("GET", CREDS_PATH, &auth).await.status, 401);
    server.stop().await;
}

#[tokio::test]
async fn x_forwarded_for_is_refused_on_every_route() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("container-token");
    server::ensure_container_token(&token_file).expect("token file");
    let container_token = std::fs::read_to_string(&token_file).expect("read");
    let (addr, server) = start_tcp(
        FakeSource::valid(),
        config(Some(&token_file), Limits::default()),
    )
    .await;
    let mut c = tcp(addr).await;
    let token = imds_token(&mut c, "60").await;
    for (method, path) in [
        ("PUT", "/latest/api/token"),
        ("GET", "/latest/meta-data/iam/security-credentials/"),
        ("GET", CREDS_PATH),
        (
            "GET",
            "/latest/meta-data/iam/security-credentials-extended/app-role",
        ),
        ("GET", "/latest/meta-data/placement/region"),
        ("GET", "/latest/meta-data/placement/availability-zone"),
        ("GET", "/v1/credentials"),
        ("GET", "/healthz"),
        ("GET", "/not/a/route"),
    ] {
        let r = c
            .send(
                method,
                path,
                &[
                    ("X-aws-ec2-metadata-token", &token),
                    ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
                    ("Authorization", &container_token),
                    ("X-Forwarded-For", "198.51.100.7"),
                ],
            )
            .await;
        assert_eq!(r.status, 403, "{method} {path}");
        assert!(!r.body.contains(SECRET) && !r.body.contains(SESSION));
    }

    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("agent.sock");
    let unix_server = start_unix(FakeSource::valid(), &sock, IdentityKey::new(IDENTITY)).await;
    let mut u = unix(&sock).await;
    let r = u
        .send(
            "GET",
            "/v1/process-credentials",
            &[("X-Identity-Key", IDENTITY), ("X-Forwarded-For", "1.2.3.4")],
        )
        .await;
    assert_eq!(r.status, 403);
    server.stop().await;
    unix_server.stop().await;
}

#[tokio::test]
async fn unavailable_credentials_are_503_everywhere_then_recover() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("container-token");
    server::ensure_container_token(&token_file).expect("token file");
    let container_token = std::fs::read_to_string(&token_file).expect("read");
    let source = FakeSource::valid();
    source.set(Err(Unavailable::NotYetLoaded));
    let (addr, server) =
        start_tcp(source.clone(), config(Some(&token_file), Limits::default())).await;
    let sock = dir.path().join("agent.sock");
    let unix_server = start_unix(source.clone(), &sock, IdentityKey::new(IDENTITY)).await;
    let mut c = tcp(addr).await;
    let mut u = unix(&sock).await;
    let token = imds_token(&mut c, "60").await;

    for state in [Err(Unavailable::NotYetLoaded), expired()] {
        source.set(state);
        for path in [
            CREDS_PATH,
            "/latest/meta-data/iam/security-credentials-extended/app-role",
        ] {
            let r = c
                .send("GET", path, &[("X-aws-ec2-metadata-token", &token)])
                .await;
            assert_eq!(r.status, 503, "{path}");
            assert_eq!(r.json()["Code"], "CredentialsUnavailable");
            assert!(r.json()["Message"].is_string());
        }
        let r = c
            .send(
                "GET",
                "/v1/credentials",
                &[("Authorization", &container_token)],
            )
            .await;
        assert_eq!(r.status, 503);
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert!(r.json().is_object());
        assert_eq!(c.send("GET", "/healthz", &[]).await.status, 503);
        let r = u
            .send(
                "GET",
                "/v1/process-credentials",
                &[("X-Identity-Key", IDENTITY)],
            )
            .await;
        assert_eq!(r.status, 503);
        assert_eq!(u.send("GET", "/healthz", &[]).await.status, 503);
    }

    source.set(Ok(creds()));
    let r = c
        .send("GET", CREDS_PATH, &[("X-aws-ec2-metadata-token", &token)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["SecretAccessKey"], SECRET);
    let r = c.send("GET", "/healthz", &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()["status"], "ok");
    assert!(
        r.json()["expiration"]
            .as_str()
            .is_some_and(|e| e.ends_with('Z'))
    );
    assert!(!r.body.contains(ACCESS_KEY) && !r.body.contains(SECRET));
    server.stop().await;
    unix_server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Container endpoint

#[tokio::test]
async fn container_endpoint_authorization_and_rotation() {
    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("secrets/container-token");
    server::ensure_container_token(&token_file).expect("token file");
    let meta = std::fs::metadata(&token_file).expect("meta");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).expect("read");
    assert!(token.len() >= 32 && !token.ends_with('\n'), "{token:?}");

    let (addr, server) = start_tcp(
        FakeSource::valid(),
        config(Some(&token_file), Limits::default()),
    )
    .await;
    let mut c = tcp(addr).await;

    let r = c
        .send("GET", "/v1/credentials", &[("Authorization", &token)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json"));
    let v = r.json();
    assert_eq!(v["AccessKeyId"], ACCESS_KEY);
    assert_eq!(v["SecretAccessKey"], SECRET);
    assert_eq!(v["Token"], SESSION);
    assert_eq!(v["RoleArn"], ROLE_ARN);
    assert_eq!(v["AccountId"], "123456789012");
    assert!(v["Expiration"].as_str().is_some_and(|e| e.ends_with('Z')));

    for headers in [vec![], vec![("Authorization", "not-the-token")]] {
        let r = c.send("GET", "/v1/credentials", &headers).await;
        assert_eq!(r.status, 401, "{headers:?}");
        assert_eq!(r.json()["code"], "Unauthorized");
        assert!(r.json()["message"].is_string());
    }

    // Rotate the file under the running server.
    std::fs::write(&token_file, "rotated-container-token").expect("rotate");
    let r = c
        .send("GET", "/v1/credentials", &[("Authorization", &token)])
        .await;
    assert_eq!(r.status, 401, "the old token stops working");
    let r = c
        .send(
            "GET",
            "/v1/credentials",
            &[("Authorization", "rotated-container-token")],
        )
        .await;
    assert_eq!(r.status, 200, "the new one works at once");
    assert_eq!(c.send("POST", "/v1/credentials", &[]).await.status, 405);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Unix socket

#[tokio::test]
async fn unix_socket_serves_process_credentials_for_its_identity_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("run/agent.sock");
    let source = FakeSource::valid();
    let key = IdentityKey::new(IDENTITY);
    let server = start_unix(source.clone(), &sock, key.clone()).await;
    let mode = std::fs::metadata(&sock).expect("meta").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let dir_mode = std::fs::metadata(dir.path().join("run"))
        .expect("meta")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(dir_mode, 0o700);

    let mut u = unix(&sock).await;
    let r = u
        .send(
            "GET",
            "/v1/process-credentials",
            &[("X-Identity-Key", IDENTITY)],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body, creds().to_process_json().as_str());
    let v = r.json();
    assert_eq!(v["Version"], 1);
    assert_eq!(v["SessionToken"], SESSION);

    for headers in [vec![("X-Identity-Key", "00ff")], vec![]] {
        let r = u.send("GET", "/v1/process-credentials", &headers).await;
        assert_eq!(r.status, 404);
        assert_eq!(r.json()["message"], "this agent serves another identity");
    }

    // The client used by credential-process (Connection: close, blocking std socket).
    let path = sock.clone();
    let answer = tokio::task::spawn_blocking(move || {
        rolesanywhere_agent::agent::client::ask(&path, IDENTITY, OffsetDateTime::now_utc())
    })
    .await
    .expect("join");
    match answer {
        Some(rolesanywhere_agent::agent::client::AgentAnswer::Credentials(json)) => {
            assert_eq!(json.as_str(), creds().to_process_json().as_str());
        }
        other => panic!("unexpected answer {other:?}"),
    }

    // Identity switched (SIGHUP) while serving.
    key.set("abcdef");
    let r = u
        .send(
            "GET",
            "/v1/process-credentials",
            &[("X-Identity-Key", IDENTITY)],
        )
        .await;
    assert_eq!(r.status, 404);
    let r = u
        .send(
            "GET",
            "/v1/process-credentials",
            &[("X-Identity-Key", "ABCDEF")],
        )
        .await;
    assert_eq!(r.status, 200);
    server.stop().await;
}

// ---------------------------------------------------------------------------------------
// Bounds, timeouts, shutdown

fn fast_limits() -> Limits {
    Limits {
        header_read_timeout: Duration::from_millis(300),
        keep_alive_timeout: Duration::from_millis(1200),
        shutdown_grace: Duration::from_millis(800),
        ..Limits::default()
    }
}

#[tokio::test]
async fn slow_heads_are_cut_off_but_idle_keep_alive_lasts_longer() {
    let (addr, server) = start_tcp(FakeSource::valid(), config(None, fast_limits())).await;

    // Nothing sent at all.
    let mut silent = tcp(addr).await;
    let t = silent.closed_within(Duration::from_secs(3)).await;
    assert!(t >= Duration::from_millis(200), "{t:?}");

    // Half a request head.
    let mut slow = tcp(addr).await;
    slow.stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x")
        .await
        .expect("write");
    let t = slow.closed_within(Duration::from_secs(3)).await;
    assert!(t >= Duration::from_millis(200), "{t:?}");

    // Idle between requests for longer than the head timeout: still served.
    let mut c = tcp(addr).await;
    assert_eq!(c.send("GET", "/healthz", &[]).await.status, 200);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(c.send("GET", "/healthz", &[]).await.status, 200);
    // Then closed once idle for the keep-alive timeout.
    let t = c.closed_within(Duration::from_secs(4)).await;
    assert!(t >= Duration::from_millis(1000), "{t:?}");
    server.stop().await;
}

#[tokio::test]
async fn oversized_heads_are_refused() {
    let (addr, server) = start_tcp(FakeSource::valid(), config(None, Limits::default())).await;
    let mut c = tcp(addr).await;
    let big = "a".repeat(20 * 1024);
    let raw = request("GET", "/healthz", &[("X-Padding", &big)]);
    let r = tokio::time::timeout(IO_TIMEOUT, c.exchange(raw.as_bytes())).await;
    match r {
        Ok(Ok(r)) => assert_eq!(r.status, 431),
        // Closing without an answer is also a refusal.
        Ok(Err(_)) => {}
        Err(_) => panic!("no answer to an oversized head"),
    }
    // The server is still fine.
    let mut c = tcp(addr).await;
    assert_eq!(c.send("GET", "/healthz", &[]).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn when_every_slot_is_taken_the_least_recently_active_connection_makes_room() {
    // Waiting in the backlog for a slot let 256 held connections starve every real client:
    // a new connection is served at once, and the idle one is closed instead.
    let limits = Limits {
        max_connections: 1,
        ..Limits::default()
    };
    let cfg = config(None, limits);
    let stats = cfg.stats.clone();
    let (addr, server) = start_tcp(FakeSource::valid(), cfg).await;
    let mut first = tcp(addr).await;
    assert_eq!(first.send("GET", "/healthz", &[]).await.status, 200);

    let mut second = tcp(addr).await;
    assert_eq!(second.send("GET", "/healthz", &[]).await.status, 200);
    first.closed_within(Duration::from_secs(2)).await;
    assert_eq!(stats.evicted_connections(), 1);
    assert_eq!(second.send("GET", "/healthz", &[]).await.status, 200);
    server.stop().await;
}

#[tokio::test]
async fn shutdown_stops_accepting_and_returns_within_the_grace_period() {
    let (addr, server) = start_tcp(
        FakeSource::valid(),
        config(
            None,
            Limits {
                header_read_timeout: Duration::from_secs(30),
                ..fast_limits()
            },
        ),
    )
    .await;
    let mut idle = tcp(addr).await;
    assert_eq!(idle.send("GET", "/healthz", &[]).await.status, 200);
    // A client stuck mid-head holds its connection until the grace period ends.
    let mut stuck = tcp(addr).await;
    stuck
        .stream
        .write_all(b"GET /healthz HTTP/1.1\r\n")
        .await
        .expect("write");
    tokio::time::sleep(Duration::from_millis(50)).await;

    let took = server.stop().await;
    assert!(took < Duration::from_secs(3), "{took:?}");
    idle.closed_within(Duration::from_secs(1)).await;
    stuck.closed_within(Duration::from_secs(1)).await;
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn a_zero_hop_limit_is_refused_and_the_setter_works_on_real_sockets() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let mut cfg = config(None, Limits::default());
    cfg.hop_limit = 0;
    let r = server::serve_tcp(
        listener,
        FakeSource::valid(),
        Arc::new(cfg),
        std::future::pending(),
    )
    .await;
    assert_eq!(r.expect_err("refused").kind(), io::ErrorKind::InvalidInput);

    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (client, accepted) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let (_client, (accepted, _)) = (client.expect("connect"), accepted.expect("accept"));
    server::set_hop_limit(&accepted, 2).expect("set");
    assert_eq!(accepted.ttl().expect("ttl"), 2);
}

#[test]
fn bind_address_policy() {
    assert!(server::check_bind_address("127.0.0.1".parse().expect("ip"), false).is_ok());
    assert!(server::check_bind_address("::1".parse().expect("ip"), false).is_ok());
    assert!(server::check_bind_address("0.0.0.0".parse().expect("ip"), false).is_err());
    assert!(server::check_bind_address("192.0.2.1".parse().expect("ip"), true).is_ok());
}

// ---------------------------------------------------------------------------------------
// No secrets in logs

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Capture {
    type Writer = Capture;

    fn make_writer(&'a self) -> Capture {
        self.clone()
    }
}

/// Everything logged by this test binary from the first call on, at TRACE.
///
/// A global subscriber rather than `set_default`: with a thread-scoped one, tests running in
/// parallel race on tracing's per-callsite interest cache and events get lost, which would
/// let this test pass without looking at anything.
fn global_capture() -> &'static Capture {
    static CAPTURE: std::sync::OnceLock<Capture> = std::sync::OnceLock::new();
    CAPTURE.get_or_init(|| {
        let capture = Capture::default();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(capture.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("the only global subscriber");
        capture
    })
}

#[tokio::test]
async fn no_token_or_secret_reaches_the_logs_even_at_trace() {
    let capture = global_capture();

    let dir = tempfile::tempdir().expect("tempdir");
    let token_file = dir.path().join("container-token");
    server::ensure_container_token(&token_file).expect("token file");
    let container_token = std::fs::read_to_string(&token_file).expect("read");
    let source = FakeSource::valid();
    let (addr, server) =
        start_tcp(source.clone(), config(Some(&token_file), Limits::default())).await;
    let sock = dir.path().join("agent.sock");
    let unix_server = start_unix(source.clone(), &sock, IdentityKey::new(IDENTITY)).await;

    let mut c = tcp(addr).await;
    let token = imds_token(&mut c, "21600").await;
    let auth = [("X-aws-ec2-metadata-token", token.as_str())];
    c.send("GET", "/latest/meta-data/iam/security-credentials/", &auth)
        .await;
    let r = c.send("GET", CREDS_PATH, &auth).await;
    assert_eq!(r.json()["SecretAccessKey"], SECRET);
    c.send(
        "GET",
        "/latest/meta-data/iam/security-credentials-extended/app-role",
        &auth,
    )
    .await;
    // Failures log too: a wrong token, a proxied request, a wrong container token.
    c.send("GET", CREDS_PATH, &[("X-aws-ec2-metadata-token", "0123")])
        .await;
    c.send(
        "GET",
        CREDS_PATH,
        &[
            ("X-aws-ec2-metadata-token", &token),
            ("X-Forwarded-For", "10.1.1.1"),
        ],
    )
    .await;
    let r = c
        .send(
            "GET",
            "/v1/credentials",
            &[("Authorization", &container_token)],
        )
        .await;
    assert_eq!(r.status, 200);
    c.send("GET", "/v1/credentials", &[("Authorization", "nope")])
        .await;
    // Evictions (the Go helper logged the evicted token).
    let mut evicted = Vec::new();
    for _ in 0..=server::MAX_TOKENS {
        evicted.push(imds_token(&mut c, "60").await);
    }
    let mut u = unix(&sock).await;
    let r = u
        .send(
            "GET",
            "/v1/process-credentials",
            &[("X-Identity-Key", IDENTITY)],
        )
        .await;
    assert_eq!(r.status, 200);
    source.set(expired());
    c.send(
        "GET",
        CREDS_PATH,
        &[("X-aws-ec2-metadata-token", &evicted[200])],
    )
    .await;
    server.stop().await;
    unix_server.stop().await;

    let logs = String::from_utf8(
        capture
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone(),
    )
    .expect("utf8 logs");
    // The test means something only if the server did log.
    assert!(logs.contains("imds-credentials"), "{logs}");
    assert!(logs.contains("TRACE"), "{logs}");
    assert!(logs.contains("evicted"), "{logs}");
    for secret in [SECRET, SESSION, token.as_str(), container_token.as_str()]
        .into_iter()
        .chain(evicted.iter().map(String::as_str))
    {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
    }
}
