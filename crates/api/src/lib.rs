//! Quiver's HTTP and WebSocket adapters: the v1 SQL endpoint, live queries
//! over `/v1/ws`, sign-in and tokens, health checks and metrics, with the
//! KalamDB-compatible JSON envelope and error codes. Each handler decodes,
//! calls the request service, and encodes. The listener caps connections
//! and the time a client has to send each request.

mod auth;
mod encode;
mod error;
mod listener;
mod metrics;
mod routes;
mod sql;
mod ws;

pub use encode::{schema_json, write_rows};
pub use error::ApiError;
pub use listener::{ConnectionLimits, serve};
pub use metrics::Metrics;
pub use routes::{ApiState, router};
