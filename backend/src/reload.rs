//! Reloading the configuration while serving: on SIGHUP, and when the
//! configuration file changes (unless `[server] watch_config` is off).

use std::path::{Path, PathBuf};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use quiver_config::ConfigSource;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::AppContext;

/// Editors and deployment tools write a file in several steps; one reload
/// follows the last event of a burst this quiet.
const DEBOUNCE: Duration = Duration::from_millis(100);

/// What makes the node reload: SIGHUP, and changes to its file. Installed
/// before the node announces that it listens, so none is missed.
pub(crate) struct Triggers {
    hangup: Hangup,
    /// Stops watching when dropped.
    _watcher: Option<RecommendedWatcher>,
    changes: mpsc::UnboundedReceiver<()>,
}

impl Triggers {
    pub(crate) fn install(context: &AppContext) -> Self {
        let (changed, changes) = mpsc::unbounded_channel();
        let watcher = match context.config.source() {
            ConfigSource::File(path) if context.config.get().server.watch_config => {
                match watch(path, changed) {
                    Ok(watcher) => Some(watcher),
                    Err(e) => {
                        tracing::warn!(path = %path.display(), error = %e,
                            "cannot watch the configuration file; reload with SIGHUP");
                        None
                    }
                }
            }
            _ => None,
        };
        Self {
            hangup: hangup_signal(),
            _watcher: watcher,
            changes,
        }
    }
}

/// Reloads `context`'s configuration on each trigger until `shutdown` is
/// cancelled.
pub(crate) async fn run(context: AppContext, mut triggers: Triggers, shutdown: CancellationToken) {
    let changes = &mut triggers.changes;
    loop {
        let trigger = tokio::select! {
            _ = shutdown.cancelled() => return,
            Some(()) = changes.recv() => {
                // Wait for the burst to end.
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        more = changes.recv() => if more.is_none() { break },
                        _ = tokio::time::sleep(DEBOUNCE) => break,
                    }
                }
                "file change"
            }
            Some(()) = recv_hangup(&mut triggers.hangup) => "SIGHUP",
        };
        // Errors are logged by `reload`; the node keeps its settings.
        let _ = context.reload(trigger);
    }
}

/// Watches the file's directory: a file replaced by rename (as editors and
/// Kubernetes do) is a new inode that a watch on the file would miss.
fn watch(path: &Path, changed: mpsc::UnboundedSender<()>) -> notify::Result<RecommendedWatcher> {
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let directory = path
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
    let name = path.file_name().map(|n| n.to_os_string());
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        let Ok(event) = event else { return };
        if event.kind.is_access() {
            return;
        }
        let ours = event.paths.iter().any(|p| {
            let file = p.file_name();
            file == name.as_deref()
                // Kubernetes swaps a `..data` symlink.
                || file.is_some_and(|f| f.to_string_lossy().starts_with(".."))
        });
        if ours {
            let _ = changed.send(());
        }
    })?;
    watcher.watch(&directory, RecursiveMode::NonRecursive)?;
    Ok(watcher)
}

#[cfg(unix)]
type Hangup = Option<tokio::signal::unix::Signal>;
#[cfg(not(unix))]
type Hangup = ();

/// Takes over SIGHUP, whose default action would end the process.
#[cfg(unix)]
fn hangup_signal() -> Hangup {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::hangup()) {
        Ok(signal) => Some(signal),
        Err(e) => {
            tracing::warn!(error = %e, "cannot handle SIGHUP; configuration reload by signal is off");
            None
        }
    }
}

#[cfg(not(unix))]
fn hangup_signal() -> Hangup {}

#[cfg(unix)]
async fn recv_hangup(hangup: &mut Hangup) -> Option<()> {
    match hangup {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

#[cfg(not(unix))]
async fn recv_hangup(_: &mut Hangup) -> Option<()> {
    std::future::pending().await
}
