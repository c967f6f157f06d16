//! The AWS shared credentials file (`~/.aws/credentials`), as written by the drop-in `update`
//! command.
//!
//! This module owns finding the file ([`default_path`]), rewriting one profile's three
//! credential keys while leaving every other byte alone ([`render`], pure), and replacing the
//! file safely ([`update_profile`]): private mode, atomic rename, symlinks followed, writers
//! serialised by a lock file so concurrent updates of different profiles all survive. It
//! also provides the crate's one atomic private-file writer, shared with
//! [`crate::disk_cache`].
//!
//! The parser is deliberately line-based instead of a full INI model: a model would
//! normalise spacing, comments and line endings, and the file belongs to the user.

use std::borrow::Cow;
use std::ffi::OsString;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use secrecy::ExposeSecret;
use zeroize::{Zeroize, Zeroizing};

use crate::credentials::Credentials;

/// The environment variable every SDK reads for the file's location.
pub const ENV_FILE: &str = "AWS_SHARED_CREDENTIALS_FILE";

/// How many symbolic links we follow before giving up (the kernel's own limit is 40).
const MAX_SYMLINKS: usize = 40;

/// How long a writer waits for another to release the lock: a write takes milliseconds, so
/// this is only ever reached when a process hangs while holding it.
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Errors from finding, reading or writing the shared credentials file. No message ever
/// contains a credential value.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsFileError {
    #[error(
        "cannot find the shared credentials file: neither {ENV_FILE} nor a home directory is set"
    )]
    NoHome,
    #[error("profile name {profile:?} cannot be written as a section header")]
    InvalidProfile { profile: String },
    #[error(
        "refusing to write {field} to {}: the value is empty, has surrounding spaces or holds a control character",
        path.display()
    )]
    InvalidValue { path: PathBuf, field: &'static str },
    #[error("too many levels of symbolic links at {}", path.display())]
    SymlinkLoop { path: PathBuf },
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot read {}: {source}", path.display())]
    Refused {
        path: PathBuf,
        #[source]
        source: crate::files::ReadError,
    },
    #[error("cannot lock {}: {source}", path.display())]
    Lock {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "another process has held the lock {} for {} s",
        path.display(),
        LOCK_WAIT.as_secs()
    )]
    LockBusy { path: PathBuf },
    #[error("{} is not UTF-8 text", path.display())]
    NotUtf8 { path: PathBuf },
    #[error("cannot create directory {}: {source}", path.display())]
    CreateDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl CredentialsFileError {
    /// Whether the user's setup is at fault (exit 2) rather than a runtime failure. Each of
    /// these is found by [`preflight`], before anything is sent.
    pub fn is_configuration(&self) -> bool {
        matches!(
            self,
            CredentialsFileError::NoHome
                | CredentialsFileError::InvalidProfile { .. }
                | CredentialsFileError::Refused { .. }
                | CredentialsFileError::NotUtf8 { .. }
                | CredentialsFileError::SymlinkLoop { .. }
        )
    }

    /// What the user can do about it, when we know.
    pub fn hint(&self) -> Option<String> {
        let denied = |source: &io::Error, path: &Path| {
            (source.kind() == io::ErrorKind::PermissionDenied).then(|| {
                format!(
                    "check that you own {} and can write to its directory",
                    path.display()
                )
            })
        };
        match self {
            CredentialsFileError::NoHome => Some(format!(
                "set HOME, or set {ENV_FILE} to the credentials file to update"
            )),
            CredentialsFileError::InvalidProfile { .. } => Some(
                "use a --profile name without '[', ']', control characters or surrounding spaces"
                    .into(),
            ),
            CredentialsFileError::InvalidValue { .. } => {
                Some("the service's response was malformed; the file was left unchanged".into())
            }
            CredentialsFileError::SymlinkLoop { path } => Some(format!(
                "fix the symbolic link at {} (it points back to itself)",
                path.display()
            )),
            CredentialsFileError::Refused { path, source } => Some(match source {
                crate::files::ReadError::TooLarge { .. } => format!(
                    "check that {ENV_FILE} or the home directory names the credentials file; {} was left unchanged",
                    path.display()
                ),
                _ => format!(
                    "point {ENV_FILE} at a regular file; {} was left unchanged",
                    path.display()
                ),
            }),
            CredentialsFileError::LockBusy { path } => Some(format!(
                "find the process holding it with `fuser {}`; the credentials file was left unchanged",
                path.display()
            )),
            CredentialsFileError::NotUtf8 { path } => Some(format!(
                "the credentials file must be UTF-8 text; fix or move {} (it was left unchanged)",
                path.display()
            )),
            CredentialsFileError::Read { path, source }
            | CredentialsFileError::CreateDir { path, source }
            | CredentialsFileError::Lock { path, source }
            | CredentialsFileError::Write { path, source } => denied(source, path),
        }
    }
}

/// `$AWS_SHARED_CREDENTIALS_FILE` (with a leading `~` expanded, as botocore does), else
/// `~/.aws/credentials`.
pub fn default_path() -> Result<PathBuf, CredentialsFileError> {
    default_path_from(std::env::var_os(ENV_FILE), home_dir())
}

fn home_dir() -> Option<PathBuf> {
    // HOME first, like the SDKs; `directories` falls back to the password database.
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf()))
}

/// The environment-free part of [`default_path`], so it can be tested without `set_var`.
fn default_path_from(
    env_file: Option<OsString>,
    home: Option<PathBuf>,
) -> Result<PathBuf, CredentialsFileError> {
    if let Some(file) = env_file.filter(|f| !f.is_empty()) {
        let file = PathBuf::from(file);
        if let (Ok(rest), Some(home)) = (file.strip_prefix("~"), home.as_ref()) {
            return Ok(home.join(rest));
        }
        return Ok(file);
    }
    home.map(|h| h.join(".aws").join("credentials"))
        .ok_or(CredentialsFileError::NoHome)
}

/// The checks `update` makes before it asks for credentials: the profile name can be
/// written, and the file (when it exists) is a regular UTF-8 file under the size cap. The
/// file is checked again when it is written.
pub fn preflight(path: &Path, profile: &str) -> Result<(), CredentialsFileError> {
    validate_profile(profile)?;
    let target = resolve_symlinks(path)?;
    read_existing(&target).map(drop)
}

/// Writes `creds` into section `[profile]` of the file at `path`, creating the file (and its
/// directory, 0700) when missing. The result is always mode 0600. If `path` is a symbolic
/// link, the file it points to is replaced and the link is kept. Concurrent writers (other
/// `update` runs, for this profile or another) take turns through the lock file
/// `NAME.lock` beside the file, and each re-reads the file under the lock, so no update is
/// lost.
pub fn update_profile(
    path: &Path,
    profile: &str,
    creds: &Credentials,
) -> Result<(), CredentialsFileError> {
    validate_profile(profile)?;
    for (field, value) in field_values(creds) {
        if !valid_value(value) {
            return Err(CredentialsFileError::InvalidValue {
                path: path.to_path_buf(),
                field: field.key(),
            });
        }
    }
    let target = resolve_symlinks(path)?;
    let dir = parent_dir(&target);
    crate::files::create_private_dir(dir).map_err(|source| CredentialsFileError::CreateDir {
        path: dir.to_path_buf(),
        source,
    })?;
    // Held until the new file is in place: another writer's read-modify-write must not
    // start from the file we are about to replace.
    let _lock = lock_beside(&target)?;
    let (existing, old_mode) = read_existing(&target)?;
    let rendered = render(&existing, profile, creds);
    crate::files::write_atomically(&target, rendered.as_bytes(), 0o600).map_err(|source| {
        CredentialsFileError::Write {
            path: target.clone(),
            source,
        }
    })?;
    if let Some(mode) = old_mode.filter(|m| m & 0o077 != 0) {
        tracing::info!(
            path = %target.display(),
            "tightened permissions of the credentials file from {:03o} to 600",
            mode & 0o777
        );
    }
    tracing::debug!(path = %target.display(), profile, "updated the shared credentials file");
    Ok(())
}

/// Returns `existing` with the three credential keys of `[profile]` set to `creds`; every
/// other line is kept byte for byte. Missing keys go right after the section's last key;
/// a missing section is appended. Duplicates of the three keys are dropped with their old
/// values; where that would change how the lines after one are read, a comment takes its
/// place (see [`settle`]), so a second rewrite changes nothing. Control characters in the values or the profile name are
/// dropped, so nothing can inject lines ([`update_profile`] refuses such values outright).
pub fn render(existing: &str, profile: &str, creds: &Credentials) -> Zeroizing<String> {
    let lines = split_lines(existing);
    let default_ending = lines
        .iter()
        .map(|l| l.ending)
        .find(|e| !e.is_empty())
        .unwrap_or("\n");
    let kinds = classify(&lines);
    let mut plan = plan(&lines, &kinds, profile);
    settle(&lines, &kinds, &mut plan);
    let values = field_values(creds);

    // Reserve everything up front: growing a String copies it and leaves the old buffer,
    // secrets included, in freed memory.
    let values_len: usize = values.iter().map(|(_, v)| v.len()).sum();
    let capacity = existing.len()
        + profile.len()
        + values_len
        + 3 * (plan.insert_indent.len() + 40)
        + 8 * default_ending.len()
        + 8
        + plan.marks * (DROPPED_MARK.len() + 2);
    let mut out = Zeroizing::new(String::with_capacity(capacity));
    // The line ending written last, taken off again when the file had no final newline.
    let mut last_ending = "";

    for (i, (line, kind)) in lines.iter().zip(&kinds).enumerate() {
        let ending = if line.ending.is_empty() {
            default_ending
        } else {
            line.ending
        };
        match action_at(&plan.actions, i) {
            Action::Keep => {
                out.push_str(line.text);
                out.push_str(ending);
                last_ending = ending;
            }
            Action::Drop => {}
            Action::Mark => {
                out.push_str(if line.text.len() >= DROPPED_MARK.len() {
                    DROPPED_MARK
                } else {
                    "#"
                });
                out.push_str(ending);
                last_ending = ending;
            }
            Action::Replace(field) => {
                let Kind::Key { value_start, .. } = *kind else {
                    continue;
                };
                let prefix = &line.text[..value_start];
                out.push_str(prefix);
                // `key =` with no value: keep the style of the spacing before the `=`.
                if value_start == line.text.len()
                    && prefix.ends_with(['=', ':'])
                    && prefix[..prefix.len() - 1].ends_with([' ', '\t'])
                {
                    out.push(' ');
                }
                push_clean(&mut out, field.of(values).1);
                out.push_str(ending);
                last_ending = ending;
            }
        }
        if plan.insert_after == Some(i) {
            for &(field, value) in values.iter().filter(|(f, _)| f.of(plan.missing)) {
                out.push_str(plan.insert_indent);
                out.push_str(field.key());
                out.push_str(" = ");
                push_clean(&mut out, value);
                out.push_str(default_ending);
                last_ending = default_ending;
            }
        }
    }

    if plan.insert_after.is_none() {
        // Appending: separate from the previous section by one blank line.
        let ends_blank = kinds.last().is_none_or(|k| matches!(k, Kind::Blank));
        if !ends_blank {
            out.push_str(default_ending);
        }
        out.push('[');
        push_clean(&mut out, profile);
        out.push(']');
        out.push_str(default_ending);
        for (field, value) in values {
            out.push_str(field.key());
            out.push_str(" = ");
            push_clean(&mut out, value);
            out.push_str(default_ending);
        }
    } else if !existing.is_empty() && !existing.ends_with('\n') {
        // The file had no final newline; it still has none. Strip exactly the last ending
        // written: a blank line before it, or a `\r` ending the last line's text, is content.
        let keep = out.len().saturating_sub(last_ending.len());
        out.truncate(keep);
    }
    debug_assert!(
        out.capacity() == capacity,
        "the output outgrew its reservation"
    );
    out
}

/// The three keys we own, in the order we write them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Field {
    AccessKeyId = 0,
    SecretAccessKey = 1,
    SessionToken = 2,
}

impl Field {
    const ALL: [Field; 3] = [
        Field::AccessKeyId,
        Field::SecretAccessKey,
        Field::SessionToken,
    ];

    fn key(self) -> &'static str {
        match self {
            Field::AccessKeyId => "aws_access_key_id",
            Field::SecretAccessKey => "aws_secret_access_key",
            Field::SessionToken => "aws_session_token",
        }
    }

    fn from_key(key: &str) -> Option<Field> {
        Field::ALL
            .into_iter()
            .find(|f| f.key().eq_ignore_ascii_case(key))
    }

    /// This field's entry of a per-field array (in [`Field::ALL`] order).
    fn of<T: Copy>(self, per_field: [T; 3]) -> T {
        let [access_key_id, secret_access_key, session_token] = per_field;
        match self {
            Field::AccessKeyId => access_key_id,
            Field::SecretAccessKey => secret_access_key,
            Field::SessionToken => session_token,
        }
    }

    /// This field's entry of a per-field array, to change it.
    fn of_mut<T>(self, per_field: &mut [T; 3]) -> &mut T {
        let [access_key_id, secret_access_key, session_token] = per_field;
        match self {
            Field::AccessKeyId => access_key_id,
            Field::SecretAccessKey => secret_access_key,
            Field::SessionToken => session_token,
        }
    }
}

fn field_values(creds: &Credentials) -> [(Field, &str); 3] {
    [
        (Field::AccessKeyId, creds.access_key_id.as_str()),
        (
            Field::SecretAccessKey,
            creds.secret_access_key.expose_secret(),
        ),
        (Field::SessionToken, creds.session_token.expose_secret()),
    ]
}

/// A value parsers will read back unchanged: INI parsers trim values and end them at a
/// line break.
fn valid_value(value: &str) -> bool {
    !value.is_empty() && value.trim() == value && !value.chars().any(char::is_control)
}

fn validate_profile(profile: &str) -> Result<(), CredentialsFileError> {
    let ok = !profile.is_empty()
        && profile.trim() == profile
        && !profile.contains(['[', ']'])
        && !profile.chars().any(char::is_control);
    if ok {
        Ok(())
    } else {
        Err(CredentialsFileError::InvalidProfile {
            profile: profile.to_string(),
        })
    }
}

fn push_clean(out: &mut String, value: &str) {
    for c in value.chars().filter(|c| !c.is_control()) {
        out.push(c);
    }
}

/// One line of the file: its text and its ending (`\n`, `\r\n`, or empty for a final line
/// without one).
struct Line<'a> {
    text: &'a str,
    ending: &'a str,
}

fn split_lines(s: &str) -> Vec<Line<'_>> {
    s.split_inclusive('\n')
        .map(|raw| {
            if let Some(text) = raw.strip_suffix("\r\n") {
                Line {
                    text,
                    ending: "\r\n",
                }
            } else if let Some(text) = raw.strip_suffix('\n') {
                Line { text, ending: "\n" }
            } else {
                Line {
                    text: raw,
                    ending: "",
                }
            }
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind<'a> {
    Blank,
    Comment,
    Header(&'a str),
    /// `key = value`. Offsets are bytes into the line's text: the key starts at `key_start`
    /// after `indent` bytes of white space; the value starts at `value_start`.
    Key {
        field: Option<Field>,
        key_start: usize,
        indent: usize,
        value_start: usize,
    },
    /// An indented line that continues the key above it: any indented line under a key with
    /// an empty value (nested settings such as `s3 =`, read that way by every SDK), and an
    /// indented line without a delimiter (botocore's multi-line values). An indented
    /// `key = value` under a key that has a value stays a key: the SDKs other than botocore
    /// read it so, and we must not drop it.
    Continuation,
    Other,
}

fn classify<'a>(lines: &[Line<'a>]) -> Vec<Kind<'a>> {
    let mut open_key = None;
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| classify_line(line.text, i == 0, &mut open_key))
        .collect()
}

/// The key whose value may continue on the next lines: its indent, and whether its value
/// is empty.
type OpenKey = Option<(usize, bool)>;

/// The kind of one line, given the key left open by the lines above it (updated).
fn classify_line<'a>(text: &'a str, first: bool, open_key: &mut OpenKey) -> Kind<'a> {
    // A byte-order mark is not part of the first line's content.
    let bom = if first && text.starts_with('\u{feff}') {
        '\u{feff}'.len_utf8()
    } else {
        0
    };
    let text = &text[bom..];
    let body = text.trim_start();
    let indent = text.len() - body.len();
    if body.is_empty() {
        // configparser keeps a value open across blank lines.
        Kind::Blank
    } else if body.starts_with(['#', ';']) {
        *open_key = None;
        Kind::Comment
    } else if let Some(name) = header_name(body) {
        // Even indented: every SDK but botocore reads it as a header, and a header
        // must never be dropped with an old value.
        *open_key = None;
        Kind::Header(name)
    } else if let Some((_, nested)) = open_key.filter(|&(k, _)| indent > k)
        && (nested || split_key(text).is_none())
    {
        Kind::Continuation
    } else if let Some((key, value_start)) = split_key(text) {
        *open_key = Some((indent, value_start == text.len()));
        Kind::Key {
            field: Field::from_key(key),
            key_start: bom + indent,
            indent,
            value_start: bom + value_start,
        }
    } else {
        *open_key = None;
        Kind::Other
    }
}

/// `[ name ]`, optionally followed by a comment.
fn header_name(body: &str) -> Option<&str> {
    let rest = body.strip_prefix('[')?;
    let close = rest.find(']')?;
    let after = rest[close + 1..].trim_start();
    (after.is_empty() || after.starts_with(['#', ';'])).then(|| rest[..close].trim())
}

/// The key and the byte offset of the value, for `key = value` or `key: value`.
fn split_key(text: &str) -> Option<(&str, usize)> {
    let delimiter = text.find(['=', ':'])?;
    let key = text[..delimiter].trim();
    if key.is_empty() {
        return None;
    }
    let rest = &text[delimiter + 1..];
    Some((key, text.len() - rest.trim_start().len()))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Keep,
    Drop,
    /// Dropped, and a [`DROPPED_MARK`] comment written in its place (see [`settle`]).
    Mark,
    Replace(Field),
}

/// Written in place of a dropped duplicate when the lines after it would otherwise be read
/// differently. A comment ends the key above it, as the duplicate did. A line shorter than
/// this gets a bare `#` instead, so that marks never make the file grow.
const DROPPED_MARK: &str = "# duplicate removed";

/// The action planned for line `i` (every line has one: the plan is as long as the file).
fn action_at(actions: &[Action], i: usize) -> Action {
    actions.get(i).copied().unwrap_or(Action::Keep)
}

fn set_action(actions: &mut [Action], i: usize, action: Action) {
    if let Some(slot) = actions.get_mut(i) {
        *slot = action;
    }
}

struct Plan<'a> {
    actions: Vec<Action>,
    /// Where missing keys go: after this line. `None` when the section must be appended.
    insert_after: Option<usize>,
    missing: [bool; 3],
    insert_indent: &'a str,
    /// How many dropped lines became [`Action::Mark`].
    marks: usize,
}

fn plan<'a>(lines: &[Line<'a>], kinds: &[Kind<'a>], profile: &str) -> Plan<'a> {
    let mut actions = vec![Action::Keep; kinds.len()];
    let mut seen = [false; 3];
    let mut first_header = None;
    let mut in_target = false;
    let mut in_first = false;
    let mut last_key_end = None;
    // New keys copy the indentation of the section's last key.
    let mut insert_indent = "";
    // Continuation lines of a key we replaced or dropped belong to the old value.
    let mut dropping = false;
    // The indent of the first key of the run being dropped: an indented line below a
    // dropped duplicate would continue that key's new value once the duplicate is gone.
    let mut drop_indent = 0;
    for (i, (kind, line)) in kinds.iter().zip(lines).enumerate() {
        match *kind {
            Kind::Header(name) => {
                dropping = false;
                // A repeated section counts as the same profile (go-ini merges them), so
                // each key still ends up written once.
                in_target = name == profile;
                in_first = in_target && first_header.is_none();
                if in_first {
                    first_header = Some(i);
                }
            }
            Kind::Key {
                field,
                key_start,
                indent,
                ..
            } if in_target => {
                let was_dropping = std::mem::take(&mut dropping);
                if let Some(field) = field {
                    let slot = field.of_mut(&mut seen);
                    let action = if *slot {
                        Action::Drop
                    } else {
                        Action::Replace(field)
                    };
                    set_action(&mut actions, i, action);
                    *slot = true;
                    if !was_dropping || indent <= drop_indent {
                        drop_indent = indent;
                    }
                    dropping = true;
                }
                if in_first {
                    last_key_end = Some(i);
                    insert_indent = line
                        .text
                        .get(key_start.saturating_sub(indent)..key_start)
                        .unwrap_or_default();
                }
            }
            Kind::Continuation if in_target => {
                if dropping {
                    set_action(&mut actions, i, Action::Drop);
                }
                if in_first {
                    last_key_end = Some(i);
                }
            }
            Kind::Other
                if in_target && dropping && {
                    let text = line.text;
                    text.len() - text.trim_start().len() > drop_indent
                } =>
            {
                set_action(&mut actions, i, Action::Drop);
            }
            Kind::Blank | Kind::Continuation => {}
            Kind::Key { .. } | Kind::Comment | Kind::Other => dropping = false,
        }
    }
    Plan {
        actions,
        insert_after: last_key_end.or_else(|| first_header.map(|h| below_header(lines, kinds, h))),
        missing: seen.map(|s| !s),
        insert_indent,
        marks: 0,
    }
}

/// Makes the plan keep the meaning of every line it keeps. Dropping an old value's lines
/// changes which key the lines after them belong to: with a duplicate `key = value` gone,
/// an indented line under it becomes the continuation of the key before it (the next
/// rewrite would then drop it as part of an old value, or an empty-valued key would take our
/// new keys as its value). So the planned output is read line by line as the file will be
/// read, and wherever a kept line would change kind (or a new key would not be read as a
/// key), the first dropped line of the run just above it is written as a comment instead:
/// a comment ends the key before it, as the duplicate did. One pass: a mark only changes
/// what follows it.
fn settle(lines: &[Line<'_>], kinds: &[Kind<'_>], plan: &mut Plan<'_>) {
    let mut output = Reread {
        open_key: None,
        first: true,
    };
    // The first dropped line since the last non-blank line written: where a mark can go.
    let mut run: Option<usize> = None;
    for (i, (line, &kind)) in lines.iter().zip(kinds).enumerate() {
        match (action_at(&plan.actions, i), kind) {
            (Action::Drop | Action::Mark, _) => {
                run.get_or_insert(i);
            }
            (Action::Replace(_), Kind::Key { value_start, .. }) => {
                // A placeholder for the new value: a kind depends only on the key, the
                // indentation and whether the value is empty. An old value is not copied,
                // so no old secret is left behind in freed memory.
                let text = if value_start == line.text.len() {
                    Cow::Owned(format!("{}v", line.text))
                } else {
                    Cow::Borrowed(line.text)
                };
                output.read(&text, |k| matches!(k, Kind::Key { .. }), run, plan);
                run = None;
            }
            (_, kind) => {
                let same =
                    |k: Kind<'_>| std::mem::discriminant(&k) == std::mem::discriminant(&kind);
                output.read(line.text, same, run, plan);
                if kind != Kind::Blank {
                    run = None;
                }
            }
        }
        if plan.insert_after == Some(i) {
            let (missing, indent) = (plan.missing, plan.insert_indent);
            for field in Field::ALL.into_iter().filter(|f| f.of(missing)) {
                let text = format!("{indent}{} = v", field.key());
                let ours = |k: Kind<'_>| matches!(k, Kind::Key { field: Some(_), .. });
                output.read(&text, ours, run, plan);
                run = None;
            }
        }
    }
}

/// The planned output, read line by line for [`settle`].
struct Reread {
    open_key: OpenKey,
    first: bool,
}

impl Reread {
    /// Reads the next output line. If it is not of the kind `ok` wants, the first dropped
    /// line of the run just above it (`run`) becomes a mark, and the line is read again
    /// below the mark.
    fn read(
        &mut self,
        text: &str,
        ok: impl Fn(Kind<'_>) -> bool,
        run: Option<usize>,
        plan: &mut Plan<'_>,
    ) {
        let first = std::mem::take(&mut self.first);
        if ok(classify_line(text, first, &mut self.open_key)) {
            return;
        }
        let Some(mark) = run else {
            debug_assert!(false, "a line changes kind with no dropped line above it");
            return;
        };
        set_action(&mut plan.actions, mark, Action::Mark);
        plan.marks += 1;
        self.open_key = None;
        let kind = classify_line(text, false, &mut self.open_key);
        debug_assert!(ok(kind), "a line changes kind even after a mark");
    }
}

/// Where keys go in a section that has none: below its header and the indented lines right
/// under it, which the new last key would otherwise take as its value's continuation.
fn below_header(lines: &[Line<'_>], kinds: &[Kind<'_>], header: usize) -> usize {
    let mut at = header;
    for (i, (kind, line)) in kinds.iter().zip(lines).enumerate().skip(header + 1) {
        match kind {
            Kind::Blank => {}
            Kind::Other if line.text.starts_with(char::is_whitespace) => at = i,
            _ => break,
        }
    }
    at
}

/// Follows symbolic links from `path` to the file they name (which may not exist yet).
fn resolve_symlinks(path: &Path) -> Result<PathBuf, CredentialsFileError> {
    let mut current = path.to_path_buf();
    for _ in 0..MAX_SYMLINKS {
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let link =
                    fs::read_link(&current).map_err(|source| CredentialsFileError::Read {
                        path: current.clone(),
                        source,
                    })?;
                current = if link.is_absolute() {
                    link
                } else {
                    parent_dir(&current).join(link)
                };
            }
            Ok(_) => return Ok(current),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(current),
            Err(source) => {
                return Err(CredentialsFileError::Read {
                    path: current,
                    source,
                });
            }
        }
    }
    Err(CredentialsFileError::SymlinkLoop {
        path: path.to_path_buf(),
    })
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Takes the exclusive advisory lock on `TARGET.lock` (created 0600 and never deleted:
/// deleting it would let two writers lock two different files). The lock is on a file of
/// its own because the credentials file is replaced by a rename at every write, so a lock
/// on it would be held on an inode the next writer never opens. Released when the returned
/// file is dropped, or when the process dies.
fn lock_beside(target: &Path) -> Result<fs::File, CredentialsFileError> {
    let mut name = target.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    let path = parent_dir(target).join(name);
    let lock_err = |source| CredentialsFileError::Lock {
        path: path.clone(),
        source,
    };
    let mut options = fs::OpenOptions::new();
    options.read(true).write(true).create(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Security: a symbolic link planted at the lock's name is not followed.
        options
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    }
    let file = options.open(&path).map_err(lock_err)?;
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => return Ok(file),
            Err(rustix::io::Errno::WOULDBLOCK | rustix::io::Errno::INTR) => {}
            Err(e) => return Err(lock_err(e.into())),
        }
        if std::time::Instant::now() >= deadline {
            return Err(CredentialsFileError::LockBusy { path });
        }
        // Polled rather than blocking so the wait is bounded; the jitter spreads waiters.
        std::thread::sleep(std::time::Duration::from_millis(5 + fastrand::u64(0..20)));
    }
}

/// The current contents (empty when the file does not exist) and the current mode bits.
fn read_existing(path: &Path) -> Result<(Zeroizing<String>, Option<u32>), CredentialsFileError> {
    let read_err = |source| CredentialsFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    // The old file holds old secrets: `read_regular` wipes our copy of them too.
    let mut bytes = match crate::files::read_regular(path, crate::files::CREDENTIALS_FILE_CAP) {
        Ok(bytes) => bytes,
        Err(e) if e.is_not_found() => {
            return Ok((Zeroizing::new(String::new()), None));
        }
        Err(crate::files::ReadError::Io(e)) => return Err(read_err(e)),
        Err(source) => {
            return Err(CredentialsFileError::Refused {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let mode = file_mode(path).map_err(read_err)?;
    match String::from_utf8(std::mem::take(&mut *bytes)) {
        Ok(text) => Ok((Zeroizing::new(text), mode)),
        Err(e) => {
            e.into_bytes().zeroize();
            Err(CredentialsFileError::NotUtf8 {
                path: path.to_path_buf(),
            })
        }
    }
}

#[cfg(unix)]
fn file_mode(path: &Path) -> io::Result<Option<u32>> {
    use std::os::unix::fs::PermissionsExt;
    Ok(Some(fs::metadata(path)?.permissions().mode()))
}

#[cfg(not(unix))]
fn file_mode(_path: &Path) -> io::Result<Option<u32>> {
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIANEW".into(),
            secret_access_key: SecretString::from("new/secret+key".to_string()),
            session_token: SecretString::from("NEWTOKEN==".to_string()),
            expiration: time::macros::datetime!(2030-01-01 00:00:00 UTC),
            role_arn: None,
        }
    }

    fn render_str(existing: &str, profile: &str) -> String {
        render(existing, profile, &creds()).to_string()
    }

    const NEW_KEYS: &str = "aws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN==\n";

    #[test]
    fn a_carriage_return_ending_the_last_line_is_kept() {
        // Found by fuzzing (fuzz/ credentials_file): only the newline added after an
        // unterminated last line is taken off again, not a `\r` that was its content, so a
        // second rewrite changes nothing.
        let old = "[p]\na = 1\n# note\r";
        let once = render_str(old, "p");
        assert_eq!(once, format!("[p]\na = 1\n{NEW_KEYS}# note\r"));
        assert_eq!(render_str(&once, "p"), once);
    }

    #[test]
    fn a_dropped_last_line_takes_the_ending_before_it_along() {
        // The file ends without a newline in a dropped continuation: the whole `\r\n` of the
        // line before it goes, not just its `\n`.
        let old = "[p]\naws_access_key_id = a\naws_session_token = t\n[p]\naws_secret_access_key=old\r\n    cont";
        let once = render_str(old, "p");
        assert_eq!(
            once,
            "[p]\naws_access_key_id = ASIANEW\naws_session_token = NEWTOKEN==\n[p]\naws_secret_access_key=new/secret+key"
        );
        assert_eq!(render_str(&once, "p"), once);
    }

    #[test]
    fn an_indented_line_after_a_dropped_duplicate_goes_with_it() {
        // Found by fuzzing (fuzz/ credentials_file): with the duplicate gone, ` d` would
        // continue the new secret key's value (botocore reads it so) and the next rewrite
        // would drop it.
        let old = "[p]\naws_secret_access_key = s\n\n  aws_secret_access_key=old\n d\nx = 1\n";
        let once = render_str(old, "p");
        assert_eq!(
            once,
            "[p]\naws_secret_access_key = new/secret+key\n\nx = 1\naws_access_key_id = ASIANEW\naws_session_token = NEWTOKEN==\n"
        );
        assert_eq!(render_str(&once, "p"), once);
    }

    #[test]
    fn a_dropped_duplicate_under_an_empty_value_leaves_a_comment() {
        // Minimised from fuzz/ credentials_file findings: with the duplicate simply gone,
        // `  region = x` would continue `s3 =` and so would the new keys inserted below it;
        // the next rewrite would then add them again.
        let old = "[p]\naws_access_key_id = A\ns3 =\naws_access_key_id = B\n  region = x\n";
        let once = render_str(old, "p");
        assert_eq!(
            once,
            format!(
                "[p]\naws_access_key_id = ASIANEW\ns3 =\n{DROPPED_MARK}\n  region = x\n  aws_secret_access_key = new/secret+key\n  aws_session_token = NEWTOKEN==\n"
            )
        );
        assert_eq!(render_str(&once, "p"), once);
    }

    #[test]
    fn a_dropped_indented_duplicate_does_not_hand_its_keys_to_an_empty_value() {
        // The same with the empty value and the duplicate indented under a key that has a
        // value (a key there for every SDK but botocore), and CRLF endings.
        let old =
            "[p]\r\naws_session_token = T\r\n  s3 =\r\n  aws_session_token = U\r\n    x = 1\r\n";
        let once = render_str(old, "p");
        assert_eq!(
            once,
            format!(
                "[p]\r\naws_session_token = NEWTOKEN==\r\n  s3 =\r\n{DROPPED_MARK}\r\n    x = 1\r\n    aws_access_key_id = ASIANEW\r\n    aws_secret_access_key = new/secret+key\r\n"
            )
        );
        assert_eq!(render_str(&once, "p"), once);
        // A duplicate with nothing after it that it could change is still just dropped.
        let old = "[p]\naws_session_token = T\ns3 =\naws_session_token = U\n\n[q]\n";
        assert!(!render_str(old, "p").contains(DROPPED_MARK));
    }

    #[test]
    fn marks_never_make_the_file_grow() {
        // Each mark takes the place of a longer line: a file of many such duplicates must
        // not grow past the size `update` reads (the next run would refuse it).
        let mut old = String::from("[p]\naws_access_key_id = A\n");
        for _ in 0..100 {
            old.push_str("s3 =\naws_access_key_id=B\n  region = x\n");
        }
        let once = render_str(&old, "p");
        assert_eq!(once.matches(DROPPED_MARK).count(), 100);
        let new_lines =
            "  aws_secret_access_key = new/secret+key\n  aws_session_token = NEWTOKEN==\n";
        let longer_value = "ASIANEW".len() - "A".len();
        assert!(
            once.len() <= old.len() + longer_value + new_lines.len(),
            "{once}"
        );
        assert_eq!(render_str(&once, "p"), once);
    }

    #[test]
    fn keys_added_to_a_section_without_keys_go_below_its_indented_lines() {
        // Found by fuzzing (fuzz/ credentials_file): inserted right under the header, the
        // new token would take the indented lines as its continuation (botocore reads them
        // into the token) and the next rewrite would drop them with the old value.
        let old = "[p]\n  stray\n\n\tmore\n[q]\n";
        let once = render_str(old, "p");
        assert_eq!(once, format!("[p]\n  stray\n\n\tmore\n{NEW_KEYS}[q]\n"));
        assert_eq!(render_str(&once, "p"), once);
    }

    #[test]
    fn empty_file_gets_the_section_without_a_leading_blank_line() {
        assert_eq!(render_str("", "default"), format!("[default]\n{NEW_KEYS}"));
    }

    #[test]
    fn keys_are_matched_case_insensitively_with_any_spacing() {
        let old = "[ default ]\nAWS_ACCESS_KEY_ID=OLD\n\taws_secret_access_key   =   OLD\naws_session_token:OLD\n";
        assert_eq!(
            render_str(old, "default"),
            "[ default ]\nAWS_ACCESS_KEY_ID=ASIANEW\n\taws_secret_access_key   =   new/secret+key\naws_session_token:NEWTOKEN==\n"
        );
    }

    #[test]
    fn empty_values_get_a_space_when_the_delimiter_has_one_before_it() {
        let old = "[p]\naws_access_key_id =\naws_secret_access_key=\naws_session_token = \n";
        assert_eq!(
            render_str(old, "p"),
            "[p]\naws_access_key_id = ASIANEW\naws_secret_access_key=new/secret+key\naws_session_token = NEWTOKEN==\n"
        );
    }

    #[test]
    fn continuation_lines_of_a_replaced_value_are_dropped_and_others_kept() {
        let old = "[p]\naws_session_token = OLD\n  MORE-OLD\ns3 =\n  max_concurrent_requests = 20\n  aws_access_key_id = nested\n";
        assert_eq!(
            render_str(old, "p"),
            "[p]\naws_session_token = NEWTOKEN==\ns3 =\n  max_concurrent_requests = 20\n  aws_access_key_id = nested\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\n"
        );
    }

    #[test]
    fn indented_keys_under_a_key_with_a_value_are_keys() {
        let old = "[p]\naws_access_key_id = OLD\n  region = eu-west-1\n\taws_session_token = OLD\n";
        assert_eq!(
            render_str(old, "p"),
            "[p]\naws_access_key_id = ASIANEW\n  region = eu-west-1\n\taws_session_token = NEWTOKEN==\n\taws_secret_access_key = new/secret+key\n"
        );
        // An indented header is a header, not part of the old value.
        let old = "[p]\naws_session_token = OLD\n  [q]\naws_access_key_id = Q\n";
        assert_eq!(
            render_str(old, "p"),
            "[p]\naws_session_token = NEWTOKEN==\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\n  [q]\naws_access_key_id = Q\n"
        );
    }

    #[test]
    fn inserted_keys_copy_the_indentation_of_the_last_key() {
        let old = "[p]\n  region = eu-west-1\n";
        assert_eq!(
            render_str(old, "p"),
            "[p]\n  region = eu-west-1\n  aws_access_key_id = ASIANEW\n  aws_secret_access_key = new/secret+key\n  aws_session_token = NEWTOKEN==\n"
        );
    }

    #[test]
    fn a_byte_order_mark_is_kept_and_ignored() {
        let old = "\u{feff}[p]\naws_access_key_id = OLD\n";
        assert_eq!(
            render_str(old, "p"),
            "\u{feff}[p]\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\naws_session_token = NEWTOKEN==\n"
        );
    }

    #[test]
    fn headers_with_comments_match_and_similar_names_do_not() {
        let old =
            "[p] # mine\n[p2]\naws_access_key_id = KEEP\n[profile p]\naws_access_key_id = KEEP\n";
        assert_eq!(
            render_str(old, "p"),
            format!(
                "[p] # mine\n{NEW_KEYS}[p2]\naws_access_key_id = KEEP\n[profile p]\naws_access_key_id = KEEP\n"
            )
        );
    }

    #[test]
    fn repeated_sections_end_up_with_each_key_once() {
        let old = "[p]\naws_access_key_id = A\n[q]\nx = 1\n[p]\naws_access_key_id = B\naws_session_token = T\n";
        assert_eq!(
            render_str(old, "p"),
            "[p]\naws_access_key_id = ASIANEW\naws_secret_access_key = new/secret+key\n[q]\nx = 1\n[p]\naws_session_token = NEWTOKEN==\n"
        );
    }

    #[test]
    fn control_characters_cannot_inject_lines() {
        let mut c = creds();
        c.session_token = SecretString::from("T\n[evil]\ncredential_process = x".to_string());
        let out = render("", "p\nq", &c);
        assert_eq!(out.lines().count(), 4, "{}", out.as_str());
        assert!(!out.lines().any(|l| l.starts_with("[evil]")));
    }

    #[test]
    fn every_variant_gets_each_value_exactly_once_and_is_stable() {
        let samples = [
            "",
            "\n",
            "[p]",
            "[p]\n",
            "# c\n[a]\nk = v\n\n[p]\naws_access_key_id = OLD\n\n; c\n[b]\nx = y\n",
            "[p]\naws_session_token = T\n  wrapped\n\n  [q]\nx = y\n",
            "[p]\nAWS_SECRET_ACCESS_KEY=S\naws_secret_access_key=S2\n[p]\naws_secret_access_key=S3\n",
            "[a]\n    deep = 1\n[p]\n        aws_access_key_id =\n",
            "\u{feff}[p]\nregion=r",
        ];
        for sample in samples {
            let crlf = sample.replace('\n', "\r\n");
            let bare = sample.trim_end_matches('\n');
            for input in [sample, crlf.as_str(), bare] {
                for profile in ["p", "a", "new"] {
                    let out = render_str(input, profile);
                    for value in ["ASIANEW", "new/secret+key", "NEWTOKEN=="] {
                        assert_eq!(
                            out.matches(value).count(),
                            1,
                            "{input:?} {profile}: {out:?}"
                        );
                    }
                    assert_eq!(render_str(&out, profile), out, "{input:?} {profile}");
                    // Lines of other sections all survive.
                    for line in input
                        .lines()
                        .filter(|l| l.contains("x = y") || l.contains("deep"))
                    {
                        assert!(out.contains(line), "{input:?} {profile}: {out:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn update_refuses_values_that_do_not_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        for bad in ["", " padded", "line\nbreak", "tab\tinside"] {
            let mut c = creds();
            c.session_token = SecretString::from(bad.to_string());
            let err = update_profile(&path, "default", &c).unwrap_err();
            assert!(matches!(
                err,
                CredentialsFileError::InvalidValue {
                    field: "aws_session_token",
                    ..
                }
            ));
            assert!(err.hint().is_some());
        }
        assert!(!path.exists());
    }

    #[test]
    fn update_refuses_profile_names_that_break_headers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        for bad in ["", " p", "a]b", "a[b", "a\nb"] {
            let err = update_profile(&path, bad, &creds()).unwrap_err();
            assert!(
                matches!(err, CredentialsFileError::InvalidProfile { .. }),
                "{bad:?}"
            );
        }
        assert!(!path.exists());
    }

    #[test]
    fn default_path_prefers_the_environment_then_home() {
        let home = Some(PathBuf::from("/home/u"));
        assert_eq!(
            default_path_from(Some("/etc/creds".into()), home.clone()).unwrap(),
            PathBuf::from("/etc/creds")
        );
        assert_eq!(
            default_path_from(Some("~/x/creds".into()), home.clone()).unwrap(),
            PathBuf::from("/home/u/x/creds")
        );
        assert_eq!(
            default_path_from(Some("".into()), home.clone()).unwrap(),
            PathBuf::from("/home/u/.aws/credentials")
        );
        assert_eq!(
            default_path_from(None, home).unwrap(),
            PathBuf::from("/home/u/.aws/credentials")
        );
        let err = default_path_from(None, None).unwrap_err();
        assert!(matches!(err, CredentialsFileError::NoHome));
        assert!(err.hint().unwrap().contains(ENV_FILE));
    }

    #[test]
    fn errors_never_show_secrets() {
        let dir = tempfile::tempdir().unwrap();
        // A directory where the file should be: reading fails.
        let path = dir.path().join("credentials");
        fs::create_dir(&path).unwrap();
        let err = update_profile(&path, "default", &creds()).unwrap_err();
        let text = format!("{err} {err:?} {:?}", err.hint());
        assert!(text.contains("credentials"), "{text}");
        assert!(
            !text.contains("new/secret") && !text.contains("NEWTOKEN"),
            "{text}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_loop_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::os::unix::fs::symlink(&b, &a).unwrap();
        std::os::unix::fs::symlink(&a, &b).unwrap();
        let err = update_profile(&a, "default", &creds()).unwrap_err();
        assert!(matches!(err, CredentialsFileError::SymlinkLoop { .. }));
    }

    /// `update` on a fresh machine: the directories are created private and the file 0600.
    #[cfg(unix)]
    #[test]
    fn update_creates_missing_directories_private() {
        use std::os::unix::fs::PermissionsExt;
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("home/.aws/credentials");
        update_profile(&path, "default", &creds()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        assert_eq!(mode(&path), 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("[default]"), "{text}");
        assert!(text.contains(NEW_KEYS), "{text}");
    }

    /// A file `update` will not read (here: over the size cap) is an error and is left as
    /// it is, never replaced by a file holding only the new profile.
    #[test]
    fn a_file_that_cannot_be_read_is_not_overwritten() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credentials");
        let big = crate::files::CREDENTIALS_FILE_CAP + 1;
        fs::File::create(&path).unwrap().set_len(big).unwrap();
        assert!(update_profile(&path, "default", &creds()).is_err());
        assert_eq!(fs::metadata(&path).unwrap().len(), big);
    }

    /// Another writer holding the lock is waited for (up to `LOCK_WAIT`), not failed on.
    #[cfg(unix)]
    #[test]
    fn a_held_lock_is_waited_for() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("credentials");
        let lock = fs::File::create(tmp.path().join("credentials.lock")).unwrap();
        rustix::fs::flock(&lock, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let holder = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(100));
            drop(lock);
        });
        update_profile(&path, "default", &creds()).unwrap();
        holder.join().unwrap();
        assert!(fs::read_to_string(&path).unwrap().contains(NEW_KEYS));
    }

    /// Long values into an empty file: the up-front reservation adds every length.
    #[test]
    fn long_values_render_into_an_empty_file() {
        let mut c = creds();
        c.session_token = SecretString::from("T".repeat(2000));
        let out = render("", "p", &c);
        assert!(out.contains(&format!("aws_session_token = {}\n", "T".repeat(2000))));
    }

    /// Dropping a duplicate key takes the lines indented under it along, and stops at the
    /// first line that is not: one at the key's own indentation is kept.
    #[test]
    fn a_line_at_the_dropped_keys_indentation_is_kept() {
        let out = render_str(
            "[p]\naws_access_key_id = OLD\naws_access_key_id = DUP\njunk\n",
            "p",
        );
        assert!(!out.contains("DUP"), "{out}");
        assert!(out.contains("\njunk\n"), "{out}");
    }

    /// Exit 2 is for what the user set up wrong; a busy lock is a runtime failure.
    #[test]
    fn only_setup_errors_are_configuration_errors() {
        assert!(CredentialsFileError::NoHome.is_configuration());
        let busy = CredentialsFileError::LockBusy {
            path: PathBuf::from("credentials.lock"),
        };
        assert!(!busy.is_configuration());
    }

    #[test]
    fn the_home_directory_is_home_when_it_is_set() {
        // Read, never set: tests run in parallel.
        if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
            assert_eq!(home_dir(), Some(PathBuf::from(home)));
        }
    }
}
