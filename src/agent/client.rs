//! The client side of the agent's Unix socket, used by `credential-process` (and by
//! `status`, which asks [`status`] instead of credentials): one short,
//! blocking HTTP/1.1 exchange, so a warm call costs a connect and a read, not a runtime.
//!
//! Security: whatever listens at the socket's path is not trusted to be our agent, nor to be
//! well. Every step is bounded (the connect, then the whole exchange), the peer must run as
//! this user or as root (SO_PEERCRED), and an answer is used only when it parses as
//! unexpired `credential_process` credentials. Anything else counts as no answer, and the
//! caller goes on without the agent (disk cache, its own CreateSession).

use std::borrow::Cow;
use std::io::{self, Read as _, Write as _};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use time::OffsetDateTime;
use zeroize::Zeroizing;

use crate::credentials::Credentials;

/// How long a connect may wait for room in the agent's backlog: a wedged agent with a full
/// backlog made `connect` block forever.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the request and the whole answer may take once connected.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Credential JSON is a few KiB; anything longer is not our agent.
const MAX_RESPONSE: u64 = 64 * 1024;

/// `$XDG_RUNTIME_DIR/rolesanywhere-agent/agent.sock`, when the runtime dir is set.
pub fn default_socket_path() -> Option<PathBuf> {
    let dir = std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty())?;
    Some(
        PathBuf::from(dir)
            .join("rolesanywhere-agent")
            .join("agent.sock"),
    )
}

/// What the agent said.
#[derive(Debug)]
pub enum AgentAnswer {
    /// `credential_process` JSON for this identity, checked and written out afresh.
    Credentials(Zeroizing<String>),
    /// The agent runs but serves another identity, or has no valid credentials.
    Declined(u16),
}

/// Asks the agent at `socket` for the credentials of `identity_key`. `None` when no usable
/// agent answers there (no socket, refused, timed out, another user's socket, garbled or
/// expired credentials): the caller carries on alone.
pub fn ask(socket: &Path, identity_key: &str, now: OffsetDateTime) -> Option<AgentAnswer> {
    let stream = match connect(socket) {
        Ok(stream) => stream,
        Err(e) => {
            tracing::debug!(socket = %socket.display(), error = %e, "no agent answers");
            return None;
        }
    };
    match rustix::net::sockopt::socket_peercred(&stream) {
        Ok(peer) if trusted_peer(peer.uid.as_raw(), rustix::process::geteuid().as_raw()) => {}
        Ok(peer) => {
            tracing::warn!(
                socket = %socket.display(),
                "ignoring the agent socket: it is served by uid {}, neither this user nor root",
                peer.uid.as_raw()
            );
            return None;
        }
        Err(e) => {
            tracing::warn!(socket = %socket.display(), error = %e, "ignoring the agent socket: cannot tell who serves it");
            return None;
        }
    }
    let request = format!(
        "GET /v1/process-credentials HTTP/1.1\r\nHost: agent\r\nX-Identity-Key: {identity_key}\r\nConnection: close\r\n\r\n"
    );
    let (status, body) = exchange(stream, &request)?;
    if status != 200 {
        return Some(AgentAnswer::Declined(status));
    }
    match checked_json(&body, now) {
        Ok(json) => Some(AgentAnswer::Credentials(json)),
        Err(reason) => {
            tracing::warn!(socket = %socket.display(), "ignoring the agent's answer: {reason}");
            None
        }
    }
}

/// Why `status` got no answer. Each names the socket.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error("no agent listens at {0}")]
    NoAgent(String, #[source] io::Error),
    #[error("the socket {path} is served by uid {uid}, neither this user nor root; not asking it")]
    Untrusted { path: String, uid: u32 },
    #[error("the agent at {0} did not answer in time, or not in HTTP")]
    NoAnswer(String),
    #[error("the agent at {0} does not answer status requests (a version older than this one?)")]
    Unsupported(String),
    #[error("the agent at {path} answered HTTP {status} to the status request")]
    Refused { path: String, status: u16 },
    #[error("the agent at {path} answered a status this version cannot read: {detail}")]
    Garbled { path: String, detail: String },
}

impl StatusError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            StatusError::NoAgent(..) => "start `rolesanywhere-agent serve` (or its systemd unit), or name its socket with --socket".into(),
            StatusError::Untrusted { .. } => "pass --socket with the path of your own agent's socket".into(),
            StatusError::Unsupported(_) => "restart the agent with this version".into(),
            _ => return None,
        })
    }
}

/// Asks the agent at `socket` for its status (`GET /v1/status`, no identity needed: the
/// answer holds nothing secret). The same bounds and owner check as [`ask`].
pub fn status(socket: &Path) -> Result<super::status::AgentStatus, StatusError> {
    let path = socket.display().to_string();
    let stream = connect(socket).map_err(|e| StatusError::NoAgent(path.clone(), e))?;
    let peer = rustix::net::sockopt::socket_peercred(&stream)
        .map_err(|_| StatusError::NoAnswer(path.clone()))?;
    if !trusted_peer(peer.uid.as_raw(), rustix::process::geteuid().as_raw()) {
        return Err(StatusError::Untrusted {
            path,
            uid: peer.uid.as_raw(),
        });
    }
    let request = "GET /v1/status HTTP/1.1\r\nHost: agent\r\nConnection: close\r\n\r\n";
    let (code, body) =
        exchange(stream, request).ok_or_else(|| StatusError::NoAnswer(path.clone()))?;
    match code {
        200 => serde_json::from_str(&body).map_err(|e| StatusError::Garbled {
            path,
            detail: category(&e).to_string(),
        }),
        404 => Err(StatusError::Unsupported(path)),
        status => Err(StatusError::Refused { path, status }),
    }
}

/// Whether a socket served by `peer` may be asked: our own user's agent, or one run by root
/// (a system service may serve every user). Any other user could hand us credentials of
/// its choosing, or read the identity key we send.
pub fn trusted_peer(peer: u32, us: u32) -> bool {
    peer == us || peer == 0
}

/// Connects with a bounded wait. On Linux a blocking `connect` to a Unix socket whose
/// backlog is full sleeps until the listener accepts; the send timeout bounds that sleep
/// (socket(7), SO_SNDTIMEO: `connect` fails with EAGAIN or EINPROGRESS when it expires),
/// and unlike a non-blocking connect retried by hand it is woken as soon as room is made.
fn connect(path: &Path) -> io::Result<UnixStream> {
    let socket = socket2::Socket::new(socket2::Domain::UNIX, socket2::Type::STREAM, None)?;
    socket.set_write_timeout(Some(CONNECT_TIMEOUT))?;
    socket.connect(&socket2::SockAddr::unix(path)?)?;
    Ok(UnixStream::from(OwnedFd::from(socket)))
}

/// Sends `request` and reads the answer within [`TIMEOUT`] in all: the status and the
/// (de-chunked) body. `None` when the exchange fails or the answer is not HTTP.
fn exchange(mut stream: UnixStream, request: &str) -> Option<(u16, Zeroizing<String>)> {
    let deadline = Instant::now() + TIMEOUT;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    stream.write_all(request.as_bytes()).ok()?;
    // Room reserved up front: a growing buffer would leave copies of the secrets behind.
    let mut raw = Zeroizing::new(Vec::with_capacity(MAX_RESPONSE as usize + 1));
    let mut chunk = Zeroizing::new([0u8; 4096]);
    loop {
        // Per-read timeouts alone would let an agent dripping a byte at a time hold us for
        // as long as it likes: each read gets only what is left of the deadline.
        let left = deadline.checked_duration_since(Instant::now())?;
        if left.is_zero() {
            return None;
        }
        stream.set_read_timeout(Some(left)).ok()?;
        match stream.read(&mut chunk[..]) {
            Ok(0) => break,
            Ok(n) => {
                if (raw.len() + n) as u64 > MAX_RESPONSE {
                    return None;
                }
                // `read` never reports more than the buffer it was given.
                raw.extend_from_slice(chunk.get(..n)?);
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    let text = std::str::from_utf8(&raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        Zeroizing::new(body.to_string())
    };
    Some((status, body))
}

/// The `credential_process` shape our agent writes. Strings are borrowed from the answer:
/// our agent never escapes these values, and owned copies would outlive the wiped buffer.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase", deny_unknown_fields)]
struct ProcessJson<'a> {
    version: u32,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: Cow<'a, str>,
}

/// The agent's answer, written out afresh once it is known to be `Version` 1 with three
/// non-empty keys and an `Expiration` after `now`; otherwise why it is not (never quoting a
/// secret).
pub fn checked_json(body: &str, now: OffsetDateTime) -> Result<Zeroizing<String>, String> {
    let parsed: ProcessJson<'_> = serde_json::from_str(body)
        .map_err(|e| format!("not credential_process JSON ({})", category(&e)))?;
    if parsed.version != 1 {
        return Err(format!("Version {} instead of 1", parsed.version));
    }
    for (name, value) in [
        ("AccessKeyId", parsed.access_key_id),
        ("SecretAccessKey", parsed.secret_access_key),
        ("SessionToken", parsed.session_token),
    ] {
        if value.is_empty() || value.trim() != value || value.chars().any(char::is_control) {
            return Err(format!("{name} is empty or malformed"));
        }
    }
    let expiration = OffsetDateTime::parse(
        &parsed.expiration,
        &time::format_description::well_known::Rfc3339,
    )
    .map_err(|_| "Expiration is not an RFC 3339 time".to_string())?;
    if expiration <= now {
        return Err(format!(
            "the credentials expired at {}",
            crate::credentials::format_expiration(expiration)
        ));
    }
    let creds = Credentials {
        access_key_id: parsed.access_key_id.to_string(),
        secret_access_key: SecretString::from(parsed.secret_access_key.to_string()),
        session_token: SecretString::from(parsed.session_token.to_string()),
        expiration,
        role_arn: None,
    };
    Ok(creds.to_process_json())
}

/// serde_json's error category, without the position or any quoted input.
fn category(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "I/O",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "wrong fields or types",
        serde_json::error::Category::Eof => "truncated",
    }
}

fn dechunk(mut body: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::with_capacity(body.len()));
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = size.split(';').next()?.trim();
        // Hex digits only (RFC 9112 chunk-size): `from_str_radix` alone would take `+5`.
        if size.is_empty() || !size.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let size = usize::from_str_radix(size, 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        body = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: OffsetDateTime = time::macros::datetime!(2030-01-01 00:00:00 UTC);

    fn json(version: &str, key: &str, expiration: &str) -> String {
        format!(
            r#"{{"Version":{version},"AccessKeyId":"{key}","SecretAccessKey":"s3cr3t","SessionToken":"t0ken","Expiration":"{expiration}"}}"#
        )
    }

    #[test]
    fn no_agent_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ask(&dir.path().join("absent.sock"), "k", NOW).is_none());
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk("3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n")
                .unwrap()
                .as_str(),
            "abcde"
        );
        assert!(dechunk("zz\r\n").is_none());
        // A sign is not a hex digit, though `from_str_radix` takes it.
        assert!(dechunk("+3\r\nabc\r\n0\r\n\r\n").is_none());
        assert!(dechunk("\r\n").is_none());
    }

    #[test]
    fn only_our_user_or_root_is_trusted() {
        assert!(trusted_peer(1000, 1000));
        assert!(trusted_peer(0, 1000));
        assert!(trusted_peer(0, 0));
        assert!(!trusted_peer(1001, 1000));
        assert!(!trusted_peer(1000, 0));
    }

    #[test]
    fn answers_are_used_only_as_unexpired_version_1_credentials() {
        let good = json("1", "ASIAX", "2030-01-01T01:00:00Z");
        assert_eq!(checked_json(&good, NOW).unwrap().as_str(), good);
        for (body, why) in [
            ("garbage".to_string(), "not credential_process JSON"),
            ("{}".to_string(), "not credential_process JSON"),
            (json("2", "ASIAX", "2030-01-01T01:00:00Z"), "Version 2"),
            (
                json("1", "", "2030-01-01T01:00:00Z"),
                "AccessKeyId is empty",
            ),
            (json("1", "ASIAX", "yesterday"), "not an RFC 3339"),
            (json("1", "ASIAX", "2029-12-31T23:59:59Z"), "expired at"),
            (json("1", "ASIAX", "2030-01-01T00:00:00Z"), "expired at"),
            (
                good.replace('}', r#","Extra":1}"#),
                "not credential_process JSON",
            ),
        ] {
            let err = checked_json(&body, NOW).unwrap_err();
            assert!(err.contains(why), "{body}: {err}");
            assert!(!err.contains("s3cr3t") && !err.contains("t0ken"), "{err}");
        }
    }
}
