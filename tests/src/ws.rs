//! A WebSocket client of `/v1/ws` for tests: connect, sign in, send and
//! read JSON messages, subscribe.

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::TestServer;

/// One connection to a node's `/v1/ws`.
pub struct WsClient {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    /// Connects with `authorization` on the upgrade request (none when
    /// empty).
    pub async fn connect(server: &TestServer, authorization: &str) -> Self {
        Self::connect_to(&server.base_url, authorization).await
    }

    /// Connects to the node at `base_url` (`http://...`).
    pub async fn connect_to(base_url: &str, authorization: &str) -> Self {
        let url = format!("{}/v1/ws", base_url.replace("http://", "ws://"));
        let mut request = url.into_client_request().unwrap();
        if !authorization.is_empty() {
            request
                .headers_mut()
                .insert("authorization", authorization.parse().unwrap());
        }
        let (ws, _) = tokio_tungstenite::connect_async_with_config(request, None, true)
            .await
            .unwrap();
        Self { ws }
    }

    /// Connects and reads `auth_success`.
    pub async fn signed_in(server: &TestServer, authorization: &str) -> Self {
        let mut client = Self::connect(server, authorization).await;
        let welcome = client.next().await;
        assert_eq!(welcome["type"], "auth_success", "{welcome}");
        client
    }

    pub async fn send(&mut self, value: Value) {
        self.ws
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// The next JSON message, skipping pings.
    pub async fn next(&mut self) -> Value {
        loop {
            let message = tokio::time::timeout(Duration::from_secs(20), self.ws.next())
                .await
                .expect("a message within 20 s")
                .expect("the connection is open")
                .expect("a frame");
            match message {
                Message::Text(text) => return serde_json::from_str(text.as_str()).unwrap(),
                Message::Close(frame) => {
                    return json!({"type": "closed", "frame": format!("{frame:?}")});
                }
                _ => continue,
            }
        }
    }

    /// Sends a subscription request; the answer is left to read.
    pub async fn ask_subscription(&mut self, id: &str, sql: &str, options: Option<Value>) {
        let mut subscription = json!({"id": id, "sql": sql});
        if let Some(options) = options {
            subscription["options"] = options;
        }
        self.send(json!({"type": "subscribe", "subscription": subscription}))
            .await;
    }

    /// Subscribes and returns the ack and the first batch.
    pub async fn subscribe(
        &mut self,
        id: &str,
        sql: &str,
        options: Option<Value>,
    ) -> (Value, Value) {
        self.ask_subscription(id, sql, options).await;
        let ack = self.next().await;
        assert_eq!(ack["type"], "subscription_ack", "{ack}");
        let first = self.next().await;
        assert_eq!(first["type"], "initial_data_batch", "{first}");
        (ack, first)
    }
}
