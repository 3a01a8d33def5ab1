//! Quiver's catalog: namespaces and table definitions (columns with stable
//! ids, primary key, defaults, table options, schema versions), persisted
//! in the store and cached in a [`SchemaRegistry`] that computes each Arrow
//! schema once.

mod arrow_types;
mod catalog;
mod defs;
mod registry;

pub use catalog::{DEFAULT_NAMESPACE, LAYOUT_VERSION};

pub use arrow_types::{
    DELETED_COLUMN, FIELD_TYPE_KEY, PK_FLAG_KEY, SEQ_COLUMN, arrow_type, column_type_of_field,
};
pub use catalog::{Catalog, CatalogError};
pub use defs::{
    AccessLevel, ColumnDef, DefaultValue, FlushPolicy, NamespaceDef, TableDef, TableOptions,
    TableType, TableVersion, ViewDef,
};
pub use registry::{CachedTableData, SchemaRegistry, build_schema};
