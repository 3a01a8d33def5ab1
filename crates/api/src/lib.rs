//! Quiver's HTTP surface: the v1 SQL endpoint and health checks, with the
//! KalamDB-compatible JSON envelope and error codes.

mod encode;
mod error;
mod routes;

pub use encode::{schema_json, write_rows};
pub use error::ApiError;
pub use routes::{ApiState, router};
