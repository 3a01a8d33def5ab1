use quiver_common::{ColumnType, Role};
use quiver_store::{Scope, StoreOptions};

use super::*;
use crate::defs::{ColumnDef, TableOptions, TableType};

fn open(dir: &std::path::Path) -> Catalog {
    let store = Arc::new(Store::open(&dir.join("rocksdb"), &StoreOptions::default()).unwrap());
    let cold = quiver_store::ColdStore::local(&dir.join("cold")).unwrap();
    let tier = Arc::new(ColdTables::open(store, cold).unwrap());
    Catalog::open(tier, NodeId::new("test-node").unwrap()).unwrap()
}

fn table(ns: &str, name: &str) -> TableDef {
    TableDef {
        id: TableId(0),
        namespace: NamespaceId::new(ns).unwrap(),
        name: TableName::new(name).unwrap(),
        table_type: TableType::Shared,
        columns: vec![ColumnDef {
            id: 1,
            name: "id".into(),
            column_type: ColumnType::BigInt,
            nullable: false,
            default: None,
            fill: None,
        }],
        hidden_columns: Vec::new(),
        primary_key: Some(1),
        options: TableOptions::default(),
        schema_version: 0,
        next_column_id: 0,
        created_at: 0,
    }
}

#[test]
fn catalog_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let app = NamespaceId::new("app").unwrap();
    {
        let catalog = open(dir.path());
        assert!(catalog.create_namespace(&app, false).unwrap());
        catalog
            .create_table(table("app", "users"), false)
            .unwrap()
            .unwrap();
    }
    let catalog = open(dir.path());
    let names: Vec<_> = catalog
        .namespaces()
        .into_iter()
        .map(|n| n.name.to_string())
        .collect();
    assert_eq!(names, vec!["app", "default"]);
    let users = catalog
        .table(&app, &TableName::new("users").unwrap())
        .unwrap();
    assert_eq!(users.def().id, TableId(1));
    let schema = users.arrow_schema();
    assert_eq!(schema.fields().len(), 2);
    assert!(Arc::ptr_eq(&schema, &users.arrow_schema()));
    let by_id = catalog.registry().schema(users.def().id).unwrap();
    assert!(
        Arc::ptr_eq(&schema, &by_id),
        "the registry hands out the one schema"
    );
}

#[test]
fn table_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open(dir.path());
    let ns = NamespaceId::new("default").unwrap();
    let first = catalog
        .create_table(table("default", "t"), false)
        .unwrap()
        .unwrap();
    catalog
        .drop_table(&ns, &TableName::new("t").unwrap(), false)
        .unwrap();
    let second = catalog
        .create_table(table("default", "t"), false)
        .unwrap()
        .unwrap();
    assert!(second.def().id > first.def().id);
}

#[test]
fn ddl_errors() {
    let dir = tempfile::tempdir().unwrap();
    let catalog = open(dir.path());
    let app = NamespaceId::new("app").unwrap();
    assert!(matches!(
        catalog.create_table(table("app", "t"), false),
        Err(CatalogError::NamespaceNotFound(_))
    ));
    catalog.create_namespace(&app, false).unwrap();
    assert!(!catalog.create_namespace(&app, true).unwrap());
    assert!(matches!(
        catalog.create_namespace(&app, false),
        Err(CatalogError::NamespaceExists(_))
    ));
    catalog.create_table(table("app", "t"), false).unwrap();
    assert!(
        catalog
            .create_table(table("app", "t"), true)
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        catalog.drop_namespace(&app, false, false),
        Err(CatalogError::NamespaceNotEmpty { tables: 1, .. })
    ));
    assert!(catalog.drop_namespace(&app, false, true).unwrap());
    assert!(catalog.registry().is_empty());
    assert!(matches!(
        catalog.drop_namespace(&NamespaceId::new("default").unwrap(), false, false),
        Err(CatalogError::NamespaceBuiltIn(_))
    ));
}

/// Runs `f` on a thread and fails if it does not finish within `secs`.
fn within<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(std::time::Duration::from_secs(secs))
        .expect("finished within the timeout")
}

#[test]
fn readers_never_see_a_schema_older_than_an_acknowledged_alter() {
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    use quiver_store::Value;

    use crate::defs::DefaultValue;

    within(120, || {
        let dir = tempfile::tempdir().unwrap();
        let catalog = Arc::new(open(dir.path()));
        let ns = NamespaceId::new("default").unwrap();
        let name = TableName::new("t").unwrap();
        catalog.create_table(table("default", "t"), false).unwrap();
        let acknowledged = Arc::new(AtomicU32::new(1));
        let done = Arc::new(AtomicBool::new(false));

        let readers: Vec<_> = (0..3)
            .map(|_| {
                let (catalog, acknowledged, done) =
                    (catalog.clone(), acknowledged.clone(), done.clone());
                let (ns, name) = (ns.clone(), name.clone());
                std::thread::spawn(move || {
                    let mut reads = 0u64;
                    while !done.load(Ordering::Acquire) {
                        let floor = acknowledged.load(Ordering::Acquire);
                        let entry = catalog.table(&ns, &name).expect("table exists");
                        let def = entry.def();
                        assert!(
                            def.schema_version >= floor,
                            "stale schema {} < {floor}",
                            def.schema_version
                        );
                        // The default records the version that set it.
                        let expected = match def.schema_version {
                            1 => None,
                            v => Some(DefaultValue::Literal(Value::Int64(i64::from(v)))),
                        };
                        assert_eq!(def.columns[0].default, expected);
                        assert_eq!(entry.arrow_schema().fields().len(), def.columns.len() + 1);
                        reads += 1;
                    }
                    reads
                })
            })
            .collect();

        for _ in 0..1000 {
            let altered = catalog
                .alter_table(&ns, &name, "ALTER COLUMN id SET DEFAULT", |def| {
                    let next = def.schema_version + 1;
                    def.columns[0].default =
                        Some(DefaultValue::Literal(Value::Int64(i64::from(next))));
                    Ok(())
                })
                .unwrap();
            acknowledged.store(altered.def().schema_version, Ordering::Release);
        }
        done.store(true, Ordering::Release);
        let reads: u64 = readers
            .into_iter()
            .map(|r| r.join().expect("reader passed"))
            .sum();
        assert!(reads > 0);
        assert_eq!(
            catalog.table(&ns, &name).unwrap().def().schema_version,
            1001
        );
        assert_eq!(
            block_on(catalog.history(catalog.table(&ns, &name).unwrap().def().id))
                .unwrap()
                .len(),
            1001
        );
    });
}

#[test]
fn registries_are_built_used_and_dropped_without_blocking() {
    within(60, || {
        for round in 0..100u64 {
            let registry = crate::registry::SchemaRegistry::default();
            for i in 0..10 {
                let mut def = table("default", &format!("t{i}"));
                def.id = TableId(round * 100 + i);
                registry.put(def);
            }
            let ns = NamespaceId::new("default").unwrap();
            let entry = registry
                .get_by_name(&ns, &TableName::new("t3").unwrap())
                .unwrap();
            assert_eq!(entry.arrow_schema().fields().len(), 2);
            assert_eq!(registry.tables_in(&ns).len(), 10);
            registry.remove(entry.def().id);
            assert_eq!(registry.len(), 9);
        }
    });
}

#[test]
fn altered_definitions_survive_reopen_with_history() {
    let dir = tempfile::tempdir().unwrap();
    let ns = NamespaceId::new("default").unwrap();
    let name = TableName::new("t").unwrap();
    {
        let catalog = open(dir.path());
        catalog.create_table(table("default", "t"), false).unwrap();
        catalog
            .alter_table(&ns, &name, "ADD COLUMN note TEXT", |def| {
                def.columns.push(ColumnDef {
                    id: def.next_column_id,
                    name: "note".into(),
                    column_type: ColumnType::Text,
                    nullable: true,
                    default: None,
                    fill: None,
                });
                def.next_column_id += 1;
                Ok(())
            })
            .unwrap();
        let refused = catalog.alter_table(&ns, &name, "nothing", |_| Err("no".to_string()));
        assert!(matches!(refused, Err(CatalogError::InvalidChange(_))));
    }
    let catalog = open(dir.path());
    let entry = catalog.table(&ns, &name).unwrap();
    assert_eq!(entry.def().schema_version, 2);
    assert_eq!(entry.def().next_column_id, 3);
    let history = block_on(catalog.history(entry.def().id)).unwrap();
    let changes: Vec<_> = history
        .iter()
        .map(|v| (v.version, v.change.as_str()))
        .collect();
    assert_eq!(
        changes,
        vec![(1, "CREATE TABLE"), (2, "ADD COLUMN note TEXT")]
    );
}

#[test]
fn catalog_records_are_rows_of_the_system_tables() {
    let dir = tempfile::tempdir().unwrap();
    let app = NamespaceId::new("app").unwrap();
    let name = TableName::new("t").unwrap();
    let tables = SystemTable::Tables;
    {
        let catalog = open(dir.path());
        catalog.create_namespace(&app, false).unwrap();
        catalog.create_table(table("app", "t"), false).unwrap();
        let store = catalog.store();
        let scan = store
            .scan_rows(&Scope::table(tables.id().0), None, 10)
            .unwrap();
        assert_eq!(scan.rows.len(), 1);
        let table_name = catalog
            .system_table("tables")
            .unwrap()
            .def()
            .column("table_name")
            .unwrap()
            .id;
        assert_eq!(
            scan.rows[0].1.cell(table_name),
            Some(&quiver_store::Value::Text("t".into()))
        );
        for prefix in [&b"ns/"[..], b"tb/", b"tv/", b"vw/"] {
            assert!(store.scan_meta(prefix).unwrap().is_empty());
        }
        // A drop writes delete markers, like a DELETE on a user table.
        assert!(catalog.drop_table(&app, &name, false).unwrap());
        let scan = store
            .scan_rows(&Scope::table(tables.id().0), None, 10)
            .unwrap();
        assert!(scan.rows.iter().all(|(_, row)| row.deleted));
        assert_eq!(scan.rows.len(), 1);
        catalog.create_table(table("app", "t"), false).unwrap();
    }
    let catalog = open(dir.path());
    let entry = catalog.table(&app, &name).unwrap();
    assert_eq!(block_on(catalog.history(entry.def().id)).unwrap().len(), 1);
    assert_eq!(catalog.tables().len(), 1);
}

#[test]
fn users_survive_reopen_with_their_hidden_hash() {
    let dir = tempfile::tempdir().unwrap();
    let ana = UserId::new("ana");
    {
        let catalog = open(dir.path());
        assert_eq!(catalog.users().len(), 1, "root exists from the first start");
        catalog
            .create_user(UserRecord {
                id: ana.clone(),
                role: Role::Dba,
                email: Some("ana@example.com".into()),
                password_hash: Some("$argon2id$hash".into()),
                created_at: 1,
                updated_at: 2,
                token_epoch: 0,
            })
            .unwrap();
        assert!(matches!(
            catalog.create_user((*catalog.user(&ana).unwrap()).clone()),
            Err(CatalogError::UserExists(_))
        ));
    }
    let catalog = open(dir.path());
    let user = catalog.user(&ana).unwrap();
    assert_eq!(user.role, Role::Dba);
    assert_eq!(user.password_hash.as_deref(), Some("$argon2id$hash"));
    let users = catalog.system_table("users").unwrap();
    assert!(users.def().column("password_hash").is_none());
    assert!(catalog.drop_user(&ana).unwrap());
    assert!(!catalog.drop_user(&ana).unwrap());
    drop(catalog);
    let catalog = open(dir.path());
    assert!(catalog.user(&ana).is_none());
    assert!(catalog.user(&UserId::root()).is_some());
}
