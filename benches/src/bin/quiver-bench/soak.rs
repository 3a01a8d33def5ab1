//! `--soak <seconds>`: a mixed workload held for a while. Writers insert,
//! update and delete; readers select; subscribers on every key count what
//! they are told; connections come and go; flushes and compactions run.
//! At the end every subscriber must have been told each acknowledged
//! change of its key exactly once, no request may have failed, and the
//! server's memory must not have kept growing after the warm-up.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::{Bench, Report, next_json, subscribe};

/// Keys the rows spread over; one subscriber each.
const KEYS: i64 = 4;

/// Per row id, the kinds of change in the order they happened.
type History = BTreeMap<i64, Vec<String>>;

/// Acknowledged writes. Each writer owns its row ids, so the order of the
/// changes of one row is the order of their acknowledgements.
#[derive(Default)]
struct Ledger {
    /// Per key: what its subscriber must be told.
    expected: BTreeMap<i64, History>,
    /// Live rows: id -> key.
    live: BTreeMap<i64, i64>,
}

impl Ledger {
    fn record(&mut self, k: i64, id: i64, kind: &str) {
        self.expected
            .entry(k)
            .or_default()
            .entry(id)
            .or_default()
            .push(kind.to_string());
    }
}

/// Requests made and failed.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    failed: AtomicU64,
}

impl Counts {
    fn note(&self, ok: bool) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if !ok {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn value_id(row: &Value) -> Option<i64> {
    match &row["id"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

pub(crate) async fn run(bench: &Arc<Bench>, seconds: u64) -> anyhow::Result<Report> {
    bench
        .sql(
            "CREATE NAMESPACE IF NOT EXISTS bench; DROP TABLE IF EXISTS bench.soak; \
             CREATE TABLE bench.soak (id BIGINT PRIMARY KEY, k BIGINT, v BIGINT)",
            &[],
        )
        .await?;
    let stop = CancellationToken::new();
    // Subscribers stop after every writer has finished.
    let drained = CancellationToken::new();
    let counts = Arc::new(Counts::default());
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // One subscriber per key; what each was told.
    let mut told = Vec::new();
    for k in 0..KEYS {
        let mut ws = bench.connect().await?;
        let id = format!("soak{k}");
        subscribe(
            &mut ws,
            &id,
            &format!("SELECT * FROM bench.soak WHERE k = {k}"),
            false,
        )
        .await?;
        let drained = drained.clone();
        told.push(tokio::spawn(async move {
            let mut seen = History::new();
            let mut count = 0usize;
            let mut note = |message: &Value| -> anyhow::Result<()> {
                if message["type"] != "change" {
                    anyhow::bail!("subscriber {k} got {message}");
                }
                let kind = message["change_type"].as_str().unwrap_or_default();
                let rows = if kind == "delete" {
                    &message["old_values"]
                } else {
                    &message["rows"]
                };
                for row in rows.as_array().into_iter().flatten() {
                    let id = value_id(row).context("a row id")?;
                    seen.entry(id).or_default().push(kind.to_string());
                    count += 1;
                }
                Ok(())
            };
            loop {
                let message = tokio::select! {
                    _ = drained.cancelled() => break,
                    message = next_json(&mut ws) => message?,
                };
                note(&message)?;
            }
            // What was sent before the last write was acknowledged.
            while let Ok(message) =
                tokio::time::timeout(Duration::from_secs(2), next_json(&mut ws)).await
            {
                note(&message?)?;
            }
            anyhow::Ok((seen, count))
        }));
    }

    let mut tasks = Vec::new();
    // Writers: each owns its ids, so the ledger order per row is exact.
    for w in 0..2i64 {
        let (bench, stop, ledger, counts) =
            (bench.clone(), stop.clone(), ledger.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut next = w;
            let mut mine: Vec<i64> = Vec::new();
            let mut rng = 0x9e3779b97f4a7c15u64 ^ w as u64;
            while !stop.is_cancelled() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let choice = rng % 10;
                if choice < 6 || mine.is_empty() {
                    let id = next;
                    next += 2;
                    let k = id % KEYS;
                    let ok = bench
                        .sql(
                            "INSERT INTO bench.soak VALUES ($1, $2, 0)",
                            &[json!(id), json!(k)],
                        )
                        .await
                        .is_ok();
                    counts.note(ok);
                    if ok {
                        let mut l = ledger.lock().await;
                        l.record(k, id, "insert");
                        l.live.insert(id, k);
                        mine.push(id);
                    }
                } else if choice < 9 {
                    let id = mine[(rng as usize / 16) % mine.len()];
                    let ok = bench
                        .sql(
                            "UPDATE bench.soak SET v = v + 1 WHERE id = $1",
                            &[json!(id)],
                        )
                        .await
                        .is_ok();
                    counts.note(ok);
                    if ok {
                        let mut l = ledger.lock().await;
                        let k = l.live[&id];
                        l.record(k, id, "update");
                    }
                } else {
                    let id = mine.swap_remove((rng as usize / 16) % mine.len());
                    let ok = bench
                        .sql("DELETE FROM bench.soak WHERE id = $1", &[json!(id)])
                        .await
                        .is_ok();
                    counts.note(ok);
                    if ok {
                        let mut l = ledger.lock().await;
                        let k = l.live.remove(&id).expect("a live row");
                        l.record(k, id, "delete");
                    }
                }
            }
        }));
    }
    // A reader.
    {
        let (bench, stop, counts) = (bench.clone(), stop.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0i64;
            while !stop.is_cancelled() {
                i += 1;
                let sql = if i % 10 == 0 {
                    "SELECT k, count(*), sum(v) FROM bench.soak GROUP BY k"
                } else {
                    "SELECT * FROM bench.soak WHERE id = $1"
                };
                let params = if i % 10 == 0 {
                    vec![]
                } else {
                    vec![json!(i % 1000)]
                };
                let ok = bench.sql(sql, &params).await.is_ok();
                counts.note(ok);
            }
        }));
    }
    // Flushes, compactions, and connections that come and go.
    {
        let (bench, stop, counts) = (bench.clone(), stop.clone(), counts.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.is_cancelled() {
                i += 1;
                let sql = if i.is_multiple_of(3) {
                    "STORAGE COMPACT TABLE bench.soak"
                } else {
                    "STORAGE FLUSH TABLE bench.soak"
                };
                let ok = bench.sql(sql, &[]).await.is_ok();
                counts.note(ok);
                // A connection that subscribes and drops away.
                let churn = async {
                    let mut ws = bench.connect().await?;
                    subscribe(
                        &mut ws,
                        "churn",
                        "SELECT * FROM bench.soak WHERE k = 1",
                        true,
                    )
                    .await?;
                    ws.close(None).await?;
                    anyhow::Ok(())
                };
                counts.note(churn.await.is_ok());
                tokio::select! {
                    _ = stop.cancelled() => {}
                    _ = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        }));
    }

    let started = Instant::now();
    let total = Duration::from_secs(seconds);
    let warm_up = total / 5;
    tokio::time::sleep(warm_up).await;
    let rss_warm = bench.metric("process_resident_memory_bytes").await?;
    let mut rss_peak = rss_warm;
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(1).min(total.saturating_sub(started.elapsed())))
            .await;
        let rss = bench.metric("process_resident_memory_bytes").await?;
        rss_peak = rss_peak.max(rss);
        eprint!(
            "\r  soak: {:>4}/{seconds} s, {} requests   ",
            started.elapsed().as_secs(),
            counts.requests.load(Ordering::Relaxed)
        );
    }
    eprintln!();
    stop.cancel();
    for task in tasks {
        task.await?;
    }
    drained.cancel();
    let rss_end = bench.metric("process_resident_memory_bytes").await?;
    let mut seen_all = Vec::new();
    for subscriber in told {
        seen_all.push(subscriber.await??);
    }

    let failed = counts.failed.load(Ordering::Relaxed);
    let requests = counts.requests.load(Ordering::Relaxed);
    ensure!(failed == 0, "{failed} of {requests} requests failed");
    let ledger = ledger.lock().await;
    let mut notifications = 0;
    for (k, (seen, count)) in seen_all.into_iter().enumerate() {
        let k = k as i64;
        let expected = ledger.expected.get(&k).cloned().unwrap_or_default();
        notifications += count;
        let wanted: usize = expected.values().map(Vec::len).sum();
        if let Some((id, kinds)) = expected
            .iter()
            .find(|(id, kinds)| seen.get(id) != Some(kinds))
        {
            anyhow::bail!(
                "subscriber {k}: row {id} changed {kinds:?} but was told {:?} ({count} notifications, {wanted} expected)",
                seen.get(id)
            );
        }
        if let Some((id, kinds)) = seen.iter().find(|(id, _)| !expected.contains_key(id)) {
            anyhow::bail!("subscriber {k}: told {kinds:?} of row {id}, which it never had");
        }
    }
    let mib = |b: f64| b / (1u64 << 20) as f64;
    // Flat: after the warm-up, growth stays within a quarter plus 64 MiB
    // (memtables fill between flushes).
    let flat = rss_end <= rss_warm * 1.25 + 64.0 * (1u64 << 20) as f64;
    ensure!(
        flat,
        "server memory grew from {:.0} MiB after the warm-up to {:.0} MiB",
        mib(rss_warm),
        mib(rss_end)
    );
    Ok(Report::new("soak", Vec::new(), started.elapsed(), requests as usize)
        .note(format!(
            "{seconds} s mixed load: {requests} requests, 0 failed; {notifications} notifications, \
             none lost or duplicated; RSS {:.0} MiB after warm-up, {:.0} MiB peak, {:.0} MiB at the end",
            mib(rss_warm),
            mib(rss_peak),
            mib(rss_end)
        ))
        .unit("requests/s"))
}
