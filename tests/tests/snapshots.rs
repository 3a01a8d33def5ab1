//! A subscription's snapshot as a reader of a consistent cut: read while
//! the table's writers go on, exact with the changes that follow it, and
//! bounded like a query's answer.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use quiver_tests::{ROOT_BASIC, TestServer, WsClient};
use serde_json::{Value, json};

/// Rows of a large table, half in a segment and half hot.
const ROWS: u64 = 300_000;

/// Clients writing to it at once.
const WRITERS: u64 = 4;

/// Applies one `change` to materialized rows, strictly: an insert of a
/// row not held, an update or delete of one held. Returns whether it
/// carried the row `marker`.
fn apply(rows: &mut BTreeMap<String, Value>, message: &Value, marker: &str) -> bool {
    assert_eq!(message["type"], "change", "{message}");
    let kind = message["change_type"].as_str().unwrap();
    let field = if kind == "delete" {
        "old_values"
    } else {
        "rows"
    };
    let mut done = false;
    for row in message[field].as_array().unwrap() {
        let id = row["id"].as_str().unwrap().to_string();
        if kind == "delete" {
            assert!(rows.remove(&id).is_some(), "delete of a row not held: {id}");
        } else {
            let held = rows.insert(id.clone(), row["v"].clone());
            assert_eq!(held.is_some(), kind == "update", "{kind} of {id}");
            done |= id == marker;
        }
    }
    done
}

/// Inserts, updates and deletes rows of `app.kv` one statement at a time
/// until `stop`, counting the statements acknowledged; `writer` numbers
/// the rows it inserts apart from other writers'.
fn spawn_writer(
    server: &TestServer,
    writer: u64,
    acked: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<()> {
    let poster = server.sql_poster();
    tokio::spawn(async move {
        let mut i = 0u64;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            let sql = match i % 3 {
                0 => format!(
                    "INSERT INTO app.kv VALUES ({}, {i})",
                    1_000_000 * (writer + 1) + i
                ),
                1 => format!(
                    "UPDATE app.kv SET v = {i} WHERE id = {}",
                    i * 7919 % ROWS + 1
                ),
                _ => format!("DELETE FROM app.kv WHERE id = {}", i * 104_729 % ROWS + 1),
            };
            let (status, _) = poster.post(ROOT_BASIC, &sql).await;
            assert_eq!(status, 200, "{sql}");
            acked.fetch_add(1, Ordering::Relaxed);
        }
    })
}

/// Creates `app.kv` with rows 1 to `rows`, all hot, `v` 0.
async fn create_kv(server: &TestServer, rows: u64) {
    server
        .sql_ok(&format!(
            "CREATE NAMESPACE app; \
             CREATE SHARED TABLE app.kv (id BIGINT PRIMARY KEY, v BIGINT); \
             INSERT INTO app.kv SELECT value, 0 FROM generate_series(1, {rows})"
        ))
        .await;
}

/// Creates `app.kv` with `ROWS` rows, half in a segment and half hot.
async fn load(server: &TestServer) {
    let half = ROWS / 2;
    create_kv(server, half).await;
    server
        .sql_ok(&format!(
            "STORAGE FLUSH TABLE app.kv; \
             INSERT INTO app.kv SELECT value, 0 FROM generate_series({}, {ROWS})",
            half + 1
        ))
        .await;
}

/// Holds the rows of a snapshot page or change, `id` to `v`.
fn hold(rows: &mut BTreeMap<String, Value>, page: &Value) {
    for row in page.as_array().unwrap() {
        rows.insert(row["id"].as_str().unwrap().to_string(), row["v"].clone());
    }
}

/// While a 300,000-row snapshot is read, the table's writers are served
/// (a snapshot read under the writers' lock lets at most the one waiting
/// statement through), and the snapshot with the changes after its cut
/// equals the table: no change is in both, none in neither, with a flush
/// asked for as the read starts.
#[tokio::test]
async fn a_subscription_snapshot_is_a_cut_that_holds_no_writer() {
    let server = TestServer::start_with(|c| {
        c.limits.max_result_rows = 1_000_000;
        c.limits.max_write_rows = 1_000_000;
        c.limits.query_timeout_ms = 300_000;
        // Every change made while the snapshot is read waits in the
        // connection's queue; none may overflow it here.
        c.websocket.queue_capacity = 1_000_000;
    })
    .await;
    load(&server).await;

    let acked = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| spawn_writer(&server, w, acked.clone(), stop.clone()))
        .collect();
    while acked.load(Ordering::Relaxed) < 3 {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }

    let mut client = WsClient::signed_in(&server, ROOT_BASIC).await;
    let before = acked.load(Ordering::Relaxed);
    client
        .ask_subscription(
            "all",
            "SELECT id, v FROM app.kv",
            Some(json!({"batch_size": 1_000_000})),
        )
        .await;
    let flush = {
        let poster = server.sql_poster();
        tokio::spawn(async move {
            poster
                .post(ROOT_BASIC, "STORAGE FLUSH TABLE app.kv")
                .await
                .0
        })
    };
    let ack = client.next().await;
    let during = acked.load(Ordering::Relaxed) - before;
    assert_eq!(ack["type"], "subscription_ack", "{ack}");
    // Under the writers' lock, each writer could finish at most the
    // statement it had under way.
    assert!(
        during > 2 * WRITERS,
        "only {during} statement(s) were acknowledged while the snapshot was read"
    );
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    loop {
        let batch = client.next().await;
        assert_eq!(batch["type"], "initial_data_batch", "{batch:.300}");
        hold(&mut rows, &batch["rows"]);
        if batch["batch_control"]["status"] == "ready" {
            break;
        }
        client
            .send(json!({"type": "next_batch", "subscription_id": "all"}))
            .await;
    }
    assert_eq!(ack["total_rows"].as_u64(), Some(rows.len() as u64));
    assert!(rows.len() as u64 > ROWS / 2, "{}", rows.len());

    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.unwrap();
    }
    assert_eq!(flush.await.unwrap(), 200);
    server
        .sql_ok("INSERT INTO app.kv VALUES (9999999, -1)")
        .await;
    while !apply(&mut rows, &client.next().await, "9999999") {}

    let expected = server.sql_ok("SELECT id, v FROM app.kv").await;
    let expected: BTreeMap<String, Value> = expected
        .rows(0)
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].clone()))
        .collect();
    assert_eq!(rows.len(), expected.len());
    assert!(
        rows == expected,
        "the snapshot and its changes differ from the table"
    );
    server.stop().await;
}

/// A snapshot past the row cap and a resume past it fail with the
/// query's code, leave nothing registered, and hold no writer.
#[tokio::test]
async fn snapshots_and_resumes_are_bounded_like_answers() {
    let server = TestServer::start_with(|c| c.limits.max_result_rows = 1_000).await;
    create_kv(&server, 600).await;
    let mut client = WsClient::signed_in(&server, ROOT_BASIC).await;
    let (ack, _) = client
        .subscribe("small", "SELECT id, v FROM app.kv", Some(json!({})))
        .await;
    let from: i64 = ack["batch_control"]["last_seq_id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    server
        .sql_ok("INSERT INTO app.kv SELECT value, 1 FROM generate_series(601, 2000)")
        .await;

    for (id, options) in [
        ("full", json!({})),
        ("resume", json!({"from": from})),
        ("last", json!({"last_rows": 1_500})),
    ] {
        client
            .ask_subscription(id, "SELECT id, v FROM app.kv", Some(options))
            .await;
        let refused = other_than_changes(&mut client).await;
        assert_eq!(refused["type"], "error", "{id}: {refused}");
        assert_eq!(refused["subscription_id"], id);
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("max_result_rows"),
            "{id}: {refused}"
        );
        assert_eq!(
            server.context.live.stats().subscriptions,
            1,
            "{id} left a registration behind"
        );
    }
    // The writers were never held: a write goes through at once, and the
    // first subscription sees it.
    server.sql_ok("UPDATE app.kv SET v = 2 WHERE id = 1").await;
    loop {
        let change = client.next().await;
        assert_eq!(change["type"], "change", "{change}");
        if change["change_type"] == "update" {
            assert_eq!(change["rows"][0]["id"], "1", "{change}");
            break;
        }
    }
    server.stop().await;
}

/// The next message that is not a change of a live subscription.
async fn other_than_changes(client: &mut WsClient) -> Value {
    loop {
        let message = client.next().await;
        if message["type"] != "change" {
            return message;
        }
    }
}

/// A subscription whose snapshot or resume passes the time limit is
/// refused, and is no longer registered when its client hears so: the
/// same id subscribes again at once.
#[tokio::test]
async fn a_start_past_the_time_limit_leaves_nothing_registered() {
    let server = TestServer::start_with(|c| {
        c.limits.max_result_rows = 1_000_000;
        c.limits.max_write_rows = 1_000_000;
        c.limits.query_timeout_ms = 300_000;
    })
    .await;
    load(&server).await;
    let server = server
        .restart_with(|c| c.limits.query_timeout_ms = 20)
        .await;
    let mut client = WsClient::signed_in(&server, ROOT_BASIC).await;
    for options in [json!({}), json!({"from": 0})] {
        client
            .ask_subscription("all", "SELECT id, v FROM app.kv", Some(options.clone()))
            .await;
        let refused = client.next().await;
        assert_eq!(refused["type"], "error", "{options}: {refused}");
        assert!(
            refused["message"]
                .as_str()
                .unwrap()
                .contains("query_timeout_ms"),
            "{options}: {refused}"
        );
        assert_eq!(server.context.live.stats().subscriptions, 0, "{options}");
    }
    // Live changes only: nothing to read, so nothing to time out.
    let (ack, _) = client
        .subscribe("all", "SELECT id, v FROM app.kv", None)
        .await;
    assert_eq!(ack["total_rows"], 0, "{ack}");
    server
        .sql_ok("INSERT INTO app.kv VALUES (1000001, 1)")
        .await;
    let change = client.next().await;
    assert_eq!(change["rows"][0]["id"], "1000001", "{change}");
    server.stop().await;
}

/// A subscription that overflows while its snapshot is still being paged
/// out names, as the point to resume from, the last row it sent: resumed
/// from there, the client ends up with every row of the table.
#[tokio::test]
async fn an_overflow_mid_snapshot_resumes_after_the_last_page_sent() {
    let server = TestServer::start_with(|c| c.websocket.queue_capacity = 4).await;
    create_kv(&server, 100).await;
    let mut client = WsClient::signed_in(&server, ROOT_BASIC).await;
    let (ack, first) = client
        .subscribe(
            "all",
            "SELECT id, v FROM app.kv",
            Some(json!({"batch_size": 10})),
        )
        .await;
    assert_eq!(ack["batch_control"]["has_more"], true, "{ack}");
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    hold(&mut rows, &first["rows"]);
    // More changes than the connection holds back while pages wait.
    for id in 101..=110 {
        server
            .sql_ok(&format!("INSERT INTO app.kv VALUES ({id}, 1)"))
            .await;
    }
    let ended = client.next().await;
    assert_eq!(ended["code"], "SUBSCRIPTION_OVERFLOW", "{ended}");
    let message = ended["message"].as_str().unwrap();
    let from: i64 = message
        .rsplit("\"from\": ")
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no point to resume from in {message}"));
    assert_eq!(
        first["batch_control"]["last_seq_id"].as_str(),
        Some(from.to_string().as_str()),
        "{message}"
    );

    let (_, resumed) = client
        .subscribe(
            "again",
            "SELECT id, v FROM app.kv",
            Some(json!({"from": from, "batch_size": 1000})),
        )
        .await;
    for row in resumed["rows"].as_array().unwrap() {
        let id = row["id"].as_str().unwrap().to_string();
        assert!(
            rows.insert(id.clone(), row["v"].clone()).is_none(),
            "{id} twice"
        );
    }
    assert_eq!(rows.len(), 110);
    server.stop().await;
}
