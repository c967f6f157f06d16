//! Where the TPM is and how bytes reach it: TCTI strings parsed the way tpm2-tools reads
//! `TPM2TOOLS_TCTI` / `TSS2_TCTI`, and the transports behind them.
//!
//! - `device[:PATH]` — a TPM character device (default `/dev/tpmrm0`, the kernel resource
//!   manager): write one command, read one response. A PATH that is a Unix socket (swtpm
//!   `--server type=unixio`, which go-tpm and so the Go helper's `TPM_DEVICE` accept too)
//!   carries the same raw bytes over the socket.
//! - `mssim[:host=H,port=P]` and `swtpm[:host=H,port=P]` — a simulator over TCP (default
//!   `localhost:2321`) in the Microsoft simulator framing, which swtpm also speaks on its
//!   server port. They differ only in how a TPM that was never powered on is brought up on
//!   the platform/control port (P + 1): the Microsoft simulator's power-on and NV-on signals,
//!   or swtpm's `CMD_INIT`. Only loopback hosts are allowed: the simulator protocol has no
//!   authentication or encryption.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::proto::{self, Malformed, RC_FAILURE, RC_INITIALIZE};

/// The kernel resource manager: lets several processes share the TPM and flushes their
/// transient objects when they close it.
pub const DEFAULT_DEVICE: &str = "/dev/tpmrm0";
/// The TCP port tpm2-tools and the simulators use by default.
pub const DEFAULT_PORT: u16 = 2321;

/// Environment variables read for the TCTI, first match wins: tpm2-tools' own, the TSS
/// loader's, then the Go helper's `TPM_DEVICE` (a device or socket path).
pub const TCTI_VARS: [&str; 3] = ["TPM2TOOLS_TCTI", "TSS2_TCTI", "TPM_DEVICE"];

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Long enough for a slow hardware TPM to create a primary key and sign.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Microsoft simulator protocol: commands on the TPM port.
const MS_SEND_COMMAND: u32 = 8;
const MS_SESSION_END: u32 = 20;
/// Microsoft simulator protocol: signals on the platform port.
const MS_SIGNAL_POWER_ON: u32 = 1;
const MS_SIGNAL_NV_ON: u32 = 11;
/// swtpm control channel: initialize (power on) the TPM.
const SWTPM_CMD_INIT: u32 = 2;

/// Warnings that mean "send the same command again".
const RC_YIELDED: u32 = 0x908;
const RC_TESTING: u32 = 0x90A;
const RC_RETRY: u32 = 0x922;

/// A parsed TCTI.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Tcti {
    Device(PathBuf),
    Mssim { host: String, port: u16 },
    Swtpm { host: String, port: u16 },
}

impl fmt::Display for Tcti {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tcti::Device(p) => write!(f, "device:{}", p.display()),
            Tcti::Mssim { host, port } => write!(f, "mssim:host={host},port={port}"),
            Tcti::Swtpm { host, port } => write!(f, "swtpm:host={host},port={port}"),
        }
    }
}

impl Default for Tcti {
    fn default() -> Self {
        Tcti::Device(PathBuf::from(DEFAULT_DEVICE))
    }
}

impl Tcti {
    /// Parses a TCTI string: `NAME[:CONF]`, where NAME may also be the library's file name
    /// (`libtss2-tcti-mssim.so.0`) as the TSS loader accepts it.
    pub fn parse(spec: &str) -> Result<Tcti, String> {
        let spec = spec.trim();
        let (name, conf) = spec.split_once(':').unwrap_or((spec, ""));
        let name = name
            .strip_prefix("libtss2-tcti-")
            .map(|n| n.split(".so").next().unwrap_or(n))
            .unwrap_or(name);
        match name {
            "device" => {
                let path = if conf.is_empty() {
                    DEFAULT_DEVICE
                } else {
                    conf
                };
                Ok(Tcti::Device(PathBuf::from(path)))
            }
            "mssim" | "swtpm" => {
                let (host, port) = parse_host_port(conf)?;
                Ok(if name == "mssim" {
                    Tcti::Mssim { host, port }
                } else {
                    Tcti::Swtpm { host, port }
                })
            }
            "tabrmd" => Err(
                "the tpm2-abrmd resource manager (D-Bus) is not supported; use device:/dev/tpmrm0"
                    .into(),
            ),
            "" => Err("empty TCTI name".into()),
            other => Err(format!(
                "unknown TCTI '{other}' (supported: device, mssim, swtpm)"
            )),
        }
    }

    /// The TCTI named by the environment (see [`TCTI_VARS`]), else the default device.
    /// Returns the variable it came from, for messages.
    pub fn from_lookup(
        get: impl Fn(&str) -> Option<String>,
    ) -> Result<(Tcti, Option<&'static str>), (&'static str, String, String)> {
        for var in TCTI_VARS {
            let Some(value) = get(var).filter(|v| !v.trim().is_empty()) else {
                continue;
            };
            let parsed = if var == "TPM_DEVICE" {
                Ok(Tcti::Device(PathBuf::from(value.trim())))
            } else {
                Tcti::parse(&value)
            };
            return parsed
                .map(|t| (t, Some(var)))
                .map_err(|detail| (var, value, detail));
        }
        Ok((Tcti::default(), None))
    }

    fn is_simulator(&self) -> bool {
        !matches!(self, Tcti::Device(_))
    }
}

/// `host=H,port=P` (either optional, any order), with the host limited to loopback.
fn parse_host_port(conf: &str) -> Result<(String, u16), String> {
    let mut host = "localhost".to_string();
    let mut port = DEFAULT_PORT;
    for part in conf.split(',').filter(|p| !p.trim().is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("'{part}' is not key=value"))?;
        match k.trim() {
            "host" => host = v.trim().to_string(),
            "port" => {
                port = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|p| *p != 0 && *p != u16::MAX)
                    .ok_or_else(|| format!("port '{v}' is not a TCP port"))?;
            }
            other => return Err(format!("unknown option '{other}' (expected host, port)")),
        }
    }
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let loopback = bare.eq_ignore_ascii_case("localhost")
        || bare.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        return Err(format!(
            "host '{host}' is not a loopback address: the simulator protocol is unauthenticated, so only localhost, 127.0.0.0/8 and ::1 are allowed"
        ));
    }
    Ok((bare.to_string(), port))
}

/// Loopback socket addresses for `host:port` (a name resolving elsewhere is ignored).
fn loopback_addrs(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()?
        .filter(|a| a.ip().is_loopback())
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::AddrNotAvailable,
            format!("{host} does not resolve to a loopback address"),
        ));
    }
    Ok(addrs)
}

fn connect_tcp(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = None;
    for addr in loopback_addrs(host, port)? {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                s.set_read_timeout(Some(IO_TIMEOUT))?;
                s.set_write_timeout(Some(IO_TIMEOUT))?;
                let _ = s.set_nodelay(true);
                return Ok(s);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable)))
}

enum Link {
    /// A character device: one write, one read per command.
    Char(std::fs::File),
    /// A Unix socket carrying raw commands and responses.
    Unix(UnixStream),
    /// The Microsoft simulator framing over TCP.
    Sim(TcpStream),
}

/// Why a command got no usable response.
#[derive(Debug)]
pub enum ExecError {
    Io(io::Error),
    Malformed(Malformed),
}

impl From<io::Error> for ExecError {
    fn from(e: io::Error) -> Self {
        ExecError::Io(e)
    }
}

impl From<Malformed> for ExecError {
    fn from(e: Malformed) -> Self {
        ExecError::Malformed(e)
    }
}

/// An open connection to a TPM.
pub struct Connection {
    link: Link,
    tcti: Tcti,
    /// Whether this connection already tried to power the simulator on.
    powered: bool,
}

impl Connection {
    pub fn open(tcti: &Tcti) -> io::Result<Connection> {
        let link = match tcti {
            Tcti::Device(path) => open_device(path)?,
            Tcti::Mssim { host, port } | Tcti::Swtpm { host, port } => {
                Link::Sim(connect_tcp(host, *port)?)
            }
        };
        Ok(Connection {
            link,
            tcti: tcti.clone(),
            powered: false,
        })
    }

    /// Sends a command and returns the whole response, whatever its response code, after
    /// retrying while the TPM asks for it (a few seconds at most), and after bringing up a
    /// TPM that was not started: TPM_RC_INITIALIZE gets a TPM2_Startup(CLEAR);
    /// a simulator answering TPM_RC_FAILURE (what swtpm and the Microsoft simulator say
    /// before power-on) is powered on first. Each at most once, then the command is resent.
    pub fn execute(&mut self, cmd: &[u8]) -> Result<Vec<u8>, ExecError> {
        let mut resp = self.execute_started(cmd)?;
        // TPM_RC_RETRY, TPM_RC_YIELDED and TPM_RC_TESTING ask for the same command again:
        // TPMs say so while self-tests run after start-up, or when busy.
        let mut delay = Duration::from_millis(20);
        for _ in 0..12 {
            let rc = proto::response_code(&resp)?;
            if !matches!(rc, RC_RETRY | RC_YIELDED | RC_TESTING) {
                break;
            }
            std::thread::sleep(delay);
            delay = (delay * 2).min(Duration::from_millis(500));
            resp = self.roundtrip(cmd)?;
        }
        Ok(resp)
    }

    fn execute_started(&mut self, cmd: &[u8]) -> Result<Vec<u8>, ExecError> {
        let resp = self.roundtrip(cmd)?;
        let rc = proto::response_code(&resp)?;
        let needs_power = rc == RC_FAILURE && self.tcti.is_simulator() && !self.powered;
        if rc != RC_INITIALIZE && !needs_power {
            return Ok(resp);
        }
        if needs_power {
            self.powered = true;
            self.power_on()?;
        }
        let started = self.roundtrip(&proto::startup_clear())?;
        match proto::response_code(&started)? {
            // INITIALIZE here means another client started it meanwhile: fine.
            proto::RC_SUCCESS | RC_INITIALIZE => {}
            _ => return Ok(resp),
        }
        self.roundtrip(cmd)
    }

    fn power_on(&mut self) -> io::Result<()> {
        let (host, port, signals): (&str, u16, &[&[u32]]) = match &self.tcti {
            Tcti::Mssim { host, port } => {
                (host, *port, &[&[MS_SIGNAL_POWER_ON], &[MS_SIGNAL_NV_ON]])
            }
            Tcti::Swtpm { host, port } => (host, *port, &[&[SWTPM_CMD_INIT, 0]]),
            Tcti::Device(_) => return Ok(()),
        };
        let platform_port = port.checked_add(1).ok_or_else(|| {
            io::Error::new(io::ErrorKind::InvalidInput, "no platform port above 65535")
        })?;
        let mut s = connect_tcp(host, platform_port)?;
        for words in signals {
            let mut msg = Vec::new();
            for w in *words {
                msg.extend_from_slice(&w.to_be_bytes());
            }
            s.write_all(&msg)?;
            let mut ack = [0u8; 4];
            s.read_exact(&mut ack)?;
            if ack != [0; 4] {
                return Err(io::Error::other(format!(
                    "the platform port refused power-on (code {:#x})",
                    u32::from_be_bytes(ack)
                )));
            }
        }
        Ok(())
    }

    fn roundtrip(&mut self, cmd: &[u8]) -> Result<Vec<u8>, ExecError> {
        match &mut self.link {
            Link::Char(f) => {
                f.write_all(cmd)?;
                // The driver hands the whole response to one read; a smaller buffer
                // would lose the rest on older kernels.
                let mut buf = vec![0u8; proto::MAX_RESPONSE];
                let n = f.read(&mut buf)?;
                buf.truncate(n);
                if n < 10 {
                    return Err(ExecError::Malformed(Malformed(format!(
                        "a {n}-byte response"
                    ))));
                }
                Ok(buf)
            }
            Link::Unix(s) => {
                s.write_all(cmd)?;
                read_raw_response(s)
            }
            Link::Sim(s) => {
                let len = u32::try_from(cmd.len()).map_err(|_| {
                    io::Error::new(io::ErrorKind::InvalidInput, "command too large")
                })?;
                let mut msg = Vec::with_capacity(cmd.len() + 9);
                msg.extend_from_slice(&MS_SEND_COMMAND.to_be_bytes());
                msg.push(0); // locality 0
                msg.extend_from_slice(&len.to_be_bytes());
                msg.extend_from_slice(cmd);
                s.write_all(&msg)?;
                let mut len = [0u8; 4];
                s.read_exact(&mut len)?;
                let len = u32::from_be_bytes(len) as usize;
                if !(10..=proto::MAX_RESPONSE).contains(&len) {
                    return Err(ExecError::Malformed(Malformed(format!(
                        "the simulator announced a {len}-byte response"
                    ))));
                }
                let mut resp = vec![0u8; len];
                s.read_exact(&mut resp)?;
                let mut trailer = [0u8; 4];
                s.read_exact(&mut trailer)?;
                Ok(resp)
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Tell a simulator this client is done, as the TSS does, so it accepts the next one
        // at once; errors do not matter any more.
        if let Link::Sim(s) = &mut self.link {
            let _ = s.write_all(&MS_SESSION_END.to_be_bytes());
        }
    }
}

fn open_device(path: &Path) -> io::Result<Link> {
    use std::os::unix::fs::FileTypeExt as _;
    if std::fs::metadata(path)?.file_type().is_socket() {
        let s = UnixStream::connect(path)?;
        s.set_read_timeout(Some(IO_TIMEOUT))?;
        s.set_write_timeout(Some(IO_TIMEOUT))?;
        return Ok(Link::Unix(s));
    }
    let f = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    Ok(Link::Char(f))
}

fn read_raw_response(s: &mut impl Read) -> Result<Vec<u8>, ExecError> {
    let mut header = [0u8; 10];
    s.read_exact(&mut header)?;
    let len = u32::from_be_bytes([header[2], header[3], header[4], header[5]]) as usize;
    if !(10..=proto::MAX_RESPONSE).contains(&len) {
        return Err(ExecError::Malformed(Malformed(format!(
            "a response header announcing {len} bytes"
        ))));
    }
    let mut body = vec![0u8; len - header.len()];
    s.read_exact(&mut body)?;
    let mut resp = header.to_vec();
    resp.append(&mut body);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sim(kind: &str, host: &str, port: u16) -> Tcti {
        let host = host.to_string();
        if kind == "mssim" {
            Tcti::Mssim { host, port }
        } else {
            Tcti::Swtpm { host, port }
        }
    }

    #[test]
    fn parses_the_tpm2_tools_forms() {
        assert_eq!(Tcti::parse("device"), Ok(Tcti::default()));
        assert_eq!(
            Tcti::parse("device:/dev/tpm0"),
            Ok(Tcti::Device("/dev/tpm0".into()))
        );
        assert_eq!(
            Tcti::parse("swtpm:port=2321"),
            Ok(sim("swtpm", "localhost", 2321))
        );
        assert_eq!(Tcti::parse("swtpm"), Ok(sim("swtpm", "localhost", 2321)));
        assert_eq!(
            Tcti::parse("mssim:host=localhost,port=2321"),
            Ok(sim("mssim", "localhost", 2321))
        );
        assert_eq!(
            Tcti::parse("mssim:port=4000,host=127.0.0.1"),
            Ok(sim("mssim", "127.0.0.1", 4000))
        );
        assert_eq!(
            Tcti::parse("swtpm:host=::1,port=5000"),
            Ok(sim("swtpm", "::1", 5000))
        );
        assert_eq!(
            Tcti::parse("libtss2-tcti-mssim.so.0:port=2400"),
            Ok(sim("mssim", "localhost", 2400))
        );
        assert_eq!(
            sim("swtpm", "127.0.0.1", 2321).to_string(),
            "swtpm:host=127.0.0.1,port=2321"
        );
    }

    #[test]
    fn refuses_remote_hosts_and_nonsense() {
        for bad in [
            "mssim:host=10.0.0.1,port=2321",
            "swtpm:host=tpm.example.com",
            "swtpm:port=abc",
            "swtpm:port=0",
            "swtpm:speed=9",
            "swtpm:2321",
            "tabrmd",
            "cmd:foo",
            ":x",
        ] {
            assert!(Tcti::parse(bad).is_err(), "{bad}");
        }
        let err = Tcti::parse("mssim:host=192.168.1.5").unwrap_err();
        assert!(err.contains("loopback"), "{err}");
    }

    #[test]
    fn environment_order_and_default() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| v.to_string())
            }
        };
        assert_eq!(Tcti::from_lookup(env(&[])), Ok((Tcti::default(), None)));
        assert_eq!(
            Tcti::from_lookup(env(&[
                ("TSS2_TCTI", "mssim:port=1"),
                ("TPM2TOOLS_TCTI", "swtpm:port=2")
            ])),
            Ok((sim("swtpm", "localhost", 2), Some("TPM2TOOLS_TCTI")))
        );
        assert_eq!(
            Tcti::from_lookup(env(&[("TPM2TOOLS_TCTI", " "), ("TSS2_TCTI", "mssim")])),
            Ok((sim("mssim", "localhost", 2321), Some("TSS2_TCTI")))
        );
        assert_eq!(
            Tcti::from_lookup(env(&[("TPM_DEVICE", "/run/swtpm.sock")])),
            Ok((Tcti::Device("/run/swtpm.sock".into()), Some("TPM_DEVICE")))
        );
        let (var, value, _) =
            Tcti::from_lookup(env(&[("TSS2_TCTI", "mssim:host=8.8.8.8")])).unwrap_err();
        assert_eq!((var, value.as_str()), ("TSS2_TCTI", "mssim:host=8.8.8.8"));
    }
}
