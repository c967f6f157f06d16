//! `credential-process`: one CreateSession, printed as `credential_process` JSON, unless a
//! running agent or a fresh disk cache entry answers for the same identity.

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use time::OffsetDateTime;
use zeroize::Zeroizing;

use super::session_flags;
use crate::agent::cache::RefreshPolicy;
use crate::agent::client::{self, AgentAnswer};
use crate::cli::CredentialProcessArgs;
use crate::clock::Clock;
use crate::disk_cache::{CacheKey, CachedEntry, DiskCache};
use crate::error::Error;
use crate::identity::Identity;
use crate::session::prepare::{self, PreparedSession};

/// Answers from a running agent, else from the disk cache while it is fresh, else with a
/// new CreateSession (stored in the cache for the next call). The cached answers need only
/// the certificate and the key's bytes (never parsed), so the private key is loaded (and
/// its PIN or password asked for) only when a CreateSession is due.
pub async fn run(args: &CredentialProcessArgs, clock: Arc<dyn Clock>) -> Result<(), Error> {
    let spec = session_flags::spec(&args.creds)?;
    let (settings, endpoint) = (&spec.settings, &spec.endpoint);
    let cache = if args.no_cache {
        None
    } else {
        DiskCache::open_default()
    };
    let freshness = Freshness {
        policy: session_flags::policy(&args.creds),
        duration_seconds: settings.duration_seconds,
    };
    let now = clock.now();

    // A certificate outside its validity window takes the full path, which says so; so does
    // a key or intermediates file that cannot be read as it is.
    let peeked = Identity::peek_certificate(&spec.identity)
        .filter(|cert| cert.not_before() <= now && now <= cert.not_after());
    let asked = match (&peeked, prepare::key_material(&spec.identity)) {
        (Some(cert), Some(material)) => {
            let key = prepare::cache_key(cert, &material, settings, endpoint);
            if let Some(json) = cached(args, &key, cache.as_ref(), now, freshness) {
                return print(&json);
            }
            Some(key)
        }
        _ => None,
    };

    let prepared = PreparedSession::load(&spec, clock.as_ref())?;
    let key = prepared.cache_key();
    // Without the peek (PKCS#11, PKCS#12, a certificate out of its validity), ask now.
    if asked.as_ref() != Some(&key)
        && let Some(json) = cached(args, &key, cache.as_ref(), now, freshness)
    {
        return print(&json);
    }
    let fetched_at = clock.now();
    let credentials = prepare::fetch_credentials(&prepared, clock).await?;
    if let Some(cache) = &cache
        && let Err(e) = cache.store(&key, &credentials, fetched_at)
    {
        // The credentials are good; a cache that cannot be written only costs speed.
        tracing::warn!(error = %e, "cannot write the credentials cache");
    }
    print(&credentials.to_process_json())
}

/// How a disk cache entry is judged: by the lifetime the credentials really have.
#[derive(Clone, Copy, Debug)]
struct Freshness {
    policy: RefreshPolicy,
    duration_seconds: u32,
}

impl Freshness {
    /// Whether `entry` may still be handed out at `now`: more than the refresh window
    /// (`min(--refresh-before, lifetime / 2)`, as in `serve`) left, where the lifetime runs
    /// from when it was asked for to its expiry. A service that caps sessions below the
    /// duration asked thus still gets its sets reused. Entries that cannot be right are
    /// refused: one asked for in the future (the clock was stepped back since) or expiring
    /// later than the duration allows. Entries of older versions, without the time they
    /// were asked for, are judged by the duration asked, as before.
    fn allows(&self, entry: &CachedEntry, now: OffsetDateTime) -> bool {
        let asked = time::Duration::seconds(i64::from(self.duration_seconds));
        let expiration = entry.credentials.expiration;
        let lifetime = match entry.fetched_at {
            Some(at) if at > now => return false,
            Some(at) if expiration > at + asked + crate::session::EXPIRATION_SLACK => {
                return false;
            }
            Some(at) => expiration - at,
            None if expiration > now + asked + crate::session::EXPIRATION_SLACK => return false,
            None => asked,
        };
        let lifetime = Duration::try_from(lifetime).unwrap_or_default();
        let window = self.policy.window(lifetime);
        entry.credentials.remaining(now) > window
    }
}

/// Credentials for `key` from a running agent, else from the disk cache while they are
/// fresh (see [`Freshness::allows`]).
fn cached(
    args: &CredentialProcessArgs,
    key: &CacheKey,
    cache: Option<&DiskCache>,
    now: OffsetDateTime,
    freshness: Freshness,
) -> Option<Zeroizing<String>> {
    if let Some(socket) = args.socket.clone().or_else(client::default_socket_path) {
        match client::ask(&socket, key.as_str(), now) {
            Some(AgentAnswer::Credentials(json)) => {
                tracing::debug!(socket = %socket.display(), "credentials from the agent");
                return Some(json);
            }
            Some(AgentAnswer::Declined(status)) => {
                tracing::debug!(socket = %socket.display(), status, "the agent declined; going on without it");
            }
            None => {}
        }
    }
    let entry = cache?.load(key, now)?;
    if freshness.allows(&entry, now) {
        tracing::debug!("credentials from the disk cache");
        return Some(entry.credentials.to_process_json());
    }
    tracing::debug!("the cached credentials are due for refresh");
    None
}

/// Like the Go helper: the JSON alone on stdout, no trailing newline.
fn print(json: &str) -> Result<(), Error> {
    let mut out = std::io::stdout().lock();
    out.write_all(json.as_bytes())
        .and_then(|_| out.flush())
        .map_err(|e| Error::io("cannot write to standard output", e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::credentials::Credentials;
    use secrecy::SecretString;
    use time::macros::datetime;

    const T: OffsetDateTime = datetime!(2030-01-01 12:00:00 UTC);

    fn entry(lifetime_s: i64, fetched_at: Option<OffsetDateTime>) -> CachedEntry {
        CachedEntry {
            credentials: Credentials {
                access_key_id: "ASIA".into(),
                secret_access_key: SecretString::from("s".to_string()),
                session_token: SecretString::from("t".to_string()),
                expiration: T + time::Duration::seconds(lifetime_s),
                role_arn: None,
            },
            fetched_at,
        }
    }

    fn freshness(duration_seconds: u32) -> Freshness {
        Freshness {
            policy: RefreshPolicy::default(),
            duration_seconds,
        }
    }

    #[test]
    fn a_capped_lifetime_is_judged_by_itself_not_by_the_duration_asked() {
        // 3600 s asked, 1000 s granted: the window is min(20 min, 500 s) = 500 s.
        let e = entry(1000, Some(T));
        let f = freshness(3600);
        let at = |s: i64| T + time::Duration::seconds(s);
        assert!(f.allows(&e, at(0)));
        assert!(f.allows(&e, at(499)));
        assert!(!f.allows(&e, at(500)), "exactly the window left is due");
        // A full hour: the 20-minute window.
        let e = entry(3600, Some(T));
        assert!(f.allows(&e, at(2399)));
        assert!(!f.allows(&e, at(2400)));
    }

    #[test]
    fn impossible_entries_are_refused() {
        let f = freshness(900);
        // Asked for in the future: the wall clock was stepped back since.
        let e = entry(900, Some(T + time::Duration::SECOND));
        assert!(!f.allows(&e, T));
        // An expiry past the duration asked plus 5 minutes cannot come from the service.
        assert!(f.allows(&entry(900 + 300, Some(T)), T));
        assert!(!f.allows(&entry(900 + 301, Some(T)), T));
    }

    #[test]
    fn entries_without_fetched_at_are_judged_by_the_duration_asked() {
        let f = freshness(3600);
        // As before: a 3600 s request has a 20-minute window.
        assert!(f.allows(&entry(1201, None), T));
        assert!(!f.allows(&entry(1200, None), T));
        // And one from an older version that trusted a far-future expiry is not served.
        assert!(f.allows(&entry(3600 + 300, None), T));
        assert!(!f.allows(&entry(3600 + 301, None), T));
        assert!(!f.allows(&entry(60 * 60 * 24 * 365 * 70, None), T));
    }
}
