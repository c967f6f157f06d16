//! The agent's HTTP endpoints against a hostile local machine (issue 11), through the built
//! binary (`serve` against `emulate`) on 127.0.0.1: DNS rebinding (the `Host` rule on every
//! route), the three connection floods with a legitimate client measured during each, IMDS
//! token eviction, a FIFO in place of the container token file, the hop limit on the
//! listening socket, and an unsafe socket directory.
//!
//! File descriptors: each flood opens 320 sockets in this process and the agent holds at most
//! 256 (its connection cap) plus a few; both stay far below the usual limit of 1024.

use std::io::{self, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::support::flood::{self, Flood};
use crate::support::raw_http;
use crate::support::*;

/// Connections each flood keeps open (the agent's cap is 256).
const FLOOD: usize = 320;
/// How long the legitimate client is measured during a flood.
const MEASURE: Duration = Duration::from_secs(7);
/// The SDKs' own timeout: an answer later than this is a failure for them.
const ANSWER_WITHIN: Duration = Duration::from_secs(1);

// ---------------------------------------------------------------------------------------
// A raw HTTP/1.1 client: exactly the bytes we choose, bounded in time.

struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Conn {
    fn open(addr: &str, limit: Duration) -> io::Result<Conn> {
        let addr: SocketAddr = addr.parse().map_err(io::Error::other)?;
        let stream = TcpStream::connect_timeout(&addr, limit)?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::new(),
        })
    }

    /// Sends `raw` and reads one response before `deadline`: status and body.
    fn exchange(&mut self, raw: &[u8], deadline: Instant) -> io::Result<(u16, String)> {
        self.stream.write_all(raw)?;
        loop {
            if let Some(r) = self.parse()? {
                return Ok(r);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::ErrorKind::TimedOut.into());
            }
            self.stream.set_read_timeout(Some(left))?;
            let mut chunk = [0u8; 8192];
            let n = self.stream.read(&mut chunk)?;
            if n == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    fn parse(&mut self) -> io::Result<Option<(u16, String)>> {
        let Some((head_end, total)) = raw_http::complete(&self.buf) else {
            return Ok(None);
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end - 4]).into_owned();
        let (status, _) = raw_http::parse_head(&head)
            .ok_or_else(|| io::Error::other(format!("bad response {head:?}")))?;
        let body = String::from_utf8_lossy(&self.buf[head_end..total]).into_owned();
        self.buf.drain(..total);
        Ok(Some((status, body)))
    }
}

/// A request head with the given Host lines (none, one or several) and headers.
fn request(method: &str, path: &str, hosts: &[&str], headers: &[(&str, &str)]) -> String {
    let mut r = format!("{method} {path} HTTP/1.1\r\n");
    for h in hosts {
        r.push_str(&format!("Host: {h}\r\n"));
    }
    for (k, v) in headers {
        r.push_str(&format!("{k}: {v}\r\n"));
    }
    if method == "PUT" {
        r.push_str("Content-Length: 0\r\n");
    }
    r.push_str("\r\n");
    r
}

/// One request on a fresh connection, answered within 5 s.
fn once(addr: &str, raw: &str) -> (u16, String) {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut c = Conn::open(addr, Duration::from_secs(5)).expect("connect");
    c.exchange(raw.as_bytes(), deadline).expect("answered")
}

fn port(addr: &str) -> u16 {
    addr.rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .expect("port")
}

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"))
}

/// `serve` with a container token file, against a fresh `emulate`.
struct Setup {
    agent: Agent,
    _emu: Emulator,
    _pki: tempfile::TempDir,
    dir: tempfile::TempDir,
    token_file: std::path::PathBuf,
}

fn setup(extra: &[&str]) -> Setup {
    let (pki, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("container-token");
    let mut args = vec![
        "--no-socket".to_string(),
        "--container-token-file".into(),
        path(&token_file),
    ];
    args.extend(extra.iter().map(|s| s.to_string()));
    let agent = Agent::start(
        &serve_args(&m, &emu, &[])
            .into_iter()
            .chain(args)
            .collect::<Vec<_>>(),
        &[],
    );
    Setup {
        agent,
        _emu: emu,
        _pki: pki,
        dir,
        token_file,
    }
}

fn imds_token(addr: &str, host: &str, ttl: &str) -> String {
    let (status, body) = once(
        addr,
        &request(
            "PUT",
            "/latest/api/token",
            &[host],
            &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
        ),
    );
    assert_eq!(status, 200, "{body}");
    body
}

// ---------------------------------------------------------------------------------------
// DNS rebinding

/// Method and path of a route.
type Route = (&'static str, String);

/// The six routes an SDK or a probe uses, with every header they need.
fn routes(s: &Setup, own: &str) -> (Vec<Route>, Vec<(String, String)>) {
    let token = imds_token(&s.agent.addr, own, "600");
    let container = std::fs::read_to_string(&s.token_file).unwrap();
    let headers = vec![
        ("X-aws-ec2-metadata-token".to_string(), token),
        ("X-aws-ec2-metadata-token-ttl-seconds".into(), "60".into()),
        ("Authorization".into(), container),
    ];
    let role = ROLE.rsplit('/').next().unwrap();
    let routes = vec![
        ("PUT", "/latest/api/token".to_string()),
        ("GET", "/latest/meta-data/iam/security-credentials/".into()),
        (
            "GET",
            format!("/latest/meta-data/iam/security-credentials/{role}"),
        ),
        ("GET", "/latest/meta-data/placement/region".into()),
        ("GET", "/v1/credentials".into()),
        ("GET", "/healthz".into()),
    ];
    (routes, headers)
}

fn refs(headers: &[(String, String)]) -> Vec<(&str, &str)> {
    headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

fn assert_forbidden(status: u16, body: &str, what: &str) {
    assert_eq!(status, 403, "{what}: {body}");
    let v = json(body);
    assert_eq!(v["code"], "Forbidden", "{what}: {body}");
    assert!(v["message"].as_str().unwrap().contains("Host"), "{body}");
    assert!(
        !body.contains("evil") && !body.contains("AccessKeyId"),
        "{body}"
    );
}

#[test]
fn a_foreign_host_is_refused_on_every_route_and_the_agents_own_names_pass() {
    let s = setup(&[]);
    let addr = s.agent.addr.clone();
    let p = port(&addr);
    let own = format!("127.0.0.1:{p}");
    let (routes, headers) = routes(&s, &own);
    let headers = refs(&headers);

    // What a rebinding page sends: its own name, with or without the agent's port.
    let foreign = [
        format!("evil.example:{p}"),
        "evil.example".into(),
        format!("localhost.evil.example:{p}"),
        format!("localhost:{}", p.wrapping_add(1).max(1)),
        "127.0.0.1:80".to_string(),
        format!("10.1.2.3:{p}"),
    ];
    for (method, path) in &routes {
        for host in &foreign {
            let (status, body) = once(&addr, &request(method, path, &[host], &headers));
            assert_forbidden(status, &body, &format!("{method} {path} Host: {host}"));
        }
        // No Host at all on HTTP/1.1, and two of them.
        let (status, body) = once(&addr, &request(method, path, &[], &headers));
        assert_forbidden(status, &body, &format!("{method} {path} without Host"));
        let (status, body) = once(
            &addr,
            &request(method, path, &[&own, "evil.example"], &headers),
        );
        assert_forbidden(status, &body, &format!("{method} {path} with two Hosts"));
        // An absolute target naming another host.
        let target = format!("http://evil.example{path}");
        let (status, body) = once(&addr, &request(method, &target, &[&own], &headers));
        assert_forbidden(status, &body, &format!("{method} {target}"));
    }

    // Every form an SDK or a local client uses.
    let allowed = [
        "localhost".to_string(),
        format!("localhost:{p}"),
        format!("LocalHost.:{p}"),
        "127.0.0.1".into(),
        own.clone(),
        format!("[::1]:{p}"),
        "[::1]".into(),
        "169.254.169.254".into(),
        "169.254.169.254:80".into(),
        format!("169.254.169.254:{p}"),
        "[fd00:ec2::254]".into(),
        "[fd00:ec2::254]:80".into(),
        "169.254.170.2".into(),
        "169.254.170.2:80".into(),
        "169.254.170.23".into(),
    ];
    for host in &allowed {
        for (method, path) in &routes {
            let (status, body) = once(&addr, &request(method, path, &[host], &headers));
            assert_eq!(status, 200, "{method} {path} Host: {host}: {body}");
        }
    }
    // HTTP/1.0 may omit Host (no browser does).
    let (status, _) = once(&addr, "GET /healthz HTTP/1.0\r\n\r\n");
    assert_eq!(status, 200);
}

#[test]
fn allow_host_adds_names_to_every_route() {
    let s = setup(&[
        "--allow-host",
        "agent.internal",
        "--allow-host",
        "Sidecar.Local.:8080",
    ]);
    let addr = s.agent.addr.clone();
    let p = port(&addr);
    let (routes, headers) = routes(&s, "localhost");
    let headers = refs(&headers);
    for host in [
        "agent.internal".to_string(),
        format!("AGENT.internal:{p}"),
        "sidecar.local:8080".into(),
        "sidecar.local".into(),
    ] {
        for (method, path) in &routes {
            let (status, body) = once(&addr, &request(method, path, &[&host], &headers));
            assert_eq!(status, 200, "{method} {path} Host: {host}: {body}");
        }
    }
    // Given without a port, a name is not accepted with another port than the agent's.
    for host in ["agent.internal:8080", "other.internal"] {
        let (status, body) = once(&addr, &request("GET", "/healthz", &[host], &[]));
        assert_forbidden(status, &body, host);
    }
}

#[test]
fn bad_allow_host_values_are_refused_at_start_with_exit_2() {
    for bad in [
        "evil example",
        "*.example.com",
        "host:99999",
        "http://host/",
    ] {
        let out = run(agent()
            .args(["serve", "--no-socket", "--allow-host", bad])
            .args([
                "--certificate",
                "/nonexistent",
                "--private-key",
                "/nonexistent",
            ]));
        assert_eq!(out.status.code(), Some(2), "{bad}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("--allow-host") && err.contains(bad), "{err}");
    }
}

// ---------------------------------------------------------------------------------------
// Connection floods

/// What the legitimate client saw during a flood.
struct Measured {
    asked: usize,
    in_time: usize,
    latencies: Vec<Duration>,
    /// Misses on a fresh connection and on the kept-alive one.
    missed_fresh: usize,
    missed_kept: usize,
}

impl Measured {
    fn percentile(&self, p: f64) -> Duration {
        let mut l = self.latencies.clone();
        l.sort();
        l.get(((l.len() as f64 * p).ceil() as usize).saturating_sub(1))
            .copied()
            .unwrap_or(Duration::MAX)
    }
}

/// An SDK-like client for `MEASURE`: a credentials GET every 50 ms, alternately on a fresh
/// connection and on one it keeps alive (re-opened when the agent closed it, which counts as
/// a miss if that request was not answered in time).
fn legitimate_client(addr: &str, token: &str) -> Measured {
    let get = request(
        "GET",
        &format!(
            "/latest/meta-data/iam/security-credentials/{}",
            ROLE.rsplit('/').next().unwrap()
        ),
        &[&format!("127.0.0.1:{}", port(addr))],
        &[("X-aws-ec2-metadata-token", token)],
    );
    let mut kept: Option<Conn> = None;
    let mut m = Measured {
        asked: 0,
        in_time: 0,
        latencies: Vec::new(),
        missed_fresh: 0,
        missed_kept: 0,
    };
    let end = Instant::now() + MEASURE;
    let mut i = 0u32;
    while Instant::now() < end {
        i += 1;
        let started = Instant::now();
        let deadline = started + ANSWER_WITHIN;
        let answered = if i.is_multiple_of(2) {
            Conn::open(addr, ANSWER_WITHIN).and_then(|mut c| c.exchange(get.as_bytes(), deadline))
        } else {
            let c = match kept.take() {
                Some(c) => Ok(c),
                None => Conn::open(addr, ANSWER_WITHIN),
            };
            c.and_then(|mut c| {
                let r = c.exchange(get.as_bytes(), deadline);
                if r.is_ok() {
                    kept = Some(c);
                }
                r
            })
        };
        m.asked += 1;
        let took = match answered {
            Ok((200, body)) if body.contains("SecretAccessKey") => started.elapsed(),
            _ => Duration::MAX,
        };
        m.latencies.push(took);
        if took <= ANSWER_WITHIN {
            m.in_time += 1;
        } else if i.is_multiple_of(2) {
            m.missed_fresh += 1;
        } else {
            m.missed_kept += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    m
}

/// Runs `kind` with `FLOOD` connections from this process (re-opened whenever the agent
/// closes one) while the legitimate client is measured; returns what it saw.
fn under_flood(kind: Flood) -> Measured {
    let s = setup(&[]);
    let addr = s.agent.addr.clone();
    let token = imds_token(&addr, "localhost", "21600");
    let stop = Arc::new(AtomicBool::new(false));
    let opened = Arc::new(AtomicU64::new(0));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    for n in 0..FLOOD {
        let (addr, stop, opened) = (addr.clone(), stop.clone(), opened.clone());
        rt.spawn(flood::connection(kind, n, addr, stop, opened));
    }
    // Let the flood fill the table before measuring.
    let ramp = Instant::now() + Duration::from_secs(5);
    while opened.load(Ordering::Relaxed) < FLOOD as u64 && Instant::now() < ramp {
        std::thread::sleep(Duration::from_millis(20));
    }
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        opened.load(Ordering::Relaxed) >= FLOOD as u64,
        "the flood did not get going"
    );
    let m = legitimate_client(&addr, &token);
    stop.store(true, Ordering::Relaxed);
    rt.shutdown_timeout(Duration::from_secs(1));
    println!(
        "{kind:?} flood ({FLOOD} connections, {} opened): {}/{} answered within 1 s (missed: {} fresh, {} kept-alive), p50 {:?}, p99 {:?}",
        opened.load(Ordering::Relaxed),
        m.in_time,
        m.asked,
        m.missed_fresh,
        m.missed_kept,
        m.percentile(0.5),
        m.percentile(0.99)
    );
    drop(s);
    m
}

fn assert_served(kind: Flood) {
    let m = under_flood(kind);
    assert!(m.asked >= 50, "{kind:?}: only {} requests made", m.asked);
    // At least 99% answered within the SDKs' timeout.
    assert!(
        m.in_time * 100 >= m.asked * 99,
        "{kind:?} flood: only {}/{} requests answered within 1 s (p50 {:?})",
        m.in_time,
        m.asked,
        m.percentile(0.5)
    );
}

/// The three floods, one after the other in one test: three at once on a 2-core machine
/// would measure the machine, not the agent, and three tests taking turns on a lock would
/// hold a second test thread idle for the whole wait.
#[test]
fn keep_alive_idle_and_slowloris_floods_do_not_starve_a_client() {
    for kind in flood::FLOODS {
        assert_served(kind);
    }
}

// ---------------------------------------------------------------------------------------
// Tokens, files, sockets

#[test]
fn a_flood_of_short_tokens_never_evicts_a_clients_long_token() {
    let s = setup(&[]);
    let addr = s.agent.addr.clone();
    let own = format!("127.0.0.1:{}", port(&addr));
    let long = imds_token(&addr, &own, "21600");
    let mut c = Conn::open(&addr, Duration::from_secs(5)).unwrap();
    let put = request(
        "PUT",
        "/latest/api/token",
        &[&own],
        &[("X-aws-ec2-metadata-token-ttl-seconds", "1")],
    );
    for _ in 0..600 {
        let (status, _) = c
            .exchange(put.as_bytes(), Instant::now() + Duration::from_secs(5))
            .unwrap();
        assert_eq!(status, 200);
    }
    let (status, body) = once(
        &addr,
        &request(
            "GET",
            "/latest/meta-data/placement/region",
            &[&own],
            &[("X-aws-ec2-metadata-token", &long)],
        ),
    );
    assert_eq!(status, 200, "the 6-hour token was evicted: {body}");
}

#[test]
fn a_fifo_or_device_as_the_container_token_file_never_stalls_the_agent() {
    let s = setup(&[]);
    let addr = s.agent.addr.clone();
    let token = std::fs::read_to_string(&s.token_file).unwrap();
    let creds = request(
        "GET",
        "/v1/credentials",
        &["localhost"],
        &[("Authorization", &token)],
    );
    assert_eq!(once(&addr, &creds).0, 200);

    // The token file replaced by a FIFO nobody writes to.
    std::fs::remove_file(&s.token_file).unwrap();
    let made = std::process::Command::new("mkfifo")
        .arg(&s.token_file)
        .status()
        .unwrap();
    assert!(made.success());
    let slow = {
        let (addr, creds) = (addr.clone(), creds.clone());
        std::thread::spawn(move || {
            let started = Instant::now();
            let r = Conn::open(&addr, Duration::from_secs(5))
                .and_then(|mut c| c.exchange(creds.as_bytes(), started + Duration::from_secs(5)));
            (r, started.elapsed())
        })
    };
    // Meanwhile every other endpoint answers at once.
    for _ in 0..10 {
        let started = Instant::now();
        let mut c = Conn::open(&addr, Duration::from_secs(2)).unwrap();
        let r = c.exchange(
            request("GET", "/healthz", &["localhost"], &[]).as_bytes(),
            started + Duration::from_secs(2),
        );
        assert_eq!(r.unwrap().0, 200);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "{:?}",
            started.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (r, took) = slow.join().unwrap();
    let (status, body) = r.expect("the container request is answered, not hung");
    assert!(status == 401 || status == 503, "{status} {body}");
    assert!(json(&body)["code"].is_string(), "{body}");
    assert!(!body.contains("AccessKeyId"));
    assert!(took < Duration::from_millis(1500), "{took:?}");

    // A character device (endless) and a directory: refused too.
    std::fs::remove_file(&s.token_file).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &s.token_file).unwrap();
    let started = Instant::now();
    let (status, _) = once(&addr, &creds);
    assert_eq!(status, 401);
    assert!(started.elapsed() < Duration::from_millis(1500));
    std::fs::remove_file(&s.token_file).unwrap();
    std::fs::create_dir(&s.token_file).unwrap();
    assert_eq!(once(&addr, &creds).0, 401);

    // Back to a regular file behind a symlink (as in a Kubernetes volume): works again.
    std::fs::remove_dir(&s.token_file).unwrap();
    let real = s.dir.path().join("real-token");
    std::fs::write(&real, &token).unwrap();
    std::os::unix::fs::symlink(&real, &s.token_file).unwrap();
    assert_eq!(once(&addr, &creds).0, 200);
}

#[tokio::test]
async fn the_listening_socket_carries_the_hop_limit() {
    use rolesanywhere_agent::server;
    // A second handle on the same listening socket, to read its options while it serves.
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let probe = socket2::Socket::from(std_listener.try_clone().unwrap());
    std_listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    let config = Arc::new(server::ServerConfig {
        role_name: "r".into(),
        role_arn: "arn:aws:iam::111122223333:role/r".into(),
        account_id: String::new(),
        region: "us-east-1".into(),
        hop_limit: 3,
        container_token_file: None,
        limits: server::Limits::default(),
        allowed_hosts: Vec::new(),
        stats: Arc::default(),
    });
    struct Nothing;
    impl rolesanywhere_agent::agent::CredentialSource for Nothing {
        fn current(
            &self,
            _now: time::OffsetDateTime,
        ) -> Result<
            Arc<rolesanywhere_agent::credentials::Credentials>,
            rolesanywhere_agent::agent::Unavailable,
        > {
            Err(rolesanywhere_agent::agent::Unavailable::NotYetLoaded)
        }
    }
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server::serve_tcp(
        listener,
        Arc::new(Nothing),
        config,
        async {
            let _ = rx.await;
        },
    ));
    // The SYN-ACK is sent from the listening socket: it must carry the limit as well.
    let deadline = Instant::now() + Duration::from_secs(5);
    while probe.ttl_v4().unwrap() != 3 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(probe.ttl_v4().unwrap(), 3);
    let _ = tx.send(());
    task.await.unwrap().unwrap();
}

#[test]
fn a_socket_directory_others_can_write_is_refused_with_exit_2() {
    let (_pki, m) = matrix();
    let emu = Emulator::start(&m.anchors, &[]);
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).unwrap();
    let sock = shared.join("agent.sock");
    let mut child = agent()
        .arg("serve")
        .args(serve_args(
            &m,
            &emu,
            &["--port", "0", "--socket", &path(&sock)],
        ))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, Duration::from_secs(10));
    let status = status.expect("serve refused the directory instead of serving");
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&path(&shared)) && err.contains("sticky"),
        "{err}"
    );
    assert!(err.contains("hint"), "{err}");
    assert!(!sock.exists());
    assert!(
        emu.requests().is_empty(),
        "refused before any CreateSession"
    );
}
