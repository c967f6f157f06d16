//! Shared helpers for the integration tests: the built binary, a throwaway PKI (generated
//! once per process, `test_pki`) and an `emulate` process on 127.0.0.1 with a request log.
//! Everything is loopback-only and bounded in time.

#![allow(dead_code)]

pub mod doctor_pki;
pub mod flood;
pub mod launch;
pub mod raw_http;
pub mod rotation;
pub mod softhsm;
pub mod test_pki;

pub use test_pki::{matrix, matrix_generated_at};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rolesanywhere_agent::pki::{self, TestMatrix};

pub use launch::{ARN_FLAGS, PROFILE, ROLE, TA};

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rolesanywhere-agent")
}

/// A fresh, empty directory for one command (under the system temp dir, per test process).
pub fn scratch_dir(what: &str) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir()
        .join("rolesanywhere-agent-tests")
        .join(format!("{}-{what}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A command for the built binary with a clean, predictable environment: its own empty
/// credentials cache and runtime directory (so no cache entry or agent of another test, or
/// of the user, answers), no password or proxy variables.
pub fn agent() -> Command {
    launch::clean_command(bin(), &scratch_dir("cache"), &scratch_dir("run"))
}

pub fn path(p: &Path) -> String {
    p.display().to_string()
}

/// An `emulate` child process, killed on drop.
pub struct Emulator {
    child: Child,
    pub url: String,
    pub log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Emulator {
    /// Starts `emulate` trusting `anchor`, with extra flags, and waits (at most 20 s) until it listens.
    pub fn start(anchor: &Path, extra: &[&str]) -> Emulator {
        let dir = tempfile::tempdir().unwrap();
        let ready = dir.path().join("ready");
        let log = dir.path().join("requests.jsonl");
        let mut cmd = agent();
        cmd.stdout(Stdio::null()).stderr(Stdio::null());
        let limit = Duration::from_secs(20);
        let (child, addr) = launch::start_emulate(cmd, anchor, &ready, &log, extra, limit)
            .unwrap_or_else(|e| panic!("{e}"));
        let scheme = if extra.contains(&"--generate-tls") {
            "https"
        } else {
            "http"
        };
        Emulator {
            child,
            url: format!("{scheme}://{addr}"),
            log,
            _dir: dir,
        }
    }

    /// The requests it has received, one JSON object each.
    pub fn requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `credential-process` with the ARNs, against `endpoint`, plus `extra` flags.
pub fn credential_process(endpoint: &str, extra: &[&str]) -> Command {
    let mut cmd = agent();
    cmd.arg("credential-process")
        .args(ARN_FLAGS)
        .args(["--endpoint", endpoint])
        .args(extra);
    cmd
}

pub fn run(cmd: &mut Command) -> Output {
    cmd.output().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a usage or configuration error (exit 2, nothing on stdout) whose message has
/// `message` and whose `hint:` line has `hint`; returns stderr.
pub fn assert_usage_error(what: &str, out: &Output, message: &str, hint: &str) -> String {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(2), "{what}: {err}");
    assert!(out.stdout.is_empty(), "{what}: stdout must be empty");
    assert!(
        err.contains(message),
        "{what}: expected '{message}' in:\n{err}"
    );
    let hint_line = err
        .lines()
        .find(|l| l.trim_start().starts_with("hint:"))
        .unwrap_or_default();
    assert!(
        hint_line.contains(hint),
        "{what}: expected hint with '{hint}' in:\n{err}"
    );
    err
}

/// Asserts success and returns the parsed credential_process JSON.
pub fn credentials(o: &Output) -> serde_json::Value {
    assert!(
        o.status.success(),
        "exit {:?}\nstderr: {}",
        o.status.code(),
        stderr(o)
    );
    let text = stdout(o);
    assert!(
        !text.ends_with('\n'),
        "the Go helper prints no trailing newline"
    );
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["Version"], 1);
    for k in [
        "AccessKeyId",
        "SecretAccessKey",
        "SessionToken",
        "Expiration",
    ] {
        assert!(
            v[k].as_str().is_some_and(|s| !s.is_empty()),
            "{k} missing in {text}"
        );
    }
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys.len(), 5, "exactly the five fields: {text}");
    let exp = v["Expiration"].as_str().unwrap();
    assert!(
        exp.len() == 20 && exp.ends_with('Z'),
        "Expiration {exp} must be YYYY-MM-DDTHH:MM:SSZ"
    );
    v
}

/// Waits (at most `limit`) for `child` to exit; on time-out kills it and returns `None`.
pub fn wait_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends signal `name` (`TERM`, `HUP`, ...) to process `pid`.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// A `serve` child process, killed on drop.
pub struct Agent {
    pub child: Child,
    /// `http://127.0.0.1:PORT` of the IMDS and container endpoints.
    pub url: String,
    pub addr: String,
    /// The rest of its stdout after the start-up lines.
    pub stdout_lines: Vec<String>,
}

impl Agent {
    /// Starts `serve --port 0` with `args` and waits (at most 30 s) for its start-up lines.
    pub fn start(args: &[String], env: &[(&str, &str)]) -> Agent {
        use std::io::BufRead as _;
        let mut cmd = agent();
        cmd.args(["serve", "--port", "0"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut lines = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("export AWS_EC2_METADATA_SERVICE_ENDPOINT=");
                    lines.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let out = child.wait_with_output().unwrap();
                    panic!(
                        "serve did not start: {lines:?}\nstderr: {}",
                        String::from_utf8_lossy(&out.stderr)
                    );
                }
            }
        }
        let url = lines
            .last()
            .unwrap()
            .trim_start_matches("export AWS_EC2_METADATA_SERVICE_ENDPOINT=")
            .trim_end_matches('/')
            .to_string();
        let addr = url.trim_start_matches("http://").to_string();
        // Keep draining stdout so the agent never blocks on a full pipe.
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Agent {
            child,
            url,
            addr,
            stdout_lines: lines,
        }
    }

    pub fn signal(&self, name: &str) {
        signal(self.child.id(), name);
    }

    /// Waits for the exit (at most `limit`) and returns the code and stderr.
    pub fn wait(mut self, limit: Duration) -> (Option<i32>, String) {
        let status = wait_exit(&mut self.child, limit);
        let status = status.unwrap_or_else(|| panic!("serve did not exit within {limit:?}"));
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        (status.code(), err)
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection to `addr` (`host:port`); returns the status,
/// the lower-cased headers and the body. Bounded by a 10 s timeout.
pub fn http(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // The address as `Host`, unless the caller names one itself.
    let mut req = format!("{method} {path} HTTP/1.1\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req.push_str(&format!("Host: {addr}\r\n"));
    }
    req.push_str("Connection: close\r\nContent-Length: 0\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let (status, headers) = raw_http::parse_head(head).unwrap();
    (status, headers, body.to_string())
}

/// An IMDSv2 token from the agent at `addr`.
pub fn imds_token(addr: &str) -> String {
    let (status, _, body) = http(
        addr,
        "PUT",
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", "60")],
    );
    assert_eq!(status, 200, "{body}");
    body
}

/// The credentials JSON from the agent's IMDS endpoint (status and body).
pub fn imds_credentials(addr: &str, token: &str) -> (u16, String) {
    let (status, _, role) = http(
        addr,
        "GET",
        "/latest/meta-data/iam/security-credentials/",
        &[("X-aws-ec2-metadata-token", token)],
    );
    if status != 200 {
        return (status, role);
    }
    let (status, _, body) = http(
        addr,
        "GET",
        &format!("/latest/meta-data/iam/security-credentials/{role}"),
        &[("X-aws-ec2-metadata-token", token)],
    );
    (status, body)
}

/// The identity flags of the matrix's p256 leaf: certificate, key and intermediates.
pub fn p256_identity_args(m: &TestMatrix) -> Vec<String> {
    let leaf = m.leaf(pki::KeyType::P256).unwrap();
    vec![
        "--certificate".into(),
        path(&leaf.cert_pem),
        "--private-key".into(),
        path(&leaf.key),
        "--intermediates".into(),
        path(&m.intermediates),
    ]
}

/// The `serve` flags for the p256 leaf of the matrix against `emu`.
pub fn serve_args(m: &TestMatrix, emu: &Emulator, extra: &[&str]) -> Vec<String> {
    let mut v = p256_identity_args(m);
    v.extend(ARN_FLAGS.iter().map(|s| s.to_string()));
    v.extend(["--endpoint".into(), emu.url.clone()]);
    v.extend(extra.iter().map(|s| s.to_string()));
    v
}

/// Runs a Python snippet with botocore in a clean AWS environment plus `env`.
pub fn botocore(script: &str, env: &[(&str, &str)], home: &Path) -> Output {
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script])
        .env("HOME", home)
        .env("XDG_CACHE_HOME", scratch_dir("cache"))
        .env("XDG_RUNTIME_DIR", scratch_dir("run"))
        .env("AWS_CONFIG_FILE", home.join("absent-config"))
        .env(
            "AWS_SHARED_CREDENTIALS_FILE",
            home.join("absent-credentials"),
        );
    for k in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_EC2_METADATA_SERVICE_ENDPOINT",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
        "AWS_EC2_METADATA_DISABLED",
    ] {
        cmd.env_remove(k);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output()
        .expect("python3 with botocore must be installed (scripts/test.sh installs it)")
}

/// Prints how botocore resolved credentials: `method access_key`.
pub const BOTOCORE_WHO: &str = "import botocore.session\n\
    s = botocore.session.Session()\n\
    c = s.get_credentials()\n\
    f = c.get_frozen_credentials()\n\
    assert f.secret_key and f.token\n\
    print(c.method, f.access_key)\n";
