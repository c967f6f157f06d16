//! Which CreateSession endpoint to use, chosen as the AWS SDKs choose a service's endpoint:
//! `--endpoint`, then the configured endpoint URLs (environment before the shared config
//! file, service-specific before global), then the partition's default with the FIPS and
//! dual-stack settings. [`choose_endpoint`] is a pure function of its inputs; [`Inputs::gather`]
//! reads them from the process environment and `~/.aws/config`.
//!
//! The rules, from the SDKs' shared reference and the service's endpoint rule set:
//! - an endpoint URL, highest first: `--endpoint`; `AWS_ENDPOINT_URL_ROLESANYWHERE`;
//!   `AWS_ENDPOINT_URL`; `endpoint_url` under `rolesanywhere` in the profile's `services`
//!   section; the profile's own `endpoint_url`. `AWS_IGNORE_CONFIGURED_ENDPOINT_URLS` (or
//!   `ignore_configured_endpoint_urls`) drops all but `--endpoint`. An explicit endpoint
//!   wins over the FIPS and dual-stack settings, which then do nothing.
//! - otherwise `https://rolesanywhere[-fips].REGION.SUFFIX`, the suffix being the partition's
//!   DNS suffix, or its dual-stack one with dual-stack on. A partition without dual-stack
//!   endpoints (the ISO ones) makes dual-stack an error, as in the SDKs.
//! - `AWS_USE_FIPS_ENDPOINT` / `AWS_USE_DUALSTACK_ENDPOINT` win over the profile's
//!   `use_fips_endpoint` / `use_dualstack_endpoint`; the profile is `AWS_PROFILE`'s (else
//!   `AWS_DEFAULT_PROFILE`'s, else `default`) in `AWS_CONFIG_FILE` (else `~/.aws/config`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::files;

/// The service's identifier in `AWS_ENDPOINT_URL_<SERVICE>`.
pub const ENV_SERVICE_URL: &str = "AWS_ENDPOINT_URL_ROLESANYWHERE";
/// The service's key in a `[services NAME]` section of the shared config file.
pub const SERVICES_KEY: &str = "rolesanywhere";

/// The environment variables the choice reads (besides `HOME` for the config file).
pub const ENV_NAMES: &[&str] = &[
    ENV_SERVICE_URL,
    "AWS_ENDPOINT_URL",
    "AWS_USE_FIPS_ENDPOINT",
    "AWS_USE_DUALSTACK_ENDPOINT",
    "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_CONFIG_FILE",
    "HOME",
];

/// The chosen endpoint and, for people (`doctor`, debug logs), why it was chosen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointChoice {
    /// As configured (validated later by [`crate::config::EndpointSettings`]).
    pub url: String,
    /// A short sentence: `--endpoint`, `AWS_ENDPOINT_URL_ROLESANYWHERE`, `default for
    /// partition aws-cn with FIPS (AWS_USE_FIPS_ENDPOINT)`.
    pub why: String,
    /// Where the URL came from, for error messages: `--endpoint`, a variable, a file.
    pub from: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EndpointError {
    #[error("{setting} is on, but partition {partition} has no {what} endpoints")]
    Unsupported {
        setting: String,
        partition: String,
        what: &'static str,
    },
    #[error("{setting} is '{value}', not true or false")]
    NotBoolean { setting: String, value: String },
}

impl EndpointError {
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            EndpointError::Unsupported { .. } => {
                "turn the setting off, or give the endpoint with --endpoint".into()
            }
            EndpointError::NotBoolean { setting, .. } => format!("set {setting} to true or false"),
        })
    }
}

/// A partition's endpoint facts (the SDKs' partitions table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub id: &'static str,
    pub dns_suffix: &'static str,
    /// `None`: no dual-stack endpoints.
    pub dual_stack_suffix: Option<&'static str>,
}

/// The partitions the SDKs know, with the region prefix that identifies each.
const PARTITIONS: &[(Partition, &str)] = &[
    (
        Partition {
            id: "aws-cn",
            dns_suffix: "amazonaws.com.cn",
            dual_stack_suffix: Some("api.amazonwebservices.com.cn"),
        },
        "cn-",
    ),
    (
        Partition {
            id: "aws-us-gov",
            dns_suffix: "amazonaws.com",
            dual_stack_suffix: Some("api.aws"),
        },
        "us-gov-",
    ),
    (
        Partition {
            id: "aws-iso",
            dns_suffix: "c2s.ic.gov",
            dual_stack_suffix: None,
        },
        "us-iso-",
    ),
    (
        Partition {
            id: "aws-iso-b",
            dns_suffix: "sc2s.sgov.gov",
            dual_stack_suffix: None,
        },
        "us-isob-",
    ),
    (
        Partition {
            id: "aws-iso-e",
            dns_suffix: "cloud.adc-e.uk",
            dual_stack_suffix: None,
        },
        "eu-isoe-",
    ),
    (
        Partition {
            id: "aws-iso-f",
            dns_suffix: "csp.hci.ic.gov",
            dual_stack_suffix: None,
        },
        "us-isof-",
    ),
];

const AWS: Partition = Partition {
    id: "aws",
    dns_suffix: "amazonaws.com",
    dual_stack_suffix: Some("api.aws"),
};

impl Partition {
    /// The partition named `id` (the trust anchor ARN's); an unknown one is found from the
    /// region's prefix, and failing that is `aws`, as the SDKs do for unknown regions.
    pub fn find(id: &str, region: &str) -> Partition {
        if id == AWS.id {
            return AWS;
        }
        let by_id = PARTITIONS.iter().find(|(p, _)| p.id == id);
        let by_region = PARTITIONS
            .iter()
            .find(|(_, prefix)| region.starts_with(prefix));
        by_id.or(by_region).map_or(AWS, |(p, _)| *p)
    }
}

/// The endpoint settings of one profile of the shared config file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProfileSettings {
    /// `profile 'NAME' in PATH`, for the reasons given.
    pub source: String,
    pub endpoint_url: Option<String>,
    /// `endpoint_url` under `rolesanywhere` in the `[services NAME]` section the profile names.
    pub service_endpoint_url: Option<String>,
    /// The `services` section's name, when one was used.
    pub services: Option<String>,
    pub use_fips_endpoint: Option<String>,
    pub use_dualstack_endpoint: Option<String>,
    pub ignore_configured_endpoint_urls: Option<String>,
}

/// Everything the choice depends on.
#[derive(Clone, Debug, Default)]
pub struct Inputs {
    /// `--endpoint`.
    pub flag: Option<String>,
    /// The variables of [`ENV_NAMES`] that are set and not empty.
    pub env: BTreeMap<String, String>,
    pub profile: ProfileSettings,
}

impl Inputs {
    /// Reads the environment and, unless `--endpoint` decides alone, the profile's settings
    /// in the shared config file (a missing or unreadable file has none).
    pub fn gather(flag: Option<&str>) -> Inputs {
        let flag = flag.filter(|f| !f.is_empty()).map(str::to_string);
        let env: BTreeMap<String, String> = ENV_NAMES
            .iter()
            .filter_map(|name| {
                let value = std::env::var(name).ok().filter(|v| !v.trim().is_empty())?;
                Some((name.to_string(), value))
            })
            .collect();
        let profile = if flag.is_some() {
            ProfileSettings::default()
        } else {
            load_profile(&env)
        };
        Inputs { flag, env, profile }
    }

    fn var(&self, name: &str) -> Option<&str> {
        self.env
            .get(name)
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
    }
}

/// The shared config file's path: `AWS_CONFIG_FILE`, else `~/.aws/config`.
pub fn config_file_path(env: &BTreeMap<String, String>) -> Option<PathBuf> {
    if let Some(path) = env.get("AWS_CONFIG_FILE") {
        return Some(expand_home(path, env));
    }
    env.get("HOME")
        .map(|home| Path::new(home).join(".aws").join("config"))
}

fn expand_home(path: &str, env: &BTreeMap<String, String>) -> PathBuf {
    match (path.strip_prefix("~/"), env.get("HOME")) {
        (Some(rest), Some(home)) => Path::new(home).join(rest),
        _ => PathBuf::from(path),
    }
}

/// The profile's settings from the shared config file; none when it cannot be read.
fn load_profile(env: &BTreeMap<String, String>) -> ProfileSettings {
    let Some(path) = config_file_path(env) else {
        return ProfileSettings::default();
    };
    let name = env
        .get("AWS_PROFILE")
        .or_else(|| env.get("AWS_DEFAULT_PROFILE"))
        .map_or("default", String::as_str);
    match files::read_regular(&path, files::CREDENTIALS_FILE_CAP) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            parse_profile(&text, name, &path.display().to_string())
        }
        Err(e) => {
            if !e.is_not_found() {
                tracing::debug!(path = %path.display(), error = %e, "endpoint: the shared config file is not read");
            }
            ProfileSettings::default()
        }
    }
}

/// The endpoint settings of profile `name` in the text of a shared config file (`path` for
/// the reasons given). INI as the SDKs read it: `[default]` or `[profile NAME]`, `[services
/// NAME]` with `SERVICE =` followed by indented `key = value` lines; `#` and `;` start
/// comments at the start of a line only.
pub fn parse_profile(text: &str, name: &str, path: &str) -> ProfileSettings {
    let sections = sections(text);
    let profile_header = if name == "default" {
        // `[profile default]` is read too; `[default]` is what the SDKs write.
        vec!["default".to_string(), "profile default".to_string()]
    } else {
        vec![format!("profile {name}")]
    };
    let empty = BTreeMap::new();
    let profile = profile_header
        .iter()
        .find_map(|h| sections.get(h))
        .unwrap_or(&empty);
    let top = |key: &str| profile.get(&(String::new(), key.to_string())).cloned();
    let services = top("services");
    let service_endpoint_url = services.as_ref().and_then(|s| {
        sections
            .get(&format!("services {s}"))
            .and_then(|section| section.get(&(SERVICES_KEY.to_string(), "endpoint_url".into())))
            .cloned()
    });
    ProfileSettings {
        source: format!("profile '{name}' in {path}"),
        endpoint_url: top("endpoint_url"),
        service_endpoint_url,
        services,
        use_fips_endpoint: top("use_fips_endpoint"),
        use_dualstack_endpoint: top("use_dualstack_endpoint"),
        ignore_configured_endpoint_urls: top("ignore_configured_endpoint_urls"),
    }
}

/// Section header (inner text, spaces collapsed) to `(subsection, key)` to value; top-level
/// keys have an empty subsection. Later duplicates win, as in the SDKs.
type Sections = BTreeMap<String, BTreeMap<(String, String), String>>;

fn sections(text: &str) -> Sections {
    let mut out: Sections = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut sub: Option<String> = None;
    for raw in text.lines() {
        let indented = raw.starts_with([' ', '\t']);
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(inner) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let header = inner.split_whitespace().collect::<Vec<_>>().join(" ");
            current = Some(header);
            sub = None;
            continue;
        }
        let Some(section) = &current else { continue };
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let (key, value) = (key.trim().to_ascii_lowercase(), value.trim().to_string());
        let entries = out.entry(section.clone()).or_default();
        if indented {
            if let Some(s) = &sub {
                entries.insert((s.clone(), key), value);
            }
            continue;
        }
        if value.is_empty() {
            // `SERVICE =` opens a subsection of indented lines.
            sub = Some(key);
            continue;
        }
        sub = None;
        entries.insert((String::new(), key), value);
    }
    out
}

/// A boolean setting: `true`/`false` in any case.
fn boolean(setting: &str, value: &str) -> Result<bool, EndpointError> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(EndpointError::NotBoolean {
            setting: setting.to_string(),
            value: value.to_string(),
        }),
    }
}

/// A boolean from its variable, else from the profile: the value and the name of its source.
fn setting(
    inputs: &Inputs,
    var: &str,
    key: &str,
    from_profile: Option<&str>,
) -> Result<Option<(bool, String)>, EndpointError> {
    if let Some(v) = inputs.var(var) {
        return Ok(Some((boolean(var, v)?, var.to_string())));
    }
    match from_profile {
        Some(v) => {
            let name = format!("{key} of {}", inputs.profile.source);
            Ok(Some((boolean(&name, v)?, name)))
        }
        None => Ok(None),
    }
}

/// Chooses the endpoint for `region` of partition `partition` (the trust anchor's) from
/// `inputs`. Pure: reads nothing but its arguments.
pub fn choose_endpoint(
    inputs: &Inputs,
    partition: &str,
    region: &str,
) -> Result<EndpointChoice, EndpointError> {
    let p = &inputs.profile;
    // A malformed FIPS or dual-stack value matters only when the default is used: an
    // explicit endpoint makes both settings moot.
    let fips = setting(
        inputs,
        "AWS_USE_FIPS_ENDPOINT",
        "use_fips_endpoint",
        p.use_fips_endpoint.as_deref(),
    );
    let dual = setting(
        inputs,
        "AWS_USE_DUALSTACK_ENDPOINT",
        "use_dualstack_endpoint",
        p.use_dualstack_endpoint.as_deref(),
    );
    let on = |s: &Result<Option<(bool, String)>, EndpointError>| match s {
        Ok(Some((true, name))) => Some(name.clone()),
        _ => None,
    };
    let moot = || {
        let names: Vec<String> = on(&fips).into_iter().chain(on(&dual)).collect();
        if names.is_empty() {
            String::new()
        } else {
            format!(" ({} ignored: an explicit endpoint wins)", names.join(", "))
        }
    };
    if let Some(url) = &inputs.flag {
        return Ok(explicit(url, "--endpoint", "--endpoint", moot()));
    }
    let ignore = setting(
        inputs,
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
        "ignore_configured_endpoint_urls",
        p.ignore_configured_endpoint_urls.as_deref(),
    )?;
    if !ignore.as_ref().is_some_and(|(b, _)| *b) {
        for var in [ENV_SERVICE_URL, "AWS_ENDPOINT_URL"] {
            if let Some(url) = inputs.var(var) {
                return Ok(explicit(url, var, var, moot()));
            }
        }
        if let (Some(url), Some(services)) = (&p.service_endpoint_url, &p.services) {
            let from = format!(
                "endpoint_url of {SERVICES_KEY} in [services {services}] of {}",
                p.source
            );
            return Ok(explicit(url, &from, &from, moot()));
        }
        if let Some(url) = &p.endpoint_url {
            let from = format!("endpoint_url of {}", p.source);
            return Ok(explicit(url, &from, &from, moot()));
        }
    }
    let (fips, dual) = (on(&Ok(fips?)), on(&Ok(dual?)));
    let part = Partition::find(partition, region);
    let suffix = match (&dual, part.dual_stack_suffix) {
        (None, _) => part.dns_suffix,
        (Some(_), Some(suffix)) => suffix,
        (Some(setting), None) => {
            return Err(EndpointError::Unsupported {
                setting: setting.clone(),
                partition: part.id.to_string(),
                what: "dual-stack",
            });
        }
    };
    let host = if fips.is_some() {
        "rolesanywhere-fips"
    } else {
        "rolesanywhere"
    };
    let mut why = format!("default for partition {}", part.id);
    match (&fips, &dual) {
        (Some(f), Some(d)) => why.push_str(&format!(" with FIPS ({f}) and dual-stack ({d})")),
        (Some(f), None) => why.push_str(&format!(" with FIPS ({f})")),
        (None, Some(d)) => why.push_str(&format!(" with dual-stack ({d})")),
        (None, None) => {}
    }
    Ok(EndpointChoice {
        url: format!("https://{host}.{region}.{suffix}"),
        why,
        from: "the default endpoint".into(),
    })
}

fn explicit(url: &str, why: &str, from: &str, moot: String) -> EndpointChoice {
    EndpointChoice {
        url: url.trim().to_string(),
        why: format!("{why}{moot}"),
        from: from.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs(env: &[(&str, &str)]) -> Inputs {
        Inputs {
            flag: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            profile: ProfileSettings::default(),
        }
    }

    fn url(i: &Inputs, partition: &str, region: &str) -> String {
        choose_endpoint(i, partition, region).unwrap().url
    }

    #[test]
    fn the_default_follows_the_partition_fips_and_dual_stack() {
        let cases = [
            (
                "aws",
                "us-east-1",
                "",
                "",
                "https://rolesanywhere.us-east-1.amazonaws.com",
            ),
            (
                "aws",
                "us-east-1",
                "true",
                "",
                "https://rolesanywhere-fips.us-east-1.amazonaws.com",
            ),
            (
                "aws",
                "eu-west-1",
                "",
                "true",
                "https://rolesanywhere.eu-west-1.api.aws",
            ),
            (
                "aws",
                "us-east-2",
                "true",
                "true",
                "https://rolesanywhere-fips.us-east-2.api.aws",
            ),
            (
                "aws-cn",
                "cn-north-1",
                "",
                "",
                "https://rolesanywhere.cn-north-1.amazonaws.com.cn",
            ),
            (
                "aws-cn",
                "cn-north-1",
                "true",
                "",
                "https://rolesanywhere-fips.cn-north-1.amazonaws.com.cn",
            ),
            (
                "aws-cn",
                "cn-northwest-1",
                "",
                "true",
                "https://rolesanywhere.cn-northwest-1.api.amazonwebservices.com.cn",
            ),
            (
                "aws-cn",
                "cn-north-1",
                "TRUE",
                "True",
                "https://rolesanywhere-fips.cn-north-1.api.amazonwebservices.com.cn",
            ),
            (
                "aws-us-gov",
                "us-gov-west-1",
                "",
                "",
                "https://rolesanywhere.us-gov-west-1.amazonaws.com",
            ),
            (
                "aws-us-gov",
                "us-gov-west-1",
                "true",
                "",
                "https://rolesanywhere-fips.us-gov-west-1.amazonaws.com",
            ),
            (
                "aws-us-gov",
                "us-gov-east-1",
                "",
                "true",
                "https://rolesanywhere.us-gov-east-1.api.aws",
            ),
            (
                "aws-us-gov",
                "us-gov-east-1",
                "true",
                "true",
                "https://rolesanywhere-fips.us-gov-east-1.api.aws",
            ),
            (
                "aws-iso",
                "us-iso-east-1",
                "true",
                "",
                "https://rolesanywhere-fips.us-iso-east-1.c2s.ic.gov",
            ),
            (
                "aws-iso-b",
                "us-isob-east-1",
                "",
                "false",
                "https://rolesanywhere.us-isob-east-1.sc2s.sgov.gov",
            ),
            // An unknown partition id: the region's prefix, else aws.
            (
                "aws-future",
                "cn-north-1",
                "",
                "",
                "https://rolesanywhere.cn-north-1.amazonaws.com.cn",
            ),
            (
                "aws-future",
                "xx-east-1",
                "",
                "",
                "https://rolesanywhere.xx-east-1.amazonaws.com",
            ),
        ];
        for (partition, region, fips, dual, expected) in cases {
            let mut env = vec![];
            if !fips.is_empty() {
                env.push(("AWS_USE_FIPS_ENDPOINT", fips));
            }
            if !dual.is_empty() {
                env.push(("AWS_USE_DUALSTACK_ENDPOINT", dual));
            }
            assert_eq!(
                url(&inputs(&env), partition, region),
                expected,
                "{partition} {region} {fips} {dual}"
            );
        }
    }

    #[test]
    fn the_reason_names_the_partition_and_the_settings() {
        let i = inputs(&[("AWS_USE_FIPS_ENDPOINT", "true")]);
        assert_eq!(
            choose_endpoint(&i, "aws-cn", "cn-north-1").unwrap().why,
            "default for partition aws-cn with FIPS (AWS_USE_FIPS_ENDPOINT)"
        );
        assert_eq!(
            choose_endpoint(&inputs(&[]), "aws", "us-east-1")
                .unwrap()
                .why,
            "default for partition aws"
        );
        let mut i = inputs(&[("AWS_USE_DUALSTACK_ENDPOINT", "true")]);
        i.profile = parse_profile("[profile p]\nuse_fips_endpoint = true\n", "p", "/c");
        assert_eq!(
            choose_endpoint(&i, "aws", "us-east-1").unwrap().why,
            "default for partition aws with FIPS (use_fips_endpoint of profile 'p' in /c) and dual-stack (AWS_USE_DUALSTACK_ENDPOINT)"
        );
    }

    #[test]
    fn endpoint_urls_in_order_flag_service_variable_global_variable_services_profile() {
        let text = "[profile p]\nendpoint_url = https://profile.test\nservices = s\n\n[services s]\nrolesanywhere =\n  endpoint_url = https://services.test\nsts =\n  endpoint_url = https://sts.test\n";
        let mut i = inputs(&[
            (ENV_SERVICE_URL, "https://service-env.test"),
            ("AWS_ENDPOINT_URL", "https://global-env.test"),
        ]);
        i.profile = parse_profile(text, "p", "/c");
        i.flag = Some("https://flag.test".into());
        let mut seen = vec![];
        loop {
            let choice = choose_endpoint(&i, "aws", "us-east-1").unwrap();
            seen.push((choice.url.clone(), choice.why.clone()));
            if i.flag.take().is_some() {
                continue;
            }
            if i.env.remove(ENV_SERVICE_URL).is_some() || i.env.remove("AWS_ENDPOINT_URL").is_some()
            {
                continue;
            }
            if i.profile.service_endpoint_url.take().is_some()
                || i.profile.endpoint_url.take().is_some()
            {
                continue;
            }
            break;
        }
        let expected = [
            ("https://flag.test", "--endpoint"),
            ("https://service-env.test", "AWS_ENDPOINT_URL_ROLESANYWHERE"),
            ("https://global-env.test", "AWS_ENDPOINT_URL"),
            (
                "https://services.test",
                "endpoint_url of rolesanywhere in [services s] of profile 'p' in /c",
            ),
            ("https://profile.test", "endpoint_url of profile 'p' in /c"),
            (
                "https://rolesanywhere.us-east-1.amazonaws.com",
                "default for partition aws",
            ),
        ];
        let seen: Vec<(&str, &str)> = seen.iter().map(|(u, w)| (u.as_str(), w.as_str())).collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn an_explicit_endpoint_wins_over_fips_and_dual_stack_and_says_so() {
        let mut i = inputs(&[
            ("AWS_USE_FIPS_ENDPOINT", "true"),
            ("AWS_ENDPOINT_URL", "https://e.test"),
        ]);
        let c = choose_endpoint(&i, "aws", "us-east-1").unwrap();
        assert_eq!(c.url, "https://e.test");
        assert_eq!(
            c.why,
            "AWS_ENDPOINT_URL (AWS_USE_FIPS_ENDPOINT ignored: an explicit endpoint wins)"
        );
        assert_eq!(c.from, "AWS_ENDPOINT_URL");
        i.flag = Some("http://127.0.0.1:1".into());
        assert_eq!(
            choose_endpoint(&i, "aws", "us-east-1").unwrap().from,
            "--endpoint"
        );
    }

    #[test]
    fn ignore_configured_endpoint_urls_keeps_only_the_flag() {
        let mut i = inputs(&[
            ("AWS_ENDPOINT_URL", "https://e.test"),
            ("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true"),
        ]);
        assert_eq!(
            url(&i, "aws", "us-east-1"),
            "https://rolesanywhere.us-east-1.amazonaws.com"
        );
        i.env.remove("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
        i.profile = parse_profile(
            "[default]\nignore_configured_endpoint_urls = true\n",
            "default",
            "/c",
        );
        assert_eq!(
            url(&i, "aws", "us-east-1"),
            "https://rolesanywhere.us-east-1.amazonaws.com"
        );
        i.flag = Some("https://flag.test".into());
        assert_eq!(url(&i, "aws", "us-east-1"), "https://flag.test");
    }

    #[test]
    fn variables_win_over_the_profile_and_bad_values_are_errors() {
        let mut i = inputs(&[("AWS_USE_FIPS_ENDPOINT", "false")]);
        i.profile = parse_profile("[default]\nuse_fips_endpoint = true\n", "default", "/c");
        assert_eq!(
            url(&i, "aws", "us-east-1"),
            "https://rolesanywhere.us-east-1.amazonaws.com"
        );
        i.env.clear();
        assert_eq!(
            url(&i, "aws", "us-east-1"),
            "https://rolesanywhere-fips.us-east-1.amazonaws.com"
        );
        let e = choose_endpoint(
            &inputs(&[("AWS_USE_FIPS_ENDPOINT", "yes")]),
            "aws",
            "us-east-1",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS_USE_FIPS_ENDPOINT is 'yes', not true or false"
        );
        let e = choose_endpoint(
            &inputs(&[("AWS_USE_DUALSTACK_ENDPOINT", "true")]),
            "aws-iso",
            "us-iso-east-1",
        )
        .unwrap_err();
        assert_eq!(
            e.to_string(),
            "AWS_USE_DUALSTACK_ENDPOINT is on, but partition aws-iso has no dual-stack endpoints"
        );
    }

    #[test]
    fn the_profile_is_found_by_name_and_comments_are_skipped() {
        let text = "# c\n[default]\nuse_fips_endpoint=true\n[profile  web ]\n; c\nuse_dualstack_endpoint = true\nendpoint_url = https://w.test\n[profile other]\nendpoint_url = https://o.test\n";
        let d = parse_profile(text, "default", "/c");
        assert_eq!(d.use_fips_endpoint.as_deref(), Some("true"));
        assert_eq!(d.endpoint_url, None);
        let w = parse_profile(text, "web", "/c");
        assert_eq!(w.use_dualstack_endpoint.as_deref(), Some("true"));
        assert_eq!(w.endpoint_url.as_deref(), Some("https://w.test"));
        assert_eq!(w.use_fips_endpoint, None);
        assert_eq!(parse_profile(text, "absent", "/c").endpoint_url, None);
        // A services section the profile does not name is not used.
        let s = parse_profile(
            "[default]\n[services s]\nrolesanywhere =\n endpoint_url = https://s.test\n",
            "default",
            "/c",
        );
        assert_eq!(s.service_endpoint_url, None);
    }

    #[test]
    fn the_config_file_is_aws_config_file_else_under_home() {
        let env = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert_eq!(
            config_file_path(&env(&[("HOME", "/h")])),
            Some(PathBuf::from("/h/.aws/config"))
        );
        assert_eq!(
            config_file_path(&env(&[("HOME", "/h"), ("AWS_CONFIG_FILE", "~/c")])),
            Some(PathBuf::from("/h/c"))
        );
        assert_eq!(config_file_path(&env(&[])), None);
    }
}
