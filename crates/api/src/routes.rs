use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::Limited;
use quiver_common::ErrorCode;
use quiver_config::SharedConfig;
use quiver_live::LiveQueryManager;
use quiver_query::NodeInfo;
use quiver_service::RequestService;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::metrics::{self, Metrics};
use crate::{auth, sql, ws};

/// What the handlers share: built once by the node's composition root.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// What every request goes through.
    pub service: Arc<RequestService>,
    /// The settings in effect, read on each request.
    pub config: Arc<SharedConfig>,
    /// The node's live queries, which WebSocket connections subscribe to.
    pub live: Arc<LiveQueryManager>,
    /// Identity and start time, for `/health`.
    pub node: Arc<NodeInfo>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the node stops: WebSocket connections close.
    pub shutdown: CancellationToken,
}

/// The v1 HTTP API.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/api/sql", post(sql::sql))
        .route("/v1/ws", get(ws::upgrade))
        .route("/v1/api/auth/login", post(auth::login))
        .route("/v1/api/auth/refresh", post(auth::refresh))
        .route("/v1/api/auth/logout", post(auth::logout))
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

/// Caps request bodies at `[limits] max_body_bytes` as configured now
/// (extractors reading past it answer 413), and the time a body may take
/// to arrive at `[server] body_timeout_secs`.
async fn limit_body(State(state): State<ApiState>, request: Request, next: Next) -> Response {
    let config = state.config.get();
    let limit = config.limits.max_body_bytes;
    let timeout = Duration::from_secs(config.server.body_timeout_secs);
    next.run(request.map(|body| {
        // A body with nothing to come (a GET) needs no timer.
        if http_body::Body::is_end_stream(&body) {
            return body;
        }
        Body::new(BodyDeadline {
            inner: Body::new(Limited::new(body, limit)),
            timeout,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        })
    }))
    .await
}

/// A request body that fails once its time is up.
struct BodyDeadline {
    inner: Body,
    timeout: Duration,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

/// Why a body stopped arriving.
#[derive(Debug, thiserror::Error)]
#[error("the request body did not arrive within {} s ([server] body_timeout_secs)", .0.as_secs())]
pub(crate) struct BodyTimeout(Duration);

impl http_body::Body for BodyDeadline {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        if self.deadline.as_mut().poll(cx).is_ready() {
            let timeout = self.timeout;
            return Poll::Ready(Some(Err(axum::Error::new(BodyTimeout(timeout)))));
        }
        Poll::Pending
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

async fn health(State(state): State<ApiState>) -> Json<serde_json::Value> {
    Json(json!({
        "status": "healthy",
        "version": env!("CARGO_PKG_VERSION"),
        "api_version": "v1",
        "build_date": option_env!("QUIVER_BUILD_DATE").unwrap_or("unknown"),
        "node_id": state.node.node_id.as_str(),
        "uptime_seconds": state.node.started_at.elapsed().as_secs(),
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
