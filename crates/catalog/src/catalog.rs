use std::collections::BTreeMap;
use std::sync::Arc;

use dashmap::DashMap;
use parking_lot::Mutex;
use quiver_common::{NamespaceId, NodeId, TableId, TableName, UserId};
use quiver_store::{Batch, ColdError, ColdTables, Scope, Store, StoreError, StoredRow, block_on};

use crate::defs::{
    JobRecord, JobStatus, NamespaceDef, TableDef, TableVersion, UserRecord, ViewDef,
};
use crate::registry::{CachedTableData, SchemaRegistry};
use crate::system::{self, BadRow, SystemTable};

const NEXT_TABLE_ID: &[u8] = b"next_table_id";
/// Meta key recording the layout of the catalog records in this directory.
const LAYOUT_VERSION_KEY: &[u8] = b"layout_version";
/// The catalog layout this binary writes. 0 was the first, untagged one;
/// 1 added column id counters and schema history; 2 keeps every record as
/// a row of a stored system table; 3 keys the rows of USER and STREAM
/// tables by owner.
pub const LAYOUT_VERSION: u32 = 3;
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
    #[error(transparent)]
    Cold(#[from] ColdError),
    #[error(
        "the data directory has catalog layout {found}, newer than the {supported} this binary \
         supports: run a newer Quiver, or restore a backup made by this version"
    )]
    NewerLayout { found: u32, supported: u32 },
    #[error("corrupt catalog record {key}: {detail}")]
    Corrupt { key: String, detail: String },
    #[error("user already exists: {0}")]
    UserExists(UserId),
    #[error("user not found: {0}")]
    UserNotFound(UserId),
}

/// Namespaces, tables, views and users of one node: the persisted truth
/// in the stored system tables and the cached view in memory (tables in
/// the [`SchemaRegistry`]). DDL is serialized by one short lock around the
/// check-and-commit; reads never take it.
#[derive(Debug)]
pub struct Catalog {
    store: Arc<Store>,
    tier: Arc<ColdTables>,
    node_id: NodeId,
    registry: SchemaRegistry,
    /// The stored system tables, in [`SystemTable::ALL`] order.
    system: Vec<Arc<CachedTableData>>,
    namespaces: DashMap<NamespaceId, NamespaceDef>,
    views: DashMap<(NamespaceId, TableName), Arc<ViewDef>>,
    users: DashMap<UserId, Arc<UserRecord>>,
    ddl: Mutex<()>,
}

pub(crate) fn now_micros() -> i64 {
    chrono::Utc::now().timestamp_micros()
}

/// Keeps the newer of two versions of a key.
fn keep_newest(newest: &mut BTreeMap<Vec<u8>, StoredRow>, key: Vec<u8>, row: StoredRow) {
    if newest
        .get(&key)
        .is_none_or(|existing| existing.seq < row.seq)
    {
        newest.insert(key, row);
    }
}

fn corrupt(key: &[u8], detail: impl ToString) -> CatalogError {
    CatalogError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        detail: detail.to_string(),
    }
}

impl From<BadRow> for CatalogError {
    fn from(bad: BadRow) -> Self {
        CatalogError::Corrupt {
            key: format!("system.{}", bad.table.name()),
            detail: bad.detail,
        }
    }
}

fn first_version(def: &TableDef) -> TableVersion {
    TableVersion {
        version: def.schema_version,
        changed_at: def.created_at,
        change: "CREATE TABLE".to_string(),
        columns: def.columns.clone(),
    }
}

impl Catalog {
    /// Loads the catalog from the store: a node's first start creates the
    /// default namespace and the `root` user; a directory written in an
    /// older layout is upgraded in one atomic batch; one from a newer
    /// binary is refused.
    pub fn open(tier: Arc<ColdTables>, node_id: NodeId) -> Result<Self, CatalogError> {
        let catalog = Self {
            store: tier.store().clone(),
            tier,
            node_id,
            registry: SchemaRegistry::default(),
            system: SystemTable::ALL
                .iter()
                .map(|t| Arc::new(CachedTableData::new(t.def())))
                .collect(),
            namespaces: DashMap::new(),
            views: DashMap::new(),
            users: DashMap::new(),
            ddl: Mutex::new(()),
        };
        match catalog.stored_layout()? {
            Some(found) if found > LAYOUT_VERSION => {
                return Err(CatalogError::NewerLayout {
                    found,
                    supported: LAYOUT_VERSION,
                });
            }
            Some(LAYOUT_VERSION) => block_on(catalog.load())?,
            Some(2) => catalog.upgrade_owners()?,
            Some(found) => catalog.upgrade(found)?,
            None if legacy::has_records(&catalog.store)? => catalog.upgrade(0)?,
            None => catalog.initialize()?,
        }
        block_on(catalog.fail_interrupted_jobs())?;
        Ok(catalog)
    }

    fn stored_layout(&self) -> Result<Option<u32>, CatalogError> {
        let Some(bytes) = self.store.get_meta(LAYOUT_VERSION_KEY)? else {
            return Ok(None);
        };
        let bytes = bytes
            .as_slice()
            .try_into()
            .map_err(|_| corrupt(LAYOUT_VERSION_KEY, "not 4 bytes"))?;
        Ok(Some(u32::from_be_bytes(bytes)))
    }

    /// A new data directory: the default namespace and the `root` user.
    fn initialize(&self) -> Result<(), CatalogError> {
        let now = now_micros();
        let mut batch = self.store.batch();
        let default = NamespaceDef {
            name: NamespaceId::new(DEFAULT_NAMESPACE).expect("valid built-in name"),
            created_at: now,
        };
        self.put(
            &mut batch,
            SystemTable::Namespaces,
            system::namespace_row(&default),
        );
        let root = root_user(now);
        self.put(&mut batch, SystemTable::Users, system::user_row(&root));
        batch.put_meta(LAYOUT_VERSION_KEY, &LAYOUT_VERSION.to_be_bytes());
        self.store.commit(batch)?;
        self.namespaces.insert(default.name.clone(), default);
        self.users.insert(root.id.clone(), Arc::new(root));
        Ok(())
    }

    /// Reads the stored system tables into memory.
    async fn load(&self) -> Result<(), CatalogError> {
        for row in SystemTable::Namespaces.scan(&self.tier, &[]).await? {
            let def = system::namespace_from(&row)?;
            self.namespaces.insert(def.name.clone(), def);
        }
        for row in SystemTable::Tables.scan(&self.tier, &[]).await? {
            self.registry.put(system::table_from(&row)?);
        }
        for row in SystemTable::Views.scan(&self.tier, &[]).await? {
            let def = system::view_from(&row)?;
            self.views
                .insert((def.namespace.clone(), def.name.clone()), Arc::new(def));
        }
        for row in SystemTable::Users.scan(&self.tier, &[]).await? {
            let user = system::user_from(&row)?;
            self.users.insert(user.id.clone(), Arc::new(user));
        }
        Ok(())
    }

    /// Layout 2 to 3: the rows of USER and STREAM tables, written before
    /// their keys named an owner, go to root, in one batch with the new
    /// layout and the job that records it.
    fn upgrade_owners(&self) -> Result<(), CatalogError> {
        let started = std::time::Instant::now();
        block_on(self.load())?;
        let tables = self.registry.all();
        let defs: Vec<&TableDef> = tables.iter().map(|t| t.def()).collect();
        let mut batch = self.store.batch();
        let (moved, emptied) = self.adopt_unowned_rows(&mut batch, &defs)?;
        batch.put_meta(LAYOUT_VERSION_KEY, &LAYOUT_VERSION.to_be_bytes());
        let job = self.upgrade_job(2, started, moved);
        self.put(&mut batch, SystemTable::Jobs, system::job_row(&job));
        self.store.commit(batch)?;
        self.remove_scopes(emptied)?;
        tracing::info!(rows = moved, "upgraded the catalog layout from 2");
        Ok(())
    }

    fn upgrade_job(&self, found: u32, started: std::time::Instant, rows: usize) -> JobRecord {
        let now = now_micros();
        JobRecord {
            id: uuid::Uuid::now_v7().to_string(),
            job_type: "upgrade".to_string(),
            status: JobStatus::Completed,
            target: Some(format!("catalog layout {found} -> {LAYOUT_VERSION}")),
            node_id: self.node_id.clone(),
            created_at: now,
            finished_at: Some(now),
            duration_ms: Some(started.elapsed().as_millis() as i64),
            rows: Some(rows as i64),
            bytes: None,
            message: None,
        }
    }

    /// Moves the rows of USER and STREAM tables whose keys have no owner
    /// (written before layout 3) into root's scope: the newest version of
    /// each key, from hot rows and segments, as hot rows that the next
    /// flush writes out again. Returns how many rows moved and the scopes
    /// whose segment files to delete once `batch` is committed.
    fn adopt_unowned_rows(
        &self,
        batch: &mut Batch<'_>,
        defs: &[&TableDef],
    ) -> Result<(usize, Vec<Scope>), CatalogError> {
        let mut moved = 0;
        let mut emptied = Vec::new();
        for def in defs.iter().filter(|d| d.table_type.per_user()) {
            let legacy = Scope::table(def.id.0);
            let root = Scope::owned(def.id.0, UserId::root().as_str());
            let mut newest: BTreeMap<Vec<u8>, StoredRow> = BTreeMap::new();
            let manifest = self.tier.manifest(&legacy);
            for segment in &manifest.segments {
                for (key, row) in block_on(self.tier.read_rows(segment, |_| true))? {
                    keep_newest(&mut newest, key, row);
                }
            }
            let mut after: Option<Box<[u8]>> = None;
            loop {
                let chunk = self.store.scan_rows(&legacy, after.as_deref(), 8192)?;
                for (key, row) in chunk.rows {
                    batch.delete_row(&key);
                    keep_newest(&mut newest, key.into_vec(), row);
                }
                match chunk.resume_after {
                    Some(key) => after = Some(key),
                    None => break,
                }
            }
            for (key, row) in newest {
                // Nothing older is left for a delete marker to hide.
                if row.deleted {
                    continue;
                }
                let mut owned = root.prefix();
                owned.extend_from_slice(&key[legacy.prefix().len()..]);
                batch.put_row(&owned, &row);
                moved += 1;
            }
            if !manifest.segments.is_empty() {
                emptied.push(legacy);
            }
        }
        Ok((moved, emptied))
    }

    fn remove_scopes(&self, scopes: Vec<Scope>) -> Result<(), CatalogError> {
        block_on(async {
            for scope in &scopes {
                self.tier.remove_scope(scope).await?;
            }
            Ok::<_, ColdError>(())
        })?;
        Ok(())
    }

    /// Rewrites the meta-key records of layout 0 or 1 as system table
    /// rows, removes them and records the new layout, in one batch; the
    /// upgrade itself is recorded in `system.jobs`.
    fn upgrade(&self, found: u32) -> Result<(), CatalogError> {
        let started = std::time::Instant::now();
        let records = legacy::load(&self.store)?;
        let migrated = records.count();
        let now = now_micros();
        let mut batch = self.store.batch();
        for def in &records.namespaces {
            self.put(
                &mut batch,
                SystemTable::Namespaces,
                system::namespace_row(def),
            );
        }
        for (def, versions) in &records.tables {
            self.put_table(&mut batch, def);
            for version in versions {
                self.put(
                    &mut batch,
                    SystemTable::TableVersions,
                    system::version_row(def, version),
                );
            }
        }
        for def in &records.views {
            self.put(&mut batch, SystemTable::Views, system::view_row(def));
        }
        let root = root_user(now);
        self.put(&mut batch, SystemTable::Users, system::user_row(&root));
        for key in &records.keys {
            batch.delete_meta(key);
        }
        let defs: Vec<&TableDef> = records.tables.iter().map(|(def, _)| def).collect();
        let (_, emptied) = self.adopt_unowned_rows(&mut batch, &defs)?;
        batch.put_meta(LAYOUT_VERSION_KEY, &LAYOUT_VERSION.to_be_bytes());
        let job = self.upgrade_job(found, started, migrated);
        self.put(&mut batch, SystemTable::Jobs, system::job_row(&job));
        self.store.commit(batch)?;
        self.remove_scopes(emptied)?;

        for def in records.namespaces {
            self.namespaces.insert(def.name.clone(), def);
        }
        for (def, _) in records.tables {
            self.registry.put(def);
        }
        for def in records.views {
            self.views
                .insert((def.namespace.clone(), def.name.clone()), Arc::new(def));
        }
        self.users.insert(root.id.clone(), Arc::new(root));
        tracing::info!(
            from = found,
            to = LAYOUT_VERSION,
            records = migrated,
            "upgraded the catalog layout"
        );
        Ok(())
    }

    /// Jobs this node was running when it stopped never finish; they are
    /// marked failed.
    async fn fail_interrupted_jobs(&self) -> Result<(), CatalogError> {
        let rows = SystemTable::Jobs.scan(&self.tier, &[]).await?;
        let mut batch = self.store.batch();
        for row in rows {
            let mut job = system::job_from(&row)?;
            if job.status != JobStatus::Running || job.node_id != self.node_id {
                continue;
            }
            job.status = JobStatus::Failed;
            job.message = Some("interrupted: the node stopped while it ran".to_string());
            self.put(&mut batch, SystemTable::Jobs, system::job_row(&job));
        }
        if !batch.is_empty() {
            self.store.commit(batch)?;
        }
        Ok(())
    }

    fn put(&self, batch: &mut Batch<'_>, table: SystemTable, values: Vec<quiver_store::Value>) {
        table.put(&self.store, batch, values);
        self.tier.pending().note(&Scope::table(table.id().0), 1);
    }

    fn delete(&self, batch: &mut Batch<'_>, table: SystemTable, key: Vec<quiver_store::Value>) {
        table.delete(&self.store, batch, key);
        self.tier.pending().note(&Scope::table(table.id().0), 1);
    }

    /// Writes a table's `system.tables` row and its `system.columns` rows.
    fn put_table(&self, batch: &mut Batch<'_>, def: &TableDef) {
        self.put(batch, SystemTable::Tables, system::table_row(def));
        for row in system::column_rows(def) {
            self.put(batch, SystemTable::Columns, row);
        }
    }

    /// Deletes everything stored about a table: its definition, columns,
    /// history and rows.
    fn delete_table(&self, batch: &mut Batch<'_>, def: &TableDef) {
        self.delete(batch, SystemTable::Tables, system::table_key(def.id));
        for column in &def.columns {
            self.delete(
                batch,
                SystemTable::Columns,
                system::column_key(def.id, column.id),
            );
        }
        // Every version from 1 to the current one has a history row.
        for version in 1..=def.schema_version {
            self.delete(
                batch,
                SystemTable::TableVersions,
                system::version_key(def.id, version),
            );
        }
        batch.delete_table_rows(def.id.0);
    }

    pub fn registry(&self) -> &SchemaRegistry {
        &self.registry
    }

    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    /// The cold tier the system tables (and every table) flush into.
    pub fn tier(&self) -> &Arc<ColdTables> {
        &self.tier
    }

    pub fn node_id(&self) -> &NodeId {
        &self.node_id
    }

    /// A stored system table by name (`tables`, `users`, ...).
    pub fn system_table(&self, name: &str) -> Option<Arc<CachedTableData>> {
        let table = SystemTable::from_name(name)?;
        Some(self.system[table as usize - 1].clone())
    }

    /// Every stored system table.
    pub fn system_tables(&self) -> &[Arc<CachedTableData>] {
        &self.system
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
        self.put(
            &mut batch,
            SystemTable::Namespaces,
            system::namespace_row(&def),
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
            self.delete_table(&mut batch, table.def());
        }
        for (ns, view) in &views {
            self.delete(&mut batch, SystemTable::Views, system::view_key(ns, view));
        }
        self.delete(
            &mut batch,
            SystemTable::Namespaces,
            system::namespace_key(name),
        );
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
        self.put_table(&mut batch, &def);
        self.put(
            &mut batch,
            SystemTable::TableVersions,
            system::version_row(&def, &first_version(&def)),
        );
        // No rows can exist under a fresh id: ids are never reused, the
        // next one is stored in this same batch.
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
        let mut batch = self.store.batch();
        self.delete_table(&mut batch, table.def());
        self.store.commit(batch)?;
        self.registry.remove(table.def().id);
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
        let before = table.def();
        let mut def = before.clone();
        edit(&mut def).map_err(CatalogError::InvalidChange)?;
        def.schema_version += 1;
        let version = TableVersion {
            version: def.schema_version,
            changed_at: now_micros(),
            change: change.to_string(),
            columns: def.columns.clone(),
        };
        let mut batch = self.store.batch();
        for column in &before.columns {
            if def.columns.iter().all(|c| c.id != column.id) {
                self.delete(
                    &mut batch,
                    SystemTable::Columns,
                    system::column_key(def.id, column.id),
                );
            }
        }
        self.put_table(&mut batch, &def);
        self.put(
            &mut batch,
            SystemTable::TableVersions,
            system::version_row(&def, &version),
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
        self.put(&mut batch, SystemTable::Views, system::view_row(&def));
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
        self.delete(
            &mut batch,
            SystemTable::Views,
            system::view_key(namespace, name),
        );
        self.store.commit(batch)?;
        self.views.remove(&key);
        Ok(true)
    }

    /// Every schema version of a table, oldest first.
    pub async fn history(&self, table: TableId) -> Result<Vec<TableVersion>, CatalogError> {
        let rows = SystemTable::TableVersions
            .scan(&self.tier, &[quiver_store::Value::Int64(table.0 as i64)])
            .await?;
        rows.iter()
            .map(|row| system::version_from(row).map_err(CatalogError::from))
            .collect()
    }

    /// Runs `f` with every writer of system rows shut out (flushes use it
    /// to remove the hot versions they moved to cold storage).
    pub fn exclusive<T>(&self, f: impl FnOnce() -> T) -> T {
        let _ddl = self.ddl.lock();
        f()
    }

    /// Writes a job's current state to `system.jobs`.
    pub fn record_job(&self, job: &JobRecord) -> Result<(), CatalogError> {
        let _ddl = self.ddl.lock();
        let mut batch = self.store.batch();
        self.put(&mut batch, SystemTable::Jobs, system::job_row(job));
        self.store.commit(batch)?;
        Ok(())
    }
}

mod legacy;
#[cfg(test)]
mod tests;
mod users;

pub use users::RefreshFamily;
use users::root_user;
