//! Where the password of an encrypted PKCS#8 key or a PKCS#12 file comes from: the
//! `--pkcs8-password` flag, else `ROLESANYWHERE_PKCS8_PASSWORD`, else a prompt on the
//! terminal when standard input is one (never when run by an SDK as `credential_process`).

use std::cell::RefCell;
use std::io::IsTerminal as _;

use secrecy::SecretString;

use super::file::PasswordSource;

/// The environment variable consulted when `--pkcs8-password` is not given.
pub const PASSWORD_ENV: &str = "ROLESANYWHERE_PKCS8_PASSWORD";

/// Resolves the password lazily and at most once per file.
pub struct Passwords {
    explicit: Option<SecretString>,
    prompt_for: String,
    prompted: RefCell<Option<SecretString>>,
}

impl Passwords {
    /// `explicit` is the flag's value; `file` names what the prompt asks about.
    pub fn new(explicit: Option<SecretString>, file: &str) -> Self {
        let explicit =
            explicit.or_else(|| std::env::var(PASSWORD_ENV).ok().map(SecretString::from));
        Passwords {
            explicit,
            prompt_for: file.to_string(),
            prompted: RefCell::new(None),
        }
    }

    /// Whether a password was given by flag or environment (not prompted).
    pub fn is_explicit(&self) -> bool {
        self.explicit.is_some()
    }
}

impl PasswordSource for Passwords {
    fn password(&self) -> Option<SecretString> {
        if let Some(p) = &self.explicit {
            return Some(p.clone());
        }
        if let Some(p) = self.prompted.borrow().as_ref() {
            return Some(p.clone());
        }
        if !std::io::stdin().is_terminal() {
            return None;
        }
        // rpassword reads from the controlling terminal with echo off.
        let answer =
            rpassword::prompt_password(format!("Password for {}: ", self.prompt_for)).ok()?;
        let secret = SecretString::from(answer);
        *self.prompted.borrow_mut() = Some(secret.clone());
        Some(secret)
    }
}
