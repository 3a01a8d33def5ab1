//! Everything DataFusion: the `quiver` catalog and table providers over the
//! store, Quiver's SQL dialect, and the executor that runs DDL, DML and
//! queries for a request.

mod access;
mod assemble;
mod cold;
mod convert;
mod ddl;
mod dialect;
mod dml;
mod error;
mod executor;
mod fast;
mod functions;
mod live;
mod maintenance;
mod merge;
mod planning;
mod provider;
mod suggest;
mod system;
mod users;
mod views;
mod writer;

pub use convert::value_bytes;
pub use dialect::QuiverStatement;
pub use error::QueryError;
pub use executor::{DIRECT_INSERT_ROWS, EngineParts, QueryEngine, QuerySession, StatementOutput};
pub use live::{Kept, Snapshot, SnapshotMemory, Subscribed};
pub use maintenance::{recover, run_maintenance};
pub use provider::CATALOG_NAME;
pub use system::{NodeCounters, NodeInfo, NodeStats};
