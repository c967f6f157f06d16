//! The wall clock, injected so that signing dates and certificate checks can be pinned, and
//! test clocks that follow tokio's paused time (optionally stepped, as NTP or a restored VM
//! steps a real wall clock).

use std::sync::atomic::{AtomicI64, Ordering};

use time::OffsetDateTime;

/// A source of the current UTC time.
pub trait Clock: Send + Sync {
    fn now(&self) -> OffsetDateTime;
}

/// The system clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that always answers the same instant (tests, vectors).
#[derive(Clone, Copy, Debug)]
pub struct FixedClock(pub OffsetDateTime);

impl Clock for FixedClock {
    fn now(&self) -> OffsetDateTime {
        self.0
    }
}

/// A wall clock that advances with tokio's clock, so a test under `tokio::time::pause()`
/// moves both the refresher's sleeps and the time credentials are judged by.
#[derive(Clone, Copy, Debug)]
pub struct TokioClock {
    wall: OffsetDateTime,
    start: tokio::time::Instant,
}

impl TokioClock {
    /// A clock reading `wall` now.
    pub fn starting_at(wall: OffsetDateTime) -> Self {
        TokioClock {
            wall,
            start: tokio::time::Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> OffsetDateTime {
        self.wall + self.start.elapsed()
    }
}

/// A [`TokioClock`] whose reading can be stepped back or forward while tokio's (monotonic)
/// time runs on: what a host sees when NTP or a restored snapshot sets its clock.
#[derive(Debug)]
pub struct SteppedClock {
    base: TokioClock,
    /// The total step, in milliseconds.
    offset_ms: AtomicI64,
}

impl SteppedClock {
    /// A clock reading `wall` now.
    pub fn starting_at(wall: OffsetDateTime) -> Self {
        SteppedClock {
            base: TokioClock::starting_at(wall),
            offset_ms: AtomicI64::new(0),
        }
    }

    /// Sets the wall clock by `by` (negative: back), at once.
    pub fn step(&self, by: time::Duration) {
        let ms = i64::try_from(by.whole_milliseconds()).unwrap_or(0);
        self.offset_ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for SteppedClock {
    fn now(&self) -> OffsetDateTime {
        self.base.now() + time::Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }
}
