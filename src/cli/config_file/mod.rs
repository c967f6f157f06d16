//! `--config FILE` (or `ROLESANYWHERE_CONFIG`): a TOML file of flag values for the
//! subcommands that flatten [`ConfigFileArgs`]. Keys are the subcommand's own long flag
//! names, checked against clap's definition of it, so the file cannot drift from the flags.
//!
//! Precedence, highest first: the command line; an environment variable clap reads for a flag
//! (`ROLESANYWHERE_TRUST_ANCHOR_ARN`, `_PROFILE_ARN`, `_ROLE_ARN`); the file's `[SUBCOMMAND]`
//! section; the file's top-level keys; the built-in default. A repeatable flag given on the
//! command line replaces the file's list rather than adding to it, and a file value that
//! conflicts with a flag given on the command line (`socket` against `--no-socket`) is dropped.
//!
//! The file's values are handed to clap as `--key=value` arguments after the real ones, so
//! every flag keeps its one parser and its one validation.

use std::any::TypeId;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Args, CommandFactory as _, FromArgMatches as _, parser::ValueSource};
use secrecy::SecretString;
use toml_edit::{Item, TableLike, Value};

use super::Cli;

mod error;
#[cfg(test)]
mod tests;

use crate::files;
pub use error::ConfigFileError;

/// The cap on a config file: a real one is well under a KiB.
pub const CONFIG_CAP: u64 = files::MIB;

/// The clap id of the `--config` flag: a subcommand that has it reads the file.
const CONFIG_ID: &str = "config";

/// Flattened into each subcommand that takes a config file. Adding it to a subcommand is
/// all it takes: the loader finds the subcommands by this flag.
#[derive(Args, Debug, Clone, Default)]
pub struct ConfigFileArgs {
    /// TOML file of flag values (keys are the long flag names; a [SUBCOMMAND] section applies to that subcommand only). Flags on the command line and the ROLESANYWHERE_*_ARN variables override it
    #[arg(
        id = CONFIG_ID,
        long = "config",
        value_name = "FILE",
        env = "ROLESANYWHERE_CONFIG"
    )]
    pub config: Option<PathBuf>,
}

/// Why the command line and its config file could not become a [`Cli`].
#[derive(Debug)]
pub enum LoadError {
    /// clap's own error (or `--help`/`--version`): printed and exited on by clap.
    Clap(clap::Error),
    /// The config file is unreadable or wrong.
    File(ConfigFileError),
}

impl From<clap::Error> for LoadError {
    fn from(e: clap::Error) -> Self {
        LoadError::Clap(e)
    }
}

impl From<ConfigFileError> for LoadError {
    fn from(e: ConfigFileError) -> Self {
        LoadError::File(e)
    }
}

/// Parses the process's command line with its config file; on a clap error (or `--help`),
/// prints it and exits as clap does.
pub fn parse() -> Result<Cli, ConfigFileError> {
    match try_parse_from(std::env::args_os()) {
        Ok(cli) => Ok(cli),
        Err(LoadError::Clap(e)) => e.exit(),
        Err(LoadError::File(e)) => Err(e),
    }
}

/// Parses `argv` (program name first) and, when the subcommand takes `--config` and one is
/// given, merges the file under the command line.
pub fn try_parse_from<I, T>(argv: I) -> Result<Cli, LoadError>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
    let command = Cli::command();
    let matches = command.clone().try_get_matches_from(&argv)?;
    let extra = match matches.subcommand() {
        Some((name, sub_matches)) => match command.find_subcommand(name) {
            Some(sub) => file_arguments(&command, sub, sub_matches)?,
            None => Vec::new(),
        },
        None => Vec::new(),
    };
    if extra.is_empty() {
        return Ok(Cli::from_arg_matches(&matches)?);
    }
    let mut full = argv;
    full.extend(extra.iter().map(OsString::from));
    let parsed = Cli::try_parse_from_wiped(full)?;
    Ok(parsed)
}

impl Cli {
    /// `try_parse_from`, then wipes the arguments: the file's may hold a password.
    fn try_parse_from_wiped(argv: Vec<OsString>) -> Result<Cli, clap::Error> {
        let parsed = <Cli as clap::Parser>::try_parse_from(&argv);
        for arg in argv {
            use std::os::unix::ffi::OsStringExt as _;
            let _wiped = zeroize::Zeroizing::new(arg.into_vec());
        }
        parsed
    }
}

/// Where the config file's path came from, for messages.
fn origin(source: Option<ValueSource>) -> &'static str {
    match source {
        Some(ValueSource::EnvVariable) => "ROLESANYWHERE_CONFIG",
        _ => "--config",
    }
}

/// The `--key=value` arguments the file adds for `sub`, in file order; empty when `sub`
/// takes no config file or none is given.
fn file_arguments(
    root: &clap::Command,
    sub: &clap::Command,
    matches: &clap::ArgMatches,
) -> Result<Vec<Wiped>, ConfigFileError> {
    let Some(path) = matches
        .try_get_one::<PathBuf>(CONFIG_ID)
        .ok()
        .flatten()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return Ok(Vec::new());
    };
    let from = origin(matches.value_source(CONFIG_ID));
    let file = ConfigFile::read(path, from)?;
    let entries = file.entries(root, sub)?;
    merge(&file, sub, matches, entries)
}

/// A value bound for clap, wiped when dropped (it may be a password).
struct Wiped(zeroize::Zeroizing<String>);

impl From<&Wiped> for OsString {
    fn from(w: &Wiped) -> Self {
        OsString::from(w.0.as_str())
    }
}

/// The read, parsed file.
struct ConfigFile {
    path: String,
    mode: u32,
    text: zeroize::Zeroizing<String>,
    doc: toml_edit::Document<String>,
}

/// One key of the file, checked against its flag.
struct Entry {
    /// The flag's long name (also the key).
    long: String,
    id: String,
    line: usize,
    /// The clap arguments it becomes (none for `false`).
    values: Vec<String>,
    secret: bool,
}

impl ConfigFile {
    fn read(path: &Path, from: &'static str) -> Result<Self, ConfigFileError> {
        let shown = path.display().to_string();
        let read_error = |detail: String| ConfigFileError::Read {
            path: shown.clone(),
            from,
            detail,
        };
        let bytes = files::read_regular(path, CONFIG_CAP).map_err(|e| read_error(e.to_string()))?;
        let mode = {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::metadata(path)
                .map_err(|e| read_error(e.to_string()))?
                .permissions()
                .mode()
        };
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => zeroize::Zeroizing::new(t.to_string()),
            Err(_) => return Err(ConfigFileError::NotUtf8 { path: shown }),
        };
        // Security: only toml's message and position are shown, never the source line it
        // would quote: that line may hold a password.
        let doc = toml_edit::Document::parse(text.to_string()).map_err(|e| {
            let (line, column) = position(&text, e.span().map_or(0, |s| s.start));
            ConfigFileError::Syntax {
                path: shown.clone(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        Ok(ConfigFile {
            path: shown,
            mode,
            text,
            doc,
        })
    }

    fn line(&self, span: Option<std::ops::Range<usize>>) -> usize {
        position(&self.text, span.map_or(0, |s| s.start)).0
    }

    /// Checks every key of the file (every section's too, so a typo anywhere is found; and
    /// a secret anywhere counts) and returns the running subcommand's entries: top-level
    /// first, its section after.
    fn entries(
        &self,
        root: &clap::Command,
        sub: &clap::Command,
    ) -> Result<Vec<Entry>, ConfigFileError> {
        let sections: Vec<&clap::Command> =
            root.get_subcommands().filter(|c| takes_config(c)).collect();
        let mut top = Vec::new();
        let mut own = Vec::new();
        for (key, item) in self.doc.iter() {
            let line = self.line(self.doc.get_key_value(key).and_then(|(k, _)| k.span()));
            if let Some(section) = sections.iter().find(|c| c.get_name() == key) {
                let Some(table) = item.as_table_like() else {
                    return Err(self.wrong_type(key, line, "a table of flags", item, "{ ... }"));
                };
                let checked = self.table_entries(table, section, &sections)?;
                self.check_secrets(&checked)?;
                if section.get_name() == sub.get_name() {
                    own = checked;
                }
                continue;
            }
            top.push(self.entry(key, line, item, sub, &sections)?);
        }
        self.check_secrets(&top)?;
        top.extend(own);
        Ok(top)
    }

    fn table_entries(
        &self,
        table: &dyn TableLike,
        sub: &clap::Command,
        sections: &[&clap::Command],
    ) -> Result<Vec<Entry>, ConfigFileError> {
        let mut out = Vec::new();
        for (key, item) in table.iter() {
            let line = self.line(table.get_key_value(key).and_then(|(k, _)| k.span()));
            out.push(self.entry(key, line, item, sub, sections)?);
        }
        Ok(out)
    }

    /// Checks one `key = value` against `sub`'s flag of that name.
    fn entry(
        &self,
        key: &str,
        line: usize,
        item: &Item,
        sub: &clap::Command,
        sections: &[&clap::Command],
    ) -> Result<Entry, ConfigFileError> {
        if key == CONFIG_ID || key == "help" || key == "version" {
            return Err(ConfigFileError::NotInFile {
                path: self.path.clone(),
                line,
                key: key.to_string(),
            });
        }
        let Some(arg) = sub.get_arguments().find(|a| a.get_long() == Some(key)) else {
            return Err(self.unknown(key, line, sub, sections));
        };
        let kind = Kind::of(arg);
        let value = item.as_value();
        let mut values = Vec::new();
        match (kind, value) {
            (Kind::Bool, Some(Value::Boolean(b))) => {
                if *b.value() {
                    values.push(format!("--{key}"));
                }
            }
            (Kind::Integer, Some(Value::Integer(n))) => {
                values.push(self.checked(arg, key, line, &n.value().to_string())?);
            }
            (Kind::String, Some(Value::String(s))) => {
                values.push(self.checked(arg, key, line, s.value())?);
            }
            (Kind::List, Some(Value::Array(array))) => {
                for element in array.iter() {
                    let Value::String(s) = element else {
                        let line = self.line(element.span()).max(line);
                        return Err(self.wrong_type(
                            key,
                            line,
                            kind.expected(),
                            &Item::Value(element.clone()),
                            kind.example(),
                        ));
                    };
                    values.push(self.checked(arg, key, line, s.value())?);
                }
            }
            _ => return Err(self.wrong_type(key, line, kind.expected(), item, kind.example())),
        }
        Ok(Entry {
            long: key.to_string(),
            id: arg.get_id().as_str().to_string(),
            line,
            values,
            secret: arg.get_value_parser().type_id() == TypeId::of::<SecretString>(),
        })
    }

    /// Runs the flag's own parser on `value`, so a bad value is reported with its line;
    /// returns the `--key=value` argument.
    fn checked(
        &self,
        arg: &clap::Arg,
        key: &str,
        line: usize,
        value: &str,
    ) -> Result<String, ConfigFileError> {
        // A command of this one flag with its parser alone: clap's parser entry point is
        // private, and the flag's own relations (conflicts) would name absent flags here.
        let probe = clap::Command::new(PROBE).no_binary_name(true).arg(
            clap::Arg::new(PROBE)
                .long(PROBE)
                .value_name(PROBE)
                .action(ArgAction::Set)
                .value_parser(arg.get_value_parser().clone()),
        );
        probe
            .try_get_matches_from([format!("--{PROBE}={value}")])
            .map_err(|e| ConfigFileError::BadValue {
                path: self.path.clone(),
                line,
                key: key.to_string(),
                reason: clap_reason(&e, key),
            })?;
        Ok(format!("--{key}={value}"))
    }

    fn wrong_type(
        &self,
        key: &str,
        line: usize,
        expected: &'static str,
        item: &Item,
        example: &str,
    ) -> ConfigFileError {
        ConfigFileError::WrongType {
            path: self.path.clone(),
            line,
            key: key.to_string(),
            expected,
            found: toml_type(item),
            example: example.to_string(),
        }
    }

    fn unknown(
        &self,
        key: &str,
        line: usize,
        sub: &clap::Command,
        sections: &[&clap::Command],
    ) -> ConfigFileError {
        let owners: Vec<&str> = sections
            .iter()
            .filter(|c| c.get_arguments().any(|a| a.get_long() == Some(key)))
            .map(|c| c.get_name())
            .collect();
        if !owners.is_empty() {
            return ConfigFileError::OtherSubcommand {
                path: self.path.clone(),
                line,
                key: key.to_string(),
                subcommand: sub.get_name().to_string(),
                owners: owners.join(", "),
            };
        }
        let candidates = sub
            .get_arguments()
            .filter_map(|a| a.get_long())
            .filter(|l| *l != CONFIG_ID)
            .chain(sections.iter().map(|c| c.get_name()));
        ConfigFileError::UnknownKey {
            path: self.path.clone(),
            line,
            key: key.to_string(),
            subcommand: sub.get_name().to_string(),
            nearest: nearest(key, candidates),
        }
    }

    /// Security: a password or a PIN in a file others can read is refused, not warned
    /// about: the agent would otherwise run for months with the leak in place, and under
    /// systemd a warning is seen by no one. The same rule ssh applies to private keys.
    fn check_secrets(&self, entries: &[Entry]) -> Result<(), ConfigFileError> {
        if self.mode & 0o077 == 0 {
            return Ok(());
        }
        let secret = entries
            .iter()
            .find(|e| e.secret || e.values.iter().any(|v| v.contains("pin-value=")));
        match secret {
            Some(e) => Err(ConfigFileError::LooseSecret {
                path: self.path.clone(),
                line: e.line,
                key: e.long.clone(),
                mode: self.mode & 0o7777,
            }),
            None => Ok(()),
        }
    }
}

/// The file's entries that apply: a later key (the section's) replaces an earlier one
/// (top-level); a flag given on the command line or by its environment variable wins, and
/// so does any flag it conflicts with. Two applied keys in conflict are an error.
fn merge(
    file: &ConfigFile,
    sub: &clap::Command,
    matches: &clap::ArgMatches,
    entries: Vec<Entry>,
) -> Result<Vec<Wiped>, ConfigFileError> {
    let explicit = |id: &str| {
        matches!(
            matches.value_source(id),
            Some(ValueSource::CommandLine | ValueSource::EnvVariable)
        )
    };
    let mut applied: Vec<Entry> = Vec::new();
    for entry in entries {
        if explicit(&entry.id) {
            continue;
        }
        let Some(arg) = sub
            .get_arguments()
            .find(|a| a.get_id().as_str() == entry.id)
        else {
            continue;
        };
        let explicit_conflict = sub
            .get_arguments()
            .any(|other| explicit(other.get_id().as_str()) && conflict(sub, arg, other));
        if explicit_conflict {
            continue;
        }
        applied.retain(|e| e.id != entry.id);
        if !entry.values.is_empty() {
            let clash = applied.iter().find(|e| {
                sub.get_arguments()
                    .find(|a| a.get_id().as_str() == e.id)
                    .is_some_and(|other| conflict(sub, arg, other))
            });
            if let Some(other) = clash {
                return Err(ConfigFileError::Conflict {
                    path: file.path.clone(),
                    first: other.long.clone(),
                    first_line: other.line,
                    second: entry.long.clone(),
                    second_line: entry.line,
                });
            }
        }
        applied.push(entry);
    }
    Ok(applied
        .into_iter()
        .flat_map(|e| e.values)
        .map(|v| Wiped(zeroize::Zeroizing::new(v)))
        .collect())
}

/// The keys `subcommand` accepts: its long flags but `--config`.
fn accepted(subcommand: &str) -> Vec<String> {
    let command = Cli::command();
    let Some(sub) = command.find_subcommand(subcommand) else {
        return Vec::new();
    };
    sub.get_arguments()
        .filter_map(|a| a.get_long())
        .filter(|l| *l != CONFIG_ID)
        .map(str::to_string)
        .collect()
}

/// Whether clap refuses `a` and `b` together (declared on either side).
fn conflict(sub: &clap::Command, a: &clap::Arg, b: &clap::Arg) -> bool {
    let names = |x: &clap::Arg, y: &clap::Arg| {
        sub.get_arg_conflicts_with(x)
            .iter()
            .any(|c| c.get_id() == y.get_id())
    };
    names(a, b) || names(b, a)
}

fn takes_config(sub: &clap::Command) -> bool {
    sub.get_arguments().any(|a| a.get_id() == CONFIG_ID)
}

/// The TOML type a flag takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Bool,
    Integer,
    String,
    List,
}

impl Kind {
    fn of(arg: &clap::Arg) -> Kind {
        let integers = [
            TypeId::of::<u8>(),
            TypeId::of::<u16>(),
            TypeId::of::<u32>(),
            TypeId::of::<u64>(),
            TypeId::of::<i32>(),
            TypeId::of::<i64>(),
            TypeId::of::<usize>(),
        ];
        match arg.get_action() {
            ArgAction::SetTrue => Kind::Bool,
            ArgAction::Append => Kind::List,
            _ if integers
                .iter()
                .any(|t| arg.get_value_parser().type_id() == *t) =>
            {
                Kind::Integer
            }
            _ => Kind::String,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Kind::Bool => "a boolean",
            Kind::Integer => "an integer",
            Kind::String => "a string",
            Kind::List => "an array of strings",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::Bool => "true",
            Kind::Integer => "9911",
            Kind::String => "\"...\"",
            Kind::List => "[\"...\", \"...\"]",
        }
    }
}

fn toml_type(item: &Item) -> &'static str {
    match item {
        Item::Value(Value::String(_)) => "a string",
        Item::Value(Value::Integer(_)) => "an integer",
        Item::Value(Value::Float(_)) => "a float",
        Item::Value(Value::Boolean(_)) => "a boolean",
        Item::Value(Value::Datetime(_)) => "a date-time",
        Item::Value(Value::Array(_)) => "an array",
        Item::Value(Value::InlineTable(_)) | Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
        Item::None => "nothing",
    }
}

/// The name of the one flag of the command [`ConfigFile::checked`] parses a value with.
const PROBE: &str = "value";

/// The reason of a clap value error, naming `key` and without clap's prefix and usage.
fn clap_reason(e: &clap::Error, key: &str) -> String {
    let text = e.to_string();
    let first = text.lines().next().unwrap_or_default();
    first
        .trim_start_matches("error: ")
        .replace(&format!("'--{PROBE} <{PROBE}>'"), key)
}

/// 1-based line and column of byte `offset` in `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The candidate closest to `key` (`_` read as `-`), if it is close enough to be a typo.
fn nearest<'a>(key: &str, candidates: impl Iterator<Item = &'a str>) -> Option<String> {
    let key = key.replace('_', "-").to_ascii_lowercase();
    candidates
        .map(|c| (edit_distance(&key, c), c))
        .filter(|(d, c)| *d <= 2.max(c.len() / 4))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = Vec::with_capacity(b.len() + 1);
        current.push(i + 1);
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous.get(j).copied().unwrap_or(0) + usize::from(ca != *cb);
            let delete = previous.get(j + 1).copied().unwrap_or(0) + 1;
            let insert = current.last().copied().unwrap_or(0) + 1;
            current.push(substitute.min(delete).min(insert));
        }
        previous = current;
    }
    previous.last().copied().unwrap_or(0)
}
