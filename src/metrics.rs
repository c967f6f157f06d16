//! The agent's Prometheus metrics, in the text exposition format 0.0.4.
//!
//! One process-wide [`Metrics`] ([`global`]) that the layers below update as they work: the
//! session client counts CreateSession calls and times them, the cache sets the credentials'
//! expiry, the identity loader the certificate's NotAfter and the reload count, the servers
//! count requests by route and status. `GET /metrics` renders it.
//!
//! This module depends on nothing else in the crate, so any layer may record into it without
//! a cycle. Labels come only from fixed sets chosen by the code (route names, error kinds,
//! status codes), never from client or service input, so a hostile peer cannot grow the
//! series without bound, and no secret can reach a label.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

/// The upper bounds of the CreateSession duration histogram, in seconds. The service answers
/// in tens of milliseconds; the tail covers retries with backoff (up to about 10 s) and the
/// client's attempt timeout.
const DURATION_BUCKETS: [f64; 10] = [0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Stands for "not known yet" in a gauge: the sample is left out rather than reported as 0
/// (a 0 timestamp would read as "expired in 1970" on a dashboard).
const UNSET: i64 = i64::MIN;

/// Every metric the agent exports. Counters only grow; gauges are Unix timestamps.
pub struct Metrics {
    create_session: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
    session_seconds: Histogram,
    http_requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    identity_reloads: AtomicU64,
    credentials_expiry: AtomicI64,
    certificate_not_after: AtomicI64,
}

static GLOBAL: Metrics = Metrics::new();

/// The process-wide metrics.
pub fn global() -> &'static Metrics {
    &GLOBAL
}

/// The outcome of one CreateSession, as the metrics label it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionOutcome {
    Ok,
    /// A short, fixed error kind (the service's error type when it is a known one,
    /// `transport`, `timeout`, `signing`, ...).
    Error(&'static str),
}

impl Metrics {
    pub const fn new() -> Self {
        Metrics {
            create_session: Mutex::new(BTreeMap::new()),
            session_seconds: Histogram::new(),
            http_requests: Mutex::new(BTreeMap::new()),
            identity_reloads: AtomicU64::new(0),
            credentials_expiry: AtomicI64::new(UNSET),
            certificate_not_after: AtomicI64::new(UNSET),
        }
    }

    /// One CreateSession call (all of its attempts) and how long it took.
    pub fn create_session(&self, outcome: SessionOutcome, took: Duration) {
        let key = match outcome {
            SessionOutcome::Ok => ("ok", ""),
            SessionOutcome::Error(kind) => ("error", kind),
        };
        *lock(&self.create_session).entry(key).or_default() += 1;
        self.session_seconds.observe(took.as_secs_f64());
    }

    /// One HTTP request answered on an agent listener.
    pub fn http_request(&self, route: &'static str, status: u16) {
        *lock(&self.http_requests)
            .entry((route, status))
            .or_default() += 1;
    }

    /// A new certificate and key were loaded while the agent runs.
    pub fn identity_reloaded(&self) {
        self.identity_reloads.fetch_add(1, Ordering::Relaxed);
    }

    /// The Unix time at which the credentials being served expire.
    pub fn set_credentials_expiry(&self, unix_seconds: i64) {
        self.credentials_expiry
            .store(unix_seconds.max(UNSET + 1), Ordering::Relaxed);
    }

    /// The Unix time at which the certificate in use stops being valid.
    pub fn set_certificate_not_after(&self, unix_seconds: i64) {
        self.certificate_not_after
            .store(unix_seconds.max(UNSET + 1), Ordering::Relaxed);
    }

    /// The current value of `rolesanywhere_http_requests_total{route,status}`.
    pub fn http_requests(&self, route: &str, status: u16) -> u64 {
        lock(&self.http_requests)
            .iter()
            .find(|((r, s), _)| *r == route && *s == status)
            .map_or(0, |(_, n)| *n)
    }

    /// Everything, in the Prometheus text format 0.0.4 (serve it as
    /// [`CONTENT_TYPE`]).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(2048);
        family(
            &mut out,
            "rolesanywhere_build_info",
            "gauge",
            "The agent's version; always 1.",
        );
        sample(
            &mut out,
            "rolesanywhere_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );

        family(
            &mut out,
            "rolesanywhere_credentials_expiry_timestamp_seconds",
            "gauge",
            "When the credentials being served expire (Unix time).",
        );
        let expiry = self.credentials_expiry.load(Ordering::Relaxed);
        if expiry != UNSET {
            sample(
                &mut out,
                "rolesanywhere_credentials_expiry_timestamp_seconds",
                &[],
                expiry,
            );
        }

        family(
            &mut out,
            "rolesanywhere_certificate_not_after_timestamp_seconds",
            "gauge",
            "When the certificate in use stops being valid (Unix time).",
        );
        let not_after = self.certificate_not_after.load(Ordering::Relaxed);
        if not_after != UNSET {
            sample(
                &mut out,
                "rolesanywhere_certificate_not_after_timestamp_seconds",
                &[],
                not_after,
            );
        }

        family(
            &mut out,
            "rolesanywhere_create_session_total",
            "counter",
            "CreateSession calls by result; error is a fixed kind such as AccessDeniedException or transport.",
        );
        for ((result, error), n) in lock(&self.create_session).iter() {
            sample(
                &mut out,
                "rolesanywhere_create_session_total",
                &[("result", result), ("error", error)],
                *n,
            );
        }

        self.session_seconds.render(
            &mut out,
            "rolesanywhere_create_session_duration_seconds",
            "Time taken by a CreateSession call, retries included.",
        );

        family(
            &mut out,
            "rolesanywhere_http_requests_total",
            "counter",
            "Requests answered by the agent's endpoints, by route and HTTP status.",
        );
        for ((route, status), n) in lock(&self.http_requests).iter() {
            let status = status.to_string();
            sample(
                &mut out,
                "rolesanywhere_http_requests_total",
                &[("route", route), ("status", &status)],
                *n,
            );
        }

        family(
            &mut out,
            "rolesanywhere_identity_reloads_total",
            "counter",
            "Times a renewed certificate and key were loaded while running.",
        );
        sample(
            &mut out,
            "rolesanywhere_identity_reloads_total",
            &[],
            self.identity_reloads.load(Ordering::Relaxed),
        );
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

/// The `Content-Type` of [`Metrics::render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A histogram with fixed buckets; observations are counted in the first bucket that holds
/// them and accumulated when rendered, as the format wants.
struct Histogram {
    buckets: [AtomicU64; DURATION_BUCKETS.len()],
    /// Observations above the last bound (only in `+Inf`).
    over: AtomicU64,
    /// The sum in microseconds, so it can be an atomic integer.
    sum_micros: AtomicU64,
}

impl Histogram {
    const fn new() -> Self {
        Histogram {
            buckets: [const { AtomicU64::new(0) }; DURATION_BUCKETS.len()],
            over: AtomicU64::new(0),
            sum_micros: AtomicU64::new(0),
        }
    }

    fn observe(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        let slot = DURATION_BUCKETS
            .iter()
            .zip(&self.buckets)
            .find(|(bound, _)| seconds <= **bound)
            .map(|(_, count)| count);
        slot.unwrap_or(&self.over).fetch_add(1, Ordering::Relaxed);
        // Saturating float-to-int conversion: at most u64::MAX microseconds.
        self.sum_micros
            .fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    fn render(&self, out: &mut String, name: &str, help: &str) {
        family(out, name, "histogram", help);
        let bucket = format!("{name}_bucket");
        let mut cumulative = 0u64;
        for (bound, count) in DURATION_BUCKETS.iter().zip(&self.buckets) {
            cumulative += count.load(Ordering::Relaxed);
            sample(out, &bucket, &[("le", &bound.to_string())], cumulative);
        }
        cumulative += self.over.load(Ordering::Relaxed);
        sample(out, &bucket, &[("le", "+Inf")], cumulative);
        let sum = self.sum_micros.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum {sum}");
        sample(out, &format!("{name}_count"), &[], cumulative);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update is a single insert or increment: a panic elsewhere cannot leave the map
    // half-written, so a poisoned lock is still safe to read.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (key, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
            out.push_str("=\"");
            escape_label(out, value);
            out.push('"');
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Label values escape `\`, `"` and newlines (format 0.0.4).
fn escape_label(out: &mut String, value: &str) {
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The value of the one sample line that starts with `prefix` (name plus labels).
    fn value(text: &str, prefix: &str) -> Option<String> {
        text.lines()
            .find(|l| !l.starts_with('#') && l.rsplit_once(' ').is_some_and(|(k, _)| k == prefix))
            .and_then(|l| l.rsplit_once(' ').map(|(_, v)| v.to_string()))
    }

    #[test]
    fn a_fresh_registry_has_every_family_and_no_made_up_gauges() {
        let m = Metrics::new();
        let text = m.render();
        for name in [
            "rolesanywhere_build_info",
            "rolesanywhere_credentials_expiry_timestamp_seconds",
            "rolesanywhere_certificate_not_after_timestamp_seconds",
            "rolesanywhere_create_session_total",
            "rolesanywhere_create_session_duration_seconds",
            "rolesanywhere_http_requests_total",
            "rolesanywhere_identity_reloads_total",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name} ")),
                "{name} in {text}"
            );
        }
        let build = format!(
            "rolesanywhere_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(value(&text, &build).as_deref(), Some("1"));
        // Unknown timestamps are left out, not reported as 1970.
        assert_eq!(
            value(&text, "rolesanywhere_credentials_expiry_timestamp_seconds"),
            None
        );
        assert_eq!(
            value(&text, "rolesanywhere_identity_reloads_total").as_deref(),
            Some("0")
        );
    }

    #[test]
    fn counters_and_gauges_move() {
        let m = Metrics::new();
        m.create_session(SessionOutcome::Ok, Duration::from_millis(30));
        m.create_session(SessionOutcome::Ok, Duration::from_millis(40));
        m.create_session(
            SessionOutcome::Error("AccessDeniedException"),
            Duration::from_secs(60),
        );
        m.http_request("imds-credentials", 200);
        m.http_request("imds-credentials", 200);
        m.http_request("refused-host", 403);
        m.identity_reloaded();
        m.set_credentials_expiry(1_800_000_000);
        m.set_certificate_not_after(1_900_000_000);
        let text = m.render();
        assert_eq!(
            value(
                &text,
                "rolesanywhere_create_session_total{result=\"ok\",error=\"\"}"
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(
            value(
                &text,
                "rolesanywhere_create_session_total{result=\"error\",error=\"AccessDeniedException\"}"
            )
            .as_deref(),
            Some("1")
        );
        assert_eq!(
            value(
                &text,
                "rolesanywhere_http_requests_total{route=\"imds-credentials\",status=\"200\"}"
            )
            .as_deref(),
            Some("2")
        );
        assert_eq!(m.http_requests("refused-host", 403), 1);
        assert_eq!(m.http_requests("refused-host", 200), 0);
        assert_eq!(
            value(&text, "rolesanywhere_identity_reloads_total").as_deref(),
            Some("1")
        );
        assert_eq!(
            value(&text, "rolesanywhere_credentials_expiry_timestamp_seconds").as_deref(),
            Some("1800000000")
        );
        assert_eq!(
            value(
                &text,
                "rolesanywhere_certificate_not_after_timestamp_seconds"
            )
            .as_deref(),
            Some("1900000000")
        );
    }

    #[test]
    fn the_histogram_is_cumulative_and_counts_the_overflow() {
        let m = Metrics::new();
        for ms in [10, 30, 30, 700, 45_000] {
            m.create_session(SessionOutcome::Ok, Duration::from_millis(ms));
        }
        let text = m.render();
        let h = "rolesanywhere_create_session_duration_seconds";
        let bucket = |le: &str| value(&text, &format!("{h}_bucket{{le=\"{le}\"}}"));
        assert_eq!(bucket("0.025").as_deref(), Some("1"));
        assert_eq!(bucket("0.05").as_deref(), Some("3"));
        assert_eq!(bucket("0.5").as_deref(), Some("3"));
        assert_eq!(bucket("1").as_deref(), Some("4"));
        assert_eq!(bucket("30").as_deref(), Some("4"));
        assert_eq!(bucket("+Inf").as_deref(), Some("5"));
        assert_eq!(value(&text, &format!("{h}_count")).as_deref(), Some("5"));
        let sum: f64 = value(&text, &format!("{h}_sum")).unwrap().parse().unwrap();
        assert!((sum - 45.77).abs() < 1e-6, "{sum}");
    }

    #[test]
    fn label_values_are_escaped() {
        let mut out = String::new();
        sample(&mut out, "m", &[("k", "a\"b\\c\nd")], 1);
        assert_eq!(out, "m{k=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn every_line_is_a_comment_or_a_well_formed_sample() {
        let m = Metrics::new();
        m.http_request("healthz", 200);
        m.create_session(SessionOutcome::Error("transport"), Duration::from_millis(5));
        for line in m.render().lines() {
            if line.starts_with("# HELP ") || line.starts_with("# TYPE ") {
                continue;
            }
            let (series, value) = line.rsplit_once(' ').expect("name value");
            assert!(value.parse::<f64>().is_ok(), "{line}");
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "{line}"
            );
        }
    }
}
