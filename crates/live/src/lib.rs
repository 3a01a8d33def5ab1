//! Live queries: the connections of `/v1/ws`, their subscriptions indexed
//! by table, and the dispatcher that turns committed changes into
//! notifications.
//!
//! Writers hand each statement's changes to the [`LiveQueryManager`]
//! through an unbounded channel, after their commit and while they still
//! hold the table's writer lock, so changes arrive in commit order and a
//! writer never waits on a subscriber. A subscription is registered under
//! the same lock, after its snapshot is read, with the last `_seq` issued
//! at that moment: it is sent exactly the changes with a larger `_seq`.
//! Each connection has a bounded queue; a subscription whose queue is full
//! is dropped with `SUBSCRIPTION_OVERFLOW` rather than skipped.

mod filter;
mod index;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use dashmap::DashMap;
use datafusion::physical_expr::PhysicalExpr;
use quiver_common::{ErrorCode, NodeId, UserId};
use quiver_store::Scope;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use filter::{ChangeKind, classify};
pub use index::EqualityKey;
use index::TableSubscriptions;

/// A `/v1/ws` connection's number on this node.
pub type ConnectionId = u64;

/// The changes one statement committed to one scope of a table, in commit
/// order. `old` and `new` hold one row per change in the table's full
/// schema (columns, then `_seq`); `had_old[i]` and `has_new[i]` say
/// whether row `i` of each is real (an insert has no old row, a delete
/// no new one; the other side then repeats the real row).
#[derive(Debug, Clone)]
pub struct ChangeSet {
    pub table_id: u64,
    pub scope: Scope,
    pub seqs: Vec<i64>,
    pub had_old: Vec<bool>,
    pub has_new: Vec<bool>,
    pub old: RecordBatch,
    pub new: RecordBatch,
}

/// A message for a connection's socket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// Rows entering (`insert`), changing (`update`) or leaving
    /// (`delete`) a subscription, in the subscription's projection.
    Change {
        subscription_id: String,
        /// Which registration of `subscription_id` this is for: a client
        /// may unsubscribe and subscribe again under the same id.
        live_id: Arc<str>,
        kind: ChangeKind,
        rows: Option<RecordBatch>,
        old_values: Option<RecordBatch>,
        /// The `_seq` of the last row.
        last_seq: i64,
    },
    /// The subscription has ended; the client is told why.
    Error {
        subscription_id: String,
        live_id: Arc<str>,
        code: ErrorCode,
        message: String,
    },
    /// The connection is over: its user signed out, changed or is gone.
    Closed { reason: String },
}

/// What a subscription selects, compiled against the table's schema.
#[derive(Debug, Clone)]
pub struct LivePlan {
    pub namespace: String,
    pub table: String,
    pub table_id: u64,
    pub scope: Scope,
    /// `None` selects every row.
    pub filter: Option<Arc<dyn PhysicalExpr>>,
    /// A column value the filter requires, if it requires one: changes
    /// are matched to such subscriptions through an index.
    pub key: Option<EqualityKey>,
    /// Columns sent, as indices into the table's full schema; `_seq` last.
    pub projection: Vec<usize>,
    /// The schema of what is sent.
    pub schema: SchemaRef,
}

/// One live subscription.
#[derive(Debug)]
pub struct Subscription {
    pub live_id: Arc<str>,
    pub connection: ConnectionId,
    pub subscription_id: String,
    pub user: UserId,
    pub query: String,
    pub options: String,
    pub plan: LivePlan,
    /// Changes up to this `_seq` are in the snapshot; later ones are sent.
    pub start_seq: i64,
    pub created_at: i64,
    last_update: AtomicI64,
    changes: AtomicU64,
    /// Set once the subscription has ended; nothing more is queued.
    ended: AtomicBool,
    outbound: mpsc::Sender<Outbound>,
    control: mpsc::UnboundedSender<Outbound>,
}

impl Subscription {
    /// Microseconds since the epoch of the last change sent; 0 if none.
    pub fn last_update(&self) -> i64 {
        self.last_update.load(Ordering::Relaxed)
    }

    /// Notifications sent so far.
    pub fn changes(&self) -> u64 {
        self.changes.load(Ordering::Relaxed)
    }
}

/// What a registered connection reads its messages from.
#[derive(Debug)]
pub struct ConnectionHandle {
    pub id: ConnectionId,
    /// Notifications, bounded by the queue size.
    pub outbound: mpsc::Receiver<Outbound>,
    /// Subscription errors (overflow, kill), which must get through even
    /// when the notification queue is full.
    pub control: mpsc::UnboundedReceiver<Outbound>,
}

#[derive(Debug)]
struct Connection {
    user: UserId,
    outbound: mpsc::Sender<Outbound>,
    control: mpsc::UnboundedSender<Outbound>,
    /// By the client's subscription id.
    subscriptions: DashMap<String, Arc<Subscription>>,
}

/// Limits of the live query service.
#[derive(Debug, Clone, Copy)]
pub struct LiveLimits {
    pub max_subscriptions_per_connection: usize,
    pub max_subscriptions_per_user: usize,
    /// Notifications a connection may have waiting to be sent.
    pub queue_capacity: usize,
}

/// Counts of the live query service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveStats {
    pub connections: u64,
    pub subscriptions: u64,
    pub notifications: u64,
    pub overflows: u64,
}

/// Why a subscription could not be registered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeError {
    UnknownConnection,
    DuplicateId(String),
    TooMany(usize),
    TooManyForUser(usize),
}

impl std::fmt::Display for SubscribeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UnknownConnection => f.write_str("the connection is closed"),
            Self::DuplicateId(id) => write!(f, "subscription id {id} is already in use"),
            Self::TooMany(limit) => write!(
                f,
                "a connection may have at most {limit} subscriptions \
                 ([websocket] max_subscriptions_per_connection)"
            ),
            Self::TooManyForUser(limit) => write!(
                f,
                "a user may have at most {limit} subscriptions \
                 ([websocket] max_subscriptions_per_user)"
            ),
        }
    }
}

/// Every connection and subscription of the node.
#[derive(Debug)]
pub struct LiveQueryManager {
    node_id: NodeId,
    /// Replaced when the configuration is reloaded.
    limits: ArcSwap<LiveLimits>,
    /// Notifications queued for clients since start.
    notifications: AtomicU64,
    /// Subscriptions ended because their client fell behind.
    overflows: AtomicU64,
    next_connection: AtomicU64,
    /// Numbers subscriptions, so that every live id is new.
    next_subscription: AtomicU64,
    connections: DashMap<ConnectionId, Arc<Connection>>,
    /// Subscriptions by table id; a table is present only while watched.
    tables: DashMap<u64, TableSubscriptions>,
    /// Every subscription by live id.
    live: DashMap<Arc<str>, Arc<Subscription>>,
    /// Subscriptions per user.
    per_user: DashMap<UserId, usize>,
    changes: mpsc::UnboundedSender<ChangeSet>,
    receiver: parking_lot::Mutex<Option<mpsc::UnboundedReceiver<ChangeSet>>>,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

impl LiveQueryManager {
    pub fn new(node_id: NodeId, limits: LiveLimits) -> Self {
        let (changes, receiver) = mpsc::unbounded_channel();
        Self {
            node_id,
            limits: ArcSwap::from_pointee(limits),
            notifications: AtomicU64::new(0),
            overflows: AtomicU64::new(0),
            next_connection: AtomicU64::new(1),
            next_subscription: AtomicU64::new(1),
            connections: DashMap::new(),
            tables: DashMap::new(),
            live: DashMap::new(),
            per_user: DashMap::new(),
            changes,
            receiver: parking_lot::Mutex::new(Some(receiver)),
        }
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    pub fn connection_count(&self) -> usize {
        self.connections.len()
    }

    /// Counts a subscription ended because its client fell behind while
    /// its snapshot was still being sent.
    pub fn note_overflow(&self) {
        self.overflows.fetch_add(1, Ordering::Relaxed);
    }

    /// Limits for new connections and subscriptions from now on.
    pub fn set_limits(&self, limits: LiveLimits) {
        self.limits.store(Arc::new(limits));
    }

    pub fn stats(&self) -> LiveStats {
        LiveStats {
            connections: self.connections.len() as u64,
            subscriptions: self.live.len() as u64,
            notifications: self.notifications.load(Ordering::Relaxed),
            overflows: self.overflows.load(Ordering::Relaxed),
        }
    }

    /// Whether any subscription reads the table; writers build change
    /// sets only then.
    pub fn watches(&self, table_id: u64) -> bool {
        self.tables.contains_key(&table_id)
    }

    /// Hands a statement's changes to the dispatcher. Never blocks.
    pub fn publish(&self, changes: ChangeSet) {
        // Fails only once the dispatcher has stopped, at shutdown.
        let _ = self.changes.send(changes);
    }

    /// Registers a connection of `user`.
    pub fn connect(&self, user: UserId) -> ConnectionHandle {
        let id = self.next_connection.fetch_add(1, Ordering::Relaxed);
        let capacity = self.limits.load().queue_capacity;
        let (outbound, outbound_rx) = mpsc::channel(capacity.max(1));
        let (control, control_rx) = mpsc::unbounded_channel();
        self.connections.insert(
            id,
            Arc::new(Connection {
                user,
                outbound,
                control,
                subscriptions: DashMap::new(),
            }),
        );
        ConnectionHandle {
            id,
            outbound: outbound_rx,
            control: control_rx,
        }
    }

    /// Checks that `connection` may add a subscription named `id`.
    pub fn check_subscribe(
        &self,
        connection: ConnectionId,
        id: &str,
    ) -> Result<(), SubscribeError> {
        let conn = self
            .connections
            .get(&connection)
            .ok_or(SubscribeError::UnknownConnection)?;
        if conn.subscriptions.contains_key(id) {
            return Err(SubscribeError::DuplicateId(id.to_string()));
        }
        let limits = **self.limits.load();
        if conn.subscriptions.len() >= limits.max_subscriptions_per_connection {
            return Err(SubscribeError::TooMany(
                limits.max_subscriptions_per_connection,
            ));
        }
        let held = self.per_user.get(&conn.user).map_or(0, |n| *n);
        if held >= limits.max_subscriptions_per_user {
            return Err(SubscribeError::TooManyForUser(
                limits.max_subscriptions_per_user,
            ));
        }
        Ok(())
    }

    /// Registers a subscription. Call with the table's writer lock held,
    /// with the last `_seq` issued: the changes committed after it are
    /// the subscription's, those before belong in its snapshot.
    #[allow(clippy::too_many_arguments)]
    pub fn subscribe(
        &self,
        connection: ConnectionId,
        subscription_id: &str,
        query: &str,
        options: &str,
        plan: LivePlan,
        start_seq: i64,
    ) -> Result<Arc<Subscription>, SubscribeError> {
        self.check_subscribe(connection, subscription_id)?;
        let conn = self
            .connections
            .get(&connection)
            .map(|c| c.clone())
            .ok_or(SubscribeError::UnknownConnection)?;
        let number = self.next_subscription.fetch_add(1, Ordering::Relaxed);
        let subscription = Arc::new(Subscription {
            live_id: format!("{}-{connection}-{number}", self.node_id).into(),
            connection,
            subscription_id: subscription_id.to_string(),
            user: conn.user.clone(),
            query: query.to_string(),
            options: options.to_string(),
            start_seq,
            created_at: now_micros(),
            last_update: AtomicI64::new(0),
            changes: AtomicU64::new(0),
            ended: AtomicBool::new(false),
            outbound: conn.outbound.clone(),
            control: conn.control.clone(),
            plan,
        });
        conn.subscriptions
            .insert(subscription_id.to_string(), subscription.clone());
        self.live
            .insert(subscription.live_id.clone(), subscription.clone());
        *self.per_user.entry(subscription.user.clone()).or_default() += 1;
        self.tables
            .entry(subscription.plan.table_id)
            .or_default()
            .insert(subscription.clone());
        Ok(subscription)
    }

    /// Ends one subscription of a connection; `false` if it had none by
    /// that id.
    pub fn unsubscribe(&self, connection: ConnectionId, subscription_id: &str) -> bool {
        let Some(conn) = self.connections.get(&connection).map(|c| c.clone()) else {
            return false;
        };
        match conn.subscriptions.remove(subscription_id) {
            Some((_, subscription)) => self.forget(&subscription),
            None => false,
        }
    }

    /// Removes a subscription whose start failed after it was registered;
    /// its client hears of the failure from whoever started it, not from
    /// here. Does nothing if it has already ended.
    pub fn withdraw(&self, subscription: &Arc<Subscription>) {
        if let Some(conn) = self
            .connections
            .get(&subscription.connection)
            .map(|c| c.clone())
        {
            conn.subscriptions
                .remove_if(&subscription.subscription_id, |_, held| {
                    Arc::ptr_eq(held, subscription)
                });
        }
        self.forget(subscription);
    }

    /// Ends the subscription `live_id` and tells its client why.
    pub fn kill(&self, live_id: &str) -> bool {
        let Some(subscription) = self.live.get(live_id).map(|s| s.clone()) else {
            return false;
        };
        self.end(
            &subscription,
            ErrorCode::SubscriptionFailed,
            format!("live query {live_id} was killed"),
        );
        true
    }

    /// Removes a connection and all of its subscriptions at once.
    pub fn disconnect(&self, connection: ConnectionId) {
        if let Some((_, conn)) = self.connections.remove(&connection) {
            for entry in conn.subscriptions.iter() {
                self.forget(entry.value());
            }
            conn.subscriptions.clear();
        }
    }

    /// Every live subscription, oldest first.
    pub fn subscriptions(&self) -> Vec<Arc<Subscription>> {
        let mut all: Vec<_> = self.live.iter().map(|e| e.value().clone()).collect();
        all.sort_by(|a, b| (a.created_at, &a.live_id).cmp(&(b.created_at, &b.live_id)));
        all
    }

    /// Ends every connection of `user` (signed out, password or role
    /// changed, dropped): their subscriptions stop at once and each
    /// connection is told `reason` as it closes.
    pub fn end_user(&self, user: &UserId, reason: &str) -> usize {
        let ended: Vec<Arc<Connection>> = self
            .connections
            .iter()
            .filter(|c| c.user == *user)
            .map(|c| c.value().clone())
            .collect();
        for conn in &ended {
            for entry in conn.subscriptions.iter() {
                self.forget(entry.value());
            }
            conn.subscriptions.clear();
            let _ = conn.control.send(Outbound::Closed {
                reason: reason.to_string(),
            });
        }
        ended.len()
    }

    /// Drops every subscription of a table (it was dropped or altered).
    pub fn end_table(&self, table_id: u64, why: &str) {
        let subscriptions = self.tables.get(&table_id).map(|s| s.all());
        for subscription in subscriptions.unwrap_or_default() {
            self.end(
                &subscription,
                ErrorCode::SubscriptionFailed,
                why.to_string(),
            );
        }
    }

    fn end(&self, subscription: &Arc<Subscription>, code: ErrorCode, message: String) {
        if let Some(conn) = self.connections.get(&subscription.connection) {
            // Only this registration: the id may be in use again.
            conn.subscriptions
                .remove_if(&subscription.subscription_id, |_, s| {
                    Arc::ptr_eq(s, subscription)
                });
        }
        if !self.forget(subscription) {
            return;
        }
        let _ = subscription.control.send(Outbound::Error {
            subscription_id: subscription.subscription_id.clone(),
            live_id: subscription.live_id.clone(),
            code,
            message,
        });
    }

    /// Removes a subscription from every index; `false` if it had ended
    /// already.
    fn forget(&self, subscription: &Arc<Subscription>) -> bool {
        subscription.ended.store(true, Ordering::Release);
        if self.live.remove(&subscription.live_id).is_none() {
            return false;
        }
        if let Some(mut held) = self.per_user.get_mut(&subscription.user) {
            *held = held.saturating_sub(1);
        }
        self.per_user
            .remove_if(&subscription.user, |_, held| *held == 0);
        let table = subscription.plan.table_id;
        let emptied = match self.tables.get_mut(&table) {
            Some(mut subscriptions) => {
                subscriptions.remove(subscription);
                subscriptions.is_empty()
            }
            None => false,
        };
        if emptied {
            self.tables.remove_if(&table, |_, s| s.is_empty());
        }
        true
    }

    /// Delivers changes until `shutdown`; the node runs one of these.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut receiver) = self.receiver.lock().take() else {
            tracing::error!("the live query dispatcher is already running");
            return;
        };
        loop {
            let changes = tokio::select! {
                _ = shutdown.cancelled() => return,
                changes = receiver.recv() => changes,
            };
            match changes {
                Some(changes) => self.dispatch(&changes),
                None => return,
            }
        }
    }

    /// Turns one change set into notifications, synchronously: only the
    /// subscriptions an equality index points to, and those without one,
    /// are evaluated. The run loop calls this for each change set.
    pub fn dispatch(&self, changes: &ChangeSet) {
        let candidates = match self.tables.get(&changes.table_id) {
            Some(table) => table.candidates(changes),
            None => return,
        };
        for (subscription, rows) in candidates
            .iter()
            .filter(|(s, _)| s.plan.scope == changes.scope)
        {
            if subscription.ended.load(Ordering::Acquire) {
                continue;
            }
            let messages = match classify(subscription, changes, rows.as_deref()) {
                Ok(messages) => messages,
                Err(e) => {
                    self.end(
                        subscription,
                        ErrorCode::SubscriptionFailed,
                        format!("evaluating the subscription failed: {e}"),
                    );
                    continue;
                }
            };
            for message in messages {
                if subscription.outbound.try_send(message).is_err() {
                    self.overflows.fetch_add(1, Ordering::Relaxed);
                    // The connection names the last change it delivered.
                    self.end(
                        subscription,
                        ErrorCode::SubscriptionOverflow,
                        "the client did not keep up and the subscription was dropped".into(),
                    );
                    break;
                }
                subscription.changes.fetch_add(1, Ordering::Relaxed);
                self.notifications.fetch_add(1, Ordering::Relaxed);
                subscription
                    .last_update
                    .store(now_micros(), Ordering::Relaxed);
            }
        }
    }
}
