//! Operating the real binary: graceful shutdown on signals, configuration
//! reload while serving, the metrics endpoint and the log.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Log, signal, start_logged, write_config};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::process::Child;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// Basic credentials of `root` without a password.
const ROOT: &str = "Basic cm9vdDo=";

struct Node {
    child: Child,
    address: String,
    log: Log,
    dir: tempfile::TempDir,
    http: reqwest::Client,
}

impl Node {
    /// Starts the binary with `extra` appended to a config on port 0 with
    /// its own data directory.
    async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = write_config(dir.path(), &config_text(dir.path(), extra));
        let (child, address, log) = start_logged(&config).await;
        Self {
            child,
            address,
            log,
            dir,
            http: reqwest::Client::new(),
        }
    }

    fn config_path(&self) -> std::path::PathBuf {
        self.dir.path().join("config.toml")
    }

    /// Replaces the config file as editors and deployment tools do: a new
    /// file renamed over the old one.
    fn rewrite_config(&self, extra: &str) {
        let next = self.dir.path().join("config.toml.next");
        std::fs::write(&next, config_text(self.dir.path(), extra)).unwrap();
        std::fs::rename(&next, self.config_path()).unwrap();
    }

    async fn sql(&self, sql: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("http://{}/v1/api/sql", self.address))
            .header("authorization", ROOT)
            .json(&json!({ "sql": sql }))
            .send()
            .await
            .expect("the server answers");
        let status = response.status().as_u16();
        (status, response.json().await.expect("a JSON body"))
    }

    /// A WebSocket connection authenticated as root by header.
    async fn connect_ws(&self) -> Socket {
        let mut request = format!("ws://{}/v1/ws", self.address)
            .into_client_request()
            .unwrap();
        request
            .headers_mut()
            .insert("authorization", ROOT.parse().unwrap());
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        let welcome = next_text(&mut ws).await;
        assert!(welcome.contains("auth_success"), "{welcome}");
        ws
    }

    /// Sends `sql` from a task; the task gives back the answer, if any.
    fn send_in_background(
        &self,
        sql: &'static str,
    ) -> tokio::task::JoinHandle<reqwest::Result<reqwest::Response>> {
        let request = self
            .http
            .post(format!("http://{}/v1/api/sql", self.address))
            .header("authorization", ROOT)
            .json(&json!({ "sql": sql }));
        tokio::spawn(request.send())
    }

    async fn setting(&self, name: &str) -> String {
        let (status, body) = self
            .sql(&format!(
                "SELECT value FROM system.settings WHERE name = '{name}'"
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        body["results"][0]["rows"][0][0]
            .as_str()
            .unwrap()
            .to_string()
    }

    async fn wait(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(Duration::from_secs(30), self.child.wait())
            .await
            .expect("the process exits")
            .unwrap()
    }
}

fn config_text(dir: &std::path::Path, extra: &str) -> String {
    format!(
        "[server]\nnode_id = \"ops-node\"\nport = 0\n{extra}\n[storage]\ndata_path = {:?}\n",
        dir.join("data").display().to_string()
    )
}

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message, past ping frames.
async fn next_text(ws: &mut Socket) -> String {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return text.to_string(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// A query that runs for seconds in a debug build.
const SLOW_COUNT: &str = "SELECT count(*) FROM generate_series(1, 60000000)";

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_closes_websockets() {
    let mut node = Node::start("").await;
    let mut ws = node.connect_ws().await;

    let slow = node.send_in_background(SLOW_COUNT);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!slow.is_finished(), "the query finished before the signal");
    signal(&node.child, "TERM");

    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match ws.next().await {
                Some(Ok(Message::Close(frame))) => return frame,
                Some(Ok(_)) => continue,
                other => panic!("connection ended without a close frame: {other:?}"),
            }
        }
    })
    .await
    .expect("a close frame");
    assert_eq!(u16::from(closed.expect("a close code").code), 1001);

    let response = slow
        .await
        .unwrap()
        .expect("an answer, not a dropped connection");
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["results"][0]["rows"][0][0], "60000000");
    assert!(node.wait().await.success());
    node.log.wait_for(&["quiver stopped"]).await;
}

#[tokio::test]
async fn shutdown_waits_no_longer_than_its_timeout_and_a_second_signal_forces_exit() {
    let long = "SELECT count(*) FROM generate_series(1, 2000000000)";
    let mut node = Node::start("shutdown_timeout_secs = 1\n[limits]\nquery_timeout_ms = 0").await;
    let running = node.send_in_background(long);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let signalled = Instant::now();
    signal(&node.child, "TERM");
    let status = node.wait().await;
    assert!(status.success(), "{status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "stopped {:?} after the signal",
        signalled.elapsed()
    );
    node.log.wait_for(&["shutdown_timeout_secs"]).await;
    // Cut off: the connection closes, or a last answer says why.
    match running.await.unwrap() {
        Err(_) => {}
        Ok(response) => {
            assert_eq!(response.status(), 503);
            let body: Value = response.json().await.unwrap();
            assert_eq!(body["error"]["code"], "SHUTTING_DOWN", "{body}");
        }
    }

    let mut node = Node::start("shutdown_timeout_secs = 600\n[limits]\nquery_timeout_ms = 0").await;
    let _running = node.send_in_background(long);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&node.child, "TERM");
    node.log.wait_for(&["shutdown requested"]).await;
    signal(&node.child, "INT");
    let status = node.wait().await;
    assert_eq!(status.code(), Some(130), "{status:?}");
}

#[tokio::test]
async fn the_config_file_reloads_100_times_under_load_without_a_failed_request() {
    let node = Arc::new(Node::start("").await);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let load: Vec<_> = (0..2)
        .map(|_| {
            let (node, stop, sent, failed) =
                (node.clone(), stop.clone(), sent.clone(), failed.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let (status, _) = node.sql("SELECT 1").await;
                    sent.fetch_add(1, Ordering::Relaxed);
                    if status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();

    for round in 0..100 {
        let rows = 1000 + round;
        node.rewrite_config(&format!("[limits]\nmax_result_rows = {rows}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while node.setting("limits.max_result_rows").await != rows.to_string() {
            assert!(Instant::now() < deadline, "round {round} never took effect");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    // The last value is in force, not only shown.
    node.rewrite_config("[limits]\nmax_result_rows = 3");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = node.sql("SELECT * FROM generate_series(1, 5)").await;
        if status != 200 {
            assert_eq!(body["error"]["code"], "RESULT_TOO_LARGE", "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "the limit never took effect");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in load {
        task.await.unwrap();
    }
    let sent = sent.load(Ordering::Relaxed);
    assert!(sent >= 100, "only {sent} requests ran during the reloads");
    assert_eq!(
        failed.load(Ordering::Relaxed),
        0,
        "failed requests of {sent}"
    );
}

#[tokio::test]
async fn sighup_applies_reloadable_settings_and_refuses_the_rest() {
    let mut node = Node::start("watch_config = false\n[limits]\nmax_result_rows = 50").await;

    node.rewrite_config("watch_config = false\n[limits]\nmax_result_rows = \"many\"");
    signal(&node.child, "HUP");
    let line = node.log.wait_for(&["configuration not reloaded"]).await;
    assert!(line.contains("max_result_rows"), "the reason: {line}");
    assert_eq!(node.setting("limits.max_result_rows").await, "50");

    let text = config_text(
        node.dir.path(),
        "watch_config = false\n[limits]\nmax_result_rows = 60",
    )
    .replace("ops-node", "renamed-node");
    std::fs::write(node.config_path(), text).unwrap();
    signal(&node.child, "HUP");
    let line = node
        .log
        .wait_for(&["need a restart", "server.node_id"])
        .await;
    assert!(line.contains("SIGHUP"), "{line}");
    node.log
        .wait_for(&["configuration reloaded", "limits.max_result_rows"])
        .await;
    assert_eq!(node.setting("limits.max_result_rows").await, "60");
    assert_eq!(node.setting("server.node_id").await, "ops-node");

    // The log level reloads too: at `warn`, shutdown's INFO lines vanish.
    node.rewrite_config("watch_config = false\n[logging]\nlevel = \"warn\"");
    signal(&node.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while node.setting("logging.level").await != "warn" {
        assert!(Instant::now() < deadline, "the level never changed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&node.child, "TERM");
    assert!(node.wait().await.success());
    let lines = node.log.lines();
    assert!(lines.iter().any(|l| l.contains("configuration reloaded")));
    assert!(
        !lines.iter().any(|l| l.contains("quiver stopped")),
        "INFO logged at level warn: {lines:#?}"
    );
}

/// Reads one sample from the metrics text.
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            (key == name).then(|| value.parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no sample {name} in:\n{text}"))
}

#[tokio::test]
async fn metrics_and_system_stats_count_the_same_things() {
    let mut node = Node::start("").await;
    let (status, _) = node
        .sql(
            "CREATE TABLE default.m (id BIGINT PRIMARY KEY, v TEXT); \
             INSERT INTO default.m VALUES (1, 'a'), (2, 'b'), (3, 'c'); \
             STORAGE FLUSH TABLE default.m",
        )
        .await;
    assert_eq!(status, 200);
    let (status, _) = node.sql("SELECT * FROM default.m").await;
    assert_eq!(status, 200);
    // A key in a segment: its page is decoded and cached.
    let (status, body) = node.sql("SELECT v FROM default.m WHERE id = 2").await;
    assert_eq!(status, 200);
    assert_eq!(body["results"][0]["rows"][0], json!(["b"]), "{body}");

    let mut ws = node.connect_ws().await;
    let subscribe = json!({
        "type": "subscribe",
        "subscription": {"id": "s1", "sql": "SELECT * FROM default.m"}
    });
    ws.send(Message::text(subscribe.to_string())).await.unwrap();
    let ack = next_text(&mut ws).await;
    assert!(ack.contains("subscription_ack"), "{ack}");
    let (status, _) = node.sql("INSERT INTO default.m VALUES (4, 'd')").await;
    assert_eq!(status, 200);
    let _ = node
        .http
        .get(format!("http://{}/nowhere", node.address))
        .send()
        .await;

    // Notifications are queued by a background task.
    let deadline = Instant::now() + Duration::from_secs(10);
    let text = loop {
        let response = node
            .http
            .get(format!("http://{}/metrics", node.address))
            .header("authorization", ROOT)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = response.text().await.unwrap();
        if sample(&text, "quiver_notifications_total") >= 1.0 {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no notification counted:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        sample(
            &text,
            "quiver_http_requests_total{endpoint=\"/v1/api/sql\",status=\"200\"}"
        ) >= 3.0
    );
    assert_eq!(
        sample(
            &text,
            "quiver_http_requests_total{endpoint=\"unmatched\",status=\"404\"}"
        ),
        1.0
    );
    assert!(sample(&text, "quiver_query_duration_seconds_count") >= 3.0);
    assert_eq!(sample(&text, "quiver_rows_written_total"), 4.0);
    assert!(sample(&text, "quiver_rows_read_total") >= 3.0);
    assert_eq!(sample(&text, "quiver_flushes_total"), 1.0);
    assert!(sample(&text, "quiver_flush_seconds_total") > 0.0);
    assert_eq!(sample(&text, "quiver_websocket_connections"), 1.0);
    assert_eq!(sample(&text, "quiver_live_subscriptions"), 1.0);
    assert_eq!(sample(&text, "quiver_tables"), 1.0);
    assert!(sample(&text, "quiver_cold_bytes") > 0.0);
    assert!(sample(&text, "quiver_memtable_bytes") > 0.0);
    assert!(sample(&text, "quiver_page_cache_bytes") > 0.0);
    for gauge in ["quiver_table_reader_bytes", "quiver_block_cache_bytes"] {
        assert!(sample(&text, gauge) >= 0.0, "{gauge}");
    }

    let (_, body) = node
        .sql(
            "SELECT rows_written, flushes, websocket_connections, live_subscriptions, \
             notifications_sent, cold_bytes > 0, memtable_bytes > 0, \
             page_cache_bytes > 0 FROM system.stats",
        )
        .await;
    assert_eq!(
        body["results"][0]["rows"][0],
        json!(["4", "1", "1", "1", "1", true, true, true]),
        "{body}"
    );
    drop(ws);
    signal(&node.child, "TERM");
    assert!(node.wait().await.success());
}

#[tokio::test]
async fn json_logs_name_the_node_on_every_line_and_never_a_password() {
    let mut node = Node::start("[logging]\nformat = \"json\"\nslow_query_ms = 0").await;
    let (status, _) = node
        .sql("CREATE USER carol WITH PASSWORD 'Sw0rdfish-secret' ROLE user")
        .await;
    assert_eq!(status, 200);
    let (status, _) = node
        .sql("ALTER USER carol SET PASSWORD 'an0ther-Secret'")
        .await;
    assert_eq!(status, 200);
    let login = node
        .http
        .post(format!("http://{}/v1/api/auth/login", node.address))
        .json(&json!({"username": "carol", "password": "Sw0rdfish-wrong"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 401);
    let slow = node.log.wait_for(&["slow query", "ALTER USER carol"]).await;
    assert!(slow.contains("********"), "{slow}");
    signal(&node.child, "TERM");
    assert!(node.wait().await.success());
    node.log.wait_for(&["quiver stopped"]).await;

    let lines = node.log.lines();
    assert!(lines.len() >= 5, "{lines:?}");
    for line in &lines {
        let event: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert_eq!(event["node_id"], "ops-node", "{line}");
        assert!(
            !line.contains("Sw0rdfish") && !line.contains("an0ther"),
            "a password was logged: {line}"
        );
    }
}
