//! Shared helpers for the integration tests: the built binary, a throwaway PKI and an
//! `emulate` process on 127.0.0.1 with a request log. Everything is loopback-only and bounded
//! in time.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rolesanywhere_agent::pki::{self, TestMatrix};

pub const TA: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1";
pub const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1";
pub const ROLE: &str = "arn:aws:iam::111122223333:role/exam";

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_rolesanywhere-agent")
}

/// A command for the built binary with a clean, predictable environment.
pub fn agent() -> Command {
    let mut cmd = Command::new(bin());
    cmd.env_remove("ROLESANYWHERE_PKCS8_PASSWORD")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("RUST_LOG")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .env_remove("HTTP_PROXY")
        .env_remove("http_proxy")
        .stdin(Stdio::null());
    cmd
}

/// The test PKI in a temporary directory (kept alive by the returned guard).
pub fn matrix() -> (tempfile::TempDir, TestMatrix) {
    let dir = tempfile::tempdir().unwrap();
    let m = pki::write_test_matrix(dir.path()).unwrap();
    (dir, m)
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
        let child = agent()
            .args(["emulate", "--trust-anchor-certificate"])
            .arg(anchor)
            .args([
                "--trust-anchor-arn",
                TA,
                "--profile-arn",
                PROFILE,
                "--role-arn",
                ROLE,
            ])
            .arg("--ready-file")
            .arg(&ready)
            .arg("--request-log")
            .arg(&log)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut emulator = Emulator {
            child,
            url: String::new(),
            log,
            _dir: dir,
        };
        loop {
            if let Ok(addr) = std::fs::read_to_string(&ready) {
                emulator.url = format!("http://{}", addr.trim());
                return emulator;
            }
            if let Ok(Some(status)) = emulator.child.try_wait() {
                panic!("emulate exited early: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "emulate did not start within 20 s"
            );
            std::thread::sleep(Duration::from_millis(20));
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
    cmd.args([
        "credential-process",
        "--trust-anchor-arn",
        TA,
        "--profile-arn",
        PROFILE,
        "--role-arn",
        ROLE,
        "--endpoint",
        endpoint,
    ])
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
