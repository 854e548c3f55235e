//! The config-file trigger: watches the file's directory (not the file), so both a Kubernetes
//! ConfigMap volume update (a new timestamped directory, then the `..data` symlink renamed over)
//! and an editor's write-to-temporary-then-rename are seen. Bursts of events are coalesced
//! until the directory is quiet for [`QUIET`]; a reload is requested only when the file's
//! content differs from the content last seen.

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use super::Trigger;
use super::trigger::ReloadHandle;

/// How long the directory must be quiet before the file is read.
pub const QUIET: Duration = Duration::from_millis(100);

/// Why the watch could not start.
#[derive(Debug, thiserror::Error)]
#[error("watching {} for config changes: {source}", dir.display())]
pub struct WatchError {
    /// The watched directory.
    pub dir: PathBuf,
    /// Why.
    #[source]
    pub source: notify::Error,
}

/// Starts watching `path`'s directory; changes of `path`'s content are sent to `handle` as
/// [`Trigger::File`] reloads. The watch stops when the returned task is aborted.
pub fn watch_config(
    path: &Path,
    handle: ReloadHandle,
) -> Result<tokio::task::JoinHandle<()>, WatchError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut watcher =
        notify::recommended_watcher(move |event: notify::Result<notify::Event>| match event {
            Ok(event) if event.kind.is_access() => {}
            Ok(_) => {
                let _ = tx.send(());
            }
            Err(error) => tracing::warn!(%error, "config directory watch error"),
        })
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    watcher
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            dir: dir.clone(),
            source,
        })?;
    let path = path.to_path_buf();
    let mut seen = digest(&path);
    tracing::info!(dir = %dir.display(), "watching the config directory for changes");
    Ok(tokio::spawn(async move {
        // Dropping the watcher stops the notifications: it lives as long as this task.
        let _watcher = watcher;
        while rx.recv().await.is_some() {
            // Coalesce the burst: wait until nothing happened for QUIET.
            while let Ok(Some(())) = tokio::time::timeout(QUIET, rx.recv()).await {}
            // A file missing mid-swap is not a change: the swap's last event comes later.
            if let Some(now) = digest(&path)
                && Some(now) != seen
            {
                seen = Some(now);
                handle.request(Trigger::File);
            }
        }
    }))
}

/// The file's content digest (through symlinks), or `None` when it cannot be read.
fn digest(path: &Path) -> Option<[u8; 32]> {
    std::fs::read(path)
        .ok()
        .map(|bytes| Sha256::digest(&bytes).into())
}
