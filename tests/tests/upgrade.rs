//! Data directories written by older binaries are upgraded at start;
//! directories from newer ones are refused.

use std::path::Path;

use quiver_tests::{TestServer, test_config};
use serde_json::json;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[tokio::test]
async fn a_layout_0_directory_is_upgraded_and_keeps_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/layout-0/rocksdb");
    copy_dir(&fixture, &dir.path().join("rocksdb"));

    let server = TestServer::start_config(test_config(dir.path())).await;
    let rows = server
        .sql_ok("SELECT id, name, qty FROM legacy.items ORDER BY id")
        .await;
    assert_eq!(
        rows.rows(0),
        &vec![json!(["1", "one", 10]), json!(["3", "three", 1])]
    );
    // The deleted row stays deleted and its key can be reused.
    server
        .sql_ok("INSERT INTO legacy.items (id, name) VALUES (2, 'two again')")
        .await;
    // Layout 1 keeps history and a column id counter.
    let history = server.sql_ok("DESCRIBE TABLE legacy.items HISTORY").await;
    assert_eq!(history.rows(0).len(), 1);
    assert_eq!(history.rows(0)[0][2], "CREATE TABLE");
    server
        .sql_ok("ALTER TABLE legacy.items ADD COLUMN note TEXT DEFAULT 'old'")
        .await;
    let described = server.sql_ok("DESCRIBE TABLE legacy.items").await;
    let note = described
        .rows(0)
        .iter()
        .find(|r| r[0] == "note")
        .unwrap()
        .clone();
    assert_eq!(note[5], 4, "a new column gets the next unused id");
    let server = server.restart().await;
    let notes = server
        .sql_ok("SELECT id, note FROM legacy.items ORDER BY id")
        .await;
    assert_eq!(
        notes.rows(0),
        &vec![
            json!(["1", "old"]),
            json!(["2", "old"]),
            json!(["3", "old"])
        ]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_directory_from_a_newer_binary_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_config(test_config(dir.path())).await;
    server.stop().await;
    {
        let store =
            quiver_store::Store::open(&dir.path().join("rocksdb"), &Default::default()).unwrap();
        let mut batch = store.batch();
        batch.put_meta(b"layout_version", &99u32.to_be_bytes());
        store.commit(batch).unwrap();
    }
    let error = quiver::AppContext::build(test_config(dir.path()))
        .unwrap_err()
        .to_string();
    assert!(error.contains("layout 99"), "{error}");
    assert!(error.contains("newer"), "{error}");
}
