//! Live queries: subscriptions with snapshots, the time from a write to
//! its notification, fan-out to many subscriptions, and what a large
//! snapshot costs the table's writers.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

use crate::{Bench, Report, Socket, progress};

/// The next JSON message, past ping and pong frames.
pub(crate) async fn next_json(ws: &mut Socket) -> anyhow::Result<Value> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(text))) => return Ok(serde_json::from_str(&text)?),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => bail!("expected a message, got {other:?}"),
        }
    }
}

/// Subscribes and reads the acknowledgement and the whole snapshot;
/// returns its rows. With `snapshot` the current rows come first
/// (`options: {}`), without it only changes (no options), as the contract
/// has it.
pub(crate) async fn subscribe(
    ws: &mut Socket,
    id: &str,
    sql: &str,
    snapshot: bool,
) -> anyhow::Result<Vec<Value>> {
    let mut message = json!({"type": "subscribe", "subscription": {"id": id, "sql": sql}});
    if snapshot {
        message["subscription"]["options"] = json!({});
    }
    ws.send(Message::text(message.to_string())).await?;
    read_snapshot(ws, id).await
}

/// Reads a subscription's acknowledgement and whole snapshot; returns
/// its rows.
pub(crate) async fn read_snapshot(ws: &mut Socket, id: &str) -> anyhow::Result<Vec<Value>> {
    let mut rows = Vec::new();
    loop {
        let mut message = next_json(ws).await?;
        match message["type"].as_str() {
            Some("subscription_ack") => continue,
            // Changes of an earlier subscription, still on their way.
            Some("change") if message["subscription_id"] != id => continue,
            Some("initial_data_batch") => {
                if let Some(batch) = message["rows"].as_array_mut() {
                    rows.append(batch);
                }
                if message["batch_control"]["has_more"] == true {
                    let next = json!({"type": "next_batch", "subscription_id": id});
                    ws.send(Message::text(next.to_string())).await?;
                } else {
                    return Ok(rows);
                }
            }
            _ => bail!("unexpected message while loading {id}: {message}"),
        }
    }
}

pub(crate) async fn snapshot(bench: &Bench) -> anyhow::Result<Report> {
    bench
        .sql(
            &format!(
                "INSERT INTO bench.snap (id, body) VALUES {}",
                (0..1000)
                    .map(|i| format!("({i}, 'row {i}')"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            &[],
        )
        .await?;
    let n = bench.size(20, 100);
    let mut ws = bench.connect().await?;
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let id = format!("snap{i}");
        let t = Instant::now();
        let rows = subscribe(&mut ws, &id, "SELECT * FROM bench.snap", true)
            .await?
            .len();
        latencies.push(t.elapsed());
        ensure!(rows == 1000, "snapshot of {rows} rows");
        let end = json!({"type": "unsubscribe", "subscription_id": id});
        ws.send(Message::text(end.to_string())).await?;
        progress("subscribe_snapshot", i + 1, n);
    }
    Ok(Report::new(
        "subscribe_1000_row_snapshot",
        latencies,
        started.elapsed(),
        n,
    )
    .note("subscribe sent to last snapshot row received"))
}

/// Inserts one row and times until the subscriber sees it. The change and
/// the INSERT's response travel on different sockets and either may come
/// first, so both are awaited together and the change is timed when it
/// arrives.
pub(crate) async fn notify_latency(bench: &Bench) -> anyhow::Result<Report> {
    let n = bench.size(200, 2000);
    let mut ws = bench.connect().await?;
    subscribe(
        &mut ws,
        "events",
        "SELECT * FROM bench.events WHERE k = 'watched'",
        false,
    )
    .await?;
    let mut latencies = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        let params = [json!(i)];
        let t = Instant::now();
        let insert = bench.sql(
            "INSERT INTO bench.events (id, k, body) VALUES ($1, 'watched', 'e')",
            &params,
        );
        let change = async {
            let message = tokio::time::timeout(Duration::from_secs(10), next_json(&mut ws)).await;
            (message, t.elapsed())
        };
        let (inserted, (message, latency)) = tokio::join!(insert, change);
        inserted?;
        let message = message.context("no change within 10 s")??;
        latencies.push(latency);
        ensure!(
            message["type"] == "change" && message["rows"][0]["id"] == json!(i.to_string()),
            "unexpected notification {message}"
        );
        progress("notify", i + 1, n);
    }
    let report = Report::new("insert_to_notification", latencies, started.elapsed(), n)
        .note("INSERT request sent to change received, one subscriber");
    let met = report.p50_ms <= 0.3 && report.p99_ms <= 2.0;
    Ok(report.target("p50 <= 0.3 ms, p99 <= 2 ms", met))
}

/// Opens `subscriptions` equality subscriptions over many connections,
/// then inserts rows that each match exactly one and checks that exactly
/// that one is told, timing each.
pub(crate) async fn fan_out(bench: &Arc<Bench>) -> anyhow::Result<Vec<Report>> {
    let total = bench.subscriptions;
    let per = bench.per_connection.max(1);
    let connections = total.div_ceil(per);
    // Connections first, then subscriptions, so that what an idle
    // subscription costs is measured apart from what its socket costs.
    let rss_start = bench.metric("process_resident_memory_bytes").await?;
    let mut sockets = Vec::with_capacity(connections);
    for _ in 0..connections {
        sockets.push(bench.connect().await?);
    }
    let rss_connected = bench.metric("process_resident_memory_bytes").await?;
    let (seen, mut notifications) = mpsc::unbounded_channel::<(usize, Instant)>();
    let started = Instant::now();
    let mut connect_latencies = Vec::with_capacity(total);
    let mut readers = Vec::with_capacity(connections);
    for (c, mut ws) in sockets.into_iter().enumerate() {
        let range = c * per..((c + 1) * per).min(total);
        for k in range.clone() {
            let t = Instant::now();
            subscribe(
                &mut ws,
                &format!("k{k}"),
                &format!("SELECT * FROM bench.fan WHERE k = {k}"),
                false,
            )
            .await?;
            connect_latencies.push(t.elapsed());
        }
        let seen = seen.clone();
        readers.push(tokio::spawn(async move {
            while let Ok(message) = next_json(&mut ws).await {
                let at = Instant::now();
                if message["type"] == "change" {
                    let id = message["subscription_id"].as_str().unwrap_or_default();
                    let k: usize = id.trim_start_matches('k').parse().unwrap_or(usize::MAX);
                    let _ = seen.send((k, at));
                }
            }
        }));
        progress("ramp", range.end, total);
    }
    let ramp = Report::new(
        "ramp_subscriptions",
        connect_latencies,
        started.elapsed(),
        total,
    );
    let live = bench.metric("quiver_live_subscriptions").await?;
    ensure!(
        live as usize >= total,
        "server counts {live} subscriptions, expected {total}"
    );
    let rss_after = bench.metric("process_resident_memory_bytes").await?;
    let per_connection = (rss_connected - rss_start).max(0.0) / connections as f64;
    let per_subscription = (rss_after - rss_connected).max(0.0) / total as f64;
    let per_idle = (rss_after - rss_start).max(0.0) / total as f64;
    let ramp = ramp.note(format!(
        "{total} subscriptions over {connections} connections, latency per subscribe; \
         server RSS {:.0} MiB: {:.0} bytes per connection, {per_subscription:.0} bytes \
         per subscription, {per_idle:.0} bytes per subscription with its share of the connection",
        rss_after / (1u64 << 20) as f64,
        per_connection,
    ));
    let ramp = if total >= 100_000 {
        let gib = rss_after / (1u64 << 30) as f64;
        ramp.target(
            "100,000 subscriptions within 4 GiB RSS, <= 2 KiB per idle subscription",
            gib <= 4.0 && per_idle <= 2048.0,
        )
    } else {
        ramp
    };

    let inserts = bench.size(100, 1000);
    let mut latencies = Vec::with_capacity(inserts);
    let fan_started = Instant::now();
    let mut counts: HashMap<usize, usize> = HashMap::new();
    for i in 0..inserts {
        let k = (i * 7919) % total;
        let t = Instant::now();
        bench
            .sql(
                "INSERT INTO bench.fan (id, k, body) VALUES ($1, $2, 'f')",
                &[json!(i), json!(k)],
            )
            .await?;
        let (who, at) = tokio::time::timeout(Duration::from_secs(10), notifications.recv())
            .await
            .context("no notification within 10 s")?
            .context("readers ended")?;
        ensure!(who == k, "row for k = {k} reached subscription k{who}");
        *counts.entry(who).or_default() += 1;
        latencies.push(at - t);
        progress("fan_out", i + 1, inserts);
    }
    // Nothing else may arrive.
    let extra = tokio::time::timeout(Duration::from_millis(500), notifications.recv()).await;
    ensure!(extra.is_err(), "an unexpected notification: {extra:?}");
    let fan = Report::new(
        &format!("insert_to_notification_at_{total}_subscriptions"),
        latencies,
        fan_started.elapsed(),
        inserts,
    )
    .note("each row matches exactly one subscription; checked that only it was told");
    let met = fan.p99_ms <= 5.0;
    let fan = fan.target("p99 <= 5 ms", met);

    // Then writes that together match every subscription: multi-row
    // INSERTs with one row for each filter value, timed from each
    // statement's send to each of its notifications.
    const CHUNK: usize = 1000;
    let all_started = Instant::now();
    let mut sent = Vec::with_capacity(total.div_ceil(CHUNK));
    for (c, first) in (0..total).step_by(CHUNK).enumerate() {
        let rows: Vec<String> = (first..(first + CHUNK).min(total))
            .map(|k| format!("({}, {k}, 'all')", inserts + k))
            .collect();
        sent.push(Instant::now());
        bench
            .sql(
                &format!(
                    "INSERT INTO bench.fan (id, k, body) VALUES {}",
                    rows.join(", ")
                ),
                &[],
            )
            .await?;
        progress("fan_out_all", ((c + 1) * CHUNK).min(total), total);
    }
    let mut told = vec![false; total];
    let mut all_latencies = Vec::with_capacity(total);
    while all_latencies.len() < total {
        let (who, at) = tokio::time::timeout(Duration::from_secs(30), notifications.recv())
            .await
            .with_context(|| {
                format!(
                    "{} of {total} subscriptions told within 30 s",
                    all_latencies.len()
                )
            })?
            .context("readers ended")?;
        ensure!(
            who < total && !told[who],
            "subscription k{who} told twice or unknown"
        );
        told[who] = true;
        all_latencies.push(at - sent[who / CHUNK]);
    }
    let extra = tokio::time::timeout(Duration::from_millis(500), notifications.recv()).await;
    ensure!(extra.is_err(), "an unexpected notification: {extra:?}");
    for reader in readers {
        reader.abort();
    }
    let all = Report::new(
        &format!("inserts_matching_all_{total}_subscriptions"),
        all_latencies,
        all_started.elapsed(),
        total,
    )
    .unit("notifications/s")
    .note(format!(
        "{}-row INSERTs, one row per subscription; each told exactly once; latency from its statement's send",
        CHUNK.min(total)
    ));
    Ok(vec![ramp, fan, all])
}

/// Single-row INSERTs into a table, one every 2 ms, while another client
/// subscribes to all of its rows, again and again: what reading a large
/// snapshot costs the table's writers. The rows are flushed first, so
/// that no flush of them runs meanwhile. Reports the INSERTs' latencies
/// (with the slowest) and the snapshots'.
pub(crate) async fn writes_during_snapshots(bench: &Bench) -> anyhow::Result<Vec<Report>> {
    let rows = bench.size(50_000, 500_000);
    bench
        .sql(
            &format!(
                "DROP TABLE IF EXISTS bench.big; \
                 CREATE TABLE bench.big (id BIGINT PRIMARY KEY, body TEXT); \
                 INSERT INTO bench.big SELECT value, 'row ' || value \
                 FROM generate_series(1, {rows}); \
                 STORAGE FLUSH TABLE bench.big"
            ),
            &[],
        )
        .await?;
    // The first write after the flush reads the segment's key index
    // from disk; it is not what is measured here.
    bench
        .sql(
            "INSERT INTO bench.big (id, body) VALUES ($1, 'warm')",
            &[json!(rows + 1)],
        )
        .await?;
    let snapshots = bench.size(5, 10);
    let stop = AtomicBool::new(false);
    let writer = async {
        let mut latencies = Vec::new();
        let mut id = rows + 2;
        while !stop.load(Ordering::Relaxed) {
            let t = Instant::now();
            // Literal, so that it is answered on the thread that reads
            // it, not behind the snapshot's query on the query runtime:
            // what is left to wait for is the table's writers.
            bench
                .sql(
                    &format!("INSERT INTO bench.big (id, body) VALUES ({id}, 'new')"),
                    &[],
                )
                .await?;
            latencies.push(t.elapsed());
            id += 1;
            // Paced, so that the changes held back while a snapshot is
            // paged out stay within the connection's queue.
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        anyhow::Ok(latencies)
    };
    let subscriber = async {
        let outcome = async {
            let mut ws = bench.connect().await?;
            let mut latencies = Vec::with_capacity(snapshots);
            for i in 0..snapshots {
                let id = format!("big{i}");
                let t = Instant::now();
                let subscribe = json!({"type": "subscribe", "subscription": {
                    "id": id, "sql": "SELECT * FROM bench.big",
                    "options": {"batch_size": 100_000},
                }});
                ws.send(Message::text(subscribe.to_string())).await?;
                let held = read_snapshot(&mut ws, &id).await?.len();
                latencies.push(t.elapsed());
                ensure!(
                    held >= rows,
                    "a snapshot of {held} rows, expected {rows} or more"
                );
                let end = json!({"type": "unsubscribe", "subscription_id": id});
                ws.send(Message::text(end.to_string())).await?;
                progress("writes_during_snapshots", i + 1, snapshots);
            }
            anyhow::Ok(latencies)
        }
        .await;
        stop.store(true, Ordering::Relaxed);
        outcome
    };
    let started = Instant::now();
    let (writes, snapshots_taken) = tokio::join!(writer, subscriber);
    let wall = started.elapsed();
    let (writes, snapshots_taken) = (writes?, snapshots_taken?);
    let slowest = writes.iter().max().copied().unwrap_or_default();
    let stalled = writes
        .iter()
        .filter(|w| **w > Duration::from_millis(50))
        .count();
    let count = writes.len();
    Ok(vec![
        Report::new("insert_during_large_snapshots", writes, wall, count).note(format!(
            "single-row INSERTs into a {rows}-row table while another client reads \
             {snapshots} full snapshots of it; slowest {:.1} ms, {stalled} over 50 ms",
            slowest.as_secs_f64() * 1000.0
        )),
        Report::new("large_snapshot", snapshots_taken, wall, snapshots).note(format!(
            "subscribe to the last row of a {rows}-row snapshot, INSERTs running"
        )),
    ])
}
