//! `keyring import|delete`: put a validated private key into the OS keyring as PKCS#8, or
//! take it out. The keyring work itself (backends, reference syntax, conversions) lives in
//! [`crate::identity::keyring`]; this module owns reading the key file and the one line of
//! output; the flags are [`crate::cli::keyring`]'s.

use std::io::Read as _;

use zeroize::Zeroizing;

use crate::cli::keyring::{
    BackendArg, DeleteArgs, EntryArgs, ImportArgs, KeyringAction, KeyringArgs,
};
use crate::error::Error;
use crate::identity::IdentityError;
use crate::identity::keyring::{self, Backend, Choice, ImportOptions, KeyringError, Reference};
use crate::identity::password::Passwords;

/// Keys larger than this are not keys (an RSA-4096 PKCS#8 PEM is about 3.3 KiB).
const MAX_KEY_FILE: usize = 64 * 1024;

fn fail(e: KeyringError) -> Error {
    Error::Identity(IdentityError::Keyring(e))
}

pub async fn run(args: &KeyringArgs) -> Result<(), Error> {
    match &args.action {
        KeyringAction::Import(a) => import(a),
        KeyringAction::Delete(a) => delete(a),
    }
}

/// The backends `--backend` allows.
fn choice(backend: BackendArg) -> Choice {
    match backend {
        BackendArg::Auto => Choice::Auto,
        BackendArg::SecretService => Choice::Only(Backend::SecretService),
        BackendArg::Keyutils => Choice::Only(Backend::Keyutils),
    }
}

fn reference(entry: &EntryArgs) -> Result<Reference, Error> {
    Reference::new(choice(entry.backend), &entry.service, &entry.account).map_err(fail)
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
