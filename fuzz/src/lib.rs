//! Fixtures shared by the fuzz targets: fixed credentials and their source, the server's
//! listeners, a paused-clock runtime, and byte helpers.

use std::sync::{Arc, OnceLock};

use hyper::header::HeaderValue;
use hyper::{HeaderMap, Method};
use rolesanywhere_agent::agent::{CredentialSource, Unavailable};
use rolesanywhere_agent::credentials::Credentials;
use rolesanywhere_agent::server::body::Payload;
use rolesanywhere_agent::server::fuzzing::Listener;
use rolesanywhere_agent::server::{IdentityKey, Limits, ServerConfig};
use secrecy::SecretString;
use time::OffsetDateTime;
use time::macros::datetime;

/// Secrets the targets look for in outputs that must not carry them.
pub const ACCESS_KEY_ID: &str = "ASIAFUZZFUZZFUZZFUZZ";
pub const SECRET_ACCESS_KEY: &str = "fuzzSecretAccessKeyThatMustNotLeak0000000";
pub const SESSION_TOKEN: &str = "fuzzSessionTokenThatMustNotLeakEither111111";

/// The instant CreateSession answers and the verifier are judged at (the test vectors' date).
pub const NOW: OffsetDateTime = datetime!(2026-11-24 12:33:52 UTC);

pub fn credentials() -> Credentials {
    Credentials {
        access_key_id: ACCESS_KEY_ID.into(),
        secret_access_key: SecretString::from(SECRET_ACCESS_KEY),
        session_token: SecretString::from(SESSION_TOKEN),
        expiration: datetime!(2099-01-01 00:00:00 UTC),
        role_arn: Some("arn:aws:iam::111122223333:role/exam".into()),
    }
}

/// Always has [`credentials`].
pub struct Fixed(Arc<Credentials>);

impl Fixed {
    pub fn shared() -> Arc<dyn CredentialSource> {
        Arc::new(Fixed(Arc::new(credentials())))
    }
}

impl CredentialSource for Fixed {
    fn current(&self, _now: OffsetDateTime) -> Result<Arc<Credentials>, Unavailable> {
        Ok(self.0.clone())
    }
}

/// One single-threaded runtime per process, its clock paused: when every task waits, time
/// jumps to the next timer, so timeouts fire at once.
/// A runtime on the real clock, for answers that wait on the blocking pool (the container
/// route reads its token file there, under a timeout a paused clock would fire at once).
pub fn live_runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("fuzz: runtime: {e}"))
    })
}

/// The answer of `listener` to one request head; `None` when `target` is no request target
/// hyper would pass on.
pub fn respond(
    listener: &Listener,
    method: &Method,
    target: &str,
    headers: &HeaderMap,
) -> Option<hyper::Response<rolesanywhere_agent::server::body::Payload>> {
    listener.respond(live_runtime(), method, target, headers)
}

pub fn runtime() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .start_paused(true)
            .build()
            .unwrap_or_else(|e| panic!("fuzz: cannot build a runtime: {e}"))
    })
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// `haystack` with every `from` replaced by `to`.
pub fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while !rest.is_empty() {
        if rest.starts_with(from) {
            out.extend_from_slice(to);
            rest = &rest[from.len()..];
        } else {
            out.push(rest[0]);
            rest = &rest[1..];
        }
    }
    out
}

/// Whether a response may carry the credentials: only when the request had a credential
/// that authorises it. A leak without one is an authentication bypass.
pub fn assert_no_secret_unless(authorised: bool, response: &[u8]) {
    if authorised {
        return;
    }
    for secret in [SECRET_ACCESS_KEY, SESSION_TOKEN] {
        assert!(
            !contains(response, secret.as_bytes()),
            "credentials served to a request without a valid token or identity key"
        );
    }
}

/// The container endpoint's token (in a temp file the config names).
pub const CONTAINER_TOKEN: &str = "fuzz-container-token";
/// The identity key the unix socket serves.
pub const IDENTITY_KEY: &str = "0123456789abcdef";
/// Replaced in inputs by a valid IMDS session token (the real ones are random).
pub const TOKEN_MARKER: &[u8] = b"@TOKEN@";

/// The TCP endpoints' settings, with the container endpoint on.
pub fn server_config() -> &'static ServerConfig {
    static CONFIG: OnceLock<(tempfile::TempDir, ServerConfig)> = OnceLock::new();
    &CONFIG
        .get_or_init(|| {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("fuzz: temp dir: {e}"));
            let token_file = dir.path().join("token");
            std::fs::write(&token_file, CONTAINER_TOKEN)
                .unwrap_or_else(|e| panic!("fuzz: token file: {e}"));
            let config = ServerConfig {
                role_name: "exam".into(),
                role_arn: "arn:aws:iam::111122223333:role/exam".into(),
                account_id: "111122223333".into(),
                region: "us-east-1".into(),
                hop_limit: 64,
                container_token_file: Some(token_file),
                limits: Limits::default(),
                // One extra name, so the `--allow-host` branch of the Host rule is reached.
                allowed_hosts: vec![
                    "agent.internal"
                        .parse()
                        .unwrap_or_else(|e| panic!("fuzz: allowed host: {e}")),
                ],
                stats: Default::default(),
            };
            (dir, config)
        })
        .1
}

/// A fresh listener (no token state carried over from other inputs) and a valid IMDS
/// token for it (a placeholder on the unix socket, which has none).
pub fn listener(unix: bool) -> (Listener, Vec<u8>) {
    if unix {
        let l = Listener::unix(Fixed::shared(), IdentityKey::new(IDENTITY_KEY));
        return (l, b"no-token".to_vec());
    }
    let l = Listener::tcp(Fixed::shared(), Arc::new(server_config().clone()));
    let mut headers = HeaderMap::new();
    headers.insert(
        "x-aws-ec2-metadata-token-ttl-seconds",
        HeaderValue::from_static("21600"),
    );
    headers.insert("host", HeaderValue::from_static("127.0.0.1"));
    let token = respond(&l, &Method::PUT, "/latest/api/token", &headers)
        .map(|r| body_bytes(r.into_body()))
        .unwrap_or_else(|| panic!("fuzz: the token request was not answered"));
    (l, token)
}

/// Whether a request held something that authorises credentials.
pub fn authorised(raw: &[u8]) -> bool {
    contains(raw, TOKEN_MARKER)
        || contains(raw, CONTAINER_TOKEN.as_bytes())
        || contains(&raw.to_ascii_lowercase(), IDENTITY_KEY.as_bytes())
}

pub fn body_bytes(mut body: Payload) -> Vec<u8> {
    use hyper::body::Body;
    let mut out = Vec::new();
    runtime().block_on(async {
        while let Some(Ok(frame)) =
            std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
        {
            if let Ok(data) = frame.into_data() {
                out.extend_from_slice(&data);
            }
        }
    });
    out
}
