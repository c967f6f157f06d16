//! A directory for files that hold secrets (the credentials cache), held open by descriptor
//! once it has been checked, so that nobody can redirect what is read or written there.
//!
//! Security: a path is looked up again by every call that takes one. If the last component
//! of the cache directory's path were a symbolic link planted by another user, or the
//! directory were theirs, the credentials would be written where they can read them (or read
//! from where they can write them), and a `chmod` on the path would change a directory they
//! chose. So the directory is opened once with `O_NOFOLLOW | O_DIRECTORY`, its owner checked
//! on the descriptor (it must be us), its mode tightened through the descriptor, and every
//! entry is then opened, created, renamed and removed relative to that descriptor, never
//! through a symbolic link.

use std::ffi::OsStr;
use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{AtFlags, Mode, OFlags};
use zeroize::Zeroizing;

use crate::files::{Placement, ReadError};

/// A checked, private directory: owned by the effective user, mode 0700.
#[derive(Debug)]
pub struct PrivateDir {
    fd: OwnedFd,
    path: PathBuf,
}

/// Why a directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    #[error("{path} is a symbolic link; refusing to follow it", path = .0.display())]
    Symlink(PathBuf),
    #[error("{path} is not a directory", path = .0.display())]
    NotADirectory(PathBuf),
    #[error("{path} belongs to uid {owner}, not to this user (uid {us})", path = .path.display())]
    NotOurs { path: PathBuf, owner: u32, us: u32 },
    #[error("{path}: {source}", path = .path.display())]
    Io { path: PathBuf, source: io::Error },
}

impl DirError {
    /// Whether the directory is simply not there (nothing cached yet).
    pub fn is_missing(&self) -> bool {
        matches!(self, DirError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }
}

impl PrivateDir {
    /// Opens `path`, creating it (0700, and its missing parents) first if it does not exist.
    pub fn open_or_create(path: &Path) -> Result<PrivateDir, DirError> {
        let io_error = |source| DirError::Io {
            path: path.to_path_buf(),
            source,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            // The parents are the user's own tree (`~/.cache`); only the last component is
            // ours to create and check.
            crate::files::create_private_dir(parent).map_err(io_error)?;
        }
        match rustix::fs::mkdir(path, Mode::from_raw_mode(0o700)) {
            Ok(()) => {}
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(io_error(e.into())),
        }
        PrivateDir::open(path)
    }

    /// Opens an existing directory at `path` without following a symbolic link there, checks
    /// that this user owns it, and makes it 0700 if others could enter it.
    pub fn open(path: &Path) -> Result<PrivateDir, DirError> {
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        let fd = rustix::fs::open(path, flags, Mode::empty()).map_err(|e| match e {
            // With O_DIRECTORY, Linux answers ENOTDIR for a symbolic link as for a file
            // (ELOOP elsewhere): tell them apart for the message.
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR
                if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) =>
            {
                DirError::Symlink(path.to_path_buf())
            }
            rustix::io::Errno::NOTDIR => DirError::NotADirectory(path.to_path_buf()),
            e => DirError::Io {
                path: path.to_path_buf(),
                source: e.into(),
            },
        })?;
        let stat = rustix::fs::fstat(&fd).map_err(|e| DirError::Io {
            path: path.to_path_buf(),
            source: e.into(),
        })?;
        let us = rustix::process::geteuid().as_raw();
        if stat.st_uid != us {
            return Err(DirError::NotOurs {
                path: path.to_path_buf(),
                owner: stat.st_uid,
                us,
            });
        }
        let mode = stat.st_mode & 0o7777;
        if mode & 0o077 != 0 {
            // Through the descriptor: the directory checked above, not whatever the path
            // names by now.
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o700)).map_err(|e| DirError::Io {
                path: path.to_path_buf(),
                source: e.into(),
            })?;
            tracing::info!(
                dir = %path.display(),
                "tightened permissions of a private directory from {mode:03o} to 700"
            );
        }
        Ok(PrivateDir {
            fd,
            path: path.to_path_buf(),
        })
    }

    /// The path it was opened at (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the entry `name` for reading: never through a symbolic link, never blocking on
    /// a FIFO. The caller checks what the file is (its metadata) before reading it.
    pub fn open_entry(&self, name: &str) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
        let fd = rustix::fs::openat(&self.fd, name, flags, Mode::empty()).map_err(|e| {
            if e == rustix::io::Errno::LOOP {
                io::Error::new(io::ErrorKind::InvalidInput, "it is a symbolic link")
            } else {
                io::Error::from(e)
            }
        })?;
        Ok(File::from(fd))
    }

    /// Reads the entry `name` whole, if it is a regular file of at most `cap` bytes.
    pub fn read_entry(&self, name: &str, cap: u64) -> io::Result<(File, Zeroizing<Vec<u8>>)> {
        let mut file = self.open_entry(name)?;
        let data = crate::files::read_opened(&mut file, cap).map_err(ReadError::into_io)?;
        Ok((file, data))
    }

    /// Replaces the entry `name` with a 0600 file holding `data`, atomically and never
    /// through a symbolic link ([`crate::files::write_at`]).
    pub fn write_atomically(&self, name: &str, data: &[u8]) -> io::Result<()> {
        crate::files::write_at(&self.fd, OsStr::new(name), data, 0o600, Placement::Replace)
            .map(|_| ())
    }

    /// Removes the entry `name`; a missing one is not an error.
    pub fn remove(&self, name: &str) -> io::Result<()> {
        match rustix::fs::unlinkat(&self.fd, name, AtFlags::empty()) {
            Ok(()) | Err(rustix::io::Errno::NOENT) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};

    use crate::files::mode_of as mode;

    #[test]
    fn creates_a_private_directory_and_writes_private_entries() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/cache");
        let dir = PrivateDir::open_or_create(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        dir.write_atomically("e.json", b"one").unwrap();
        dir.write_atomically("e.json", b"two").unwrap();
        assert_eq!(mode(&path.join("e.json")), 0o600);
        assert_eq!(&dir.read_entry("e.json", 10).unwrap().1[..], b"two");
        assert!(dir.read_entry("e.json", 2).is_err(), "over the cap");
        // No temporary file is left behind.
        let names: Vec<_> = std::fs::read_dir(&path).unwrap().collect();
        assert_eq!(names.len(), 1);
        dir.remove("e.json").unwrap();
        dir.remove("e.json").unwrap();
        assert!(!path.join("e.json").exists());
    }

    #[test]
    fn a_planted_symlink_is_never_followed_nor_its_target_changed() {
        let tmp = tempfile::tempdir().unwrap();
        let elsewhere = tmp.path().join("attacker");
        std::fs::create_dir(&elsewhere).unwrap();
        std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o777)).unwrap();
        let path = tmp.path().join("cache");
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        let err = PrivateDir::open_or_create(&path).unwrap_err();
        assert!(matches!(err, DirError::Symlink(_)), "{err:?}");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Neither written into nor chmod-ed.
        assert_eq!(std::fs::read_dir(&elsewhere).unwrap().count(), 0);
        assert_eq!(mode(&elsewhere), 0o777);
    }

    #[test]
    fn an_entry_that_is_a_symlink_or_a_fifo_is_not_read() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cache");
        let dir = PrivateDir::open_or_create(&path).unwrap();
        std::fs::write(tmp.path().join("outside"), b"planted").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("outside"), path.join("link.json")).unwrap();
        assert!(dir.read_entry("link.json", 100).is_err());
        rustix::fs::mknodat(
            rustix::fs::CWD,
            path.join("fifo.json"),
            rustix::fs::FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        // Returns at once instead of waiting for a writer.
        assert!(dir.read_entry("fifo.json", 100).is_err());
        // Writing over a planted link replaces the link, not its target.
        dir.write_atomically("link.json", b"ours").unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("outside")).unwrap(),
            b"planted"
        );
    }

    #[test]
    fn a_directory_of_another_user_is_refused() {
        // As root, a directory given to nobody; as anyone else, a system directory root owns.
        let tmp = tempfile::tempdir().unwrap();
        let path = if rustix::process::geteuid().is_root() {
            let path = tmp.path().join("theirs");
            std::fs::create_dir(&path).unwrap();
            std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
            path
        } else {
            PathBuf::from("/usr")
        };
        let owner = std::fs::metadata(&path).unwrap().uid();
        let before = mode(&path);
        let err = PrivateDir::open(&path).unwrap_err();
        assert!(
            matches!(err, DirError::NotOurs { owner: o, .. } if o == owner),
            "{err:?}"
        );
        assert_eq!(mode(&path), before, "never chmod-ed");
    }

    #[test]
    fn a_loose_directory_of_ours_is_tightened_through_the_descriptor() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("cache");
        std::fs::create_dir(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        PrivateDir::open(&path).unwrap();
        assert_eq!(mode(&path), 0o700);
        assert!(
            PrivateDir::open(&tmp.path().join("absent"))
                .unwrap_err()
                .is_missing()
        );
    }
}
