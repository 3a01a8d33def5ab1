//! A node the load tool starts itself, so that it can kill it with
//! SIGKILL in the middle of a load and start it again on the same data.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// The longest a node may take to answer `/health` after it is started.
const START_TIMEOUT: Duration = Duration::from_secs(120);

pub(crate) struct Node {
    bin: PathBuf,
    config: PathBuf,
    /// Where every start's output goes, appended.
    log: PathBuf,
    url: String,
    child: Child,
}

impl Node {
    /// Starts `bin --config <config>` and waits until `url` is healthy.
    /// The node's output goes to `node.log` beside the configuration.
    pub(crate) async fn start(
        bin: &Path,
        config: &Path,
        url: &str,
        http: &reqwest::Client,
    ) -> anyhow::Result<Self> {
        let log = config.with_file_name("node.log");
        let child = spawn(bin, config, &log)?;
        let mut node = Self {
            bin: bin.to_path_buf(),
            config: config.to_path_buf(),
            log,
            url: url.trim_end_matches('/').to_string(),
            child,
        };
        node.wait_healthy(http).await?;
        Ok(node)
    }

    /// Kills the node: SIGKILL, so no shutdown and no flush.
    pub(crate) fn kill(&mut self) -> anyhow::Result<()> {
        self.child.kill().context("killing the node")?;
        self.child.wait().context("reaping the node")?;
        Ok(())
    }

    /// Starts the node again on the same data and waits until it is
    /// healthy; returns how long that took.
    pub(crate) async fn restart(&mut self, http: &reqwest::Client) -> anyhow::Result<Duration> {
        let started = Instant::now();
        self.child = spawn(&self.bin, &self.config, &self.log)?;
        self.wait_healthy(http).await?;
        Ok(started.elapsed())
    }

    async fn wait_healthy(&mut self, http: &reqwest::Client) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!(
                    "the node exited ({status}) while starting; see {}",
                    self.log.display()
                );
            }
            let health = http.get(format!("{}/health", self.url)).send().await;
            if health.is_ok_and(|r| r.status().is_success()) {
                return Ok(());
            }
            if started.elapsed() > START_TIMEOUT {
                bail!(
                    "the node was not healthy after {START_TIMEOUT:?}; see {}",
                    self.log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(bin: &Path, config: &Path, log: &Path) -> anyhow::Result<Child> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .with_context(|| format!("opening {}", log.display()))?;
    Command::new(bin)
        .arg("--config")
        .arg(config)
        // The node reads every QUIVER_ variable as a setting; the load
        // tool's own are not.
        .env_remove("QUIVER_BENCH_PORT")
        .stdin(Stdio::null())
        .stdout(out.try_clone()?)
        .stderr(out)
        .spawn()
        .with_context(|| format!("starting {}", bin.display()))
}
