//! Validated settings. Raw flags come in from [`crate::cli`]; what leaves here is typed and
//! checked (ARNs parse, regions agree, the duration is in range, the endpoint is usable), so
//! nothing downstream has to re-check user input.

use std::fmt;

/// The service's limits on `durationSeconds`.
pub const MIN_DURATION: u32 = 900;
pub const MAX_DURATION: u32 = 43200;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{flag} is required")]
    Missing { flag: &'static str },
    #[error("{flag} value '{value}' is not a valid ARN: {reason}")]
    BadArn {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("the trust anchor is in {anchor} but the profile is in {profile}")]
    RegionMismatch { anchor: String, profile: String },
    #[error("--session-duration {0} is outside 900..43200 seconds")]
    Duration(i64),
    #[error("--role-session-name '{0}' is not a valid session name")]
    SessionName(String),
    #[error("--region '{0}' is not a region name")]
    Region(String),
    #[error("{from} '{value}' is not usable: {reason}")]
    Endpoint {
        from: String,
        value: String,
        reason: String,
    },
    #[error("{flag} is not supported: {why}")]
    NotSupported {
        flag: &'static str,
        why: &'static str,
    },
    #[error("cannot read {flag} file {path}: {detail}")]
    CaBundle {
        flag: &'static str,
        path: String,
        detail: String,
    },
}

impl ConfigError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigError::Missing { flag } => format!("pass {flag}; see --help"),
            ConfigError::BadArn { flag, .. } => format!("{flag} looks like {}", example_for(flag)),
            ConfigError::RegionMismatch { .. } => {
                "the trust anchor and the profile must be in the same region: copy both ARNs from that region's console".into()
            }
            ConfigError::Duration(_) => {
                "use 900 to 43200 seconds (the profile and the role may cap it lower); the default is 3600".into()
            }
            ConfigError::SessionName(_) => "use 2 to 64 characters from letters, digits, _ and +=,.@-".into(),
            ConfigError::Region(_) => "regions look like us-east-1".into(),
            ConfigError::Endpoint { .. } => {
                "use https://HOST[:PORT]; plain http is only allowed to loopback addresses (emulate)".into()
            }
            ConfigError::NotSupported { .. } => "see the README's list of differences from the Go helper".into(),
            ConfigError::CaBundle { .. } => "give a PEM file of CA certificates".into(),
        })
    }
}

fn example_for(flag: &str) -> &'static str {
    match flag {
        "--trust-anchor-arn" => "arn:aws:rolesanywhere:REGION:ACCOUNT:trust-anchor/ID",
        "--profile-arn" => "arn:aws:rolesanywhere:REGION:ACCOUNT:profile/ID",
        _ => "arn:aws:iam::ACCOUNT:role/NAME",
    }
}

/// A parsed ARN: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Arn {
    raw: String,
    pub partition: String,
    pub service: String,
    pub region: String,
    pub account: String,
    pub resource: String,
}

impl fmt::Display for Arn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Arn {
    /// Parses any ARN.
    pub fn parse(value: &str) -> Result<Self, String> {
        let parts: Vec<&str> = value.splitn(6, ':').collect();
        let ["arn", partition, service, region, account, resource] = parts[..] else {
            return Err("an ARN has six ':'-separated fields starting with 'arn'".into());
        };
        if partition.is_empty() || service.is_empty() || resource.is_empty() {
            return Err("partition, service and resource must not be empty".into());
        }
        if !account.is_empty()
            && (account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("account '{account}' is not 12 digits"));
        }
        Ok(Arn {
            raw: value.to_string(),
            partition: partition.into(),
            service: service.into(),
            region: region.into(),
            account: account.into(),
            resource: resource.into(),
        })
    }

    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// The last path segment of the resource (a role's name, a profile's id).
    pub fn resource_name(&self) -> &str {
        self.resource.rsplit('/').next().unwrap_or(&self.resource)
    }

    /// Parses an ARN of `service` whose resource starts with `prefix`, naming `flag` in errors.
    pub fn parse_for(
        flag: &'static str,
        value: &str,
        service: &str,
        prefix: &str,
        regional: bool,
    ) -> Result<Self, ConfigError> {
        let bad = |reason: String| ConfigError::BadArn {
            flag,
            value: value.to_string(),
            reason,
        };
        let arn = Arn::parse(value).map_err(bad)?;
        if arn.service != service {
            return Err(bad(format!(
                "service is '{}', expected '{service}'",
                arn.service
            )));
        }
        if !arn.resource.starts_with(prefix) || arn.resource.len() == prefix.len() {
            return Err(bad(format!("resource must start with '{prefix}'")));
        }
        if regional && !valid_region(&arn.region) {
            return Err(bad(format!("region '{}' is not a region name", arn.region)));
        }
        if arn.account.is_empty() {
            return Err(bad("the account field is empty".into()));
        }
        Ok(arn)
    }
}

fn valid_region(region: &str) -> bool {
    !region.is_empty()
        && region.len() <= 32
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
}

/// What CreateSession is asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSettings {
    pub trust_anchor_arn: Arn,
    pub profile_arn: Arn,
    pub role_arn: Arn,
    pub region: String,
    pub duration_seconds: u32,
    pub role_session_name: Option<String>,
}

/// The raw values of the session flags, before validation.
#[derive(Clone, Debug, Default)]
pub struct RawSession<'a> {
    pub trust_anchor_arn: Option<&'a str>,
    pub profile_arn: Option<&'a str>,
    pub role_arn: Option<&'a str>,
    pub region: Option<&'a str>,
    pub duration_seconds: i64,
    pub role_session_name: Option<&'a str>,
}

impl SessionSettings {
    /// Validates the session flags.
    pub fn from_raw(raw: &RawSession<'_>) -> Result<Self, ConfigError> {
        let ta = raw.trust_anchor_arn.ok_or(ConfigError::Missing {
            flag: "--trust-anchor-arn",
        })?;
        let profile = raw.profile_arn.ok_or(ConfigError::Missing {
            flag: "--profile-arn",
        })?;
        let role = raw
            .role_arn
            .ok_or(ConfigError::Missing { flag: "--role-arn" })?;
        let trust_anchor_arn = Arn::parse_for(
            "--trust-anchor-arn",
            ta,
            "rolesanywhere",
            "trust-anchor/",
            true,
        )?;
        let profile_arn =
            Arn::parse_for("--profile-arn", profile, "rolesanywhere", "profile/", true)?;
        let role_arn = Arn::parse_for("--role-arn", role, "iam", "role/", false)?;
        if trust_anchor_arn.region != profile_arn.region {
            return Err(ConfigError::RegionMismatch {
                anchor: trust_anchor_arn.region.clone(),
                profile: profile_arn.region.clone(),
            });
        }
        let region = match raw.region.filter(|r| !r.is_empty()) {
            Some(r) if valid_region(r) => r.to_string(),
            Some(r) => return Err(ConfigError::Region(r.to_string())),
            None => trust_anchor_arn.region.clone(),
        };
        if !(i64::from(MIN_DURATION)..=i64::from(MAX_DURATION)).contains(&raw.duration_seconds) {
            return Err(ConfigError::Duration(raw.duration_seconds));
        }
        let role_session_name = match raw.role_session_name.filter(|s| !s.is_empty()) {
            Some(name) if valid_session_name(name) => Some(name.to_string()),
            Some(name) => return Err(ConfigError::SessionName(name.to_string())),
            None => None,
        };
        Ok(SessionSettings {
            trust_anchor_arn,
            profile_arn,
            role_arn,
            region,
            duration_seconds: raw.duration_seconds as u32,
            role_session_name,
        })
    }
}

fn valid_session_name(name: &str) -> bool {
    (2..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+=,.@-_".contains(&b))
}

/// Where CreateSession goes and how the connection is secured.
#[derive(Clone, Debug)]
pub struct EndpointSettings {
    /// `scheme://host[:port]`, no path.
    pub base_url: String,
    pub no_verify_ssl: bool,
    pub with_proxy: bool,
    /// Extra CA bundles to trust besides the system roots (`AWS_CA_BUNDLE`, `--ca-bundle`).
    pub ca_bundles: Vec<(&'static str, String)>,
}

impl EndpointSettings {
    /// Checks the endpoint `value` (named by `from` in errors: `--endpoint`, a variable, a
    /// file) and returns it as `scheme://host[:port]`; `https://` is assumed without a scheme.
    pub fn validate(from: &str, value: &str) -> Result<String, ConfigError> {
        let with_scheme = if value.contains("://") {
            value.to_string()
        } else {
            format!("https://{value}")
        };
        let bad = |reason: &str| ConfigError::Endpoint {
            from: from.to_string(),
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let url = reqwest::Url::parse(&with_scheme).map_err(|e| bad(&e.to_string()))?;
        let host = url.host().ok_or_else(|| bad("it has no host"))?;
        match url.scheme() {
            "https" => {}
            "http" => {
                // Security: credentials travel in the response; plain http only on loopback.
                let loopback = match host {
                    url::Host::Ipv4(ip) => ip.is_loopback(),
                    url::Host::Ipv6(ip) => ip.is_loopback(),
                    url::Host::Domain(d) => d == "localhost",
                };
                if !loopback {
                    return Err(bad("plain http is only allowed to a loopback address"));
                }
            }
            other => return Err(bad(&format!("scheme '{other}' is not http or https"))),
        }
        if !matches!(url.path(), "" | "/") || url.query().is_some() {
            return Err(bad(
                "give only scheme, host and port; the path /sessions is added",
            ));
        }
        Ok(with_scheme.trim_end_matches('/').to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TA: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:trust-anchor/ta1";
    const PROFILE: &str = "arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1";
    const ROLE: &str = "arn:aws:iam::111122223333:role/exam";

    fn raw() -> RawSession<'static> {
        RawSession {
            trust_anchor_arn: Some(TA),
            profile_arn: Some(PROFILE),
            role_arn: Some(ROLE),
            region: None,
            duration_seconds: 3600,
            role_session_name: None,
        }
    }

    #[test]
    fn region_comes_from_the_trust_anchor_unless_given() {
        let s = SessionSettings::from_raw(&raw()).unwrap();
        assert_eq!(s.region, "us-east-1");
        assert_eq!(s.role_arn.resource_name(), "exam");
        let s = SessionSettings::from_raw(&RawSession {
            region: Some("eu-west-1"),
            ..raw()
        })
        .unwrap();
        assert_eq!(s.region, "eu-west-1");
    }

    #[test]
    fn bad_values_name_the_flag() {
        let err = SessionSettings::from_raw(&RawSession {
            profile_arn: Some("arn:aws:rolesanywhere:eu-west-1:111122223333:profile/p1"),
            ..raw()
        })
        .unwrap_err();
        assert!(matches!(err, ConfigError::RegionMismatch { .. }));
        let err = SessionSettings::from_raw(&RawSession {
            role_arn: Some("role/exam"),
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().contains("--role-arn"), "{err}");
        for d in [899, 43201, -1] {
            let err = SessionSettings::from_raw(&RawSession {
                duration_seconds: d,
                ..raw()
            })
            .unwrap_err();
            assert!(matches!(err, ConfigError::Duration(_)));
        }
        let err = SessionSettings::from_raw(&RawSession {
            trust_anchor_arn: Some("arn:aws:rolesanywhere:us-east-1:111122223333:profile/p1"),
            ..raw()
        })
        .unwrap_err();
        assert!(err.to_string().contains("trust-anchor/"), "{err}");
    }

    #[test]
    fn endpoints_refuse_remote_plain_http_and_paths_naming_their_source() {
        let ok = |v: &str| EndpointSettings::validate("--endpoint", v).unwrap();
        assert_eq!(ok("http://127.0.0.1:8080/"), "http://127.0.0.1:8080");
        assert_eq!(ok("example.test"), "https://example.test");
        assert!(EndpointSettings::validate("--endpoint", "http://10.0.0.1").is_err());
        let e = EndpointSettings::validate("AWS_ENDPOINT_URL", "https://h/sessions").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("AWS_ENDPOINT_URL 'https://h/sessions' is not usable"),
            "{e}"
        );
    }

    /// The hint lists every punctuation character a session name may hold, `_` included.
    #[test]
    fn the_session_name_hint_lists_every_allowed_character() {
        let hint = ConfigError::SessionName("a b".into()).hint().unwrap();
        for c in "+=,.@-_".chars() {
            assert!(valid_session_name(&format!("ab{c}")), "{c}");
            assert!(hint.contains(c), "'{c}' missing from the hint: {hint}");
        }
    }
}
