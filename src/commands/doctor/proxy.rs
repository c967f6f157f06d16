//! The proxy part of the endpoint group: which proxy variable applies to the endpoint (with
//! `NO_PROXY`), and whether `--with-proxy` is needed, given whether the direct way works.
//! Proxies are used only with `--with-proxy`, as in the Go helper.

use super::{Kind, Report};
use crate::config::EndpointSettings;

const KIND: Kind = Kind::Runtime;

/// The proxy a request to the endpoint would go through with `--with-proxy`.
pub(super) struct Proxy {
    /// `HTTPS_PROXY=scheme://host:port` with any user and password left out.
    pub shown: String,
    pub host: String,
    pub port: u16,
}

impl Proxy {
    pub(super) fn from_env(https: bool, host: &str) -> Option<Proxy> {
        Proxy::from_vars(https, host, |name| std::env::var(name).ok())
    }

    /// As [`Proxy::from_env`], with the variables read through `var`.
    fn from_vars(https: bool, host: &str, var: impl Fn(&str) -> Option<String>) -> Option<Proxy> {
        let names: &[&str] = if https {
            &["HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"]
        } else {
            &["HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"]
        };
        let (name, value) = names
            .iter()
            .find_map(|n| var(n).filter(|v| !v.trim().is_empty()).map(|v| (*n, v)))?;
        let no_proxy = var("NO_PROXY")
            .or_else(|| var("no_proxy"))
            .unwrap_or_default();
        if no_proxy_matches(&no_proxy, host) {
            return None;
        }
        let with_scheme = if value.contains("://") {
            value.clone()
        } else {
            format!("http://{value}")
        };
        let url = reqwest::Url::parse(&with_scheme).ok()?;
        let proxy_host = url.host_str()?.trim_matches(['[', ']']).to_string();
        let port = url.port_or_known_default().unwrap_or(80);
        // Security: a proxy URL may carry a user and password; they are never shown.
        Some(Proxy {
            shown: format!("{name}={}://{proxy_host}:{port}", url.scheme()),
            host: proxy_host,
            port,
        })
    }
}

/// Whether `NO_PROXY` exempts `host`: `*`, the host itself, or a domain suffix of it.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    list.split(',')
        .map(|e| e.trim().trim_start_matches('.'))
        .filter(|e| !e.is_empty())
        .any(|e| {
            e == "*"
                || host.eq_ignore_ascii_case(e)
                || host
                    .to_ascii_lowercase()
                    .ends_with(&format!(".{}", e.to_ascii_lowercase()))
        })
}

pub(super) fn proxy_line(
    endpoint: &EndpointSettings,
    proxy: Option<&Proxy>,
    reachable: bool,
    report: &mut Report,
) {
    match (proxy, endpoint.with_proxy) {
        (Some(p), true) => report.ok(
            "endpoint.proxy",
            KIND,
            format!("--with-proxy: requests go through {}", p.shown),
        ),
        (None, true) => report.warn(
            "endpoint.proxy",
            KIND,
            "--with-proxy is given but no proxy variable applies to the endpoint (unset, or NO_PROXY matches): connecting directly",
            "set HTTPS_PROXY, or drop --with-proxy",
        ),
        (Some(p), false) if reachable => report.ok(
            "endpoint.proxy",
            KIND,
            format!("{} is set but not used without --with-proxy; the direct connection works", p.shown),
        ),
        (Some(p), false) => report.fail(
            "endpoint.proxy",
            KIND,
            format!("{} is set but not used without --with-proxy, and the direct connection fails", p.shown),
            "pass --with-proxy (as with the Go helper, proxies are used only when asked)",
        ),
        (None, false) => report.ok(
            "endpoint.proxy",
            KIND,
            "no proxy variable applies: connecting directly",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_credentials_are_never_shown_and_no_proxy_exempts() {
        let vars = |no_proxy: &'static str| {
            move |name: &str| match name {
                "HTTPS_PROXY" => Some("http://user:hunter2@proxy.test:3128".to_string()),
                "NO_PROXY" => Some(no_proxy.to_string()),
                _ => None,
            }
        };
        let host = "rolesanywhere.us-east-1.amazonaws.com";
        let p = Proxy::from_vars(true, host, vars("localhost")).unwrap();
        assert_eq!(p.shown, "HTTPS_PROXY=http://proxy.test:3128");
        assert_eq!((p.host.as_str(), p.port), ("proxy.test", 3128));
        assert!(Proxy::from_vars(true, host, vars(".amazonaws.com")).is_none());
        assert!(Proxy::from_vars(true, host, vars("*")).is_none());
        // HTTPS_PROXY does not apply to a plain-http endpoint.
        assert!(Proxy::from_vars(false, "127.0.0.1", vars("")).is_none());
    }
}
