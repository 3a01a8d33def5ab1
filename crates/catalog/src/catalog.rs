use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use quiver_common::{NamespaceId, TableId, TableName};
use quiver_store::{Store, StoreError};

use crate::defs::{NamespaceDef, TableDef, TableVersion, ViewDef};
use crate::registry::{CachedTableData, SchemaRegistry};

const NAMESPACE_PREFIX: &[u8] = b"ns/";
const TABLE_PREFIX: &[u8] = b"tb/";
const VERSION_PREFIX: &[u8] = b"tv/";
const VIEW_PREFIX: &[u8] = b"vw/";
const NEXT_TABLE_ID: &[u8] = b"next_table_id";
/// Meta key recording the layout of the catalog records in this directory.
const LAYOUT_VERSION_KEY: &[u8] = b"layout_version";
/// The catalog layout this binary writes. 0 was the first, untagged one
/// (no `next_column_id`, no schema history); 1 adds both.
pub const LAYOUT_VERSION: u32 = 1;
/// The namespace every node has from its first start.
pub const DEFAULT_NAMESPACE: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("namespace already exists: {0}")]
    NamespaceExists(NamespaceId),
    #[error("namespace not found: {0}")]
    NamespaceNotFound(NamespaceId),
    #[error(
        "namespace {namespace} is not empty ({tables} table(s)); use DROP NAMESPACE {namespace} CASCADE"
    )]
    NamespaceNotEmpty {
        namespace: NamespaceId,
        tables: usize,
    },
    #[error("namespace {0} is built in and cannot be dropped")]
    NamespaceBuiltIn(NamespaceId),
    #[error("table already exists: {0}")]
    TableExists(String),
    #[error("a view named {0} already exists")]
    ViewExists(String),
    #[error("view not found: {0}")]
    ViewNotFound(String),
    #[error("table not found: {0}")]
    TableNotFound(String),
    #[error("{0}")]
    InvalidChange(String),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(
        "the data directory has catalog layout {found}, newer than the {supported} this binary \
         supports: run a newer Quiver, or restore a backup made by this version"
    )]
    NewerLayout { found: u32, supported: u32 },
    #[error("corrupt catalog record {key}: {detail}")]
    Corrupt { key: String, detail: String },
}

/// Namespaces and tables of one node: the persisted truth in the store and
/// the cached view in the [`SchemaRegistry`]. DDL is serialized by one
/// short lock around the check-and-commit; reads never take it.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<Store>,
    registry: SchemaRegistry,
    namespaces: DashMap<NamespaceId, NamespaceDef>,
    views: DashMap<(NamespaceId, TableName), Arc<ViewDef>>,
    ddl: Mutex<()>,
}

fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

fn corrupt(key: &[u8], detail: impl ToString) -> CatalogError {
    CatalogError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: detail.to_string(),
    }
}

fn table_key(id: TableId) -> Vec<u8> {
    let mut key = TABLE_PREFIX.to_vec();
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

fn versions_prefix(id: TableId) -> Vec<u8> {
    let mut key = VERSION_PREFIX.to_vec();
    key.extend_from_slice(&id.0.to_be_bytes());
    key
}

fn version_key(id: TableId, version: u32) -> Vec<u8> {
    let mut key = versions_prefix(id);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

fn version_record(def: &TableDef, change: &str) -> Vec<u8> {
    let version = TableVersion {
        version: def.schema_version,
        changed_at: now_micros(),
        change: change.to_string(),
        columns: def.columns.clone(),
    };
    serde_json::to_vec(&version).expect("serializable")
}

fn view_key(namespace: &NamespaceId, name: &TableName) -> Vec<u8> {
    let mut key = VIEW_PREFIX.to_vec();
    key.extend_from_slice(format!("{namespace}.{name}").as_bytes());
    key
}

fn namespace_key(name: &NamespaceId) -> Vec<u8> {
    let mut key = NAMESPACE_PREFIX.to_vec();
    key.extend_from_slice(name.as_str().as_bytes());
    key
}

impl Catalog {
    /// Loads the catalog from the store, creating the default namespace on
    /// a node's first start.
    pub fn open(store: Arc<Store>) -> Result<Self, CatalogError> {
        let catalog = Self {
            store,
            registry: SchemaRegistry::default(),
            namespaces: DashMap::new(),
            views: DashMap::new(),
            ddl: Mutex::new(()),
        };
        for (key, value) in catalog.store.scan_meta(NAMESPACE_PREFIX)? {
            let def: NamespaceDef = serde_json::from_slice(&value).map_err(|e| corrupt(&key, e))?;
            catalog.namespaces.insert(def.name.clone(), def);
        }
        for (key, value) in catalog.store.scan_meta(TABLE_PREFIX)? {
            let def: TableDef = serde_json::from_slice(&value).map_err(|e| corrupt(&key, e))?;
            catalog.registry.put(def);
        }
        for (key, value) in catalog.store.scan_meta(VIEW_PREFIX)? {
            let def: ViewDef = serde_json::from_slice(&value).map_err(|e| corrupt(&key, e))?;
            catalog
                .views
                .insert((def.namespace.clone(), def.name.clone()), Arc::new(def));
        }
        let fresh = catalog.namespaces.is_empty();
        catalog.upgrade_layout(fresh)?;
        if fresh {
            let default = NamespaceId::new(DEFAULT_NAMESPACE).expect("valid built-in name");
            catalog.create_namespace(&default, true)?;
        }
        Ok(catalog)
    }

    /// Brings an older directory's catalog records to [`LAYOUT_VERSION`],
    /// in one atomic batch, and refuses a directory from a newer binary.
    fn upgrade_layout(&self, fresh: bool) -> Result<(), CatalogError> {
        let found = match self.store.get_meta(LAYOUT_VERSION_KEY)? {
            Some(bytes) => u32::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt(LAYOUT_VERSION_KEY, "not 4 bytes"))?,
            ),
            None if fresh => LAYOUT_VERSION,
            None => 0,
        };
        if found > LAYOUT_VERSION {
            return Err(CatalogError::NewerLayout {
                found,
                supported: LAYOUT_VERSION,
            });
        }
        let mut batch = self.store.batch();
        if found < 1 {
            // Layout 0 had no column id counter and no schema history.
            for entry in self.registry.all() {
                let mut def = entry.def().clone();
                def.next_column_id = def.columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
                if self.store.scan_meta(&versions_prefix(def.id))?.is_empty() {
                    batch.put_meta(
                        &version_key(def.id, def.schema_version),
                        &version_record(&def, "CREATE TABLE"),
                    );
                }
                batch.put_meta(
                    &table_key(def.id),
                    &serde_json::to_vec(&def).expect("serializable"),
                );
                self.registry.put(def);
            }
            tracing::info!(
                from = found,
                to = LAYOUT_VERSION,
                "upgraded the catalog layout"
            );
        }
        if found != LAYOUT_VERSION || fresh {
            batch.put_meta(LAYOUT_VERSION_KEY, &LAYOUT_VERSION.to_be_bytes());
        }
        if !batch.is_empty() {
            self.store.commit(batch)?;
        }
        Ok(())
    }

    pub fn registry(&self) -> &SchemaRegistry {
        &self.registry
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    pub fn namespace_exists(&self, name: &NamespaceId) -> bool {
        self.namespaces.contains_key(name)
    }

    /// All namespaces, sorted by name.
    pub fn namespaces(&self) -> Vec<NamespaceDef> {
        let mut out: Vec<_> = self.namespaces.iter().map(|e| e.value().clone()).collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Creates a namespace; returns `false` when it existed and
    /// `if_not_exists` was set.
    pub fn create_namespace(
        &self,
        name: &NamespaceId,
        if_not_exists: bool,
    ) -> Result<bool, CatalogError> {
        let _ddl = self.ddl.lock();
        if self.namespaces.contains_key(name) {
            return if if_not_exists {
                Ok(false)
            } else {
                Err(CatalogError::NamespaceExists(name.clone()))
            };
        }
        let def = NamespaceDef {
            name: name.clone(),
            created_at: now_micros(),
        };
        let mut batch = self.store.batch();
        batch.put_meta(
            &namespace_key(name),
            &serde_json::to_vec(&def).expect("serializable"),
        );
        self.store.commit(batch)?;
        self.namespaces.insert(name.clone(), def);
        Ok(true)
    }

    /// Drops a namespace (and with `cascade`, its tables and their rows).
    /// Returns `false` when it did not exist and `if_exists` was set.
    pub fn drop_namespace(
        &self,
        name: &NamespaceId,
        if_exists: bool,
        cascade: bool,
    ) -> Result<bool, CatalogError> {
        let _ddl = self.ddl.lock();
        if !self.namespaces.contains_key(name) {
            return if if_exists {
                Ok(false)
            } else {
                Err(CatalogError::NamespaceNotFound(name.clone()))
            };
        }
        if name.as_str() == DEFAULT_NAMESPACE {
            return Err(CatalogError::NamespaceBuiltIn(name.clone()));
        }
        let tables = self.registry.tables_in(name);
        let views: Vec<_> = self
            .views
            .iter()
            .filter(|v| &v.key().0 == name)
            .map(|v| v.key().clone())
            .collect();
        if !cascade && (!tables.is_empty() || !views.is_empty()) {
            return Err(CatalogError::NamespaceNotEmpty {
                namespace: name.clone(),
                tables: tables.len() + views.len(),
            });
        }
        let mut batch = self.store.batch();
        for table in &tables {
            batch.delete_meta(&table_key(table.def().id));
            batch.delete_table_rows(table.def().id.0);
        }
        for (ns, view) in &views {
            batch.delete_meta(&view_key(ns, view));
        }
        batch.delete_meta(&namespace_key(name));
        self.store.commit(batch)?;
        for key in &views {
            self.views.remove(key);
        }
        for table in &tables {
            self.registry.remove(table.def().id);
        }
        self.namespaces.remove(name);
        Ok(true)
    }

    pub fn table(&self, namespace: &NamespaceId, name: &TableName) -> Option<Arc<CachedTableData>> {
        self.registry.get_by_name(namespace, name)
    }

    /// Creates a table from `def` (its `id`, `schema_version` and
    /// `created_at` are assigned here). Returns `None` when it existed and
    /// `if_not_exists` was set.
    pub fn create_table(
        &self,
        mut def: TableDef,
        if_not_exists: bool,
    ) -> Result<Option<Arc<CachedTableData>>, CatalogError> {
        let _ddl = self.ddl.lock();
        if !self.namespaces.contains_key(&def.namespace) {
            return Err(CatalogError::NamespaceNotFound(def.namespace.clone()));
        }
        if self
            .views
            .contains_key(&(def.namespace.clone(), def.name.clone()))
        {
            return Err(CatalogError::ViewExists(def.qualified_name()));
        }
        if self
            .registry
            .get_by_name(&def.namespace, &def.name)
            .is_some()
        {
            return if if_not_exists {
                Ok(None)
            } else {
                Err(CatalogError::TableExists(def.qualified_name()))
            };
        }
        let id = match self.store.get_meta(NEXT_TABLE_ID)? {
            None => 1,
            Some(bytes) => u64::from_be_bytes(
                bytes
                    .as_slice()
                    .try_into()
                    .map_err(|_| corrupt(NEXT_TABLE_ID, "not 8 bytes"))?,
            ),
        };
        def.id = TableId(id);
        def.schema_version = 1;
        def.next_column_id = def.columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        def.created_at = now_micros();
        let mut batch = self.store.batch();
        batch.put_meta(NEXT_TABLE_ID, &(id + 1).to_be_bytes());
        batch.put_meta(
            &table_key(def.id),
            &serde_json::to_vec(&def).expect("serializable"),
        );
        batch.put_meta(
            &version_key(def.id, 1),
            &version_record(&def, "CREATE TABLE"),
        );
        // A crashed earlier attempt cannot have left rows under a fresh id,
        // but clearing the range keeps that true by construction.
        batch.delete_table_rows(id);
        self.store.commit(batch)?;
        Ok(Some(self.registry.put(def)))
    }

    /// Drops a table and its rows. Returns `false` when it did not exist and
    /// `if_exists` was set.
    pub fn drop_table(
        &self,
        namespace: &NamespaceId,
        name: &TableName,
        if_exists: bool,
    ) -> Result<bool, CatalogError> {
        let _ddl = self.ddl.lock();
        let Some(table) = self.registry.get_by_name(namespace, name) else {
            return if if_exists {
                Ok(false)
            } else {
                Err(CatalogError::TableNotFound(format!("{namespace}.{name}")))
            };
        };
        let id = table.def().id;
        let mut batch = self.store.batch();
        batch.delete_meta(&table_key(id));
        for (key, _) in self.store.scan_meta(&versions_prefix(id))? {
            batch.delete_meta(&key);
        }
        batch.delete_table_rows(id.0);
        self.store.commit(batch)?;
        self.registry.remove(id);
        Ok(true)
    }

    /// Changes a table's definition: `edit` gets a copy of the current one
    /// and may refuse the change with a message. The new definition gets
    /// the next schema version, is persisted with its history record
    /// (`change` describes it) and replaces the cached one before this
    /// returns.
    pub fn alter_table(
        &self,
        namespace: &NamespaceId,
        name: &TableName,
        change: &str,
        edit: impl FnOnce(&mut TableDef) -> Result<(), String>,
    ) -> Result<Arc<CachedTableData>, CatalogError> {
        let _ddl = self.ddl.lock();
        let table = self
            .registry
            .get_by_name(namespace, name)
            .ok_or_else(|| CatalogError::TableNotFound(format!("{namespace}.{name}")))?;
        let mut def = table.def().clone();
        if def.next_column_id == 0 {
            def.next_column_id = def.columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        }
        edit(&mut def).map_err(CatalogError::InvalidChange)?;
        def.schema_version += 1;
        let mut batch = self.store.batch();
        batch.put_meta(
            &table_key(def.id),
            &serde_json::to_vec(&def).expect("serializable"),
        );
        batch.put_meta(
            &version_key(def.id, def.schema_version),
            &version_record(&def, change),
        );
        self.store.commit(batch)?;
        Ok(self.registry.put(def))
    }

    pub fn view(&self, namespace: &NamespaceId, name: &TableName) -> Option<Arc<ViewDef>> {
        self.views
            .get(&(namespace.clone(), name.clone()))
            .map(|v| v.value().clone())
    }

    /// Every table, sorted by namespace, then name.
    pub fn tables(&self) -> Vec<Arc<CachedTableData>> {
        let mut out = self.registry.all();
        out.sort_by(|a, b| {
            (&a.def().namespace, &a.def().name).cmp(&(&b.def().namespace, &b.def().name))
        });
        out
    }

    /// Every view, sorted by namespace, then name.
    pub fn views(&self) -> Vec<Arc<ViewDef>> {
        let mut out: Vec<_> = self.views.iter().map(|v| v.value().clone()).collect();
        out.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
        out
    }

    /// Every view of a namespace, sorted by name.
    pub fn views_in(&self, namespace: &NamespaceId) -> Vec<Arc<ViewDef>> {
        let mut out: Vec<_> = self
            .views
            .iter()
            .filter(|v| &v.key().0 == namespace)
            .map(|v| v.value().clone())
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// Stores a view (replacing one of the same name with `or_replace`).
    pub fn create_view(&self, mut def: ViewDef, or_replace: bool) -> Result<(), CatalogError> {
        let _ddl = self.ddl.lock();
        if !self.namespaces.contains_key(&def.namespace) {
            return Err(CatalogError::NamespaceNotFound(def.namespace.clone()));
        }
        if self
            .registry
            .get_by_name(&def.namespace, &def.name)
            .is_some()
        {
            return Err(CatalogError::TableExists(def.qualified_name()));
        }
        let key = (def.namespace.clone(), def.name.clone());
        if self.views.contains_key(&key) && !or_replace {
            return Err(CatalogError::ViewExists(def.qualified_name()));
        }
        def.created_at = now_micros();
        let mut batch = self.store.batch();
        batch.put_meta(
            &view_key(&def.namespace, &def.name),
            &serde_json::to_vec(&def).expect("serializable"),
        );
        self.store.commit(batch)?;
        self.views.insert(key, Arc::new(def));
        Ok(())
    }

    /// Drops a view; `false` when it did not exist and `if_exists` was set.
    pub fn drop_view(
        &self,
        namespace: &NamespaceId,
        name: &TableName,
        if_exists: bool,
    ) -> Result<bool, CatalogError> {
        let _ddl = self.ddl.lock();
        let key = (namespace.clone(), name.clone());
        if !self.views.contains_key(&key) {
            return if if_exists {
                Ok(false)
            } else {
                Err(CatalogError::ViewNotFound(format!("{namespace}.{name}")))
            };
        }
        let mut batch = self.store.batch();
        batch.delete_meta(&view_key(namespace, name));
        self.store.commit(batch)?;
        self.views.remove(&key);
        Ok(true)
    }

    /// Every schema version of a table, oldest first.
    pub fn history(&self, table: TableId) -> Result<Vec<TableVersion>, CatalogError> {
        self.store
            .scan_meta(&versions_prefix(table))?
            .into_iter()
            .map(|(key, value)| serde_json::from_slice(&value).map_err(|e| corrupt(&key, e)))
            .collect()
    }
}

#[cfg(test)]
mod tests;
