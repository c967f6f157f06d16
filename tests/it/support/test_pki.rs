//! The test PKI (`pki::write_test_matrix`), generated once per test process and copied into
//! each test's own temporary directory.
//!
//! Generating it costs RSA-2048, 3072 and 4096 keys (seconds in a debug build), and some 40
//! tests want one. The keys and certificates are made once; each call writes the same bytes,
//! with the same modes, into a fresh directory, so no test shares a file another test could
//! change. Inside one matrix every key is still distinct (`other_key` matches no certificate),
//! so "wrong key" tests keep working; a test that needs keys nobody else has makes its own
//! with `pki::Ca`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::LazyLock;

use rolesanywhere_agent::pki::{self, CertKeyFiles, LeafFiles, TestMatrix};
use time::OffsetDateTime;

/// One generated matrix, kept in memory: its paths (relative to [`Template::root`]), every
/// file's bytes and mode, and when it was made.
struct Template {
    root: PathBuf,
    matrix: TestMatrix,
    files: Vec<(PathBuf, Vec<u8>, u32)>,
    generated_at: OffsetDateTime,
}

/// Generated on first use; the directory it was written to is removed at once, so nothing is
/// left behind when the process exits (statics are never dropped).
static TEMPLATE: LazyLock<Template> = LazyLock::new(|| {
    let dir = tempfile::tempdir().unwrap();
    let generated_at = OffsetDateTime::now_utc();
    let matrix = pki::write_test_matrix(dir.path()).unwrap();
    let mut files = Vec::new();
    collect(dir.path(), dir.path(), &mut files);
    Template {
        root: dir.path().to_path_buf(),
        matrix,
        files,
        generated_at,
    }
});

fn collect(root: &Path, dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>, u32)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let meta = std::fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            collect(root, &path, out);
        } else {
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            let mode = meta.permissions().mode() & 0o7777;
            out.push((rel, std::fs::read(&path).unwrap(), mode));
        }
    }
}

/// The test PKI in a new temporary directory (kept alive by the returned guard), with the
/// keys and certificates every other call of this process gets.
pub fn matrix() -> (tempfile::TempDir, TestMatrix) {
    let (dir, m, _) = matrix_generated_at();
    (dir, m)
}

/// [`matrix`], and the time just before the keys were generated (the validity windows are
/// relative to it).
pub fn matrix_generated_at() -> (tempfile::TempDir, TestMatrix, OffsetDateTime) {
    let t = &*TEMPLATE;
    let dir = tempfile::tempdir().unwrap();
    for (rel, bytes, mode) in &t.files {
        let path = dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(*mode)).unwrap();
    }
    let m = reroot(&t.matrix, &t.root, dir.path());
    (dir, m, t.generated_at)
}

/// The same matrix with every path moved from `from` to `to`.
fn reroot(m: &TestMatrix, from: &Path, to: &Path) -> TestMatrix {
    let p = |path: &PathBuf| to.join(path.strip_prefix(from).unwrap());
    let ck = |f: &CertKeyFiles| CertKeyFiles {
        cert: p(&f.cert),
        key: p(&f.key),
        validity: f.validity,
    };
    TestMatrix {
        dir: to.to_path_buf(),
        root: p(&m.root),
        intermediate: p(&m.intermediate),
        anchors: p(&m.anchors),
        intermediates: p(&m.intermediates),
        ca_validity: m.ca_validity,
        leaves: m
            .leaves
            .iter()
            .map(|l| LeafFiles {
                key_type: l.key_type,
                common_name: l.common_name.clone(),
                cert_pem: p(&l.cert_pem),
                cert_der: p(&l.cert_der),
                key: p(&l.key),
                pkcs1_key: l.pkcs1_key.as_ref().map(p),
                sec1_key: l.sec1_key.as_ref().map(p),
                encrypted_key: p(&l.encrypted_key),
                pkcs12: p(&l.pkcs12),
                validity: l.validity,
            })
            .collect(),
        direct_p256: ck(&m.direct_p256),
        expired: ck(&m.expired),
        future: ck(&m.future),
        other_key: p(&m.other_key),
        garbage_pem: p(&m.garbage_pem),
        not_pem: p(&m.not_pem),
    }
}

#[test]
fn each_matrix_is_a_private_copy_of_the_same_keys() {
    let (_a, a) = matrix();
    let (_b, b) = matrix();
    assert_ne!(a.dir, b.dir);
    for (la, lb) in a.leaves.iter().zip(&b.leaves) {
        assert_eq!(
            std::fs::read(&la.key).unwrap(),
            std::fs::read(&lb.key).unwrap()
        );
        assert!(la.key.starts_with(&a.dir) && lb.key.starts_with(&b.dir));
        let mode = std::fs::metadata(&la.key).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{}", la.key.display());
    }
    // Changing one test's files leaves the other's alone.
    std::fs::write(&a.other_key, "changed").unwrap();
    assert_ne!(std::fs::read(&b.other_key).unwrap(), b"changed");
    // Within one matrix the keys stay distinct: "wrong key" tests depend on it.
    let p256 = a.leaf(pki::KeyType::P256).unwrap();
    assert_ne!(
        std::fs::read(&p256.key).unwrap(),
        std::fs::read(&b.other_key).unwrap()
    );
}
