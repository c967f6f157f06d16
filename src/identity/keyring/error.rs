//! What can go wrong with a key in the OS keyring, and what the user can do about it.
//!
//! Every message names the backend (and, where one was involved, the exact service and
//! account), and none carries secret bytes: a stored value that is not a key is described by
//! what it is not, never by what it holds.

use super::{Backend, Location};

/// Errors of the keyring key store (`--private-key keyring:...`, `keyring import|delete`).
#[derive(Debug, thiserror::Error)]
pub enum KeyringError {
    #[error("{reference:?} is not a keyring reference: {why}")]
    BadReference { reference: String, why: String },
    #[error("the {what} {value:?} cannot be used: {why}")]
    BadName {
        what: &'static str,
        value: String,
        why: &'static str,
    },
    #[error(
        "the Secret Service backend needs a D-Bus session bus, and this process has none (DBUS_SESSION_BUS_ADDRESS is unset and there is no {socket})"
    )]
    NoDbusSession { socket: String },
    #[error("the Secret Service backend cannot reach the D-Bus session bus at {address}: {detail}")]
    BusUnreachable { address: String, detail: String },
    #[error("no Secret Service answers on the D-Bus session bus: {detail}")]
    NoSecretService { detail: String },
    #[error(
        "the Secret Service collection holding the key is locked, and unlocking it failed: {detail}"
    )]
    Locked { detail: String },
    #[error(
        "the Secret Service has no usable default collection (\"login\" keyring) to store the key in: {detail}"
    )]
    NoCollection { detail: String },
    #[error("the keyutils backend has no session keyring to use: {detail}")]
    NoSessionKeyring { detail: String },
    #[error(
        "no keyring backend is reachable: Secret Service: {secret_service}; keyutils: {keyutils}"
    )]
    NoBackend {
        secret_service: String,
        keyutils: String,
    },
    #[error("no key stored for service {service:?}, account {account:?}: looked in {searched}")]
    NotFound {
        service: String,
        account: String,
        searched: String,
    },
    #[error("{count} Secret Service items match service {service:?}, account {account:?}")]
    Ambiguous {
        service: String,
        account: String,
        count: usize,
    },
    #[error("there is already an entry in {at}")]
    Exists { at: Location },
    #[error("the value stored in {at} is not a private key: {detail}")]
    StoredNotAKey { at: Location, detail: String },
    #[error("the key stored in {at} is a {what}, which cannot sign for IAM Roles Anywhere")]
    StoredUnsupported { at: Location, what: String },
    #[error("the key stored in {at} is encrypted and no password was given")]
    StoredPasswordNeeded { at: Location },
    #[error("the password does not decrypt the key stored in {at}")]
    StoredWrongPassword { at: Location },
    #[error("cannot read the key file {path}: {source}")]
    ImportRead {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable private key: {detail}")]
    ImportNotAKey { path: String, detail: String },
    #[error("{path} holds a {what}, which cannot sign for IAM Roles Anywhere")]
    ImportUnsupported { path: String, what: String },
    #[error("{path} is an encrypted key and no password was given")]
    ImportPasswordNeeded { path: String },
    #[error("the password does not decrypt {path}")]
    ImportWrongPassword { path: String },
    #[error("the {backend} backend did not answer within {seconds} s")]
    Timeout { backend: Backend, seconds: u64 },
    #[error("the {backend} backend failed to {operation}: {detail}")]
    Backend {
        backend: Backend,
        operation: &'static str,
        detail: String,
    },
}

impl KeyringError {
    /// What the user can do about it.
    pub fn hint(&self) -> Option<String> {
        use KeyringError::*;
        let import = |service: &str, account: &str| {
            format!(
                "store one with `rolesanywhere-agent keyring import --service {service} --account {account} KEY.pem`"
            )
        };
        Some(match self {
            BadReference { .. } => "write keyring:SERVICE/ACCOUNT, keyring+secret-service:SERVICE/ACCOUNT or keyring+keyutils:SERVICE/ACCOUNT (SERVICE ends at the first '/')".into(),
            BadName { .. } => "pick a non-empty service without '/' and a non-empty account".into(),
            NoDbusSession { .. } => "run it inside a desktop or login session that has a D-Bus session bus and a Secret Service (GNOME Keyring, KWallet, KeePassXC), or start one for a headless job with `dbus-run-session -- sh -c 'echo -n PASSWORD | gnome-keyring-daemon --unlock --components=secrets; ...'`; or keep the key in the kernel keyring instead (--backend keyutils, keyring+keyutils:SERVICE/ACCOUNT)".into(),
            BusUnreachable { .. } => "DBUS_SESSION_BUS_ADDRESS points at a bus that is gone (a stale variable from another session?): unset it or start a new session; or use the kernel keyring (keyring+keyutils:SERVICE/ACCOUNT)".into(),
            NoSecretService { .. } => "start a Secret Service provider in this session (`gnome-keyring-daemon --start --components=secrets`, KWallet or KeePassXC with Secret Service integration), or use the kernel keyring (keyring+keyutils:SERVICE/ACCOUNT)".into(),
            Locked { .. } => "unlock the keyring (log in to the desktop, open it in Seahorse, or `echo -n PASSWORD | gnome-keyring-daemon --unlock` in this session) and retry".into(),
            NoCollection { .. } => "create and unlock the login keyring: log in to the desktop once, or run `echo -n PASSWORD | gnome-keyring-daemon --unlock --components=secrets` in this D-Bus session; or use the kernel keyring (--backend keyutils)".into(),
            NoSessionKeyring { .. } => "run it in a login session (pam_keyinit gives one), or wrap the command: `keyctl session - rolesanywhere-agent ...`; in a container, the runtime's seccomp profile may block the keyctl system call".into(),
            NoBackend { .. } => "start a Secret Service in a D-Bus session, or give the process a session keyring (`keyctl session - ...`)".into(),
            NotFound { service, account, .. } => format!(
                "{}; names are case-sensitive and SERVICE ends at the first '/' of the reference",
                import(service, account)
            ),
            Ambiguous { service, account, .. } => format!(
                "list them with `secret-tool search --all service {service} username {account}` and remove the extra ones (`secret-tool clear service {service} username {account}` removes all)"
            ),
            Exists { .. } => "pass --replace to overwrite it, or pick another --account".into(),
            StoredNotAKey { at, .. } | StoredUnsupported { at, .. } => format!(
                "replace it with `rolesanywhere-agent keyring import --replace --service {} --account {} KEY.pem` (an RSA 2048-4096 or EC P-256/P-384 key)",
                at.service, at.account
            ),
            StoredPasswordNeeded { .. } => format!(
                "pass --pkcs8-password, set {}, or run from a terminal to be prompted; or re-import it with --decrypt",
                crate::identity::password::PASSWORD_ENV
            ),
            StoredWrongPassword { .. } => format!(
                "check --pkcs8-password or {}",
                crate::identity::password::PASSWORD_ENV
            ),
            ImportRead { .. } => "check the path and that this user may read it".into(),
            ImportNotAKey { .. } => "expected a PEM or DER key: PKCS#8 (PRIVATE KEY), PKCS#1 (RSA PRIVATE KEY), SEC1 (EC PRIVATE KEY) or encrypted PKCS#8 (PEM)".into(),
            ImportUnsupported { .. } => "use an RSA (2048, 3072 or 4096 bit) or EC P-256/P-384 key".into(),
            ImportPasswordNeeded { .. } => format!(
                "pass --pkcs8-password, set {}, or run from a terminal to be prompted",
                crate::identity::password::PASSWORD_ENV
            ),
            ImportWrongPassword { .. } => format!(
                "check --pkcs8-password or {}",
                crate::identity::password::PASSWORD_ENV
            ),
            Timeout {
                backend: super::Backend::SecretService,
                ..
            } => "the Secret Service may be waiting on an unlock prompt nobody can see; unlock the keyring first, or use keyring+keyutils:SERVICE/ACCOUNT".into(),
            Timeout { .. } => return None,
            Backend { .. } => return None,
        })
    }
}
