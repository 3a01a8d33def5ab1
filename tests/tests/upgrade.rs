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

/// A copy of a fixture data directory written by an older binary.
fn fixture(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(name)
        .join("rocksdb");
    copy_dir(&fixture, &dir.path().join("rocksdb"));
    dir
}

#[tokio::test]
async fn a_layout_0_directory_is_upgraded_and_keeps_its_data() {
    let dir = fixture("layout-0");

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
    // Layout 0 had neither history nor a column id counter.
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

/// `tests/fixtures/layout-1` was written by the layout-1 binary: namespace
/// `shop`; `orders` created as (id, item, qty), given `note` with a
/// default, `item` renamed to `product`, row 2 deleted; view `shop.big`;
/// stream table `shop.events`.
#[tokio::test]
async fn a_layout_1_directory_moves_its_catalog_into_system_tables() {
    let dir = fixture("layout-1");
    let server = TestServer::start_config(test_config(dir.path())).await;

    let rows = server
        .sql_ok("SELECT id, product, qty, note FROM shop.orders ORDER BY id")
        .await;
    assert_eq!(
        rows.rows(0),
        &vec![
            json!(["1", "apple", 3, "none"]),
            json!(["3", "plum", 7, "none"]),
            json!(["4", "fig", 1, "none"])
        ]
    );
    let view = server.sql_ok("SELECT id FROM shop.big ORDER BY id").await;
    assert_eq!(view.rows(0), &vec![json!(["1"]), json!(["3"])]);

    let history = server
        .sql_ok(
            "SELECT schema_version, change FROM system.table_versions \
             WHERE table_name = 'orders' ORDER BY schema_version",
        )
        .await;
    assert_eq!(
        history.rows(0),
        &vec![
            json!([1, "CREATE TABLE"]),
            json!([2, "ADD COLUMN note TEXT DEFAULT 'none'"]),
            json!([3, "RENAME COLUMN item TO product"])
        ]
    );
    let tables = server
        .sql_ok("SELECT table_name, table_type, ttl_seconds FROM system.tables ORDER BY table_name")
        .await;
    assert_eq!(
        tables.rows(0),
        &vec![
            json!(["events", "STREAM", "3600"]),
            json!(["orders", "SHARED", null])
        ]
    );
    let users = server
        .sql_ok("SELECT user_id, role FROM system.users")
        .await;
    assert_eq!(users.rows(0), &vec![json!(["root", "system"])]);
    let jobs = server
        .sql_ok("SELECT job_type, status, target, node_id, rows FROM system.jobs")
        .await;
    assert_eq!(
        jobs.rows(0),
        &vec![json!([
            "upgrade",
            "completed",
            "catalog layout 1 -> 3",
            "test-node",
            // 2 namespaces, 2 tables, 4 versions, 1 view.
            "9"
        ])]
    );

    // The old records are gone, and a second start does not upgrade again.
    let server = server.restart().await;
    let jobs = server.sql_ok("SELECT COUNT(*) FROM system.jobs").await;
    assert_eq!(jobs.rows(0), &vec![json!(["1"])]);
    server
        .sql_ok("ALTER TABLE shop.orders DROP COLUMN note")
        .await;
    let server = server.restart().await;
    let columns = server
        .sql_ok(
            "SELECT column_name FROM system.columns WHERE table_name = 'orders' ORDER BY ordinal",
        )
        .await;
    assert_eq!(
        columns.rows(0),
        &vec![json!(["id"]), json!(["product"]), json!(["qty"])]
    );
    let store = &server.context.store;
    for prefix in [&b"ns/"[..], b"tb/", b"tv/", b"vw/"] {
        assert!(store.scan_meta(prefix).unwrap().is_empty());
    }
    server.stop().await;
}

/// Layout 2 kept USER-table rows under the table prefix and primary key,
/// with no owner. Such a directory is made here by moving a USER table's
/// rows back to those keys; the upgrade gives them to root.
#[tokio::test]
async fn layout_2_rows_of_user_tables_go_to_root() {
    let dir = tempfile::tempdir().unwrap();
    let server = TestServer::start_config(test_config(dir.path())).await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE USER TABLE app.notes (id BIGINT PRIMARY KEY, body TEXT); \
             INSERT INTO app.notes VALUES (1, 'one'), (2, 'two'), (3, 'three'); \
             DELETE FROM app.notes WHERE id = 2; \
             CREATE TABLE app.plain (id BIGINT PRIMARY KEY); \
             INSERT INTO app.plain VALUES (7); \
             CREATE USER 'alice' WITH PASSWORD 'pw' ROLE user",
        )
        .await;
    let table = server
        .context
        .catalog
        .table(
            &quiver_common::NamespaceId::new("app").unwrap(),
            &quiver_common::TableName::new("notes").unwrap(),
        )
        .unwrap()
        .def()
        .id
        .0;
    server.stop().await;
    {
        let store =
            quiver_store::Store::open(&dir.path().join("rocksdb"), &Default::default()).unwrap();
        let root = quiver_store::Scope::owned(table, "root");
        let scan = store.scan_rows(&root, None, 100).unwrap();
        assert_eq!(scan.rows.len(), 3, "two rows and a delete marker");
        let mut batch = store.batch();
        for (key, row) in &scan.rows {
            let mut unowned = quiver_store::table_prefix(table).to_vec();
            unowned.extend_from_slice(&key[root.prefix().len()..]);
            batch.delete_row(key);
            batch.put_row(&unowned, row);
        }
        batch.put_meta(b"layout_version", &2u32.to_be_bytes());
        store.commit(batch).unwrap();
    }
    let server = TestServer::start_config(test_config(dir.path())).await;
    let rows = server
        .sql_ok("SELECT id, body FROM app.notes ORDER BY id")
        .await;
    assert_eq!(
        rows.rows(0),
        &vec![json!(["1", "one"]), json!(["3", "three"])]
    );
    let alice = server
        .sql_as(
            &quiver_tests::basic("alice", "pw"),
            "SELECT COUNT(*) FROM app.notes",
        )
        .await;
    assert_eq!(alice.rows(0), &vec![json!(["0"])]);
    let plain = server.sql_ok("SELECT id FROM app.plain").await;
    assert_eq!(plain.rows(0), &vec![json!(["7"])]);
    let job = server
        .sql_ok("SELECT target, rows FROM system.jobs WHERE job_type = 'upgrade'")
        .await;
    assert_eq!(job.rows(0), &vec![json!(["catalog layout 2 -> 3", "2"])]);
    // Flushed afterwards, root's rows stay root's.
    server.sql_ok("STORAGE FLUSH TABLE app.notes").await;
    let server = server.restart().await;
    let count = server.sql_ok("SELECT COUNT(*) FROM app.notes").await;
    assert_eq!(count.rows(0), &vec![json!(["2"])]);
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
