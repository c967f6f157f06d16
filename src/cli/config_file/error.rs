//! The errors of a `--config` file: each names the file, and the key and its line when
//! there is one; none carries a value of the file (one may be a password).

use super::accepted;

/// A config file error. Every variant names the file; those about a key name it and its
/// line. Never carries a value of the file (one may be a password).
#[derive(Debug, thiserror::Error)]
pub enum ConfigFileError {
    #[error("cannot read config file {path} (from {from}): {detail}")]
    Read {
        path: String,
        from: &'static str,
        detail: String,
    },
    #[error("config file {path} is not UTF-8 text")]
    NotUtf8 { path: String },
    #[error("config file {path}, line {line}, column {column}: invalid TOML: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("config file {path}, line {line}: unknown key '{key}' for {subcommand}")]
    UnknownKey {
        path: String,
        line: usize,
        key: String,
        subcommand: String,
        nearest: Option<String>,
    },
    #[error(
        "config file {path}, line {line}: '{key}' is a flag of {owners} but not of {subcommand}"
    )]
    OtherSubcommand {
        path: String,
        line: usize,
        key: String,
        subcommand: String,
        owners: String,
    },
    #[error("config file {path}, line {line}: '{key}' cannot be set in a config file")]
    NotInFile {
        path: String,
        line: usize,
        key: String,
    },
    #[error("config file {path}, line {line}: '{key}' takes {expected}, not {found}")]
    WrongType {
        path: String,
        line: usize,
        key: String,
        expected: &'static str,
        found: &'static str,
        example: String,
    },
    #[error("config file {path}, line {line}: '{key}': {reason}")]
    BadValue {
        path: String,
        line: usize,
        key: String,
        reason: String,
    },
    #[error(
        "config file {path}: '{first}' (line {first_line}) and '{second}' (line {second_line}) cannot be used together"
    )]
    Conflict {
        path: String,
        first: String,
        first_line: usize,
        second: String,
        second_line: usize,
    },
    #[error(
        "config file {path} holds a secret ('{key}', line {line}) but is readable by other users (mode {mode:04o})"
    )]
    LooseSecret {
        path: String,
        line: usize,
        key: String,
        mode: u32,
    },
}

impl ConfigFileError {
    /// What to do about it.
    pub fn hint(&self) -> Option<String> {
        Some(match self {
            ConfigFileError::Read { from, .. } => {
                format!("{from} must name a readable regular TOML file")
            }
            ConfigFileError::NotUtf8 { .. } => "save the file as UTF-8".into(),
            ConfigFileError::Syntax { .. } => {
                "values look like: certificate = \"/path/cert.pem\", port = 9911, reuse-pin = true, allow-host = [\"name\"]".into()
            }
            ConfigFileError::UnknownKey {
                nearest: Some(n), ..
            } => format!("did you mean '{n}'?"),
            ConfigFileError::UnknownKey { subcommand, .. } => format!(
                "{subcommand} accepts: {}; and a [SUBCOMMAND] section for each subcommand that takes --config",
                accepted(subcommand).join(", ")
            ),
            ConfigFileError::OtherSubcommand { owners, .. } => format!(
                "move it into a section read by that subcommand only, e.g. [{}]",
                owners.split(", ").next().unwrap_or("serve")
            ),
            ConfigFileError::NotInFile { .. } => {
                "give it on the command line; a config file cannot name another one".into()
            }
            ConfigFileError::WrongType { key, example, .. } => format!("write it as {key} = {example}"),
            ConfigFileError::BadValue { key, .. } => format!("see --{key} in --help"),
            ConfigFileError::Conflict { .. } => "keep one of them".into(),
            ConfigFileError::LooseSecret { path, .. } => format!(
                "chmod 600 {path} (a Kubernetes Secret volume: defaultMode: 0400), or pass the secret another way (ROLESANYWHERE_PKCS8_PASSWORD, a prompt)"
            ),
        })
    }
}
