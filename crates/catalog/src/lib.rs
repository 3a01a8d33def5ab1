//! Quiver's catalog: namespaces, table definitions (columns with stable
//! ids, primary key, defaults, table options, schema versions), views and
//! users. They are persisted as rows of the stored system tables and
//! cached in memory; the [`SchemaRegistry`] computes each Arrow schema
//! once.

mod arrow_types;
mod catalog;
mod defs;
mod password;
mod registry;
mod system;

pub use catalog::{DEFAULT_NAMESPACE, LAYOUT_VERSION};

pub use arrow_types::{
    DELETED_COLUMN, FIELD_TYPE_KEY, PK_FLAG_KEY, SEQ_COLUMN, arrow_type, column_type_of_field,
};
pub use catalog::{Catalog, CatalogError, RefreshFamily};
pub use defs::{
    AccessLevel, ColumnDef, DefaultValue, FlushPolicy, JobRecord, JobStatus, NamespaceDef,
    TableDef, TableOptions, TableType, TableVersion, UserRecord, ViewDef,
};
pub use password::{PasswordCost, PasswordError, hash_password, verify_password};
pub use registry::{CachedTableData, SchemaRegistry, build_schema};
pub use system::{SYSTEM_NAMESPACE, SystemTable, render_columns};
