//! A per-user disk cache of temporary credentials, so that `credential-process` without an
//! agent does not pay a full CreateSession on every SDK refresh (the Go helper has no cache).
//!
//! This module owns the cache directory (the platform cache dir for `rolesanywhere-agent`,
//! which honours `XDG_CACHE_HOME`), the cache key ([`CacheKey`]: a hash of everything that
//! decides which credentials a call returns), and the entry files: one `<key>.json` per key,
//! mode 0600 in a 0700 directory, replaced atomically. An entry holds only the temporary
//! credentials and the time they were obtained, never the certificate or the private key.
//!
//! Anything unexpected about an entry (missing, corrupt, another version, another owner,
//! readable by others, expired) makes [`DiskCache::load`] return `None` so the caller simply
//! fetches fresh credentials; the cache can never make a call fail. Freshness beyond plain
//! expiry (the refresh window) is the caller's decision.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use zeroize::{Zeroize, ZeroizeOnDrop, Zeroizing};

use crate::credentials::{Credentials, format_expiration};
use crate::private_dir::PrivateDir;

/// The entry format; entries of any other version are ignored.
const FORMAT_VERSION: u32 = 1;

/// Entries are a few kilobytes; anything much larger is not ours.
const MAX_ENTRY_BYTES: u64 = 64 * 1024;

/// Separates this hash from any other SHA-256 of the same inputs; bump with the key layout.
const KEY_DOMAIN: &[u8] = b"rolesanywhere-agent disk cache key v2\0";

/// The cache: a directory of entry files.
#[derive(Debug, Clone)]
pub struct DiskCache {
    dir: PathBuf,
}

/// Identifies the credentials one configuration produces: a hex SHA-256 over a
/// length-prefixed encoding of every input, so no two different inputs share a key and the
/// file name reveals nothing about them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey(String);

impl CacheKey {
    #[allow(clippy::too_many_arguments)]
    /// `key_material` names the private key's source and, for a key held in a file, a
    /// variable or standard input, a digest of its bytes (see `credential_process`), so a
    /// changed or missing key is a different key, never a hit.
    pub fn new(
        cert_sha256_fingerprint: &str,
        key_material: &str,
        trust_anchor_arn: &str,
        profile_arn: &str,
        role_arn: &str,
        region: &str,
        endpoint: &str,
        duration_seconds: u32,
        role_session_name: Option<&str>,
    ) -> CacheKey {
        let mut hash = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        let mut part = |bytes: &[u8]| {
            hash.update(&(bytes.len() as u64).to_be_bytes());
            hash.update(bytes);
        };
        part(KEY_DOMAIN);
        for text in [
            cert_sha256_fingerprint,
            key_material,
            trust_anchor_arn,
            profile_arn,
            role_arn,
            region,
            endpoint,
        ] {
            part(text.as_bytes());
        }
        part(&duration_seconds.to_be_bytes());
        // A tag keeps "no session name" apart from an empty one.
        match role_session_name {
            None => part(&[0]),
            Some(name) => {
                part(&[1]);
                part(name.as_bytes());
            }
        }
        CacheKey(hex::encode(hash.finish()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An entry as written. Borrowed, so the secrets are not copied.
#[derive(Serialize)]
struct EntryOut<'a> {
    version: u32,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: String,
    /// When the credentials were asked for: with `expiration`, their real lifetime.
    fetched_at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    role_arn: Option<&'a str>,
}

/// An entry as read; wiped when dropped.
#[derive(Deserialize, Zeroize, ZeroizeOnDrop)]
struct EntryIn {
    version: u32,
    access_key_id: String,
    secret_access_key: String,
    session_token: String,
    expiration: String,
    /// Missing in entries written before it was added.
    #[serde(default)]
    fetched_at: Option<String>,
    #[serde(default)]
    role_arn: Option<String>,
}

/// Credentials read from the cache.
#[derive(Debug)]
pub struct CachedEntry {
    pub credentials: Credentials,
    /// When they were asked for; `None` in entries of older versions, which did not say.
    pub fetched_at: Option<OffsetDateTime>,
}

impl DiskCache {
    /// The platform cache directory for this application (`$XDG_CACHE_HOME/rolesanywhere-agent`
    /// or `~/.cache/rolesanywhere-agent` on Linux); `None` when there is no home directory.
    pub fn open_default() -> Option<DiskCache> {
        directories::ProjectDirs::from("", "", "rolesanywhere-agent")
            .map(|dirs| DiskCache::at(dirs.cache_dir().to_path_buf()))
    }

    /// A cache in `dir` (created on first store).
    pub fn at(dir: PathBuf) -> DiskCache {
        DiskCache { dir }
    }

    /// The directory entries live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn name_for(key: &CacheKey) -> String {
        format!("{}.json", key.as_str())
    }

    /// The cache directory, if it exists and is ours (see [`PrivateDir`]).
    fn open_dir(&self) -> Result<PrivateDir, String> {
        PrivateDir::open(&self.dir).map_err(|e| {
            if e.is_missing() {
                "no entry".to_string()
            } else {
                e.to_string()
            }
        })
    }

    /// The unexpired credentials stored under `key`, or `None` (the reason is logged at
    /// debug level, without any secret).
    pub fn load(&self, key: &CacheKey, now: OffsetDateTime) -> Option<CachedEntry> {
        let name = Self::name_for(key);
        match self.open_dir().and_then(|dir| read_entry(&dir, &name, now)) {
            Ok(creds) => Some(creds),
            Err(reason) => {
                tracing::debug!(dir = %self.dir.display(), entry = %name, "not using the cached credentials: {reason}");
                None
            }
        }
    }

    /// Stores `creds`, asked for at `fetched_at`, under `key`, replacing any previous entry
    /// atomically.
    pub fn store(
        &self,
        key: &CacheKey,
        creds: &Credentials,
        fetched_at: OffsetDateTime,
    ) -> io::Result<()> {
        let dir = PrivateDir::open_or_create(&self.dir).map_err(io::Error::other)?;
        let entry = EntryOut {
            version: FORMAT_VERSION,
            access_key_id: &creds.access_key_id,
            secret_access_key: creds.secret_access_key.expose_secret(),
            session_token: creds.session_token.expose_secret(),
            expiration: format_expiration(creds.expiration),
            // Truncated to the second, so it never lies after the real time.
            fetched_at: format_expiration(fetched_at),
            role_arn: creds.role_arn.as_deref(),
        };
        // Reserve enough for the worst-case JSON escaping: a growing Vec would leave copies
        // of the secrets behind in freed memory.
        let values = entry.access_key_id.len()
            + entry.secret_access_key.len()
            + entry.session_token.len()
            + entry.role_arn.map_or(0, str::len);
        let mut json = Zeroizing::new(Vec::with_capacity(6 * values + 256));
        serde_json::to_writer(&mut *json, &entry).map_err(io::Error::other)?;
        dir.write_atomically(&Self::name_for(key), &json)
    }

    /// Deletes the entry for `key`, if any (for credentials the service has rejected).
    pub fn remove(&self, key: &CacheKey) {
        let name = Self::name_for(key);
        match self.open_dir() {
            Ok(dir) => {
                if let Err(e) = dir.remove(&name) {
                    tracing::debug!(dir = %self.dir.display(), entry = %name, "cannot remove the cache entry: {e}");
                }
            }
            Err(reason) => {
                tracing::debug!(dir = %self.dir.display(), "cannot remove the cache entry: {reason}")
            }
        }
    }
}

/// Reads and checks one entry; the error is a reason for the debug log.
fn read_entry(dir: &PrivateDir, name: &str, now: OffsetDateTime) -> Result<CachedEntry, String> {
    // Opened relative to the checked directory, never through a symbolic link or a FIFO.
    let (file, bytes) = dir
        .read_entry(name, MAX_ENTRY_BYTES)
        .map_err(|e| describe(&e))?;
    let meta = file.metadata().map_err(|e| describe(&e))?;
    check_owner_and_mode(&meta)?;
    let mut entry: EntryIn =
        serde_json::from_slice(&bytes).map_err(|_| "the file is not a valid entry".to_string())?;
    if entry.version != FORMAT_VERSION {
        return Err(format!("entry format version {}", entry.version));
    }
    if entry.access_key_id.is_empty()
        || entry.secret_access_key.is_empty()
        || entry.session_token.is_empty()
    {
        return Err("the entry has empty credentials".into());
    }
    let expiration = OffsetDateTime::parse(&entry.expiration, &Rfc3339)
        .map_err(|_| "the expiration is not a timestamp".to_string())?;
    if expiration <= now {
        return Err(format!("expired at {}", format_expiration(expiration)));
    }
    let fetched_at = match entry.fetched_at.take() {
        Some(text) => Some(
            OffsetDateTime::parse(&text, &Rfc3339)
                .map_err(|_| "fetched_at is not a timestamp".to_string())?,
        ),
        None => None,
    };
    Ok(CachedEntry {
        credentials: Credentials {
            access_key_id: std::mem::take(&mut entry.access_key_id),
            secret_access_key: SecretString::from(std::mem::take(&mut entry.secret_access_key)),
            session_token: SecretString::from(std::mem::take(&mut entry.session_token)),
            expiration,
            role_arn: entry.role_arn.take(),
        },
        fetched_at,
    })
}

fn describe(e: &io::Error) -> String {
    if e.kind() == io::ErrorKind::NotFound {
        "no entry".into()
    } else {
        format!("cannot read it: {e}")
    }
}

/// Only an entry that we own and that nobody else can read or write is trusted: anyone
/// who could plant an entry could hand us credentials for their own account.
#[cfg(unix)]
fn check_owner_and_mode(meta: &fs::Metadata) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    owner_and_mode_ok(meta.mode(), meta.uid(), rustix::process::geteuid().as_raw())
}

/// The rule of [`check_owner_and_mode`] on plain numbers, so a test can check the owner
/// half without root (only root can give a file to another user).
#[cfg(unix)]
fn owner_and_mode_ok(mode: u32, owner: u32, euid: u32) -> Result<(), String> {
    let mode = mode & 0o7777;
    if mode != 0o600 {
        return Err(format!("its mode is {mode:04o}, not 0600"));
    }
    if owner == euid {
        Ok(())
    } else {
        Err("it is owned by another user".into())
    }
}

#[cfg(not(unix))]
fn check_owner_and_mode(_meta: &fs::Metadata) -> Result<(), String> {
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2030-01-01 12:00:00 UTC);
    const FETCHED: OffsetDateTime = datetime!(2030-01-01 11:59:59.75 UTC);

    fn creds() -> Credentials {
        Credentials {
            access_key_id: "ASIACACHED".into(),
            secret_access_key: SecretString::from("cached/secret+key".to_string()),
            session_token: SecretString::from("CACHEDTOKEN==".to_string()),
            expiration: datetime!(2030-01-01 13:00:00 UTC),
            role_arn: Some("arn:aws:iam::123456789012:role/app".into()),
        }
    }

    fn key() -> CacheKey {
        CacheKey::new(
            "ab12",
            "file key.pem 00ff",
            "arn:aws:rolesanywhere:us-east-1:123456789012:trust-anchor/t",
            "arn:aws:rolesanywhere:us-east-1:123456789012:profile/p",
            "arn:aws:iam::123456789012:role/app",
            "us-east-1",
            "https://rolesanywhere.us-east-1.amazonaws.com",
            3600,
            None,
        )
    }

    fn cache() -> (tempfile::TempDir, DiskCache) {
        let tmp = tempfile::tempdir().unwrap();
        let cache = DiskCache::at(tmp.path().join("cache"));
        (tmp, cache)
    }

    #[cfg(unix)]
    fn mode(path: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        fs::metadata(path).unwrap().permissions().mode() & 0o7777
    }

    #[test]
    fn round_trip() {
        let (_tmp, cache) = cache();
        assert!(cache.load(&key(), NOW).is_none());
        cache.store(&key(), &creds(), FETCHED).unwrap();
        let entry = cache.load(&key(), NOW).unwrap();
        // Stored to the second, rounded down.
        assert_eq!(entry.fetched_at, Some(datetime!(2030-01-01 11:59:59 UTC)));
        let got = entry.credentials;
        assert_eq!(got.access_key_id, "ASIACACHED");
        assert_eq!(got.secret_access_key.expose_secret(), "cached/secret+key");
        assert_eq!(got.session_token.expose_secret(), "CACHEDTOKEN==");
        assert_eq!(got.expiration, creds().expiration);
        assert_eq!(got.role_arn, creds().role_arn);
        // Another key misses.
        let other = CacheKey::new("cd34", "", "", "", "", "", "", 3600, None);
        assert!(cache.load(&other, NOW).is_none());
    }

    #[test]
    fn file_layout_holds_only_the_temporary_credentials() {
        let (_tmp, cache) = cache();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        let path = cache.dir().join(format!("{}.json", key().as_str()));
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            r#"{"version":1,"access_key_id":"ASIACACHED","secret_access_key":"cached/secret+key","session_token":"CACHEDTOKEN==","expiration":"2030-01-01T13:00:00Z","fetched_at":"2030-01-01T11:59:59Z","role_arn":"arn:aws:iam::123456789012:role/app"}"#
        );
        // The only file in the directory: no temp files left over.
        let names: Vec<_> = fs::read_dir(cache.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
        #[cfg(unix)]
        {
            assert_eq!(mode(&path), 0o600);
            assert_eq!(mode(cache.dir()), 0o700);
        }
    }

    #[test]
    fn without_role_arn_the_field_is_left_out() {
        let (_tmp, cache) = cache();
        let mut c = creds();
        c.role_arn = None;
        cache.store(&key(), &c, FETCHED).unwrap();
        let path = cache.dir().join(format!("{}.json", key().as_str()));
        assert!(!fs::read_to_string(&path).unwrap().contains("role_arn"));
        assert_eq!(cache.load(&key(), NOW).unwrap().credentials.role_arn, None);
    }

    #[test]
    fn expired_entries_are_ignored() {
        let (_tmp, cache) = cache();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        assert!(
            cache
                .load(&key(), creds().expiration - time::Duration::SECOND)
                .is_some()
        );
        assert!(cache.load(&key(), creds().expiration).is_none());
        assert!(
            cache
                .load(&key(), creds().expiration + time::Duration::HOUR)
                .is_none()
        );
    }

    #[cfg(unix)]
    fn write_entry(cache: &DiskCache, text: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        crate::private_dir::PrivateDir::open_or_create(cache.dir()).unwrap();
        let path = cache.dir().join(format!("{}.json", key().as_str()));
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        path
    }

    #[cfg(unix)]
    #[test]
    fn corrupt_and_foreign_entries_are_ignored() {
        let (_tmp, cache) = cache();
        let good = r#"{"version":1,"access_key_id":"A","secret_access_key":"S","session_token":"T","expiration":"2030-01-01T13:00:00Z"}"#;
        write_entry(&cache, good);
        assert!(
            cache.load(&key(), NOW).is_some(),
            "a hand-written entry loads"
        );
        for bad in [
            "",
            "not json",
            &good[..good.len() - 1],
            &good.replace("\"version\":1", "\"version\":2"),
            &good.replace("\"S\"", "\"\""),
            &good.replace("\"A\"", "\"\""),
            &good.replace("\"T\"", "\"\""),
            &good.replace("2030-01-01T13:00:00Z", "tomorrow"),
            r#"{"version":1}"#,
        ] {
            write_entry(&cache, bad);
            assert!(cache.load(&key(), NOW).is_none(), "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn entries_others_can_read_or_write_are_ignored() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, cache) = cache();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        let path = cache.dir().join(format!("{}.json", key().as_str()));
        for loose in [0o644, 0o640, 0o604, 0o660, 0o400, 0o700] {
            fs::set_permissions(&path, fs::Permissions::from_mode(loose)).unwrap();
            assert!(cache.load(&key(), NOW).is_none(), "{loose:o}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        assert!(cache.load(&key(), NOW).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn entries_owned_by_another_user_are_ignored() {
        let ours = rustix::process::geteuid().as_raw();
        let other = if ours == 65534 { 65533 } else { 65534 };
        // The rule itself, whoever runs the test.
        assert!(owner_and_mode_ok(0o100600, ours, ours).is_ok());
        let err = owner_and_mode_ok(0o100600, other, ours).unwrap_err();
        assert!(err.contains("another user"), "{err}");
        assert!(
            owner_and_mode_ok(0o100600, 0, 1000).is_err(),
            "root's entry, read by a user"
        );
        assert!(
            owner_and_mode_ok(0o100600, 1000, 0).is_err(),
            "a user's entry, read by root"
        );

        // And through `load` on a real file. Only root can give a file away, so a user
        // checks instead that the kernel refuses: an entry of another user can only be
        // planted by root (or by that user, with a mode we refuse).
        let (_tmp, cache) = cache();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        let path = cache.dir().join(format!("{}.json", key().as_str()));
        let given = std::os::unix::fs::chown(&path, Some(other), None);
        if ours == 0 {
            given.unwrap();
            assert!(cache.load(&key(), NOW).is_none());
            std::os::unix::fs::chown(&path, Some(ours), None).unwrap();
        } else {
            let err = given.unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::PermissionDenied, "{err}");
        }
        assert!(cache.load(&key(), NOW).is_some());
    }

    #[cfg(unix)]
    #[test]
    fn a_cache_directory_planted_as_a_symlink_is_neither_written_nor_read() {
        let (tmp, cache) = cache();
        let theirs = tmp.path().join("theirs");
        fs::create_dir(&theirs).unwrap();
        std::os::unix::fs::symlink(&theirs, cache.dir()).unwrap();
        let err = cache.store(&key(), &creds(), FETCHED).unwrap_err();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(
            fs::read_dir(&theirs).unwrap().count(),
            0,
            "nothing written there"
        );
        // An entry planted there is not read either.
        let planted = DiskCache::at(theirs.clone());
        planted.store(&key(), &creds(), FETCHED).unwrap();
        assert!(planted.load(&key(), NOW).is_some());
        assert!(cache.load(&key(), NOW).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn symlinked_entries_are_ignored() {
        let (tmp, cache) = cache();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        let path = cache.dir().join(format!("{}.json", key().as_str()));
        let elsewhere = tmp.path().join("elsewhere.json");
        fs::rename(&path, &elsewhere).unwrap();
        std::os::unix::fs::symlink(&elsewhere, &path).unwrap();
        assert!(cache.load(&key(), NOW).is_none());
    }

    #[cfg(unix)]
    #[test]
    fn an_entry_of_exactly_the_size_cap_loads_and_one_byte_more_does_not() {
        let (_tmp, cache) = cache();
        let good = r#"{"version":1,"access_key_id":"A","secret_access_key":"S","session_token":"T","expiration":"2030-01-01T13:00:00Z"}"#;
        // Trailing white space is valid JSON: pad to the cap exactly.
        let padded = good.to_string() + &" ".repeat(MAX_ENTRY_BYTES as usize - good.len());
        assert_eq!(padded.len() as u64, MAX_ENTRY_BYTES);
        write_entry(&cache, &padded);
        assert!(cache.load(&key(), NOW).is_some(), "exactly the cap");
        write_entry(&cache, &format!("{padded} "));
        assert!(cache.load(&key(), NOW).is_none(), "one byte over");
    }

    /// Session tokens vary in length; a long one (8 KiB, several times today's) still fits
    /// under the cap, which is there to refuse files that are not entries at all.
    #[test]
    fn an_entry_with_a_long_session_token_is_kept() {
        let (_tmp, cache) = cache();
        let mut c = creds();
        c.session_token = SecretString::from("T".repeat(8 * 1024));
        cache.store(&key(), &c, FETCHED).unwrap();
        let got = cache.load(&key(), NOW).expect("a long token is cached");
        assert_eq!(
            got.credentials.session_token.expose_secret().len(),
            8 * 1024
        );
    }

    /// Any mix of value lengths is stored: short keys with a long token, a role ARN longer
    /// than all the rest together.
    #[test]
    fn values_of_any_relative_length_round_trip() {
        let (_tmp, cache) = cache();
        let c = Credentials {
            access_key_id: "A".into(),
            secret_access_key: SecretString::from("S".to_string()),
            session_token: SecretString::from("T".repeat(100)),
            expiration: creds().expiration,
            role_arn: Some(format!(
                "arn:aws:iam::123456789012:role/{}",
                "r".repeat(270)
            )),
        };
        cache.store(&key(), &c, FETCHED).unwrap();
        let got = cache.load(&key(), NOW).unwrap().credentials;
        assert_eq!(got.session_token.expose_secret().len(), 100);
        assert_eq!(got.role_arn, c.role_arn);
    }

    #[test]
    fn oversized_entries_are_ignored() {
        let (_tmp, cache) = cache();
        let mut c = creds();
        c.session_token = SecretString::from("x".repeat(MAX_ENTRY_BYTES as usize));
        cache.store(&key(), &c, FETCHED).unwrap();
        assert!(cache.load(&key(), NOW).is_none());
    }

    #[test]
    fn store_replaces_and_remove_deletes() {
        let (_tmp, cache) = cache();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        let mut newer = creds();
        newer.access_key_id = "ASIANEWER".into();
        cache.store(&key(), &newer, FETCHED).unwrap();
        assert_eq!(
            cache.load(&key(), NOW).unwrap().credentials.access_key_id,
            "ASIANEWER"
        );
        cache.remove(&key());
        assert!(cache.load(&key(), NOW).is_none());
        // Removing what is not there is fine.
        cache.remove(&key());
        assert_eq!(fs::read_dir(cache.dir()).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn a_loose_cache_directory_is_tightened() {
        use std::os::unix::fs::PermissionsExt;
        let (_tmp, cache) = cache();
        fs::create_dir(cache.dir()).unwrap();
        fs::set_permissions(cache.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        cache.store(&key(), &creds(), FETCHED).unwrap();
        assert_eq!(mode(cache.dir()), 0o700);
    }

    #[test]
    fn the_key_changes_when_any_part_changes() {
        // The six text parts after the fingerprint, then the duration and session name.
        type Parts<'a> = ([&'a str; 8], u32, Option<&'a str>);
        let make = |(t, d, n): Parts| CacheKey::new(t[0], t[1], t[2], t[3], t[4], t[5], t[6], d, n);
        let base: Parts = (
            [
                "fp",
                "key",
                "ta",
                "pr",
                "role",
                "us-east-1",
                "https://e",
                "",
            ],
            3600,
            None,
        );
        let mut variants = vec![base];
        for (i, other) in [
            "fp2",
            "key2",
            "ta2",
            "pr2",
            "role2",
            "eu-west-1",
            "https://f",
        ]
        .into_iter()
        .enumerate()
        {
            let mut v = base;
            v.0[i] = other;
            variants.push(v);
        }
        variants.push((base.0, 900, None));
        variants.push((base.0, 3600, Some("")));
        variants.push((base.0, 3600, Some("s")));
        // Moving bytes between neighbouring parts changes the key too.
        let mut moved = base;
        moved.0[0] = "f";
        moved.0[1] = "pkey";
        variants.push(moved);
        let keys: std::collections::HashSet<String> = variants
            .iter()
            .map(|v| make(*v).as_str().to_string())
            .collect();
        assert_eq!(keys.len(), variants.len());
        // Stable and shaped like a SHA-256.
        assert_eq!(make(base), make(base));
        let k = make(base);
        assert_eq!(k.as_str().len(), 64);
        assert!(
            k.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
    }

    #[test]
    fn the_default_directory_is_the_platform_cache_dir() {
        // Computed the way `directories` does, which honours XDG_CACHE_HOME on Linux; the
        // environment is not changed here, as tests run in parallel.
        let expected = directories::ProjectDirs::from("", "", "rolesanywhere-agent")
            .map(|d| d.cache_dir().to_path_buf());
        let got = DiskCache::open_default().map(|c| c.dir().to_path_buf());
        assert_eq!(got, expected);
        #[cfg(target_os = "linux")]
        if let Some(dir) = got {
            assert!(dir.ends_with("rolesanywhere-agent"));
            match std::env::var_os("XDG_CACHE_HOME").filter(|v| Path::new(v).is_absolute()) {
                Some(xdg) => assert_eq!(dir.parent(), Some(Path::new(&xdg))),
                None => assert!(dir.parent().is_some_and(|p| p.ends_with(".cache"))),
            }
        }
    }
}
