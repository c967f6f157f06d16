//! The three connection floods of issue 11 (keep-alive holders, idle connections,
//! slowloris), for `hostile_http` and the benchmark (`benches/agent.rs` includes this file).
//! Self-contained: no `crate::` paths.

#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

/// One kind of flood connection.
#[derive(Clone, Copy, Debug)]
pub enum Flood {
    /// Keep-alive connections that each send `GET /healthz` every 3 s.
    KeepAlive,
    /// Connections that send nothing.
    Idle,
    /// Connections that send their request head a byte every 300 ms.
    Slowloris,
}

/// Every kind, in the order they are reported.
pub const FLOODS: [Flood; 3] = [Flood::KeepAlive, Flood::Idle, Flood::Slowloris];

/// Flood connection number `n` to `addr` until `stop`, re-opened whenever the agent closes it;
/// `opened` counts every connection made.
pub async fn connection(
    kind: Flood,
    n: usize,
    addr: String,
    stop: Arc<AtomicBool>,
    opened: Arc<AtomicU64>,
) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let head = b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";
    while !stop.load(Ordering::Relaxed) {
        let Ok(mut c) = tokio::net::TcpStream::connect(&addr).await else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        opened.fetch_add(1, Ordering::Relaxed);
        let mut buf = [0u8; 4096];
        match kind {
            Flood::KeepAlive => {
                // Staggered, so requests arrive all the time rather than in waves.
                tokio::time::sleep(Duration::from_millis((n as u64 * 37) % 3000)).await;
                while !stop.load(Ordering::Relaxed) {
                    if c.write_all(head).await.is_err() {
                        break;
                    }
                    // A reply, or the agent closing the connection (while it waited for one).
                    match tokio::time::timeout(Duration::from_secs(3), c.read(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => {}
                        Ok(_) => break,
                        Err(_) => {}
                    }
                    tokio::time::sleep(Duration::from_secs(3)).await;
                }
            }
            Flood::Idle => {
                // Until the agent closes it.
                let _ = c.read(&mut buf).await;
            }
            Flood::Slowloris => {
                for byte in head {
                    if stop.load(Ordering::Relaxed) || c.write_all(&[*byte]).await.is_err() {
                        break;
                    }
                    let closed = tokio::time::timeout(Duration::from_millis(300), c.read(&mut buf));
                    if let Ok(Ok(0) | Err(_)) = closed.await {
                        break;
                    }
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
