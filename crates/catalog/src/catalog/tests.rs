use quiver_common::ColumnType;
use quiver_store::StoreOptions;

use super::*;
use crate::defs::{ColumnDef, TableOptions, TableType};

fn open(dir: &std::path::Path) -> Catalog {
    let store = Arc::new(Store::open(dir, &StoreOptions::default()).unwrap());
    Catalog::open(store).unwrap()
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
        }],
        primary_key: Some(1),
        options: TableOptions::default(),
        schema_version: 0,
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
