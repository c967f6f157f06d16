//! The `Host` rule of the TCP endpoints, the defence against DNS rebinding: a web page whose
//! name re-resolves to 127.0.0.1 makes same-origin requests (no CORS preflight stops them,
//! nor does IMDSv2's PUT), but its requests still carry the page's name in `Host`. Only the
//! names a local client or an SDK uses for the agent pass ([`HostPolicy`]); operators add
//! their own with `serve --allow-host` ([`AllowedHost`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use hyper::header::HOST;
use hyper::http::request::Parts;
use hyper::{HeaderMap, Version};

/// The metadata addresses SDKs use: traffic to them may be redirected to the agent (iptables
/// DNAT, a proxy sidecar), and the SDK then sends the address it meant, usually without a
/// port (80).
const METADATA_ADDRESSES: [IpAddr; 4] = [
    IpAddr::V4(Ipv4Addr::new(169, 254, 169, 254)),
    IpAddr::V6(Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 2)),
    IpAddr::V4(Ipv4Addr::new(169, 254, 170, 23)),
];

/// A host name, IPv4 address or bracketed IPv6 address, lower-cased, without a trailing dot.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Name {
    Domain(String),
    Ip(IpAddr),
}

/// A `Host` value taken apart: the name and the port, if one was given.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Authority {
    name: Name,
    port: Option<u16>,
}

/// Why a value is not a host: shown to the operator for `--allow-host`, never to a client.
fn parse_authority(raw: &[u8]) -> Result<Authority, &'static str> {
    let text = std::str::from_utf8(raw).map_err(|_| "it is not ASCII")?;
    if text.is_empty() {
        return Err("it is empty");
    }
    let (name, port) = if let Some(rest) = text.strip_prefix('[') {
        let (inside, after) = rest.split_once(']').ok_or("a '[' without its ']'")?;
        let ip: Ipv6Addr = inside.parse().map_err(|_| "not an IPv6 address in [...]")?;
        let port = match after {
            "" => None,
            _ => Some(after.strip_prefix(':').ok_or("junk after ']'")?),
        };
        (Name::Ip(IpAddr::V6(ip)), port)
    } else {
        let (host, port) = match text.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (text, None),
        };
        // One trailing dot names the same host (an absolute DNS name).
        let host = host.strip_suffix('.').unwrap_or(host);
        let name = match host.parse::<Ipv4Addr>() {
            Ok(ip) => Name::Ip(IpAddr::V4(ip)),
            Err(_) => Name::Domain(domain(host)?),
        };
        (name, port)
    };
    let port = match port {
        None => None,
        Some(p) => Some(parse_port(p).ok_or("the port is not 1..65535")?),
    };
    Ok(Authority { name, port })
}

fn parse_port(p: &str) -> Option<u16> {
    if p.is_empty() || p.len() > 5 || !p.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    p.parse().ok().filter(|&p| p != 0)
}

/// A DNS name: labels of letters, digits, `-` and `_` (Docker and Compose service names use
/// `_`), lower-cased.
fn domain(host: &str) -> Result<String, &'static str> {
    if host.is_empty() {
        return Err("the name is empty");
    }
    if host.len() > 253 {
        return Err("the name is longer than 253 characters");
    }
    for label in host.split('.') {
        if label.is_empty() || label.len() > 63 {
            return Err("a label of the name is empty or longer than 63 characters");
        }
        if !label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return Err("a name has only letters, digits, '-', '_' and '.'");
        }
    }
    Ok(host.to_ascii_lowercase())
}

/// A name given with `serve --allow-host NAME[:PORT]`.
///
/// Without a port it matches `NAME` alone and `NAME:<the listener's port>`; with one, also
/// `NAME:PORT` (for a port forwarded to the agent's).
#[derive(Clone, PartialEq, Eq)]
pub struct AllowedHost(Authority);

impl FromStr for AllowedHost {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, String> {
        if value.contains('*') {
            return Err(format!(
                "'{value}' has a wildcard; list each name the agent is reached by"
            ));
        }
        parse_authority(value.as_bytes())
            .map(AllowedHost)
            .map_err(|why| {
                format!(
                    "'{value}' is not a host ({why}); give a name such as agent.internal, an IPv4 address or [IPv6], optionally with :PORT"
                )
            })
    }
}

impl fmt::Debug for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AllowedHost({self})")
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0.name {
            Name::Domain(d) => f.write_str(d)?,
            Name::Ip(IpAddr::V4(ip)) => write!(f, "{ip}")?,
            Name::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]")?,
        }
        match self.0.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

/// Why a request's `Host` was refused; the text names the rule, never the client's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    Missing,
    Several,
    NotAllowed,
}

impl Refusal {
    pub(crate) fn message(self) -> &'static str {
        match self {
            Refusal::Missing => {
                "the Host header is required: requests must name the agent (DNS rebinding protection)"
            }
            Refusal::Several => {
                "more than one Host header: requests must name the agent once (DNS rebinding protection)"
            }
            Refusal::NotAllowed => {
                "the Host header must name the agent (localhost, 127.0.0.1, [::1], the listening address, a metadata address, or a serve --allow-host name) (DNS rebinding protection)"
            }
        }
    }
}

/// The names a request may address the agent by, on one listener.
#[derive(Clone, Debug)]
pub(crate) struct HostPolicy {
    /// The listening address; `None` when unknown (the embeddable router), and then the
    /// loopback names are accepted with any port.
    bound: Option<SocketAddr>,
    extra: Vec<AllowedHost>,
}

impl HostPolicy {
    pub(crate) fn new(bound: Option<SocketAddr>, extra: &[AllowedHost]) -> Self {
        HostPolicy {
            bound,
            extra: extra.to_vec(),
        }
    }

    /// The loopback names and the bound address: no port, or the listener's.
    fn own_port(&self, port: Option<u16>) -> bool {
        match (port, self.bound) {
            (None, _) | (_, None) => true,
            (Some(p), Some(b)) => p == b.port(),
        }
    }

    fn allows(&self, a: &Authority) -> bool {
        let own_port = self.own_port(a.port);
        let named = match &a.name {
            Name::Domain(d) => own_port && d == "localhost",
            Name::Ip(ip) => {
                let bound_ip = self
                    .bound
                    .map(|b| b.ip().to_canonical())
                    .filter(|b| !b.is_unspecified());
                let ip = ip.to_canonical();
                if METADATA_ADDRESSES.contains(&ip) {
                    own_port || a.port == Some(80)
                } else {
                    own_port
                        && (ip == IpAddr::V4(Ipv4Addr::LOCALHOST)
                            || ip == IpAddr::V6(Ipv6Addr::LOCALHOST)
                            || Some(ip) == bound_ip)
                }
            }
        };
        named
            || self.extra.iter().any(|AllowedHost(x)| {
                x.name == a.name
                    && (self.own_port(a.port) || (x.port.is_some() && x.port == a.port))
            })
    }

    /// Checks the request's `Host` (and an absolute-form target's authority, which HTTP
    /// gives precedence over `Host`). HTTP/1.0 requests may omit `Host`: no browser sends
    /// one without it, so that cannot be a rebinding page.
    pub(crate) fn check(&self, head: &Parts) -> Result<(), Refusal> {
        if let Some(authority) = head.uri.authority() {
            let ok = parse_authority(authority.as_str().as_bytes()).is_ok_and(|a| self.allows(&a));
            if !ok {
                return Err(Refusal::NotAllowed);
            }
        }
        self.check_header(&head.headers, head.version)
    }

    fn check_header(&self, headers: &HeaderMap, version: Version) -> Result<(), Refusal> {
        let mut values = headers.get_all(HOST).iter();
        let Some(value) = values.next() else {
            return if version <= Version::HTTP_10 {
                Ok(())
            } else {
                Err(Refusal::Missing)
            };
        };
        if values.next().is_some() {
            return Err(Refusal::Several);
        }
        match parse_authority(value.as_bytes()) {
            Ok(a) if self.allows(&a) => Ok(()),
            _ => Err(Refusal::NotAllowed),
        }
    }
}

/// A client's `Host` value made safe to log: printable ASCII only, at most 64 bytes.
pub(crate) fn loggable(headers: &HeaderMap) -> String {
    let raw = headers.get(HOST).map(|v| v.as_bytes()).unwrap_or_default();
    let cut = raw.get(..64).unwrap_or(raw);
    let mut s: String = cut.escape_ascii().to_string();
    if raw.len() > cut.len() {
        s.push_str("...");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(port: u16, extra: &[&str]) -> HostPolicy {
        let extra: Vec<AllowedHost> = extra.iter().map(|e| e.parse().expect("valid")).collect();
        HostPolicy::new(Some(SocketAddr::from(([127, 0, 0, 1], port))), &extra)
    }

    fn head(hosts: &[&str], version: Version, target: &str) -> Parts {
        let mut b = hyper::Request::builder().uri(target).version(version);
        for h in hosts {
            b = b.header(HOST, *h);
        }
        b.body(()).expect("request").into_parts().0
    }

    fn check(p: &HostPolicy, host: &str) -> Result<(), Refusal> {
        p.check(&head(&[host], Version::HTTP_11, "/healthz"))
    }

    #[test]
    fn the_agents_own_names_pass_with_its_port_or_none() {
        let p = policy(9911, &[]);
        for ok in [
            "localhost",
            "localhost:9911",
            "LOCALHOST:9911",
            "localhost.",
            "localhost.:9911",
            "127.0.0.1",
            "127.0.0.1:9911",
            "127.0.0.1.:9911",
            "[::1]",
            "[::1]:9911",
            "[0:0:0:0:0:0:0:1]:9911",
            "169.254.169.254",
            "169.254.169.254:80",
            "169.254.169.254:9911",
            "[fd00:ec2::254]",
            "[FD00:EC2::254]:80",
            "169.254.170.2",
            "169.254.170.2:80",
            "169.254.170.23",
        ] {
            assert_eq!(check(&p, ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn other_names_ports_and_malformed_values_are_refused() {
        let p = policy(9911, &[]);
        for bad in [
            "evil.example",
            "evil.example:9911",
            "localhost:9912",
            "localhost:80",
            "127.0.0.1:80",
            "127.0.0.2:9911",
            "[::1]:80",
            "169.254.169.254:8080",
            "localhost.evil.example",
            "localhost:",
            "localhost:0",
            "localhost:99999",
            "localhost:9911:9911",
            "::1",
            "[::1",
            "[::1]x",
            "user@localhost",
            "localhost/x",
            "",
            "localhost..",
            "0.0.0.0:9911",
        ] {
            assert_eq!(check(&p, bad), Err(Refusal::NotAllowed), "{bad:?}");
        }
    }

    #[test]
    fn a_missing_or_repeated_host_is_refused_on_http_1_1() {
        let p = policy(9911, &[]);
        assert_eq!(
            p.check(&head(&[], Version::HTTP_11, "/")),
            Err(Refusal::Missing)
        );
        assert_eq!(p.check(&head(&[], Version::HTTP_10, "/")), Ok(()));
        assert_eq!(
            p.check(&head(&["localhost", "localhost"], Version::HTTP_11, "/")),
            Err(Refusal::Several)
        );
        assert_eq!(
            p.check(&head(&["localhost", "evil.example"], Version::HTTP_11, "/")),
            Err(Refusal::Several)
        );
    }

    #[test]
    fn an_absolute_target_must_name_the_agent_too() {
        let p = policy(9911, &[]);
        assert_eq!(
            p.check(&head(
                &["localhost"],
                Version::HTTP_11,
                "http://evil.example/healthz"
            )),
            Err(Refusal::NotAllowed)
        );
        assert_eq!(
            p.check(&head(
                &["localhost"],
                Version::HTTP_11,
                "http://127.0.0.1:9911/healthz"
            )),
            Ok(())
        );
    }

    #[test]
    fn the_bound_address_and_allowed_names_pass() {
        let bound = SocketAddr::from(([127, 0, 0, 9], 8000));
        let extra: Vec<AllowedHost> = ["agent.internal", "Sidecar_1.:8080", "[fd00::1]"]
            .iter()
            .map(|e| e.parse().expect("valid"))
            .collect();
        let p = HostPolicy::new(Some(bound), &extra);
        for ok in [
            "127.0.0.9:8000",
            "127.0.0.9",
            "agent.internal",
            "agent.internal:8000",
            "AGENT.INTERNAL.",
            "sidecar_1",
            "sidecar_1:8080",
            "sidecar_1:8000",
            "[fd00::1]:8000",
        ] {
            assert_eq!(check(&p, ok), Ok(()), "{ok}");
        }
        for bad in ["agent.internal:8080", "127.0.0.9:9911", "[fd00::1]:80"] {
            assert_eq!(check(&p, bad), Err(Refusal::NotAllowed), "{bad}");
        }
        // An unspecified bind is not a name anyone reaches the agent by.
        let any = HostPolicy::new(Some(SocketAddr::from(([0, 0, 0, 0], 8000))), &[]);
        assert_eq!(check(&any, "0.0.0.0:8000"), Err(Refusal::NotAllowed));
        assert_eq!(check(&any, "localhost:8000"), Ok(()));
    }

    #[test]
    fn an_unknown_listener_accepts_loopback_names_on_any_port() {
        let p = HostPolicy::new(None, &[]);
        assert_eq!(check(&p, "localhost:1234"), Ok(()));
        assert_eq!(check(&p, "evil.example:1234"), Err(Refusal::NotAllowed));
    }

    #[test]
    fn allow_host_values_are_validated() {
        for ok in [
            "a",
            "agent.internal",
            "x-1.example.",
            "10.0.0.1:80",
            "[::2]:1",
        ] {
            assert!(ok.parse::<AllowedHost>().is_ok(), "{ok}");
        }
        assert_eq!(
            "Agent.Internal.:8080"
                .parse::<AllowedHost>()
                .expect("valid")
                .to_string(),
            "agent.internal:8080"
        );
        for bad in [
            "",
            "*.example",
            "a b",
            "a:0",
            "a:65536",
            "a:x",
            "::1",
            "[::1",
            "http://a",
            "a/b",
            "a..b",
        ] {
            let err = bad.parse::<AllowedHost>().expect_err(bad);
            assert!(err.contains(&format!("'{bad}'")), "{err}");
        }
    }

    #[test]
    fn logged_values_are_escaped_and_cut() {
        let mut h = HeaderMap::new();
        h.insert(
            HOST,
            hyper::header::HeaderValue::from_bytes(b"evil\t\"\xff").expect("value"),
        );
        assert_eq!(loggable(&h), "evil\\t\\\"\\xff");
        h.insert(
            HOST,
            hyper::header::HeaderValue::from_str(&"a".repeat(100)).expect("value"),
        );
        assert_eq!(loggable(&h).len(), 67);
    }
}
