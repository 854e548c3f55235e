//! Reload requests from every trigger, run one at a time: requests arriving while a reload runs
//! are coalesced into exactly one more reload, which reads the config as it is then.

use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, watch};

use super::{ReloadReport, Reloader, Trigger};

/// Requests reloads; cheap to clone.
#[derive(Debug, Clone)]
pub struct ReloadHandle {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    /// The latest request: its number and trigger.
    requested: Mutex<(u64, Trigger)>,
    wake: Notify,
    /// The latest finished reload: the request number it covered and its report.
    done: watch::Sender<(u64, Option<Arc<ReloadReport>>)>,
}

impl ReloadHandle {
    /// Starts the task that runs reloads for `reloader` (abort it on shutdown).
    pub fn spawn(reloader: Arc<Reloader>) -> (ReloadHandle, tokio::task::JoinHandle<()>) {
        let shared = Arc::new(Shared {
            requested: Mutex::new((0, Trigger::File)),
            wake: Notify::new(),
            done: watch::Sender::new((0, None)),
        });
        let worker = shared.clone();
        let task = tokio::spawn(async move {
            loop {
                let (number, trigger) = *worker.requested.lock().unwrap_or_else(|e| e.into_inner());
                if number > worker.done.borrow().0 {
                    let report = reloader.reload(trigger).await;
                    worker.done.send_replace((number, Some(Arc::new(report))));
                } else {
                    // A request made since the check left a permit: this returns at once.
                    worker.wake.notified().await;
                }
            }
        });
        (ReloadHandle { shared }, task)
    }

    /// Requests a reload without waiting for it.
    pub fn request(&self, trigger: Trigger) -> u64 {
        let number = {
            let mut requested = self
                .shared
                .requested
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *requested = (requested.0 + 1, trigger);
            requested.0
        };
        self.shared.wake.notify_one();
        number
    }

    /// Requests a reload and waits for one that started after this call; returns its report.
    pub async fn reload(&self, trigger: Trigger) -> Arc<ReloadReport> {
        let number = self.request(trigger);
        self.wait_for(number).await
    }

    /// Waits for the reload covering request `number` (one started after it was made).
    pub async fn wait_for(&self, number: u64) -> Arc<ReloadReport> {
        let mut done = self.shared.done.subscribe();
        let finished = done
            .wait_for(|(covered, _)| *covered >= number)
            .await
            .expect("the sender lives in `self`");
        finished.1.clone().expect("a finished reload has a report")
    }
}
