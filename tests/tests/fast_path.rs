//! Literal INSERTs and primary-key SELECTs skip DataFusion planning. These
//! tests run the same random statements through the fast path and, by a
//! rewrite the fast path declines, through the planned path, and require
//! the same answers: same status and error code, same stored rows, same
//! result schema and rows.

use quiver_tests::{Response, TestServer};
use serde_json::{Value, json};

const COLUMNS: &str = "id BIGINT PRIMARY KEY, s SMALLINT, i INT, f DOUBLE, r FLOAT, t TEXT, \
                       b BOOLEAN, ts TIMESTAMP, d DATE, j JSON, dec DECIMAL(10,2)";
/// Each column with literals it takes; any literal is tried now and then.
const FITTING: [(&str, &[&str]); 10] = [
    ("s", &["0", "7", "-42", "NULL"]),
    ("i", &["70000", "-42", "7"]),
    ("f", &["1.5", "-2.25", "1e3", "7"]),
    ("r", &["1.5", "12.345", "NULL"]),
    ("t", &["'abc'", "''", "'it''s'", "'12.5'"]),
    ("b", &["TRUE", "FALSE", "'true'"]),
    ("ts", &["'2024-01-02'", "'2024-01-02 03:04:05'", "0"]),
    ("d", &["'2024-01-02'", "NULL"]),
    ("j", &["'{\"a\": [1, 2]}'", "'7'"]),
    ("dec", &["12.345", "-42", "'12.5'", "1.5"]),
];

/// Literals of every kind the fast path takes, some of which fit no
/// column or only some.
const LITERALS: &[&str] = &[
    "0",
    "7",
    "-42",
    "70000",
    "-9223372036854775808",
    "9223372036854775807",
    "1.5",
    "-2.25",
    "1e3",
    "12.345",
    "'abc'",
    "''",
    "'2024-01-02'",
    "'2024-01-02 03:04:05'",
    "'12.5'",
    "'{\"a\": [1, 2]}'",
    "'true'",
    "'it''s'",
    "TRUE",
    "FALSE",
    "NULL",
];

fn pick<'a>(rng: &mut fastrand::Rng, items: &[&'a str]) -> &'a str {
    items[rng.usize(..items.len())]
}

/// Everything of an answer but its timing.
fn outcome(response: &Response) -> Value {
    if response.status == 200 {
        json!({ "status": 200, "result": response.body["results"][0] })
    } else {
        json!({ "status": response.status, "code": response.code() })
    }
}

/// Statements the node answered without planning, so far.
async fn fast_statements(server: &TestServer) -> i64 {
    let stats = server
        .sql_ok("SELECT fast_path_statements FROM system.stats")
        .await;
    let count = &stats.rows(0)[0][0];
    count
        .as_i64()
        .or_else(|| count.as_str()?.parse().ok())
        .unwrap_or_else(|| panic!("count: {count}"))
}

async fn setup() -> TestServer {
    let server = TestServer::start().await;
    server.sql_ok("CREATE NAMESPACE fp").await;
    for table in ["fast", "planned"] {
        server
            .sql_ok(&format!("CREATE TABLE fp.{table} ({COLUMNS})"))
            .await;
    }
    server
}

#[tokio::test]
async fn literal_inserts_store_what_planned_inserts_store() {
    let server = setup().await;
    let mut rng = fastrand::Rng::with_seed(0x5eed);
    let mut statements = 0;
    let mut failures = 0;
    let before = fast_statements(&server).await;
    for round in 0..300u64 {
        let columns: Vec<(&str, &[&str])> =
            FITTING.iter().copied().filter(|_| rng.bool()).collect();
        let rows = rng.usize(1..4);
        let mut fast = Vec::new();
        let mut planned = Vec::new();
        for r in 0..rows {
            // Now and then a key repeats, within the statement or across.
            let id = if rng.u8(..10) == 0 {
                round / 2
            } else {
                round * 4 + r as u64
            };
            let values: Vec<&str> = columns
                .iter()
                .map(|(_, fitting)| match rng.u8(..40) {
                    0 => pick(&mut rng, LITERALS),
                    _ => pick(&mut rng, fitting),
                })
                .collect();
            fast.push(format!("({id}, {})", values.join(", ")));
            let wrapped: Vec<String> = values.iter().map(|v| format!("({v})")).collect();
            planned.push(format!("(({id}), {})", wrapped.join(", ")));
        }
        let target = std::iter::once("id")
            .chain(columns.iter().map(|(name, _)| *name))
            .collect::<Vec<_>>()
            .join(", ");
        let by_fast = server
            .sql(&format!(
                "INSERT INTO fp.fast ({target}) VALUES {}",
                fast.join(", ")
            ))
            .await;
        let by_planner = server
            .sql(&format!(
                "INSERT INTO fp.planned ({target}) VALUES {}",
                planned.join(", ")
            ))
            .await;
        assert_eq!(
            outcome(&by_fast),
            outcome(&by_planner),
            "round {round}: {} / {}",
            fast.join(", "),
            by_planner.body
        );
        statements += 1;
        failures += usize::from(by_fast.status != 200);
    }
    // Literal INSERTs take the fast path unless one column mixes literal
    // types across rows; the planned rewrites never do.
    let fast_count = fast_statements(&server).await - before;
    assert!(
        fast_count > statements as i64 / 2 && fast_count <= statements as i64,
        "{fast_count} of {statements} statements took the fast path"
    );
    // Both outcomes were exercised.
    assert!(
        failures > 20 && failures < statements - 100,
        "{failures} of {statements} failed"
    );
    let names: Vec<&str> = FITTING.iter().map(|(name, _)| *name).collect();
    let all = format!("id, {}", names.join(", "));
    let fast = server
        .sql_ok(&format!("SELECT {all} FROM fp.fast ORDER BY id"))
        .await;
    let planned = server
        .sql_ok(&format!("SELECT {all} FROM fp.planned ORDER BY id"))
        .await;
    assert!(
        fast.rows(0).len() > 100,
        "{} rows stored",
        fast.rows(0).len()
    );
    assert_eq!(fast.body["results"][0], planned.body["results"][0]);
    server.stop().await;
}

#[tokio::test]
async fn point_selects_answer_what_planned_selects_answer() {
    let server = setup().await;
    for id in 0..40 {
        server
            .sql_ok(&format!(
                "INSERT INTO fp.fast (id, s, t, f, ts) VALUES ({id}, {id}, 'row {id}', {id}.5, '2024-01-02')"
            ))
            .await;
    }
    // Half the rows in a segment, some updated or deleted after the flush.
    server.sql_ok("STORAGE FLUSH TABLE fp.fast").await;
    for id in 40..60 {
        server
            .sql_ok(&format!(
                "INSERT INTO fp.fast (id, t) VALUES ({id}, 'hot {id}')"
            ))
            .await;
    }
    server
        .sql_ok("UPDATE fp.fast SET t = 'updated' WHERE id % 7 = 0")
        .await;
    server.sql_ok("DELETE FROM fp.fast WHERE id % 5 = 0").await;
    // A second segment with the new versions and delete markers, newer
    // than the first; then newer versions again in the hot store.
    server.sql_ok("STORAGE FLUSH TABLE fp.fast").await;
    server
        .sql_ok("UPDATE fp.fast SET t = 'again' WHERE id % 11 = 0")
        .await;

    let projections = [
        "*",
        "id",
        "t, id",
        "_seq, t",
        "f, ts, d, j",
        "id, dec, b, r, i, s",
    ];
    let mut rng = fastrand::Rng::with_seed(7);
    let mut found = 0;
    let before = fast_statements(&server).await;
    for _ in 0..200 {
        let projection = pick(&mut rng, &projections);
        let id = rng.i64(-5..70);
        let key = match rng.u8(..3) {
            0 => format!("id = {id}"),
            1 => format!("{id} = id"),
            _ => format!("(id = {id})"),
        };
        let fast = server
            .sql(&format!("SELECT {projection} FROM fp.fast WHERE {key}"))
            .await;
        let planned = server
            .sql(&format!(
                "SELECT {projection} FROM fp.fast WHERE {key} AND TRUE"
            ))
            .await;
        assert_eq!(outcome(&fast), outcome(&planned), "{projection} / {key}");
        assert_eq!(fast.status, 200, "{}", fast.body);
        found += fast.rows(0).len();
    }
    assert!(found > 80, "{found} rows found");
    // Every point select took the fast path (the statement reading
    // system.stats is planned).
    assert_eq!(fast_statements(&server).await - before, 200);

    // Keys the fast path does not take give the planned answers too.
    for sql in [
        "SELECT id FROM fp.fast WHERE id = 70000000000000000000",
        "SELECT id FROM fp.fast WHERE id = '3'",
        "SELECT id FROM fp.fast WHERE id = 3.0",
        "SELECT nope FROM fp.fast WHERE id = 3",
        "SELECT id, id FROM fp.fast WHERE id = 3",
        "SELECT id FROM fp.nope WHERE id = 3",
        "SELECT id FROM fp.fast WHERE id = NULL",
    ] {
        let response = server.sql(sql).await;
        assert!(
            [200, 400, 404].contains(&response.status),
            "{sql}: {}",
            response.body
        );
    }
    let three = server.sql_ok("SELECT id FROM fp.fast WHERE id = '3'").await;
    assert_eq!(three.rows(0), &vec![json!(["3"])]);
    server.stop().await;
}

#[tokio::test]
async fn key_reads_the_fast_path_cannot_answer_get_the_planned_answers() {
    let server = setup().await;
    for id in 0..5 {
        server
            .sql_ok(&format!(
                "INSERT INTO fp.fast (id, t) VALUES ({id}, 'row {id}')"
            ))
            .await;
    }
    server
        .sql_ok("CREATE VIEW fp.recent AS SELECT id, t FROM fp.fast")
        .await;
    // Each reads as a key read from its text; the names then resolve to
    // something else than a table's primary key, or to nothing.
    let declined: &[(&str, Value)] = &[
        ("SELECT nope FROM fp.fast WHERE id = 3", json!([])),
        ("SELECT id, id FROM fp.fast WHERE id = 3", json!([])),
        ("SELECT id FROM fp.nope WHERE id = 3", json!([])),
        ("SELECT id FROM nope.fast WHERE id = 3", json!([])),
        ("SELECT t FROM fp.recent WHERE id = 3", json!([])),
        ("SELECT id FROM fp.fast WHERE t = 'row 3'", json!([])),
        ("SELECT id FROM fp.fast WHERE id = $1", json!(["3"])),
        ("SELECT id FROM fp.fast WHERE id = $1", json!([1.5])),
        (
            "SELECT * FROM system.namespaces WHERE name = 'fp'",
            json!([]),
        ),
        ("SELECT t FROM fast WHERE id = 3", json!([])),
    ];
    let before = fast_statements(&server).await;
    for (sql, params) in declined {
        let answer = server.post(json!({"sql": sql, "params": params})).await;
        let planned = server
            .post(json!({"sql": format!("{sql} AND TRUE"), "params": params}))
            .await;
        assert_eq!(outcome(&answer), outcome(&planned), "{sql} {params}");
    }
    assert_eq!(
        fast_statements(&server).await - before,
        0,
        "every one was planned"
    );
    let view = server.sql_ok("SELECT t FROM fp.recent WHERE id = 3").await;
    assert_eq!(view.rows(0), &vec![json!(["row 3"])]);

    // With a parameter of the key's type, the same text is answered
    // without planning, as is a read in the request's namespace.
    let before = fast_statements(&server).await;
    let answer = server
        .post(json!({"sql": "SELECT t FROM fp.fast WHERE id = $1", "params": [3]}))
        .await;
    assert_eq!(answer.rows(0), &vec![json!(["row 3"])]);
    let answer = server
        .post(json!({"sql": "SELECT t FROM fast WHERE id = 4", "namespace_id": "fp"}))
        .await;
    assert_eq!(answer.rows(0), &vec![json!(["row 4"])]);
    assert_eq!(fast_statements(&server).await - before, 2);
    server.stop().await;
}

/// Whether `server` answers `sql`, sent by root in namespace `fp`, on the
/// thread that received it.
fn runs_directly(server: &TestServer, sql: &str) -> bool {
    let engine = &server.context.engine;
    let root = quiver_common::UserId::parse("root").unwrap();
    let session = engine
        .session(Some("fp"), root, quiver_common::Role::System)
        .unwrap();
    session.runs_directly(&mut engine.prepare(sql, &[]).unwrap())
}

/// Statements answered where the request arrived are one statement each,
/// of bounded work; everything else goes to the query runtime.
#[tokio::test]
async fn only_bounded_statements_run_directly() {
    let server = setup().await;
    server
        .sql_ok("CREATE VIEW fp.recent AS SELECT id, t FROM fp.fast")
        .await;
    let direct = |sql: &str| runs_directly(&server, sql);
    let insert = |rows: usize| {
        let values: Vec<String> = (0..rows).map(|i| format!("({i})")).collect();
        format!("INSERT INTO fp.fast (id) VALUES {}", values.join(", "))
    };
    assert!(direct("SELECT t FROM fp.fast WHERE id = 1"));
    assert!(direct("SELECT t FROM fast WHERE id = 1"));
    assert!(direct(&insert(1)));
    assert!(direct(&insert(quiver_query::DIRECT_INSERT_ROWS)));
    assert!(!direct(&insert(quiver_query::DIRECT_INSERT_ROWS + 1)));
    for planned in [
        "SELECT t FROM fp.recent WHERE id = 1",
        "SELECT t FROM fp.fast WHERE t = 'a'",
        "SELECT t FROM fp.fast WHERE id = 1 AND TRUE",
        "SELECT COUNT(*) FROM fp.fast",
        "INSERT INTO fp.fast (id) VALUES (1); INSERT INTO fp.fast (id) VALUES (2)",
        "UPDATE fp.fast SET t = 'x' WHERE id = 1",
        "CREATE NAMESPACE other",
    ] {
        assert!(!direct(planned), "{planned}");
    }
    server.stop().await;

    // A commit that waits for the disk does not wait on the HTTP threads.
    let server = TestServer::start_with(|config| config.storage.sync_writes = true).await;
    server.sql_ok("CREATE NAMESPACE fp").await;
    server
        .sql_ok(&format!("CREATE TABLE fp.fast ({COLUMNS})"))
        .await;
    assert!(runs_directly(&server, "SELECT t FROM fp.fast WHERE id = 1"));
    assert!(!runs_directly(
        &server,
        "INSERT INTO fp.fast (id) VALUES (1)"
    ));
    server.stop().await;
}
