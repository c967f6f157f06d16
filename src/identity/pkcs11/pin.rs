//! Where a token's user PIN comes from, first match wins: the URI's `pin-value`, the URI's
//! `pin-source` (a file path or `file:` URI; the key's URI before the certificate's), the
//! `ROLESANYWHERE_PKCS11_PIN` variable, then a prompt on the terminal when standard input is
//! one (never when an SDK runs us as `credential_process`). The PIN lives in a
//! [`SecretString`] and is never logged or put in a message.

use std::io::IsTerminal as _;

use secrecy::SecretString;

use super::Pkcs11Error;
use super::uri::Pkcs11Uri;

/// The environment variable consulted when the URI carries no PIN.
pub const PIN_ENV: &str = "ROLESANYWHERE_PKCS11_PIN";

/// Resolves the user PIN lazily: files and the environment at construction, the prompt
/// only when a login actually needs it, and at most once.
pub struct Pins {
    given: Option<SecretString>,
    prompted: Option<SecretString>,
    /// Never ask on the terminal (the agent looking a certificate up again while it runs).
    no_prompt: bool,
}

impl Pins {
    /// Reads the non-interactive sources of the URIs, most specific first.
    pub fn new(uris: &[&Pkcs11Uri]) -> Result<Self, Pkcs11Error> {
        for uri in uris {
            if let Some(pin) = &uri.pin_value {
                return Ok(Pins::given(pin.clone()));
            }
            if let Some(source) = &uri.pin_source {
                return Ok(Pins::given(read_pin_source(source)?));
            }
        }
        let from_env = std::env::var(PIN_ENV).ok().map(SecretString::from);
        Ok(Pins {
            given: from_env,
            prompted: None,
            no_prompt: false,
        })
    }

    fn given(pin: SecretString) -> Self {
        Pins {
            given: Some(pin),
            prompted: None,
            no_prompt: false,
        }
    }

    /// The same PINs, but a login that needs a prompt fails instead of asking.
    pub fn never_prompt(mut self) -> Self {
        self.no_prompt = true;
        self
    }

    /// A PIN that needs no prompt, if there is one.
    pub fn without_prompt(&self) -> Option<SecretString> {
        self.given.clone().or_else(|| self.prompted.clone())
    }

    /// The PIN, asking on the terminal for `token` if nothing else gave one.
    pub fn get(&mut self, token: &str) -> Option<SecretString> {
        if let Some(pin) = self.without_prompt() {
            return Some(pin);
        }
        if self.no_prompt {
            return None;
        }
        let pin = prompt(&format!("PIN for PKCS#11 token {token}: "))?;
        self.prompted = Some(pin.clone());
        Some(pin)
    }
}

/// Asks on the controlling terminal (echo off) when standard input is one.
pub fn prompt(question: &str) -> Option<SecretString> {
    if !std::io::stdin().is_terminal() {
        return None;
    }
    rpassword::prompt_password(question)
        .ok()
        .map(SecretString::from)
}

/// Reads a `pin-source`: a `file:` URI or a path. One trailing line break is dropped,
/// because PIN files are usually written with `echo`.
pub fn read_pin_source(source: &str) -> Result<SecretString, Pkcs11Error> {
    let path = file_path(source).ok_or_else(|| Pkcs11Error::PinSource {
        source_name: source.to_string(),
        detail: "only file paths and file: URIs are supported".into(),
    })?;
    let pin_error = |detail: String| Pkcs11Error::PinSource {
        source_name: source.to_string(),
        detail,
    };
    let bytes = crate::files::read_regular(std::path::Path::new(&path), crate::files::IDENTITY_CAP)
        .map_err(|e| pin_error(e.to_string()))?;
    let text = zeroize::Zeroizing::new(
        String::from_utf8(bytes.to_vec()).map_err(|_| pin_error("it is not UTF-8 text".into()))?,
    );
    let pin = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    Ok(SecretString::from(pin.to_string()))
}

/// `file:///p`, `file://localhost/p` and `file:/p` name `/p`; anything else without a URI
/// scheme is a path; other schemes are not supported.
fn file_path(source: &str) -> Option<String> {
    if let Some(rest) = source.strip_prefix("file:") {
        let path = match rest.strip_prefix("//") {
            Some(authority_and_path) => {
                let slash = authority_and_path.find('/')?;
                let authority = &authority_and_path[..slash];
                if !authority.is_empty() && authority != "localhost" {
                    return None;
                }
                &authority_and_path[slash..]
            }
            None => rest,
        };
        let decoded = super::uri::percent_decode("pin-source", path).ok()?;
        return String::from_utf8(decoded).ok();
    }
    // A scheme is letters, digits, `+`, `-`, `.` before a `:`; a path may contain `:` too,
    // but only after a `/`.
    let looks_like_scheme = source.split_once(':').is_some_and(|(scheme, _)| {
        !scheme.is_empty()
            && !scheme.contains('/')
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if looks_like_scheme {
        return None;
    }
    Some(source.to_string())
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret as _;

    use super::*;

    #[test]
    fn pin_source_forms() {
        assert_eq!(file_path("/etc/pin").as_deref(), Some("/etc/pin"));
        assert_eq!(file_path("pin.txt").as_deref(), Some("pin.txt"));
        assert_eq!(file_path("file:/etc/pin").as_deref(), Some("/etc/pin"));
        assert_eq!(file_path("file:///etc/pin").as_deref(), Some("/etc/pin"));
        assert_eq!(
            file_path("file://localhost/etc/my%20pin").as_deref(),
            Some("/etc/my pin")
        );
        assert_eq!(file_path("file://host/etc/pin"), None);
        assert_eq!(file_path("|/bin/get-pin"), Some("|/bin/get-pin".into()));
        assert_eq!(file_path("https://example.com/pin"), None);
    }

    #[test]
    fn reads_the_pin_file_without_its_line_break() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "123456\n").unwrap();
        let pin = read_pin_source(&file.display().to_string()).unwrap();
        assert_eq!(pin.expose_secret(), "123456");
        std::fs::write(&file, "12 34\r\n").unwrap();
        let pin = read_pin_source(&format!("file://{}", file.display())).unwrap();
        assert_eq!(pin.expose_secret(), "12 34");
        let missing = read_pin_source(&format!("{}/none", dir.path().display()));
        assert!(matches!(missing, Err(Pkcs11Error::PinSource { .. })));
    }

    #[test]
    fn the_uri_pin_comes_first() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pin");
        std::fs::write(&file, "from-file").unwrap();
        let key =
            Pkcs11Uri::parse(&format!("pkcs11:token=t?pin-source={}", file.display())).unwrap();
        let cert = Pkcs11Uri::parse("pkcs11:token=t?pin-value=from-cert").unwrap();
        let pins = Pins::new(&[&key, &cert]).unwrap();
        assert_eq!(pins.without_prompt().unwrap().expose_secret(), "from-file");
        let pins = Pins::new(&[&cert, &key]).unwrap();
        assert_eq!(pins.without_prompt().unwrap().expose_secret(), "from-cert");
    }
}
