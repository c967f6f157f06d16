//! `healthcheck`: asks a running agent's `/healthz` and exits 0 only when it holds valid
//! credentials. Container probes run it inside the agent's own image (which has no shell or
//! curl), since the agent listens on the pod's loopback only.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::cli::HealthcheckArgs;
use crate::error::Error;

pub fn run(args: &HealthcheckArgs) -> Result<(), Error> {
    let addr = SocketAddr::new(args.bind, args.port);
    let status =
        probe(addr).map_err(|e| Error::io(format!("cannot ask the agent at {addr}"), e))?;
    if status == 200 {
        println!("healthy");
        Ok(())
    } else {
        Err(Error::io(
            format!("the agent at {addr} is unhealthy"),
            std::io::Error::other(format!("/healthz answered {status}: no valid credentials")),
        ))
    }
}

fn probe(addr: SocketAddr) -> std::io::Result<u16> {
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
    let mut head = [0u8; 64];
    let n = stream.read(&mut head)?;
    // `read` never reports more than the buffer it was given.
    let line = String::from_utf8_lossy(head.get(..n).unwrap_or(&head));
    line.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other("not an HTTP answer"))
}
