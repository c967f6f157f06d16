//! Wake-ups when something changes in the directories that hold the identity files.
//!
//! The parent directories are watched, not the files: a Kubernetes Secret volume swaps its
//! `..data` symlink and a renewal job renames a new file into place, and neither touches the
//! inode a file watch would follow. Events are only a hint to compare stamps, so which file
//! an event names does not matter, and an overflowed queue is just another wake-up.
//!
//! rustix's inotify is used (a safe wrapper of the three syscalls, already in the dependency
//! tree); the descriptor is non-blocking and polled through tokio's `AsyncFd`.

use std::collections::BTreeMap;
use std::io;
use std::mem::MaybeUninit;
use std::os::fd::OwnedFd;
use std::path::PathBuf;

use rustix::fs::inotify::{self, CreateFlags, ReadFlags, WatchFlags};
use rustix::io::Errno;
use tokio::io::unix::AsyncFd;

/// An inotify instance watching a set of directories.
pub struct DirWatcher {
    fd: AsyncFd<OwnedFd>,
    /// `None` while [`Watches::set`] runs away from the runtime.
    watches: Option<Watches>,
}

/// The watch list, which can be changed from another thread: adding a watch resolves a
/// path, which may block on a stalled network filesystem.
pub struct Watches {
    /// A duplicate of the watcher's descriptor (same inotify instance).
    fd: OwnedFd,
    /// Directory -> watch descriptor.
    watched: BTreeMap<PathBuf, i32>,
}

impl DirWatcher {
    pub fn new() -> io::Result<Self> {
        let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK)?;
        let watches = Watches {
            fd: fd.try_clone()?,
            watched: BTreeMap::new(),
        };
        // Deprecated because an arbitrary `AsRawFd` may change or close its descriptor
        // behind the reactor's back; an `OwnedFd` owned by the `AsyncFd` cannot, and the
        // replacement (`register`) is `unsafe` for that same reason alone.
        #[allow(deprecated)]
        let fd = AsyncFd::new(fd)?;
        Ok(DirWatcher {
            fd,
            watches: Some(watches),
        })
    }

    /// Takes the watch list out, to change it on another thread; give it back with
    /// [`DirWatcher::put`]. A new, empty list is made if the last one was not given back
    /// (its thread stalled): existing watches stay and are found again by `set`.
    pub fn take(&mut self) -> io::Result<Watches> {
        match self.watches.take() {
            Some(w) => Ok(w),
            None => Ok(Watches {
                fd: self.fd.get_ref().try_clone()?,
                watched: BTreeMap::new(),
            }),
        }
    }

    pub fn put(&mut self, watches: Watches) {
        self.watches = Some(watches);
    }

    /// Whether any directory is watched.
    pub fn is_watching(&self) -> bool {
        self.watches.as_ref().is_some_and(|w| !w.watched.is_empty())
    }

    /// Waits for at least one event, then drains the queue.
    pub async fn changed(&mut self) -> io::Result<()> {
        let mut buf = [MaybeUninit::<u8>::uninit(); 4096];
        loop {
            let mut guard = self.fd.readable().await?;
            let mut any = false;
            let mut reader = inotify::Reader::new(guard.get_inner(), &mut buf);
            loop {
                match reader.next() {
                    // IN_IGNORED only reports a watch going away (ours removed, or its
                    // directory deleted, which the parent's watch reports on its own).
                    Ok(event) => any |= !event.events().contains(ReadFlags::IGNORED),
                    Err(Errno::AGAIN) => break,
                    Err(e) => return Err(e.into()),
                }
            }
            guard.clear_ready();
            if any {
                return Ok(());
            }
        }
    }
}

impl Watches {
    /// Watches exactly `dirs` from now on. A directory that cannot be watched (gone, or
    /// no permission) is skipped: the stamp check before each CreateSession still covers it.
    pub fn set(&mut self, dirs: &[PathBuf]) {
        let stale: Vec<PathBuf> = self
            .watched
            .keys()
            .filter(|d| !dirs.contains(d))
            .cloned()
            .collect();
        for dir in stale {
            if let Some(wd) = self.watched.remove(&dir) {
                // Fails harmlessly when the kernel already dropped it (directory removed).
                let _ = inotify::remove_watch(&self.fd, wd);
            }
        }
        let mask = WatchFlags::CLOSE_WRITE
            | WatchFlags::MOVED_TO
            | WatchFlags::MOVED_FROM
            | WatchFlags::CREATE
            | WatchFlags::DELETE
            | WatchFlags::ATTRIB
            | WatchFlags::DELETE_SELF
            | WatchFlags::MOVE_SELF
            | WatchFlags::ONLYDIR;
        for dir in dirs {
            // Added again every time: a directory replaced under the same name (the
            // kubelet's timestamped directories) needs a new watch, and re-adding an existing
            // one only returns the same descriptor.
            match inotify::add_watch(&self.fd, dir, mask) {
                Ok(wd) => {
                    self.watched.insert(dir.clone(), wd);
                }
                Err(e) => {
                    self.watched.remove(dir);
                    tracing::debug!(dir = %dir.display(), error = %e, "cannot watch a directory of the identity files");
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn sees_a_rename_into_a_watched_directory() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = DirWatcher::new().unwrap();
        let mut list = w.take().unwrap();
        list.set(&[dir.path().to_path_buf()]);
        w.put(list);
        assert!(w.is_watching());
        std::fs::write(dir.path().join("tmp"), "x").unwrap();
        std::fs::rename(dir.path().join("tmp"), dir.path().join("cert.pem")).unwrap();
        tokio::time::timeout(Duration::from_secs(5), w.changed())
            .await
            .expect("an event within 5 s")
            .unwrap();
        // Unwatched: nothing more is seen.
        let mut list = w.take().unwrap();
        list.set(&[]);
        w.put(list);
        assert!(!w.is_watching());
        std::fs::write(dir.path().join("other"), "y").unwrap();
        assert!(
            tokio::time::timeout(Duration::from_millis(300), w.changed())
                .await
                .is_err()
        );
    }
}
