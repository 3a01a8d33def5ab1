//! `--soak <seconds>`: a mixed workload held for a while. Writers insert,
//! update and delete (with `--soak-rows`, inserting only while the table
//! is below that size); readers select; subscribers on every key count what
//! they are told; connections come and go; flushes and compactions run.
//! At the end every subscriber must have been told each acknowledged
//! change of its key exactly once, no request may have failed, and the
//! server's memory must not have kept growing after the warm-up.
//!
//! With `--kill-every <seconds>` the tool owns the node and kills it with
//! SIGKILL that often, mid-load, then starts it again. A request cut off
//! by a kill is in doubt (it may or may not have been applied); every
//! other must succeed. After each restart, with writes held back, the
//! table must hold every acknowledged write with its latest value and no
//! acknowledged delete, in-doubt writes either applied or not, and a new
//! subscription per key must load exactly those rows. Subscriptions do
//! not outlive a kill, so in this mode they are checked by those
//! snapshots rather than by counting notifications.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use tokio::sync::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::live::{next_json, subscribe};
use crate::node::Node;
use crate::{Bench, Report, Socket};

/// Keys the rows spread over; one subscriber each.
const KEYS: i64 = 4;

/// Per row id, the kinds of change in the order they happened.
type History = BTreeMap<i64, Vec<String>>;

/// A write whose request a kill cut off: applied or not, nobody knows.
#[derive(Debug, Clone, Copy)]
enum Doubt {
    Insert { k: i64 },
    Update,
    Delete,
}

/// Acknowledged writes. Each writer owns its row ids, so the order of the
/// changes of one row is the order of their acknowledgements.
#[derive(Default)]
struct Ledger {
    /// Per key: what its subscriber must be told.
    expected: BTreeMap<i64, History>,
    /// Live rows: id -> (key, value).
    live: BTreeMap<i64, (i64, i64)>,
    /// Writes a kill cut off, until a check after the restart settles
    /// them. Their rows are nobody's to write again.
    doubts: BTreeMap<i64, Doubt>,
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

    /// Settles the writes in doubt against the table's rows `actual`
    /// (id -> (key, value)), then requires the table to hold exactly the
    /// live rows.
    fn check(&mut self, actual: &BTreeMap<i64, (i64, i64)>) -> anyhow::Result<()> {
        for (id, doubt) in std::mem::take(&mut self.doubts) {
            let found = actual.get(&id).copied();
            match doubt {
                Doubt::Insert { k } => match found {
                    Some(row) if row == (k, 0) => {
                        self.live.insert(id, row);
                    }
                    Some(row) => bail!("row {id} was inserted as ({k}, 0) but holds {row:?}"),
                    None => {}
                },
                Doubt::Update => {
                    let (k, v) = self.live[&id];
                    match found {
                        Some((k2, v2)) if k2 == k && (v2 == v || v2 == v + 1) => {
                            self.live.insert(id, (k, v2));
                        }
                        other => bail!("row {id} at ({k}, {v}) before an update holds {other:?}"),
                    }
                }
                Doubt::Delete => match found {
                    None => {
                        self.live.remove(&id);
                    }
                    Some(row) if row == self.live[&id] => {}
                    Some(row) => bail!(
                        "row {id} at {:?} before a delete holds {row:?}",
                        self.live[&id]
                    ),
                },
            }
        }
        if let Some((id, row)) = self
            .live
            .iter()
            .find(|(id, row)| actual.get(id) != Some(row))
        {
            bail!(
                "acknowledged row {id} {row:?} is {:?} after the restart",
                actual.get(id)
            );
        }
        if let Some((id, row)) = actual.iter().find(|(id, _)| !self.live.contains_key(id)) {
            bail!("row {id} {row:?} is back, or was never acknowledged");
        }
        Ok(())
    }
}

/// Requests made, failed, and cut off by a kill.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    failed: AtomicU64,
    in_doubt: AtomicU64,
}

/// Kills under way: requests wait at `gate` while the node restarts and
/// is checked, and a request that fails while `down` is set, or across a
/// kill (`kills` changed), was cut off rather than failed.
#[derive(Default)]
struct Kills {
    gate: RwLock<()>,
    down: AtomicBool,
    kills: AtomicU64,
}

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Done,
    Failed,
    CutOff,
}

impl Counts {
    fn note(&self, outcome: Outcome) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match outcome {
            Outcome::Done => {}
            Outcome::Failed => {
                self.failed.fetch_add(1, Ordering::Relaxed);
            }
            Outcome::CutOff => {
                self.in_doubt.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl Kills {
    /// Runs one request and tells how it ended. Callers hold the gate
    /// (`gate.read()`) across the request and what they record of it.
    async fn request<T>(
        &self,
        counts: &Counts,
        request: impl Future<Output = anyhow::Result<T>>,
    ) -> Outcome {
        let kills = self.kills.load(Ordering::SeqCst);
        let ok = request.await.is_ok();
        let outcome = if ok {
            Outcome::Done
        } else if self.down.load(Ordering::SeqCst) || self.kills.load(Ordering::SeqCst) != kills {
            Outcome::CutOff
        } else {
            Outcome::Failed
        };
        counts.note(outcome);
        outcome
    }
}

/// Every row of the soak table: id -> (key, value).
async fn table_rows(bench: &Bench) -> anyhow::Result<BTreeMap<i64, (i64, i64)>> {
    let body = bench.sql("SELECT id, k, v FROM bench.soak", &[]).await?;
    let rows = body["results"][0]["rows"]
        .as_array()
        .context("rows in the answer")?;
    let number = |v: &Value| match v {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    };
    rows.iter()
        .map(|row| {
            let cell = |i: usize| number(&row[i]).with_context(|| format!("row {row}"));
            Ok((cell(0)?, (cell(1)?, cell(2)?)))
        })
        .collect()
}

/// The ids a new subscription to key `k` loads.
async fn snapshot_ids(ws: &mut Socket, k: i64) -> anyhow::Result<BTreeSet<i64>> {
    let sql = format!("SELECT * FROM bench.soak WHERE k = {k}");
    subscribe(ws, &format!("check{k}"), &sql, true)
        .await?
        .iter()
        .map(|row| value_id(row).context("a row id"))
        .collect()
}

/// With writes held back: the table against the ledger, then a new
/// subscription per key against the table.
async fn check_after_restart(bench: &Bench, ledger: &Mutex<Ledger>) -> anyhow::Result<()> {
    let actual = table_rows(bench).await?;
    ledger.lock().await.check(&actual)?;
    let mut ws = bench.connect().await?;
    for k in 0..KEYS {
        let wanted: BTreeSet<i64> = actual
            .iter()
            .filter(|(_, (key, _))| *key == k)
            .map(|(id, _)| *id)
            .collect();
        let loaded = snapshot_ids(&mut ws, k).await?;
        ensure!(
            loaded == wanted,
            "a subscription to k = {k} loaded {} rows, the table holds {}",
            loaded.len(),
            wanted.len()
        );
    }
    let _ = ws.close(None).await;
    Ok(())
}

fn value_id(row: &Value) -> Option<i64> {
    match &row["id"] {
        Value::String(s) => s.parse().ok(),
        Value::Number(n) => n.as_i64(),
        _ => None,
    }
}

/// Kills during a soak: the node the tool owns, and how often.
pub(crate) struct Killer {
    pub(crate) node: Node,
    pub(crate) every: Duration,
}

pub(crate) async fn run(
    bench: &Arc<Bench>,
    seconds: u64,
    max_rows: usize,
    mut killer: Option<Killer>,
) -> anyhow::Result<Report> {
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
    let kills = Arc::new(Kills::default());
    let ledger = Arc::new(Mutex::new(Ledger::default()));

    // One subscriber per key, unless kills cut them off; what each was
    // told.
    let mut told = Vec::new();
    for k in (0..KEYS).filter(|_| killer.is_none()) {
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
    const WRITERS: i64 = 2;
    let max_mine = max_rows.div_ceil(WRITERS as usize);
    for w in 0..WRITERS {
        let (bench, stop, ledger, counts, kills) = (
            bench.clone(),
            stop.clone(),
            ledger.clone(),
            counts.clone(),
            kills.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut next = w;
            let full = |mine: &Vec<i64>| max_mine > 0 && mine.len() >= max_mine;
            let mut mine: Vec<i64> = Vec::new();
            let mut rng = 0x9e3779b97f4a7c15u64 ^ w as u64;
            while !stop.is_cancelled() {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let choice = rng % 10;
                let _pass = kills.gate.read().await;
                if mine.is_empty() || (choice < 6 && !full(&mine)) {
                    let id = next;
                    next += WRITERS;
                    let k = id % KEYS;
                    let outcome = kills
                        .request(
                            &counts,
                            bench.sql(
                                "INSERT INTO bench.soak VALUES ($1, $2, 0)",
                                &[json!(id), json!(k)],
                            ),
                        )
                        .await;
                    let mut l = ledger.lock().await;
                    match outcome {
                        Outcome::Done => {
                            l.record(k, id, "insert");
                            l.live.insert(id, (k, 0));
                            mine.push(id);
                        }
                        Outcome::CutOff => {
                            l.doubts.insert(id, Doubt::Insert { k });
                        }
                        Outcome::Failed => {}
                    }
                } else if (6..9).contains(&choice) {
                    let at = (rng as usize / 16) % mine.len();
                    let id = mine[at];
                    let outcome = kills
                        .request(
                            &counts,
                            bench.sql(
                                "UPDATE bench.soak SET v = v + 1 WHERE id = $1",
                                &[json!(id)],
                            ),
                        )
                        .await;
                    let mut l = ledger.lock().await;
                    match outcome {
                        Outcome::Done => {
                            let row = l.live.get_mut(&id).expect("a live row");
                            row.1 += 1;
                            let k = row.0;
                            l.record(k, id, "update");
                        }
                        Outcome::CutOff => {
                            l.doubts.insert(id, Doubt::Update);
                            mine.swap_remove(at);
                        }
                        Outcome::Failed => {}
                    }
                } else {
                    let id = mine.swap_remove((rng as usize / 16) % mine.len());
                    let outcome = kills
                        .request(
                            &counts,
                            bench.sql("DELETE FROM bench.soak WHERE id = $1", &[json!(id)]),
                        )
                        .await;
                    let mut l = ledger.lock().await;
                    match outcome {
                        Outcome::Done => {
                            let (k, _) = l.live.remove(&id).expect("a live row");
                            l.record(k, id, "delete");
                        }
                        Outcome::CutOff => {
                            l.doubts.insert(id, Doubt::Delete);
                        }
                        Outcome::Failed => {}
                    }
                }
            }
        }));
    }
    // A reader.
    {
        let (bench, stop, counts, kills) =
            (bench.clone(), stop.clone(), counts.clone(), kills.clone());
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
                let _pass = kills.gate.read().await;
                kills.request(&counts, bench.sql(sql, &params)).await;
            }
        }));
    }
    // Flushes, compactions, and connections that come and go.
    {
        let (bench, stop, counts, kills) =
            (bench.clone(), stop.clone(), counts.clone(), kills.clone());
        tasks.push(tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.is_cancelled() {
                i += 1;
                let sql = if i.is_multiple_of(3) {
                    "STORAGE COMPACT TABLE bench.soak"
                } else {
                    "STORAGE FLUSH TABLE bench.soak"
                };
                let pass = kills.gate.read().await;
                kills.request(&counts, bench.sql(sql, &[])).await;
                drop(pass);
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
                let pass = kills.gate.read().await;
                kills.request(&counts, churn).await;
                drop(pass);
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
    let (rss_warm, parts_warm) = memory(bench).await?;
    let mut rss_peak = rss_warm;
    // (seconds into the run, resident bytes), once a second after the
    // warm-up: the trend of the run's second half.
    let mut rss_samples: Vec<(f64, f64)> = Vec::new();
    let mut restarts: Vec<Duration> = Vec::new();
    let mut last_kill = Instant::now();
    while started.elapsed() < total {
        tokio::time::sleep(Duration::from_secs(1).min(total.saturating_sub(started.elapsed())))
            .await;
        if let Some(killer) = killer.as_mut()
            && last_kill.elapsed() >= killer.every
            && started.elapsed() < total
        {
            // Mid-load: requests in flight are cut off; new ones wait at
            // the gate until the node is back and checked.
            kills.down.store(true, Ordering::SeqCst);
            kills.kills.fetch_add(1, Ordering::SeqCst);
            killer.node.kill()?;
            let _gate = kills.gate.write().await;
            let restarted = killer.node.restart(&bench.http).await?;
            check_after_restart(bench, &ledger)
                .await
                .with_context(|| format!("after kill {}", restarts.len() + 1))?;
            kills.down.store(false, Ordering::SeqCst);
            restarts.push(restarted);
            last_kill = Instant::now();
            continue;
        }
        let rss = bench.metric("process_resident_memory_bytes").await?;
        rss_peak = rss_peak.max(rss);
        rss_samples.push((started.elapsed().as_secs_f64(), rss));
        let killed = match killer {
            Some(_) => format!(", {} kills", restarts.len()),
            None => String::new(),
        };
        eprint!(
            "\r  soak: {:>4}/{seconds} s, {} requests{killed}   ",
            started.elapsed().as_secs(),
            counts.requests.load(Ordering::Relaxed),
        );
    }
    eprintln!();
    stop.cancel();
    for task in tasks {
        task.await?;
    }
    drained.cancel();
    let (rss_end, parts_end) = memory(bench).await?;
    let mut seen_all = Vec::new();
    for subscriber in told {
        seen_all.push(subscriber.await??);
    }

    let failed = counts.failed.load(Ordering::Relaxed);
    let requests = counts.requests.load(Ordering::Relaxed);
    let in_doubt = counts.in_doubt.load(Ordering::Relaxed);
    ensure!(failed == 0, "{failed} of {requests} requests failed");
    let mib = |b: f64| b / (1u64 << 20) as f64;
    if let Some(killer) = &killer {
        check_after_restart(bench, &ledger)
            .await
            .context("at the end")?;
        let kills = restarts.len();
        ensure!(
            kills > 0,
            "no kill in {seconds} s (one every {:?})",
            killer.every
        );
        let slowest = restarts.iter().max().copied().unwrap_or_default();
        let live = ledger.lock().await.live.len();
        return Ok(
            Report::new("soak_with_kills", restarts, started.elapsed(), requests as usize)
                .note(format!(
                    "{seconds} s mixed load, SIGKILL every {} s: {kills} kills, restarts p50 in the \
                     latency columns (slowest {:.0} ms); {requests} requests, 0 failed, {in_doubt} cut \
                     off by a kill; after every restart all {live} acknowledged rows (at the end) \
                     present with their latest values, no deleted row back, and each key's \
                     new subscription loading exactly the table's rows",
                    killer.every.as_secs(),
                    slowest.as_secs_f64() * 1000.0
                ))
                .unit("requests/s"),
        );
    }
    ensure!(in_doubt == 0, "{in_doubt} requests cut off with no kill");
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
    // Flat: after the warm-up, growth stays within a quarter plus 64 MiB
    // (memtables fill between flushes).
    let flat = rss_end <= rss_warm * 1.25 + 64.0 * (1u64 << 20) as f64;
    let half = total.as_secs_f64() / 2.0;
    let second_half: Vec<(f64, f64)> = rss_samples
        .into_iter()
        .filter(|(at, _)| *at >= half)
        .collect();
    let trend = match slope(&second_half) {
        Some(per_second) => format!(
            ", {:+.1} MiB a minute over the second half",
            mib(per_second * 60.0)
        ),
        None => String::new(),
    };
    ensure!(
        flat,
        "server memory grew from {:.0} MiB after the warm-up ({parts_warm}) to {:.0} MiB \
         ({parts_end})",
        mib(rss_warm),
        mib(rss_end)
    );
    Ok(Report::new("soak", Vec::new(), started.elapsed(), requests as usize)
        .note(format!(
            "{seconds} s mixed load: {requests} requests, 0 failed; {notifications} notifications, \
             none lost or duplicated; RSS {:.0} MiB after warm-up ({parts_warm}), {:.0} MiB peak, \
             {:.0} MiB at the end ({parts_end}){trend}",
            mib(rss_warm),
            mib(rss_peak),
            mib(rss_end)
        ))
        .unit("requests/s"))
}

/// The least-squares slope of `y` over `x`, or `None` for fewer than two
/// distinct `x`.
fn slope(points: &[(f64, f64)]) -> Option<f64> {
    if points.len() < 2 {
        return None;
    }
    let n = points.len() as f64;
    let mean_x = points.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = points.iter().map(|(_, y)| y).sum::<f64>() / n;
    let covariance: f64 = points
        .iter()
        .map(|(x, y)| (x - mean_x) * (y - mean_y))
        .sum();
    let variance: f64 = points.iter().map(|(x, _)| (x - mean_x).powi(2)).sum();
    (variance > 0.0).then(|| covariance / variance)
}

/// The server's resident bytes, and its caches and buffers as it reports
/// them (in MiB), from one scrape.
async fn memory(bench: &Bench) -> anyhow::Result<(f64, String)> {
    const PARTS: [(&str, &str); 4] = [
        ("quiver_memtable_bytes", "memtables"),
        ("quiver_block_cache_bytes", "block cache"),
        ("quiver_table_reader_bytes", "table readers"),
        ("quiver_page_cache_bytes", "page cache"),
    ];
    let mut names = vec!["process_resident_memory_bytes"];
    names.extend(PARTS.map(|(name, _)| name));
    let values = bench.metrics(&names).await?;
    let parts: Vec<String> = PARTS
        .iter()
        .zip(&values[1..])
        .map(|((_, label), bytes)| format!("{label} {:.0}", bytes / (1u64 << 20) as f64))
        .collect();
    Ok((values[0], format!("{} MiB", parts.join(", "))))
}

#[cfg(test)]
mod tests {
    use super::slope;

    #[test]
    fn slope_is_the_trend_of_noisy_samples() {
        let line: Vec<(f64, f64)> = (0..60)
            .map(|t| {
                let t = t as f64;
                let noise = if t as i64 % 2 == 0 { 3.0 } else { -3.0 };
                (t, 100.0 + 0.5 * t + noise)
            })
            .collect();
        let fitted = slope(&line).unwrap();
        assert!((fitted - 0.5).abs() < 0.01, "slope {fitted}");
        let flat: Vec<(f64, f64)> = (0..10).map(|t| (t as f64, 7.0)).collect();
        assert_eq!(slope(&flat), Some(0.0));
        assert_eq!(slope(&[(1.0, 5.0)]), None);
        assert_eq!(slope(&[(1.0, 5.0), (1.0, 6.0)]), None);
    }
}
