//! The refresh rules under a paused tokio clock: minutes pass in milliseconds.

use std::collections::VecDeque;
use std::sync::Mutex as StdMutex;
use std::sync::atomic::{AtomicU32, Ordering};

use secrecy::SecretString;

use super::*;
use crate::clock::{SteppedClock, TokioClock};

const START: OffsetDateTime = time::macros::datetime!(2026-11-25 12:00:00 UTC);

/// Issues credentials of `lifetime` from the shared clock; scripted failures first.
struct FakeLoader {
    clock: Arc<dyn Clock>,
    lifetime: Duration,
    delay: Duration,
    calls: Arc<AtomicU32>,
    script: StdMutex<VecDeque<bool>>,
    fail_always: Arc<std::sync::atomic::AtomicBool>,
}

impl Loader for FakeLoader {
    fn load(&self) -> LoadFuture<'_> {
        Box::pin(async move {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::time::sleep(self.delay).await;
            let scripted_ok = self.script.lock().unwrap().pop_front().unwrap_or(true);
            if !scripted_ok || self.fail_always.load(Ordering::SeqCst) {
                return Err(LoadError::new(
                    LoadErrorKind::Retryable,
                    std::io::Error::other(format!(
                        "CreateSession failed: ServiceUnavailable (503): call {n}"
                    )),
                    None,
                ));
            }
            Ok(Credentials {
                access_key_id: format!("ASIA{n:016}"),
                secret_access_key: SecretString::from(format!("secret-{n}")),
                session_token: SecretString::from(format!("token-{n}")),
                expiration: self.clock.now() + self.lifetime,
                role_arn: None,
            })
        })
    }
}

struct Fixture {
    cache: Arc<CredentialCache>,
    calls: Arc<AtomicU32>,
    fail: Arc<std::sync::atomic::AtomicBool>,
    clock: Arc<dyn Clock>,
}

fn fixture(lifetime: Duration, delay: Duration, policy: RefreshPolicy) -> Fixture {
    fixture_with(
        Arc::new(TokioClock::starting_at(START)),
        lifetime,
        delay,
        policy,
    )
}

fn fixture_with(
    clock: Arc<dyn Clock>,
    lifetime: Duration,
    delay: Duration,
    policy: RefreshPolicy,
) -> Fixture {
    let calls = Arc::new(AtomicU32::new(0));
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let loader = FakeLoader {
        clock: clock.clone(),
        lifetime,
        delay,
        calls: calls.clone(),
        script: StdMutex::new(VecDeque::new()),
        fail_always: fail.clone(),
    };
    Fixture {
        cache: Arc::new(CredentialCache::new(
            Arc::new(loader),
            policy,
            clock.clone(),
        )),
        calls,
        fail,
        clock,
    }
}

const HOUR: Duration = Duration::from_secs(3600);
const MIN: Duration = Duration::from_secs(60);

#[test]
fn the_window_is_twenty_minutes_or_half_the_lifetime() {
    let p = RefreshPolicy::default();
    assert_eq!(p.window(HOUR), 20 * MIN);
    assert_eq!(p.window(15 * MIN), Duration::from_secs(450));
    let p = RefreshPolicy {
        refresh_before: 5 * MIN,
        ..p
    };
    assert_eq!(p.window(HOUR), 5 * MIN);
}

#[tokio::test(start_paused = true)]
async fn two_hundred_concurrent_callers_share_one_load() {
    let f = fixture(HOUR, Duration::from_millis(200), RefreshPolicy::default());
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let cache = f.cache.clone();
        tasks.push(tokio::spawn(async move {
            cache.get().await.unwrap().access_key_id.clone()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "ASIA0000000000000001");
    }
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    // While fresh, nobody loads again.
    f.cache.get().await.unwrap();
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
}

#[tokio::test(start_paused = true)]
async fn due_callers_during_a_refresh_share_it_too() {
    let f = fixture(HOUR, Duration::from_millis(500), RefreshPolicy::default());
    f.cache.refresh().await.unwrap();
    tokio::time::advance(45 * MIN).await; // inside the 20-minute window
    assert!(!f.cache.is_fresh(f.clock.now()));
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let cache = f.cache.clone();
        tasks.push(tokio::spawn(async move {
            cache.get().await.unwrap().access_key_id.clone()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), "ASIA0000000000000002");
    }
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn the_refresher_renews_before_the_sdk_window() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    f.cache.refresh().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(f.cache.clone().run_refresher(async move {
        let _ = stopped.await;
    }));
    // Due at 40 minutes, brought forward by at most one minute of jitter.
    tokio::time::sleep(38 * MIN + Duration::from_secs(59)).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(62)).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 2);
    // The new set is served with more than the SDK's 15 minutes left.
    let c = f.cache.current(f.clock.now()).unwrap();
    assert_eq!(c.access_key_id, "ASIA0000000000000002");
    assert!(c.remaining(f.clock.now()) > time::Duration::minutes(15));
    // And again one lifetime later.
    tokio::time::sleep(HOUR).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_failing_refresh_keeps_the_last_good_set_until_expiry_then_503_then_recovers() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    f.cache.refresh().await.unwrap();
    f.fail.store(true, Ordering::SeqCst);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(f.cache.clone().run_refresher(async move {
        let _ = stopped.await;
    }));
    // Walk through the refresh window second by second-ish: never empty, never expired.
    let expiration = f.cache.current(f.clock.now()).unwrap().expiration;
    loop {
        tokio::time::sleep(Duration::from_secs(7)).await;
        let now = f.clock.now();
        match f.cache.current(now) {
            Ok(c) => {
                assert_eq!(c.access_key_id, "ASIA0000000000000001");
                assert!(
                    c.expiration - EXPIRY_MARGIN > now,
                    "handed out credentials about to expire"
                );
            }
            Err(Unavailable::Expired { at, last_error }) => {
                assert_eq!(at, expiration);
                assert!(now >= expiration - EXPIRY_MARGIN);
                assert!(last_error.unwrap().contains("503"));
                break;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    // Retries were backed off: a handful over 20 minutes, not one per second.
    let attempts = f.calls.load(Ordering::SeqCst) - 1;
    assert!(
        (4..=20).contains(&attempts),
        "{attempts} retries in the window"
    );
    // The service recovers: the refresher picks it up within the retry cap.
    f.fail.store(false, Ordering::SeqCst);
    tokio::time::sleep(RefreshPolicy::default().retry_cap + Duration::from_secs(1)).await;
    assert!(f.cache.current(f.clock.now()).is_ok());
    let _ = stop.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn nothing_is_handed_out_before_the_first_load() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    assert_eq!(
        f.cache.current(f.clock.now()).unwrap_err(),
        Unavailable::NotYetLoaded
    );
    f.fail.store(true, Ordering::SeqCst);
    assert!(f.cache.refresh().await.is_err());
    assert_eq!(
        f.cache.current(f.clock.now()).unwrap_err(),
        Unavailable::NotYetLoaded
    );
}

#[tokio::test(start_paused = true)]
async fn subscribers_see_each_new_set() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    let mut rx = f.cache.subscribe();
    f.cache.refresh().await.unwrap();
    rx.changed().await.unwrap();
    assert_eq!(
        rx.borrow_and_update().as_ref().unwrap().access_key_id,
        "ASIA0000000000000001"
    );
}

/// A cache on a wall clock that the test can step, with tokio's time running beneath.
fn stepped_fixture() -> (Fixture, Arc<SteppedClock>) {
    let clock = Arc::new(SteppedClock::starting_at(START));
    let f = fixture_with(
        clock.clone(),
        HOUR,
        Duration::ZERO,
        RefreshPolicy::default(),
    );
    (f, clock)
}

#[tokio::test(start_paused = true)]
async fn a_wall_clock_stepped_back_does_not_stretch_the_credentials() {
    let (f, clock) = stepped_fixture();
    f.cache.refresh().await.unwrap();
    f.fail.store(true, Ordering::SeqCst);
    tokio::time::advance(30 * MIN).await;
    clock.step(-time::Duration::HOUR);
    // 59 real minutes: still valid (and inside the refresh window by the real clock).
    tokio::time::advance(29 * MIN).await;
    assert!(f.cache.current(f.clock.now()).is_ok());
    assert!(
        !f.cache.is_fresh(f.clock.now()),
        "due by the monotonic clock"
    );
    // The wall clock reads 4 minutes after the start, but an hour and a minute have passed:
    // the credentials are expired.
    tokio::time::advance(2 * MIN).await;
    assert_eq!(f.clock.now(), START + time::Duration::minutes(1));
    match f.cache.current(f.clock.now()) {
        Err(Unavailable::Expired { .. }) => {}
        other => panic!("served past their real lifetime: {other:?}"),
    }
    // And a caller asking for fresh ones gets a load, not the stale set.
    f.fail.store(false, Ordering::SeqCst);
    let c = f.cache.get().await.unwrap();
    assert_eq!(c.access_key_id, "ASIA0000000000000002");
}

#[tokio::test(start_paused = true)]
async fn the_refresher_refreshes_on_time_when_the_wall_clock_is_stepped_back() {
    let (f, clock) = stepped_fixture();
    f.cache.refresh().await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(f.cache.clone().run_refresher(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(30 * MIN).await;
    clock.step(-time::Duration::HOUR);
    // Due 40 real minutes in (less up to a minute of jitter), not when the wall clock
    // reaches 40 minutes past the start an hour later.
    tokio::time::sleep(8 * MIN + Duration::from_secs(59)).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_secs(62)).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 2, "refreshed on time");
    let c = f.cache.current(f.clock.now()).unwrap();
    assert_eq!(c.access_key_id, "ASIA0000000000000002");
    // A wall clock stepped forward makes it due early instead: whichever comes first.
    clock.step(time::Duration::minutes(45));
    tokio::time::sleep(2 * MIN).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);
    let _ = stop.send(());
    task.await.unwrap();
}

// Boundaries pinned exactly, so an off-by-one (`<` for `<=`, a dropped bound) is caught.

#[test]
fn retry_delays_stay_between_half_and_all_of_the_doubling_ceiling() {
    let p = RefreshPolicy::default();
    fastrand::seed(7);
    // failures -> ceiling: 2 s doubling from the first failure, capped at 5 minutes.
    for (failures, ceiling) in [
        (1, Duration::from_secs(2)),
        (2, Duration::from_secs(4)),
        (3, Duration::from_secs(8)),
        (8, Duration::from_secs(256)),
        (9, Duration::from_secs(300)),
        (40, Duration::from_secs(300)),
    ] {
        let delays: Vec<Duration> = (0..400).map(|_| p.retry_delay(failures)).collect();
        let (min, max) = (*delays.iter().min().unwrap(), *delays.iter().max().unwrap());
        assert!(
            min >= ceiling / 2,
            "{failures}: {min:?} below half of {ceiling:?}"
        );
        assert!(max <= ceiling, "{failures}: {max:?} above {ceiling:?}");
        // Spread over the whole range, not pinned to one end.
        assert!(
            min < ceiling.mul_f64(0.55),
            "{failures}: never near half: {min:?}"
        );
        assert!(
            max > ceiling.mul_f64(0.95),
            "{failures}: never near the top: {max:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn get_loads_exactly_at_the_due_time_and_not_a_moment_before() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    f.cache.refresh().await.unwrap();
    let due = f.cache.due_at().unwrap();
    let until_due = Duration::try_from(due - f.clock.now()).unwrap();
    // The jitter brings it forward by at most 5% of the window.
    assert!(
        until_due > 38 * MIN && until_due <= 40 * MIN,
        "{until_due:?}"
    );
    tokio::time::advance(until_due - Duration::from_nanos(1)).await;
    assert!(f.cache.is_fresh(f.clock.now()));
    f.cache.get().await.unwrap();
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        1,
        "fresh a nanosecond before"
    );
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(f.clock.now(), due);
    assert!(!f.cache.is_fresh(f.clock.now()));
    f.cache.get().await.unwrap();
    assert_eq!(f.calls.load(Ordering::SeqCst), 2, "due at the due time");
}

#[tokio::test(start_paused = true)]
async fn is_fresh_is_false_without_credentials_and_flips_at_the_due_time() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    assert!(!f.cache.is_fresh(f.clock.now()));
    f.cache.refresh().await.unwrap();
    let due = f.cache.due_at().unwrap();
    assert!(f.cache.is_fresh(due - time::Duration::nanoseconds(1)));
    assert!(!f.cache.is_fresh(due));
    assert!(!f.cache.is_fresh(due + time::Duration::HOUR));
}

#[tokio::test(start_paused = true)]
async fn credentials_are_served_until_exactly_the_expiry_margin() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    f.cache.refresh().await.unwrap();
    let last = START + HOUR - EXPIRY_MARGIN;
    tokio::time::advance(HOUR - EXPIRY_MARGIN - Duration::from_nanos(1)).await;
    assert!(f.cache.current(f.clock.now()).is_ok());
    tokio::time::advance(Duration::from_nanos(1)).await;
    assert_eq!(f.clock.now(), last);
    assert!(f.cache.current(f.clock.now()).is_err());
}

/// With the wall clock stepped by `step` right after the load, each clock's boundary is
/// reached on its own: forward, the wall clock's; back, the monotonic one's.
#[tokio::test(start_paused = true)]
async fn each_clock_bounds_freshness_and_validity_on_its_own() {
    for step in [Duration::ZERO, 10 * MIN] {
        for forward in [true, false] {
            let (f, clock) = stepped_fixture();
            f.cache.refresh().await.unwrap();
            let wall_due = f.cache.due_at().unwrap();
            let until_due = Duration::try_from(wall_due - f.clock.now()).unwrap();
            let by = time::Duration::try_from(step).unwrap();
            clock.step(if forward { by } else { -by });
            // Forward, the wall clock is due `step` sooner; back, the monotonic clock binds.
            let first = if forward { until_due - step } else { until_due };
            tokio::time::advance(first - Duration::from_nanos(1)).await;
            assert!(f.cache.is_fresh(f.clock.now()), "{step:?} {forward}");
            f.cache.get().await.unwrap();
            assert_eq!(f.calls.load(Ordering::SeqCst), 1, "{step:?} {forward}");
            tokio::time::advance(Duration::from_nanos(1)).await;
            assert!(!f.cache.is_fresh(f.clock.now()), "{step:?} {forward}");

            // Validity, on a set that is not replaced (the loads fail from here on).
            let (f, clock) = stepped_fixture();
            f.cache.refresh().await.unwrap();
            f.fail.store(true, Ordering::SeqCst);
            clock.step(if forward { by } else { -by });
            let last = if forward {
                HOUR - EXPIRY_MARGIN - step
            } else {
                HOUR - EXPIRY_MARGIN
            };
            tokio::time::advance(last - Duration::from_nanos(1)).await;
            assert!(f.cache.current(f.clock.now()).is_ok(), "{step:?} {forward}");
            tokio::time::advance(Duration::from_nanos(1)).await;
            assert!(
                f.cache.current(f.clock.now()).is_err(),
                "{step:?} {forward}"
            );
        }
    }
}

#[tokio::test(start_paused = true)]
async fn the_last_attempt_and_its_error_are_remembered_for_status() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    assert_eq!(f.cache.last_attempt(), (None, None));
    f.cache.refresh().await.unwrap();
    let ok_at = f.clock.now();
    assert_eq!(f.cache.last_attempt(), (Some(ok_at), None));
    tokio::time::advance(MIN).await;
    f.fail.store(true, Ordering::SeqCst);
    assert!(f.cache.refresh().await.is_err());
    let (at, error) = f.cache.last_attempt();
    assert_eq!(at, Some(ok_at + time::Duration::minutes(1)));
    assert!(error.unwrap().contains("ServiceUnavailable (503)"));
    // A success clears the error again.
    f.fail.store(false, Ordering::SeqCst);
    f.cache.refresh().await.unwrap();
    assert_eq!(f.cache.last_attempt().1, None);
}

#[test]
fn a_load_error_keeps_its_kind_and_typed_cause_and_shows_the_hint() {
    let e = LoadError::new(
        LoadErrorKind::Configuration,
        std::io::Error::other("cannot read the CA bundle"),
        Some("fix the file".into()),
    );
    assert_eq!(e.kind(), LoadErrorKind::Configuration);
    assert_eq!(e.cause().to_string(), "cannot read the CA bundle");
    let source = std::error::Error::source(&e).expect("the cause is the source");
    assert!(source.downcast_ref::<std::io::Error>().is_some());
    assert_eq!(
        e.to_string(),
        "cannot read the CA bundle\n  hint: fix the file"
    );
    let e = LoadError::new(LoadErrorKind::Retryable, std::io::Error::other("503"), None);
    assert_eq!(e.kind(), LoadErrorKind::Retryable);
}

/// The jitter is drawn once per set: up to 5% of the window, at most two minutes, spread
/// over that whole range, and only ever brings the refresh forward.
#[tokio::test(start_paused = true)]
async fn the_refresh_jitter_is_up_to_five_percent_of_the_window_capped_at_two_minutes() {
    fastrand::seed(11);
    // A 20-minute window: 5% is one minute. A 4-hour window: 5% is 12 minutes, capped at 2.
    for (lifetime, window, most) in [
        (HOUR, 20 * MIN, Duration::from_secs(60)),
        (12 * HOUR, 4 * HOUR, Duration::from_secs(120)),
    ] {
        let policy = RefreshPolicy {
            refresh_before: window,
            ..RefreshPolicy::default()
        };
        let f = fixture(lifetime, Duration::ZERO, policy);
        let mut jitters = Vec::new();
        for _ in 0..300 {
            let creds = f.cache.refresh().await.unwrap();
            let due = f.cache.due_at().unwrap();
            let jitter = Duration::try_from(creds.expiration - window - due)
                .expect("the jitter brings the refresh forward, never back");
            jitters.push(jitter);
        }
        let (min, max) = (
            *jitters.iter().min().unwrap(),
            *jitters.iter().max().unwrap(),
        );
        assert!(max <= most, "{window:?}: {max:?} above {most:?}");
        assert!(
            max > most.mul_f64(0.9),
            "{window:?}: never near the top: {max:?}"
        );
        assert!(
            min < most.mul_f64(0.1),
            "{window:?}: never near zero: {min:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn fetched_at_is_when_the_current_set_was_installed() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    assert_eq!(f.cache.fetched_at(), None);
    f.cache.refresh().await.unwrap();
    assert_eq!(f.cache.fetched_at(), Some(START));
    tokio::time::advance(45 * MIN).await;
    f.cache.refresh().await.unwrap();
    assert_eq!(f.cache.fetched_at(), Some(START + 45 * MIN));
}

#[tokio::test(start_paused = true)]
async fn seeded_credentials_are_served_without_a_load() {
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    let seeded = f.cache.seed(Credentials {
        access_key_id: "ASIASEEDED".into(),
        secret_access_key: SecretString::from("s".to_string()),
        session_token: SecretString::from("t".to_string()),
        expiration: START + HOUR,
        role_arn: None,
    });
    assert_eq!(seeded.access_key_id, "ASIASEEDED");
    assert_eq!(f.cache.get().await.unwrap().access_key_id, "ASIASEEDED");
    assert_eq!(
        f.cache.current(f.clock.now()).unwrap().access_key_id,
        "ASIASEEDED"
    );
    assert_eq!(f.calls.load(Ordering::SeqCst), 0);
}

/// Between refreshes the refresher sleeps until the due time (in steps of at most
/// `max_sleep`), so it refreshes within a timer tick of it, not on some later poll.
#[tokio::test(start_paused = true)]
async fn the_refresher_refreshes_at_the_due_time_not_on_a_later_poll() {
    fastrand::seed(3);
    let f = fixture(HOUR, Duration::ZERO, RefreshPolicy::default());
    f.cache.refresh().await.unwrap();
    let until_due = Duration::try_from(f.cache.due_at().unwrap() - f.clock.now()).unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(f.cache.clone().run_refresher(async move {
        let _ = stopped.await;
    }));
    tokio::time::sleep(until_due - Duration::from_millis(5)).await;
    assert_eq!(f.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        2,
        "refreshed within milliseconds of the due time"
    );
    let _ = stop.send(());
    task.await.unwrap();
}

/// A load made by a client during the refresher's backoff is the refresh it was retrying:
/// when the retry timer fires, it goes back to waiting for the new set's due time instead
/// of making another CreateSession.
#[tokio::test(start_paused = true)]
async fn a_refresh_by_a_client_during_the_backoff_cancels_the_retry() {
    let policy = RefreshPolicy {
        retry_base: Duration::from_secs(60),
        retry_cap: Duration::from_secs(60),
        ..RefreshPolicy::default()
    };
    let f = fixture(HOUR, Duration::ZERO, policy);
    f.cache.refresh().await.unwrap();
    f.fail.store(true, Ordering::SeqCst);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(f.cache.clone().run_refresher(async move {
        let _ = stopped.await;
    }));
    // Into the refresh window: the refresher's attempt fails and it backs off (up to 60 s,
    // drawn from the seeded generator, so the run is the same every time).
    fastrand::seed(7);
    while f.calls.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        2,
        "one failed background attempt"
    );
    // The service is back and a client's request loads a new set during the backoff.
    f.fail.store(false, Ordering::SeqCst);
    f.cache.refresh().await.unwrap();
    assert_eq!(f.calls.load(Ordering::SeqCst), 3);
    // Past the longest backoff: no CreateSession beyond the client's.
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        f.calls.load(Ordering::SeqCst),
        3,
        "the retry was made although a client had refreshed"
    );
    let _ = stop.send(());
    task.await.unwrap();
}
