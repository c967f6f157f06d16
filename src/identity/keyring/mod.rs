//! Private keys kept in the OS keyring: the freedesktop Secret Service (GNOME Keyring,
//! KWallet, KeePassXC; spoken to over D-Bus by the `keyring` crate's zbus backend, no C
//! library) or the Linux kernel's keyutils store.
//!
//! This module owns the reference syntax `--private-key` accepts, the choice of backend, and
//! the operations behind `keyring import|delete`:
//!
//! | reference | where the key is looked up |
//! |---|---|
//! | `keyring:SERVICE/ACCOUNT` | the Secret Service; the kernel keyring when no Secret Service is reachable or it has no such item |
//! | `keyring+secret-service:SERVICE/ACCOUNT` | the Secret Service only |
//! | `keyring+keyutils:SERVICE/ACCOUNT` | the kernel keyring only |
//!
//! SERVICE ends at the first `/`; ACCOUNT is the rest (it may contain `/`). In the Secret
//! Service an entry is the item with the attributes `service=SERVICE` and
//! `username=ACCOUNT` (the `keyring` crate's convention, so `secret-tool` and other programs
//! using that crate see the same items); in keyutils it is the `user` key described
//! `keyring-rs:ACCOUNT@SERVICE`, added to the session keyring and linked into the user's
//! persistent keyring when the kernel has one. Kernel keys live in memory: they are gone at
//! reboot, and a session keyring goes with its login session (the persistent keyring keeps
//! them for `/proc/sys/kernel/keys/persistent_keyring_expiry` seconds after).
//!
//! The value is a PKCS#8 key, PEM or DER, plain or encrypted (then the usual password
//! sources apply); `import` validates a key file and stores it as PKCS#8 PEM. Key bytes stay
//! in zeroizing buffers on our side; nothing secret is logged or put in an error.
//!
//! `store` does the talking to the backends, `stored` the conversions, `error` the
//! messages.

mod error;
mod store;
mod stored;

use std::fmt;

pub use error::KeyringError;
use zeroize::Zeroizing;

use super::file::{FileKey, KeyProblem, PasswordSource};
use super::password::Passwords;
use crate::signer::{KeyKind, Signer as _};

/// `keyring:SERVICE/ACCOUNT`: the Secret Service, falling back to keyutils.
pub const PREFIX: &str = "keyring:";
/// `keyring+secret-service:SERVICE/ACCOUNT`: the Secret Service only.
pub const SECRET_SERVICE_PREFIX: &str = "keyring+secret-service:";
/// `keyring+keyutils:SERVICE/ACCOUNT`: the kernel keyring only.
pub const KEYUTILS_PREFIX: &str = "keyring+keyutils:";

/// One keyring implementation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// The freedesktop Secret Service on the D-Bus session bus.
    SecretService,
    /// The Linux kernel key retention service (session keyring).
    Keyutils,
}

impl Backend {
    /// The name used in references and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Backend::SecretService => "secret-service",
            Backend::Keyutils => "keyutils",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::SecretService => "Secret Service",
            Backend::Keyutils => "kernel keyring (keyutils)",
        })
    }
}

/// Which backends a reference or a command may use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Choice {
    /// The Secret Service first, keyutils when no Secret Service is reachable (and, when
    /// reading or deleting, also when the Secret Service has no such entry).
    Auto,
    /// This backend and no other.
    Only(Backend),
}

/// A parsed keyring reference: where a key is, or is to be, stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reference {
    pub choice: Choice,
    pub service: String,
    pub account: String,
}

impl Reference {
    /// Checks the names: both non-empty, and no `/` in the service (a reference could not
    /// name it).
    pub fn new(choice: Choice, service: &str, account: &str) -> Result<Self, KeyringError> {
        let bad = |what, value: &str, why| KeyringError::BadName {
            what,
            value: value.to_string(),
            why,
        };
        if service.is_empty() {
            return Err(bad("service", service, "it is empty"));
        }
        if service.contains('/') {
            return Err(bad(
                "service",
                service,
                "it contains '/', which ends SERVICE in a keyring:SERVICE/ACCOUNT reference",
            ));
        }
        if account.is_empty() {
            return Err(bad("account", account, "it is empty"));
        }
        Ok(Reference {
            choice,
            service: service.to_string(),
            account: account.to_string(),
        })
    }

    /// Parses `keyring:SERVICE/ACCOUNT`, `keyring+secret-service:...` or
    /// `keyring+keyutils:...`.
    pub fn parse(text: &str) -> Result<Self, KeyringError> {
        let bad = |why: &str| KeyringError::BadReference {
            reference: text.to_string(),
            why: why.to_string(),
        };
        let (choice, rest) = if let Some(rest) = text.strip_prefix(PREFIX) {
            (Choice::Auto, rest)
        } else if let Some(rest) = text.strip_prefix(SECRET_SERVICE_PREFIX) {
            (Choice::Only(Backend::SecretService), rest)
        } else if let Some(rest) = text.strip_prefix(KEYUTILS_PREFIX) {
            (Choice::Only(Backend::Keyutils), rest)
        } else if text.starts_with("keyring+") {
            return Err(bad("the backend must be secret-service or keyutils"));
        } else {
            return Err(bad("it does not start with keyring:"));
        };
        let (service, account) = rest
            .split_once('/')
            .ok_or_else(|| bad("there is no '/' between SERVICE and ACCOUNT"))?;
        if service.is_empty() || account.is_empty() {
            return Err(bad("SERVICE and ACCOUNT must not be empty"));
        }
        Reference::new(choice, service, account)
    }

    /// The backends to try, in order.
    fn backends(&self) -> &'static [Backend] {
        match self.choice {
            Choice::Auto => &[Backend::SecretService, Backend::Keyutils],
            Choice::Only(Backend::SecretService) => &[Backend::SecretService],
            Choice::Only(Backend::Keyutils) => &[Backend::Keyutils],
        }
    }

    fn at(&self, backend: Backend) -> Location {
        Location {
            backend,
            service: self.service.clone(),
            account: self.account.clone(),
        }
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let prefix = match self.choice {
            Choice::Auto => PREFIX,
            Choice::Only(Backend::SecretService) => SECRET_SERVICE_PREFIX,
            Choice::Only(Backend::Keyutils) => KEYUTILS_PREFIX,
        };
        write!(f, "{prefix}{}/{}", self.service, self.account)
    }
}

/// One entry in one backend, as messages name it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Location {
    pub backend: Backend,
    pub service: String,
    pub account: String,
}

impl Location {
    /// The keyutils key description (the `keyring` crate's convention).
    pub fn keyutils_description(&self) -> String {
        format!("keyring-rs:{}@{}", self.account, self.service)
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.backend {
            Backend::SecretService => write!(
                f,
                "the Secret Service (item service={:?} username={:?})",
                self.service, self.account
            ),
            Backend::Keyutils => write!(
                f,
                "the kernel keyring (key {:?}, session keyring)",
                self.keyutils_description()
            ),
        }
    }
}

/// Whether `--private-key` names a keyring entry rather than a file.
pub fn is_reference(text: &str) -> bool {
    text.starts_with(PREFIX) || text.starts_with("keyring+")
}

/// Loads the key stored under `reference`. An encrypted key's password comes from
/// `ROLESANYWHERE_PKCS8_PASSWORD` or a terminal prompt; [`load_key_with`] also takes the
/// `--pkcs8-password` flag.
pub fn load_key(reference: &str) -> Result<FileKey, KeyringError> {
    load_key_with(reference, &Passwords::new(None, reference))
}

/// Loads the key stored under `reference`, asking `passwords` if it is encrypted.
pub fn load_key_with(
    reference: &str,
    passwords: &dyn PasswordSource,
) -> Result<FileKey, KeyringError> {
    let reference = Reference::parse(reference)?;
    let (backend, secret) = find(&reference)?;
    let at = reference.at(backend);
    tracing::debug!("using the key in {at}");
    // The signer's source names the entry, so mismatch messages point at the keyring.
    let source = format!("{backend} entry {reference}");
    stored::decode(&secret, &source, passwords).map_err(|problem| stored_problem(at, problem))
}

/// Reads the entry from the first backend that has it.
fn find(reference: &Reference) -> Result<(Backend, Zeroizing<Vec<u8>>), KeyringError> {
    let mut searched = Vec::new();
    let mut unreachable: Vec<(Backend, KeyringError)> = Vec::new();
    for &backend in reference.backends() {
        match store::get(backend, &reference.service, &reference.account) {
            Ok(Some(secret)) => return Ok((backend, secret)),
            Ok(None) => searched.push(reference.at(backend).to_string()),
            // Under `Auto`, a backend that is not there is skipped; any other failure (a
            // locked collection, a time-out) is reported rather than hidden by the fallback.
            Err(e) if reference.choice == Choice::Auto && is_unreachable(&e) => {
                unreachable.push((backend, e));
            }
            Err(e) => return Err(e),
        }
    }
    Err(not_found(reference, searched, unreachable))
}

/// The error once every backend was asked: not found where it was searched (saying which
/// backends were skipped and why), or no backend at all.
fn not_found(
    reference: &Reference,
    searched: Vec<String>,
    unreachable: Vec<(Backend, KeyringError)>,
) -> KeyringError {
    if searched.is_empty() {
        return no_backend(unreachable);
    }
    let mut searched = searched.join(" and ");
    for (backend, why) in &unreachable {
        searched.push_str(&format!(" (skipped the {backend}: {why})"));
    }
    KeyringError::NotFound {
        service: reference.service.clone(),
        account: reference.account.clone(),
        searched,
    }
}

/// The error for "every backend tried is missing": the lone error, or both reasons.
fn no_backend(mut unreachable: Vec<(Backend, KeyringError)>) -> KeyringError {
    if unreachable.len() == 1 {
        return unreachable.remove(0).1;
    }
    let reason = |b: Backend| {
        unreachable
            .iter()
            .find(|(backend, _)| *backend == b)
            .map(|(_, e)| e.to_string())
            .unwrap_or_default()
    };
    KeyringError::NoBackend {
        secret_service: reason(Backend::SecretService),
        keyutils: reason(Backend::Keyutils),
    }
}

/// Errors that mean "this backend does not exist here", as opposed to "it failed".
fn is_unreachable(e: &KeyringError) -> bool {
    matches!(
        e,
        KeyringError::NoDbusSession { .. }
            | KeyringError::BusUnreachable { .. }
            | KeyringError::NoSecretService { .. }
            | KeyringError::NoSessionKeyring { .. }
    )
}

fn stored_problem(at: Location, problem: KeyProblem) -> KeyringError {
    match problem {
        KeyProblem::NeedsPassword => KeyringError::StoredPasswordNeeded { at },
        KeyProblem::WrongPassword => KeyringError::StoredWrongPassword { at },
        KeyProblem::Unsupported(what) => KeyringError::StoredUnsupported { at, what },
        KeyProblem::IsCertificate => KeyringError::StoredNotAKey {
            at,
            detail: "it is a certificate".into(),
        },
        KeyProblem::LegacyEncrypted => KeyringError::StoredNotAKey {
            at,
            detail: "it uses OpenSSL's legacy PEM encryption".into(),
        },
        KeyProblem::Tpm => KeyringError::StoredNotAKey {
            at,
            detail: "it is a TPM key blob".into(),
        },
        KeyProblem::NotAKey(detail) => KeyringError::StoredNotAKey { at, detail },
    }
}

/// How `import` treats the key file.
#[derive(Clone, Copy, Debug, Default)]
pub struct ImportOptions {
    /// Overwrite an entry that already holds a value.
    pub replace: bool,
    /// Store an encrypted PKCS#8 key decrypted (by default it is stored as it is, still
    /// encrypted, and needs its password at every use).
    pub decrypt: bool,
}

/// What `import` stored, and where.
#[derive(Clone, Debug)]
pub struct Imported {
    pub backend: Backend,
    pub kind: KeyKind,
    /// Whether the stored PKCS#8 is encrypted.
    pub encrypted: bool,
}

/// Validates the key file `data` (named `path` in messages) and stores it as PKCS#8 PEM
/// under `target`: in its one backend, or under `Auto` in the Secret Service when one is
/// reachable and in keyutils otherwise.
pub fn import(
    target: &Reference,
    data: &[u8],
    path: &str,
    passwords: &dyn PasswordSource,
    options: ImportOptions,
) -> Result<Imported, KeyringError> {
    let prepared = stored::prepare(data, path, passwords, options.decrypt)
        .map_err(|problem| import_problem(path, problem))?;
    let mut unreachable = Vec::new();
    for &backend in target.backends() {
        match store_in(target, backend, &prepared, options.replace) {
            Ok(()) => {
                return Ok(Imported {
                    backend,
                    kind: prepared.key.key_kind(),
                    encrypted: prepared.encrypted,
                });
            }
            Err(e) if target.choice == Choice::Auto && is_unreachable(&e) => {
                unreachable.push((backend, e));
            }
            Err(e) => return Err(e),
        }
    }
    Err(no_backend(unreachable))
}

fn store_in(
    target: &Reference,
    backend: Backend,
    prepared: &stored::Prepared,
    replace: bool,
) -> Result<(), KeyringError> {
    if !replace && store::get(backend, &target.service, &target.account)?.is_some() {
        return Err(KeyringError::Exists {
            at: target.at(backend),
        });
    }
    let value = Zeroizing::new(prepared.pem.as_bytes().to_vec());
    store::set(backend, &target.service, &target.account, value)?;
    tracing::debug!("stored a key in {}", target.at(backend));
    Ok(())
}

fn import_problem(path: &str, problem: KeyProblem) -> KeyringError {
    let path = path.to_string();
    match problem {
        KeyProblem::NeedsPassword => KeyringError::ImportPasswordNeeded { path },
        KeyProblem::WrongPassword => KeyringError::ImportWrongPassword { path },
        KeyProblem::Unsupported(what) => KeyringError::ImportUnsupported { path, what },
        KeyProblem::IsCertificate => KeyringError::ImportNotAKey {
            path,
            detail: "it holds a certificate, not a private key".into(),
        },
        KeyProblem::LegacyEncrypted => KeyringError::ImportNotAKey {
            path,
            detail: "it uses OpenSSL's legacy PEM encryption; convert it to encrypted PKCS#8 with `openssl pkcs8 -topk8 -v2 aes-256-cbc`".into(),
        },
        KeyProblem::Tpm => KeyringError::ImportNotAKey {
            path,
            detail: "it is a TPM key blob, which cannot leave its TPM".into(),
        },
        KeyProblem::NotAKey(detail) => KeyringError::ImportNotAKey { path, detail },
    }
}

/// Deletes the entry named by `target`: from its one backend, or under `Auto` from every
/// reachable backend that has it. Returns the backends it was deleted from (never empty).
pub fn delete(target: &Reference) -> Result<Vec<Backend>, KeyringError> {
    let mut deleted = Vec::new();
    let mut searched = Vec::new();
    let mut unreachable = Vec::new();
    for &backend in target.backends() {
        match store::delete(backend, &target.service, &target.account) {
            Ok(true) => deleted.push(backend),
            Ok(false) => searched.push(target.at(backend).to_string()),
            Err(e) if target.choice == Choice::Auto && is_unreachable(&e) => {
                unreachable.push((backend, e));
            }
            Err(e) => return Err(e),
        }
    }
    if deleted.is_empty() {
        return Err(not_found(target, searched, unreachable));
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_three_forms() {
        let r = Reference::parse("keyring:svc/acct").unwrap();
        assert_eq!(
            (r.choice, r.service.as_str(), r.account.as_str()),
            (Choice::Auto, "svc", "acct")
        );
        let r = Reference::parse("keyring+secret-service:svc/a/b").unwrap();
        assert_eq!(r.choice, Choice::Only(Backend::SecretService));
        assert_eq!((r.service.as_str(), r.account.as_str()), ("svc", "a/b"));
        let r = Reference::parse("keyring+keyutils:s@x/user@host").unwrap();
        assert_eq!(r.choice, Choice::Only(Backend::Keyutils));
        assert_eq!(r.to_string(), "keyring+keyutils:s@x/user@host");
    }

    #[test]
    fn rejects_malformed_references() {
        for bad in [
            "keyring:",
            "keyring:svc",
            "keyring:/acct",
            "keyring:svc/",
            "keyring+kwallet:svc/acct",
            "keyring+:svc/acct",
            "file.pem",
        ] {
            let e = Reference::parse(bad).unwrap_err();
            assert!(matches!(e, KeyringError::BadReference { .. }), "{bad}: {e}");
            assert!(e.hint().is_some());
        }
    }

    #[test]
    fn recognises_references_and_not_files() {
        assert!(is_reference("keyring:a/b"));
        assert!(is_reference("keyring+keyutils:a/b"));
        assert!(is_reference("keyring+secret-service:a/b"));
        assert!(!is_reference("keyring.pem"));
        assert!(!is_reference("keyrings/key.pem"));
        assert!(!is_reference("/etc/keyring:x"));
    }

    #[test]
    fn names_must_be_addressable() {
        assert!(Reference::new(Choice::Auto, "a/b", "c").is_err());
        assert!(Reference::new(Choice::Auto, "", "c").is_err());
        assert!(Reference::new(Choice::Auto, "a", "").is_err());
        let r = Reference::new(Choice::Auto, "a", "c/d").unwrap();
        assert_eq!(Reference::parse(&r.to_string()).unwrap(), r);
    }

    #[test]
    fn locations_name_the_exact_entry() {
        let r = Reference::parse("keyring:svc/acct").unwrap();
        let ss = r.at(Backend::SecretService).to_string();
        assert!(
            ss.contains("Secret Service")
                && ss.contains("service=\"svc\"")
                && ss.contains("username=\"acct\""),
            "{ss}"
        );
        let ku = r.at(Backend::Keyutils).to_string();
        assert!(ku.contains("keyring-rs:acct@svc"), "{ku}");
    }

    #[test]
    fn not_found_and_unreachable_messages_are_complete() {
        let e = no_backend(vec![
            (
                Backend::SecretService,
                KeyringError::NoDbusSession {
                    socket: "/run/user/1/bus".into(),
                },
            ),
            (
                Backend::Keyutils,
                KeyringError::NoSessionKeyring {
                    detail: "denied".into(),
                },
            ),
        ]);
        let text = e.to_string();
        assert!(
            text.contains("DBUS_SESSION_BUS_ADDRESS") && text.contains("denied"),
            "{text}"
        );
        assert!(e.hint().is_some());
        let lone = no_backend(vec![(
            Backend::SecretService,
            KeyringError::NoDbusSession {
                socket: "/x/bus".into(),
            },
        )]);
        assert!(matches!(lone, KeyringError::NoDbusSession { .. }));
        assert!(lone.to_string().contains("Secret Service"));
        assert!(lone.hint().unwrap().contains("dbus-run-session"));
    }

    #[test]
    fn stored_problems_never_carry_the_value() {
        let at = Location {
            backend: Backend::Keyutils,
            service: "s".into(),
            account: "a".into(),
        };
        let e = stored_problem(
            at.clone(),
            KeyProblem::NotAKey("neither PEM nor a DER private key".into()),
        );
        let text = e.to_string();
        assert!(
            text.contains("kernel keyring") && text.contains("keyring-rs:a@s"),
            "{text}"
        );
        assert!(e.hint().unwrap().contains("--service s --account a"));
        assert!(matches!(
            stored_problem(at, KeyProblem::NeedsPassword),
            KeyringError::StoredPasswordNeeded { .. }
        ));
    }
}
