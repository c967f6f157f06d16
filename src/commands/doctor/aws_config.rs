//! The `~/.aws/config` group: each profile whose `credential_process` runs this binary is
//! parsed as a command line and checked in turn: its flags parse, its ARNs are right, its
//! files can be read and its certificate is in date. Keys are not loaded (that may ask for
//! a PIN or password per profile); the identity lines above do that for the flags given.
//!
//! Security: a `credential_process` line may hold a password flag; the line itself is never
//! printed, and a parse error is cut to its first line with any value after a password
//! flag masked.

use std::path::{Path, PathBuf};

use clap::Parser as _;
use time::OffsetDateTime;

use super::{Kind, Report, days};
use crate::cli::{Cli, Command};
use crate::clock::Clock;
use crate::identity::Identity;
use crate::identity::source::Source;

const KIND: Kind = Kind::Config;
const NAME: &str = "aws-config";

/// `AWS_CONFIG_FILE`, else `~/.aws/config`, as the SDKs pick it.
fn config_path() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("AWS_CONFIG_FILE").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME").filter(|h| !h.is_empty())?;
    Some(Path::new(&home).join(".aws").join("config"))
}

pub(super) fn check(report: &mut Report, clock: &dyn Clock) {
    let Some(path) = config_path() else {
        return report.skip(NAME, KIND, "neither AWS_CONFIG_FILE nor HOME is set");
    };
    let shown = path.display().to_string();
    let text = match crate::files::read_regular(&path, crate::files::IDENTITY_CAP) {
        Ok(data) => String::from_utf8_lossy(&data).into_owned(),
        Err(crate::files::ReadError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound => {
            return report.ok(NAME, KIND, format!("no {shown}: no profile to check"));
        }
        Err(e) => {
            return report.fail(
                NAME,
                KIND,
                format!("cannot read {shown}: {e}"),
                "check that it is a regular file this user may read",
            );
        }
    };
    let ours: Vec<(String, Vec<String>)> = profiles(&text)
        .into_iter()
        .filter_map(|(name, line)| split(&line).map(|words| (name, words)))
        .filter(|(_, words)| words.first().is_some_and(|w| runs_this_binary(w)))
        .collect();
    if ours.is_empty() {
        return report.ok(
            NAME,
            KIND,
            format!("no profile of {shown} runs rolesanywhere-agent as its credential_process"),
        );
    }
    let now = clock.now();
    for (name, words) in ours {
        profile(report, &shown, &name, &words, now);
    }
}

/// `(profile, credential_process)` of each section that has one.
fn profiles(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut section: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.starts_with('#') || trimmed.starts_with(';') || trimmed.is_empty() {
            continue;
        }
        if let Some(header) = trimmed.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
            let header = header.trim();
            section = match header.strip_prefix("profile ") {
                Some(name) => Some(name.trim().to_string()),
                None if header == "default" => Some("default".into()),
                // sso-session, services and other sections hold no profile.
                None => None,
            };
            continue;
        }
        // Indented lines continue a nested value (`s3 =` blocks): never ours.
        if line.starts_with([' ', '\t']) {
            continue;
        }
        if let (Some(name), Some((key, value))) = (&section, trimmed.split_once('='))
            && key.trim() == "credential_process"
        {
            out.push((name.clone(), value.trim().to_string()));
        }
    }
    out
}

/// Splits a command line as the SDKs do (POSIX shell words: quotes and backslashes).
fn split(line: &str) -> Option<Vec<String>> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '\'' => break,
                        ch => word.push(ch),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next()? {
                        '"' => break,
                        '\\' => word.push(chars.next()?),
                        ch => word.push(ch),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next()?);
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    Some(words)
}

/// Whether `program` is this binary: by name, or by the file it resolves to.
fn runs_this_binary(program: &str) -> bool {
    let name = Path::new(program).file_name();
    if name.is_some_and(|n| n == "rolesanywhere-agent") {
        return true;
    }
    let Ok(exe) = std::env::current_exe() else {
        return false;
    };
    if name.is_some_and(|n| Some(n) == exe.file_name()) {
        return true;
    }
    match (std::fs::canonicalize(program), std::fs::canonicalize(&exe)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// Masks the word after each password flag, and the value of `--flag=value` forms.
fn masked(words: &[String], text: &str) -> String {
    let mut out = text.to_string();
    for (i, w) in words.iter().enumerate() {
        let secret = if w.starts_with("--pkcs8-password=") || w.starts_with("--tpm-key-password=") {
            w.split_once('=').map(|(_, v)| v.to_string())
        } else if w == "--pkcs8-password" || w == "--tpm-key-password" {
            words.get(i + 1).cloned()
        } else {
            None
        };
        if let Some(s) = secret.filter(|s| !s.is_empty()) {
            out = out.replace(&s, "****");
        }
    }
    out
}

fn profile(report: &mut Report, file: &str, name: &str, words: &[String], now: OffsetDateTime) {
    let check = format!("{NAME}.{name}");
    let cli = match Cli::try_parse_from(words) {
        Ok(cli) => cli,
        Err(e) => {
            let first = e.to_string().lines().next().unwrap_or_default().to_string();
            return report.fail(
                check,
                KIND,
                format!(
                    "profile {name} in {file}: its credential_process does not parse: {}",
                    masked(words, &first)
                ),
                "run the line by hand to see the whole message, and fix it in the file",
            );
        }
    };
    let Command::CredentialProcess(args) = cli.command else {
        return report.fail(
            check,
            KIND,
            format!("profile {name} in {file}: its credential_process runs another subcommand than credential-process"),
            "use `rolesanywhere-agent credential-process ...` in credential_process",
        );
    };
    let spec = match super::super::session_flags::spec(&args.creds) {
        Ok(spec) => spec,
        Err(e) => {
            return report.fail_maybe(
                check,
                KIND,
                format!("profile {name} in {file}: {e}"),
                e.hint(),
            );
        }
    };
    let id = &spec.identity;
    for (flag, value) in [
        ("--certificate", &id.certificate),
        ("--private-key", &id.private_key),
        ("--intermediates", &id.intermediates),
    ] {
        let Some(value) = value else { continue };
        // Only plain files can be checked from here (not tokens, TPM handles, keyrings).
        if value.contains(':') && !value.starts_with('/') && !value.starts_with('.') {
            continue;
        }
        if let Source::File(path) = Source::parse(value)
            && let Err(e) = std::fs::File::open(path)
        {
            return report.fail(
                check,
                KIND,
                format!("profile {name} in {file}: cannot read {flag} {path}: {e}"),
                "check the path (credential_process does not expand ~ or variables) and that this user may read it",
            );
        }
    }
    let Some(cert) = Identity::peek_certificate(id) else {
        return report.ok(
            check,
            KIND,
            format!(
                "profile {name}: flags parse; trust anchor {}, role {}",
                spec.settings.trust_anchor_arn.resource_name(),
                spec.settings.role_arn
            ),
        );
    };
    let saw = format!(
        "profile {name}: flags parse, files readable; certificate {} ({}), role {}",
        cert.subject(),
        if now > cert.not_after() {
            "expired".to_string()
        } else {
            format!("{} left", days(cert.not_after() - now))
        },
        spec.settings.role_arn
    );
    if now > cert.not_after() || now < cert.not_before() {
        report.fail(check, KIND, saw, "renew the certificate this profile names");
    } else if cert.not_after() - now < time::Duration::days(7) {
        report.warn(
            check,
            KIND,
            saw,
            "renew the certificate this profile names soon",
        );
    } else {
        report.ok(check, KIND, saw);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_each_profiles_credential_process() {
        let text = "[default]\nregion = us-east-1\ncredential_process = a b\n\n[profile dev]\n# comment\ncredential_process=/usr/bin/rolesanywhere-agent credential-process --x 'y z'\n[sso-session s]\ncredential_process = no\n[profile nested]\ns3 =\n  credential_process = no\n";
        assert_eq!(
            profiles(text),
            vec![
                ("default".to_string(), "a b".to_string()),
                (
                    "dev".to_string(),
                    "/usr/bin/rolesanywhere-agent credential-process --x 'y z'".to_string()
                ),
            ]
        );
    }

    #[test]
    fn splits_like_a_shell_and_masks_passwords() {
        assert_eq!(
            split(r#"a 'b c' "d \"e\"" f\ g"#).unwrap(),
            vec!["a", "b c", "d \"e\"", "f g"]
        );
        assert!(split("a 'open").is_none());
        let words: Vec<String> = [
            "x",
            "--pkcs8-password",
            "hunter2",
            "--tpm-key-password=s3cr3t",
        ]
        .map(String::from)
        .to_vec();
        let m = masked(&words, "error: hunter2 and s3cr3t");
        assert_eq!(m, "error: **** and ****");
        assert!(runs_this_binary("/opt/bin/rolesanywhere-agent"));
        assert!(!runs_this_binary("/usr/bin/aws_signing_helper_other"));
    }
}
