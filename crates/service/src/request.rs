//! The request pipeline: what every SQL request goes through, whatever
//! protocol carried it. [`RequestService::sql`] authenticates, applies the
//! user's request rate, decodes the request, opens a session, runs its
//! statements under the time limit with the row and byte caps, hands the
//! results to the protocol's [`Encoder`] batch by batch, logs slow
//! requests and counts them.
//!
//! A small answer is handed back whole ([`Reply::Complete`]), so that a
//! failure gets the protocol's own error reply; once the encoded results
//! pass [`STREAM_CHUNK_BYTES`], they are streamed as produced
//! ([`Reply::Streaming`]) and a later failure ends the stream with an
//! error the encoder writes.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::{FutureExt, StreamExt};
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use quiver_catalog::UserRecord;
use quiver_common::{ErrorCode, Role, UserId};
use quiver_config::{Config, LimitsConfig, SharedConfig};
use quiver_query::{
    QueryEngine, QueryError, QuerySession, QuiverStatement, StatementOutput, value_bytes,
};
use tokio::sync::{mpsc, oneshot};
use tokio_util::task::AbortOnDropHandle;

use crate::auth::{Auth, Credentials, Peer, Principal, Tokens};
use crate::error::ServiceError;
use crate::limits::RequestRate;

/// Requests up to this size start on the thread that received them: they
/// are authenticated, decoded and parsed there, and answered there when
/// their one statement needs no planning (see
/// `QuerySession::runs_directly`). Anything else is planned and run on the
/// query runtime. Handing a request to the other runtime and its answer
/// back costs about 0.04 ms, a fifth of a point read's whole time.
pub const DIRECT_REQUEST_BYTES: usize = 16 * 1024;

/// Encoded results up to this size are answered whole; past it they are
/// streamed in chunks of about this size.
pub const STREAM_CHUNK_BYTES: usize = 64 * 1024;

/// Chunks a streamed answer may have encoded ahead of the client: what a
/// slow reader costs the server, whatever the size of the result.
const STREAM_CHUNKS_AHEAD: usize = 4;

/// One SQL request, decoded from its protocol.
#[derive(Debug, Clone, Default)]
pub struct SqlRequest {
    pub sql: String,
    /// `$1`, `$2`, ... in order.
    pub params: Vec<serde_json::Value>,
    /// The namespace of unqualified table names (`default` if none).
    pub namespace: Option<String>,
}

/// A node's first setup: the first dba user, and root's password.
#[derive(Debug, Clone)]
pub struct Setup {
    pub user: String,
    pub password: String,
    pub root_password: String,
    pub email: Option<String>,
}

/// A statement being answered, as encoders see it.
#[derive(Debug, Clone, Copy)]
pub struct StatementInfo<'a> {
    /// Its position in the request.
    pub index: usize,
    /// The user it ran as (another than the caller's under `EXECUTE AS`).
    pub as_user: &'a str,
}

/// A protocol's encoding of results, called as they are produced; each
/// call appends to `out`.
pub trait Encoder: Send + 'static {
    /// A statement that returns rows, before its first batch.
    fn rows_begin(&mut self, out: &mut Vec<u8>, statement: StatementInfo<'_>, schema: &SchemaRef);
    fn rows(&mut self, out: &mut Vec<u8>, batch: &RecordBatch);
    fn rows_end(&mut self, out: &mut Vec<u8>, statement: StatementInfo<'_>, row_count: usize);
    /// A statement that returned no rows (DDL, DML).
    fn done(
        &mut self,
        out: &mut Vec<u8>,
        statement: StatementInfo<'_>,
        row_count: u64,
        message: &str,
    );
    /// After the last statement.
    fn end(&mut self, out: &mut Vec<u8>, took_ms: f64);
    /// Instead of [`Encoder::end`] when part of the answer was already
    /// sent: the failure, as a well-formed end of the answer.
    fn fail(&mut self, out: &mut Vec<u8>, error: &ServiceError, took_ms: f64);
}

/// What a request is answered with.
#[derive(Debug)]
pub enum Reply {
    /// The whole encoded answer.
    Complete(Vec<u8>),
    /// Refused or failed before anything was sent.
    Failed { error: ServiceError, took_ms: f64 },
    /// A large answer: its first part, then the rest as it is produced.
    Streaming { head: Vec<u8>, rest: ResultStream },
}

/// The rest of a streamed answer. Dropping it (the client went away)
/// cancels the request.
#[derive(Debug)]
pub struct ResultStream {
    chunks: mpsc::Receiver<Vec<u8>>,
    /// The task producing the chunks, aborted when this is dropped.
    _task: Option<AbortOnDropHandle<Option<ServiceError>>>,
}

impl futures::Stream for ResultStream {
    type Item = Vec<u8>;

    fn poll_next(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Self::Item>> {
        self.chunks.poll_recv(cx)
    }
}

/// An incoming SQL request, still in its protocol's form: it is decoded
/// only after its sender is authenticated.
pub struct Incoming<D> {
    pub credentials: Credentials,
    pub peer: Peer,
    /// The request's size, which decides where it starts.
    pub size: usize,
    pub decode: D,
    pub encoder: Box<dyn Encoder>,
}

/// The service every protocol adapter calls; built once per node.
#[derive(Debug)]
pub struct RequestService {
    pub(crate) engine: Arc<QueryEngine>,
    pub(crate) auth: Arc<Auth>,
    pub(crate) rate: RequestRate,
    pub(crate) config: Arc<SharedConfig>,
    /// Where queries run, apart from the threads serving connections.
    pub(crate) query_runtime: tokio::runtime::Handle,
    query_seconds: Histogram,
}

impl RequestService {
    pub fn new(
        engine: Arc<QueryEngine>,
        auth: Arc<Auth>,
        config: Arc<SharedConfig>,
        query_runtime: tokio::runtime::Handle,
    ) -> Self {
        let rate = RequestRate::new(&config.get().limits);
        Self {
            engine,
            auth,
            rate,
            config,
            query_runtime,
            // 0.1 ms to about 26 s.
            query_seconds: Histogram::new(exponential_buckets(0.0001, 2.0, 19)),
        }
    }

    pub fn auth(&self) -> &Arc<Auth> {
        &self.auth
    }

    pub fn query_runtime(&self) -> &tokio::runtime::Handle {
        &self.query_runtime
    }

    /// Time to answer each SQL request, from arrival to its last byte.
    pub fn query_seconds(&self) -> &Histogram {
        &self.query_seconds
    }

    /// Authenticates `credentials`.
    pub async fn authenticate(
        &self,
        credentials: Credentials,
        peer: Peer,
    ) -> Result<Principal, ServiceError> {
        self.auth.authenticate(credentials, peer).await
    }

    /// Whether root still has no password: a new node, before its setup.
    pub fn needs_setup(&self) -> bool {
        self.engine
            .catalog()
            .user(&UserId::root())
            .is_some_and(|root| root.password_hash.is_none())
    }

    /// Refuses a setup from another machine, or once root has a password.
    pub fn setup_allowed(&self, peer: Peer) -> Result<(), ServiceError> {
        if !peer.is_local() {
            return Err(ServiceError::new(
                ErrorCode::PermissionDenied,
                "setup is only accepted from the server's own machine, addressed to it by a \
                 loopback name or address",
            ));
        }
        if !self.needs_setup() {
            return Err(ServiceError::new(
                ErrorCode::PermissionDenied,
                "setup is done: root already has a password",
            ));
        }
        Ok(())
    }

    /// A node's first setup, from loopback while root has no password:
    /// gives root its password and creates a first `dba` user, signed in.
    pub async fn setup(
        &self,
        setup: Setup,
        peer: Peer,
    ) -> Result<(Arc<UserRecord>, Tokens), ServiceError> {
        self.setup_allowed(peer)?;
        let id = UserId::parse(&setup.user)
            .map_err(|e| ServiceError::new(ErrorCode::InvalidParameter, e.to_string()))?;
        let root_hash = self.engine.hash_password(setup.root_password).await?;
        let hash = self.engine.hash_password(setup.password).await?;
        let now = chrono::Utc::now().timestamp_micros();
        let catalog = self.engine.catalog();
        let user = catalog
            .create_user(UserRecord {
                id,
                role: Role::Dba,
                email: setup.email,
                password_hash: Some(hash),
                created_at: now,
                updated_at: now,
                token_epoch: 0,
            })
            .map_err(QueryError::from)?;
        catalog
            .modify_user(&UserId::root(), |root| {
                root.password_hash = Some(root_hash);
                root.updated_at = now;
                root.token_epoch += 1;
            })
            .map_err(QueryError::from)?;
        let tokens = self.auth.tokens(&user)?;
        Ok((user, tokens))
    }

    /// A session of `principal` in `namespace` (or `default`).
    pub fn session(
        &self,
        principal: &Principal,
        namespace: Option<&str>,
    ) -> Result<QuerySession, ServiceError> {
        self.engine
            .session(namespace, principal.user.clone(), principal.role)
            .map_err(ServiceError::from)
    }

    /// Answers one SQL request. Dropping the returned future, or the
    /// stream of a streamed reply, cancels the request: a statement either
    /// committed before that or wrote nothing.
    pub async fn sql<D>(self: &Arc<Self>, incoming: Incoming<D>) -> Reply
    where
        D: FnOnce() -> Result<SqlRequest, ServiceError> + Send + 'static,
    {
        let start = Instant::now();
        let direct = incoming.size <= DIRECT_REQUEST_BYTES;
        let (reply, replied) = oneshot::channel();
        let service = self.clone();
        // Boxed: the task then holds a pointer, not the whole request's
        // state, which spawning and finishing a task would copy (under
        // callgrind, those copies were half of a key read's instructions).
        let work = Box::pin(async move { service.answer(incoming, start, direct, reply).await });
        let task = AbortOnDropHandle::new(if direct {
            tokio::spawn(work)
        } else {
            self.query_runtime.spawn(work)
        });
        match replied.await {
            Ok(Reply::Streaming { head, mut rest }) => {
                rest._task = Some(task);
                Reply::Streaming { head, rest }
            }
            Ok(reply) => reply,
            // The task ended without replying: it panicked, its runtime
            // stopped under it, or its answer was lost with a task of its
            // own that did.
            Err(_) => Reply::Failed {
                error: match task.await {
                    Err(e) => task_failed(e),
                    Ok(Some(error)) => error,
                    Ok(None) => internal_error(),
                },
                took_ms: elapsed_ms(start),
            },
        }
    }

    async fn answer<D>(
        self: Arc<Self>,
        incoming: Incoming<D>,
        start: Instant,
        direct: bool,
        reply: oneshot::Sender<Reply>,
    ) -> Option<ServiceError>
    where
        D: FnOnce() -> Result<SqlRequest, ServiceError> + Send + 'static,
    {
        let config = self.config.get();
        let limits = &config.limits;
        let deadline = deadline(start, limits);
        let mut sink = Sink {
            encoder: incoming.encoder,
            out: Vec::with_capacity(256),
            state: SinkState::Buffering(Some(reply)),
            encoded: 0,
            max_bytes: limits.max_result_bytes,
        };
        let mut seen: Option<(UserId, String)> = None;
        let outcome = self
            .run(
                &config,
                incoming.credentials,
                incoming.peer,
                incoming.decode,
                direct,
                deadline,
                &mut sink,
                &mut seen,
            )
            .await;
        let took_ms = elapsed_ms(start);
        self.query_seconds.observe(took_ms / 1000.0);
        if let Some((user, sql)) = &seen {
            log_if_slow(
                config.logging.slow_query_ms,
                user,
                sql,
                took_ms,
                outcome.is_err(),
            );
        }
        sink.finish(outcome, took_ms).await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run<D>(
        &self,
        config: &Arc<Config>,
        credentials: Credentials,
        peer: Peer,
        decode: D,
        direct: bool,
        deadline: Option<Instant>,
        sink: &mut Sink,
        seen: &mut Option<(UserId, String)>,
    ) -> Result<(), ServiceError>
    where
        D: FnOnce() -> Result<SqlRequest, ServiceError> + Send + 'static,
    {
        let prepare = async {
            let principal = Box::pin(self.auth.authenticate(credentials, peer)).await?;
            // The rate in force now, not when the request arrived.
            self.rate.check(&principal.user, &config.limits)?;
            let request = decode()?;
            *seen = Some((principal.user.clone(), request.sql.clone()));
            let statements = self.engine.prepare(&request.sql, &request.params)?;
            let session = self.session(&principal, request.namespace.as_deref())?;
            Ok::<_, ServiceError>((session, statements))
        };
        let (mut session, mut statements) = within(deadline, config, prepare).await?;
        let max_rows = config.limits.max_result_rows;
        if !direct || session.runs_directly(&mut statements) {
            let rows = within(
                deadline,
                config,
                execute(&mut session, statements, sink, max_rows),
            )
            .await?;
            self.engine.note_rows_read(rows);
            return Ok(());
        }
        // Planned statements go to the query runtime with the sink, and
        // come back with it.
        let mut moved = std::mem::replace(sink, Sink::detached());
        let config = config.clone();
        let planned = self.query_runtime.spawn(Box::pin(async move {
            let work = within(
                deadline,
                &config,
                execute(&mut session, statements, &mut moved, max_rows),
            );
            // A panic while the statements run still ends the answer.
            let result = match AssertUnwindSafe(work).catch_unwind().await {
                Ok(result) => result,
                Err(_) => {
                    tracing::error!("a statement's task panicked");
                    Err(internal_error())
                }
            };
            (moved, result)
        }));
        // Dropped with this task (client gone), it is aborted too.
        let (moved, result) = AbortOnDropHandle::new(planned).await.map_err(task_failed)?;
        *sink = moved;
        self.engine.note_rows_read(result?);
        Ok(())
    }
}

/// When a request that arrived at `start` must be done by, under
/// `[limits] query_timeout_ms` (none when it is 0).
pub(crate) fn deadline(start: Instant, limits: &LimitsConfig) -> Option<Instant> {
    (limits.query_timeout_ms > 0).then(|| start + Duration::from_millis(limits.query_timeout_ms))
}

/// Runs `work` until `deadline`, after which the request fails with
/// `QUERY_TIMEOUT`.
pub(crate) async fn within<T>(
    deadline: Option<Instant>,
    config: &Config,
    work: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    let Some(deadline) = deadline else {
        return work.await;
    };
    match tokio::time::timeout_at(deadline.into(), work).await {
        Ok(result) => result,
        Err(_) => Err(ServiceError::new(
            ErrorCode::QueryTimeout,
            format!(
                "the request ran longer than {} ms ([limits] query_timeout_ms) and was \
                 cancelled; statements that had finished stay committed",
                config.limits.query_timeout_ms
            ),
        )),
    }
}

/// Runs prepared statements in order, encoding each one's result; returns
/// the rows read.
async fn execute(
    session: &mut QuerySession,
    statements: Vec<QuiverStatement>,
    sink: &mut Sink,
    max_rows: usize,
) -> Result<u64, ServiceError> {
    let user = session.user().clone();
    let mut rows_read = 0u64;
    for (index, statement) in statements.into_iter().enumerate() {
        let fail = |e: QueryError| ServiceError::from_query(e, Some(index));
        let as_user = statement.runs_as().map_or(user.as_str(), |u| u).to_string();
        let info = StatementInfo {
            index,
            as_user: &as_user,
        };
        // Boxed, so that the request's own future stays small: it is
        // copied whole into its task's box, this one only when it runs.
        match Box::pin(session.execute(statement)).await.map_err(fail)? {
            StatementOutput::Done { row_count, message } => {
                sink.encoder.done(&mut sink.out, info, row_count, &message);
            }
            StatementOutput::Rows(mut stream) => {
                sink.encoder
                    .rows_begin(&mut sink.out, info, &stream.schema());
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| fail(e.into()))?;
                    if rows + batch.num_rows() > max_rows {
                        return Err(fail(QueryError::ResultTooLarge { limit: max_rows }));
                    }
                    rows += batch.num_rows();
                    // A batch whose text alone passes the cap is refused
                    // before it is encoded.
                    sink.check(value_bytes(&batch), index)?;
                    sink.encoder.rows(&mut sink.out, &batch);
                    sink.pass_on(index).await?;
                }
                rows_read += rows as u64;
                sink.encoder.rows_end(&mut sink.out, info, rows);
            }
        }
        sink.pass_on(index).await?;
    }
    Ok(rows_read)
}

/// Where encoded results go: held until they pass a chunk, then streamed.
struct Sink {
    encoder: Box<dyn Encoder>,
    /// Encoded and not yet handed on.
    out: Vec<u8>,
    state: SinkState,
    /// Bytes encoded so far, handed on or not.
    encoded: usize,
    max_bytes: usize,
}

enum SinkState {
    /// Nothing sent yet; the reply is still to be given.
    Buffering(Option<oneshot::Sender<Reply>>),
    /// The head was sent; the rest goes here.
    Streaming(mpsc::Sender<Vec<u8>>),
}

/// An encoder for a sink that is only a placeholder.
struct Nothing;

impl Encoder for Nothing {
    fn rows_begin(&mut self, _: &mut Vec<u8>, _: StatementInfo<'_>, _: &SchemaRef) {}
    fn rows(&mut self, _: &mut Vec<u8>, _: &RecordBatch) {}
    fn rows_end(&mut self, _: &mut Vec<u8>, _: StatementInfo<'_>, _: usize) {}
    fn done(&mut self, _: &mut Vec<u8>, _: StatementInfo<'_>, _: u64, _: &str) {}
    fn end(&mut self, _: &mut Vec<u8>, _: f64) {}
    fn fail(&mut self, _: &mut Vec<u8>, _: &ServiceError, _: f64) {}
}

impl Sink {
    /// Stands in for a sink that moved to another task.
    fn detached() -> Self {
        Self {
            encoder: Box::new(Nothing),
            out: Vec::new(),
            state: SinkState::Buffering(None),
            encoded: 0,
            max_bytes: 0,
        }
    }

    /// Refuses an answer that, with `more` bytes, passes the byte cap.
    fn check(&self, more: usize, statement: usize) -> Result<(), ServiceError> {
        if self.encoded + self.out.len() + more > self.max_bytes {
            let mut error = ServiceError::new(
                ErrorCode::ResultTooLarge,
                format!(
                    "result is more than {} bytes ([limits] max_result_bytes)",
                    self.max_bytes
                ),
            );
            error.statement_index = Some(statement);
            return Err(error);
        }
        Ok(())
    }

    /// Checks the byte cap, and hands a full chunk on: the first one as
    /// the head of a streamed reply.
    async fn pass_on(&mut self, statement: usize) -> Result<(), ServiceError> {
        self.check(0, statement)?;
        if self.out.len() < STREAM_CHUNK_BYTES {
            return Ok(());
        }
        match &mut self.state {
            SinkState::Buffering(reply) => {
                let chunk = std::mem::take(&mut self.out);
                self.encoded += chunk.len();
                let (sender, chunks) = mpsc::channel(STREAM_CHUNKS_AHEAD);
                let rest = ResultStream {
                    chunks,
                    _task: None,
                };
                if let Some(reply) = reply.take() {
                    // A request whose caller is gone is cancelled anyway.
                    let _ = reply.send(Reply::Streaming { head: chunk, rest });
                }
                self.state = SinkState::Streaming(sender);
                Ok(())
            }
            SinkState::Streaming(sender) => {
                // Room first, so that a request cancelled while it waits
                // (its time limit) loses nothing it encoded.
                let permit = sender.reserve().await.map_err(|_| {
                    ServiceError::new(ErrorCode::ShuttingDown, "the client went away")
                })?;
                let chunk = std::mem::take(&mut self.out);
                self.encoded += chunk.len();
                permit.send(chunk);
                Ok(())
            }
        }
    }

    /// Ends the answer: the whole of it, its error, or the stream's end.
    /// Returns the error when there is no reply left to carry it (the
    /// sink was lost with a task that failed).
    async fn finish(
        mut self,
        outcome: Result<(), ServiceError>,
        took_ms: f64,
    ) -> Option<ServiceError> {
        match (self.state, outcome) {
            (SinkState::Buffering(Some(reply)), Ok(())) => {
                self.encoder.end(&mut self.out, took_ms);
                let _ = reply.send(Reply::Complete(self.out));
                None
            }
            (SinkState::Buffering(Some(reply)), Err(error)) => {
                let _ = reply.send(Reply::Failed { error, took_ms });
                None
            }
            (SinkState::Buffering(None), outcome) => outcome.err(),
            (SinkState::Streaming(sender), outcome) => {
                match outcome {
                    Ok(()) => self.encoder.end(&mut self.out, took_ms),
                    Err(error) => self.encoder.fail(&mut self.out, &error, took_ms),
                }
                let _ = sender.send(self.out).await;
                None
            }
        }
    }
}

pub(crate) fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

fn internal_error() -> ServiceError {
    ServiceError::new(
        ErrorCode::InternalError,
        "internal error; the server log has the details",
    )
}

/// The error for a request whose task ended without an answer: cancelled
/// when its runtime stopped under it (the node is shutting down), or
/// panicked.
fn task_failed(error: tokio::task::JoinError) -> ServiceError {
    if error.is_cancelled() {
        return ServiceError::new(
            ErrorCode::ShuttingDown,
            "the server stopped before the request finished; statements that had finished stay \
             committed",
        );
    }
    tracing::error!(%error, "query task failed");
    internal_error()
}

/// Logs a request that took at least `[logging] slow_query_ms`.
pub(crate) fn log_if_slow(threshold: i64, user: &UserId, sql: &str, took_ms: f64, failed: bool) {
    if threshold < 0 || took_ms < threshold as f64 {
        return;
    }
    tracing::warn!(
        target: "quiver::slow_query",
        %user,
        duration_ms = took_ms,
        failed,
        sql = %mask_passwords(sql),
        "slow query"
    );
}

/// `sql` for logs: the token after each `PASSWORD` keyword (past
/// comments and `=`) is replaced by `'********'`. Text that does not
/// tokenize is not logged at all.
pub fn mask_passwords(sql: &str) -> String {
    let Ok(tokens) = Tokenizer::new(&GenericDialect {}, sql).tokenize() else {
        return "<SQL not shown: it does not tokenize>".to_string();
    };
    let mut out = String::with_capacity(sql.len());
    let mut after_password = false;
    for token in tokens {
        let skipped = matches!(token, Token::Whitespace(_) | Token::Eq);
        if after_password && !skipped {
            out.push_str("'********'");
            after_password = false;
            continue;
        }
        if let Token::Word(word) = &token {
            after_password = word.value.eq_ignore_ascii_case("password");
        }
        out.push_str(&token.to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::mask_passwords;

    #[test]
    fn passwords_are_masked_wherever_the_parser_finds_them() {
        for sql in [
            "CREATE USER 'bob' WITH PASSWORD 'hunter2' ROLE user",
            "alter user bob set password 'hunter2'",
            "-- bob's\nCREATE USER 'bob' WITH PASSWORD 'hunter2'",
            "CREATE USER 'bob' WITH PASSWORD /* it's */ 'hunter2'",
            "CREATE USER 'bob' WITH PASSWORD -- x\n 'hunter2'",
            "CREATE USER 'bob' WITH PASSWORD = 'hunter2'",
            "CREATE USER 'bob' WITH PASSWORD \"hunter2\"",
            "CREATE USER 'bob' WITH PASSWORD $$hunter2$$",
            "CREATE USER 'bob' WITH PASSWORD E'hunt\\'er2'",
            "CREATE USER 'bob' WITH PASSWORD 'hun''ter2'",
        ] {
            let masked = mask_passwords(sql);
            assert!(!masked.contains("hunter2"), "{sql} -> {masked}");
            assert!(!masked.contains("hunt"), "{sql} -> {masked}");
        }
        // Other literals stay (as the tokenizer writes them back).
        let plain = mask_passwords("SELECT 'its', \"col\" FROM t WHERE x = 'password'");
        assert_eq!(plain, "SELECT 'its', \"col\" FROM t WHERE x = 'password'");
        assert!(!mask_passwords("ALTER USER b SET PASSWORD 'hunter2").contains("hunter2"));
    }
}
