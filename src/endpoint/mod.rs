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

mod shared_config;
#[cfg(test)]
mod tests;

pub use shared_config::{ProfileSettings, config_file_path, parse_profile};

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
            shared_config::load_profile(&env)
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
