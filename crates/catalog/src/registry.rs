use std::sync::{Arc, OnceLock};

use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use dashmap::DashMap;
use quiver_common::{NamespaceId, TableId, TableName};
use rustc_hash::FxBuildHasher;

use crate::arrow_types::{SEQ_COLUMN, arrow_type, field_metadata};
use crate::defs::TableDef;

/// A table definition with its Arrow schema, computed on first use and
/// shared from then on.
#[derive(Debug)]
pub struct CachedTableData {
    def: TableDef,
    schema: OnceLock<SchemaRef>,
}

impl CachedTableData {
    pub fn new(def: TableDef) -> Self {
        Self {
            def,
            schema: OnceLock::new(),
        }
    }

    pub fn def(&self) -> &TableDef {
        &self.def
    }

    /// The table's Arrow schema: its columns in order, then `_seq`.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.schema
            .get_or_init(|| Arc::new(build_schema(&self.def)))
            .clone()
    }
}

/// Builds a table's Arrow schema from its definition.
pub fn build_schema(def: &TableDef) -> Schema {
    let mut fields: Vec<Field> = def
        .columns
        .iter()
        .map(|c| {
            Field::new(&c.name, arrow_type(c.column_type), c.nullable)
                .with_metadata(field_metadata(c.column_type, def.primary_key == Some(c.id)))
        })
        .collect();
    fields.push(Field::new(SEQ_COLUMN, DataType::Int64, false));
    Schema::new(fields)
}

/// The cache of table definitions every query consults. Lookups are
/// lock-free reads of `Arc`s; DDL replaces or removes whole entries, so a
/// reader sees either the old or the new definition, never a mix.
#[derive(Debug, Default)]
pub struct SchemaRegistry {
    /// Keyed by table id with a fast integer hash: the lookup every query
    /// makes should cost a few nanoseconds.
    tables: DashMap<TableId, Arc<CachedTableData>, FxBuildHasher>,
    by_name: DashMap<(NamespaceId, TableName), TableId>,
}

impl SchemaRegistry {
    pub fn get(&self, id: TableId) -> Option<Arc<CachedTableData>> {
        self.tables.get(&id).map(|e| e.value().clone())
    }

    /// The table's Arrow schema, computed once; one `Arc` clone per call.
    pub fn schema(&self, id: TableId) -> Option<SchemaRef> {
        self.tables.get(&id).map(|e| e.value().arrow_schema())
    }

    pub fn get_by_name(
        &self,
        namespace: &NamespaceId,
        name: &TableName,
    ) -> Option<Arc<CachedTableData>> {
        let id = *self.by_name.get(&(namespace.clone(), name.clone()))?;
        self.get(id)
    }

    /// Inserts or replaces a definition.
    pub fn put(&self, def: TableDef) -> Arc<CachedTableData> {
        let key = (def.namespace.clone(), def.name.clone());
        let id = def.id;
        let entry = Arc::new(CachedTableData::new(def));
        self.tables.insert(id, entry.clone());
        self.by_name.insert(key, id);
        entry
    }

    pub fn remove(&self, id: TableId) -> Option<Arc<CachedTableData>> {
        let (_, entry) = self.tables.remove(&id)?;
        let def = entry.def();
        self.by_name
            .remove_if(&(def.namespace.clone(), def.name.clone()), |_, v| *v == id);
        Some(entry)
    }

    /// Every table of a namespace, sorted by name.
    pub fn tables_in(&self, namespace: &NamespaceId) -> Vec<Arc<CachedTableData>> {
        let mut out: Vec<_> = self
            .tables
            .iter()
            .filter(|e| &e.value().def().namespace == namespace)
            .map(|e| e.value().clone())
            .collect();
        out.sort_by(|a, b| a.def().name.cmp(&b.def().name));
        out
    }

    /// Every cached table.
    pub fn all(&self) -> Vec<Arc<CachedTableData>> {
        self.tables.iter().map(|e| e.value().clone()).collect()
    }

    pub fn len(&self) -> usize {
        self.tables.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}
