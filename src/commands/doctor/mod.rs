//! `doctor`: checks a setup end to end and says, check by check, what it saw and how to fix
//! it. Every check runs even after another fails (a later one only reports "skip" when it
//! needs what an earlier one could not provide). One file per group of checks; this one owns
//! the report, its two output forms and the exit code.
//!
//! Security: nothing secret is ever put in a line. Credentials obtained by the CreateSession
//! check are dropped after their access key id and expiry are read; key and password flags
//! are named, never echoed.

mod agent;
mod aws_config;
mod certificate;
mod chain;
mod clock;
mod endpoint;
mod flags;
mod key;
mod proxy;
mod session;

use std::io::Write as _;
use std::sync::Arc;

use crate::cli::DoctorArgs;
use crate::clock::Clock;
use crate::error::Error;
use crate::identity::{Certificate, Identity};

/// The outcome of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Status {
    Ok,
    Warn,
    Fail,
    /// Not run: it needs what an earlier check could not provide (or `--no-session`).
    Skip,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
            Status::Skip => "skip",
        }
    }
}

/// Whose fault a failure is, for the exit code: the flags and files (2) or the network, the
/// service and the agent at run time (1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    Config,
    Runtime,
}

/// One line of the report.
#[derive(Clone, Debug)]
pub(super) struct Check {
    pub name: String,
    pub kind: Kind,
    pub status: Status,
    pub saw: String,
    pub fix: Option<String>,
}

/// The checks in the order they ran.
#[derive(Default)]
pub(super) struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    fn push(
        &mut self,
        name: impl Into<String>,
        kind: Kind,
        status: Status,
        saw: String,
        fix: Option<String>,
    ) {
        self.checks.push(Check {
            name: name.into(),
            kind,
            status,
            // One line per check, whatever the error chains look like.
            saw: one_line(&saw),
            fix: fix.map(|f| one_line(&f)),
        });
    }

    pub fn ok(&mut self, name: impl Into<String>, kind: Kind, saw: impl Into<String>) {
        self.push(name, kind, Status::Ok, saw.into(), None);
    }

    pub fn warn(
        &mut self,
        name: impl Into<String>,
        kind: Kind,
        saw: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(name, kind, Status::Warn, saw.into(), Some(fix.into()));
    }

    pub fn fail(
        &mut self,
        name: impl Into<String>,
        kind: Kind,
        saw: impl Into<String>,
        fix: impl Into<String>,
    ) {
        self.push(name, kind, Status::Fail, saw.into(), Some(fix.into()));
    }

    /// A failure whose fix may be unknown (an error without a hint).
    pub fn fail_maybe(
        &mut self,
        name: impl Into<String>,
        kind: Kind,
        saw: impl Into<String>,
        fix: Option<String>,
    ) {
        self.push(name, kind, Status::Fail, saw.into(), fix);
    }

    pub fn skip(&mut self, name: impl Into<String>, kind: Kind, why: impl Into<String>) {
        self.push(name, kind, Status::Skip, why.into(), None);
    }

    fn failed(&self, kind: Kind) -> usize {
        self.checks
            .iter()
            .filter(|c| c.status == Status::Fail && c.kind == kind)
            .count()
    }

    fn count(&self, status: Status) -> usize {
        self.checks.iter().filter(|c| c.status == status).count()
    }

    /// `ok   name  saw  -> fix`, aligned, then a summary line.
    fn to_text(&self) -> String {
        let width = self.checks.iter().map(|c| c.name.len()).max().unwrap_or(0);
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!(
                "{:<4}  {:<width$}  {}",
                c.status.label(),
                c.name,
                c.saw
            ));
            if let Some(fix) = &c.fix {
                out.push_str("  -> fix: ");
                out.push_str(fix);
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "{} ok, {} warn, {} FAIL, {} skipped\n",
            self.count(Status::Ok),
            self.count(Status::Warn),
            self.count(Status::Fail),
            self.count(Status::Skip)
        ));
        out
    }

    /// An array of `{check, status, saw, fix}`; status is `ok`, `warn`, `fail` or `skip`.
    fn to_json(&self) -> String {
        let items: Vec<serde_json::Value> = self
            .checks
            .iter()
            .map(|c| {
                serde_json::json!({
                    "check": c.name,
                    "status": c.status.label().to_ascii_lowercase(),
                    "saw": c.saw,
                    "fix": c.fix,
                })
            })
            .collect();
        serde_json::to_string_pretty(&items).unwrap_or_else(|_| "[]".into())
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

/// What the groups learn and later groups use.
pub(super) struct Found {
    /// The validated session settings, when the flags are good.
    pub settings: Option<crate::config::SessionSettings>,
    /// The leaf certificate, when it could be read.
    pub certificate: Option<Certificate>,
    /// The loaded identity (certificate, chain, key), when everything loaded.
    pub identity: Option<Identity>,
    /// Whether the certificate and key passed (a CreateSession can succeed).
    pub identity_usable: bool,
    /// The endpoint settings (URL, TLS, proxy), when the endpoint is usable.
    pub endpoint: Option<crate::config::EndpointSettings>,
    /// Whether the endpoint answered on TCP (or through the proxy).
    pub reachable: bool,
}

/// Runs every check, prints the report, and fails with the exit code the report calls for.
pub async fn run(args: &DoctorArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    let mut report = Report::default();
    let spec = args.creds.identity.spec();
    let mut found = Found {
        settings: None,
        certificate: None,
        identity: None,
        identity_usable: false,
        endpoint: None,
        reachable: false,
    };
    let given = flags::anything_given(&args.creds);
    if given {
        found.settings = flags::check(&args.creds, &mut report);
        let now = clock.now();
        let loaded = certificate::load(&spec, &mut report);
        found.certificate = loaded.certificate.clone();
        let cert_ok = match &found.certificate {
            Some(cert) => certificate::check(cert, now, &mut report),
            None => false,
        };
        let key_ok = key::check(&spec, &loaded, &mut report);
        found.identity = loaded.identity;
        found.identity_usable = cert_ok && key_ok;
        let files = match (&found.identity, &found.certificate) {
            (None, Some(leaf)) => certificate::read_chain(&spec).map(|chain| (leaf, chain)),
            _ => None,
        };
        chain::check(
            found.identity.as_ref(),
            files,
            &args.creds,
            found.settings.as_ref(),
            &mut report,
        );
        let tls = endpoint::check(&args.creds, found.settings.as_ref(), &mut report).await;
        if let Some(tls) = tls {
            found.reachable = tls.reachable;
            clock::check(&tls, clock.as_ref(), &mut report).await;
            found.endpoint = Some(tls.settings);
        } else {
            clock::skipped(&mut report);
        }
        session::check(args, &found, clock.clone(), &mut report).await;
    } else {
        report.skip(
            "flags",
            Kind::Config,
            "no identity or ARN flags given: checking the agent and ~/.aws/config only",
        );
    }
    agent::check(args, &spec, &found, clock.as_ref(), &mut report);
    aws_config::check(&mut report, clock.as_ref());

    let text = if args.json {
        let mut t = report.to_json();
        t.push('\n');
        t
    } else {
        report.to_text()
    };
    let mut out = std::io::stdout().lock();
    out.write_all(text.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))?;
    let (config, runtime) = (report.failed(Kind::Config), report.failed(Kind::Runtime));
    if config + runtime > 0 {
        return Err(Error::ChecksFailed {
            failed: config + runtime,
            configuration: config > 0,
        });
    }
    Ok(())
}

/// How long each network step may take.
pub(super) const NETWORK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Days and hours, for validity lines: `89 days 23 hours`, `5 hours`.
pub(super) fn days(d: time::Duration) -> String {
    let (days, hours) = (d.whole_days(), d.whole_hours() % 24);
    match days {
        0 => format!("{hours} hours"),
        1 => format!("1 day {hours} hours"),
        _ => format!("{days} days {hours} hours"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_pick_the_exit_code_by_kind_and_lines_stay_single() {
        let mut r = Report::default();
        r.ok("a", Kind::Config, "fine");
        r.warn("b", Kind::Runtime, "meh\n  caused by: x", "do y");
        assert_eq!((r.failed(Kind::Config), r.failed(Kind::Runtime)), (0, 0));
        r.fail("c", Kind::Runtime, "down", "bring it up");
        assert_eq!(r.failed(Kind::Runtime), 1);
        let text = r.to_text();
        assert_eq!(text.lines().count(), 4, "{text}");
        assert!(
            text.contains("warn  b  meh; caused by: x  -> fix: do y"),
            "{text}"
        );
        assert!(text.contains("FAIL  c  down"), "{text}");
        let json: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(json[2]["status"], "fail");
        assert_eq!(json[0]["fix"], serde_json::Value::Null);
    }
}
