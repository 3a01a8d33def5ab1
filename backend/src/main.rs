//! The `quiver` server binary.

use std::path::PathBuf;

use anyhow::Context;
use clap::Parser;
use quiver_config::{Config, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Quiver: an embedded analytical database server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Configuration file; without it, ./config.toml if present, else
    /// built-in defaults.
    #[arg(long, short)]
    config: Option<PathBuf>,
}

fn init_logging(config: &Config) -> anyhow::Result<()> {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.logging.level)
        .with_context(|| format!("invalid logging.level {:?}", config.logging.level))?;
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi);
    match config.logging.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (config, source) = quiver_config::load(args.config.as_deref(), std::env::vars())?;
    init_logging(&config)?;
    let span = tracing::info_span!("node", node_id = %config.server.node_id);
    run(config, source).instrument(span).await
}

async fn run(config: Config, source: quiver_config::ConfigSource) -> anyhow::Result<()> {
    tracing::info!(config = %source, data_path = %config.storage.data_path.display(), "starting");
    let context = quiver::AppContext::build(config)?;
    let listener = quiver::bind(&context.config).await?;
    let shutdown = CancellationToken::new();
    let signals = shutdown.clone();
    let signal_task = tokio::spawn(
        async move {
            wait_for_signal().await;
            tracing::info!("shutdown requested");
            signals.cancel();
        }
        .in_current_span(),
    );
    quiver::serve(context, listener, shutdown).await?;
    signal_task.abort();
    Ok(())
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
