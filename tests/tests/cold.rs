//! Cold storage through a running server: flush policies, STREAM expiry,
//! segment files on disk, pruning in EXPLAIN, restarts.

use std::path::PathBuf;
use std::time::Duration;

use quiver_tests::TestServer;
use serde_json::json;

/// Polls `sql` until its first cell equals `expected`, for up to 20 s.
async fn eventually(server: &TestServer, sql: &str, expected: serde_json::Value) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let response = server.sql_ok(sql).await;
        let first = response.rows(0).first().map(|r| r[0].clone());
        if first.as_ref() == Some(&expected) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{sql}: still {first:?}, waiting for {expected}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn table_dir(server: &TestServer, table: &str) -> PathBuf {
    let id = server
        .sql_ok(&format!(
            "SELECT table_id FROM system.tables WHERE namespace_id || '.' || table_name = '{table}'"
        ))
        .await;
    let id = id.rows(0)[0][0].as_str().unwrap().to_string();
    server.data_dir().join("cold").join(format!("t{id}"))
}

fn segment_files(dir: &PathBuf) -> usize {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter(|e| {
                    e.as_ref()
                        .unwrap()
                        .file_name()
                        .to_string_lossy()
                        .ends_with(".parquet")
                })
                .count()
        })
        .unwrap_or(0)
}

fn flushes_of(table: &str) -> String {
    format!(
        "SELECT COUNT(*) FROM system.jobs WHERE job_type = 'flush' AND status = 'completed' \
         AND target = '{table}' AND rows > 0",
    )
}

#[tokio::test]
async fn both_parts_of_a_flush_policy_and_the_config_default_are_honoured() {
    let server = TestServer::start_with(|c| {
        c.flush.check_interval_ms = 20;
        c.flush.rows = 3;
        c.flush.interval_secs = 0;
    })
    .await;
    server
        .sql_ok(
            "CREATE TABLE by_rows (id INT PRIMARY KEY) WITH (FLUSH_POLICY = 'rows:5'); \
             CREATE TABLE by_age (id INT PRIMARY KEY) WITH (FLUSH_POLICY = 'interval:1'); \
             CREATE TABLE by_default (id INT PRIMARY KEY)",
        )
        .await;

    // Below every threshold nothing flushes.
    server
        .sql_ok(
            "INSERT INTO by_rows VALUES (1), (2), (3), (4); INSERT INTO by_default VALUES (1), (2)",
        )
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for table in ["default.by_rows", "default.by_default"] {
        let jobs = server.sql_ok(&flushes_of(table)).await;
        assert_eq!(jobs.rows(0)[0][0], "0", "{table} flushed early");
    }

    server
        .sql_ok("INSERT INTO by_rows VALUES (5); INSERT INTO by_default VALUES (3); INSERT INTO by_age VALUES (1)")
        .await;
    eventually(&server, &flushes_of("default.by_rows"), json!("1")).await;
    eventually(&server, &flushes_of("default.by_default"), json!("1")).await;
    // One row never reaches a row count; its age flushes it.
    eventually(&server, &flushes_of("default.by_age"), json!("1")).await;

    let job = server
        .sql_ok(
            "SELECT status, rows, bytes > 0, duration_ms >= 0, node_id FROM system.jobs \
             WHERE target = 'default.by_rows' AND job_type = 'flush'",
        )
        .await;
    assert_eq!(
        job.rows(0)[0],
        json!(["completed", "5", true, true, "test-node"])
    );
    let rows = server.sql_ok("SELECT COUNT(*) FROM by_rows").await;
    assert_eq!(rows.rows(0)[0][0], "5");
    server.stop().await;
}

#[tokio::test]
async fn stream_rows_expire_after_their_ttl() {
    let server = TestServer::start_with(|c| c.flush.check_interval_ms = 20).await;
    server
        .sql_ok(
            "CREATE STREAM TABLE ticks (n INT) WITH (TTL_SECONDS = 1); \
             INSERT INTO ticks VALUES (1), (2)",
        )
        .await;
    let count = server.sql_ok("SELECT COUNT(*) FROM ticks").await;
    assert_eq!(count.rows(0)[0][0], "2");
    eventually(&server, "SELECT COUNT(*) FROM ticks", json!("0")).await;
    server.stop().await;
}

#[tokio::test]
async fn segments_survive_restarts_and_drops_remove_their_files() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.a (id INT PRIMARY KEY, v TEXT); \
             CREATE TABLE app.b (id INT PRIMARY KEY, v TEXT); \
             INSERT INTO app.a VALUES (1, 'one'), (2, 'two'); \
             INSERT INTO app.b VALUES (1, 'uno'); \
             STORAGE FLUSH ALL IN app",
        )
        .await;
    let dir_a = table_dir(&server, "app.a").await;
    let dir_b = table_dir(&server, "app.b").await;
    assert_eq!(segment_files(&dir_a), 1);
    assert!(dir_a.join("manifest.json").exists());

    // A file no manifest names (a crash between writing and publishing)
    // is removed at start.
    std::fs::write(dir_a.join("seg-99.parquet"), b"partial").unwrap();
    let server = server.restart().await;
    assert_eq!(segment_files(&dir_a), 1);
    let rows = server.sql_ok("SELECT id, v FROM app.a ORDER BY id").await;
    assert_eq!(rows.rows(0), &vec![json!([1, "one"]), json!([2, "two"])]);

    server.sql_ok("DROP TABLE app.a").await;
    assert_eq!(segment_files(&dir_a), 0);
    assert!(!dir_a.join("manifest.json").exists());
    assert_eq!(segment_files(&dir_b), 1);
    server.sql_ok("DROP NAMESPACE app CASCADE").await;
    assert!(!dir_b.join("manifest.json").exists());
    assert_eq!(segment_files(&dir_b), 0);
    server.stop().await;
}

#[tokio::test]
async fn compaction_keeps_the_newest_version_of_every_key_across_segments() {
    let server = TestServer::start().await;
    server
        .sql_ok("CREATE NAMESPACE app; CREATE TABLE app.c (id INT PRIMARY KEY, v TEXT)")
        .await;
    // Several read batches per segment, and versions of one key in each.
    let mut expected: std::collections::BTreeMap<i64, &str> = Default::default();
    let values: Vec<String> = (0..3000).map(|id| format!("({id}, 'a')")).collect();
    server
        .sql_ok(&format!(
            "INSERT INTO app.c VALUES {}; STORAGE FLUSH TABLE app.c",
            values.join(", ")
        ))
        .await;
    expected.extend((0..3000).map(|id| (id, "a")));
    let values: Vec<String> = (3000..3500).map(|id| format!("({id}, 'c')")).collect();
    server
        .sql_ok(&format!(
            "UPDATE app.c SET v = 'b' WHERE id % 3 = 0; DELETE FROM app.c WHERE id % 5 = 0; \
             INSERT INTO app.c VALUES {}; STORAGE FLUSH TABLE app.c",
            values.join(", ")
        ))
        .await;
    for id in 0..3000 {
        if id % 3 == 0 {
            expected.insert(id, "b");
        }
    }
    expected.retain(|id, _| id % 5 != 0);
    expected.extend((3000..3500).map(|id| (id, "c")));
    server
        .sql_ok(
            "UPDATE app.c SET v = 'd' WHERE id % 7 = 0; INSERT INTO app.c VALUES (5, 'e'); \
             STORAGE FLUSH TABLE app.c",
        )
        .await;
    for (id, v) in expected.iter_mut() {
        if id % 7 == 0 {
            *v = "d";
        }
    }
    expected.insert(5, "e");
    let dir = table_dir(&server, "app.c").await;
    assert_eq!(segment_files(&dir), 3);

    server.sql_ok("STORAGE COMPACT TABLE app.c").await;
    assert_eq!(segment_files(&dir), 1);
    let rows = server.sql_ok("SELECT id, v FROM app.c ORDER BY id").await;
    let expected: Vec<_> = expected.iter().map(|(id, v)| json!([id, v])).collect();
    assert_eq!(rows.rows(0).len(), expected.len());
    assert_eq!(rows.rows(0), &expected);
    // The merged segment answers reads by key too.
    let row = server.sql_ok("SELECT v FROM app.c WHERE id = 21").await;
    assert_eq!(row.rows(0), &vec![json!(["d"])]);
    server.stop().await;
}

async fn cached_footers(server: &TestServer) -> i64 {
    let stats = server
        .sql_ok("SELECT cached_footers FROM system.stats")
        .await;
    stats.rows(0)[0][0].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn footers_of_replaced_and_dropped_segments_leave_the_scan_cache() {
    let server = TestServer::start().await;
    server
        .sql_ok("CREATE NAMESPACE app; CREATE TABLE app.f (id INT PRIMARY KEY, v TEXT)")
        .await;
    for id in 0..3 {
        server
            .sql_ok(&format!(
                "INSERT INTO app.f VALUES ({id}, 'v'); STORAGE FLUSH TABLE app.f"
            ))
            .await;
    }
    let dir = table_dir(&server, "app.f").await;
    assert_eq!(segment_files(&dir), 3);
    let count = "SELECT COUNT(*) FROM app.f";
    assert_eq!(server.sql_ok(count).await.rows(0), &vec![json!(["3"])]);
    // Other tables' segments may be cached too; only app.f's change.
    let scanned = cached_footers(&server).await;
    assert!(scanned >= 3, "{scanned}");

    server.sql_ok("STORAGE COMPACT TABLE app.f").await;
    assert_eq!(segment_files(&dir), 1);
    assert_eq!(cached_footers(&server).await, scanned - 3);
    assert_eq!(server.sql_ok(count).await.rows(0), &vec![json!(["3"])]);
    assert_eq!(cached_footers(&server).await, scanned - 2);

    server.sql_ok("DROP TABLE app.f").await;
    assert_eq!(cached_footers(&server).await, scanned - 3);
    server.stop().await;
}

#[tokio::test]
async fn explain_shows_segment_pruning() {
    let server = TestServer::start_with(|c| c.flush.row_group_rows = 10).await;
    let values: Vec<String> = (1..=100).map(|i| format!("({i}, {})", i % 7)).collect();
    server
        .sql_ok(&format!(
            "CREATE TABLE nums (id BIGINT PRIMARY KEY, m INT); INSERT INTO nums VALUES {}; \
             STORAGE FLUSH TABLE nums",
            values.join(", ")
        ))
        .await;
    let plan = server
        .sql_ok("EXPLAIN SELECT id FROM nums WHERE id BETWEEN 42 AND 44")
        .await;
    let text = plan.body.to_string();
    assert!(
        text.contains("QuiverMergeExec: union, no overlap"),
        "{text}"
    );
    assert!(text.contains("DataSourceExec"), "{text}");
    assert!(text.contains("pruning_predicate"), "{text}");

    let analyzed = server
        .sql_ok("EXPLAIN ANALYZE SELECT id FROM nums WHERE id BETWEEN 42 AND 44")
        .await;
    let text = analyzed.body.to_string();
    // 10 row groups of 10 ids: statistics rule out all but one.
    assert!(
        text.contains("row_groups_pruned_statistics=10 total → 1 matched"),
        "{text}"
    );
    // The manifest knows the row count of an untouched table exactly.
    let count = server.sql_ok("EXPLAIN SELECT COUNT(*) FROM nums").await;
    let text = count.body.to_string();
    assert!(!text.contains("DataSourceExec"), "{text}");
    let count = server.sql_ok("SELECT COUNT(*) FROM nums").await;
    assert_eq!(count.rows(0)[0][0], "100");
    server.sql_ok("DELETE FROM nums WHERE id = 7").await;
    let count = server.sql_ok("SELECT COUNT(*) FROM nums").await;
    assert_eq!(count.rows(0)[0][0], "99");
    let rows = server
        .sql_ok("SELECT id FROM nums WHERE id BETWEEN 42 AND 44 ORDER BY id")
        .await;
    assert_eq!(
        rows.rows(0),
        &vec![json!(["42"]), json!(["43"]), json!(["44"])]
    );
    server.stop().await;
}

#[tokio::test]
async fn system_tables_flush_and_the_catalog_reloads_from_segments() {
    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE NAMESPACE app; \
             CREATE TABLE app.t (id INT PRIMARY KEY, v TEXT); \
             CREATE TABLE app.gone (id INT PRIMARY KEY); \
             ALTER TABLE app.t ADD COLUMN w INT DEFAULT 7; \
             CREATE VIEW app.seven AS SELECT id FROM app.t WHERE w = 7; \
             INSERT INTO app.t (id, v) VALUES (1, 'one'); \
             STORAGE FLUSH ALL; STORAGE COMPACT ALL",
        )
        .await;
    let store = server.context.store.clone();
    for table in server.context.catalog.system_tables() {
        if table.def().name.as_str() == "jobs" {
            // The flush and compaction jobs record themselves.
            continue;
        }
        let hot = store
            .scan_rows(&quiver_store::Scope::table(table.def().id.0), None, 10)
            .unwrap();
        assert!(hot.rows.is_empty(), "{} kept hot rows", table.def().name);
    }
    drop(store);
    let server = server.restart().await;
    let rows = server
        .sql_ok("SELECT id, v, w FROM app.seven JOIN app.t USING (id)")
        .await;
    assert_eq!(rows.rows(0), &vec![json!([1, "one", 7])]);
    let history = server.sql_ok("DESCRIBE TABLE app.t HISTORY").await;
    assert_eq!(history.rows(0).len(), 2);

    // Changes after the flush shadow the cold system rows.
    server
        .sql_ok("DROP TABLE app.gone; DROP VIEW app.seven; ALTER TABLE app.t DROP COLUMN w")
        .await;
    let server = server.restart().await;
    let tables = server
        .sql_ok("SELECT table_name FROM system.tables WHERE namespace_id = 'app'")
        .await;
    assert_eq!(tables.rows(0), &vec![json!(["t"])]);
    let views = server.sql_ok("SELECT COUNT(*) FROM system.views").await;
    assert_eq!(views.rows(0)[0][0], "0");
    let columns = server
        .sql_ok("SELECT column_name FROM system.columns WHERE table_name = 't' ORDER BY ordinal")
        .await;
    assert_eq!(columns.rows(0), &vec![json!(["id"]), json!(["v"])]);
    let history = server.sql_ok("DESCRIBE TABLE app.t HISTORY").await;
    assert_eq!(history.rows(0).len(), 3);
    server.stop().await;
}

#[tokio::test]
async fn arrow_batches_append_without_sql_and_keep_keys_unique() {
    use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    let server = TestServer::start().await;
    server
        .sql_ok(
            "CREATE TABLE bulk (id BIGINT PRIMARY KEY, name TEXT NOT NULL, tag TEXT DEFAULT 'x')",
        )
        .await;
    let schema = Arc::new(Schema::new(vec![
        Field::new("id", DataType::Int64, false),
        Field::new("name", DataType::Utf8, false),
    ]));
    let batch = |ids: Vec<i64>| {
        let names: Vec<String> = ids.iter().map(|i| format!("n{i}")).collect();
        RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids)),
                Arc::new(StringArray::from(names)),
            ],
        )
        .unwrap()
    };
    let engine = &server.context.engine;
    assert_eq!(
        engine
            .append_batch("default", "bulk", &batch(vec![1, 2, 3]))
            .await
            .unwrap(),
        3
    );
    server.sql_ok("STORAGE FLUSH TABLE bulk").await;
    let duplicate = engine
        .append_batch("default", "bulk", &batch(vec![4, 2]))
        .await
        .unwrap_err();
    assert!(duplicate.to_string().contains("id = 2"), "{duplicate}");
    let within = engine
        .append_batch("default", "bulk", &batch(vec![5, 5]))
        .await
        .unwrap_err();
    assert!(within.to_string().contains("id = 5"), "{within}");
    let missing = engine
        .append_batch("default", "nope", &batch(vec![9]))
        .await;
    assert!(missing.is_err());
    let rows = server
        .sql_ok("SELECT id, name, tag FROM bulk ORDER BY id")
        .await;
    assert_eq!(
        rows.rows(0),
        &vec![
            json!(["1", "n1", "x"]),
            json!(["2", "n2", "x"]),
            json!(["3", "n3", "x"])
        ]
    );
    server.stop().await;
}
