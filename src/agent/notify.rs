//! systemd readiness notification (`sd_notify`): `READY=1` once the first credentials are
//! in, `STOPPING=1` on shutdown, `RELOADING=1` around SIGHUP. A no-op without `NOTIFY_SOCKET`.

use std::os::unix::net::UnixDatagram;

/// Sends one notification; failures are logged, never fatal (the service still works).
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        notify_to(&path, state);
    }
}

/// [`notify`] with the socket given: tests call it, as changing the environment of a
/// multi-threaded test process is `unsafe`.
fn notify_to(path: &std::ffi::OsStr, state: &str) {
    let result = UnixDatagram::unbound().and_then(|socket| {
        let bytes = path.as_encoded_bytes();
        if let Some(abstract_name) = bytes.strip_prefix(b"@") {
            // Linux abstract socket namespace: the name starts with a NUL byte.
            use std::os::linux::net::SocketAddrExt as _;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(abstract_name)?;
            socket.send_to_addr(state.as_bytes(), &addr)
        } else {
            socket.send_to(state.as_bytes(), path)
        }
    });
    if let Err(e) = result {
        tracing::warn!(error = %e, state, "cannot notify systemd");
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn sends_the_state_to_the_notify_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let receiver = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        super::notify_to(path.as_os_str(), "READY=1");
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
