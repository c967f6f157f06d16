//! Files whose path someone else may control. Reading: only a regular file is read, never a
//! FIFO, a device, a directory or a socket, and never more than a cap; identity files
//! (certificate, key, chain, PKCS#12) and the shared credentials file go through
//! [`read_regular`]. Writing (in [`write`]): private directories and files replaced or
//! created atomically with an exact mode, never through a planted symbolic link.
//!
//! Security: a FIFO blocks `open` until a writer appears and `/dev/zero` never ends, so a
//! plain `std::fs::read` lets anyone who can plant a path hang the caller or exhaust its
//! memory. Symbolic links are followed on purpose: Kubernetes mounts Secrets through them.

use std::fmt;
use std::fs::{File, FileType};
use std::io::{self, Read as _};
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

use zeroize::Zeroizing;

mod write;

pub use write::{Placement, create_atomically, create_private_dir, write_at, write_atomically};

/// One mebibyte, the unit of the caps.
pub const MIB: u64 = 1024 * 1024;

/// The cap on a certificate, key, chain or PKCS#12 file (real ones are a few KiB).
pub const IDENTITY_CAP: u64 = MIB;

/// The cap on the shared credentials file.
pub const CREDENTIALS_FILE_CAP: u64 = 16 * MIB;

/// What a path turned out to be, when it is not a regular file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    Fifo,
    Socket,
    CharDevice,
    BlockDevice,
    Other,
}

impl FileKind {
    /// `None` for a regular file.
    fn of(file_type: FileType) -> Option<Self> {
        let kind = if file_type.is_file() {
            return None;
        } else if file_type.is_dir() {
            FileKind::Directory
        } else if file_type.is_fifo() {
            FileKind::Fifo
        } else if file_type.is_socket() {
            FileKind::Socket
        } else if file_type.is_char_device() {
            FileKind::CharDevice
        } else if file_type.is_block_device() {
            FileKind::BlockDevice
        } else {
            FileKind::Other
        };
        Some(kind)
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::Fifo => "a FIFO (named pipe)",
            FileKind::Socket => "a socket",
            FileKind::CharDevice => "a character device",
            FileKind::BlockDevice => "a block device",
            FileKind::Other => "not a regular file",
        })
    }
}

/// Why [`read_regular`] refused or failed. Never carries the file's contents.
#[derive(Debug)]
pub enum ReadError {
    /// The OS refused (missing file, permission denied, ...).
    Io(io::Error),
    /// The path names something other than a regular file.
    NotRegular(FileKind),
    /// The file holds more than the cap, in bytes.
    TooLarge { limit: u64 },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReadError::Io(e) => e.fmt(f),
            ReadError::NotRegular(FileKind::Other) => f.write_str("it is not a regular file"),
            ReadError::NotRegular(kind) => write!(f, "it is {kind}, not a regular file"),
            ReadError::TooLarge { limit } => {
                write!(f, "it is larger than the limit of {}", human(*limit))
            }
        }
    }
}

impl ReadError {
    /// As an `io::Error`, for callers whose errors carry one: the OS error itself, or an
    /// `InvalidInput` saying what the path is or how large it is.
    pub fn into_io(self) -> io::Error {
        match self {
            ReadError::Io(e) => e,
            refused => io::Error::new(io::ErrorKind::InvalidInput, refused.to_string()),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ReadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl ReadError {
    /// Whether the file does not exist (callers that create it treat that as empty).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::Io(e) if e.kind() == io::ErrorKind::NotFound)
    }
}

/// `1 MiB`, `16 MiB`, or bytes when not a whole number of MiB.
pub fn human(bytes: u64) -> String {
    if bytes >= MIB && bytes.is_multiple_of(MIB) {
        format!("{} MiB", bytes / MIB)
    } else {
        format!("{bytes} bytes")
    }
}

/// Reads the regular file at `path` (symbolic links followed), at most `cap` bytes; more is
/// an error. The bytes are wiped when dropped, since they may be a private key.
pub fn read_regular(path: &Path, cap: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    // Look before opening: opening a device can have effects of its own (a tape rewinds,
    // a watchdog arms), and a FIFO would block a plain open.
    let meta = std::fs::metadata(path).map_err(ReadError::Io)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    // The path may be swapped between the look and the open: open without blocking and
    // without taking a controlling terminal, then decide on what was actually opened.
    let flags = rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::NOCTTY;
    let mut file = File::options()
        .read(true)
        .custom_flags(flags.bits() as i32)
        .open(path)
        .map_err(|e| opened_error(path, e))?;
    read_opened(&mut file, cap)
}

/// Reads an open file whole, if it is a regular file of at most `cap` bytes: what
/// [`read_regular`] does once the path is open, for callers that open it another way (an
/// entry of a [`crate::private_dir::PrivateDir`]). The bytes are wiped when dropped.
pub fn read_opened(file: &mut File, cap: u64) -> Result<Zeroizing<Vec<u8>>, ReadError> {
    let meta = file.metadata().map_err(ReadError::Io)?;
    if let Some(kind) = FileKind::of(meta.file_type()) {
        return Err(ReadError::NotRegular(kind));
    }
    if meta.len() > cap {
        return Err(ReadError::TooLarge { limit: cap });
    }
    // Room for the whole file and one byte more, so reading to the end never grows (and so
    // never copies) the buffer; the file may still grow while it is read, hence the `take`.
    let room = usize::try_from(meta.len().saturating_add(1)).unwrap_or(usize::MAX);
    let mut data = Zeroizing::new(Vec::with_capacity(room));
    file.take(cap.saturating_add(1))
        .read_to_end(&mut data)
        .map_err(ReadError::Io)?;
    if u64::try_from(data.len()).unwrap_or(u64::MAX) > cap {
        return Err(ReadError::TooLarge { limit: cap });
    }
    Ok(data)
}

/// `open` on a Unix socket fails with ENXIO, which reads "No such device or address":
/// say what the path is instead.
fn opened_error(path: &Path, e: io::Error) -> ReadError {
    if e.raw_os_error() == Some(rustix::io::Errno::NXIO.raw_os_error())
        && let Ok(meta) = std::fs::metadata(path)
        && let Some(kind) = FileKind::of(meta.file_type())
    {
        return ReadError::NotRegular(kind);
    }
    ReadError::Io(e)
}

/// The permission bits of `path` itself (a symbolic link is not followed), for tests.
#[cfg(test)]
pub(crate) fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::symlink_metadata(path)
        .unwrap()
        .permissions()
        .mode()
        & 0o7777
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_up_to_the_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"0123456789").unwrap();
        assert_eq!(&read_regular(&file, 10).unwrap()[..], b"0123456789");
        let err = read_regular(&file, 9).unwrap_err();
        assert!(matches!(err, ReadError::TooLarge { limit: 9 }), "{err:?}");
        assert_eq!(err.to_string(), "it is larger than the limit of 9 bytes");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(&read_regular(&link, 10).unwrap()[..], b"0123456789");
        assert!(
            read_regular(&dir.path().join("absent"), 10)
                .unwrap_err()
                .is_not_found()
        );
    }

    #[test]
    fn refuses_what_is_not_a_regular_file_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )
        .unwrap();
        let socket = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
        for (path, kind) in [
            (fifo.as_path(), FileKind::Fifo),
            (Path::new("/dev/zero"), FileKind::CharDevice),
            (dir.path(), FileKind::Directory),
            (socket.as_path(), FileKind::Socket),
        ] {
            match read_regular(path, MIB) {
                Err(ReadError::NotRegular(k)) => assert_eq!(k, kind, "{}", path.display()),
                other => panic!("{}: {other:?}", path.display()),
            }
        }
        assert_eq!(
            ReadError::NotRegular(FileKind::Fifo).to_string(),
            "it is a FIFO (named pipe), not a regular file"
        );
        assert_eq!(human(16 * MIB), "16 MiB");
    }
}
