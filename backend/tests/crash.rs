//! Crash safety: the real binary is killed with SIGKILL at random moments
//! under a mixed load (a client writing, flushes and compactions, a
//! reader, a live subscriber), then restarted; every acknowledged write
//! must be there exactly once with its latest value, no deleted row may
//! come back, the subscriber's connection must end rather than hang, and
//! no subscription may outlive the process.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use common::{sigkill, sigterm, start, write_config};
use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const ROUNDS: usize = 20;

/// What the table must hold: id -> value, `None` once deleted.
type Model = BTreeMap<i64, Option<i64>>;

/// One write the client sent, with the rows it affects afterwards.
#[derive(Debug, Clone)]
struct Op {
    sql: String,
    after: Vec<(i64, Option<i64>)>,
}

struct Client {
    http: reqwest::Client,
    url: String,
}

impl Client {
    async fn sql(&self, sql: &str) -> Result<Value, String> {
        let response = self
            .http
            .post(&self.url)
            .basic_auth("root", Some(""))
            .json(&json!({ "sql": sql }))
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status();
        let body: Value = response.json().await.map_err(|e| e.to_string())?;
        if status != 200 {
            panic!("{sql} failed with {status}: {body}");
        }
        Ok(body)
    }

    async fn rows(&self) -> Vec<(i64, i64)> {
        let body = self
            .sql("SELECT id, v FROM crash.t ORDER BY id")
            .await
            .expect("the server answers after a restart");
        body["results"][0]["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let number = |v: &Value| match v {
                    Value::String(s) => s.parse::<i64>().unwrap(),
                    other => other.as_i64().unwrap(),
                };
                (number(&r[0]), number(&r[1]))
            })
            .collect()
    }
}

/// Subscribes to every row with a snapshot and reads until the connection
/// ends; returns whether the subscription was acknowledged and how many
/// messages came.
async fn subscriber(address: String) -> (bool, usize) {
    let mut request = format!("ws://{address}/v1/ws")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("authorization", "Basic cm9vdDo=".parse().unwrap());
    let Ok((mut ws, _)) = tokio_tungstenite::connect_async(request).await else {
        return (false, 0);
    };
    let subscribe = json!({"type": "subscribe", "subscription": {
        "id": "all", "sql": "SELECT * FROM crash.t WHERE v >= 0", "options": {}}});
    if ws
        .send(Message::Text(subscribe.to_string().into()))
        .await
        .is_err()
    {
        return (false, 0);
    }
    let (mut acknowledged, mut messages) = (false, 0);
    while let Some(Ok(message)) = ws.next().await {
        if let Message::Text(text) = message {
            acknowledged |= text.contains("subscription_ack");
            messages += 1;
        }
    }
    (acknowledged, messages)
}

/// Reads rows by key until the server stops answering; returns how many
/// reads succeeded.
async fn reader(url: String) -> usize {
    let http = reqwest::Client::new();
    let mut reads = 0;
    loop {
        let answer = http
            .post(&url)
            .basic_auth("root", Some(""))
            .json(&json!({ "sql": "SELECT v FROM crash.t WHERE id = $1", "params": [reads % 50] }))
            .timeout(Duration::from_secs(30))
            .send()
            .await;
        match answer {
            Ok(response) if response.status() == 200 => reads += 1,
            Ok(response) => panic!("a read failed with {}", response.status()),
            Err(_) => return reads,
        }
    }
}

fn next_op(rng: &mut fastrand::Rng, model: &Model, next_id: &mut i64) -> Op {
    let live: Vec<i64> = model
        .iter()
        .filter(|(_, v)| v.is_some())
        .map(|(k, _)| *k)
        .collect();
    let value = rng.i64(0..1_000_000);
    let roll = rng.u32(0..100);
    if live.is_empty() || roll < 45 {
        let ids: Vec<i64> = (0..3).map(|i| *next_id + i).collect();
        *next_id += 3;
        let values: Vec<String> = ids
            .iter()
            .map(|id| format!("({id}, {})", value + id))
            .collect();
        return Op {
            sql: format!("INSERT INTO crash.t (id, v) VALUES {}", values.join(", ")),
            after: ids.iter().map(|id| (*id, Some(value + id))).collect(),
        };
    }
    let id = live[rng.usize(0..live.len())];
    match roll {
        45..=69 => Op {
            sql: format!("UPDATE crash.t SET v = {value} WHERE id = {id}"),
            after: vec![(id, Some(value))],
        },
        70..=84 => Op {
            sql: format!("DELETE FROM crash.t WHERE id = {id}"),
            after: vec![(id, None)],
        },
        _ => Op {
            sql: format!(
                "INSERT INTO crash.t (id, v) VALUES ({id}, {value}) \
                 ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v"
            ),
            after: vec![(id, Some(value))],
        },
    }
}

/// Checks the table against the model. The write in flight when the
/// process died may or may not have landed; its rows may show either
/// state, and the model takes what the table shows.
fn check(
    rows: &[(i64, i64)],
    model: &mut Model,
    in_flight: Option<&Op>,
    round: usize,
    log: &[String],
) {
    let mut seen = BTreeMap::new();
    for (id, v) in rows {
        assert!(
            seen.insert(*id, *v).is_none(),
            "round {round}: id {id} appears twice"
        );
    }
    if let Some(op) = in_flight {
        let landed = op.after.iter().all(|(id, v)| seen.get(id).copied() == *v);
        let missed = op
            .after
            .iter()
            .all(|(id, _)| seen.get(id).copied() == model.get(id).copied().flatten());
        assert!(
            landed || missed,
            "round {round}: the unacknowledged {} half-applied",
            op.sql
        );
        if landed {
            for (id, v) in &op.after {
                model.insert(*id, *v);
            }
        }
    }
    for (id, expected) in model.iter() {
        assert_eq!(
            seen.get(id).copied(),
            *expected,
            "round {round}: id {id} (None = absent); in flight: {in_flight:?}; table: {rows:?}; \
             writes:\n{}",
            log.join("\n")
        );
    }
    for id in seen.keys() {
        assert!(model.contains_key(id), "round {round}: unknown id {id}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill_during_flushes_and_compactions() {
    let seed = std::env::var("QUIVER_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| fastrand::u64(..));
    println!("QUIVER_CRASH_SEED={seed}");
    let mut rng = fastrand::Rng::with_seed(seed);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nnode_id = \"crash-node\"\nport = 0\n\
             [storage]\ndata_path = {:?}\n\
             [flush]\nrows = 30\ninterval_secs = 1\ncheck_interval_ms = 20\nrow_group_rows = 16\n\
             [compaction]\nmax_segments = 3\n",
            dir.path().join("data").display().to_string()
        ),
    );
    let mut model = Model::new();
    let mut next_id = 1;
    let mut in_flight: Option<Op> = None;
    let mut log: Vec<String> = Vec::new();
    let (mut acknowledged_subscriptions, mut notifications, mut reads) = (0, 0, 0);
    for round in 0..=ROUNDS {
        let (mut child, address) = start(&config).await;
        let client = Client {
            http: reqwest::Client::new(),
            url: format!("http://{address}/v1/api/sql"),
        };
        if round == 0 {
            client
                .sql("CREATE NAMESPACE crash; CREATE TABLE crash.t (id BIGINT PRIMARY KEY, v BIGINT NOT NULL)")
                .await
                .unwrap();
        }
        check(
            &client.rows().await,
            &mut model,
            in_flight.take().as_ref(),
            round,
            &log,
        );
        // No subscription outlives the process that served it.
        let live = client
            .sql("SELECT count(*) FROM system.live_queries")
            .await
            .unwrap();
        assert_eq!(
            live["results"][0]["rows"][0][0], "0",
            "round {round}: {live}"
        );
        if round == ROUNDS {
            // A background flush may be running right now; none may stay
            // running (jobs of killed processes are marked failed at start).
            let deadline = Instant::now() + Duration::from_secs(10);
            let jobs = loop {
                let jobs = client
                    .sql(
                        "SELECT job_type, status, COUNT(*) FROM system.jobs \
                         GROUP BY job_type, status ORDER BY job_type, status",
                    )
                    .await
                    .unwrap();
                let jobs = jobs["results"][0]["rows"].to_string();
                if !jobs.contains(r#""running""#) || Instant::now() > deadline {
                    break jobs;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            println!("jobs: {jobs}");
            assert!(jobs.contains(r#"["flush","completed""#), "{jobs}");
            assert!(jobs.contains(r#"["compact","completed""#), "{jobs}");
            assert!(!jobs.contains(r#""running""#), "{jobs}");
            assert!(sigterm(&mut child).await.success());
            break;
        }

        let watcher = tokio::spawn(subscriber(address.clone()));
        let reading = tokio::spawn(reader(client.url.clone()));
        let pid = child.id().unwrap();
        let kill_after = Duration::from_millis(rng.u64(300..1500));
        let killer = tokio::spawn(async move {
            tokio::time::sleep(kill_after).await;
            sigkill(pid);
        });
        let started = Instant::now();
        loop {
            let op = if rng.u32(0..100) < 4 {
                let verb = if rng.bool() { "FLUSH" } else { "COMPACT" };
                Op {
                    sql: format!("STORAGE {verb} TABLE crash.t"),
                    after: Vec::new(),
                }
            } else {
                next_op(&mut rng, &model, &mut next_id)
            };
            match client.sql(&op.sql).await {
                Ok(_) => {
                    log.push(format!(
                        "round {round} +{} ms: {}",
                        started.elapsed().as_millis(),
                        op.sql
                    ));
                    for (id, v) in &op.after {
                        model.insert(*id, *v);
                    }
                }
                Err(_) => {
                    in_flight = Some(op);
                    break;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the server was never killed"
            );
        }
        killer.await.unwrap();
        let _ = child.wait().await;
        // The subscriber and the reader notice the crash instead of hanging.
        let (acknowledged, messages) = tokio::time::timeout(Duration::from_secs(10), watcher)
            .await
            .expect("the subscriber's connection ends with the process")
            .unwrap();
        acknowledged_subscriptions += usize::from(acknowledged);
        notifications += messages;
        reads += tokio::time::timeout(Duration::from_secs(40), reading)
            .await
            .expect("the reader stops with the process")
            .unwrap();
    }
    println!(
        "{acknowledged_subscriptions} subscriptions acknowledged, {notifications} messages, \
         {reads} reads"
    );
    assert!(acknowledged_subscriptions > ROUNDS / 2 && reads > ROUNDS);
    let live = model.values().filter(|v| v.is_some()).count();
    let deleted = model.len() - live;
    println!("{ROUNDS} kills: {live} live rows, {deleted} deleted checked");
    assert!(live > 0 && deleted > 0, "the load wrote and deleted rows");
}
