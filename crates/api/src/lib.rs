//! Quiver's HTTP surface: the v1 SQL endpoint, sign-in and tokens, and
//! health checks, with the KalamDB-compatible JSON envelope and error
//! codes.

mod auth;
mod encode;
mod error;
mod limits;
mod metrics;
mod routes;
mod ws;

pub use auth::{Auth, MIN_SECRET_BYTES, Principal, WeakSecret, is_loopback_host};
pub use encode::{schema_json, write_rows};
pub use error::ApiError;
pub use limits::RequestRate;
pub use metrics::Metrics;
pub use routes::{ApiState, router};
