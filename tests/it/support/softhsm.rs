//! A real SoftHSM2 for the PKCS#11 tests: its own configuration and token directory in a
//! temporary directory, tokens initialised with `softhsm2-util`, keys and certificates
//! written with OpenSC's `pkcs11-tool`. Nothing is mocked. Every command is bounded in time.
//!
//! SoftHSM2 and OpenSC missing is a test failure, not a skip: `scripts/test.sh` installs
//! the `softhsm2` and `opensc` packages.

#![allow(dead_code)]

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Runs `cmd` (standard input closed) and returns its output, failing the test when it
/// takes longer than `limit`: a token that hangs must not hang the test run.
pub fn run_bounded(cmd: &mut Command, limit: Duration) -> Output {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    // Drained on threads, so a chatty child never blocks on a full pipe.
    let drain = |pipe: Option<Box<dyn std::io::Read + Send>>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        })
    };
    let stdout = drain(child.stdout.take().map(|p| Box::new(p) as _));
    let stderr = drain(child.stderr.take().map(|p| Box::new(p) as _));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{cmd:?} still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap_or_default(),
        stderr: stderr.join().unwrap_or_default(),
    }
}

/// Where distributions install the SoftHSM2 module.
const MODULE_CANDIDATES: &[&str] = &[
    "/usr/lib/softhsm/libsofthsm2.so",
    "/usr/lib/x86_64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib/aarch64-linux-gnu/softhsm/libsofthsm2.so",
    "/usr/lib64/pkcs11/libsofthsm2.so",
    "/usr/lib/pkcs11/libsofthsm2.so",
    "/usr/local/lib/softhsm/libsofthsm2.so",
    "/opt/homebrew/lib/softhsm/libsofthsm2.so",
];

/// The SoftHSM2 module, or a failure saying how to get it.
pub fn softhsm_module() -> String {
    MODULE_CANDIDATES
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .unwrap_or_else(|| {
            panic!(
                "SoftHSM2 is not installed (looked for {}); scripts/test.sh installs the softhsm2 and opensc packages",
                MODULE_CANDIDATES.join(", ")
            )
        })
}

/// What `pkcs11-tool --type` writes.
#[derive(Clone, Copy)]
pub enum Object {
    PrivateKey,
    PublicKey,
    Certificate,
}

impl Object {
    fn tool_type(self) -> &'static str {
        match self {
            Object::PrivateKey => "privkey",
            Object::PublicKey => "pubkey",
            Object::Certificate => "cert",
        }
    }
}

/// A SoftHSM2 instance of our own: `SOFTHSM2_CONF` must point at [`SoftHsm::conf`] for
/// every process (and library) that uses it.
pub struct SoftHsm {
    dir: tempfile::TempDir,
    pub conf: PathBuf,
    pub module: String,
    files: std::sync::atomic::AtomicU32,
}

impl SoftHsm {
    pub fn new() -> SoftHsm {
        let module = softhsm_module();
        let dir = tempfile::tempdir().expect("temporary directory");
        let tokens = dir.path().join("tokens");
        std::fs::create_dir(&tokens).expect("token directory");
        let conf = dir.path().join("softhsm2.conf");
        std::fs::write(
            &conf,
            format!(
                "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n",
                tokens.display()
            ),
        )
        .expect("SoftHSM configuration");
        SoftHsm {
            dir,
            conf,
            module,
            files: std::sync::atomic::AtomicU32::new(0),
        }
    }

    /// A fresh token labelled `label` with user PIN `pin`.
    pub fn init_token(&self, label: &str, pin: &str) {
        self.run(
            Command::new("softhsm2-util").args([
                "--init-token",
                "--free",
                "--label",
                label,
                "--pin",
                pin,
                "--so-pin",
                "so-pin-5678",
            ]),
            &format!("softhsm2-util --init-token {label}"),
        );
    }

    /// Writes a DER object (PKCS#8 private key, SubjectPublicKeyInfo or certificate) to the
    /// token with this CKA_ID (empty: none) and CKA_LABEL.
    #[allow(clippy::too_many_arguments)]
    pub fn import(
        &self,
        token: &str,
        pin: &str,
        object: Object,
        der: &[u8],
        id: &[u8],
        label: &str,
        always_authenticate: bool,
    ) {
        let n = self.files.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let file = self.dir.path().join(format!("object-{n}.der"));
        std::fs::write(&file, der).expect("object file");
        let mut cmd = Command::new("pkcs11-tool");
        cmd.args(["--module", &self.module, "--token-label", token])
            .args(["--login", "--pin", pin, "--write-object"])
            .arg(&file)
            .args(["--type", object.tool_type(), "--label", label]);
        if !id.is_empty() {
            cmd.args(["--id", &hex::encode(id)]);
        }
        if matches!(object, Object::PrivateKey) {
            cmd.arg("--usage-sign");
        }
        if always_authenticate {
            cmd.arg("--always-auth");
        }
        self.run(&mut cmd, &format!("pkcs11-tool --write-object {label}"));
        let _ = std::fs::remove_file(&file);
    }

    /// Runs a tool against this SoftHSM, at most 60 s, failing the test with its output.
    fn run(&self, cmd: &mut Command, what: &str) {
        cmd.env("SOFTHSM2_CONF", &self.conf);
        let out = run_bounded(cmd, Duration::from_secs(60));
        assert!(
            out.status.success(),
            "{what} failed (scripts/test.sh installs softhsm2 and opensc): {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
