//! Hostile input at the network level: random WebSocket messages on a
//! signed-in connection, malformed WebSocket frames, and malformed HTTP
//! requests on raw sockets. Every input gets an error message, a 4xx answer
//! or a closed connection, never a 5xx, a panic or a hang, and the node
//! keeps serving.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use quiver_tests::{ROOT_BASIC, TestServer};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// How long one input may take to be answered.
const ANSWER: Duration = Duration::from_secs(10);

async fn server() -> TestServer {
    let server = TestServer::start_with(|c| c.websocket.max_messages_per_second = 100_000).await;
    server
        .sql_ok(
            "CREATE NAMESPACE h; CREATE TABLE h.t (id BIGINT PRIMARY KEY, name TEXT); \
             INSERT INTO h.t VALUES (1, 'one'), (2, 'two')",
        )
        .await;
    server
}

/// The node still answers a query correctly.
async fn still_serving(server: &TestServer) {
    let rows = server.sql_ok("SELECT name FROM h.t ORDER BY id").await;
    assert_eq!(rows.rows(0), &vec![json!(["one"]), json!(["two"])]);
}

fn random_text(rng: &mut fastrand::Rng) -> String {
    let alphabet = [
        '{', '}', '[', ']', '"', ':', ',', 'a', '1', ' ', '\\', 'é', '\u{0}',
    ];
    (0..rng.usize(0..80))
        .map(|_| alphabet[rng.usize(..alphabet.len())])
        .collect()
}

/// A random value of any JSON type, shallow.
fn random_json(rng: &mut fastrand::Rng) -> Value {
    match rng.u8(..8) {
        0 => Value::Null,
        1 => json!(rng.bool()),
        2 => json!(rng.i64(..)),
        3 => json!(rng.f64() * 1e300),
        4 => json!(random_text(rng)),
        5 => json!([rng.i64(..), "x"]),
        6 => json!({ "a": rng.u8(..) }),
        _ => json!(u64::MAX),
    }
}

/// A client message: a mangled version of a valid one, random JSON, or
/// not JSON at all.
fn random_message(rng: &mut fastrand::Rng) -> Message {
    let sqls = [
        "SELECT * FROM h.t WHERE id = 1",
        "SELECT * FROM h.t WHERE name LIKE 'o%'",
        "SELECT * FROM h.nope",
        "SELECT count(*) FROM h.t",
        "DELETE FROM h.t",
        "SELEC",
        "",
    ];
    let id = ["a", "b", "c"][rng.usize(..3)];
    let kind = ["next_batch", "unsubscribe"][rng.usize(..2)];
    let mut message = match rng.u8(..5) {
        0 => json!({"type": "subscribe", "subscription": {
            "id": id,
            "sql": sqls[rng.usize(..sqls.len())],
            "options": {
                "batch_size": random_json(rng),
                "last_rows": random_json(rng),
                "from": random_json(rng),
            },
        }}),
        1 => json!({"type": kind,
                    "subscription_id": random_json(rng)}),
        2 => json!({"type": random_json(rng), "subscription": random_json(rng)}),
        3 => json!({"type": "authenticate", "method": random_json(rng), "token": random_json(rng)}),
        _ => random_json(rng),
    };
    // Drop a field now and then.
    if let Some(object) = message.as_object_mut()
        && rng.u8(..4) == 0
    {
        let keys: Vec<String> = object.keys().cloned().collect();
        object.remove(&keys[rng.usize(..keys.len())]);
    }
    match rng.u8(..10) {
        0 => Message::Text(random_text(rng).into()),
        1 => Message::Binary((0..rng.usize(..64)).map(|_| rng.u8(..)).collect()),
        2 => Message::Text(
            format!(
                "{}{}",
                "[".repeat(rng.usize(100..5000)),
                "]".repeat(rng.usize(0..100))
            )
            .into(),
        ),
        3 => {
            let text = message.to_string();
            let cut = rng.usize(..=text.len());
            Message::Text(text.get(..cut).unwrap_or("{").to_string().into())
        }
        _ => Message::Text(message.to_string().into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_websocket_messages_get_errors_and_the_connection_keeps_serving() {
    let server = server().await;
    let url = format!("{}/v1/ws", server.base_url.replace("http://", "ws://"));
    let mut request = url.into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", ROOT_BASIC.parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let next = async |ws: &mut tokio_tungstenite::WebSocketStream<_>| loop {
        let frame = tokio::time::timeout(ANSWER, ws.next())
            .await
            .expect("an answer in time")
            .expect("the connection stays open")
            .expect("a valid frame");
        if let Message::Text(text) = frame {
            return serde_json::from_str::<Value>(text.as_str()).expect("JSON from the server");
        }
    };
    let welcome = next(&mut ws).await;
    assert_eq!(welcome["type"], "auth_success", "{welcome}");

    let mut rng = fastrand::Rng::with_seed(0xbad_f00d);
    let inputs = 600;
    let mut errors = 0;
    for i in 0..inputs {
        ws.send(random_message(&mut rng)).await.unwrap();
        // A probe after each input: the connection must still take a
        // subscription, whatever the input did.
        let probe = format!("probe{i}");
        ws.send(Message::Text(
            json!({"type": "subscribe", "subscription": {
                "id": probe, "sql": "SELECT * FROM h.t WHERE id = 2"}})
            .to_string()
            .into(),
        ))
        .await
        .unwrap();
        loop {
            let message = next(&mut ws).await;
            if message["type"] == "error" {
                assert!(
                    message["code"].as_str().is_some_and(|c| !c.is_empty()),
                    "{message}"
                );
                assert_ne!(message["subscription_id"], json!(probe), "{message}");
                errors += 1;
            }
            if message["type"] == "subscription_ack" && message["subscription_id"] == json!(probe) {
                break;
            }
        }
        ws.send(Message::Text(
            json!({"type": "unsubscribe", "subscription_id": probe})
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    }
    eprintln!("{inputs} random WebSocket messages, {errors} error messages");
    assert!(errors > inputs / 2, "{errors} errors for {inputs} inputs");
    still_serving(&server).await;
    server.stop().await;
}

/// Sends raw bytes on a fresh connection, then (with `half_close`) ends
/// its sending side, and reads until the server closes the connection,
/// which it must do within `ANSWER`. Returns what the server sent.
async fn exchange(address: &str, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut stream = TcpStream::connect(address).await.unwrap();
    // The server may close before everything is written.
    if stream.write_all(bytes).await.is_ok() && half_close {
        let _ = stream.shutdown().await;
    }
    let mut answer = Vec::new();
    let read = tokio::time::timeout(ANSWER, async {
        let mut chunk = [0u8; 4096];
        loop {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the connection is still open after {:?}",
        String::from_utf8_lossy(&answer)
    );
    answer
}

fn upgrade_request(address: &str) -> Vec<u8> {
    format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {address}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
         Authorization: {ROOT_BASIC}\r\n\r\n"
    )
    .into_bytes()
}

/// A client frame: FIN and `opcode`, masked with a zero key unless
/// `masked` is false, with `payload`.
fn frame(first: u8, masked: bool, payload: &[u8]) -> Vec<u8> {
    let mut out = vec![first];
    let mask_bit = if masked { 0x80 } else { 0 };
    if payload.len() < 126 {
        out.push(mask_bit | payload.len() as u8);
    } else {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    if masked {
        out.extend_from_slice(&[0, 0, 0, 0]);
    }
    out.extend_from_slice(payload);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_websocket_frames_close_the_connection() {
    let server = server().await;
    let address = server.base_url.trim_start_matches("http://").to_string();
    let ping = frame(0x81, true, br#"{"type":"ping"}"#);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unmasked text frame",
            frame(0x81, false, br#"{"type":"ping"}"#),
        ),
        ("reserved opcode", frame(0x83, true, b"x")),
        ("reserved bits", frame(0xf1, true, b"x")),
        ("continuation without a start", frame(0x80, true, b"x")),
        ("fragmented ping", frame(0x09, true, b"x")),
        ("oversized ping", frame(0x89, true, &[0u8; 200])),
        ("invalid UTF-8 text", frame(0x81, true, &[0xff, 0xfe, 0xfd])),
        (
            "length of 2^63",
            vec![
                0x81, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0,
            ],
        ),
        ("close with a bad code", frame(0x88, true, &[0x03, 0xe7])),
        (
            "random bytes",
            (0..64u8).map(|b| b.wrapping_mul(37)).collect(),
        ),
    ];
    for (name, bytes) in &cases {
        let mut input = upgrade_request(&address);
        input.extend_from_slice(&ping);
        input.extend_from_slice(bytes);
        let answer = exchange(&address, &input, false).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 101"), "{name}: {text}");
        still_serving(&server).await;
    }
    eprintln!("{} malformed WebSocket frames", cases.len());
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_http_gets_a_client_error_or_a_closed_connection() {
    let server = server().await;
    let address = server.base_url.trim_start_matches("http://").to_string();
    let post = |headers: &str, body: &str| {
        format!(
            "POST /v1/api/sql HTTP/1.1\r\nHost: x\r\nAuthorization: {ROOT_BASIC}\r\n\
             Content-Type: application/json\r\n{headers}\r\n{body}"
        )
        .into_bytes()
    };
    let huge_header = format!("X-Big: {}\r\n", "a".repeat(200_000));
    let many_headers: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("garbage", b"\x00\x01\x02 hello\r\n\r\n".to_vec()),
        ("unknown version", b"GET /health HTTP/9.9\r\n\r\n".to_vec()),
        (
            "header without colon",
            b"GET /health HTTP/1.1\r\nHost x\r\n\r\n".to_vec(),
        ),
        (
            "non-UTF-8 path",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        ),
        ("huge header", post(&huge_header, "")),
        ("many headers", post(&many_headers, "")),
        ("bad content length", post("Content-Length: abc\r\n", "{}")),
        (
            "negative content length",
            post("Content-Length: -1\r\n", "{}"),
        ),
        (
            "conflicting content lengths",
            post("Content-Length: 2\r\nContent-Length: 5\r\n", "{}"),
        ),
        (
            "length and chunked",
            post(
                "Content-Length: 4\r\nTransfer-Encoding: chunked\r\n",
                "0\r\n\r\n",
            ),
        ),
        (
            "bad chunk size",
            post("Transfer-Encoding: chunked\r\n", "zz\r\n{}\r\n0\r\n\r\n"),
        ),
        (
            "body shorter than its length",
            post("Content-Length: 100\r\nConnection: close\r\n", "{\"sql\":"),
        ),
        (
            "body that is not JSON",
            post(
                "Content-Length: 5\r\nConnection: close\r\n",
                "\u{1}\u{2}{{[",
            ),
        ),
        ("JSON nested 100,000 deep", {
            let body = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
            post(
                &format!("Content-Length: {}\r\nConnection: close\r\n", body.len()),
                &body,
            )
        }),
        ("HTTP/0.9", b"GET /health\r\n\r\n".to_vec()),
        ("empty lines", b"\r\n\r\n\r\n\r\n".to_vec()),
    ];
    for (name, bytes) in &cases {
        let answer = exchange(&address, bytes, true).await;
        let text = String::from_utf8_lossy(&answer);
        let status: Option<u16> = text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse().ok());
        match status {
            // A closed connection without an answer is a clear refusal too.
            None => assert!(answer.is_empty(), "{name}: {text}"),
            Some(code) => assert!((400..500).contains(&code), "{name}: {text}"),
        }
        still_serving(&server).await;
    }
    eprintln!("{} malformed HTTP requests", cases.len());
    server.stop().await;
}
