//! The agent group: whether a running agent's socket answers for this identity, and whether
//! the IMDS port SDKs will ask is served by our agent, by something else, or by nothing.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::{Found, Kind, Report};
use crate::agent::client::{self, AgentAnswer};
use crate::cli::DoctorArgs;
use crate::clock::Clock;
use crate::identity::IdentitySpec;
use crate::session::prepare;

const KIND: Kind = Kind::Runtime;
const TIMEOUT: Duration = Duration::from_secs(2);

pub(super) fn check(
    args: &DoctorArgs,
    spec: &IdentitySpec,
    found: &Found,
    clock: &dyn Clock,
    report: &mut Report,
) {
    socket(args, spec, found, clock, report);
    imds(args, report);
}

fn socket(
    args: &DoctorArgs,
    spec: &IdentitySpec,
    found: &Found,
    clock: &dyn Clock,
    report: &mut Report,
) {
    const NAME: &str = "agent.socket";
    let Some(path) = args.socket.clone().or_else(client::default_socket_path) else {
        return report.skip(
            NAME,
            KIND,
            "XDG_RUNTIME_DIR is not set and no --socket given: there is no default socket",
        );
    };
    let shown = path.display();
    if !path.exists() {
        return report.ok(
            NAME,
            KIND,
            format!("no agent socket at {shown}: credential-process calls CreateSession itself (and caches)"),
        );
    }
    let (Some(cert), Some(settings), Some(endpoint)) =
        (&found.certificate, &found.settings, &found.endpoint)
    else {
        return report.skip(NAME, KIND, format!("an agent socket is at {shown}, but asking it needs the certificate, the ARNs and the endpoint"));
    };
    // The same key `credential-process` sends (see `PreparedSession::load`).
    let material = prepare::key_material(spec).unwrap_or_else(|| "unreadable".to_string());
    let key = prepare::cache_key(cert, &material, settings, endpoint);
    match client::ask(&path, key.as_str(), clock.now()) {
        // Security: the credentials are dropped (and wiped) unread.
        Some(AgentAnswer::Credentials(_)) => report.ok(
            NAME,
            KIND,
            format!("the agent at {shown} serves this identity: credential-process gets its credentials from it"),
        ),
        Some(AgentAnswer::Declined(404)) => report.warn(
            NAME,
            KIND,
            format!("the agent at {shown} serves another identity (certificate, key, ARNs, endpoint, duration or session name differ)"),
            "give credential-process exactly the flags serve runs with, or it calls CreateSession itself",
        ),
        Some(AgentAnswer::Declined(503)) => report.fail(
            NAME,
            KIND,
            format!("the agent at {shown} holds no valid credentials"),
            "read its log (journalctl -u rolesanywhere-agent) and `rolesanywhere-agent status`",
        ),
        Some(AgentAnswer::Declined(status)) => report.warn(
            NAME,
            KIND,
            format!("the agent at {shown} answered HTTP {status}"),
            "read its log (journalctl -u rolesanywhere-agent)",
        ),
        None => report.warn(
            NAME,
            KIND,
            format!("{shown} exists but no agent of this user answers there"),
            "a stale socket of a stopped agent (start serve, or remove the file), or another user's",
        ),
    }
}

/// Where SDKs look for IMDS: `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `--port` (9911).
fn imds_address(args: &DoctorArgs) -> Result<(SocketAddr, String), String> {
    let from_env = std::env::var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .ok()
        .filter(|v| !v.trim().is_empty());
    match (&from_env, args.port) {
        (Some(value), None) => {
            let url = reqwest::Url::parse(value.trim()).map_err(|e| {
                format!("AWS_EC2_METADATA_SERVICE_ENDPOINT '{value}' is not a URL: {e}")
            })?;
            let addr = url
                .socket_addrs(|| Some(80))
                .ok()
                .and_then(|a| a.into_iter().next())
                .ok_or_else(|| {
                    format!("AWS_EC2_METADATA_SERVICE_ENDPOINT '{value}' does not resolve")
                })?;
            Ok((addr, "AWS_EC2_METADATA_SERVICE_ENDPOINT".into()))
        }
        (_, port) => {
            let port = port.unwrap_or(crate::server::DEFAULT_PORT);
            Ok((
                SocketAddr::from(([127, 0, 0, 1], port)),
                format!("port {port}"),
            ))
        }
    }
}

fn imds(args: &DoctorArgs, report: &mut Report) {
    const NAME: &str = "agent.imds";
    let (addr, why) = match imds_address(args) {
        Ok(found) => found,
        Err(e) => {
            return report.fail(
                NAME,
                KIND,
                e,
                "set it to http://127.0.0.1:PORT/ (the address serve prints)",
            );
        }
    };
    let mut stream = match TcpStream::connect_timeout(&addr, TIMEOUT) {
        Ok(s) => s,
        // SDKs of this environment are pointed there: they will find no credentials.
        Err(e) if why.starts_with("AWS_") => {
            return report.warn(
                NAME,
                KIND,
                format!("{why} points at {addr}, but nothing answers there ({e}): SDKs in this environment get no credentials from it"),
                "start serve on that address (--port), or unset the variable",
            );
        }
        Err(e) => {
            return report.ok(
                NAME,
                KIND,
                format!("nothing answers on {addr} ({why}: {e}): no agent serves IMDS there"),
            );
        }
    };
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    let mut answer = Vec::new();
    let read = stream
        .set_read_timeout(Some(TIMEOUT))
        .and_then(|_| stream.set_write_timeout(Some(TIMEOUT)))
        .and_then(|_| stream.write_all(request.as_bytes()))
        .and_then(|_| (&mut stream).take(8192).read_to_end(&mut answer));
    let text = String::from_utf8_lossy(&answer);
    let status: Option<u16> = text
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.get(2..5))
        .and_then(|s| s.parse().ok());
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .unwrap_or_default();
    let ours = serde_json::from_str::<serde_json::Value>(body.trim())
        .ok()
        .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string));
    match (read, status, ours.as_deref()) {
        (_, Some(200), Some(health @ ("ok" | "degraded"))) => report.ok(
            NAME,
            KIND,
            format!("our agent answers on {addr} ({why}): /healthz says {health}"),
        ),
        (_, Some(503), Some(_)) => report.fail(
            NAME,
            KIND,
            format!("our agent answers on {addr} ({why}) but holds no valid credentials"),
            "read its log (journalctl -u rolesanywhere-agent) and `rolesanywhere-agent status`",
        ),
        (_, Some(code), _) => report.warn(
            NAME,
            KIND,
            format!("something else listens on {addr} ({why}): GET /healthz answered HTTP {code}, not as this agent does"),
            "give serve another --port and point AWS_EC2_METADATA_SERVICE_ENDPOINT at it, or stop the other service",
        ),
        (Err(e), None, _) => report.warn(
            NAME,
            KIND,
            format!("something listens on {addr} ({why}) but does not answer HTTP: {e}"),
            "give serve another --port, or stop the other service",
        ),
        (Ok(_), None, _) => report.warn(
            NAME,
            KIND,
            format!("something listens on {addr} ({why}) but does not answer HTTP"),
            "give serve another --port, or stop the other service",
        ),
    }
}
