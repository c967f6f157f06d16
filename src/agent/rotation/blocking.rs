//! Runs file, token and keyring reads away from the runtime, with a time bound.
//!
//! The agent runs on one runtime thread: a read that blocks (a FIFO in place of a
//! certificate, a hung NFS mount, a keyring call) would freeze every endpoint. The work runs
//! on its own thread instead of tokio's blocking pool because a stuck pool thread keeps the
//! runtime from shutting down, so SIGTERM would hang too; a detached thread ends with the
//! process. At most one such read is outstanding: while one is stuck, further attempts fail
//! at once instead of piling up threads.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// Why the work produced no result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stalled {
    /// It did not finish within the bound (it may still be running).
    TimedOut(Duration),
    /// An earlier call is still running past its bound.
    StillBusy,
    /// The thread could not be started, or panicked.
    Failed,
}

/// One lane of off-runtime work. Clones share the lane.
#[derive(Clone, Default)]
pub struct Lane {
    busy: Arc<AtomicBool>,
}

impl Lane {
    /// Runs `work` on a thread of its own and waits at most `bound` for its result.
    pub async fn run<T, F>(&self, bound: Duration, work: F) -> Result<T, Stalled>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        if self.busy.swap(true, Ordering::AcqRel) {
            return Err(Stalled::StillBusy);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let guard = Release(self.busy.clone());
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

/// Frees the lane when the work is done (or has panicked).
struct Release(Arc<AtomicBool>);

impl Drop for Release {
    fn drop(&mut self) {
        self.0.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn returns_the_result_and_bounds_a_stuck_call() {
        let lane = Lane::default();
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
