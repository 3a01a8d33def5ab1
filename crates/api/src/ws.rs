//! `/v1/ws`: live queries over WebSocket, in KalamDB's v1 protocol.
//!
//! A connection authenticates (on the upgrade request or with its first
//! message), then subscribes to queries. Each subscription gets its
//! snapshot in batches (`next_batch` asks for the next one) and then every
//! change. Changes that arrive while a snapshot is still being sent wait
//! until its last batch is out, so the client never sees a row change
//! before the row. The connection ends on a close frame, a dropped TCP
//! connection, a missed heartbeat or the node's shutdown, and all of its
//! subscriptions end with it.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade, close_code};
use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{Array, Int64Array, RecordBatch};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use quiver_common::ErrorCode;
use quiver_config::WebSocketConfig;
use quiver_live::{ChangeKind, ConnectionHandle, ConnectionId, Outbound, SubscribeError};
use quiver_query::{Kept, Snapshot, SnapshotMemory};
use serde::{Deserialize, Serialize};
use serde_json::{Value as Json, json};

use quiver_service::{Credentials, LiveRequest, Peer, Principal};

use crate::auth::{credentials, peer};
use crate::encode::{schema_json, write_objects};
use crate::error::ApiError;
use crate::routes::ApiState;

/// Rows per snapshot batch unless the subscription asks otherwise.
const DEFAULT_BATCH_SIZE: usize = 1000;

/// `GET /v1/ws`: checks credentials sent on the upgrade request, if any,
/// and hands the socket to [`serve_socket`].
pub(crate) async fn upgrade(
    State(state): State<ApiState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let peer = peer(addr, &headers);
    let principal = if headers.contains_key(AUTHORIZATION) {
        match state
            .service
            .authenticate(credentials(&headers), peer)
            .await
        {
            Ok(principal) => Some(principal),
            Err(error) => return ApiError::from(error).into_response(),
        }
    } else {
        None
    };
    let config = state.config.get().websocket;
    let limit = config.max_message_bytes;
    // The read buffer is filled in full on every read, so its size is
    // memory each idle connection keeps; replies are flushed per message.
    ws.max_message_size(limit)
        .max_frame_size(limit)
        .read_buffer_size(config.read_buffer_bytes)
        .write_buffer_size(0)
        .on_upgrade(move |socket| serve_socket(state, socket, peer, principal))
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum ClientMessage {
    Authenticate {
        #[serde(default)]
        method: Option<String>,
        #[serde(default)]
        token: Option<String>,
    },
    Subscribe {
        subscription: SubscribeRequest,
    },
    NextBatch {
        subscription_id: String,
    },
    Unsubscribe {
        subscription_id: String,
    },
    Ping,
}

#[derive(Debug, Deserialize)]
struct SubscribeRequest {
    id: String,
    sql: String,
    #[serde(default)]
    options: Option<SubscribeOptions>,
}

/// Unknown options (client-side settings some clients send) are ignored.
#[derive(Debug, Default, Deserialize, Serialize)]
struct SubscribeOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch_size: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_rows: Option<usize>,
    #[serde(
        default,
        alias = "from_seq_id",
        skip_serializing_if = "Option::is_none"
    )]
    from: Option<Json>,
}

fn text(value: Json) -> Message {
    Message::Text(Utf8Bytes::from(value.to_string()))
}

/// An `error` message; `subscription_id` is empty for errors about the
/// connection rather than one subscription.
fn error_message(subscription_id: Option<&str>, code: ErrorCode, message: &str) -> Message {
    text(json!({
        "type": "error",
        "subscription_id": subscription_id.unwrap_or_default(),
        "code": code.socket_name(),
        "message": message,
    }))
}

/// A client message's `_seq`: a JSON number or a string of digits.
fn seq_of(value: &Json) -> Option<i64> {
    match value {
        Json::Number(n) => n.as_i64(),
        Json::String(s) => s.parse().ok(),
        _ => None,
    }
}

/// Waits for an `authenticate` message and checks its token.
async fn wait_for_auth(
    state: &ApiState,
    socket: &mut WebSocket,
    peer: Peer,
) -> Result<Principal, String> {
    loop {
        let message = match socket.recv().await {
            Some(Ok(message)) => message,
            _ => return Err("the connection closed before authenticating".to_string()),
        };
        let Message::Text(body) = message else {
            continue;
        };
        return match serde_json::from_str::<ClientMessage>(body.as_str()) {
            Ok(ClientMessage::Authenticate { method, token }) => {
                if method.as_deref().is_some_and(|m| m != "jwt") {
                    return Err("only the jwt authentication method is supported".to_string());
                }
                let token = token.ok_or("authenticate needs a token")?;
                state
                    .service
                    .authenticate(Credentials::Bearer(token.trim().to_string()), peer)
                    .await
                    .map_err(|e| e.message)
            }
            Ok(_) => Err("the first message must be authenticate".to_string()),
            Err(e) => Err(format!("invalid authenticate message: {e}")),
        };
    }
}

async fn serve_socket(
    state: ApiState,
    mut socket: WebSocket,
    peer: Peer,
    principal: Option<Principal>,
) {
    // A connection keeps the settings it started with.
    let websocket = state.config.get().websocket;
    let principal = match principal {
        Some(principal) => principal,
        None => {
            let limit = Duration::from_secs(websocket.auth_timeout_secs);
            let outcome =
                tokio::time::timeout(limit, wait_for_auth(&state, &mut socket, peer)).await;
            match outcome {
                Ok(Ok(principal)) => principal,
                Ok(Err(reason)) => return refuse(socket, &reason).await,
                Err(_) => {
                    let reason = format!(
                        "no authentication within {} s ([websocket] auth_timeout_secs)",
                        limit.as_secs()
                    );
                    return refuse(socket, &reason).await;
                }
            }
        }
    };
    let welcome = json!({
        "type": "auth_success",
        "user": principal.user.as_str(),
        "role": principal.role.as_str(),
        "protocol": {"serialization": "json", "compression": "none"},
    });
    if socket.send(text(welcome)).await.is_err() {
        return;
    }
    let live = state.live.clone();
    let handle = live.connect(principal.user.clone());
    let id = handle.id;
    let per_second = NonZeroU32::new(websocket.max_messages_per_second).unwrap_or(NonZeroU32::MIN);
    let mut connection = Connection {
        state,
        websocket,
        principal,
        id,
        current: HashMap::new(),
        loading: HashMap::new(),
        last_heard: Instant::now(),
        rate: RateLimiter::direct(Quota::per_second(per_second)),
    };
    connection.run(socket, handle).await;
    live.disconnect(id);
}

async fn refuse(mut socket: WebSocket, reason: &str) {
    let _ = socket
        .send(text(json!({"type": "auth_error", "message": reason})))
        .await;
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code: close_code::POLICY,
            reason: Utf8Bytes::from("authentication failed"),
        })))
        .await;
}

/// A subscription whose snapshot is still being sent.
struct Loading {
    pages: VecDeque<RecordBatch>,
    batch_num: usize,
    /// Changes held back until the last page is out.
    held: Vec<Outbound>,
    /// The cut the snapshot was read at.
    start_seq: i64,
    /// On a resume, where it resumed from.
    resumed_from: Option<i64>,
    /// The pages' share of the query memory pool, until they are out.
    _memory: SnapshotMemory,
}

impl Loading {
    /// What the client has, for a resume, once the page ending at `sent`
    /// is out. Pages are in `_seq` order: a full or `last_rows` snapshot
    /// cut short resumes after its last page sent, since the rest of it
    /// and every later change were written after that. A resume cut
    /// short starts again where it started, since the deletes it owes
    /// are only sent after its last page.
    fn delivered(&self, sent: Option<i64>) -> i64 {
        if self.pages.is_empty() {
            return self.start_seq;
        }
        match (self.resumed_from, sent) {
            (Some(from), _) => from,
            (None, Some(sent)) => sent.min(self.start_seq),
            (None, None) => self.start_seq,
        }
    }
}

/// A subscription of this connection as the socket sees it.
struct Current {
    /// The registration messages must belong to; older ones are dropped.
    live_id: Arc<str>,
    /// The `_seq` up to which the client has everything: the snapshot's
    /// start, then the last change written to the socket.
    delivered: i64,
}

struct Connection {
    state: ApiState,
    websocket: WebSocketConfig,
    principal: Principal,
    id: ConnectionId,
    /// By subscription id.
    current: HashMap<String, Current>,
    loading: HashMap<String, Loading>,
    last_heard: Instant,
    /// The client's message allowance.
    rate: DefaultDirectRateLimiter,
}

/// Why the message loop ended.
enum End {
    /// The client closed or the connection broke.
    Gone,
    /// The server closes, with this code and reason.
    Close(u16, String),
}

impl Connection {
    async fn run(&mut self, mut socket: WebSocket, mut handle: ConnectionHandle) {
        let config = self.websocket;
        let mut ping = tokio::time::interval(Duration::from_secs(config.ping_interval_secs));
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let client_timeout = Duration::from_secs(config.client_timeout_secs);
        let shutdown = self.state.shutdown.clone();
        let end = 'serve: loop {
            let outgoing: Vec<Message> = tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    break End::Close(close_code::AWAY, "server shutting down".into())
                }
                Some(message) = handle.control.recv() => match message {
                    Outbound::Closed { reason } => break End::Close(close_code::POLICY, reason),
                    message => self.outbound(message),
                },
                _ = ping.tick() => {
                    if self.last_heard.elapsed() > client_timeout {
                        break End::Close(close_code::POLICY, "heartbeat timeout".into());
                    }
                    vec![Message::Ping(Default::default())]
                }
                received = socket.recv() => match received {
                    None | Some(Err(_)) => break End::Gone,
                    Some(Ok(message)) => {
                        self.last_heard = Instant::now();
                        match message {
                            Message::Text(body) => self.handle_text(body.as_str()).await,
                            Message::Binary(_) => vec![error_message(
                                None,
                                ErrorCode::UnsupportedData,
                                "binary frames are not supported; send JSON text frames",
                            )],
                            Message::Close(_) => break End::Gone,
                            Message::Ping(_) | Message::Pong(_) => Vec::new(),
                        }
                    }
                },
                Some(message) = handle.outbound.recv() => self.outbound(message),
            };
            for message in outgoing {
                if socket.send(message).await.is_err() {
                    break 'serve End::Gone;
                }
            }
        };
        if let End::Close(code, reason) = end {
            let _ = socket
                .send(Message::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::from(reason),
                })))
                .await;
        }
    }

    /// What to send for a message of the manager: nothing for a
    /// registration that has ended or been replaced, nothing yet while its
    /// snapshot is still being sent (the change is held until then).
    fn outbound(&mut self, message: Outbound) -> Vec<Message> {
        match message {
            Outbound::Change {
                ref subscription_id,
                ref live_id,
                ..
            } => {
                let id = subscription_id.clone();
                if !self.is_current(&id, live_id) {
                    return Vec::new();
                }
                let capacity = self.websocket.queue_capacity;
                let held = self.loading.get(&id).map(|l| l.held.len());
                match held {
                    Some(held) if held < capacity => {
                        if let Some(loading) = self.loading.get_mut(&id) {
                            loading.held.push(message);
                        }
                        Vec::new()
                    }
                    Some(_) => {
                        self.state.live.unsubscribe(self.id, &id);
                        self.state.live.note_overflow();
                        vec![self.ended(
                            &id,
                            ErrorCode::SubscriptionOverflow,
                            "more changes arrived than the queue holds while the snapshot \
                             was sent",
                        )]
                    }
                    None => vec![self.deliver(&message)],
                }
            }
            Outbound::Error {
                subscription_id,
                live_id,
                code,
                message,
            } => {
                if !self.is_current(&subscription_id, &live_id) {
                    return Vec::new();
                }
                vec![self.ended(&subscription_id, code, &message)]
            }
            // Handled where control messages arrive.
            Outbound::Closed { .. } => Vec::new(),
        }
    }

    fn is_current(&self, subscription_id: &str, live_id: &Arc<str>) -> bool {
        self.current
            .get(subscription_id)
            .is_some_and(|c| c.live_id == *live_id)
    }

    /// Encodes a change for the socket and records it as delivered.
    fn deliver(&mut self, message: &Outbound) -> Message {
        if let Outbound::Change {
            subscription_id,
            last_seq,
            ..
        } = message
            && let Some(current) = self.current.get_mut(subscription_id)
        {
            current.delivered = current.delivered.max(*last_seq);
        }
        encode_outbound(message)
    }

    /// Forgets an ended subscription and tells the client; an overflow
    /// names the `_seq` to resume from.
    fn ended(&mut self, subscription_id: &str, code: ErrorCode, message: &str) -> Message {
        self.loading.remove(subscription_id);
        let current = self.current.remove(subscription_id);
        let message = match (code, current) {
            (ErrorCode::SubscriptionOverflow, Some(current)) => format!(
                "{message}; everything up to _seq {seq} was delivered: subscribe again with \
                 \"from\": {seq}",
                seq = current.delivered
            ),
            _ => message.to_string(),
        };
        error_message(Some(subscription_id), code, &message)
    }

    async fn handle_text(&mut self, body: &str) -> Vec<Message> {
        if self.rate.check().is_err() {
            return vec![error_message(
                None,
                ErrorCode::RateLimitExceeded,
                &format!(
                    "more than {} messages per second ([websocket] max_messages_per_second); \
                     the message was ignored",
                    self.websocket.max_messages_per_second
                ),
            )];
        }
        let message = match serde_json::from_str::<ClientMessage>(body) {
            Ok(message) => message,
            Err(e) => {
                return vec![error_message(
                    None,
                    ErrorCode::Protocol,
                    &format!("invalid message: {e}"),
                )];
            }
        };
        match message {
            ClientMessage::Ping => Vec::new(),
            ClientMessage::Authenticate { .. } => Vec::new(),
            ClientMessage::Unsubscribe { subscription_id } => {
                self.loading.remove(&subscription_id);
                self.current.remove(&subscription_id);
                self.state.live.unsubscribe(self.id, &subscription_id);
                Vec::new()
            }
            ClientMessage::NextBatch { subscription_id } => self.next_batch(&subscription_id),
            ClientMessage::Subscribe { subscription } => self.subscribe(subscription).await,
        }
    }

    async fn subscribe(&mut self, request: SubscribeRequest) -> Vec<Message> {
        let id = request.id.clone();
        let fail =
            |code: ErrorCode, message: String| vec![error_message(Some(&id), code, &message)];
        if id.is_empty() || id.len() > 128 {
            return fail(
                ErrorCode::InvalidSubscriptionId,
                "a subscription id must be 1 to 128 characters".to_string(),
            );
        }
        let live = self.state.live.clone();
        if let Err(e) = live.check_subscribe(self.id, &id) {
            let code = match e {
                SubscribeError::TooMany(_) | SubscribeError::TooManyForUser(_) => {
                    ErrorCode::SubscriptionLimitExceeded
                }
                SubscribeError::DuplicateId(_) => ErrorCode::InvalidSubscriptionId,
                SubscribeError::UnknownConnection => ErrorCode::SubscriptionFailed,
            };
            return fail(code, e.to_string());
        }
        // Without options a subscription gets live changes only.
        let given = request.options.is_some();
        let options_text = match &request.options {
            Some(options) => serde_json::to_string(options).expect("options serialize"),
            None => "null".to_string(),
        };
        let options = request.options.unwrap_or_default();
        let snapshot = match (given, &options) {
            (false, _) => Snapshot::None,
            (
                true,
                SubscribeOptions {
                    from: Some(from), ..
                },
            ) => match seq_of(from) {
                Some(seq) => Snapshot::Since(seq),
                None => {
                    return fail(
                        ErrorCode::Protocol,
                        format!("\"from\" must be a _seq number, got {from}"),
                    );
                }
            },
            (
                true,
                SubscribeOptions {
                    last_rows: Some(n), ..
                },
            ) => Snapshot::Last(*n),
            (true, _) => Snapshot::Full,
        };
        let batch_size = options.batch_size.unwrap_or(DEFAULT_BATCH_SIZE).max(1);
        let request = LiveRequest {
            connection: self.id,
            subscription_id: id.clone(),
            sql: request.sql,
            options: options_text,
            snapshot,
        };
        let subscribed = match self.state.service.subscribe(&self.principal, request).await {
            Ok((principal, subscribed)) => {
                self.principal = principal;
                subscribed
            }
            Err(e) => return fail(e.code, e.message),
        };
        // Held by the connection from here: nothing between this and the
        // socket can be cancelled.
        let Kept {
            subscription,
            rows,
            removed,
            memory,
        } = subscribed.keep();
        let schema = subscription.plan.schema.clone();
        let start_seq = subscription.start_seq;
        let mut pages: VecDeque<RecordBatch> = VecDeque::new();
        let mut total = 0;
        for batch in rows {
            total += batch.num_rows();
            let mut offset = 0;
            while offset < batch.num_rows() {
                let len = batch_size.min(batch.num_rows() - offset);
                pages.push_back(batch.slice(offset, len));
                offset += len;
            }
        }
        let last_seq = pages.back().and_then(last_seq_of);
        let has_more = pages.len() > 1;
        let mut ack = json!({
            "type": "subscription_ack",
            "subscription_id": id,
            "total_rows": total,
            "batch_control": {
                "batch_num": 0,
                "has_more": has_more,
                "status": if has_more { "loading" } else { "ready" },
            },
            "schema": schema_json(&schema),
        });
        if let Some(seq) = last_seq {
            ack["batch_control"]["last_seq_id"] = json!(seq.to_string());
        }
        let mut loading = Loading {
            pages,
            batch_num: 0,
            held: Vec::new(),
            start_seq,
            resumed_from: match snapshot {
                Snapshot::Since(from) => Some(from),
                _ => None,
            },
            _memory: memory,
        };
        let (first, sent) = initial_batch(&id, &mut loading);
        self.current.insert(
            id.clone(),
            Current {
                live_id: subscription.live_id.clone(),
                delivered: loading.delivered(sent),
            },
        );
        let mut out = vec![text(ack), first];
        // On a resume, the rows that went away follow the rows.
        if let Some(removed) = removed {
            let left = Outbound::Change {
                subscription_id: id.clone(),
                live_id: subscription.live_id.clone(),
                kind: ChangeKind::Delete,
                rows: None,
                last_seq: start_seq,
                old_values: Some(removed),
            };
            if loading.pages.is_empty() {
                out.push(self.deliver(&left));
            } else {
                loading.held.push(left);
            }
        }
        if !loading.pages.is_empty() {
            self.loading.insert(id, loading);
        }
        out
    }

    fn next_batch(&mut self, id: &str) -> Vec<Message> {
        let Some(loading) = self.loading.get_mut(id) else {
            return vec![error_message(
                Some(id),
                ErrorCode::InvalidSubscriptionId,
                "no snapshot batch is pending for this subscription",
            )];
        };
        loading.batch_num += 1;
        let (page, sent) = initial_batch(id, loading);
        let delivered = loading.delivered(sent);
        if let Some(current) = self.current.get_mut(id) {
            current.delivered = delivered;
        }
        let mut out = vec![page];
        if loading.pages.is_empty() {
            let done = self.loading.remove(id).expect("present");
            for held in &done.held {
                out.push(self.deliver(held));
            }
        }
        out
    }
}

/// The next snapshot page as an `initial_data_batch` (empty when there is
/// none), taken from `loading`, and the `_seq` of its last row.
fn initial_batch(id: &str, loading: &mut Loading) -> (Message, Option<i64>) {
    let page = loading.pages.pop_front();
    let has_more = !loading.pages.is_empty();
    let status = match (has_more, loading.batch_num) {
        (false, _) => "ready",
        (true, 0) => "loading",
        (true, _) => "loading_batch",
    };
    let mut control = json!({
        "batch_num": loading.batch_num,
        "has_more": has_more,
        "status": status,
    });
    let sent = page.as_ref().and_then(last_seq_of);
    if let Some(seq) = sent {
        control["last_seq_id"] = json!(seq.to_string());
    }
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"type\":\"initial_data_batch\",\"subscription_id\":");
    serde_json::to_writer(&mut out, id).expect("writing to a Vec cannot fail");
    out.extend_from_slice(b",\"rows\":[");
    if let Some(page) = &page {
        write_objects(page, &mut out, true);
    }
    out.extend_from_slice(b"],\"batch_control\":");
    serde_json::to_writer(&mut out, &control).expect("writing to a Vec cannot fail");
    out.push(b'}');
    let message = Message::Text(Utf8Bytes::from(
        String::from_utf8(out).expect("JSON is UTF-8"),
    ));
    (message, sent)
}

/// The `_seq` of a batch's last row (`_seq` is its last column).
fn last_seq_of(batch: &RecordBatch) -> Option<i64> {
    let seqs = batch
        .columns()
        .last()?
        .as_any()
        .downcast_ref::<Int64Array>()?;
    (!seqs.is_empty()).then(|| seqs.value(seqs.len() - 1))
}

fn encode_outbound(message: &Outbound) -> Message {
    match message {
        Outbound::Error {
            subscription_id,
            code,
            message,
            ..
        } => error_message(Some(subscription_id), *code, message),
        Outbound::Closed { reason } => error_message(None, ErrorCode::InvalidCredentials, reason),
        Outbound::Change {
            subscription_id,
            kind,
            rows,
            old_values,
            ..
        } => {
            let mut out = Vec::with_capacity(256);
            out.extend_from_slice(b"{\"type\":\"change\",\"subscription_id\":");
            serde_json::to_writer(&mut out, subscription_id).expect("writing to a Vec cannot fail");
            out.extend_from_slice(b",\"change_type\":\"");
            out.extend_from_slice(kind.as_str().as_bytes());
            out.push(b'"');
            for (name, batch) in [("rows", rows), ("old_values", old_values)] {
                if let Some(batch) = batch {
                    out.extend_from_slice(format!(",\"{name}\":[").as_bytes());
                    write_objects(batch, &mut out, true);
                    out.push(b']');
                }
            }
            out.push(b'}');
            Message::Text(Utf8Bytes::from(
                String::from_utf8(out).expect("JSON is UTF-8"),
            ))
        }
    }
}
