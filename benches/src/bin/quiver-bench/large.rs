//! Large results over HTTP: how soon the first bytes of a 100,000-row
//! answer arrive against when its last one does, and the server's memory
//! while it sends a multi-million-row answer to a client that reads it as
//! it comes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::ensure;
use serde_json::json;

use crate::{Bench, Report};

/// What one large answer cost the client.
struct Download {
    first_byte: Duration,
    total: Duration,
    bytes: usize,
}

/// Sends `sql` and reads the answer chunk by chunk, keeping only its end
/// (to check it is a success).
async fn download(bench: &Bench, sql: &str) -> anyhow::Result<Download> {
    let started = Instant::now();
    let mut response = bench
        .http
        .post(format!("{}/v1/api/sql", bench.url))
        .bearer_auth(&bench.token)
        .json(&json!({ "sql": sql }))
        .send()
        .await?;
    let status = response.status();
    let mut first_byte = None;
    let mut bytes = 0;
    let mut tail: Vec<u8> = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len();
        tail.extend_from_slice(&chunk);
        if tail.len() > 4096 {
            tail.drain(..tail.len() - 1024);
        }
    }
    let total = started.elapsed();
    let end = String::from_utf8_lossy(&tail);
    ensure!(
        status == 200 && end.ends_with("\"status\":\"success\"}"),
        "{sql}: {status} ...{end}"
    );
    Ok(Download {
        first_byte: first_byte.unwrap_or(total),
        total,
        bytes,
    })
}

fn rows_sql(rows: usize) -> String {
    format!("SELECT value AS id, value * 2 AS twice, 'row ' || value AS label FROM range({rows})")
}

/// Time to the first byte and to the last of a 100,000-row answer.
pub(crate) async fn first_bytes(bench: &Bench) -> anyhow::Result<Report> {
    let n = bench.size(3, 10);
    let sql = rows_sql(100_000);
    let mut first = Vec::with_capacity(n);
    let mut totals = Vec::with_capacity(n);
    let started = Instant::now();
    let mut bytes = 0;
    for _ in 0..n {
        let download = download(bench, &sql).await?;
        first.push(download.first_byte);
        totals.push(download.total);
        bytes = download.bytes;
    }
    let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
    let median = |values: &mut Vec<Duration>| {
        values.sort_unstable();
        values[values.len() / 2]
    };
    let first_p50 = median(&mut first);
    let total_p50 = median(&mut totals);
    let met = first_p50 * 4 < total_p50;
    Ok(
        Report::new("result_100k_rows", totals, started.elapsed(), n * 100_000)
            .unit("rows/s")
            .target("first byte before a quarter of the whole", met)
            .note(format!(
                "first byte p50 {:.1} ms, last byte p50 {:.1} ms, {} bytes",
                ms(&first_p50),
                ms(&total_p50),
                bytes
            )),
    )
}

/// The server's resident memory while it answers with `rows` rows.
pub(crate) async fn memory(bench: &Arc<Bench>, rows: usize) -> anyhow::Result<Report> {
    let before = bench.metric("process_resident_memory_bytes").await?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let bench = bench.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut peak = 0f64;
            while !done.load(Ordering::Relaxed) {
                if let Ok(rss) = bench.metric("process_resident_memory_bytes").await {
                    peak = peak.max(rss);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            peak
        })
    };
    let started = Instant::now();
    let download = download(bench, &rows_sql(rows)).await;
    done.store(true, Ordering::Relaxed);
    let peak = sampler.await?;
    let download = download?;
    let mib = |bytes: f64| bytes / (1024.0 * 1024.0);
    let grew = (peak - before).max(0.0);
    // Held to a few chunks ahead of the client, whatever the answer's size.
    let met = grew < 32.0 * 1024.0 * 1024.0;
    Ok(Report::new(
        &format!("result_{}m_rows_memory", rows / 1_000_000),
        vec![download.total],
        started.elapsed(),
        rows,
    )
    .unit("rows/s")
    .target("server memory grows by under 32 MiB", met)
    .note(format!(
        "answer {:.0} MiB; server resident {:.0} MiB before, peak {:.0} MiB (+{:.0} MiB); first byte {:.0} ms",
        mib(download.bytes as f64),
        mib(before),
        mib(peak),
        mib(grew),
        download.first_byte.as_secs_f64() * 1000.0
    )))
}
