//! Ready-made sets of PKI files for the demo and the integration tests.

use std::fs;
use std::path::{Path, PathBuf};

use time::Duration;

use super::{
    Ca, KeyType, LeafOptions, PkiError, TEST_PASSWORD, Validity, pem_encode, pkcs12, random_fill,
};

/// Permissions of files that hold a private key (or a PKCS#12 file).
const PRIVATE_MODE: u32 = 0o600;
/// Permissions of certificate and other public files.
const PUBLIC_MODE: u32 = 0o644;

/// The files [`write_demo_pki`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoPki {
    /// The directory they are in.
    pub dir: PathBuf,
    /// `ca.pem`: the root CA certificate (P-256, self-signed), the trust anchor.
    pub ca_cert: PathBuf,
    /// `cert.pem`: the leaf certificate (P-256, CN `demo-workload`), issued by the root.
    pub cert: PathBuf,
    /// `key.pem`: the leaf's private key, unencrypted PKCS#8 PEM, mode 0600.
    pub key: PathBuf,
    /// The leaf's validity window.
    pub validity: Validity,
}

/// Makes a throwaway root CA and a leaf for the `demo` subcommand and writes them to `dir`
/// (created if missing):
///
/// | file | content |
/// |---|---|
/// | `ca.pem` | root CA certificate (P-256, self-signed, CN `rolesanywhere-agent demo root CA`), valid now-2h..now+2d |
/// | `cert.pem` | leaf certificate (P-256, CN `demo-workload`) issued by the root, valid now-1h..now+1d |
/// | `key.pem` | the leaf's private key, unencrypted PKCS#8 PEM, mode 0600 |
///
/// Existing files of those names are replaced. The root's key is discarded.
pub fn write_demo_pki(dir: &Path) -> Result<DemoPki, PkiError> {
    create_dir(dir)?;
    let root = Ca::new_root(
        "rolesanywhere-agent demo root CA",
        KeyType::P256,
        Validity::relative_to_now(-Duration::hours(2), Duration::days(2)),
    )?;
    let validity = Validity::relative_to_now(-Duration::hours(1), Duration::days(1));
    let leaf = root.issue_leaf("demo-workload", KeyType::P256, LeafOptions::new(validity))?;

    let demo = DemoPki {
        dir: dir.to_path_buf(),
        ca_cert: dir.join("ca.pem"),
        cert: dir.join("cert.pem"),
        key: dir.join("key.pem"),
        validity,
    };
    write_public(&demo.ca_cert, root.cert_pem().as_bytes())?;
    write_public(&demo.cert, leaf.cert_pem.as_bytes())?;
    write_private(&demo.key, leaf.key.pkcs8_pem()?.as_bytes())?;
    Ok(demo)
}

/// A certificate and its private key, as written by [`write_test_matrix`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertKeyFiles {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, unencrypted PKCS#8 PEM (mode 0600).
    pub key: PathBuf,
    /// The certificate's validity window.
    pub validity: Validity,
}

/// One leaf of [`write_test_matrix`] in every encoding (`<t>` is [`KeyType::name`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeafFiles {
    /// The leaf's key type.
    pub key_type: KeyType,
    /// Its subject common name: `leaf-<t>`.
    pub common_name: String,
    /// `<t>.pem`: the certificate, PEM.
    pub cert_pem: PathBuf,
    /// `<t>.der`: the certificate, DER.
    pub cert_der: PathBuf,
    /// `<t>.key`: the private key, unencrypted PKCS#8 PEM.
    pub key: PathBuf,
    /// `<t>.pkcs1.key`: RSA only, PKCS#1 PEM (`RSA PRIVATE KEY`).
    pub pkcs1_key: Option<PathBuf>,
    /// `<t>.sec1.key`: EC only, SEC1 PEM (`EC PRIVATE KEY`).
    pub sec1_key: Option<PathBuf>,
    /// `<t>.enc.key`: encrypted PKCS#8 PEM, password [`TEST_PASSWORD`].
    pub encrypted_key: PathBuf,
    /// `<t>.p12`: PKCS#12 with the key, the leaf and the intermediate, password [`TEST_PASSWORD`].
    pub pkcs12: PathBuf,
    /// The certificate's validity window.
    pub validity: Validity,
}

/// Everything [`write_test_matrix`] wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestMatrix {
    /// The directory everything is in.
    pub dir: PathBuf,
    /// `root.pem`: the root CA certificate (RSA-2048, self-signed).
    pub root: PathBuf,
    /// `intermediate.pem`: the intermediate CA certificate (P-256), issued by the root.
    pub intermediate: PathBuf,
    /// `anchors/root.pem`: the trust anchor bundle (the root only).
    pub anchors: PathBuf,
    /// `intermediates.pem`: the intermediate bundle (the intermediate only).
    pub intermediates: PathBuf,
    /// The validity window of both CAs.
    pub ca_validity: Validity,
    /// One leaf per key type, in [`KeyType::ALL`] order, all issued by the intermediate.
    pub leaves: Vec<LeafFiles>,
    /// `direct-p256.pem` / `direct-p256.key`: a P-256 leaf issued directly by the root.
    pub direct_p256: CertKeyFiles,
    /// `expired.pem` / `expired.key`: a P-256 leaf (by the intermediate), valid 2 days ago to
    /// 1 day ago.
    pub expired: CertKeyFiles,
    /// `future.pem` / `future.key`: a P-256 leaf (by the intermediate), valid from tomorrow.
    pub future: CertKeyFiles,
    /// `other.key`: a P-256 PKCS#8 PEM key that matches no certificate.
    pub other_key: PathBuf,
    /// `garbage.pem`: random bytes in a PEM armor labelled `CERTIFICATE`.
    pub garbage_pem: PathBuf,
    /// `notpem.txt`: the plain text `this is not a certificate`.
    pub not_pem: PathBuf,
}

impl TestMatrix {
    /// The leaf files of `key_type` (always present in a matrix from [`write_test_matrix`]).
    pub fn leaf(&self, key_type: KeyType) -> Option<&LeafFiles> {
        self.leaves.iter().find(|l| l.key_type == key_type)
    }
}

/// Writes the throwaway PKI the integration tests use into `dir` (created if missing).
///
/// `<t>` is each of `rsa2048`, `rsa3072`, `rsa4096`, `p256`, `p384` ([`KeyType::name`]).
/// Certificates are PEM unless noted; keys are unencrypted PKCS#8 PEM unless noted; every
/// file with a private key (and every `.p12`) has mode 0600. Passwords are [`TEST_PASSWORD`]
/// (`test-password`).
///
/// | file | content |
/// |---|---|
/// | `root.pem` | root CA, RSA-2048, self-signed (CN `Test Root CA`), valid now-3d..now+365d |
/// | `intermediate.pem` | intermediate CA, P-256, issued by the root (CN `Test Intermediate CA`), same validity |
/// | `anchors/root.pem` | trust anchor bundle: the root only |
/// | `intermediates.pem` | intermediate bundle: the intermediate only |
/// | `<t>.pem` | leaf `CN=leaf-<t>` with a `<t>` key, issued by the intermediate, valid now-1h..now+7d |
/// | `<t>.der` | the same certificate, DER |
/// | `<t>.key` | its key |
/// | `<t>.pkcs1.key` | RSA only: its key as PKCS#1 (`RSA PRIVATE KEY`) |
/// | `<t>.sec1.key` | EC only: its key as SEC1 (`EC PRIVATE KEY`) |
/// | `<t>.enc.key` | its key as encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, PBES2 PBKDF2-SHA256 AES-256-CBC) |
/// | `<t>.p12` | PKCS#12: its key, the leaf and the intermediate certificate |
/// | `direct-p256.pem`, `direct-p256.key` | P-256 leaf `CN=direct-p256` issued directly by the root, valid now-1h..now+7d |
/// | `expired.pem`, `expired.key` | P-256 leaf `CN=expired` (intermediate), valid now-2d..now-1d |
/// | `future.pem`, `future.key` | P-256 leaf `CN=future` (intermediate), valid now+1d..now+30d |
/// | `other.key` | a P-256 key matching no certificate |
/// | `garbage.pem` | 128 random bytes (never starting with a DER SEQUENCE) armored as `CERTIFICATE` |
/// | `notpem.txt` | the text `this is not a certificate` |
///
/// Existing files of those names are replaced. The CA keys are discarded.
pub fn write_test_matrix(dir: &Path) -> Result<TestMatrix, PkiError> {
    create_dir(dir)?;
    create_dir(&dir.join("anchors"))?;
    let ca_validity = Validity::relative_to_now(-Duration::days(3), Duration::days(365));
    let root = Ca::new_root("Test Root CA", KeyType::Rsa2048, ca_validity)?;
    let intermediate =
        root.issue_intermediate("Test Intermediate CA", KeyType::P256, ca_validity)?;

    let root_path = dir.join("root.pem");
    let intermediate_path = dir.join("intermediate.pem");
    let anchors = dir.join("anchors").join("root.pem");
    let intermediates = dir.join("intermediates.pem");
    write_public(&root_path, root.cert_pem().as_bytes())?;
    write_public(&intermediate_path, intermediate.cert_pem().as_bytes())?;
    write_public(&anchors, root.cert_pem().as_bytes())?;
    write_public(&intermediates, intermediate.cert_pem().as_bytes())?;

    let leaf_validity = Validity::relative_to_now(-Duration::hours(1), Duration::days(7));
    let mut leaves = Vec::with_capacity(KeyType::ALL.len());
    for key_type in KeyType::ALL {
        let t = key_type.name();
        let common_name = format!("leaf-{t}");
        let leaf =
            intermediate.issue_leaf(&common_name, key_type, LeafOptions::new(leaf_validity))?;
        let files = LeafFiles {
            key_type,
            common_name,
            cert_pem: dir.join(format!("{t}.pem")),
            cert_der: dir.join(format!("{t}.der")),
            key: dir.join(format!("{t}.key")),
            pkcs1_key: key_type
                .is_rsa()
                .then(|| dir.join(format!("{t}.pkcs1.key"))),
            sec1_key: key_type.is_ec().then(|| dir.join(format!("{t}.sec1.key"))),
            encrypted_key: dir.join(format!("{t}.enc.key")),
            pkcs12: dir.join(format!("{t}.p12")),
            validity: leaf_validity,
        };
        write_public(&files.cert_pem, leaf.cert_pem.as_bytes())?;
        write_public(&files.cert_der, &leaf.cert_der)?;
        write_private(&files.key, leaf.key.pkcs8_pem()?.as_bytes())?;
        if let Some(path) = &files.pkcs1_key {
            write_private(path, leaf.key.pkcs1_pem()?.as_bytes())?;
        }
        if let Some(path) = &files.sec1_key {
            write_private(path, leaf.key.sec1_pem()?.as_bytes())?;
        }
        let encrypted = leaf.key.encrypted_pkcs8_pem(TEST_PASSWORD)?;
        write_private(&files.encrypted_key, encrypted.as_bytes())?;
        let p12 = pkcs12(&leaf, &[intermediate.certificate()], TEST_PASSWORD)?;
        write_private(&files.pkcs12, &p12)?;
        leaves.push(files);
    }

    let direct_p256 = write_cert_key(dir, "direct-p256", &root, leaf_validity)?;
    let expired = write_cert_key(
        dir,
        "expired",
        &intermediate,
        Validity::relative_to_now(-Duration::days(2), -Duration::days(1)),
    )?;
    let future = write_cert_key(
        dir,
        "future",
        &intermediate,
        Validity::relative_to_now(Duration::days(1), Duration::days(30)),
    )?;

    let other_key = dir.join("other.key");
    let other = super::GeneratedKey::generate(KeyType::P256)?;
    write_private(&other_key, other.pkcs8_pem()?.as_bytes())?;

    let garbage_pem = dir.join("garbage.pem");
    let mut garbage = [0u8; 128];
    random_fill(&mut garbage)?;
    if garbage[0] == 0x30 {
        garbage[0] = 0x00;
    }
    write_public(
        &garbage_pem,
        pem_encode("CERTIFICATE", &garbage)?.as_bytes(),
    )?;

    let not_pem = dir.join("notpem.txt");
    write_public(&not_pem, b"this is not a certificate\n")?;

    Ok(TestMatrix {
        dir: dir.to_path_buf(),
        root: root_path,
        intermediate: intermediate_path,
        anchors,
        intermediates,
        ca_validity,
        leaves,
        direct_p256,
        expired,
        future,
        other_key,
        garbage_pem,
        not_pem,
    })
}

/// Issues a P-256 leaf `CN=<stem>` from `ca` and writes `<stem>.pem` and `<stem>.key`.
fn write_cert_key(
    dir: &Path,
    stem: &str,
    ca: &Ca,
    validity: Validity,
) -> Result<CertKeyFiles, PkiError> {
    let leaf = ca.issue_leaf(stem, KeyType::P256, LeafOptions::new(validity))?;
    let files = CertKeyFiles {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
        validity,
    };
    write_public(&files.cert, leaf.cert_pem.as_bytes())?;
    write_private(&files.key, leaf.key.pkcs8_pem()?.as_bytes())?;
    Ok(files)
}

fn create_dir(dir: &Path) -> Result<(), PkiError> {
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })
}

fn write_public(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    write_file(path, data, PUBLIC_MODE)
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), PkiError> {
    write_file(path, data, PRIVATE_MODE)
}

/// Replaces `path` with a new file holding `data` with exactly `mode`: whatever was there (a
/// file, a symlink) is replaced, never written through ([`crate::files::write_atomically`]).
fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), PkiError> {
    crate::files::write_atomically(path, data, mode).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn demo_pki_files() {
        let dir = tempfile::tempdir().unwrap();
        let demo = write_demo_pki(&dir.path().join("demo")).unwrap();
        assert_eq!(demo.ca_cert.file_name().unwrap(), "ca.pem");
        assert_eq!(demo.cert.file_name().unwrap(), "cert.pem");
        assert_eq!(demo.key.file_name().unwrap(), "key.pem");
        let key = fs::read_to_string(&demo.key).unwrap();
        assert!(key.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let cert = fs::read(&demo.cert).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&cert).unwrap();
        let cert = pem.parse_x509().unwrap();
        assert_eq!(cert.subject().to_string(), "CN=demo-workload");
        let ca = fs::read(&demo.ca_cert).unwrap();
        let (_, ca_pem) = x509_parser::pem::parse_x509_pem(&ca).unwrap();
        let ca = ca_pem.parse_x509().unwrap();
        cert.verify_signature(Some(ca.public_key())).unwrap();
        assert_eq!(
            demo.validity.not_after - demo.validity.not_before,
            Duration::hours(25)
        );
        #[cfg(unix)]
        {
            assert_eq!(mode(&demo.key), 0o600);
            assert_eq!(mode(&demo.cert), 0o644);
        }
        // Writing again replaces the files, and the key stays private.
        let again = write_demo_pki(&demo.dir).unwrap();
        assert_ne!(fs::read_to_string(&again.key).unwrap(), key);
        #[cfg(unix)]
        assert_eq!(mode(&again.key), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn private_files_replace_symlinks_instead_of_following_them() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        fs::write(&target, "untouched").unwrap();
        let link = dir.path().join("key.pem");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        write_private(&link, b"secret").unwrap();
        assert_eq!(fs::read_to_string(&target).unwrap(), "untouched");
        assert_eq!(fs::read_to_string(&link).unwrap(), "secret");
        assert!(
            !fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(mode(&link), 0o600);
    }
}
