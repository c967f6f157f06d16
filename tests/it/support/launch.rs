//! Starting the built binary for the tests and the benchmark (`benches/agent.rs` includes
//! this file): the ARNs `emulate` accepts, a clean environment, and `emulate` started and
//! waited for. Self-contained: no `crate::` paths; errors are strings for the caller to
//! report (the tests panic with them, the benchmark prints them).

#![allow(dead_code)]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const TA: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1";
pub const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1";
pub const ROLE: &str = "arn:aws:iam::111122223333:role/exam";
/// The three ARN flags with the values above.
pub const ARN_FLAGS: [&str; 6] = [
    "--trust-anchor-arn",
    TA,
    "--profile-arn",
    PROFILE,
    "--role-arn",
    ROLE,
];

/// `program` with a clean, predictable environment: its own credentials cache and runtime
/// directory (so no cache entry or agent of another run, or of the user, answers), no
/// password, CA bundle, log filter or proxy variables, standard input closed.
pub fn clean_command(program: &str, cache: &Path, run: &Path) -> Command {
    let mut cmd = Command::new(program);
    cmd.env("XDG_CACHE_HOME", cache)
        .env("XDG_RUNTIME_DIR", run)
        .stdin(Stdio::null());
    for var in [
        "ROLESANYWHERE_PKCS8_PASSWORD",
        "AWS_CA_BUNDLE",
        "RUST_LOG",
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "NO_PROXY",
        "no_proxy",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// Starts `emulate` from `cmd` (a [`clean_command`]) trusting `anchor`, logging requests
/// to `log`, with `extra` flags, and waits (at most `limit`) for its ready file `ready`.
/// Returns the child and its `host:port`; on failure the child is killed.
pub fn start_emulate(
    mut cmd: Command,
    anchor: &Path,
    ready: &Path,
    log: &Path,
    extra: &[&str],
    limit: Duration,
) -> Result<(Child, String), String> {
    let mut child = cmd
        .args(["emulate", "--trust-anchor-certificate"])
        .arg(anchor)
        .args(ARN_FLAGS)
        .arg("--ready-file")
        .arg(ready)
        .arg("--request-log")
        .arg(log)
        .args(extra)
        .spawn()
        .map_err(|e| format!("cannot start emulate: {e}"))?;
    match wait_for_file(ready, limit, &mut child, "emulate") {
        Ok(addr) => Ok((child, addr)),
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            Err(e)
        }
    }
}

/// Waits (at most `limit`) for `path` to appear with content, while `child` runs; returns
/// the content, trimmed.
pub fn wait_for_file(
    path: &Path,
    limit: Duration,
    child: &mut Child,
    what: &str,
) -> Result<String, String> {
    let deadline = Instant::now() + limit;
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return Ok(text.trim().to_string());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("{what} exited early: {status}"));
        }
        if Instant::now() > deadline {
            return Err(format!("{what} did not start within {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
