//! Writing files that may hold secrets (credentials, keys, the container token): directories
//! created 0700, and files put in place whole, with an exact mode, under their final name.
//!
//! Security: the new file is created under a random name with `O_CREAT | O_EXCL |
//! O_NOFOLLOW` (so nothing planted at that name is opened or written through), given its
//! mode with `fchmod` on the descriptor (the umask may only have narrowed it), written and
//! synced, then renamed (or hard-linked) over the final name: a symbolic link planted there
//! is replaced, never followed, and readers see the old file or the new one, never a part.
//! Everything after the directory is opened happens relative to its descriptor.

use std::ffi::{OsStr, OsString};
use std::fs::File;
use std::io::{self, Write as _};
use std::os::fd::AsFd;
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};

/// How [`write_at`] puts the new file under its name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Placement {
    /// Rename over whatever is there (a file, or a symbolic link, which is not followed).
    Replace,
    /// Hard-link into place only if the name is free: whatever is there (even a dangling
    /// symbolic link) stands, and two writers racing leave the first one's file.
    KeepExisting,
}

/// Creates `dir` and its missing parents, 0700. An existing directory is left as it is.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt as _;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
}

/// Replaces `target` with a file of mode `mode` holding `data`, atomically (see the module
/// notes). The directory is named by `target`'s parent; symbolic links on the way there are
/// followed, one at `target` itself is replaced.
pub fn write_atomically(target: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    let (dir, name) = open_parent(target)?;
    write_at(&dir, name, data, mode, Placement::Replace).map(|_| ())
}

/// Creates `target` with mode `mode` holding `data` unless something is already there;
/// `false` when it was (and is left untouched).
pub fn create_atomically(target: &Path, data: &[u8], mode: u32) -> io::Result<bool> {
    let (dir, name) = open_parent(target)?;
    write_at(&dir, name, data, mode, Placement::KeepExisting)
}

/// Puts a file of mode `mode` holding `data` under `name` in the directory `dir`, as
/// `placement` says; `false` when [`Placement::KeepExisting`] found the name taken. The
/// directory is synced afterwards, so the new name survives a crash.
pub fn write_at(
    dir: impl AsFd,
    name: &OsStr,
    data: &[u8],
    mode: u32,
    placement: Placement,
) -> io::Result<bool> {
    let dir = dir.as_fd();
    let (temp, mut file) = create_temp(dir, name, mode)?;
    let placed = (|| {
        file.write_all(data)?;
        file.sync_all()?;
        drop(file);
        match placement {
            Placement::Replace => rustix::fs::renameat(dir, &temp, dir, name).map(|()| true),
            Placement::KeepExisting => {
                match rustix::fs::linkat(dir, &temp, dir, name, AtFlags::empty()) {
                    Ok(()) => Ok(true),
                    Err(rustix::io::Errno::EXIST) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        }
        .map_err(io::Error::from)
    })();
    // After a rename the temporary name is gone already; after a link or a failure it is
    // removed here.
    if placement == Placement::KeepExisting || placed.is_err() {
        let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
    }
    let placed = placed?;
    match rustix::fs::fsync(dir) {
        // Some file systems cannot sync a directory; the file is in place regardless.
        Ok(()) | Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOTSUP) => Ok(placed),
        Err(e) => Err(e.into()),
    }
}

/// The directory holding `target` (opened, symbolic links followed) and `target`'s name.
fn open_parent(target: &Path) -> io::Result<(std::os::fd::OwnedFd, &OsStr)> {
    let name = target.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} does not name a file", target.display()),
        )
    })?;
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let fd = rustix::fs::open(dir, flags, Mode::empty())?;
    Ok((fd, name))
}

/// A new file `.{name}.{random}.tmp` in `dir`, created exclusively and never through a
/// symbolic link, with exactly `mode`.
fn create_temp(
    dir: std::os::fd::BorrowedFd<'_>,
    name: &OsStr,
    mode: u32,
) -> io::Result<(OsString, File)> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mode = Mode::from_raw_mode(mode);
    let mut attempts = 0;
    loop {
        let mut random = [0u8; 8];
        aws_lc_rs::rand::fill(&mut random).map_err(|_| io::Error::other("no randomness"))?;
        let mut temp = OsString::from(".");
        temp.push(name);
        temp.push(format!(".{}.tmp", hex::encode(random)));
        match rustix::fs::openat(dir, &temp, flags, mode) {
            Ok(fd) => {
                // The umask can only narrow the mode; make it exact all the same.
                if let Err(e) = rustix::fs::fchmod(&fd, mode) {
                    drop(fd);
                    let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
                    return Err(e.into());
                }
                return Ok((temp, File::from(fd)));
            }
            Err(rustix::io::Errno::EXIST) if attempts < 8 => attempts += 1,
            Err(e) => return Err(e.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    use crate::files::mode_of as mode;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn replaces_with_the_exact_mode_and_leaves_no_temporary_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        write_atomically(&path, b"one", 0o644).unwrap();
        assert_eq!(mode(&path), 0o644);
        // A looser file already there is replaced by one with the asked mode.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        write_atomically(&path, b"two", 0o600).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(names(tmp.path()), ["f"]);
        let err = write_atomically(Path::new("/"), b"x", 0o600).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    }

    #[test]
    fn a_planted_symlink_is_replaced_not_written_through() {
        let tmp = tempfile::tempdir().unwrap();
        let outside = tmp.path().join("outside");
        std::fs::write(&outside, b"theirs").unwrap();
        std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o644)).unwrap();
        let link = tmp.path().join("key.pem");
        std::os::unix::fs::symlink(&outside, &link).unwrap();
        write_atomically(&link, b"secret", 0o600).unwrap();
        assert_eq!(std::fs::read(&outside).unwrap(), b"theirs");
        assert_eq!(mode(&outside), 0o644, "the link's target is never chmod-ed");
        assert!(!std::fs::symlink_metadata(&link).unwrap().is_symlink());
        assert_eq!(std::fs::read(&link).unwrap(), b"secret");
        assert_eq!(mode(&link), 0o600);
    }

    #[test]
    fn create_keeps_whatever_is_already_there() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("token");
        assert!(create_atomically(&path, b"first", 0o600).unwrap());
        assert_eq!(mode(&path), 0o600);
        assert!(!create_atomically(&path, b"second", 0o600).unwrap());
        assert_eq!(std::fs::read(&path).unwrap(), b"first");
        // A dangling link stands: nothing is created where it points.
        let target = tmp.path().join("elsewhere");
        let link = tmp.path().join("dangling");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        assert!(!create_atomically(&link, b"x", 0o600).unwrap());
        assert!(!target.exists());
        assert_eq!(names(tmp.path()), ["dangling", "token"]);
    }

    #[test]
    fn private_dirs_are_0700_with_their_parents_and_existing_ones_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&tmp.path().join("a")), 0o700);
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
        create_private_dir(&dir).unwrap();
        assert_eq!(mode(&dir), 0o750);
    }
}
