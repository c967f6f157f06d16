//! Connections: the accept loop (bounded by a semaphore), per-socket setup (hop limit,
//! no-delay), HTTP/1.1 with keep-alive, the two timeouts, and graceful shutdown.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its
//! next request, so it cannot give a short head timeout and a long idle timeout at once.
//! [`Activity`] tracks which of the two applies: the clock for the head starts at the first
//! byte of a request (or at accept), the idle clock when the last request was answered.

use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::Limits;
use super::routes::Handler;

/// Headers per request; SDK requests carry fewer than ten.
const MAX_HEADERS: usize = 64;
/// Pause after a failed accept (usually EMFILE) instead of spinning.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Sets the IPv4 TTL / IPv6 unicast hop limit of outgoing packets on `stream`, so responses
/// die a few routers away (the Go helper's and EC2's defence against forwarded requests).
///
/// On an IPv6 socket talking to an IPv4 peer (dual-stack, `::ffff:a.b.c.d`) the packets are
/// IPv4, so the IPv4 TTL is set as well.
pub fn set_hop_limit(stream: &TcpStream, hop_limit: u8) -> io::Result<()> {
    if hop_limit == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the hop limit must be 1..=255",
        ));
    }
    let sock = SockRef::from(stream);
    let hops = u32::from(hop_limit);
    match stream.local_addr()? {
        SocketAddr::V4(_) => sock.set_ttl_v4(hops),
        SocketAddr::V6(_) => {
            sock.set_unicast_hops_v6(hops)?;
            let mapped = matches!(stream.peer_addr()?, SocketAddr::V6(p) if p.ip().to_ipv4_mapped().is_some());
            if mapped {
                sock.set_ttl_v4(hops)
            } else {
                Ok(())
            }
        }
    }
}

/// A listener the accept loop can take streams from.
pub(crate) trait Acceptor: Send {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// The next connection, ready to serve (set up as the transport needs).
    fn accept(&mut self) -> impl Future<Output = io::Result<Self::Stream>> + Send;
}

pub(crate) struct Tcp {
    pub listener: TcpListener,
    pub hop_limit: u8,
}

impl Acceptor for Tcp {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<TcpStream> {
        loop {
            let (stream, peer) = self.listener.accept().await?;
            // Fail closed: a connection whose responses could travel further than configured
            // is dropped rather than served.
            if let Err(e) = set_hop_limit(&stream, self.hop_limit) {
                tracing::warn!(%peer, error = %e, "server: cannot set the hop limit; dropping the connection");
                continue;
            }
            // One write per response anyway; no-delay keeps Nagle from holding the last bytes.
            let _ = stream.set_nodelay(true);
            return Ok(stream);
        }
    }
}

pub(crate) struct Unix {
    pub listener: UnixListener,
}

impl Acceptor for Unix {
    type Stream = UnixStream;

    async fn accept(&mut self) -> io::Result<UnixStream> {
        let (stream, _) = self.listener.accept().await?;
        Ok(stream)
    }
}

/// Runs the accept loop until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish within `limits.shutdown_grace`, aborts what remains, and returns.
pub(crate) async fn serve<A: Acceptor, H: Handler>(
    mut acceptor: A,
    handler: Arc<H>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    'accepting: loop {
        // Take a slot before accepting: when all are in use, new clients wait in the kernel's
        // backlog instead of being accepted and dropped.
        let permit = tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
            permit = slots.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let stream = loop {
            tokio::select! {
                () = &mut shutdown => break 'accepting,
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
                accepted = acceptor.accept() => match accepted {
                    Ok(stream) => break stream,
                    Err(e) => {
                        tracing::warn!(error = %e, "server: accept failed");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                },
            }
        };
        let (handler, stop) = (handler.clone(), stop_rx.clone());
        connections.spawn(async move {
            connection(stream, handler, limits, stop).await;
            drop(permit);
        });
    }
    // Close the listener first: new clients are refused at once instead of waiting in the
    // backlog through the grace period.
    drop(acceptor);
    let _ = stop_tx.send(true);
    let in_flight = connections.len();
    let drained = tokio::time::timeout(limits.shutdown_grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            remaining = connections.len(),
            "server: connections still open after the shutdown grace period; closing them"
        );
        connections.shutdown().await;
    }
    tracing::debug!(in_flight, "server: stopped");
    Ok(())
}

/// What the connection is waiting for, and since when. One atomic so the IO wrapper and the
/// service (both polled by the connection's task) update it without locks.
struct Activity {
    base: Instant,
    /// Top bit: reading a request head. Low bits: nanoseconds since `base`.
    state: AtomicU64,
}

const READING_HEAD: u64 = 1 << 63;

impl Activity {
    fn new() -> Self {
        // A fresh connection is reading its first head from the start: a client that sends
        // nothing gets the short timeout, not the idle one.
        Activity {
            base: Instant::now(),
            state: AtomicU64::new(READING_HEAD),
        }
    }

    fn stamp(&self) -> u64 {
        // Saturates after ~292 years.
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(READING_HEAD - 1) & !READING_HEAD
    }

    fn reading_head(&self) -> bool {
        self.state.load(Ordering::Relaxed) & READING_HEAD != 0
    }

    /// Bytes arrived: if the connection was idle, a new request head has started.
    fn on_read(&self) {
        if !self.reading_head() {
            self.state
                .store(READING_HEAD | self.stamp(), Ordering::Relaxed);
        }
    }

    /// A request head was parsed and answered: idle until the next one.
    fn on_request(&self) {
        self.state.store(self.stamp(), Ordering::Relaxed);
    }

    fn deadline(&self, limits: &Limits) -> Instant {
        let s = self.state.load(Ordering::Relaxed);
        let since = self.base + Duration::from_nanos(s & !READING_HEAD);
        since
            + if s & READING_HEAD != 0 {
                limits.header_read_timeout
            } else {
                limits.keep_alive_timeout
            }
    }
}

/// The stream with read activity reported to [`Activity`].
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

enum Ended {
    Closed(Result<(), hyper::Error>),
    HeadTimeout,
    IdleTimeout,
}

/// Serves one connection until the client closes it, a timeout fires, or shutdown.
async fn connection<S, H>(
    stream: S,
    handler: Arc<H>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        // The answer is computed right here (handlers never wait), so the future is ready.
        service_fn(move |req: Request<Incoming>| {
            activity.on_request();
            std::future::ready(Ok::<_, Infallible>(handler.respond(
                req.method(),
                req.uri().path(),
                req.headers(),
            )))
        })
    };
    let mut builder = http1::Builder::new();
    builder
        // Replaced by `Activity` (see the module docs).
        .header_read_timeout(None)
        .keep_alive(true)
        .max_headers(MAX_HEADERS)
        .max_header_size(limits.max_head_bytes)
        // Room for one maximal head plus pipelined bytes; hyper refuses less than 8 KiB.
        .max_buf_size((limits.max_head_bytes.saturating_mul(2)).max(8 * 1024));
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut stopped = pin!(stop.changed());
    let mut stopping = false;
    let mut armed = activity.deadline(&limits);
    let mut timer = pin!(tokio::time::sleep_until(armed));

    let ended = poll_fn(|cx| {
        if !stopping && stopped.as_mut().poll(cx).is_ready() {
            stopping = true;
            // Finishes the request in flight, then closes; an idle connection closes now.
            conn.as_mut().graceful_shutdown();
        }
        if let Poll::Ready(result) = conn.as_mut().poll(cx) {
            return Poll::Ready(Ended::Closed(result));
        }
        // The timer is only moved earlier here; when it fires early (the deadline moved
        // later since), it is re-armed. That keeps the per-request cost to two atomic stores.
        let due = activity.deadline(&limits);
        if due < armed {
            armed = due;
            timer.as_mut().reset(due);
        }
        while timer.as_mut().poll(cx).is_ready() {
            let due = activity.deadline(&limits);
            if due <= Instant::now() {
                return Poll::Ready(if activity.reading_head() {
                    Ended::HeadTimeout
                } else {
                    Ended::IdleTimeout
                });
            }
            armed = due;
            timer.as_mut().reset(due);
        }
        Poll::Pending
    })
    .await;
    match ended {
        Ended::Closed(Ok(())) => {}
        Ended::Closed(Err(e)) => {
            tracing::debug!(error = %e, "server: connection ended with an error")
        }
        Ended::HeadTimeout => {
            tracing::debug!("server: closed a connection that did not send a request head in time")
        }
        Ended::IdleTimeout => tracing::trace!("server: closed an idle keep-alive connection"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn pair(bind: &str) -> io::Result<(TcpStream, TcpStream)> {
        let listener = TcpListener::bind(bind).await?;
        let addr = listener.local_addr()?;
        let target = if addr.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], addr.port()))
        } else {
            addr
        };
        // Bounded: where a dual-stack connect fails, accept would otherwise wait forever.
        let accept = tokio::time::timeout(Duration::from_secs(2), listener.accept());
        let (client, accepted) = tokio::join!(TcpStream::connect(target), accept);
        let accepted = accepted.map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
        Ok((client?, accepted.0))
    }

    #[tokio::test]
    async fn hop_limit_is_set_on_an_ipv4_socket() {
        let (_client, server) = pair("127.0.0.1:0").await.expect("pair");
        set_hop_limit(&server, 3).expect("set");
        assert_eq!(SockRef::from(&server).ttl_v4().expect("ttl"), 3);
        set_hop_limit(&server, 64).expect("set");
        assert_eq!(SockRef::from(&server).ttl_v4().expect("ttl"), 64);
        assert!(set_hop_limit(&server, 0).is_err());
    }

    #[tokio::test]
    async fn hop_limit_is_set_on_ipv6_and_dual_stack_sockets() {
        // Skipped quietly where the host has no IPv6.
        if let Ok((_client, server)) = pair("[::1]:0").await {
            set_hop_limit(&server, 5).expect("set");
            assert_eq!(SockRef::from(&server).unicast_hops_v6().expect("hops"), 5);
        }
        if let Ok((_client, server)) = pair("[::]:0").await {
            assert!(matches!(
                server.peer_addr().expect("peer"),
                SocketAddr::V6(_)
            ));
            set_hop_limit(&server, 7).expect("set");
            assert_eq!(SockRef::from(&server).unicast_hops_v6().expect("hops"), 7);
            assert_eq!(SockRef::from(&server).ttl_v4().expect("ttl"), 7);
        }
    }

    #[test]
    fn activity_switches_between_head_and_idle_deadlines() {
        let limits = Limits {
            header_read_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(60),
            ..Limits::default()
        };
        let a = Activity::new();
        assert!(a.reading_head());
        let first = a.deadline(&limits);
        assert!(first <= a.base + Duration::from_secs(5) + Duration::from_millis(1));
        a.on_request();
        assert!(!a.reading_head());
        assert!(a.deadline(&limits) >= a.base + Duration::from_secs(60));
        a.on_read();
        assert!(a.reading_head());
        let head = a.deadline(&limits);
        assert!(head < a.base + Duration::from_secs(6));
        // More bytes of the same head do not extend its deadline.
        a.on_read();
        assert_eq!(a.deadline(&limits), head);
    }
}
