//! Certificate renewal without a signal: notices that the certificate, key or intermediates
//! changed (inotify on their directories, and a stat check before each CreateSession; a
//! certificate on a PKCS#11 token is looked up again instead), loads and checks the new
//! identity exactly as at start, and hands it to the loader for the next CreateSession.
//!
//! Rules:
//! - only a checked identity is ever used: a half-written or mismatched pair (a renewal job
//!   writes the key first, the certificate a second later) is retried with a bounded backoff
//!   while the current identity stays in use, and reported once;
//! - the credentials in hand are kept until their refresh is due (no forced CreateSession);
//!   the unix socket's identity key follows the files at once, since every
//!   `credential-process` that reads them now names the new certificate;
//! - every read happens off the runtime thread with a time bound ([`blocking`]): a FIFO or a
//!   stalled mount in place of a certificate must not freeze the endpoints;
//! - SIGHUP ([`Rotation::hangup`]) re-reads unconditionally and refreshes at once.

mod blocking;
mod inotify;
mod stamp;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use super::cache::CredentialCache;
use super::expiry::{CertDates, IdentityStatus};
use super::loader::{BeforeSession, SessionLoader};
use crate::chain::Chain;
use crate::clock::Clock;
use crate::identity::IdentitySpec;
use crate::identity::source::{self, Source};
use crate::session::{PreparedSession, SessionSpec};
use blocking::{Lane, Stalled};
use stamp::Stamp;

/// Longest wait for a reload's reads (files, token, keyring) before it is reported stuck.
pub const LOAD_BOUND: Duration = Duration::from_secs(10);
/// Longest wait for the stamps (or the token lookup) before a CreateSession.
const CHECK_BOUND: Duration = Duration::from_secs(5);
/// Reads stuck past their bound at once before further ones are refused.
const MAX_STUCK_READS: usize = 3;
/// After a directory event, writers get this long to finish before the files are read.
const SETTLE: Duration = Duration::from_millis(200);
/// First retry after an unusable change; doubles up to [`RETRY_CAP`]. The next write to the
/// files retries at once anyway, so the cap only paces a change that stays broken (each
/// attempt may open a key store).
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_CAP: Duration = Duration::from_secs(60);
/// Stamp polls when inotify works (a safety net) and when it does not (the 5 s promise).
const POLL_WATCHED: Duration = Duration::from_secs(60);
const POLL_UNWATCHED: Duration = Duration::from_secs(5);

/// The files an identity is read from, stamped before the first load (so a change during
/// start-up is not missed). Take it before [`PreparedSession::load`].
pub struct Baseline {
    files: Vec<PathBuf>,
    stamps: Vec<Stamp>,
}

impl Baseline {
    pub fn take(identity: &IdentitySpec) -> Self {
        let files = watched_files(identity);
        let stamps = stamp::stamps(&files);
        Baseline { files, stamps }
    }
}

/// Why a reload produced no usable identity.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("{0}")]
    Invalid(String),
    #[error("{} is not a regular file (a FIFO or a device?)", .path.display())]
    NotRegular { path: PathBuf },
    #[error("the files changed while they were read")]
    Changing,
    #[error(
        "reading {sources} did not finish within {}s: is one of them a FIFO, or on a stalled filesystem or key store?",
        .bound.as_secs()
    )]
    TimedOut { sources: String, bound: Duration },
    #[error("earlier reads of {sources} are still stuck; not starting another")]
    StillBusy { sources: String },
    #[error("the identity sources {sources} cannot be read again (only files can)")]
    NotRereadable { sources: String },
}

/// What a successful reload did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Same certificate and chain: nothing to switch.
    Unchanged,
    /// A new certificate or chain is in use from the next CreateSession on.
    Rotated,
}

/// Sets the unix socket's identity key (kept by the server) to a new cache key.
pub type KeySetter = Box<dyn Fn(&str) + Send + Sync>;

/// Follows the identity's sources and swaps the loader's identity when they change.
pub struct Rotation {
    spec: SessionSpec,
    clock: Arc<dyn Clock>,
    loader: Arc<SessionLoader>,
    identity_key: Option<KeySetter>,
    status: Arc<IdentityStatus>,
    files: Vec<PathBuf>,
    /// The certificate is on a PKCS#11 token: looked up again before each CreateSession.
    on_token: bool,
    lane: Lane,
    /// Stamps of the files the identity in use was read from.
    current: Mutex<Vec<Stamp>>,
    /// One reload at a time.
    reloading: tokio::sync::Mutex<()>,
    /// Set while a change is seen but not usable yet, so it is reported once.
    pending: Mutex<bool>,
}

impl BeforeSession for Rotation {
    fn before_session(
        &self,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(Rotation::before_session(self))
    }
}

impl Rotation {
    /// `identity_key`: sets the unix socket's key, switched with the identity (`serve` only).
    pub fn new(
        spec: SessionSpec,
        clock: Arc<dyn Clock>,
        loader: Arc<SessionLoader>,
        identity_key: Option<KeySetter>,
        status: Arc<IdentityStatus>,
        baseline: Baseline,
    ) -> Arc<Self> {
        let on_token = spec.identity.certificate.as_deref().is_some_and(|c| {
            c.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("pkcs11:"))
        });
        let rotation = Arc::new(Rotation {
            spec,
            clock,
            loader: loader.clone(),
            identity_key,
            status,
            files: baseline.files,
            on_token,
            lane: Lane::new(MAX_STUCK_READS),
            current: Mutex::new(baseline.stamps),
            reloading: tokio::sync::Mutex::new(()),
            pending: Mutex::new(false),
        });
        let weak = Arc::downgrade(&rotation);
        loader.follow(weak);
        rotation
    }

    fn sources(&self) -> String {
        [
            &self.spec.identity.certificate,
            &self.spec.identity.private_key,
            &self.spec.identity.intermediates,
        ]
        .into_iter()
        .flatten()
        .map(|v| source::describe(v))
        .collect::<Vec<_>>()
        .join(", ")
    }

    /// Loads the identity again (off the runtime, bounded) and switches to it when it
    /// differs from the one in use. Errors leave the current identity in place. Each reload
    /// is counted for `status`.
    pub async fn reload(&self) -> Result<Outcome, ReloadError> {
        let result = self.reload_files().await;
        let recorded = match &result {
            Ok(outcome) => Ok(*outcome == Outcome::Rotated),
            Err(e) => Err(e.to_string()),
        };
        self.status.record_reload(self.clock.now(), recorded);
        result
    }

    async fn reload_files(&self) -> Result<Outcome, ReloadError> {
        let fixed: Vec<String> = [
            &self.spec.identity.certificate,
            &self.spec.identity.private_key,
            &self.spec.identity.intermediates,
        ]
        .into_iter()
        .flatten()
        .filter(|v| matches!(Source::parse(v), Source::Env(_) | Source::Stdin))
        .map(|v| source::describe(v))
        .collect();
        if !fixed.is_empty() {
            return Err(ReloadError::NotRereadable {
                sources: fixed.join(", "),
            });
        }
        let _one = self.reloading.lock().await;
        let (spec, clock, files) = (self.spec.clone(), self.clock.clone(), self.files.clone());
        let read = self.lane.run(LOAD_BOUND, move || {
            // A FIFO or device in place of a file would block the read (or never end):
            // refused by its type, which a stat tells without opening it.
            if let Some(odd) = files
                .iter()
                .find(|f| std::fs::metadata(f).is_ok_and(|m| !m.is_file()))
            {
                return Err(odd.clone());
            }
            let before = stamp::stamps(&files);
            let prepared = PreparedSession::load(&spec, clock.as_ref())
                .map_err(|e| Chain::new(&e, e.hint()).to_string());
            Ok((before, prepared, stamp::stamps(&files)))
        });
        let (before, prepared, after) = read
            .await
            .map_err(|stalled| match stalled {
                Stalled::TimedOut(bound) => ReloadError::TimedOut {
                    sources: self.sources(),
                    bound,
                },
                Stalled::StillBusy | Stalled::Failed => ReloadError::StillBusy {
                    sources: self.sources(),
                },
            })?
            .map_err(|odd| ReloadError::NotRegular { path: odd })?;
        let prepared = prepared.map_err(|e| ReloadError::Invalid(e.replace('\n', "; ")))?;
        if before != after {
            return Err(ReloadError::Changing);
        }
        Ok(self.install(prepared, after))
    }

    fn install(&self, prepared: PreparedSession, stamps: Vec<Stamp>) -> Outcome {
        *self.current.lock().unwrap_or_else(PoisonError::into_inner) = stamps;
        if std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner)) {
            tracing::info!("the changed identity files are consistent now");
        }
        let old = self.loader.identity();
        let new = &prepared.identity;
        let same_chain = old.chain.len() == new.chain.len()
            && old
                .chain
                .iter()
                .zip(&new.chain)
                .all(|(a, b)| a.der() == b.der());
        if old.certificate.der() == new.certificate.der() && same_chain {
            return Outcome::Unchanged;
        }
        let new_key = prepared.cache_key();
        let (before, after) = (
            CertDates::of(&old.certificate),
            CertDates::of(&new.certificate),
        );
        tracing::info!(
            old_serial = %before.serial,
            old_not_after = %crate::credentials::format_expiration(before.not_after),
            new_serial = %after.serial,
            new_not_after = %crate::credentials::format_expiration(after.not_after),
            "identity rotated: the next CreateSession uses the new certificate; the current credentials stay until their refresh"
        );
        self.loader.set_identity(prepared.identity);
        if let Some(set_key) = &self.identity_key {
            set_key(new_key.as_str());
        }
        self.status.set(after);
        Outcome::Rotated
    }

    /// Reports an unusable change once; later failures of the same episode go to debug.
    fn report(&self, e: &ReloadError) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        if *pending {
            tracing::debug!(error = %e, "the identity files are still not usable");
        } else {
            *pending = true;
            tracing::warn!(
                error = %e,
                "the identity files changed but cannot be used yet; keeping the current identity and retrying until they are consistent"
            );
        }
    }

    /// Whether the files differ from those the identity in use came from. Waits for a
    /// reload in progress; a stat that does not finish in time counts as "no change".
    async fn files_changed(&self) -> bool {
        if self.files.is_empty() {
            return false;
        }
        let _one = self.reloading.lock().await;
        let files = self.files.clone();
        match self
            .lane
            .run(CHECK_BOUND, move || stamp::stamps(&files))
            .await
        {
            Ok(now) => now != *self.current.lock().unwrap_or_else(PoisonError::into_inner),
            Err(_) => false,
        }
    }

    /// Whether the certificate the token selects now differs from the one in use.
    #[cfg(feature = "pkcs11")]
    async fn token_changed(&self) -> bool {
        let spec = crate::identity::IdentitySpec {
            certificate: self.spec.identity.certificate.clone(),
            private_key: self.spec.identity.private_key.clone(),
            pkcs11_lib: self.spec.identity.pkcs11_lib.clone(),
            cert_selector: self.spec.identity.cert_selector.clone(),
            use_latest_expiring_certificate: self.spec.identity.use_latest_expiring_certificate,
            ..Default::default()
        };
        let _one = self.reloading.lock().await;
        let found = self
            .lane
            .run(CHECK_BOUND, move || {
                crate::identity::pkcs11::current_certificate_der(&spec)
            })
            .await;
        match found {
            Ok(Ok(Some(der))) => der != self.loader.identity().certificate.der(),
            Ok(Ok(None)) => false,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "cannot look the certificate up on the token again");
                false
            }
            Err(e) => {
                tracing::debug!(?e, "looking the certificate up on the token did not finish");
                false
            }
        }
    }

    #[cfg(not(feature = "pkcs11"))]
    async fn token_changed(&self) -> bool {
        false
    }

    /// Before each CreateSession: the fallback for changes inotify did not see (another
    /// filesystem, a token). A usable change is switched to; anything else keeps the
    /// identity in use.
    pub async fn before_session(&self) {
        let changed = if self.on_token {
            self.token_changed().await || self.files_changed().await
        } else {
            self.files_changed().await
        };
        if changed && let Err(e) = self.reload().await {
            self.report(&e);
        }
    }

    /// SIGHUP: reads the identity again whatever the stamps say and refreshes the
    /// credentials at once.
    pub async fn hangup(&self, cache: &CredentialCache) {
        match self.reload().await {
            Ok(_) => {
                let serial = self.loader.identity().certificate.serial_decimal();
                match cache.refresh().await {
                    Ok(_) => tracing::info!(
                        serial,
                        "SIGHUP: identity reloaded and new credentials obtained"
                    ),
                    Err(e) => tracing::warn!(
                        serial,
                        error = %e,
                        "SIGHUP: identity reloaded, but CreateSession failed; the current credentials stay until they expire"
                    ),
                }
            }
            Err(ReloadError::NotRereadable { sources }) => tracing::warn!(
                %sources,
                "SIGHUP: the identity comes from sources that cannot be read again; keeping the current one"
            ),
            Err(e) => tracing::error!(
                "SIGHUP: the certificate or key cannot be used, keeping the current identity: {e}"
            ),
        }
    }

    /// Points the watches at the files' directories as they resolve now. Off the runtime:
    /// resolving paths may block on a stalled network filesystem.
    async fn update_watches(&self, watcher: &mut inotify::DirWatcher) {
        let mut list = match watcher.take() {
            Ok(list) => list,
            Err(e) => {
                tracing::debug!(error = %e, "cannot update the inotify watches");
                return;
            }
        };
        let files = self.files.clone();
        let updated = self.lane.run(CHECK_BOUND, move || {
            list.set(&dirs(&files));
            list
        });
        match updated.await {
            Ok(list) => watcher.put(list),
            Err(e) => tracing::debug!(?e, "updating the inotify watches did not finish"),
        }
    }

    /// Watches the files until `shutdown` resolves: a change is loaded within a second or
    /// so of the last write (5 s by polling where inotify is not available).
    pub async fn run(self: Arc<Self>, shutdown: impl Future<Output = ()>) {
        if self.files.is_empty() {
            return;
        }
        tokio::pin!(shutdown);
        let mut watcher = match inotify::DirWatcher::new() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the identity files with inotify; checking them every 5 s instead");
                None
            }
        };
        let mut retry: Option<Duration> = None;
        // The first round only compares stamps: a change made before the watches existed
        // (between the start-up load and now) has no event to wake us.
        let mut first = true;
        loop {
            if let Some(w) = watcher.as_mut() {
                self.update_watches(w).await;
            }
            let watching = watcher
                .as_ref()
                .is_some_and(inotify::DirWatcher::is_watching);
            let wait = retry.unwrap_or(if watching {
                POLL_WATCHED
            } else {
                POLL_UNWATCHED
            });
            let event = async {
                match watcher.as_mut() {
                    Some(w) => w.changed().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = &mut shutdown => return,
                _ = std::future::ready(()), if first => first = false,
                result = event => {
                    if let Err(e) = result {
                        tracing::warn!(error = %e, "inotify failed; checking the identity files every 5 s instead");
                        watcher = None;
                    }
                    // Let a writer finish (and more events of the same change arrive).
                    tokio::select! {
                        _ = &mut shutdown => return,
                        _ = tokio::time::sleep(SETTLE) => {}
                    }
                }
                _ = tokio::time::sleep(wait) => {}
            }
            // Cancelled by shutdown: a read stuck on a FIFO must not hold up the exit.
            let attempt = async {
                if retry.is_none() && !self.files_changed().await {
                    return None;
                }
                Some(self.reload().await)
            };
            let result = tokio::select! {
                _ = &mut shutdown => return,
                result = attempt => result,
            };
            match result {
                None => {}
                Some(Ok(_)) => retry = None,
                Some(Err(e)) => {
                    self.report(&e);
                    retry = Some(retry.map_or(RETRY_FIRST, |d| (d * 2).min(RETRY_CAP)));
                }
            }
        }
    }
}

/// The directories to watch: each file's own directory and its resolved target's.
fn dirs(files: &[PathBuf]) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for file in files {
        let resolved = Stamp::of(file).resolved().map(Path::to_path_buf);
        for path in [Some(file.clone()), resolved].into_iter().flatten() {
            if let Some(dir) = path.parent()
                && !dirs.iter().any(|d: &PathBuf| d == dir)
            {
                dirs.push(dir.to_path_buf());
            }
        }
    }
    dirs
}

/// The identity flags that name files (not tokens, key stores, variables or standard
/// input), as absolute paths: what a renewal can change under the agent.
fn watched_files(args: &IdentitySpec) -> Vec<PathBuf> {
    [&args.certificate, &args.private_key, &args.intermediates]
        .into_iter()
        .flatten()
        .filter(|v| {
            let scheme = |p: &str| v.get(..p.len()).is_some_and(|s| s.eq_ignore_ascii_case(p));
            // Key stores named like the loaders name them (keyring: also keyring+BACKEND:).
            !(scheme("pkcs11:")
                || v.starts_with("handle:")
                || v.starts_with("keyring:")
                || v.starts_with("keyring+"))
        })
        .filter_map(|v| match Source::parse(v) {
            Source::File(p) => std::path::absolute(p).ok(),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_files_are_watched() {
        let args = IdentitySpec {
            certificate: Some("/etc/ra/cert.pem".into()),
            private_key: Some("pkcs11:token=t;object=k".into()),
            intermediates: Some("env:CHAIN".into()),
            ..Default::default()
        };
        assert_eq!(
            watched_files(&args),
            vec![PathBuf::from("/etc/ra/cert.pem")]
        );
        let args = IdentitySpec {
            certificate: Some("c.pem".into()),
            private_key: Some("handle:0x81000001".into()),
            ..Default::default()
        };
        let files = watched_files(&args);
        assert_eq!(files.len(), 1);
        assert!(files[0].is_absolute() && files[0].ends_with("c.pem"));
    }
}
