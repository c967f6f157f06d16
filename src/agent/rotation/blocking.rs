//! Runs file, token and keyring reads away from the runtime, with a time bound.
//!
//! The agent runs on one runtime thread: a read that blocks (a FIFO in place of a
//! certificate, a hung NFS mount, a keyring call) would freeze every endpoint. The work runs
//! on its own thread instead of tokio's blocking pool because a stuck pool thread keeps the
//! runtime from shutting down, so SIGTERM would hang too; a detached thread ends with the
//! process. A few reads may be stuck at once (a file replaced by a FIFO, later by a good
//! file, must not block rotation for good); past that, attempts fail at once instead of
//! piling up threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Why the work produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stalled {
    /// It did not finish within the bound (it may still be running).
    TimedOut(Duration),
    /// Too many earlier calls are still running past their bound.
    StillBusy,
    /// The thread could not be started, or panicked.
    Failed,
}

/// One lane of off-runtime work. Clones share the lane.
#[derive(Clone)]
pub struct Lane {
    running: Arc<AtomicUsize>,
    max: usize,
}

impl Lane {
    /// A lane that runs at most `max` calls at once (stuck ones included).
    pub fn new(max: usize) -> Self {
        Lane {
            running: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }

    /// Runs `work` on a thread of its own and waits at most `bound` for its result.
    pub async fn run<T, F>(&self, bound: Duration, work: F) -> Result<T, Stalled>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.running.fetch_add(1, Ordering::AcqRel) >= self.max {
            self.running.fetch_sub(1, Ordering::AcqRel);
            return Err(Stalled::StillBusy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let guard = Release(self.running.clone());
        let spawned = std::thread::Builder::new()
            .name("identity-read".into())
            .spawn(move || {
                let result = work();
                // Released before sending: a caller that got the result may start again at
                // once. A panic releases it too (the guard drops while unwinding).
                drop(guard);
                let _ = tx.send(result);
            });
        if spawned.is_err() {
            // The closure (and the guard in it) was dropped: the lane is free again.
            return Err(Stalled::Failed);
        }
        match tokio::time::timeout(bound, rx).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(_)) => Err(Stalled::Failed),
            Err(_) => Err(Stalled::TimedOut(bound)),
        }
    }
}

/// Frees a place in the lane when the work is done (or has panicked).
struct Release(Arc<AtomicUsize>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_result_and_bounds_a_stuck_call() {
        let lane = Lane::new(1);
        assert_eq!(lane.run(Duration::from_secs(5), || 7).await, Ok(7));
        let (release, wait) = std::sync::mpsc::channel::<()>();
        let stuck = lane
            .run(Duration::from_millis(50), move || {
                let _ = wait.recv();
            })
            .await;
        assert_eq!(stuck, Err(Stalled::TimedOut(Duration::from_millis(50))));
        // The stuck thread holds the lane: no second thread is started meanwhile.
        assert_eq!(
            lane.run(Duration::from_secs(5), || 1).await,
            Err(Stalled::StillBusy)
        );
        release.send(()).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match lane.run(Duration::from_secs(5), || 2).await {
                Ok(v) => break assert_eq!(v, 2),
                Err(Stalled::StillBusy) if std::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(10)).await
                }
                Err(e) => panic!("{e:?}"),
            }
        }
    }
}
