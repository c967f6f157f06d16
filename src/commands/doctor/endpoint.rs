//! The endpoint group: which endpoint and why, the proxy variables and whether
//! `--with-proxy` applies, then name resolution, TCP and TLS with the trust roots
//! `credential-process` uses (`session::tls`), each step bounded.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::pki_types::ServerName;

use super::proxy::{Proxy, proxy_line};
use super::{Kind, NETWORK_TIMEOUT, Report};
use crate::cli::CredentialArgs;
use crate::config::{EndpointSettings, SessionSettings};

const KIND: Kind = Kind::Runtime;

/// What later checks (clock, CreateSession) use.
pub(super) struct Reached {
    pub settings: EndpointSettings,
    /// The rustls configuration of an https endpoint (same roots as CreateSession).
    pub tls: Option<rustls::ClientConfig>,
    /// Whether TCP reached the endpoint (or the proxy in front of it), and TLS, when it was
    /// checked, succeeded.
    pub reachable: bool,
}

/// Runs the group; `None` when there is no usable endpoint to check further.
pub(super) async fn check(
    args: &CredentialArgs,
    settings: Option<&SessionSettings>,
    report: &mut Report,
) -> Option<Reached> {
    let Some(settings) = settings else {
        for name in [
            "endpoint.url",
            "endpoint.proxy",
            "endpoint.dns",
            "endpoint.tcp",
            "endpoint.tls",
        ] {
            report.skip(
                name,
                KIND,
                "needs valid ARN flags (the default endpoint follows the region)",
            );
        }
        return None;
    };
    let spec = match super::super::session_flags::spec(args) {
        Ok(spec) => spec,
        Err(e) => {
            report.fail_maybe("endpoint.url", Kind::Config, e.to_string(), e.hint());
            return None;
        }
    };
    let endpoint = spec.endpoint;
    // The same choice `credential-process` makes (flags, AWS_ENDPOINT_URL*, FIPS,
    // dual-stack, the profile's settings, the partition), with the reason for it.
    let choice = match super::super::session_flags::endpoint_choice(args, settings) {
        Ok(choice) => choice,
        Err(e) => {
            report.fail_maybe("endpoint.url", Kind::Config, e.to_string(), e.hint());
            return None;
        }
    };
    report.ok(
        "endpoint.url",
        Kind::Config,
        format!("{} ({})", choice.url, choice.why),
    );
    let Ok(url) = reqwest::Url::parse(&choice.url) else {
        report.fail(
            "endpoint.url",
            Kind::Config,
            format!("{} is not a URL", choice.url),
            "pass --endpoint https://HOST[:PORT]",
        );
        return None;
    };
    let host = url
        .host_str()
        .unwrap_or_default()
        .trim_matches(['[', ']'])
        .to_string();
    let port = url.port_or_known_default().unwrap_or(443);
    let https = url.scheme() == "https";

    let proxy = Proxy::from_env(https, &host);
    let through = proxy.as_ref().filter(|_| endpoint.with_proxy);
    let (target_host, target_port) = match through {
        Some(p) => (p.host.clone(), p.port),
        None => (host.clone(), port),
    };
    let addrs = dns(&target_host, target_port, through.is_some(), report).await;
    let mut reachable = tcp(&addrs, &target_host, target_port, report).await;
    proxy_line(&endpoint, proxy.as_ref(), reachable, report);

    let tls = if https {
        match crate::session::tls::client_config(&endpoint) {
            Ok(config) => Some(config),
            Err(e) => {
                let kind = if e.is_configuration() {
                    Kind::Config
                } else {
                    KIND
                };
                report.fail_maybe("endpoint.tls", kind, e.to_string(), e.hint());
                return Some(Reached {
                    settings: endpoint,
                    tls: None,
                    reachable,
                });
            }
        }
    } else {
        None
    };
    match (&tls, through) {
        (None, _) => report.ok(
            "endpoint.tls",
            KIND,
            "plain http to a loopback address: no TLS (emulate)",
        ),
        (Some(_), Some(_)) => report.skip(
            "endpoint.tls",
            KIND,
            "through the proxy: the clock check's HTTPS request goes through it with the same roots",
        ),
        (Some(_), None) if !reachable => {
            report.skip("endpoint.tls", KIND, "needs a TCP connection")
        }
        (Some(_), None) if endpoint.no_verify_ssl => report.warn(
            "endpoint.tls",
            KIND,
            "--no-verify-ssl: the endpoint's certificate is not checked",
            "drop --no-verify-ssl and trust the endpoint's CA with --ca-bundle or AWS_CA_BUNDLE: without it anyone on the path can read the credentials",
        ),
        (Some(config), None) => {
            // A failed handshake fails every later request the same way: say it once.
            reachable = handshake(config, &addrs, &host, report).await;
        }
    }
    Some(Reached {
        settings: endpoint,
        tls,
        reachable,
    })
}

async fn dns(host: &str, port: u16, proxy: bool, report: &mut Report) -> Vec<SocketAddr> {
    let what = if proxy { "the proxy " } else { "" };
    let lookup = tokio::net::lookup_host((host, port));
    match tokio::time::timeout(NETWORK_TIMEOUT, lookup).await {
        Ok(Ok(found)) => {
            let addrs: Vec<SocketAddr> = found.collect();
            let shown: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            report.ok(
                "endpoint.dns",
                KIND,
                format!("{what}{host} resolves to {}", shown.join(", ")),
            );
            addrs
        }
        Ok(Err(e)) => {
            report.fail(
                "endpoint.dns",
                KIND,
                format!("{what}{host} does not resolve: {e}"),
                "check the host name (--endpoint, --region) and this host's DNS (resolvectl status); behind a proxy pass --with-proxy with HTTPS_PROXY set",
            );
            Vec::new()
        }
        Err(_) => {
            report.fail(
                "endpoint.dns",
                KIND,
                format!(
                    "resolving {what}{host} did not finish within {} s",
                    NETWORK_TIMEOUT.as_secs()
                ),
                "check this host's DNS servers (resolvectl status)",
            );
            Vec::new()
        }
    }
}

/// Connects to the first address that answers; true when one did.
async fn tcp(addrs: &[SocketAddr], host: &str, port: u16, report: &mut Report) -> bool {
    if addrs.is_empty() {
        report.skip("endpoint.tcp", KIND, "needs the name to resolve");
        return false;
    }
    let mut errors = Vec::new();
    for addr in addrs.iter().take(4) {
        match tokio::time::timeout(NETWORK_TIMEOUT, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(_)) => {
                report.ok("endpoint.tcp", KIND, format!("connected to {addr}"));
                return true;
            }
            Ok(Err(e)) => errors.push(format!("{addr}: {e}")),
            Err(_) => errors.push(format!(
                "{addr}: no answer within {} s",
                NETWORK_TIMEOUT.as_secs()
            )),
        }
    }
    report.fail(
        "endpoint.tcp",
        KIND,
        format!("cannot connect to {host} port {port}: {}", errors.join("; ")),
        "check --endpoint and that a firewall lets this host reach it; behind a proxy pass --with-proxy with HTTPS_PROXY set",
    );
    false
}

async fn handshake(
    config: &rustls::ClientConfig,
    addrs: &[SocketAddr],
    host: &str,
    report: &mut Report,
) -> bool {
    let Ok(name) = ServerName::try_from(host.to_string()) else {
        report.fail(
            "endpoint.tls",
            KIND,
            format!("{host} is not a name TLS can check"),
            "pass --endpoint with a DNS name or an IP address",
        );
        return false;
    };
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config.clone()));
    let attempt = async {
        let mut last = String::from("no address");
        for addr in addrs.iter().take(4) {
            let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
                continue;
            };
            match connector.connect(name.clone(), stream).await {
                Ok(tls) => {
                    let (_, conn) = tls.get_ref();
                    let version = conn
                        .protocol_version()
                        .map(|v| format!("{v:?}"))
                        .unwrap_or_default();
                    let suite = conn
                        .negotiated_cipher_suite()
                        .map(|s| format!("{:?}", s.suite()))
                        .unwrap_or_default();
                    return Ok(format!("{version} {suite}"));
                }
                Err(e) => last = e.to_string(),
            }
        }
        Err(last)
    };
    let outcome = tokio::time::timeout(NETWORK_TIMEOUT, attempt).await;
    let passed = matches!(outcome, Ok(Ok(_)));
    match outcome {
        Ok(Ok(how)) => report.ok(
            "endpoint.tls",
            KIND,
            format!("{host} presented a certificate the system roots (plus AWS_CA_BUNDLE/--ca-bundle) trust: {how}"),
        ),
        Ok(Err(e)) => report.fail(
            "endpoint.tls",
            KIND,
            format!("the TLS handshake with {host} failed: {e}"),
            "for an endpoint with a private CA pass --ca-bundle or set AWS_CA_BUNDLE; a TLS-intercepting proxy needs its CA there too",
        ),
        Err(_) => report.fail(
            "endpoint.tls",
            KIND,
            format!("the TLS handshake with {host} did not finish within {} s", NETWORK_TIMEOUT.as_secs()),
            "check that --endpoint names a TLS endpoint",
        ),
    }
    passed
}
