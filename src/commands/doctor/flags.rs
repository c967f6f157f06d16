//! The flags group: each ARN parses and names the right resource type, the trust anchor and
//! the profile share a region and an account, and the session flags are in range.

use super::{Kind, Report};
use crate::cli::CredentialArgs;
use crate::config::{Arn, ConfigError, SessionSettings};

const KIND: Kind = Kind::Config;

/// Whether any identity or ARN flag was given (without any, only the agent and
/// `~/.aws/config` are checked).
pub(super) fn anything_given(args: &CredentialArgs) -> bool {
    let id = &args.identity;
    id.cert.certificate.is_some()
        || id.private_key.is_some()
        || args.trust_anchor_arn.is_some()
        || args.profile_arn.is_some()
        || args.role_arn.is_some()
}

/// Checks the flags; returns the validated settings when all of them are good.
pub(super) fn check(args: &CredentialArgs, report: &mut Report) -> Option<SessionSettings> {
    if let Err(e) = super::super::refuse_unbuilt_features(&args.identity) {
        report.fail_maybe("flags.key-store", KIND, e.to_string(), e.hint());
    }
    let anchor = arn(
        report,
        "flags.trust-anchor-arn",
        "--trust-anchor-arn",
        args.trust_anchor_arn.as_deref(),
        ("rolesanywhere", "trust-anchor/", true),
    );
    let profile = arn(
        report,
        "flags.profile-arn",
        "--profile-arn",
        args.profile_arn.as_deref(),
        ("rolesanywhere", "profile/", true),
    );
    let role = arn(
        report,
        "flags.role-arn",
        "--role-arn",
        args.role_arn.as_deref(),
        ("iam", "role/", false),
    );
    match (&anchor, &profile) {
        (Some(a), Some(p)) if a.region != p.region || a.account != p.account => report.fail(
            "flags.same-region-account",
            KIND,
            format!(
                "the trust anchor is in {} account {}, the profile in {} account {}",
                a.region, a.account, p.region, p.account
            ),
            "a trust anchor and a profile work together only in one region of one account: copy both ARNs from that region's console",
        ),
        (Some(a), Some(p)) => match &role {
            Some(r) if r.account != p.account => report.warn(
                "flags.same-region-account",
                KIND,
                format!(
                    "trust anchor and profile in {} account {}, but the role in account {}",
                    a.region, a.account, r.account
                ),
                "the profile can only list roles of its own account: check --role-arn",
            ),
            _ => report.ok(
                "flags.same-region-account",
                KIND,
                format!(
                    "trust anchor and profile both in {} account {}",
                    a.region, a.account
                ),
            ),
        },
        _ => report.skip(
            "flags.same-region-account",
            KIND,
            "needs both ARNs to parse",
        ),
    }
    let raw = super::super::session_flags::raw_session(args);
    match SessionSettings::from_raw(&raw) {
        Ok(s) => {
            report.ok(
                "flags.session",
                KIND,
                format!(
                    "signing region {}, session duration {} s{}",
                    s.region,
                    s.duration_seconds,
                    s.role_session_name
                        .as_deref()
                        .map(|n| format!(", session name {n}"))
                        .unwrap_or_default()
                ),
            );
            Some(s)
        }
        Err(
            e @ (ConfigError::Duration(_) | ConfigError::SessionName(_) | ConfigError::Region(_)),
        ) => {
            report.fail_maybe("flags.session", KIND, e.to_string(), e.hint());
            None
        }
        // Reported above, by the ARN lines.
        Err(_) => {
            report.skip("flags.session", KIND, "needs the ARNs to be right");
            None
        }
    }
}

/// One ARN line: missing, not an ARN, the wrong service or resource type, or fine.
fn arn(
    report: &mut Report,
    name: &str,
    flag: &'static str,
    value: Option<&str>,
    (service, prefix, regional): (&str, &str, bool),
) -> Option<Arn> {
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        let e = ConfigError::Missing { flag };
        report.fail(
            name,
            KIND,
            format!("{flag} is not given"),
            ConfigError::BadArn {
                flag,
                value: String::new(),
                reason: String::new(),
            }
            .hint()
            .or_else(|| e.hint())
            .unwrap_or_default(),
        );
        return None;
    };
    match Arn::parse_for(flag, value, service, prefix, regional) {
        Ok(arn) => {
            let place = if regional {
                format!("{} account {}", arn.region, arn.account)
            } else {
                format!("account {}", arn.account)
            };
            report.ok(
                name,
                KIND,
                format!(
                    "{} {} in {place}",
                    prefix.trim_end_matches('/'),
                    arn.resource_name()
                ),
            );
            Some(arn)
        }
        Err(e) => {
            report.fail_maybe(name, KIND, e.to_string(), e.hint());
            None
        }
    }
}
