//! Shared vocabulary of every Quiver crate: identifiers, the public error
//! codes spoken by the HTTP and WebSocket APIs, and the column types.

mod error;
mod ids;
mod types;

pub use error::ErrorCode;
pub use ids::{IdError, NamespaceId, NodeId, SeqId, TableId, TableName, UserId};
pub use types::{ColumnType, Role};
