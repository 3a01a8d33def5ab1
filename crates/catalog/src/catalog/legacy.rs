//! The catalog records of layouts 0 and 1: JSON values under meta keys.
//! They are read once, to rewrite them as system table rows.

use std::collections::BTreeMap;

use quiver_store::Store;

use super::{CatalogError, corrupt};
use crate::defs::{NamespaceDef, TableDef, TableVersion, ViewDef};

const NAMESPACE_PREFIX: &[u8] = b"ns/";
const TABLE_PREFIX: &[u8] = b"tb/";
const VERSION_PREFIX: &[u8] = b"tv/";
const VIEW_PREFIX: &[u8] = b"vw/";

/// Everything an older directory's catalog held.
#[derive(Debug, Default)]
pub(super) struct LegacyRecords {
    pub(super) namespaces: Vec<NamespaceDef>,
    /// Each table with its schema history, oldest first.
    pub(super) tables: Vec<(TableDef, Vec<TableVersion>)>,
    pub(super) views: Vec<ViewDef>,
    /// Every key read, deleted once the records are rewritten.
    pub(super) keys: Vec<Box<[u8]>>,
}

impl LegacyRecords {
    pub(super) fn count(&self) -> usize {
        self.keys.len()
    }
}

/// Whether the store holds records of layout 0 or 1.
pub(super) fn has_records(store: &Store) -> Result<bool, CatalogError> {
    Ok(!store.scan_meta(NAMESPACE_PREFIX)?.is_empty())
}

fn parse<T: serde::de::DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, CatalogError> {
    serde_json::from_slice(value).map_err(|e| corrupt(key, e))
}

/// Reads the records, bringing layout 0's up to what layout 1 added: a
/// column id counter and a first history entry.
pub(super) fn load(store: &Store) -> Result<LegacyRecords, CatalogError> {
    let mut records = LegacyRecords::default();
    for (key, value) in store.scan_meta(NAMESPACE_PREFIX)? {
        records.namespaces.push(parse(&key, &value)?);
        records.keys.push(key);
    }
    let mut history: BTreeMap<u64, Vec<TableVersion>> = BTreeMap::new();
    for (key, value) in store.scan_meta(VERSION_PREFIX)? {
        let id = key
            .get(VERSION_PREFIX.len()..VERSION_PREFIX.len() + 8)
            .and_then(|b| b.try_into().ok())
            .map(u64::from_be_bytes)
            .ok_or_else(|| corrupt(&key, "short key"))?;
        history.entry(id).or_default().push(parse(&key, &value)?);
        records.keys.push(key);
    }
    for (key, value) in store.scan_meta(TABLE_PREFIX)? {
        let mut def: TableDef = parse(&key, &value)?;
        if def.next_column_id == 0 {
            def.next_column_id = def.columns.iter().map(|c| c.id).max().unwrap_or(0) + 1;
        }
        let versions = history.remove(&def.id.0).unwrap_or_else(|| {
            vec![TableVersion {
                version: def.schema_version,
                changed_at: def.created_at,
                change: "CREATE TABLE".to_string(),
                columns: def.columns.clone(),
            }]
        });
        records.tables.push((def, versions));
        records.keys.push(key);
    }
    for (key, value) in store.scan_meta(VIEW_PREFIX)? {
        records.views.push(parse(&key, &value)?);
        records.keys.push(key);
    }
    Ok(records)
}
