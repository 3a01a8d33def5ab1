//! The `quiver` server binary.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use clap::Parser;
use quiver_config::SharedConfig;
use tokio_util::sync::CancellationToken;

// Many small, short-lived allocations (rows, expressions, messages) over
// several threads: mimalloc keeps them faster and packed tighter than the
// system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Quiver: an embedded analytical database server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file; without it, ./config.toml if present, else
    /// built-in defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("quiver: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let outcome = runtime.block_on(run(Args::parse()));
    // The node is dropped here, outside the runtime, so that its query
    // runtime can wait for the statements still running to stop before
    // the process exits under them.
    drop(runtime);
    match outcome.map(drop) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            // One line with the whole cause chain, e.g. "cannot create data
            // directory /srv/quiver/rocksdb: Permission denied".
            eprintln!("quiver: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// Runs the node until it is told to stop, and hands it back.
async fn run(args: Args) -> anyhow::Result<quiver::AppContext> {
    let env: Vec<(String, String)> = std::env::vars().collect();
    let (config, source) = quiver_config::load(args.config.as_deref(), env.iter().cloned())?;
    let set_level = quiver::logging::init(&config.logging, &config.server.node_id, std::io::stdout)
        .map_err(anyhow::Error::msg)
        .context("starting the log")?;
    tracing::info!(config = %source, data_path = %config.storage.data_path.display(), "starting");
    let shared = Arc::new(SharedConfig::new(config, source, env));
    let mut context = quiver::AppContext::build_shared(shared)?;
    context.log_level = Some(set_level);
    let listener = quiver::bind(&context.config.get()).await?;
    let shutdown = CancellationToken::new();
    let signals = tokio::spawn(watch_signals(Signals::install()?, shutdown.clone()));
    let served = quiver::serve(context.clone(), listener, shutdown).await;
    signals.abort();
    served?;
    Ok(context)
}

/// SIGTERM and SIGINT, taken over before the node announces that it
/// listens.
struct Signals {
    #[cfg(unix)]
    term: tokio::signal::unix::Signal,
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
}

impl Signals {
    #[cfg(unix)]
    fn install() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate()).context("handling SIGTERM")?,
            interrupt: signal(SignalKind::interrupt()).context("handling SIGINT")?,
        })
    }

    #[cfg(not(unix))]
    fn install() -> anyhow::Result<Self> {
        Ok(Self {})
    }

    #[cfg(unix)]
    async fn next(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.interrupt.recv() => {}
        }
    }

    #[cfg(not(unix))]
    async fn next(&mut self) {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// The first SIGTERM or SIGINT starts a graceful shutdown; a second one
/// ends the process at once.
async fn watch_signals(mut signals: Signals, shutdown: CancellationToken) {
    signals.next().await;
    tracing::info!("shutdown requested; a second signal stops at once");
    shutdown.cancel();
    signals.next().await;
    tracing::warn!("second shutdown signal; exiting without waiting");
    std::process::exit(130);
}
