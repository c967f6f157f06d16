//! Connections: the accept loop and its connection table, per-socket setup (hop limit,
//! no-delay), HTTP/1.1 with keep-alive, the two timeouts, the lifetime and request budget of
//! a connection, and graceful shutdown.
//!
//! hyper's own `header_read_timeout` also runs while a keep-alive connection waits for its
//! next request, so it cannot give a short head timeout and a long idle timeout at once.
//! [`Activity`] tracks which of the two applies: the clock for the head starts at the first
//! byte of a request (or at accept), the idle clock when the last request was answered.
//!
//! Security: every local process is assumed hostile, so a full table never blocks accept
//! (clients waiting in the backlog behind 256 held connections is how a flood starved real
//! clients). When a peer holds [`Limits::max_connections`], one of its connections is
//! closed to make room: the oldest of those that never completed a request (sent nothing, or
//! a slowloris head), else the least recently active (an idle keep-alive connection, or a
//! slow head after earlier requests). A client that sends its request right after connecting
//! is never the oldest, so it is served; one whose keep-alive connection has been answered
//! stays ahead of any number of connections that never were. On the unix socket each uid
//! has its own quota (`SO_PEERCRED`), so one user cannot starve another.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::Request;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use socket2::SockRef;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::watch;
use tokio::task::{AbortHandle, JoinSet};
use tokio::time::Instant;

use super::routes::Handler;
use super::{Limits, ServerStats};

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
    let hops = check_hops(hop_limit)?;
    let sock = SockRef::from(stream);
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

/// The same on the listening socket: the kernel answers a SYN from it, so without this the
/// SYN-ACK would travel with the default TTL however the accepted sockets are set. A
/// dual-stack IPv6 listener gets the IPv4 TTL too.
pub fn set_listener_hop_limit(listener: &TcpListener, hop_limit: u8) -> io::Result<()> {
    let hops = check_hops(hop_limit)?;
    let sock = SockRef::from(listener);
    match listener.local_addr()? {
        SocketAddr::V4(_) => sock.set_ttl_v4(hops),
        SocketAddr::V6(_) => {
            sock.set_unicast_hops_v6(hops)?;
            if sock.only_v6()? {
                Ok(())
            } else {
                sock.set_ttl_v4(hops)
            }
        }
    }
}

fn check_hops(hop_limit: u8) -> io::Result<u32> {
    if hop_limit == 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the hop limit must be 1..=255",
        ));
    }
    Ok(u32::from(hop_limit))
}

/// Whose connection it is, for the per-peer quota: the uid on a unix socket; on TCP every
/// peer is local and anonymous, so all share one quota.
type PeerKey = u32;
const ANY_TCP_PEER: PeerKey = 0;
/// A unix peer whose credentials cannot be read shares a quota with the others like it.
const UNKNOWN_UID: PeerKey = u32::MAX;

/// A listener the accept loop can take streams from.
pub(crate) trait Acceptor: Send {
    type Stream: AsyncRead + AsyncWrite + Send + Unpin + 'static;
    /// The next connection, ready to serve (set up as the transport needs), and its peer.
    fn accept(&mut self) -> impl Future<Output = io::Result<(Self::Stream, PeerKey)>> + Send;
}

pub(crate) struct Tcp {
    pub listener: TcpListener,
    pub hop_limit: u8,
}

impl Acceptor for Tcp {
    type Stream = TcpStream;

    async fn accept(&mut self) -> io::Result<(TcpStream, PeerKey)> {
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
            return Ok((stream, ANY_TCP_PEER));
        }
    }
}

pub(crate) struct Unix {
    pub listener: UnixListener,
}

impl Acceptor for Unix {
    type Stream = UnixStream;

    async fn accept(&mut self) -> io::Result<(UnixStream, PeerKey)> {
        let (stream, _) = self.listener.accept().await?;
        let uid = stream.peer_cred().map_or(UNKNOWN_UID, |c| c.uid());
        Ok((stream, uid))
    }
}

/// The live connections, by task, with what each is doing; owned by the accept loop.
struct Table {
    cap: usize,
    live: HashMap<tokio::task::Id, Slot>,
    per_peer: HashMap<PeerKey, usize>,
}

struct Slot {
    peer: PeerKey,
    activity: Arc<Activity>,
    abort: AbortHandle,
}

impl Table {
    fn new(cap: usize) -> Self {
        Table {
            cap: cap.max(1),
            live: HashMap::new(),
            per_peer: HashMap::new(),
        }
    }

    /// When `peer` holds its whole quota, closes its least recently active connection (the
    /// one waiting longest, for a head or for its next request) and says so.
    fn make_room(&mut self, peer: PeerKey) -> bool {
        if self.per_peer.get(&peer).copied().unwrap_or(0) < self.cap {
            return false;
        }
        // Connections that never completed a request go first (a silent or slowloris flood
        // can only look like that), then the least recently active: a client whose
        // keep-alive connection has served it stays ahead of a flood that reconnects fast.
        let victim = self
            .live
            .iter()
            .filter(|(_, s)| s.peer == peer)
            .min_by_key(|(_, s)| (s.activity.has_served(), s.activity.since()))
            .map(|(id, _)| *id);
        match victim.and_then(|id| self.remove(id)) {
            Some(slot) => {
                slot.abort.abort();
                true
            }
            None => false,
        }
    }

    fn insert(&mut self, peer: PeerKey, activity: Arc<Activity>, abort: AbortHandle) {
        *self.per_peer.entry(peer).or_default() += 1;
        self.live.insert(
            abort.id(),
            Slot {
                peer,
                activity,
                abort,
            },
        );
    }

    fn remove(&mut self, id: tokio::task::Id) -> Option<Slot> {
        let slot = self.live.remove(&id)?;
        if let Some(n) = self.per_peer.get_mut(&slot.peer) {
            *n -= 1;
            if *n == 0 {
                self.per_peer.remove(&slot.peer);
            }
        }
        Some(slot)
    }
}

/// Runs the accept loop until `shutdown` resolves, then stops accepting, lets in-flight
/// requests finish within `limits.shutdown_grace`, aborts what remains, and returns.
pub(crate) async fn serve<A: Acceptor, H: Handler>(
    mut acceptor: A,
    handler: Arc<H>,
    limits: Limits,
    stats: Arc<ServerStats>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut table = Table::new(limits.max_connections);
    let mut connections = JoinSet::new();
    let mut shutdown = pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(ended) = connections.join_next_with_id(), if !connections.is_empty() => {
                let id = match ended {
                    Ok((id, ())) => id,
                    Err(e) => e.id(),
                };
                table.remove(id);
            }
            accepted = acceptor.accept() => match accepted {
                Ok((stream, peer)) => {
                    if table.make_room(peer) {
                        stats.evicted_connections.fetch_add(1, Ordering::Relaxed);
                    }
                    let activity = Arc::new(Activity::new());
                    let (handler, stop) = (handler.clone(), stop_rx.clone());
                    let abort = connections.spawn(connection(
                        stream,
                        handler,
                        limits,
                        activity.clone(),
                        stop,
                    ));
                    table.insert(peer, activity, abort);
                }
                Err(e) => {
                    tracing::warn!(error = %e, "server: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
        }
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
/// service (both polled by the connection's task) update it without locks; the accept loop
/// reads it to pick the connection to close when the table is full.
struct Activity {
    base: Instant,
    /// Top bit: reading a request head. Low bits: nanoseconds since `base`.
    state: AtomicU64,
    /// Requests served on this connection.
    requests: AtomicU32,
}

const READING_HEAD: u64 = 1 << 63;

impl Activity {
    fn new() -> Self {
        // A fresh connection is reading its first head from the start: a client that sends
        // nothing gets the short timeout, not the idle one.
        Activity {
            base: Instant::now(),
            state: AtomicU64::new(READING_HEAD),
            requests: AtomicU32::new(0),
        }
    }

    fn stamp(&self) -> u64 {
        // Saturates after ~292 years.
        u64::try_from(self.base.elapsed().as_nanos()).unwrap_or(READING_HEAD - 1) & !READING_HEAD
    }

    fn reading_head(&self) -> bool {
        self.state.load(Ordering::Relaxed) & READING_HEAD != 0
    }

    /// Whether a request has been answered on this connection.
    fn has_served(&self) -> bool {
        self.requests.load(Ordering::Relaxed) > 0
    }

    /// Since when the connection has waited: for the rest of its head, or for its next request.
    fn since(&self) -> Instant {
        self.base + Duration::from_nanos(self.state.load(Ordering::Relaxed) & !READING_HEAD)
    }

    /// Bytes arrived: if the connection was idle, a new request head has started.
    fn on_read(&self) {
        if !self.reading_head() {
            self.state
                .store(READING_HEAD | self.stamp(), Ordering::Relaxed);
        }
    }

    /// A request head was parsed and is being answered: idle until the next one. Returns
    /// whether this must be the connection's last request (budget or lifetime spent).
    fn on_request(&self, limits: &Limits) -> bool {
        let stamp = self.stamp();
        self.state.store(stamp, Ordering::Relaxed);
        let served = self
            .requests
            .fetch_add(1, Ordering::Relaxed)
            .saturating_add(1);
        served >= limits.max_requests_per_connection
            || Duration::from_nanos(stamp) >= limits.max_connection_lifetime
    }

    fn deadline(&self, limits: &Limits) -> Instant {
        let s = self.state.load(Ordering::Relaxed);
        let since = self.base + Duration::from_nanos(s & !READING_HEAD);
        if s & READING_HEAD != 0 {
            since + limits.header_read_timeout
        } else {
            // An idle connection past its lifetime is closed even if its idle time is not up.
            (since + limits.keep_alive_timeout).min(self.base + limits.max_connection_lifetime)
        }
    }
}

/// The answer to one request; the last one a connection gives says `Connection: close`.
struct Respond {
    answer: Option<super::routes::Answer>,
    last: bool,
}

impl Future for Respond {
    type Output = Result<hyper::Response<super::body::Payload>, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        use super::routes::Answer;
        let mut r = match self.answer.take() {
            Some(Answer::Now(r)) => r,
            Some(Answer::Later(mut f)) => match f.as_mut().poll(cx) {
                Poll::Ready(r) => r,
                Poll::Pending => {
                    self.answer = Some(Answer::Later(f));
                    return Poll::Pending;
                }
            },
            // Polled again after completion: hyper never does.
            None => return Poll::Pending,
        };
        if self.last {
            r.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
        }
        Poll::Ready(Ok(r))
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

/// Serves one connection until the client closes it, a timeout fires, its lifetime or
/// request budget is spent, or shutdown.
async fn connection<S, H>(
    stream: S,
    handler: Arc<H>,
    limits: Limits,
    activity: Arc<Activity>,
    mut stop: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Send + Unpin + 'static,
    H: Handler,
{
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service = {
        let activity = activity.clone();
        // Most answers are computed right here, so the future is ready at its first poll.
        service_fn(move |req: Request<Incoming>| {
            let last = activity.on_request(&limits);
            let (head, _body) = req.into_parts();
            Respond {
                answer: Some(H::respond(&handler, &head)),
                last,
            }
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

    #[tokio::test]
    async fn the_listening_socket_gets_the_hop_limit_too() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        set_listener_hop_limit(&listener, 3).expect("set");
        assert_eq!(SockRef::from(&listener).ttl_v4().expect("ttl"), 3);
        assert!(set_listener_hop_limit(&listener, 0).is_err());
        if let Ok(v6) = TcpListener::bind("[::]:0").await {
            set_listener_hop_limit(&v6, 4).expect("set");
            let sock = SockRef::from(&v6);
            assert_eq!(sock.unicast_hops_v6().expect("hops"), 4);
            if !sock.only_v6().expect("v6only") {
                assert_eq!(sock.ttl_v4().expect("ttl"), 4);
            }
        }
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            keep_alive_timeout: Duration::from_secs(60),
            max_connection_lifetime: Duration::from_secs(300),
            max_requests_per_connection: 3,
            ..Limits::default()
        }
    }

    #[test]
    fn the_request_budget_and_lifetime_end_a_connection() {
        let l = limits();
        let a = Activity::new();
        assert!(!a.on_request(&l));
        assert!(!a.on_request(&l));
        assert!(a.on_request(&l), "the third request is the last");
        // An idle connection is closed at its lifetime even within its idle timeout.
        let short = Limits {
            max_connection_lifetime: Duration::from_secs(10),
            ..l
        };
        let b = Activity::new();
        b.on_request(&short);
        assert!(b.deadline(&short) <= b.base + Duration::from_secs(10));
        let old = Limits {
            max_connection_lifetime: Duration::ZERO,
            ..l
        };
        assert!(Activity::new().on_request(&old), "past its lifetime");
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_closes_the_least_recently_active_connection_of_that_peer() {
        let mut set = JoinSet::new();
        let mut table = Table::new(3);
        let mut handles = Vec::new();
        let mut activities = Vec::new();
        for peer in [7, 7, 7, 8] {
            let a = Arc::new(Activity::new());
            let h = set.spawn(std::future::pending::<()>());
            handles.push(h.clone());
            activities.push(a.clone());
            table.insert(peer, a, h);
            tokio::time::advance(Duration::from_millis(10)).await;
        }
        // The first of peer 7 answered a request last: it is now the most recently active.
        activities[0].on_request(&limits());
        assert!(!table.make_room(8), "peer 8 is under its quota");
        assert!(table.make_room(7));
        assert_eq!(table.live.len(), 3);
        assert!(
            !table.live.contains_key(&handles[1].id()),
            "the oldest waiter goes"
        );
        assert!(table.live.contains_key(&handles[0].id()));
        assert!(
            table.live.contains_key(&handles[3].id()),
            "another peer's stays"
        );
        tokio::task::yield_now().await;
        assert!(handles[1].is_finished(), "aborted");
        assert!(!table.make_room(7), "room was made");
        assert_eq!(table.remove(handles[1].id()).map(|s| s.peer), None);
        assert_eq!(table.remove(handles[0].id()).map(|s| s.peer), Some(7));
        assert_eq!(table.per_peer.get(&7), Some(&1));
        set.abort_all();
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
        a.on_request(&limits);
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
