//! Live queries over a real WebSocket: authentication, snapshots in
//! batches, changes as rows enter, change within and leave a filter,
//! per-user scoping, limits, and cleanup when connections go away.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use quiver_tests::{ROOT_BASIC, TestServer, WsClient as Client, basic};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// `id:name` of each row object.
fn ids(rows: &Value) -> Vec<String> {
    rows.as_array()
        .unwrap()
        .iter()
        .map(|r| format!("{}:{}", r["id"].as_str().unwrap(), r["name"]))
        .collect()
}

async fn items_server() -> TestServer {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.items (id BIGINT PRIMARY KEY, name TEXT, price INT); \
             INSERT INTO app.items VALUES (1, 'a', 5), (2, 'b', 20), (3, 'c', 30)",
        )
        .await;
    server
}

#[tokio::test]
async fn snapshot_then_every_change_entering_changing_and_leaving_the_filter() {
    let server = items_server().await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    let (ack, first) = client
        .subscribe(
            "cheap",
            "SELECT id, name FROM app.items WHERE price > 10",
            Some(json!({})),
        )
        .await;
    assert_eq!(ack["total_rows"], 2);
    assert_eq!(ack["batch_control"]["status"], "ready");
    let names: Vec<&str> = ack["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["id", "name", "_seq"]);
    assert_eq!(ids(&first["rows"]), ["2:\"b\"", "3:\"c\""]);
    assert!(
        first["rows"][0]["_seq"]
            .as_str()
            .unwrap()
            .parse::<i64>()
            .unwrap()
            > 0
    );

    server
        .sql_ok("INSERT INTO app.items VALUES (4, 'd', 40)")
        .await;
    let insert = client.next().await;
    assert_eq!(insert["change_type"], "insert", "{insert}");
    assert_eq!(ids(&insert["rows"]), ["4:\"d\""]);

    // Not matching before or after: nothing is sent for it.
    server
        .sql_ok("INSERT INTO app.items VALUES (5, 'e', 1)")
        .await;
    server
        .sql_ok("UPDATE app.items SET name = 'bb' WHERE id = 2")
        .await;
    let update = client.next().await;
    assert_eq!(update["change_type"], "update", "{update}");
    assert_eq!(ids(&update["rows"]), ["2:\"bb\""]);
    assert_eq!(ids(&update["old_values"]), ["2:\"b\""]);

    server
        .sql_ok("UPDATE app.items SET price = 0 WHERE id = 3")
        .await;
    let left = client.next().await;
    assert_eq!(left["change_type"], "delete", "{left}");
    assert_eq!(ids(&left["old_values"]), ["3:\"c\""]);

    server
        .sql_ok("UPDATE app.items SET price = 99 WHERE id = 1")
        .await;
    let entered = client.next().await;
    assert_eq!(entered["change_type"], "insert", "{entered}");
    assert_eq!(ids(&entered["rows"]), ["1:\"a\""]);

    server.sql_ok("DELETE FROM app.items WHERE id = 4").await;
    let deleted = client.next().await;
    assert_eq!(deleted["change_type"], "delete", "{deleted}");
    assert_eq!(ids(&deleted["old_values"]), ["4:\"d\""]);

    // One statement, several rows of one kind: one message.
    server
        .sql_ok("INSERT INTO app.items VALUES (6, 'f', 60), (7, 'g', 70)")
        .await;
    let both = client.next().await;
    assert_eq!(ids(&both["rows"]), ["6:\"f\"", "7:\"g\""]);

    let live = server
        .sql_ok("SELECT subscription_id, user_id, table_name, changes FROM system.live_queries")
        .await;
    assert_eq!(live.rows(0), &vec![json!(["cheap", "root", "items", "6"])]);
    server.stop().await;
}

#[tokio::test]
async fn message_auth_batches_and_changes_held_until_the_snapshot_is_out() {
    let server = items_server().await;
    server
        .sql_ok("INSERT INTO app.items VALUES (4, 'd', 40), (5, 'e', 50)")
        .await;
    let login = server
        .client()
        .post(format!("{}/v1/api/auth/login", server.base_url))
        .json(&json!({"username": "root", "password": ""}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    let token = login["access_token"].as_str().unwrap().to_string();
    let mut client = Client::connect(&server, "").await;
    client
        .send(
            json!({"type": "authenticate", "method": "jwt", "token": token,
                     "protocol": {"serialization": "json", "compression": "none"}}),
        )
        .await;
    let welcome = client.next().await;
    assert_eq!(welcome["type"], "auth_success", "{welcome}");
    assert_eq!(welcome["user"], "root");

    let (ack, first) = client
        .subscribe(
            "all",
            "SELECT * FROM app.items",
            Some(json!({"batch_size": 2})),
        )
        .await;
    assert_eq!(ack["total_rows"], 5);
    assert_eq!(ack["batch_control"]["has_more"], true);
    assert_eq!(first["rows"].as_array().unwrap().len(), 2);
    assert_eq!(first["batch_control"]["status"], "loading");

    // A change while the snapshot is being read waits for its end.
    server
        .sql_ok("UPDATE app.items SET name = 'A' WHERE id = 1")
        .await;
    client
        .send(json!({"type": "next_batch", "subscription_id": "all"}))
        .await;
    let second = client.next().await;
    assert_eq!(second["type"], "initial_data_batch", "{second}");
    assert_eq!(second["batch_control"]["status"], "loading_batch");
    client
        .send(json!({"type": "next_batch", "subscription_id": "all"}))
        .await;
    let last = client.next().await;
    assert_eq!(last["batch_control"]["status"], "ready", "{last}");
    assert_eq!(last["rows"].as_array().unwrap().len(), 1);
    let change = client.next().await;
    assert_eq!(change["change_type"], "update", "{change}");
    assert_eq!(ids(&change["rows"]), ["1:\"A\""]);

    // Resuming from a _seq replays what changed after it.
    let seq = change["rows"][0]["_seq"].as_str().unwrap().to_string();
    server
        .sql_ok("UPDATE app.items SET name = 'B' WHERE id = 2")
        .await;
    let _ = client.next().await;
    let mut resumed = Client::signed_in(&server, ROOT_BASIC).await;
    let (ack, first) = resumed
        .subscribe(
            "again",
            "SELECT * FROM app.items",
            Some(json!({"from": seq})),
        )
        .await;
    assert_eq!(ack["total_rows"], 1, "{ack}");
    assert_eq!(ids(&first["rows"]), ["2:\"B\""]);
    let (_, newest) = resumed
        .subscribe(
            "newest",
            "SELECT * FROM app.items",
            Some(json!({"last_rows": 2})),
        )
        .await;
    assert_eq!(ids(&newest["rows"]), ["1:\"A\"", "2:\"B\""]);

    // Bad requests get errors on the socket, and the socket stays usable.
    for (sql, code) in [
        ("SELECT * FROM app.nope", "NOT_FOUND"),
        (
            "SELECT id, COUNT(*) FROM app.items GROUP BY id",
            "UNSUPPORTED",
        ),
        ("SELEC 1", "INVALID_SQL"),
    ] {
        client
            .send(json!({"type": "subscribe", "subscription": {"id": sql, "sql": sql}}))
            .await;
        let error = client.next().await;
        assert_eq!(error["type"], "error", "{error}");
        assert_eq!(error["code"], code, "{sql}: {error}");
    }
    client.send(json!({"type": "nonsense"})).await;
    assert_eq!(client.next().await["code"], "PROTOCOL");
    client
        .send(json!({"type": "subscribe", "subscription": {"id": "all", "sql": "SELECT * FROM app.items"}}))
        .await;
    assert_eq!(client.next().await["code"], "INVALID_SUBSCRIPTION_ID");
    client.send(json!({"type": "ping"})).await;
    server.sql_ok("DELETE FROM app.items WHERE id = 5").await;
    assert_eq!(client.next().await["change_type"], "delete");
    server.stop().await;
}

#[tokio::test]
async fn each_user_is_notified_of_their_own_rows_only() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, name TEXT); \
             CREATE USER 'alice' WITH PASSWORD 'pw' ROLE user; \
             CREATE USER 'bob' WITH PASSWORD 'pw' ROLE user",
        )
        .await;
    let alice_auth = basic("alice", "pw");
    let bob_auth = basic("bob", "pw");
    server
        .sql_as(&alice_auth, "INSERT INTO app.notes VALUES (1, 'alice-1')")
        .await;
    let mut alice = Client::signed_in(&server, &alice_auth).await;
    let mut bob = Client::signed_in(&server, &bob_auth).await;
    let (_, first) = alice
        .subscribe("n", "SELECT * FROM app.notes", Some(json!({})))
        .await;
    assert_eq!(ids(&first["rows"]), ["1:\"alice-1\""]);
    let (_, first) = bob
        .subscribe("n", "SELECT * FROM app.notes", Some(json!({})))
        .await;
    assert!(first["rows"].as_array().unwrap().is_empty(), "{first}");

    // The same key in both users' rows.
    let answer = server
        .sql_as(&bob_auth, "INSERT INTO app.notes VALUES (1, 'bob-1')")
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    server
        .sql_as(&alice_auth, "INSERT INTO app.notes VALUES (2, 'alice-2')")
        .await;
    assert_eq!(ids(&bob.next().await["rows"]), ["1:\"bob-1\""]);
    assert_eq!(ids(&alice.next().await["rows"]), ["2:\"alice-2\""]);
    server.stop().await;
}

async fn live_count(server: &TestServer) -> i64 {
    let answer = server
        .sql_ok("SELECT COUNT(*) FROM system.live_queries")
        .await;
    answer.rows(0)[0][0].as_str().unwrap().parse().unwrap()
}

/// Polls until `system.live_queries` has `expected` rows.
async fn wait_for_live_count(server: &TestServer, expected: i64) {
    for _ in 0..200 {
        if live_count(server).await == expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(live_count(server).await, expected);
}

#[tokio::test]
async fn dropped_connections_leave_no_subscriptions_behind() {
    let server = items_server().await;
    let mut clients = Vec::new();
    for c in 0..10 {
        let mut client = Client::signed_in(&server, ROOT_BASIC).await;
        for s in 0..10 {
            client
                .subscribe(
                    &format!("s{s}"),
                    &format!("SELECT * FROM app.items WHERE price > {c}{s}"),
                    None,
                )
                .await;
        }
        clients.push(client);
    }
    assert_eq!(live_count(&server).await, 100);
    let connections = server
        .sql_ok("SELECT COUNT(DISTINCT connection_id) FROM system.live_queries")
        .await;
    assert_eq!(connections.rows(0)[0][0], "10");

    // One closes politely, one unsubscribes, the rest just vanish.
    let mut polite = clients.pop().unwrap();
    polite.ws.close(None).await.unwrap();
    let mut leaving = clients.pop().unwrap();
    leaving
        .send(json!({"type": "unsubscribe", "subscription_id": "s0"}))
        .await;
    wait_for_live_count(&server, 89).await;
    drop(leaving);
    drop(clients);
    wait_for_live_count(&server, 0).await;
    assert_eq!(server.context.live.connection_count(), 0);

    // Many short connections leave nothing either, and memory stays flat
    // once warm.
    let mut warm_rss = 0;
    for i in 0..1000 {
        if i == 200 {
            warm_rss = resident_bytes();
        }
        let mut client = Client::signed_in(&server, ROOT_BASIC).await;
        client.subscribe("s", "SELECT * FROM app.items", None).await;
        if i % 2 == 0 {
            drop(client);
        } else {
            client.ws.close(None).await.unwrap();
        }
    }
    wait_for_live_count(&server, 0).await;
    assert_eq!(server.context.live.connection_count(), 0);
    let grown = resident_bytes().saturating_sub(warm_rss);
    assert!(
        grown < 32 << 20,
        "800 connect/subscribe/drop cycles grew memory by {grown} bytes"
    );
    server.stop().await;
}

#[tokio::test]
async fn clients_that_vanish_mid_snapshot_leave_nothing_behind() {
    let server = items_server().await;
    let values: Vec<String> = (0..1000).map(|i| format!("({i})")).collect();
    server
        .sql_ok(&format!(
            "CREATE TABLE app.many (id BIGINT PRIMARY KEY); INSERT INTO app.many VALUES {}",
            values.join(", ")
        ))
        .await;
    let mut clients = Vec::new();
    for c in 0..20 {
        let mut client = Client::signed_in(&server, ROOT_BASIC).await;
        let (ack, first) = client
            .subscribe(
                &format!("big{c}"),
                "SELECT * FROM app.many",
                Some(json!({"batch_size": 10})),
            )
            .await;
        // The snapshot is far from sent: 100 batches, one delivered.
        assert_eq!(ack["batch_control"]["has_more"], true, "{ack}");
        assert_eq!(first["rows"].as_array().map(Vec::len), Some(10), "{first}");
        clients.push(client);
    }
    assert_eq!(live_count(&server).await, 20);
    // Half vanish without a word, half close while the rest of their
    // snapshot waits.
    for (i, mut client) in clients.into_iter().enumerate() {
        if i % 2 == 0 {
            client.ws.close(None).await.unwrap();
        }
    }
    wait_for_live_count(&server, 0).await;
    assert_eq!(server.context.live.connection_count(), 0);
    server.stop().await;
}

/// Resident memory of this process (the server runs in it).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[tokio::test]
async fn kill_live_query_ends_the_subscription_and_tells_the_client() {
    let server = items_server().await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    client.subscribe("k", "SELECT * FROM app.items", None).await;
    let live = server
        .sql_ok("SELECT live_id FROM system.live_queries")
        .await;
    let live_id = live.rows(0)[0][0].as_str().unwrap().to_string();
    server.sql_ok(&format!("KILL LIVE QUERY '{live_id}'")).await;
    let error = client.next().await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["subscription_id"], "k");
    assert!(error["message"].as_str().unwrap().contains("killed"));
    assert_eq!(live_count(&server).await, 0);
    let missing = server.sql("KILL LIVE QUERY 'no-such-id'").await;
    assert_eq!(missing.status, 400);
    server.stop().await;
}

/// A client that stops reading fills the socket, then its queue: the
/// subscription ends with an error that says where to resume, and the
/// writers never wait.
#[tokio::test]
async fn a_subscriber_that_does_not_keep_up_is_dropped_with_overflow() {
    let server = TestServer::start_with(|c| c.websocket.queue_capacity = 4).await;
    server
        .sql_ok("CREATE TABLE t (id BIGINT PRIMARY KEY, pad TEXT)")
        .await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    client.subscribe("a", "SELECT * FROM t", None).await;
    // A second client that reads along keeps getting every change.
    let mut healthy = Client::signed_in(&server, ROOT_BASIC).await;
    healthy.subscribe("h", "SELECT id FROM t", None).await;
    let reader = tokio::spawn(async move {
        let mut rows = 0;
        while rows < 40_000 {
            let message = healthy.next().await;
            assert_eq!(message["change_type"], "insert", "{message}");
            rows += message["rows"].as_array().unwrap().len();
        }
        (rows, healthy)
    });
    // About 1 MB per change message, 40 MB in all: more than the socket
    // buffers hold.
    for i in 0..40 {
        server
            .sql_ok(&format!(
                "INSERT INTO t SELECT value + {i} * 1000, repeat('x', 1000) \
                 FROM generate_series(1, 1000)"
            ))
            .await;
    }
    let mut overflowed = false;
    for _ in 0..60 {
        let message = client.next().await;
        if message["code"] == "SUBSCRIPTION_OVERFLOW" {
            assert!(message["message"].as_str().unwrap().contains("from"));
            overflowed = true;
            break;
        }
        assert_eq!(message["change_type"], "insert");
    }
    assert!(overflowed, "no SUBSCRIPTION_OVERFLOW");
    let (rows, _healthy) = reader.await.unwrap();
    assert_eq!(rows, 40_000);
    wait_for_live_count(&server, 1).await;
    server.stop().await;
}

#[tokio::test]
async fn limits_and_timeouts_close_or_refuse() {
    let server = TestServer::start_with(|c| {
        c.websocket.max_subscriptions_per_connection = 2;
        c.websocket.max_subscriptions_per_user = 3;
        c.websocket.max_messages_per_second = 20;
        c.websocket.max_message_bytes = 4096;
        c.websocket.read_buffer_bytes = 256;
        c.websocket.auth_timeout_secs = 1;
        c.websocket.ping_interval_secs = 1;
        c.websocket.client_timeout_secs = 2;
    })
    .await;
    server
        .sql_ok("CREATE TABLE t (id BIGINT PRIMARY KEY)")
        .await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    client.subscribe("a", "SELECT * FROM t", None).await;
    client.subscribe("b", "SELECT * FROM t", None).await;
    client
        .send(json!({"type": "subscribe", "subscription": {"id": "c", "sql": "SELECT * FROM t"}}))
        .await;
    let refused = client.next().await;
    assert_eq!(refused["code"], "SUBSCRIPTION_LIMIT_EXCEEDED", "{refused}");
    // The user's limit counts all of their connections.
    let mut second = Client::signed_in(&server, ROOT_BASIC).await;
    second.subscribe("a", "SELECT * FROM t", None).await;
    second
        .send(json!({"type": "subscribe", "subscription": {"id": "b", "sql": "SELECT * FROM t"}}))
        .await;
    let refused = second.next().await;
    assert_eq!(refused["code"], "SUBSCRIPTION_LIMIT_EXCEEDED", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("per_user"));

    // Too many messages: the excess is refused, the connection stays.
    for _ in 0..40 {
        second
            .send(json!({"type": "unsubscribe", "subscription_id": "x"}))
            .await;
    }
    let limited = second.next().await;
    assert_eq!(limited["code"], "RATE_LIMIT_EXCEEDED", "{limited}");
    // A frame over the read buffer but within max_message_bytes is read
    // whole; one over max_message_bytes ends the connection.
    let mut refused = json!(null);
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        second
            .send(json!({"type": "shout", "pad": "y".repeat(3_000)}))
            .await;
        refused = second.next().await;
        if refused["code"] != "RATE_LIMIT_EXCEEDED" {
            break;
        }
    }
    assert_eq!(refused["code"], "PROTOCOL", "{refused}");
    second
        .send(json!({"type": "ping", "pad": "x".repeat(10_000)}))
        .await;
    let mut ended = false;
    for _ in 0..100 {
        match tokio::time::timeout(Duration::from_secs(5), second.ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                ended = true;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Err(_) => break,
        }
    }
    assert!(ended, "an oversized frame closes the connection");

    // No credentials and no authenticate message: refused after the
    // timeout. Wrong credentials on the upgrade: no upgrade.
    let mut silent = Client::connect(&server, "").await;
    let refused = silent.next().await;
    assert_eq!(refused["type"], "auth_error", "{refused}");
    let url = format!("{}/v1/ws", server.base_url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", basic("root", "wrong").parse().unwrap());
    assert!(tokio_tungstenite::connect_async(request).await.is_err());

    // A client that never answers pings is disconnected.
    let mut sleepy = Client::signed_in(&server, ROOT_BASIC).await;
    sleepy.subscribe("z", "SELECT * FROM t", None).await;
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let mut closed = false;
    for _ in 0..10 {
        match tokio::time::timeout(Duration::from_secs(5), sleepy.ws.next()).await {
            Ok(Some(Ok(Message::Close(_)))) | Ok(None) | Ok(Some(Err(_))) => {
                closed = true;
                break;
            }
            Ok(Some(Ok(_))) => continue,
            Err(_) => break,
        }
    }
    assert!(closed, "the server closes a connection without heartbeats");
    server.stop().await;
}

/// Writers change rows at random while clients subscribe; at the end each
/// client's materialized rows equal a SELECT of its query.
#[tokio::test]
async fn concurrent_writers_and_subscribers_stay_exactly_in_sync() {
    let server = TestServer::start().await;
    server
        .sql_ok("CREATE TABLE kv (id BIGINT PRIMARY KEY, v BIGINT)")
        .await;
    let query = "SELECT id, v FROM kv WHERE v % 3 <> 0";
    let base_url = server.base_url.clone();
    let mut writers = Vec::new();
    for w in 0..3u64 {
        let client = server.client().clone();
        let url = format!("{base_url}/v1/api/sql");
        writers.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(w);
            for _ in 0..300 {
                let id = rng.i64(0..40);
                let v = rng.i64(0..100);
                let sql = match rng.u8(0..3) {
                    0 => format!(
                        "INSERT INTO kv VALUES ({id}, {v}) ON CONFLICT (id) DO UPDATE SET v = {v}"
                    ),
                    1 => format!("UPDATE kv SET v = v + {v} WHERE id = {id}"),
                    _ => format!("DELETE FROM kv WHERE id = {id}"),
                };
                let response = client
                    .post(&url)
                    .header("authorization", ROOT_BASIC)
                    .json(&json!({ "sql": sql }))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
            }
        }));
    }
    let mut clients = Vec::new();
    for c in 0..4 {
        tokio::time::sleep(Duration::from_millis(60 * c)).await;
        let mut client = Client::signed_in(&server, ROOT_BASIC).await;
        let (_, first) = client
            .subscribe("q", query, Some(json!({"batch_size": 1000000})))
            .await;
        let mut rows = BTreeMap::new();
        for row in first["rows"].as_array().unwrap() {
            rows.insert(row["id"].as_str().unwrap().to_string(), row["v"].clone());
        }
        clients.push((client, rows));
    }
    // One more client drops its connection during the writes and resumes
    // from the last `_seq` it saw.
    let resumer = {
        let url = server.base_url.clone();
        tokio::spawn(async move { resume_during_writes(&url, query).await })
    };
    for writer in writers {
        writer.await.unwrap();
    }
    // A last row that every client sees marks the end of the stream.
    server.sql_ok("INSERT INTO kv VALUES (1000, 1)").await;
    let expected = server.sql_ok(query).await;
    let expected: BTreeMap<String, Value> = expected
        .rows(0)
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].clone()))
        .collect();
    for (client, rows) in &mut clients {
        loop {
            let message = client.next().await;
            assert_eq!(message["type"], "change", "{message}");
            let kind = message["change_type"].as_str().unwrap();
            let mut done = false;
            if kind == "delete" {
                for row in message["old_values"].as_array().unwrap() {
                    let id = row["id"].as_str().unwrap();
                    assert!(rows.remove(id).is_some(), "delete of a row not held: {id}");
                }
            } else {
                for row in message["rows"].as_array().unwrap() {
                    let id = row["id"].as_str().unwrap().to_string();
                    let held = rows.insert(id.clone(), row["v"].clone());
                    assert_eq!(held.is_some(), kind == "update", "{kind} of {id}");
                    done |= id == "1000";
                }
            }
            if done {
                break;
            }
        }
        assert_eq!(*rows, expected);
    }
    assert_eq!(resumer.await.unwrap(), expected);
    server.stop().await;
}

/// Applies one `change` to materialized rows; returns whether it carried
/// the end marker (id 1000). `lenient` allows deletes of rows not held (a
/// resume's deletes name every row that may have left).
fn apply_change(
    rows: &mut BTreeMap<String, Value>,
    seen: &mut i64,
    message: &Value,
    lenient: bool,
) -> bool {
    assert_eq!(message["type"], "change", "{message}");
    let kind = message["change_type"].as_str().unwrap();
    let mut done = false;
    let field = if kind == "delete" {
        "old_values"
    } else {
        "rows"
    };
    for row in message[field].as_array().unwrap() {
        let id = row["id"].as_str().unwrap().to_string();
        if let Some(seq) = row["_seq"].as_str().and_then(|s| s.parse().ok()) {
            *seen = (*seen).max(seq);
        }
        if kind == "delete" {
            let held = rows.remove(&id).is_some();
            assert!(held || lenient, "delete of a row not held: {id}");
        } else {
            let held = rows.insert(id.clone(), row["v"].clone());
            assert_eq!(held.is_some(), kind == "update", "{kind} of {id}");
            done |= id == "1000";
        }
    }
    done
}

async fn resume_during_writes(base_url: &str, query: &str) -> BTreeMap<String, Value> {
    let connect = || async {
        let mut client = Client::connect_to(base_url, ROOT_BASIC).await;
        assert_eq!(client.next().await["type"], "auth_success");
        client
    };
    let mut rows: BTreeMap<String, Value> = BTreeMap::new();
    let mut seen = i64::MIN;
    let mut client = connect().await;
    let (_, first) = client
        .subscribe("q", query, Some(json!({"batch_size": 1000000})))
        .await;
    for row in first["rows"].as_array().unwrap() {
        rows.insert(row["id"].as_str().unwrap().to_string(), row["v"].clone());
        seen = seen.max(row["_seq"].as_str().unwrap().parse().unwrap());
    }
    for _ in 0..20 {
        let message = client.next().await;
        if apply_change(&mut rows, &mut seen, &message, false) {
            return rows;
        }
    }
    drop(client);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut client = connect().await;
    let (_, first) = client
        .subscribe(
            "q",
            query,
            Some(json!({"from": seen, "batch_size": 1000000})),
        )
        .await;
    for row in first["rows"].as_array().unwrap() {
        rows.insert(row["id"].as_str().unwrap().to_string(), row["v"].clone());
    }
    // The resume's delete, if any, names rows that may not be held.
    let mut lenient = true;
    loop {
        let message = client.next().await;
        let is_delete = message["change_type"] == "delete";
        if apply_change(&mut rows, &mut seen, &message, lenient && is_delete) {
            return rows;
        }
        lenient = false;
    }
}

#[tokio::test]
async fn equality_filters_are_indexed_and_rows_move_between_values() {
    let server = items_server().await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    for name in ["a", "b", "c"] {
        client
            .subscribe(
                name,
                &format!("SELECT id, name FROM app.items WHERE name = '{name}' AND price >= 0"),
                None,
            )
            .await;
    }
    client
        .subscribe("two", "SELECT id, name FROM app.items WHERE 2 = id", None)
        .await;
    let live = &server.context.live;
    assert!(
        live.subscriptions().iter().all(|s| s.plan.key.is_some()),
        "every one of these filters is indexed"
    );
    // b -> c: the "b" subscription sees it leave, "c" sees it arrive, and
    // "two" sees an update; "a" sees nothing.
    server
        .sql_ok("UPDATE app.items SET name = 'c' WHERE id = 2")
        .await;
    let mut seen = BTreeMap::new();
    for _ in 0..3 {
        let message = client.next().await;
        seen.insert(
            message["subscription_id"].as_str().unwrap().to_string(),
            message["change_type"].as_str().unwrap().to_string(),
        );
    }
    let expected: BTreeMap<String, String> = [("b", "delete"), ("c", "insert"), ("two", "update")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect();
    assert_eq!(seen, expected);
    server
        .sql_ok("INSERT INTO app.items VALUES (9, 'a', 1)")
        .await;
    let message = client.next().await;
    assert_eq!(message["subscription_id"], "a", "{message}");
    assert_eq!(message["change_type"], "insert");
    server.stop().await;
}

#[tokio::test]
async fn a_reused_subscription_id_gets_only_its_own_changes() {
    let server = items_server().await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    // `_seq` named first still comes last, and a column named twice once.
    let (ack, first) = client
        .subscribe(
            "s",
            "SELECT _seq, name, name FROM app.items",
            Some(json!({})),
        )
        .await;
    let names: Vec<&str> = ack["schema"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["name", "id", "_seq"]);
    let last_row_seq = first["rows"][2]["_seq"].as_str().unwrap();
    assert_eq!(first["batch_control"]["last_seq_id"], last_row_seq);

    client
        .send(json!({"type": "unsubscribe", "subscription_id": "s"}))
        .await;
    server
        .sql_ok("INSERT INTO app.items VALUES (7, 'g', 70)")
        .await;
    let (ack, _) = client
        .subscribe("s", "SELECT id, name FROM app.items", Some(json!({})))
        .await;
    assert_eq!(ack["total_rows"], 4, "the snapshot has row 7: {ack}");
    server
        .sql_ok("INSERT INTO app.items VALUES (8, 'h', 80)")
        .await;
    let change = client.next().await;
    assert_eq!(ids(&change["rows"]), ["8:\"h\""], "{change}");
    assert_eq!(live_count(&server).await, 1);
    server.stop().await;
}

/// A client that went away resumes with `from`: it gets the rows written
/// since, and a delete for the rows deleted or moved out of its filter
/// since, hot or flushed; after a compaction removed such deletes, the
/// resume is refused rather than inexact.
#[tokio::test]
async fn a_resume_from_a_seq_replays_rows_and_deletes_since() {
    let server = items_server().await;
    let query = "SELECT id, name FROM app.items WHERE price > 10";
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    let (_, first) = client.subscribe("r", query, Some(json!({}))).await;
    let mut held: BTreeMap<String, Value> = BTreeMap::new();
    for row in first["rows"].as_array().unwrap() {
        held.insert(row["id"].as_str().unwrap().to_string(), row["name"].clone());
    }
    let from = first["batch_control"]["last_seq_id"]
        .as_str()
        .unwrap()
        .to_string();
    drop(client);

    server
        .sql_ok(
            "UPDATE app.items SET price = 0 WHERE id = 2; \
             STORAGE FLUSH TABLE app.items; \
             DELETE FROM app.items WHERE id = 3; \
             INSERT INTO app.items VALUES (4, 'd', 40); \
             UPDATE app.items SET name = 'x' WHERE id = 1",
        )
        .await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    let (_, first) = client
        .subscribe("r", query, Some(json!({"from": from})))
        .await;
    for row in first["rows"].as_array().unwrap() {
        held.insert(row["id"].as_str().unwrap().to_string(), row["name"].clone());
    }
    let removed = client.next().await;
    assert_eq!(removed["change_type"], "delete", "{removed}");
    for row in removed["old_values"].as_array().unwrap() {
        held.remove(row["id"].as_str().unwrap());
    }
    let expected: BTreeMap<String, Value> = server
        .sql_ok(query)
        .await
        .rows(0)
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].clone()))
        .collect();
    assert_eq!(held, expected);
    assert_eq!(held.keys().collect::<Vec<_>>(), ["4"]);

    // Once a compaction has dropped the delete of 3, resuming from before
    // it is refused.
    server
        .sql_ok("STORAGE FLUSH TABLE app.items; STORAGE COMPACT TABLE app.items")
        .await;
    client
        .ask_subscription("old", query, Some(json!({"from": from})))
        .await;
    let refused = client.next().await;
    assert_eq!(refused["type"], "error", "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("compaction"));
    server.stop().await;
}

#[tokio::test]
async fn expired_stream_rows_arrive_as_deletes() {
    let server = TestServer::start_with(|c| c.flush.check_interval_ms = 20).await;
    server
        .sql_ok(
            "CREATE STREAM TABLE ticks (n INT) WITH (TTL_SECONDS = 1); \
             CREATE STREAM TABLE keyed (id BIGINT PRIMARY KEY, n INT) WITH (TTL_SECONDS = 1)",
        )
        .await;
    let mut client = Client::signed_in(&server, ROOT_BASIC).await;
    client.subscribe("t", "SELECT n FROM ticks", None).await;
    client.subscribe("k", "SELECT id, n FROM keyed", None).await;
    server
        .sql_ok("INSERT INTO ticks VALUES (1), (2); INSERT INTO keyed VALUES (7, 70)")
        .await;
    let mut inserted = 0;
    let mut deleted = BTreeMap::new();
    while deleted.len() < 2 {
        let message = client.next().await;
        let id = message["subscription_id"].as_str().unwrap().to_string();
        match message["change_type"].as_str().unwrap() {
            "insert" => inserted += message["rows"].as_array().unwrap().len(),
            "delete" => {
                let rows = message["old_values"].as_array().unwrap().len();
                deleted.insert(id, rows);
            }
            other => panic!("unexpected {other}: {message}"),
        }
    }
    assert_eq!(inserted, 3);
    let expected: BTreeMap<String, usize> = [("k".to_string(), 1), ("t".to_string(), 2)].into();
    assert_eq!(deleted, expected);
    server.stop().await;
}
