use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::tokenizer::{Token, Tokenizer};
use futures::StreamExt;
use http_body_util::Limited;
use quiver_common::{ErrorCode, UserId};
use quiver_config::Config;
use quiver_query::{QueryEngine, QueryError, QuerySession, QuiverStatement, StatementOutput};
use serde::Deserialize;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use tokio_util::task::AbortOnDropHandle;

use crate::auth::{self, Auth, Principal, authenticate};
use crate::encode::{schema_json, write_rows};
use crate::error::ApiError;
use crate::limits::RequestRate;
use crate::metrics::{self, Metrics};
use crate::ws;

/// What the handlers share: built once by the node's composition root.
#[derive(Debug, Clone)]
pub struct ApiState {
    pub engine: Arc<QueryEngine>,
    pub auth: Arc<Auth>,
    pub request_rate: Arc<RequestRate>,
    /// Where queries run, apart from the threads serving HTTP.
    pub query_runtime: tokio::runtime::Handle,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the node stops: WebSocket connections close.
    pub shutdown: CancellationToken,
}

/// The v1 HTTP API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/api/sql", post(sql))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/api/auth/login", post(auth::login))
        .route("/v1/api/auth/refresh", post(auth::refresh))
        .route("/v1/api/auth/me", get(auth::me))
        .route("/v1/api/auth/status", get(auth::status))
        .route("/v1/api/auth/setup", post(auth::setup))
        .route("/health", get(health))
        .route("/v1/api/healthcheck", get(health))
        .route("/metrics", get(metrics::scrape))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), limit_body))
        .layer(DefaultBodyLimit::disable())
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metrics::count_requests,
        ))
        .with_state(state)
}

/// Caps request bodies at `[limits] max_body_bytes` as configured now;
/// extractors reading past it answer 413.
async fn limit_body(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let limit = state.engine.config().limits.max_body_bytes;
    next.run(request.map(|body| Body::new(Limited::new(body, limit))))
        .await
}

async fn health(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
        "build_date": option_env!("QUIVER_BUILD_DATE").unwrap_or("unknown"),
        "node_id": state.engine.node().node_id.as_str(),
        "uptime_seconds": state.engine.node().started_at.elapsed().as_secs(),
    }))
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        ErrorCode::MethodNotAllowed,
        "method not allowed on this endpoint",
    )
}

async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlRequest {
    #[serde(default)]
    sql: String,
    #[serde(default)]
    params: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    namespace_id: Option<String>,
}

/// Requests up to this size start on the thread that received them: they
/// are authenticated, read and parsed there, and answered there when their
/// one statement needs no planning (see `QuerySession::runs_directly`).
/// Anything else is planned and run on the query runtime. Handing a request
/// to the other runtime and its answer back costs about 0.04 ms, a fifth of
/// a point read's whole time.
const DIRECT_BODY_BYTES: usize = 16 * 1024;

fn elapsed_ms(start: Instant) -> f64 {
    start.elapsed().as_secs_f64() * 1000.0
}

/// `POST /v1/api/sql`: runs each statement in order and answers with one
/// result per statement, or with the first error.
async fn sql(
    State(state): State<ApiState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let start = Instant::now();
    let config = state.engine.config();
    let timeout_ms = config.limits.query_timeout_ms;
    let metrics = state.metrics.clone();
    // Who sent what, for the slow-query log, which also covers requests
    // cancelled at the time limit.
    let seen: Arc<OnceLock<(UserId, String)>> = Arc::new(OnceLock::new());
    let slow_ms = config.logging.slow_query_ms;
    let noted = (slow_ms >= 0).then(|| seen.clone());
    let direct = body
        .as_ref()
        .is_ok_and(|body| body.len() <= DIRECT_BODY_BYTES);
    let query_runtime = state.query_runtime.clone();
    let work = async move {
        let principal = authenticate(&state, &headers, peer).await?;
        // The rate in force now, not when the request arrived.
        state
            .request_rate
            .check(&principal.user, &state.engine.config().limits)?;
        run_sql(&state, &config, &principal, body, noted, direct).await
    };
    // Aborted if the client goes away or the time limit passes: a
    // statement either committed before that or wrote nothing.
    let task = AbortOnDropHandle::new(if direct {
        tokio::spawn(work)
    } else {
        query_runtime.spawn(work)
    });
    let joined = if timeout_ms == 0 {
        Ok(task.await)
    } else {
        tokio::time::timeout(Duration::from_millis(timeout_ms), task).await
    };
    let outcome = match joined {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(e)) => Err(task_failed(e)),
        Err(_) => Err(ApiError::new(
            ErrorCode::QueryTimeout,
            format!(
                "the request ran longer than {timeout_ms} ms ([limits] query_timeout_ms) and was \
                 cancelled; statements that had finished stay committed"
            ),
        )),
    };
    metrics.observe_query(start.elapsed().as_secs_f64());
    if let Some((user, sql)) = seen.get() {
        log_if_slow(slow_ms, user, sql, start, &outcome);
    }
    match outcome {
        Ok(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            finish_body(body, elapsed_ms(start)),
        )
            .into_response(),
        Err(error) => error.took(elapsed_ms(start)).into_response(),
    }
}

/// The success body up to `"took":`; the caller appends the time.
fn finish_body(mut body: Vec<u8>, took_ms: f64) -> Vec<u8> {
    body.extend_from_slice(format!("],\"took\":{took_ms:.3}}}").as_bytes());
    body
}

async fn run_sql(
    state: &ApiState,
    config: &Config,
    principal: &Principal,
    body: Result<Bytes, BytesRejection>,
    noted: Option<Arc<OnceLock<(UserId, String)>>>,
    direct: bool,
) -> Result<Vec<u8>, ApiError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "request body is larger than {} bytes ([limits] max_body_bytes)",
                    config.limits.max_body_bytes
                ),
            )
        } else {
            ApiError::new(
                ErrorCode::InvalidParameter,
                format!("cannot read request body: {rejection}"),
            )
        }
    })?;
    let malformed = |e: String| {
        ApiError::new(
            ErrorCode::InvalidParameter,
            format!(
                "malformed request body: {e}; expected {{\"sql\": \"...\", \"params\": [...], \"namespace_id\": \"...\"}}"
            ),
        )
    };
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("the body must be a JSON object".to_string()));
    }
    let request: SqlRequest =
        serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
    let params = request.params.as_deref().unwrap_or_default();
    if let Some(noted) = noted {
        let _ = noted.set((principal.user.clone(), request.sql.clone()));
    }
    run_statements(state, config, principal, &request, params, direct).await
}

/// Logs a request that took at least `[logging] slow_query_ms`.
fn log_if_slow(
    threshold: i64,
    user: &UserId,
    sql: &str,
    start: Instant,
    result: &Result<Vec<u8>, ApiError>,
) {
    let took = start.elapsed();
    if threshold < 0 || took.as_millis() < threshold as u128 {
        return;
    }
    tracing::warn!(
        target: "quiver::slow_query",
        %user,
        duration_ms = took.as_secs_f64() * 1000.0,
        failed = result.is_err(),
        sql = %mask_passwords(sql),
        "slow query"
    );
}

/// `sql` for logs: the token after each `PASSWORD` keyword (past
/// comments and `=`) is replaced by `'********'`. Text that does not
/// tokenize is not logged at all.
pub(crate) fn mask_passwords(sql: &str) -> String {
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

/// Prepares the request's statements and runs them: here when `direct`
/// and they need no planning, on the query runtime otherwise.
async fn run_statements(
    state: &ApiState,
    config: &Config,
    principal: &Principal,
    request: &SqlRequest,
    params: &[serde_json::Value],
    direct: bool,
) -> Result<Vec<u8>, ApiError> {
    let engine = &state.engine;
    let mut statements = engine
        .prepare(&request.sql, params)
        .map_err(|e| ApiError::from_query(e, None))?;
    let session = engine
        .session(
            request.namespace_id.as_deref(),
            principal.user.clone(),
            principal.role,
        )
        .map_err(|e| ApiError::from_query(e, None))?;
    if !direct || session.runs_directly(&mut statements) {
        return execute_statements(engine, config.limits.max_result_rows, session, statements)
            .await;
    }
    let engine = engine.clone();
    let max_rows = config.limits.max_result_rows;
    let planned = state
        .query_runtime
        .spawn(async move { execute_statements(&engine, max_rows, session, statements).await });
    // Dropped with this task (client gone, time limit), it is aborted too.
    AbortOnDropHandle::new(planned).await.map_err(task_failed)?
}

/// The error for a request whose task ended without an answer: cancelled
/// when its runtime stopped under it (the node is shutting down), or
/// panicked.
fn task_failed(error: tokio::task::JoinError) -> ApiError {
    if error.is_cancelled() {
        return ApiError::new(
            ErrorCode::ShuttingDown,
            "the server stopped before the request finished; statements that had finished stay \
             committed",
        );
    }
    tracing::error!(%error, "query task failed");
    ApiError::new(
        ErrorCode::InternalError,
        "internal error; the server log has the details",
    )
}

/// Runs prepared statements in order, encoding each one's result.
async fn execute_statements(
    engine: &Arc<QueryEngine>,
    max_rows: usize,
    mut session: QuerySession,
    statements: Vec<QuiverStatement>,
) -> Result<Vec<u8>, ApiError> {
    let user = session.user().clone();
    let mut rows_read = 0u64;

    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"{\"status\":\"success\",\"results\":[");
    for (index, statement) in statements.into_iter().enumerate() {
        let fail = |e: QueryError| ApiError::from_query(e, Some(index));
        if index > 0 {
            out.push(b',');
        }
        let as_user = statement.runs_as().map_or(user.as_str(), |u| u).to_string();
        match session.execute(statement).await.map_err(fail)? {
            StatementOutput::Done { row_count, message } => {
                let result = json!({
                    "schema": [],
                    "row_count": row_count,
                    "as_user": as_user,
                    "message": message,
                });
                serde_json::to_writer(&mut out, &result).expect("writing to a Vec cannot fail");
            }
            StatementOutput::Rows(mut stream) => {
                out.extend_from_slice(b"{\"schema\":");
                serde_json::to_writer(&mut out, &schema_json(&stream.schema()))
                    .expect("writing to a Vec cannot fail");
                out.extend_from_slice(b",\"rows\":[");
                let mut rows = 0usize;
                while let Some(batch) = stream.next().await {
                    let batch = batch.map_err(|e| fail(e.into()))?;
                    if rows + batch.num_rows() > max_rows {
                        return Err(fail(QueryError::ResultTooLarge { limit: max_rows }));
                    }
                    write_rows(&batch, &mut out, rows == 0);
                    rows += batch.num_rows();
                }
                rows_read += rows as u64;
                out.extend_from_slice(b"],\"row_count\":");
                out.extend_from_slice(rows.to_string().as_bytes());
                out.extend_from_slice(b",\"as_user\":");
                serde_json::to_writer(&mut out, &as_user).expect("writing to a Vec cannot fail");
                out.push(b'}');
            }
        }
    }
    engine
        .node()
        .counters
        .rows_read
        .fetch_add(rows_read, Ordering::Relaxed);
    Ok(out)
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
