//! Files the endpoints own on disk: the unix socket (0600, in a 0700 directory) and the
//! container authorization token file (0600, created once, read on every request so it can
//! be rotated under running consumers; read off the runtime thread, see [`TokenReader`]).

use std::fs;
use std::io;
use std::os::unix::fs::{FileTypeExt as _, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::UnixListener;
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

/// Bytes of randomness in a generated container token (256 bits, 64 hex characters).
const CONTAINER_TOKEN_BYTES: usize = 32;
/// Token files larger than this are not tokens; refuse rather than read them.
const MAX_TOKEN_FILE: u64 = 16 * 1024;
/// A container request waits at most this long for the token file (SDKs time out at 1 s
/// or later; a FIFO or a hung network file system must cost a 503, not a hang).
pub(crate) const TOKEN_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Token reads in flight at once. A read stuck in the kernel (hung NFS) keeps its blocking
/// thread and its permit until it returns: this bounds how many threads such a file can hold.
const TOKEN_READS_IN_FLIGHT: usize = 4;

fn create_private_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => crate::files::create_private_dir(dir),
        _ => Ok(()),
    }
}

/// A sibling of `path` named `.{name}.{pid}.{suffix}`.
fn sibling(path: &Path, suffix: &str) -> io::Result<PathBuf> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".{}.{suffix}", std::process::id()));
    Ok(path.with_file_name(tmp))
}

/// Binds a unix socket at `path` that only the current user can connect to.
///
/// Creates the parent directory (0700) if missing and replaces a stale socket left by a
/// crashed agent; refuses to replace a socket another process still listens on, or a file
/// that is not a socket. The socket is bound under a temporary name, made 0600, then renamed
/// into place, so it is never reachable with looser permissions.
///
/// Refuses a parent directory that other users can write unless it has the sticky bit (as
/// `/tmp` does): there anyone could remove the socket and put their own in its place, and
/// `credential-process` would send them its requests.
pub fn bind_unix(path: &Path) -> io::Result<UnixListener> {
    create_private_parent(path)?;
    check_socket_dir(path)?;
    match fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is in use by a running process", path.display()),
                ));
            }
            tracing::info!(path = %path.display(), "server: removing a stale socket");
            fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} exists and is not a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }

    let tmp = sibling(path, "sock")?;
    let _ = fs::remove_file(&tmp);
    match UnixListener::bind(&tmp) {
        Ok(listener) => {
            let placed = fs::set_permissions(&tmp, fs::Permissions::from_mode(0o600))
                .and_then(|()| fs::rename(&tmp, path));
            if let Err(e) = placed {
                let _ = fs::remove_file(&tmp);
                return Err(e);
            }
            Ok(listener)
        }
        // The temporary name is longer than `path` and may not fit in sun_path (108 bytes):
        // bind directly and tighten right after; the 0700 directory covers the short window.
        Err(_) => {
            let listener = UnixListener::bind(path)?;
            fs::set_permissions(path, fs::Permissions::from_mode(0o600))?;
            Ok(listener)
        }
    }
}

/// The socket's directory and its mode, when other users can write it and it has no sticky
/// bit (a missing directory is fine: [`bind_unix`] creates it 0700).
pub(crate) fn unsafe_socket_dir(path: &Path) -> Option<(PathBuf, u32)> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mode = fs::metadata(dir).ok()?.permissions().mode();
    (mode & 0o002 != 0 && mode & 0o1000 == 0).then(|| (dir.to_path_buf(), mode & 0o7777))
}

fn check_socket_dir(path: &Path) -> io::Result<()> {
    match unsafe_socket_dir(path) {
        Some((dir, mode)) => Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "the directory {} is writable by every user and has no sticky bit (mode {mode:o}): another user could replace the socket",
                dir.display()
            ),
        )),
        None => Ok(()),
    }
}

/// Creates the container authorization token file with a fresh random token if it does not
/// exist yet (an existing file is left as it is, so consumers keep working across restarts).
///
/// The token is 64 hex characters with no trailing newline (botocore and the Rust SDK send
/// the file verbatim, and a newline cannot travel in a header). The file is written under a
/// temporary name and hard-linked into place ([`crate::files::create_atomically`]), so a
/// reader never sees a partial token and two agents starting together cannot overwrite
/// each other's.
pub fn ensure_container_token(path: &Path) -> io::Result<()> {
    if let Ok(meta) = fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            // Not changed behind the operator's back (a deployment may share it on purpose),
            // but anyone who can read it can fetch credentials.
            tracing::warn!(
                path = %path.display(),
                mode = format!("{:o}", meta.permissions().mode() & 0o777),
                "server: the container token file is readable by other users"
            );
        }
        return Ok(());
    }
    if fs::symlink_metadata(path).is_ok() {
        // A dangling symlink: leave it to the operator rather than write through it.
        return Ok(());
    }
    create_private_parent(path)?;
    let mut raw = Zeroizing::new([0u8; CONTAINER_TOKEN_BYTES]);
    aws_lc_rs::rand::fill(raw.as_mut())
        .map_err(|_| io::Error::other("the system random generator failed"))?;
    let token = Zeroizing::new(hex::encode(raw.as_ref()));

    // Hard-linked into place only if the name is still free: someone else's token, made
    // meanwhile, stands.
    if !crate::files::create_atomically(path, token.as_bytes(), 0o600)? {
        return Ok(());
    }
    tracing::info!(path = %path.display(), "server: created the container authorization token file");
    Ok(())
}

/// Why the token file gave no token.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TokenFileError {
    #[error("not read within {}s", TOKEN_READ_TIMEOUT.as_secs())]
    TimedOut,
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads the container token file on the blocking pool, bounded in time and in reads in
/// flight, so that nothing the file turns out to be (a FIFO without a writer, a device, a
/// file on a hung NFS or FUSE mount) stalls the runtime thread.
#[derive(Clone)]
pub(crate) struct TokenReader {
    path: Arc<Path>,
    in_flight: Arc<Semaphore>,
}

impl TokenReader {
    pub(crate) fn new(path: &Path) -> Self {
        TokenReader {
            path: Arc::from(path),
            in_flight: Arc::new(Semaphore::new(TOKEN_READS_IN_FLIGHT)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) async fn read(&self) -> Result<Zeroizing<Vec<u8>>, TokenFileError> {
        self.read_within(TOKEN_READ_TIMEOUT).await
    }

    async fn read_within(&self, limit: Duration) -> Result<Zeroizing<Vec<u8>>, TokenFileError> {
        let read = async {
            let permit = self
                .in_flight
                .clone()
                .acquire_owned()
                .await
                .map_err(|_| TokenFileError::TimedOut)?;
            let path = self.path.clone();
            // The permit moves into the blocking task: it is given back when the read really
            // ends, not when this request stops waiting for it.
            let task = tokio::task::spawn_blocking(move || {
                let read = read_container_token(&path);
                drop(permit);
                read
            });
            match task.await {
                Ok(read) => Ok(read?),
                Err(e) => Err(TokenFileError::Io(io::Error::other(e))),
            }
        };
        tokio::time::timeout(limit, read)
            .await
            .unwrap_or(Err(TokenFileError::TimedOut))
    }
}

/// Reads the current container token: the file's content without trailing whitespace (HTTP
/// strips it from header values, so a token file ending in a newline can still match).
///
/// Symlinks are followed (a Kubernetes secret volume is made of them), but the file reached
/// must be a regular file: it is opened non-blocking so a FIFO does not wait for a writer,
/// then checked with `fstat`, and read only up to the size cap. Blocking (a slow file
/// system): call it off the runtime thread, as [`TokenReader`] does.
pub fn read_container_token(path: &Path) -> io::Result<Zeroizing<Vec<u8>>> {
    let mut buf = crate::files::read_regular(path, MAX_TOKEN_FILE).map_err(|e| match e {
        crate::files::ReadError::Io(e) => e,
        refused => io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the token file cannot be used: {refused}"),
        ),
    })?;
    while buf.last().is_some_and(|b| b.is_ascii_whitespace()) {
        buf.pop();
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[tokio::test]
    async fn bind_unix_makes_a_private_socket_in_a_private_dir() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sock = dir.path().join("run/agent.sock");
        let listener = bind_unix(&sock).expect("bind");
        assert_eq!(mode(&sock), 0o600);
        assert_eq!(mode(&dir.path().join("run")), 0o700);
        assert!(
            fs::symlink_metadata(&sock)
                .expect("meta")
                .file_type()
                .is_socket()
        );
        // Connectable under its final name.
        let _client = tokio::net::UnixStream::connect(&sock)
            .await
            .expect("connect");
        let _ = listener.accept().await.expect("accept");
        // A second agent on the same path is refused while the first listens.
        let again = bind_unix(&sock).expect_err("in use");
        assert_eq!(again.kind(), io::ErrorKind::AddrInUse);
        drop(listener);
        // Now the socket is stale and gets replaced.
        let _listener = bind_unix(&sock).expect("rebind over stale socket");
        assert_eq!(mode(&sock), 0o600);
        // No temporary files left behind.
        let names: Vec<_> = fs::read_dir(dir.path().join("run"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("agent.sock")]);
    }

    #[tokio::test]
    async fn bind_unix_refuses_a_directory_others_can_write_without_the_sticky_bit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let shared = dir.path().join("shared");
        fs::create_dir(&shared).expect("mkdir");
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = bind_unix(&shared.join("agent.sock")).expect_err("unsafe dir");
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            err.to_string().contains(&shared.display().to_string()),
            "{err}"
        );
        assert!(!shared.join("agent.sock").exists());
        // With the sticky bit (as /tmp has), others cannot remove the socket: accepted.
        fs::set_permissions(&shared, fs::Permissions::from_mode(0o1777)).expect("chmod");
        let _listener = bind_unix(&shared.join("agent.sock")).expect("sticky dir");
        // Group-writable only is left to the operator.
        let group = dir.path().join("group");
        fs::create_dir(&group).expect("mkdir");
        fs::set_permissions(&group, fs::Permissions::from_mode(0o770)).expect("chmod");
        let _listener = bind_unix(&group.join("agent.sock")).expect("group dir");
    }

    #[tokio::test]
    async fn bind_unix_refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("not-a-socket");
        fs::write(&path, b"keep me").expect("write");
        let err = bind_unix(&path).expect_err("not a socket");
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&path).expect("read"), b"keep me");
    }

    #[test]
    fn container_token_is_created_once_private_and_without_newline() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("tokens/container-token");
        ensure_container_token(&path).expect("create");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&dir.path().join("tokens")), 0o700);
        let first = fs::read(&path).expect("read");
        assert_eq!(first.len(), 64);
        assert!(first.iter().all(u8::is_ascii_hexdigit));
        ensure_container_token(&path).expect("again");
        assert_eq!(fs::read(&path).expect("read"), first, "kept, not replaced");
        let names: Vec<_> = fs::read_dir(dir.path().join("tokens"))
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names.len(), 1, "no temporary file left: {names:?}");
        let other = dir.path().join("other-token");
        ensure_container_token(&other).expect("create");
        assert_ne!(fs::read(&other).expect("read"), first);
    }

    #[test]
    fn token_files_that_are_not_regular_files_are_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        // Opened without a writer: a blocking open would hang this test.
        let err = read_container_token(&fifo).expect_err("fifo");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        let err = read_container_token(Path::new("/dev/zero")).expect_err("device");
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{err}");
        assert!(read_container_token(dir.path()).is_err(), "directory");
        // A symlink to a regular file is followed (Kubernetes volumes are made of them).
        let real = dir.path().join("real");
        fs::write(&real, b"tok").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&real, &link).expect("symlink");
        assert_eq!(&read_container_token(&link).expect("read")[..], b"tok");
        let to_fifo = dir.path().join("to-fifo");
        std::os::unix::fs::symlink(&fifo, &to_fifo).expect("symlink");
        assert!(read_container_token(&to_fifo).is_err());
    }

    #[tokio::test]
    async fn a_stuck_read_costs_a_bounded_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        fs::write(&path, b"tok").expect("write");
        let reader = TokenReader::new(&path);
        assert_eq!(&reader.read().await.expect("read")[..], b"tok");
        // Every read slot held by reads stuck in the kernel: the next one times out.
        let held = reader
            .in_flight
            .clone()
            .acquire_many_owned(TOKEN_READS_IN_FLIGHT as u32)
            .await
            .expect("permits");
        let started = std::time::Instant::now();
        let r = reader.read_within(Duration::from_millis(100)).await;
        assert!(matches!(r, Err(TokenFileError::TimedOut)), "{r:?}");
        assert!(started.elapsed() < Duration::from_secs(1));
        drop(held);
        assert!(reader.read().await.is_ok());
    }

    #[test]
    fn reading_the_token_strips_trailing_whitespace_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("t");
        fs::write(&path, b" abc def\r\n").expect("write");
        assert_eq!(&read_container_token(&path).expect("read")[..], b" abc def");
        fs::write(&path, vec![b'a'; MAX_TOKEN_FILE as usize + 1]).expect("write");
        assert!(read_container_token(&path).is_err());
        assert!(read_container_token(&dir.path().join("missing")).is_err());
    }
}
