//! Where identity material comes from: a file, an environment variable (`env:NAME`, for CI
//! secrets and containers) or standard input (`-`). Contents are zeroized after use and
//! never echoed; messages name the source (the file, the variable), never its value.

use std::io::Read as _;
use std::path::Path;
use std::sync::OnceLock;

use zeroize::Zeroizing;

/// One of the three forms a `--certificate`, `--private-key` or `--intermediates` value takes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source<'a> {
    File(&'a str),
    Env(&'a str),
    Stdin,
}

/// Why a source could not be read.
#[derive(Debug)]
pub enum SourceError {
    Io(std::io::Error),
    /// A file that is not a regular file, or is over [`crate::files::IDENTITY_CAP`].
    Refused(crate::files::ReadError),
    /// `env:NAME` with NAME unset or not UTF-8.
    MissingVariable,
    /// The variable or standard input held nothing.
    Empty,
}

impl<'a> Source<'a> {
    pub fn parse(value: &'a str) -> Self {
        if value == "-" {
            Source::Stdin
        } else if let Some(name) = value.strip_prefix("env:") {
            Source::Env(name)
        } else {
            Source::File(value)
        }
    }

    /// `file PATH`, `variable NAME` or `standard input`, for messages.
    pub fn describe(&self) -> String {
        match self {
            Source::File(path) => format!("file {path}"),
            Source::Env(name) => format!("variable {name}"),
            Source::Stdin => "standard input".to_string(),
        }
    }

    /// Whether it can be read again later (SIGHUP): only files can.
    pub fn is_rereadable(&self) -> bool {
        matches!(self, Source::File(_))
    }

    /// Reads the whole source. Standard input is read once per process and shared, so a
    /// certificate and key given both as `-` come from one PEM stream.
    pub fn read(&self) -> Result<Zeroizing<Vec<u8>>, SourceError> {
        let data = match self {
            // Security: a FIFO, a device or a huge file would hang or exhaust the process.
            Source::File(path) => {
                crate::files::read_regular(Path::new(path), crate::files::IDENTITY_CAP).map_err(
                    |e| match e {
                        crate::files::ReadError::Io(e) => SourceError::Io(e),
                        refused => SourceError::Refused(refused),
                    },
                )?
            }
            Source::Env(name) => variable(std::env::var(name).ok())?,
            Source::Stdin => not_blank(stdin()?)?,
        };
        Ok(data)
    }
}

/// Describes a flag value for messages (see [`Source::describe`]). A PKCS#11 URI is shown
/// without its `pin-value`.
pub fn describe(value: &str) -> String {
    if value
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("pkcs11:"))
    {
        #[cfg(feature = "pkcs11")]
        return format!("PKCS#11 object {}", super::pkcs11::redact(value));
        #[cfg(not(feature = "pkcs11"))]
        return format!(
            "PKCS#11 object {}",
            value.split('?').next().unwrap_or(value)
        );
    }
    Source::parse(value).describe()
}

/// The contents of an `env:NAME` variable, given its value (a separate step so tests need
/// not change the environment, which is `unsafe` in a multi-threaded test process).
fn variable(value: Option<String>) -> Result<Zeroizing<Vec<u8>>, SourceError> {
    let value = value.ok_or(SourceError::MissingVariable)?;
    not_blank(Zeroizing::new(value.into_bytes()))
}

/// Refuses a variable or standard input holding only whitespace (a file may be empty: its
/// parser says what is missing).
fn not_blank(data: Zeroizing<Vec<u8>>) -> Result<Zeroizing<Vec<u8>>, SourceError> {
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(SourceError::Empty);
    }
    Ok(data)
}

fn stdin() -> Result<Zeroizing<Vec<u8>>, SourceError> {
    static STDIN: OnceLock<Result<Zeroizing<Vec<u8>>, String>> = OnceLock::new();
    let result = STDIN.get_or_init(|| {
        let mut data = Zeroizing::new(Vec::new());
        std::io::stdin()
            .lock()
            .read_to_end(&mut data)
            .map(|_| data)
            .map_err(|e| e.to_string())
    });
    match result {
        Ok(data) => Ok(data.clone()),
        Err(e) => Err(SourceError::Io(std::io::Error::other(e.clone()))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        assert_eq!(Source::parse("-"), Source::Stdin);
        assert_eq!(Source::parse("env:CERT"), Source::Env("CERT"));
        assert_eq!(
            Source::parse("/etc/cert.pem"),
            Source::File("/etc/cert.pem")
        );
        assert_eq!(describe("env:CERT"), "variable CERT");
        assert_eq!(describe("-"), "standard input");
        assert_eq!(describe("a.pem"), "file a.pem");
        let uri = describe("pkcs11:token=t;object=k?pin-value=1234");
        assert!(
            uri.starts_with("PKCS#11 object pkcs11:token=t;object=k"),
            "{uri}"
        );
        assert!(!uri.contains("1234"), "{uri}");
    }

    #[test]
    fn variables_are_read_and_missing_or_empty_ones_refused() {
        // Variables are read through `variable`, fed here directly: setting them would be
        // `unsafe` with other tests running in the process.
        assert_eq!(
            &variable(Some("-----BEGIN X-----".into())).unwrap()[..],
            b"-----BEGIN X-----"
        );
        assert!(matches!(
            Source::Env("RA_TEST_SOURCE_UNSET").read(),
            Err(SourceError::MissingVariable)
        ));
        assert!(matches!(variable(None), Err(SourceError::MissingVariable)));
        assert!(matches!(
            variable(Some(" \n".into())),
            Err(SourceError::Empty)
        ));
    }
}
