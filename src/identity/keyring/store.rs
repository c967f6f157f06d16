//! Reading, writing and deleting one entry in one backend, through the `keyring` crate, and
//! turning that crate's errors into [`KeyringError`]s that say which backend failed and why.
//!
//! Every call runs on a short-lived thread of its own, bounded by [`TIMEOUT`]: the crate's
//! zbus Secret Service client drives a private Tokio runtime with `block_on`, which panics
//! on a thread that already runs one (ours does), and an unlock prompt nobody answers must
//! not hang `credential-process` forever.

use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

use ::keyring::Entry;
use zeroize::Zeroizing;

use super::{Backend, KeyringError};

/// How long one keyring call may take. Long enough to type a password into a desktop
/// unlock prompt.
pub(super) const TIMEOUT: Duration = Duration::from_secs(60);

/// The entry's value, or `None` when the backend has no such entry.
pub(super) fn get(
    backend: Backend,
    service: &str,
    account: &str,
) -> Result<Option<Zeroizing<Vec<u8>>>, KeyringError> {
    let (service, account) = (service.to_string(), account.to_string());
    on_worker(backend, move || {
        let entry = entry(backend, &service, &account)?;
        match entry.get_secret() {
            Ok(secret) => Ok(Some(Zeroizing::new(secret))),
            Err(::keyring::Error::NoEntry) => Ok(None),
            Err(e) => {
                absent_if_no_collection(classify(backend, "read the key", &service, &account, e))
            }
        }
    })
}

/// Stores `value`, replacing any previous value of the entry.
pub(super) fn set(
    backend: Backend,
    service: &str,
    account: &str,
    value: Zeroizing<Vec<u8>>,
) -> Result<(), KeyringError> {
    let (service, account) = (service.to_string(), account.to_string());
    on_worker(backend, move || {
        let entry = entry(backend, &service, &account)?;
        entry
            .set_secret(&value)
            .map_err(|e| classify(backend, "store the key", &service, &account, e))
    })
}

/// Deletes the entry; `false` when there was none.
pub(super) fn delete(backend: Backend, service: &str, account: &str) -> Result<bool, KeyringError> {
    let (service, account) = (service.to_string(), account.to_string());
    on_worker(backend, move || {
        let entry = entry(backend, &service, &account)?;
        match entry.delete_credential() {
            Ok(()) => Ok(true),
            Err(::keyring::Error::NoEntry) => Ok(false),
            Err(e) => {
                absent_if_no_collection(classify(backend, "delete the key", &service, &account, e))
                    .map(|_: Option<()>| false)
            }
        }
    })
}

/// The crate searches every collection first and only then falls back to the default
/// collection for items of its version 1; when there is no default collection, that
/// fallback fails, but the search already showed there is no such item.
fn absent_if_no_collection<T>(e: KeyringError) -> Result<Option<T>, KeyringError> {
    match e {
        KeyringError::NoCollection { .. } => Ok(None),
        other => Err(other),
    }
}

/// Runs `f` on a new thread and waits at most [`TIMEOUT`] for it. On a time-out the thread
/// is left to finish (or die with the process); whatever it returns then is dropped, and a
/// secret in it zeroized.
fn on_worker<T: Send + 'static>(
    backend: Backend,
    f: impl FnOnce() -> Result<T, KeyringError> + Send + 'static,
) -> Result<T, KeyringError> {
    let (tx, rx) = mpsc::sync_channel(1);
    std::thread::Builder::new()
        .name(format!("keyring-{}", backend.name()))
        .spawn(move || {
            let _ = tx.send(f());
        })
        .map_err(|e| KeyringError::Backend {
            backend,
            operation: "start",
            detail: format!("cannot start a thread: {e}"),
        })?;
    match rx.recv_timeout(TIMEOUT) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => Err(KeyringError::Timeout {
            backend,
            seconds: TIMEOUT.as_secs(),
        }),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(KeyringError::Backend {
            backend,
            operation: "answer",
            detail: "the keyring client stopped unexpectedly".into(),
        }),
    }
}

/// The `keyring` crate's entry for one backend, bypassing its process-wide default store so
/// that both backends can be used side by side.
fn entry(backend: Backend, service: &str, account: &str) -> Result<Entry, KeyringError> {
    match backend {
        Backend::SecretService => {
            session_bus()?;
            let credential =
                ::keyring::secret_service::SsCredential::new_with_target(None, service, account)
                    .map_err(|e| classify(backend, "open the entry", service, account, e))?;
            Ok(Entry::new_with_credential(Box::new(credential)))
        }
        Backend::Keyutils => {
            // The crate looks the session keyring up here; failing that, there is none to use.
            let credential =
                ::keyring::keyutils::KeyutilsCredential::new_with_target(None, service, account)
                    .map_err(|e| KeyringError::NoSessionKeyring {
                        detail: match e {
                            // The crate reads EACCES and ENOKEY as "no entry".
                            ::keyring::Error::NoEntry => {
                                "the kernel refused access to it or it does not exist".into()
                            }
                            other => error_chain(&other),
                        },
                    })?;
            Ok(Entry::new_with_credential(Box::new(credential)))
        }
    }
}

/// Finds the session bus the way zbus does, so that "there is no session" is told apart
/// from "the bus failed" before anything is attempted: `DBUS_SESSION_BUS_ADDRESS`, else
/// `$XDG_RUNTIME_DIR/bus` (`/run/user/UID/bus`).
fn session_bus() -> Result<(), KeyringError> {
    match std::env::var("DBUS_SESSION_BUS_ADDRESS") {
        Ok(address) if !address.is_empty() => {
            // A `unix:path=` socket that is gone is a stale variable; other transports
            // (abstract sockets, tcp) are left to zbus to try.
            if let Some(path) = unix_path(&address)
                && !Path::new(path).exists()
            {
                return Err(KeyringError::BusUnreachable {
                    detail: format!("there is no socket at {path}"),
                    address,
                });
            }
            Ok(())
        }
        _ => {
            let runtime_dir = std::env::var("XDG_RUNTIME_DIR")
                .ok()
                .filter(|d| !d.is_empty())
                .or_else(|| euid().map(|uid| format!("/run/user/{uid}")))
                .unwrap_or_else(|| "/run/user/UID".into());
            let socket = format!("{runtime_dir}/bus");
            if Path::new(&socket).exists() {
                Ok(())
            } else {
                Err(KeyringError::NoDbusSession { socket })
            }
        }
    }
}

/// The socket path of a single `unix:path=...` D-Bus address.
fn unix_path(address: &str) -> Option<&str> {
    if address.contains(';') {
        return None;
    }
    let rest = address.strip_prefix("unix:")?;
    rest.split(',').find_map(|kv| kv.strip_prefix("path="))
}

/// This process's effective uid: the owner of `/proc/self`.
fn euid() -> Option<u32> {
    use std::os::unix::fs::MetadataExt as _;
    std::fs::metadata("/proc/self").ok().map(|m| m.uid())
}

/// The whole chain of an error, for details. The `keyring` crate's errors carry D-Bus or
/// kernel error texts, never the secret (and `BadEncoding`, which would, is not shown).
fn error_chain(e: &::keyring::Error) -> String {
    if let ::keyring::Error::BadEncoding(_) = e {
        return "the value is not UTF-8".into();
    }
    let mut text = e.to_string();
    let mut cause = std::error::Error::source(e);
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Maps a `keyring` crate error to ours. The crate hides the Secret Service client's error
/// types behind `Box<dyn Error>`, and those types are not ours to name, so the Secret
/// Service cases are recognised by their texts (those of `secret-service` 4 and the D-Bus
/// error names, which are stable); anything unrecognised is still reported with its text
/// and the backend.
fn classify(
    backend: Backend,
    operation: &'static str,
    service: &str,
    account: &str,
    e: ::keyring::Error,
) -> KeyringError {
    if let ::keyring::Error::Ambiguous(items) = &e {
        return KeyringError::Ambiguous {
            service: service.to_string(),
            account: account.to_string(),
            count: items.len(),
        };
    }
    let detail = error_chain(&e);
    if backend == Backend::SecretService
        && let Some(kind) = secret_service_kind(&detail)
    {
        return match kind {
            SsKind::Unavailable => KeyringError::NoSecretService { detail },
            SsKind::Locked => KeyringError::Locked { detail },
            SsKind::NoCollection => KeyringError::NoCollection { detail },
            SsKind::Disconnected => KeyringError::BusUnreachable {
                address: std::env::var("DBUS_SESSION_BUS_ADDRESS")
                    .unwrap_or_else(|_| "the default address".into()),
                detail,
            },
        };
    }
    KeyringError::Backend {
        backend,
        operation,
        detail,
    }
}

#[derive(Debug, PartialEq, Eq)]
enum SsKind {
    /// Nothing provides `org.freedesktop.secrets` on the bus.
    Unavailable,
    /// The collection or item is locked and unlocking failed (or its prompt was dismissed).
    Locked,
    /// There is no default collection to create the item in.
    NoCollection,
    /// The bus itself could not be reached.
    Disconnected,
}

fn secret_service_kind(detail: &str) -> Option<SsKind> {
    let has = |needle: &str| detail.contains(needle);
    if has("no secret service provider or dbus session found")
        || has("org.freedesktop.DBus.Error.ServiceUnknown")
        || has("org.freedesktop.DBus.Error.NameHasNoOwner")
    {
        Some(SsKind::Unavailable)
    } else if has("object locked") || has("prompt dismissed") || has("IsLocked") {
        Some(SsKind::Locked)
    } else if has("result not returned from SS API")
        || has("org.freedesktop.DBus.Error.UnknownObject")
        || has("org.freedesktop.Secret.Error.NoSuchObject")
        || has("Object does not exist")
    {
        Some(SsKind::NoCollection)
    } else if has("Connection refused") || has("No such file or directory") || has("Broken pipe") {
        Some(SsKind::Disconnected)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_unix_socket_paths_from_bus_addresses() {
        assert_eq!(
            unix_path("unix:path=/tmp/dbus-x,guid=0123"),
            Some("/tmp/dbus-x")
        );
        assert_eq!(
            unix_path("unix:guid=1,path=/run/user/1/bus"),
            Some("/run/user/1/bus")
        );
        assert_eq!(unix_path("unix:abstract=/tmp/dbus-x,guid=1"), None);
        assert_eq!(unix_path("tcp:host=127.0.0.1,port=1"), None);
        assert_eq!(unix_path("unix:path=/a;unix:path=/b"), None);
    }

    #[test]
    fn recognises_secret_service_failures() {
        for (text, kind) in [
            (
                "Platform secure storage failure: no secret service provider or dbus session found",
                SsKind::Unavailable,
            ),
            (
                "zbus error: org.freedesktop.DBus.Error.ServiceUnknown: The name is not activatable",
                SsKind::Unavailable,
            ),
            (
                "Couldn't access platform secure storage: SS Error: object locked",
                SsKind::Locked,
            ),
            (
                "Couldn't access platform secure storage: SS error: prompt dismissed",
                SsKind::Locked,
            ),
            (
                "Couldn't access platform secure storage: SS error: result not returned from SS API",
                SsKind::NoCollection,
            ),
            (
                "zbus error: org.freedesktop.DBus.Error.UnknownObject: Object does not exist at path",
                SsKind::NoCollection,
            ),
            (
                "zbus error: I/O error: Connection refused (os error 111)",
                SsKind::Disconnected,
            ),
        ] {
            assert_eq!(secret_service_kind(text), Some(kind), "{text}");
        }
        assert_eq!(secret_service_kind("something else entirely"), None);
    }

    #[test]
    fn classified_errors_name_the_backend() {
        let e = classify(
            Backend::Keyutils,
            "store the key",
            "s",
            "a",
            ::keyring::Error::Invalid("password".into(), "rejected by platform".into()),
        );
        let text = e.to_string();
        assert!(
            text.contains("keyutils") && text.contains("store the key"),
            "{text}"
        );
        let e = classify(
            Backend::SecretService,
            "read the key",
            "s",
            "a",
            ::keyring::Error::BadEncoding(b"super-secret".to_vec()),
        );
        assert!(!e.to_string().contains("super-secret"));
    }
}
