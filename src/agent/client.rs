//! The client side of the agent's Unix socket, used by `credential-process`: one short,
//! blocking HTTP/1.1 exchange, so a warm call costs a connect and a read, not a runtime.

use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use zeroize::Zeroizing;

/// How long `credential-process` waits for an agent before doing the work itself.
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
    /// `credential_process` JSON for this identity.
    Credentials(Zeroizing<String>),
    /// The agent runs but serves another identity, or has no valid credentials.
    Declined(u16),
}

/// Asks the agent at `socket` for the credentials of `identity_key`. `None` when no agent
/// answers there (no socket, refused, timed out, garbled): the caller carries on alone.
pub fn ask(socket: &Path, identity_key: &str) -> Option<AgentAnswer> {
    let mut stream = UnixStream::connect(socket).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    let request = format!(
        "GET /v1/process-credentials HTTP/1.1\r\nHost: agent\r\nX-Identity-Key: {identity_key}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Zeroizing::new(Vec::new());
    stream.take(MAX_RESPONSE).read_to_end(&mut raw).ok()?;
    let text = std::str::from_utf8(&raw).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    if status != 200 {
        return Some(AgentAnswer::Declined(status));
    }
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)?
    } else {
        Zeroizing::new(body.to_string())
    };
    Some(AgentAnswer::Credentials(body))
}

fn dechunk(mut body: &str) -> Option<Zeroizing<String>> {
    let mut out = Zeroizing::new(String::new());
    loop {
        let (size, rest) = body.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
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

    #[test]
    fn no_agent_means_none() {
        let dir = tempfile::tempdir().unwrap();
        assert!(ask(&dir.path().join("absent.sock"), "k").is_none());
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
    }
}
