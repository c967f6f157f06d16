//! The endpoint settings of one profile of the AWS shared config file (`~/.aws/config`):
//! where the file is, and a reader of the few keys the endpoint choice needs. Not a general
//! INI model: unknown keys and sections are skipped.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::SERVICES_KEY;
use crate::files;

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
pub(super) fn load_profile(env: &BTreeMap<String, String>) -> ProfileSettings {
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
