//! Running the real `quiver` binary from tests.

#![allow(dead_code)]

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub fn quiver() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_quiver"));
    piped(&mut command);
    command
}

/// Runs `command` like the server: clean environment, output piped,
/// killed when dropped.
pub fn piped(command: &mut Command) {
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
}

pub fn write_config(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the binary and returns it with the address it logged.
pub async fn start(config: &Path) -> (Child, String) {
    let (child, address, _) = start_logged(config).await;
    (child, address)
}

/// The lines a server has logged so far.
#[derive(Debug, Clone, Default)]
pub struct Log(Arc<Mutex<Vec<String>>>);

impl Log {
    pub fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits up to 10 s for a line containing every one of `parts`.
    pub async fn wait_for(&self, parts: &[&str]) -> String {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(line) = self
                .lines()
                .into_iter()
                .find(|l| parts.iter().all(|p| l.contains(p)))
            {
                return line;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "no log line with {parts:?} in:\n{}",
                self.lines().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Starts the binary; returns it, the address it logged, and its log.
pub async fn start_logged(config: &Path) -> (Child, String, Log) {
    let mut command = quiver();
    command.arg("--config").arg(config);
    start_command(command).await
}

/// Starts a command that runs the binary; returns it, the address it
/// logged, and its log.
pub async fn start_command(mut command: Command) -> (Child, String, Log) {
    let mut child = command.spawn().expect("starts");
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let log = Log::default();
    let address = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            log.0.lock().unwrap().push(line.clone());
            if line.contains("quiver listening") {
                assert!(
                    line.contains("node_id=") || line.contains("\"node_id\":"),
                    "node id missing from log: {line}"
                );
                return listening_address(&line);
            }
        }
        panic!("server exited before listening");
    })
    .await
    .expect("listens within a minute");
    // Keep reading the log so the server never blocks on a full pipe.
    let kept = log.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = lines.next_line().await {
            kept.0.lock().unwrap().push(line);
        }
    });
    (child, address, log)
}

fn listening_address(line: &str) -> String {
    if line.starts_with('{') {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON log line");
        return event["fields"]["address"].as_str().unwrap().to_string();
    }
    let address = line.split("address=").nth(1).unwrap();
    address.split_whitespace().next().unwrap().to_string()
}

/// Sends `signal` (`TERM`, `HUP`, `INT`) to the process.
pub fn signal(child: &Child, signal: &str) {
    let pid = child.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid])
        .status()
        .unwrap();
    assert!(status.success());
}

pub async fn sigterm(child: &mut Child) -> std::process::ExitStatus {
    signal(child, "TERM");
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("stops within 30 s")
        .unwrap()
}

/// Kills the process at once (SIGKILL), as a crash would.
pub fn sigkill(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}
