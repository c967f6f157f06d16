//! Which PKCS#11 module to load, and loading it once per process.
//!
//! The module is `--pkcs11-lib`, else the URI's `module-path`, else the module registered
//! with p11-kit under the URI's `module-name`, else p11-kit's proxy module, which makes every
//! module p11-kit knows about available (as the Go helper does).
//!
//! A module is initialised once and kept for the life of the process: a second
//! `C_Initialize` in the same process fails, the agent reloads identities on SIGHUP, and
//! `C_Finalize` while a signer still holds a session would pull it away.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::error::RvError;

use super::Pkcs11Error;
use super::error::{describe, rv};
use super::uri::Pkcs11Uri;

/// Where p11-kit's proxy module is installed on the common distributions.
const PROXY_CANDIDATES: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so",
    "/usr/lib/aarch64-linux-gnu/p11-kit-proxy.so",
    "/usr/lib/arm-linux-gnueabihf/p11-kit-proxy.so",
    "/usr/lib/i386-linux-gnu/p11-kit-proxy.so",
    "/usr/lib/riscv64-linux-gnu/p11-kit-proxy.so",
    "/usr/lib/powerpc64le-linux-gnu/p11-kit-proxy.so",
    "/usr/lib/s390x-linux-gnu/p11-kit-proxy.so",
    "/usr/lib64/p11-kit-proxy.so",
    "/usr/lib/p11-kit-proxy.so",
    "/usr/local/lib/p11-kit-proxy.so",
    "/opt/homebrew/lib/p11-kit-proxy.dylib",
    "/usr/local/lib/p11-kit-proxy.dylib",
];

/// Where p11-kit keeps module registrations (`NAME.module` files with a `module:` line).
const REGISTRATION_DIRS: &[&str] = &["/etc/pkcs11/modules", "/usr/share/p11-kit/modules"];

/// Where modules named relatively in a registration live.
const MODULE_DIRS: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/pkcs11",
    "/usr/lib/aarch64-linux-gnu/pkcs11",
    "/usr/lib64/pkcs11",
    "/usr/lib/pkcs11",
    "/usr/local/lib/pkcs11",
];

/// Picks the module for these URIs and flag.
pub fn resolve(flag: Option<&str>, uris: &[&Pkcs11Uri]) -> Result<String, Pkcs11Error> {
    let mut named: Option<String> = flag.map(str::to_string);
    for path in uris.iter().filter_map(|u| u.module_path.as_deref()) {
        match &named {
            Some(first) if !same_file(first, path) => {
                return Err(Pkcs11Error::ModuleConflict {
                    first: first.clone(),
                    second: path.to_string(),
                });
            }
            Some(_) => {}
            None => named = Some(path.to_string()),
        }
    }
    if let Some(module) = named {
        return Ok(module);
    }
    if let Some(name) = uris.iter().find_map(|u| u.module_name.as_deref()) {
        return registered_module(name).ok_or_else(|| Pkcs11Error::UnknownModuleName {
            name: name.to_string(),
        });
    }
    PROXY_CANDIDATES
        .iter()
        .find(|p| Path::new(p).exists())
        .map(|p| p.to_string())
        .ok_or_else(|| Pkcs11Error::NoModule {
            looked: PROXY_CANDIDATES.join(", "),
        })
}

fn same_file(a: &str, b: &str) -> bool {
    a == b
        || matches!(
            (std::fs::canonicalize(a), std::fs::canonicalize(b)),
            (Ok(x), Ok(y)) if x == y
        )
}

/// The module p11-kit has registered as `name` (RFC 7512: case-insensitive), from its
/// `NAME.module` file; a relative `module:` is in p11-kit's module directory.
fn registered_module(name: &str) -> Option<String> {
    let mut dirs: Vec<PathBuf> = Vec::new();
    if let Some(home) = std::env::var_os("HOME") {
        dirs.push(PathBuf::from(home).join(".config/pkcs11/modules"));
    }
    dirs.extend(REGISTRATION_DIRS.iter().map(PathBuf::from));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(stem) = file_name.to_str().and_then(|f| f.strip_suffix(".module")) else {
                continue;
            };
            if !stem.eq_ignore_ascii_case(name) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            let module = text.lines().find_map(|l| {
                let (key, value) = l.split_once(':')?;
                (key.trim() == "module").then(|| value.trim().to_string())
            })?;
            if Path::new(&module).is_absolute() {
                return Some(module);
            }
            return MODULE_DIRS
                .iter()
                .map(|d| Path::new(d).join(&module))
                .find(|p| p.exists())
                .map(|p| p.display().to_string());
        }
    }
    None
}

/// Loaded modules, by the name they were loaded with.
static LOADED: Mutex<Vec<(String, Pkcs11)>> = Mutex::new(Vec::new());

/// The initialised module `module`, loading it on first use.
pub fn load(module: &str) -> Result<Pkcs11, Pkcs11Error> {
    let mut loaded = LOADED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, ctx)) = loaded.iter().find(|(name, _)| name == module) {
        return Ok(ctx.clone());
    }
    let ctx = Pkcs11::new(module).map_err(|e| Pkcs11Error::ModuleLoad {
        module: module.to_string(),
        detail: match e {
            cryptoki::error::Error::LibraryLoading(inner) => inner.to_string(),
            other => other.to_string(),
        },
    })?;
    match ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK)) {
        Ok(()) => {}
        // Loaded under another name (a symlink, a relative path): same library, same state.
        Err(e) if rv(&e) == Some(RvError::CryptokiAlreadyInitialized) => {}
        Err(e) => {
            return Err(Pkcs11Error::Module {
                action: "C_Initialize",
                module: module.to_string(),
                detail: describe(&e),
            });
        }
    }
    tracing::debug!(module, "PKCS#11 module loaded");
    loaded.push((module.to_string(), ctx.clone()));
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_flag_wins_and_conflicts_are_refused() {
        let with_path = Pkcs11Uri::parse("pkcs11:token=t?module-path=/a.so").unwrap();
        let other_path = Pkcs11Uri::parse("pkcs11:token=t?module-path=/b.so").unwrap();
        let plain = Pkcs11Uri::parse("pkcs11:token=t").unwrap();
        assert_eq!(resolve(Some("/a.so"), &[&plain]).unwrap(), "/a.so");
        assert_eq!(resolve(None, &[&plain, &with_path]).unwrap(), "/a.so");
        assert_eq!(resolve(Some("/a.so"), &[&with_path]).unwrap(), "/a.so");
        assert!(matches!(
            resolve(Some("/b.so"), &[&with_path]),
            Err(Pkcs11Error::ModuleConflict { .. })
        ));
        assert!(matches!(
            resolve(None, &[&with_path, &other_path]),
            Err(Pkcs11Error::ModuleConflict { .. })
        ));
    }

    #[test]
    fn unknown_module_names_are_an_error() {
        let uri = Pkcs11Uri::parse("pkcs11:token=t?module-name=no-such-module-here").unwrap();
        assert!(matches!(
            resolve(None, &[&uri]),
            Err(Pkcs11Error::UnknownModuleName { .. })
        ));
    }

    #[test]
    fn a_missing_module_fails_to_load_with_the_reason() {
        let err = load("/nonexistent/libnothing.so").unwrap_err();
        assert!(matches!(err, Pkcs11Error::ModuleLoad { .. }));
        assert!(
            err.to_string().contains("/nonexistent/libnothing.so"),
            "{err}"
        );
    }
}
