//! Switches the rows memtable out after a range delete, on a thread of its
//! own.
//!
//! RocksDB's `MultiGet` skips the Bloom filter of a memtable that holds a
//! range delete, so until that memtable is replaced every INSERT's key
//! lookup searches its skip list. Asking RocksDB for a switch can wait
//! (it holds back while earlier memtables are still being written out)
//! and pauses writers briefly, so it happens here, away from the commit
//! and the locks its caller holds, and at most once per [`INTERVAL`]:
//! range deletes come in bursts (a stream expiring every second, a flush
//! of each owner of a table).

use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rocksdb::{DB, FlushOptions};

use super::CF_ROWS;

/// The least time between two switches.
pub(super) const INTERVAL: Duration = Duration::from_secs(2);

#[derive(Default)]
struct State {
    wanted: bool,
    stopping: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

/// Owns the switching thread; dropping it stops and joins the thread.
pub(super) struct Switcher {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

impl Switcher {
    pub(super) fn start(db: Arc<DB>) -> std::io::Result<Self> {
        let shared = Arc::new(Shared::default());
        let thread = std::thread::Builder::new()
            .name("quiver-memtable-switch".into())
            .spawn({
                let shared = shared.clone();
                move || run(&db, &shared)
            })?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for a switch; returns at once.
    pub(super) fn request(&self) {
        let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        state.wanted = true;
        self.shared.wake.notify_one();
    }
}

impl Drop for Switcher {
    fn drop(&mut self) {
        {
            let mut state = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
            state.stopping = true;
            self.shared.wake.notify_one();
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(db: &DB, shared: &Shared) {
    let mut options = FlushOptions::default();
    options.set_wait(false);
    loop {
        {
            let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
            let mut state = shared
                .wake
                .wait_while(state, |s| !s.wanted && !s.stopping)
                .unwrap_or_else(|e| e.into_inner());
            if state.stopping {
                return;
            }
            state.wanted = false;
        }
        let switched = match db.cf_handle(CF_ROWS) {
            Some(rows) => db.flush_cf_opt(rows, &options),
            None => return,
        };
        // The memtable keeps its range delete until a later switch; reads
        // stay correct either way.
        if let Err(error) = switched {
            tracing::warn!(%error, "could not switch the rows memtable out");
        }
        let state = shared.state.lock().unwrap_or_else(|e| e.into_inner());
        let (state, _) = shared
            .wake
            .wait_timeout_while(state, INTERVAL, |s| !s.stopping)
            .unwrap_or_else(|e| e.into_inner());
        if state.stopping {
            return;
        }
    }
}
