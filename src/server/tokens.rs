//! IMDSv2 session tokens: issued by `PUT /latest/api/token`, required on every metadata GET.
//!
//! At most [`MAX_TOKENS`] are live; issuing one more evicts the one that expires soonest (so
//! a flood of 1-second tokens evicts its own, never a client's 6-hour token), and each expires
//! after the TTL it was asked for. Token values never reach a log line, not even on eviction
//! (the Go helper logs evicted tokens).

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};
use std::time::{Duration, Instant};

use zeroize::Zeroizing;

/// The Go helper's bound on live tokens.
pub const MAX_TOKENS: usize = 256;
/// Largest TTL IMDS accepts (6 hours).
pub const MAX_TTL_SECONDS: u64 = 21_600;

/// 256 random bits per token; sent as 64 lowercase hex characters.
const TOKEN_BYTES: usize = 32;

struct Entry {
    expires: Instant,
    /// Issue order: among tokens expiring at the same instant, the oldest goes first.
    seq: u64,
}

#[derive(Default)]
struct Inner {
    // Keyed by the raw token. Lookups hash with the std's randomly keyed SipHash, so a client
    // cannot steer probes at a stored token, and a guess is 2^-256 likely anyway.
    live: HashMap<[u8; TOKEN_BYTES], Entry>,
    next_seq: u64,
}

/// The live tokens. Reads (every GET) share the lock; only issuing takes it exclusively, and
/// nothing holds it across an await.
#[derive(Default)]
pub struct TokenStore {
    inner: RwLock<Inner>,
}

/// Parses `X-aws-ec2-metadata-token-ttl-seconds`: decimal digits only, `1..=21600`.
pub fn parse_ttl(value: &[u8]) -> Option<u64> {
    if value.is_empty() || value.len() > 5 || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let ttl = value
        .iter()
        .fold(0u64, |acc, d| acc * 10 + u64::from(d - b'0'));
    (1..=MAX_TTL_SECONDS).contains(&ttl).then_some(ttl)
}

impl TokenStore {
    /// Issues a token valid for `ttl` from `now` and returns its text form. Fails only if the
    /// system random generator does.
    pub fn issue(&self, ttl: Duration, now: Instant) -> Option<Zeroizing<String>> {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        aws_lc_rs::rand::fill(raw.as_mut()).ok()?;
        let text = Zeroizing::new(hex::encode(raw.as_ref()));
        let mut inner = self.inner.write().unwrap_or_else(PoisonError::into_inner);
        inner.live.retain(|_, e| e.expires > now);
        let mut evicted = 0usize;
        while inner.live.len() >= MAX_TOKENS {
            // Security: the soonest-expiring, not the oldest. A local process can issue tokens
            // as fast as it likes; it must not be able to push out a client's long-lived one.
            let soonest = inner
                .live
                .iter()
                .min_by_key(|(_, e)| (e.expires, e.seq))
                .map(|(k, _)| *k);
            match soonest {
                Some(k) => {
                    inner.live.remove(&k);
                    evicted += 1;
                }
                None => break,
            }
        }
        let seq = inner.next_seq;
        inner.next_seq += 1;
        inner.live.insert(
            *raw,
            Entry {
                expires: now + ttl,
                seq,
            },
        );
        let live = inner.live.len();
        drop(inner);
        if evicted > 0 {
            // The count only: the Go helper printed the evicted token itself.
            tracing::debug!(
                evicted,
                live,
                "imds: evicted the soonest-expiring session token"
            );
        }
        Some(text)
    }

    /// Time the presented token has left at `now`, or `None` when it is unknown or expired.
    pub fn check(&self, presented: &[u8], now: Instant) -> Option<Duration> {
        let mut raw = Zeroizing::new([0u8; TOKEN_BYTES]);
        if presented.len() != TOKEN_BYTES * 2 {
            return None;
        }
        hex::decode_to_slice(presented, raw.as_mut()).ok()?;
        let inner = self.inner.read().unwrap_or_else(PoisonError::into_inner);
        let entry = inner.live.get(raw.as_ref())?;
        entry
            .expires
            .checked_duration_since(now)
            .filter(|d| !d.is_zero())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .live
            .len()
    }
}

/// Whole seconds left, rounded up so a live token never reports 0.
pub fn ceil_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_accepts_only_plain_decimal_in_range() {
        assert_eq!(parse_ttl(b"1"), Some(1));
        assert_eq!(parse_ttl(b"21600"), Some(21600));
        assert_eq!(parse_ttl(b"00060"), Some(60));
        for bad in [
            &b""[..],
            b"0",
            b"21601",
            b"-1",
            b"+5",
            b" 5",
            b"5s",
            b"999999",
            b"1e3",
        ] {
            assert_eq!(parse_ttl(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn issued_token_is_256_bits_of_hex_and_checks_out() {
        let store = TokenStore::default();
        let now = Instant::now();
        let t = store.issue(Duration::from_secs(60), now).expect("rng");
        assert_eq!(t.len(), 64);
        assert!(t.bytes().all(|b| b.is_ascii_hexdigit()));
        let left = store.check(t.as_bytes(), now).expect("live");
        assert_eq!(left, Duration::from_secs(60));
        let other = store.issue(Duration::from_secs(60), now).expect("rng");
        assert_ne!(*t, *other);
    }

    #[test]
    fn unknown_malformed_and_expired_tokens_fail() {
        let store = TokenStore::default();
        let now = Instant::now();
        let t = store.issue(Duration::from_secs(2), now).expect("rng");
        assert!(store.check(b"", now).is_none());
        assert!(store.check(b"zz", now).is_none());
        assert!(store.check(&[b'g'; 64], now).is_none());
        assert!(store.check(&[b'0'; 64], now).is_none());
        assert!(
            store
                .check(t.as_bytes(), now + Duration::from_millis(1999))
                .is_some()
        );
        assert!(
            store
                .check(t.as_bytes(), now + Duration::from_secs(2))
                .is_none()
        );
        assert!(
            store
                .check(t.as_bytes(), now + Duration::from_secs(3))
                .is_none()
        );
    }

    #[test]
    fn the_257th_token_evicts_the_first() {
        let store = TokenStore::default();
        let now = Instant::now();
        let first = store.issue(Duration::from_secs(600), now).expect("rng");
        let second = store.issue(Duration::from_secs(600), now).expect("rng");
        for _ in 2..MAX_TOKENS {
            store.issue(Duration::from_secs(600), now).expect("rng");
        }
        assert_eq!(store.len(), MAX_TOKENS);
        assert!(store.check(first.as_bytes(), now).is_some());
        let last = store.issue(Duration::from_secs(600), now).expect("rng");
        assert_eq!(store.len(), MAX_TOKENS);
        assert!(store.check(first.as_bytes(), now).is_none());
        assert!(store.check(second.as_bytes(), now).is_some());
        assert!(store.check(last.as_bytes(), now).is_some());
    }

    #[test]
    fn a_flood_of_short_tokens_never_evicts_a_long_one() {
        let store = TokenStore::default();
        let now = Instant::now();
        let long = store.issue(Duration::from_secs(21_600), now).expect("rng");
        let medium = store.issue(Duration::from_secs(600), now).expect("rng");
        let mut short = Vec::new();
        for i in 0..(3 * MAX_TOKENS) {
            // Issued later, but expiring sooner than the client's tokens.
            let at = now + Duration::from_millis(i as u64);
            short.push(store.issue(Duration::from_secs(1), at).expect("rng"));
        }
        let at = now + Duration::from_millis(3 * MAX_TOKENS as u64 - 1);
        assert_eq!(store.len(), MAX_TOKENS);
        assert!(
            store.check(long.as_bytes(), at).is_some(),
            "6-hour token evicted"
        );
        assert!(
            store.check(medium.as_bytes(), at).is_some(),
            "10-minute token evicted"
        );
        // The flood evicted its own earliest tokens.
        assert!(store.check(short[0].as_bytes(), at).is_none());
        assert!(store.check(short[short.len() - 1].as_bytes(), at).is_some());
    }

    #[test]
    fn expired_tokens_are_purged_before_anything_is_evicted() {
        let store = TokenStore::default();
        let now = Instant::now();
        let keep = store.issue(Duration::from_secs(600), now).expect("rng");
        for _ in 1..MAX_TOKENS {
            store.issue(Duration::from_secs(1), now).expect("rng");
        }
        let later = now + Duration::from_secs(5);
        store.issue(Duration::from_secs(600), later).expect("rng");
        assert_eq!(store.len(), 2);
        assert!(store.check(keep.as_bytes(), later).is_some());
    }

    #[test]
    fn seconds_round_up() {
        assert_eq!(ceil_seconds(Duration::from_secs(5)), 5);
        assert_eq!(ceil_seconds(Duration::from_millis(4001)), 5);
        assert_eq!(ceil_seconds(Duration::from_millis(1)), 1);
    }
}
