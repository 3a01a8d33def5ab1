//! Everything DataFusion: the `quiver` catalog and table providers over the
//! store, Quiver's SQL dialect, and the executor that runs DDL, DML and
//! queries for a request.

mod convert;
mod ddl;
mod dialect;
mod dml;
mod error;
mod executor;
mod provider;
mod suggest;
mod system;
mod views;

pub use dialect::QuiverStatement;
pub use error::QueryError;
pub use executor::{QueryEngine, QuerySession, StatementOutput};
pub use provider::CATALOG_NAME;
pub use system::NodeInfo;
