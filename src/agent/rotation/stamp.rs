//! What an identity file looked like when it was read: the resolved target, its inode, size
//! and modification time. Comparing stamps is how a change is noticed without reading the
//! file: a Kubernetes `..data` swap changes the resolved target, a rename-into-place the
//! inode, an in-place overwrite the size or mtime.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// One file's stamp; `None` fields mean the file could not be examined (missing for now,
/// e.g. between an unlink and a rename): that too counts as a change once it differs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stamp {
    resolved: Option<PathBuf>,
    /// `(device, inode, size, mtime seconds, mtime nanoseconds)` of the resolved target.
    meta: Option<(u64, u64, u64, i64, i64)>,
}

impl Stamp {
    /// Examines `path`, following symlinks. Never reads the file, so a FIFO cannot block it.
    pub fn of(path: &Path) -> Stamp {
        Stamp {
            resolved: std::fs::canonicalize(path).ok(),
            meta: std::fs::metadata(path)
                .ok()
                .map(|m| (m.dev(), m.ino(), m.size(), m.mtime(), m.mtime_nsec())),
        }
    }

    /// The file the path resolves to now, if it exists.
    pub fn resolved(&self) -> Option<&Path> {
        self.resolved.as_deref()
    }
}

/// The stamps of every watched file, in a fixed order.
pub fn stamps(paths: &[PathBuf]) -> Vec<Stamp> {
    paths.iter().map(|p| Stamp::of(p)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notices_overwrite_rename_and_symlink_swap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("cert.pem");
        std::fs::write(&file, "one").unwrap();
        let first = Stamp::of(&file);
        assert!(first.resolved().is_some());
        // In place, longer.
        std::fs::write(&file, "three").unwrap();
        let second = Stamp::of(&file);
        assert_ne!(first, second);
        // Renamed into place, same size.
        let tmp = dir.path().join("tmp");
        std::fs::write(&tmp, "THREE").unwrap();
        std::fs::rename(&tmp, &file).unwrap();
        let third = Stamp::of(&file);
        assert_ne!(second, third);
        // A symlink whose target directory is swapped.
        for d in ["a", "b"] {
            std::fs::create_dir(dir.path().join(d)).unwrap();
            std::fs::write(dir.path().join(d).join("c"), "same").unwrap();
        }
        let link = dir.path().join("data");
        std::os::unix::fs::symlink("a", &link).unwrap();
        let via = link.join("c");
        let before = Stamp::of(&via);
        std::fs::remove_file(&link).unwrap();
        std::os::unix::fs::symlink("b", &link).unwrap();
        assert_ne!(before, Stamp::of(&via));
        // Missing counts as a state of its own.
        let gone = Stamp::of(&dir.path().join("absent"));
        assert_eq!(gone, Stamp::default());
    }
}
