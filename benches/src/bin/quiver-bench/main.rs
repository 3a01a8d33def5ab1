//! `quiver-bench`: drives a running Quiver server over HTTP and WebSocket
//! the way applications load it, and reports latency percentiles and
//! throughput per workload as JSON and as a Markdown table.
//!
//! ```sh
//! quiver-bench --url http://127.0.0.1:8080 --user root --password '' --quick --out target/bench
//! ```

mod large;
mod live;
mod node;
mod soak;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use clap::Parser;
use serde::Serialize;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Load tool for a running Quiver server.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// The server's base URL.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    url: String,
    #[arg(long, default_value = "root")]
    user: String,
    #[arg(long, default_value = "")]
    password: String,
    /// Small sizes: the whole run takes under a minute.
    #[arg(long)]
    quick: bool,
    /// Live subscriptions to ramp to (default 1,000 quick, 10,000 full).
    #[arg(long)]
    subscriptions: Option<usize>,
    /// Subscriptions per WebSocket connection while ramping (at most the
    /// server's `max_subscriptions_per_connection`).
    #[arg(long, default_value_t = 100)]
    subscriptions_per_connection: usize,
    /// Only these workloads (comma-separated names); all by default.
    #[arg(long, value_delimiter = ',')]
    only: Vec<String>,
    /// Instead of the workloads, hold a mixed load for this many seconds
    /// and check that nothing failed, was lost or leaked.
    #[arg(long)]
    soak: Option<u64>,
    /// During the soak, kill the node with SIGKILL this often (seconds)
    /// and start it again: the tool then starts and owns the node itself
    /// (`--node-bin`, `--node-config`) instead of using one at `--url`.
    #[arg(long, requires_all = ["soak", "node_bin", "node_config"])]
    kill_every: Option<u64>,
    /// Most live rows the soak's table holds: at this size, writers
    /// delete where they would insert, so the table stops growing; 0 lets
    /// it grow for the whole run.
    #[arg(long, default_value_t = 0, requires = "soak")]
    soak_rows: usize,
    /// The `quiver` binary to start, for `--kill-every`.
    #[arg(long)]
    node_bin: Option<PathBuf>,
    /// The configuration to start it with; it must listen at `--url` and
    /// set `[auth] jwt_secret`, so that tokens outlive a restart.
    #[arg(long)]
    node_config: Option<PathBuf>,
    /// Directory for `results.json` and `results.md`.
    #[arg(long, default_value = "target/quiver-bench")]
    out: PathBuf,
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// One workload's figures.
#[derive(Debug, Clone, Serialize)]
struct Report {
    workload: String,
    operations: usize,
    p50_ms: f64,
    p95_ms: f64,
    p99_ms: f64,
    /// Operations (or rows, see `unit`) per second over the whole run.
    throughput: f64,
    unit: &'static str,
    /// The target this workload is held to, if any.
    target: Option<String>,
    met: Option<bool>,
    notes: String,
}

impl Report {
    fn new(workload: &str, mut latencies: Vec<Duration>, wall: Duration, units: usize) -> Self {
        latencies.sort_unstable();
        let at = |q: f64| {
            if latencies.is_empty() {
                return 0.0;
            }
            let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len());
            latencies[index - 1].as_secs_f64() * 1000.0
        };
        Self {
            workload: workload.to_string(),
            operations: latencies.len(),
            p50_ms: at(0.50),
            p95_ms: at(0.95),
            p99_ms: at(0.99),
            throughput: units as f64 / wall.as_secs_f64().max(1e-9),
            unit: "ops/s",
            target: None,
            met: None,
            notes: String::new(),
        }
    }

    fn unit(mut self, unit: &'static str) -> Self {
        self.unit = unit;
        self
    }

    fn target(mut self, text: &str, met: bool) -> Self {
        self.target = Some(text.to_string());
        self.met = Some(met);
        self
    }

    fn note(mut self, note: impl Into<String>) -> Self {
        self.notes = note.into();
        self
    }
}

/// What every workload needs.
struct Bench {
    http: reqwest::Client,
    url: String,
    token: String,
    quick: bool,
    subscriptions: usize,
    per_connection: usize,
}

impl Bench {
    /// Runs `sql` and returns the body; any non-200 answer is an error.
    async fn sql(&self, sql: &str, params: &[Value]) -> anyhow::Result<Value> {
        let mut body = json!({ "sql": sql });
        if !params.is_empty() {
            body["params"] = Value::Array(params.to_vec());
        }
        let response = self
            .http
            .post(format!("{}/v1/api/sql", self.url))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        ensure!(status == 200, "{sql}: {status} {body}");
        Ok(body)
    }

    fn size(&self, quick: usize, full: usize) -> usize {
        if self.quick { quick } else { full }
    }

    /// A WebSocket connection, authenticated.
    async fn connect(&self) -> anyhow::Result<Socket> {
        let url = format!("{}/v1/ws", self.url.replacen("http", "ws", 1));
        let mut request = url.into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true).await?;
        let welcome = live::next_json(&mut ws).await?;
        ensure!(welcome["type"] == "auth_success", "{welcome}");
        Ok(ws)
    }

    async fn metric(&self, name: &str) -> anyhow::Result<f64> {
        Ok(self.metrics(&[name]).await?[0])
    }

    /// Several of the server's metrics, from one scrape.
    async fn metrics(&self, names: &[&str]) -> anyhow::Result<Vec<f64>> {
        let text = self
            .http
            .get(format!("{}/metrics", self.url))
            .bearer_auth(&self.token)
            .send()
            .await?
            .text()
            .await?;
        names
            .iter()
            .map(|name| {
                text.lines()
                    .find_map(|line| {
                        let (key, value) = line.rsplit_once(' ')?;
                        (key == *name).then(|| value.parse().ok())?
                    })
                    .with_context(|| format!("no metric {name}"))
            })
            .collect()
    }
}

pub(crate) fn progress(name: &str, done: usize, total: usize) {
    if total >= 10 && done.is_multiple_of(total / 10) {
        eprint!("\r  {name}: {done}/{total}   ");
        if done == total {
            eprintln!();
        }
    }
}

async fn setup(bench: &Bench) -> anyhow::Result<()> {
    bench
        .sql(
            "CREATE NAMESPACE IF NOT EXISTS bench; \
             DROP TABLE IF EXISTS bench.items; DROP TABLE IF EXISTS bench.events; \
             DROP TABLE IF EXISTS bench.snap; DROP TABLE IF EXISTS bench.fan; \
             CREATE TABLE bench.items (id BIGINT PRIMARY KEY, k BIGINT, v DOUBLE, body TEXT); \
             CREATE TABLE bench.events (id BIGINT PRIMARY KEY, k TEXT, body TEXT); \
             CREATE TABLE bench.snap (id BIGINT PRIMARY KEY, body TEXT); \
             CREATE TABLE bench.fan (id BIGINT PRIMARY KEY, k BIGINT, body TEXT)",
            &[],
        )
        .await?;
    Ok(())
}

/// Values of `count` item rows from `first`, as SQL.
fn item_values(first: usize, count: usize) -> String {
    (first..first + count)
        .map(|i| format!("({i}, {}, {}.5, 'item {i}')", i % 100, i % 1000))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn insert_single(bench: &Bench, next_id: &mut usize) -> anyhow::Result<Report> {
    let n = bench.size(500, 5000);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let id = *next_id + i;
        let t = Instant::now();
        bench
            .sql(
                "INSERT INTO bench.items (id, k, v, body) VALUES ($1, $2, $3, $4)",
                &[json!(id), json!(id % 100), json!(1.5), json!("single")],
            )
            .await?;
        latencies.push(t.elapsed());
        progress("insert_single", i + 1, n);
    }
    *next_id += n;
    let report = Report::new("insert_single", latencies, started.elapsed(), n);
    let met = report.p50_ms <= 0.25;
    Ok(report.target("p50 <= 0.25 ms", met))
}

async fn insert_50(bench: &Bench, next_id: &mut usize) -> anyhow::Result<Report> {
    let n = bench.size(100, 1000);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let sql = format!(
            "INSERT INTO bench.items (id, k, v, body) VALUES {}",
            item_values(*next_id, 50)
        );
        *next_id += 50;
        let t = Instant::now();
        bench.sql(&sql, &[]).await?;
        latencies.push(t.elapsed());
        progress("insert_50", i + 1, n);
    }
    let report = Report::new("insert_50_rows", latencies, started.elapsed(), n);
    let met = report.p50_ms <= 0.8;
    Ok(report.target("p50 <= 0.8 ms", met))
}

async fn ingest(bench: &Arc<Bench>, next_id: &mut usize) -> anyhow::Result<Report> {
    let statements = bench.size(40, 400);
    let writers = 4;
    let first = *next_id;
    *next_id += statements * 1000;
    let (done, mut finished) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..writers {
        let bench = bench.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            for s in (w..statements).step_by(writers) {
                let sql = format!(
                    "INSERT INTO bench.items (id, k, v, body) VALUES {}",
                    item_values(first + s * 1000, 1000)
                );
                let t = Instant::now();
                bench.sql(&sql, &[]).await?;
                latencies.push(t.elapsed());
                let _ = done.send(());
            }
            anyhow::Ok(latencies)
        }));
    }
    drop(done);
    let mut count = 0;
    while finished.recv().await.is_some() {
        count += 1;
        progress("ingest", count, statements);
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let report = Report::new(
        "ingest_1000_row_inserts",
        latencies,
        started.elapsed(),
        statements * 1000,
    )
    .unit("rows/s")
    .note(format!("{writers} concurrent writers"));
    let met = report.throughput >= 300_000.0;
    Ok(report.target(">= 300,000 rows/s", met))
}

async fn select_pk(bench: &Bench, rows: usize) -> anyhow::Result<Report> {
    let n = bench.size(500, 5000);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let id = (i * 7919) % rows;
        let t = Instant::now();
        let body = bench
            .sql(
                "SELECT id, v, body FROM bench.items WHERE id = $1",
                &[json!(id)],
            )
            .await?;
        latencies.push(t.elapsed());
        ensure!(body["results"][0]["row_count"] == 1, "id {id}: {body}");
        progress("select_pk", i + 1, n);
    }
    let report = Report::new("select_pk", latencies, started.elapsed(), n);
    let met = report.p50_ms <= 0.25;
    Ok(report.target("p50 <= 0.25 ms", met))
}

async fn select_concurrent(bench: &Arc<Bench>, rows: usize) -> anyhow::Result<Report> {
    let n = 1000;
    let rounds = bench.size(1, 5);
    let mut latencies = Vec::with_capacity(n * rounds);
    let started = Instant::now();
    for round in 0..rounds {
        let tasks: Vec<_> = (0..n)
            .map(|i| {
                let bench = bench.clone();
                let id = (round * n + i) * 31 % rows;
                tokio::spawn(async move {
                    let t = Instant::now();
                    let body = bench
                        .sql("SELECT id, v FROM bench.items WHERE id = $1", &[json!(id)])
                        .await?;
                    ensure!(body["results"][0]["row_count"] == 1, "{body}");
                    anyhow::Ok(t.elapsed())
                })
            })
            .collect();
        for task in tasks {
            latencies.push(task.await??);
        }
        progress("select_concurrent", round + 1, rounds);
    }
    Ok(Report::new(
        "select_1000_concurrent",
        latencies,
        started.elapsed(),
        n * rounds,
    )
    .note(format!("{rounds} round(s) of 1,000 requests sent at once")))
}

async fn scan(bench: &Bench, rows: usize) -> anyhow::Result<Report> {
    let n = bench.size(5, 20);
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let t = Instant::now();
        let body = bench
            .sql(
                "SELECT k, count(*), sum(v), avg(v) FROM bench.items GROUP BY k ORDER BY k",
                &[],
            )
            .await?;
        latencies.push(t.elapsed());
        ensure!(body["results"][0]["row_count"] == 100, "{body}");
        progress("scan", i + 1, n);
    }
    Ok(
        Report::new("analytical_scan", latencies, started.elapsed(), n)
            .note(format!("GROUP BY over {rows} rows")),
    )
}

async fn connection_storm(bench: &Arc<Bench>) -> anyhow::Result<Report> {
    let n = bench.size(200, 1000);
    let started = Instant::now();
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let bench = bench.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let ws = bench.connect().await?;
                anyhow::Ok((t.elapsed(), ws))
            })
        })
        .collect();
    let mut latencies = Vec::with_capacity(n);
    let mut sockets = Vec::with_capacity(n);
    for task in tasks {
        let (latency, ws) = task.await??;
        latencies.push(latency);
        sockets.push(ws);
    }
    let wall = started.elapsed();
    let open = bench.metric("quiver_websocket_connections").await?;
    ensure!(
        open as usize >= n,
        "server counts {open} connections, expected {n}"
    );
    for mut ws in sockets {
        let _ = ws.close(None).await;
    }
    Ok(
        Report::new("websocket_connection_storm", latencies, wall, n).note(format!(
            "{n} connections opened at once, authenticated by header"
        )),
    )
}

fn markdown(reports: &[Report]) -> String {
    let mut out = String::from(
        "| workload | ops | p50 ms | p95 ms | p99 ms | throughput | target | met | notes |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | --- | --- | --- |\n",
    );
    for r in reports {
        out.push_str(&format!(
            "| {} | {} | {:.3} | {:.3} | {:.3} | {:.0} {} | {} | {} | {} |\n",
            r.workload,
            r.operations,
            r.p50_ms,
            r.p95_ms,
            r.p99_ms,
            r.throughput,
            r.unit,
            r.target.as_deref().unwrap_or(""),
            match r.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "",
            },
            r.notes
        ));
    }
    out
}

async fn login(http: &reqwest::Client, args: &Args) -> anyhow::Result<String> {
    let response = http
        .post(format!("{}/v1/api/auth/login", args.url))
        .json(&json!({"user": args.user, "password": args.password}))
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.url))?;
    let status = response.status();
    let body: Value = response.json().await?;
    ensure!(status == 200, "sign-in failed: {status} {body}");
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .context("no access_token in the sign-in answer")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(1100)
        .build()?;
    let killer = match (args.kill_every, &args.node_bin, &args.node_config) {
        (Some(every), Some(bin), Some(config)) => Some(soak::Killer {
            node: node::Node::start(bin, config, &args.url, &http).await?,
            every: Duration::from_secs(every.max(1)),
        }),
        _ => None,
    };
    let token = login(&http, &args).await?;
    let bench = Arc::new(Bench {
        http,
        url: args.url.trim_end_matches('/').to_string(),
        token,
        quick: args.quick,
        subscriptions: args
            .subscriptions
            .unwrap_or(if args.quick { 1000 } else { 10_000 }),
        per_connection: args.subscriptions_per_connection,
    });
    let wanted = |name: &str| args.only.is_empty() || args.only.iter().any(|o| o == name);
    let run_started = Instant::now();
    let mut reports = Vec::new();
    if let Some(seconds) = args.soak {
        reports.push(soak::run(&bench, seconds, args.soak_rows, killer).await?);
        return write_results(&args, &bench, &reports, run_started);
    }
    setup(&bench).await?;
    let mut next_id = 0usize;
    eprintln!(
        "quiver-bench against {} ({} mode)",
        bench.url,
        if bench.quick { "quick" } else { "full" }
    );
    if wanted("insert_single") {
        reports.push(insert_single(&bench, &mut next_id).await?);
    }
    if wanted("insert_50") {
        reports.push(insert_50(&bench, &mut next_id).await?);
    }
    if wanted("ingest") || wanted("select_pk") || wanted("select_concurrent") || wanted("scan") {
        reports.push(ingest(&bench, &mut next_id).await?);
    }
    let rows = next_id;
    if wanted("select_pk") {
        reports.push(select_pk(&bench, rows).await?);
    }
    if wanted("select_concurrent") {
        reports.push(select_concurrent(&bench, rows).await?);
    }
    if wanted("scan") {
        reports.push(scan(&bench, rows).await?);
    }
    if wanted("snapshot") {
        reports.push(live::snapshot(&bench).await?);
    }
    if wanted("notify") {
        reports.push(live::notify_latency(&bench).await?);
    }
    if wanted("fan_out") {
        reports.extend(live::fan_out(&bench).await?);
    }
    if wanted("writes_during_snapshots") {
        reports.extend(live::writes_during_snapshots(&bench).await?);
    }
    if wanted("storm") {
        reports.push(connection_storm(&bench).await?);
    }
    if wanted("large_result") {
        reports.push(large::first_bytes(&bench).await?);
        let rows = bench.size(1_000_000, 5_000_000);
        reports.push(large::memory(&bench, rows).await?);
    }

    write_results(&args, &bench, &reports, run_started)
}

fn write_results(
    args: &Args,
    bench: &Bench,
    reports: &[Report],
    run_started: Instant,
) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.out)?;
    let table = markdown(reports);
    std::fs::write(args.out.join("results.md"), &table)?;
    std::fs::write(
        args.out.join("results.json"),
        serde_json::to_string_pretty(&json!({
            "url": bench.url,
            "mode": if bench.quick { "quick" } else { "full" },
            "seconds": run_started.elapsed().as_secs_f64(),
            "reports": reports,
        }))?,
    )?;
    println!("{table}");
    eprintln!(
        "done in {:.1} s; results in {}",
        run_started.elapsed().as_secs_f64(),
        args.out.display()
    );
    Ok(())
}
