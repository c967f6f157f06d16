//! `keyring import|delete`: put a validated private key into the OS keyring as PKCS#8, or
//! take it out. The keyring work itself (backends, reference syntax, conversions) lives in
//! [`crate::identity::keyring`]; this module owns the flags, reading the key file and the
//! one line of output.

use std::io::Read as _;

use secrecy::SecretString;
use zeroize::Zeroizing;

use crate::error::Error;
use crate::identity::IdentityError;
use crate::identity::keyring::{self, Backend, Choice, ImportOptions, KeyringError, Reference};
use crate::identity::password::Passwords;

/// Keys larger than this are not keys (an RSA-4096 PKCS#8 PEM is about 3.3 KiB).
const MAX_KEY_FILE: usize = 64 * 1024;

#[derive(clap::Args, Debug, Clone)]
pub struct KeyringArgs {
    #[command(subcommand)]
    pub action: KeyringAction,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum KeyringAction {
    /// Check a private key file and store it, as PKCS#8, in the OS keyring; then use it
    /// with --private-key keyring:SERVICE/ACCOUNT
    Import(ImportArgs),
    /// Delete a stored key
    Delete(DeleteArgs),
}

/// Where the entry is: the flags `import` and `delete` share.
#[derive(clap::Args, Debug, Clone)]
pub struct EntryArgs {
    /// Service name of the entry (no '/')
    #[arg(long, value_name = "SERVICE")]
    pub service: String,
    /// Account name of the entry
    #[arg(long, value_name = "ACCOUNT")]
    pub account: String,
    /// Which keyring to store in or delete from
    #[arg(long, value_enum, default_value_t = BackendArg::Auto)]
    pub backend: BackendArg,
}

#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendArg {
    /// The Secret Service when one is reachable, else the kernel keyring (delete: every
    /// backend that has the entry)
    Auto,
    /// The freedesktop Secret Service on the D-Bus session bus (GNOME Keyring, KWallet, KeePassXC)
    SecretService,
    /// The Linux kernel keyring (session keyring; gone at reboot)
    Keyutils,
}

impl BackendArg {
    fn choice(self) -> Choice {
        match self {
            BackendArg::Auto => Choice::Auto,
            BackendArg::SecretService => Choice::Only(Backend::SecretService),
            BackendArg::Keyutils => Choice::Only(Backend::Keyutils),
        }
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct ImportArgs {
    #[command(flatten)]
    pub entry: EntryArgs,
    /// Password of an encrypted PKCS#8 key (else ROLESANYWHERE_PKCS8_PASSWORD, else a prompt on a terminal)
    #[arg(long, value_name = "PASSWORD", value_parser = secret)]
    pub pkcs8_password: Option<SecretString>,
    /// Store an encrypted key decrypted (by default it stays encrypted and needs its password at each use)
    #[arg(long)]
    pub decrypt: bool,
    /// Overwrite an existing entry
    #[arg(long)]
    pub replace: bool,
    /// The key: PKCS#8, PKCS#1, SEC1 or encrypted PKCS#8, PEM or DER; '-' reads standard input
    #[arg(value_name = "KEY")]
    pub key: String,
}

#[derive(clap::Args, Debug, Clone)]
pub struct DeleteArgs {
    #[command(flatten)]
    pub entry: EntryArgs,
}

/// Parses a secret flag value straight into a type whose `Debug` is redacted.
fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_string()))
}

fn fail(e: KeyringError) -> Error {
    Error::Identity(IdentityError::Keyring(e))
}

pub async fn run(args: &KeyringArgs) -> Result<(), Error> {
    match &args.action {
        KeyringAction::Import(a) => import(a),
        KeyringAction::Delete(a) => delete(a),
    }
}

fn reference(entry: &EntryArgs) -> Result<Reference, Error> {
    Reference::new(entry.backend.choice(), &entry.service, &entry.account).map_err(fail)
}

fn import(args: &ImportArgs) -> Result<(), Error> {
    let target = reference(&args.entry)?;
    let name = if args.key == "-" {
        "standard input"
    } else {
        args.key.as_str()
    };
    let data = read_key(&args.key).map_err(|source| {
        fail(KeyringError::ImportRead {
            path: name.to_string(),
            source,
        })
    })?;
    let passwords = Passwords::new(args.pkcs8_password.clone(), name);
    let options = ImportOptions {
        replace: args.replace,
        decrypt: args.decrypt,
    };
    let imported = keyring::import(&target, &data, name, &passwords, options).map_err(fail)?;
    let protection = if imported.encrypted {
        "encrypted PKCS#8"
    } else {
        "PKCS#8"
    };
    println!(
        "stored the {} key from {name} as {protection} in the {} (service {:?}, account {:?}); use --private-key {target}",
        imported.kind, imported.backend, target.service, target.account
    );
    Ok(())
}

fn delete(args: &DeleteArgs) -> Result<(), Error> {
    let target = reference(&args.entry)?;
    for backend in keyring::delete(&target).map_err(fail)? {
        println!(
            "deleted service {:?}, account {:?} from the {backend}",
            target.service, target.account
        );
    }
    Ok(())
}

/// Reads the key file (or standard input) into a zeroizing buffer sized up front, so no
/// reallocation leaves a copy of the key behind.
fn read_key(path: &str) -> std::io::Result<Zeroizing<Vec<u8>>> {
    let mut data = Zeroizing::new(Vec::with_capacity(MAX_KEY_FILE + 1));
    let limit = (MAX_KEY_FILE + 1) as u64;
    if path == "-" {
        std::io::stdin().lock().take(limit).read_to_end(&mut data)?;
    } else {
        data = crate::files::read_regular(std::path::Path::new(path), MAX_KEY_FILE as u64)
            .map_err(crate::files::ReadError::into_io)?;
    }
    if data.len() > MAX_KEY_FILE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {MAX_KEY_FILE} bytes, which no private key is"),
        ));
    }
    Ok(data)
}
