//! `status`: asks a running agent over its unix socket what it holds and prints it for
//! people (or as JSON). The agent's answer holds nothing secret (see `agent::status`), and
//! nothing is added here.

use std::io::Write as _;

use crate::agent::client;
use crate::agent::status::{AgentStatus, Attempt};
use crate::cli::StatusArgs;
use crate::error::Error;

pub fn run(args: &StatusArgs) -> Result<(), Error> {
    let Some(socket) = args.socket.clone().or_else(client::default_socket_path) else {
        return Err(Error::io(
            "cannot find the agent's socket",
            std::io::Error::other(
                "XDG_RUNTIME_DIR is not set: pass --socket with the path serve prints",
            ),
        ));
    };
    let status = client::status(&socket).map_err(|e| {
        let text = crate::chain::Chain::new(&e, e.hint()).to_string();
        Error::io("cannot get the agent's status", std::io::Error::other(text))
    })?;
    let text = if args.json {
        let mut t = serde_json::to_string_pretty(&status).unwrap_or_default();
        t.push('\n');
        t
    } else {
        render(&socket.display().to_string(), &status)
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}

fn attempt(a: Option<&Attempt>) -> String {
    match a {
        None => "none yet".into(),
        Some(a) if a.ok => format!("{} ({})", a.at, a.result),
        Some(a) => format!("{} FAILED: {}", a.at, a.result),
    }
}

/// The people's form: one `label: value` line each, grouped.
fn render(socket: &str, s: &AgentStatus) -> String {
    let mut out = String::new();
    let mut line = |label: &str, value: &str| out.push_str(&format!("{label:<18} {value}\n"));
    line("agent", &format!("{socket} (version {})", s.version));
    line("subject", &s.identity.subject);
    line("serial", &s.identity.serial);
    line("not after", &s.identity.not_after);
    line("key store", &s.identity.key_store);
    match &s.credentials {
        Some(c) => {
            line("access key id", &c.access_key_id);
            line("expires", &c.expiration);
        }
        None => line("credentials", "none valid"),
    }
    line("last refresh", &attempt(s.last_refresh.as_ref()));
    let next = match (&s.next_refresh, &s.last_refresh) {
        (_, Some(a)) if !a.ok => "retrying with backoff".to_string(),
        (Some(at), _) => at.clone(),
        (None, _) => "when credentials are obtained".to_string(),
    };
    line("next refresh", &next);
    line(
        "reloads",
        &format!(
            "{} ({} rotated), last: {}",
            s.reloads.count,
            s.reloads.rotated,
            attempt(s.reloads.last.as_ref())
        ),
    );
    for (i, e) in s.endpoints.iter().enumerate() {
        line(if i == 0 { "listening" } else { "" }, e);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::status::{CredentialsInfo, IdentityInfo};

    #[test]
    fn renders_one_labelled_line_each() {
        let s = AgentStatus {
            version: "0.1.0".into(),
            identity: IdentityInfo {
                subject: "CN=app".into(),
                serial: "42".into(),
                not_after: "2030-01-01T00:00:00Z".into(),
                key_store: "file /k.pem".into(),
            },
            credentials: Some(CredentialsInfo {
                access_key_id: "ASIAX".into(),
                expiration: "2029-01-01T01:00:00Z".into(),
            }),
            last_refresh: Some(Attempt {
                at: "2029-01-01T00:00:00Z".into(),
                ok: false,
                result: "cannot reach".into(),
            }),
            next_refresh: Some("2029-01-01T00:40:00Z".into()),
            reloads: Default::default(),
            endpoints: vec!["imds http://127.0.0.1:1/".into(), "socket /s".into()],
        };
        let text = render("/s", &s);
        assert!(text.contains("access key id      ASIAX\n"), "{text}");
        assert!(text.contains("FAILED: cannot reach"), "{text}");
        assert!(
            text.contains("next refresh       retrying with backoff"),
            "{text}"
        );
        assert!(
            text.contains(
                "listening          imds http://127.0.0.1:1/\n                   socket /s\n"
            ),
            "{text}"
        );
    }
}
