//! Helpers shared by the renewal tests (`rotation.rs`, `soak.rs`): a CA issuing leaves on
//! demand, the three ways renewals replace files, and `serve` with its log in a file.

#![allow(dead_code)]

use std::fs;
use std::io::BufRead as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rolesanywhere_agent::identity::Certificate;
use rolesanywhere_agent::pki::{Ca, Issued, KeyType, LeafOptions, Validity};

use super::{ARN_FLAGS, Emulator, agent};

/// A root CA that issues leaves on demand, with its anchor file.
pub struct Pki {
    ca: Ca,
    pub anchor: PathBuf,
    _dir: tempfile::TempDir,
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = Ca::new_root(
            "Rotation Test Root",
            KeyType::P256,
            Validity::relative_to_now(time::Duration::days(-60), time::Duration::days(365)),
        )
        .unwrap();
        let anchor = dir.path().join("anchor.pem");
        fs::write(&anchor, ca.cert_pem()).unwrap();
        Pki {
            ca,
            anchor,
            _dir: dir,
        }
    }

    /// A P-256 leaf valid from `from` to `to` (relative to now).
    pub fn leaf_valid(&self, from: time::Duration, to: time::Duration) -> Issued {
        self.ca
            .issue_leaf(
                "rotating-workload",
                KeyType::P256,
                LeafOptions::new(Validity::relative_to_now(from, to)),
            )
            .unwrap()
    }

    pub fn leaf(&self) -> Issued {
        self.leaf_valid(time::Duration::hours(-1), time::Duration::days(30))
    }
}

pub fn serial(leaf: &Issued) -> String {
    Certificate::from_der(&leaf.cert_der)
        .unwrap()
        .serial_decimal()
}

pub fn key_pem(leaf: &Issued) -> String {
    leaf.key.pkcs8_pem().unwrap().to_string()
}

/// Writes a file in place (truncate, then write), as `cp` or a naive renewal job does.
pub fn overwrite(path: &Path, contents: &str) {
    fs::write(path, contents).unwrap();
}

/// Writes a sibling, then renames it over `path`.
pub fn rename_into_place(path: &Path, contents: &str) {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A Kubernetes Secret volume: `tls.crt` -> `..data/tls.crt`, `..data` -> a timestamped
/// directory; an update writes a new directory and swaps `..data` with one rename.
pub struct SecretVolume {
    dir: PathBuf,
    generation: u32,
}

impl SecretVolume {
    pub fn new(dir: &Path, leaf: &Issued) -> SecretVolume {
        let mut v = SecretVolume {
            dir: dir.to_path_buf(),
            generation: 0,
        };
        v.publish(leaf);
        std::os::unix::fs::symlink("..data/tls.crt", dir.join("tls.crt")).unwrap();
        std::os::unix::fs::symlink("..data/tls.key", dir.join("tls.key")).unwrap();
        v
    }

    pub fn publish(&mut self, leaf: &Issued) {
        self.generation += 1;
        let name = format!("..2030_01_01_00_00_0{}.000", self.generation);
        let target = self.dir.join(&name);
        fs::create_dir(&target).unwrap();
        fs::write(target.join("tls.crt"), &leaf.cert_pem).unwrap();
        fs::write(target.join("tls.key"), key_pem(leaf)).unwrap();
        let tmp = self.dir.join("..data_tmp");
        std::os::unix::fs::symlink(&name, &tmp).unwrap();
        fs::rename(&tmp, self.dir.join("..data")).unwrap();
        if self.generation > 1 {
            let old = format!("..2030_01_01_00_00_0{}.000", self.generation - 1);
            fs::remove_dir_all(self.dir.join(old)).unwrap();
        }
    }

    pub fn cert(&self) -> PathBuf {
        self.dir.join("tls.crt")
    }

    pub fn key(&self) -> PathBuf {
        self.dir.join("tls.key")
    }
}

/// `serve` with its stderr in a file, so the log can be read while it runs.
pub struct Serve {
    pub child: Child,
    pub addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Serve {
    pub fn start(cert: &Path, key: &Path, emu: &Emulator, extra: &[&str]) -> Serve {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("serve.log");
        let mut child = agent()
            .args(["serve", "--port", "0", "--certificate"])
            .arg(cert)
            .arg("--private-key")
            .arg(key)
            .args(ARN_FLAGS)
            .args(["--endpoint", &emu.url])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let addr = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(url) =
                        line.strip_prefix("export AWS_EC2_METADATA_SERVICE_ENDPOINT=")
                    {
                        break url
                            .trim_start_matches("http://")
                            .trim_end_matches('/')
                            .to_string();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "serve did not start: {}",
                        fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        std::thread::spawn(move || while rx.recv().is_ok() {});
        Serve {
            child,
            addr,
            log,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most `limit`) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, limit: Duration) -> bool {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if self.log().contains(needle) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn signal(&self, name: &str) {
        super::signal(self.child.id(), name);
    }

    /// SIGTERM, then the exit code, waiting at most `limit`.
    pub fn stop(mut self, limit: Duration) -> Option<i32> {
        self.signal("TERM");
        let status = super::wait_exit(&mut self.child, limit);
        let status = status.unwrap_or_else(|| {
            panic!(
                "serve did not exit within {limit:?} of SIGTERM\n{}",
                self.log()
            )
        });
        status.code()
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
