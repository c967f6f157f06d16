//! A small throwaway PKI for the `doctor` and `status` tests: P-256 only (fast), with the
//! validity windows and shapes the doctor must judge: a good leaf, an expired one, one with
//! three days left, a CA certificate given as the leaf, and an intermediate from another root.

use std::path::{Path, PathBuf};

use rolesanywhere_agent::pki::{Ca, Issued, KeyType, LeafOptions, Validity};
use time::Duration;

/// A certificate file and its key file.
pub struct Pair {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub common_name: String,
}

pub struct DoctorPki {
    _dir: tempfile::TempDir,
    /// The trust anchor for `emulate`: the root only.
    pub anchor: PathBuf,
    /// The intermediate that issued every leaf.
    pub intermediates: PathBuf,
    /// An intermediate of another root: a wrong chain for every leaf.
    pub wrong_intermediates: PathBuf,
    /// Valid now-1h..now+90d.
    pub good: Pair,
    /// Valid now-10d..now-1d.
    pub expired: Pair,
    /// Valid now-1h..now+3d.
    pub three_days: Pair,
    /// The intermediate CA's own certificate and key.
    pub ca_leaf: Pair,
}

fn write(dir: &Path, name: &str, issued: &Issued) -> Pair {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}.key"));
    std::fs::write(&cert, &issued.cert_pem).unwrap();
    std::fs::write(&key, issued.key.pkcs8_pem().unwrap().as_bytes()).unwrap();
    Pair {
        cert,
        key,
        common_name: name.to_string(),
    }
}

pub fn doctor_pki() -> DoctorPki {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let ca_validity = Validity::relative_to_now(-Duration::days(30), Duration::days(365));
    let root = Ca::new_root("Doctor Root CA", KeyType::P256, ca_validity).unwrap();
    let intermediate = root
        .issue_intermediate("Doctor Intermediate CA", KeyType::P256, ca_validity)
        .unwrap();
    let other_root = Ca::new_root("Other Root CA", KeyType::P256, ca_validity).unwrap();
    let other = other_root
        .issue_intermediate("Other Intermediate CA", KeyType::P256, ca_validity)
        .unwrap();
    let anchor = d.join("anchor.pem");
    std::fs::write(&anchor, root.cert_pem()).unwrap();
    let intermediates = d.join("intermediates.pem");
    std::fs::write(&intermediates, intermediate.cert_pem()).unwrap();
    let wrong_intermediates = d.join("wrong-intermediates.pem");
    std::fs::write(&wrong_intermediates, other.cert_pem()).unwrap();
    let leaf = |name: &str, from: Duration, to: Duration| {
        let issued = intermediate
            .issue_leaf(
                name,
                KeyType::P256,
                LeafOptions::new(Validity::relative_to_now(from, to)),
            )
            .unwrap();
        write(d, name, &issued)
    };
    let good = leaf("doctor-good", -Duration::hours(1), Duration::days(90));
    let expired = leaf("doctor-expired", -Duration::days(10), -Duration::days(1));
    let three_days = leaf("doctor-three-days", -Duration::hours(1), Duration::days(3));
    let ca_leaf = write(d, "doctor-ca-leaf", intermediate.certificate());
    DoctorPki {
        _dir: dir,
        anchor,
        intermediates,
        wrong_intermediates,
        good,
        expired,
        three_days,
        ca_leaf,
    }
}
