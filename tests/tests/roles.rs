//! Authorization over real HTTP and WebSocket: every role against every
//! kind of table, reached by every path that can name a table (plain
//! reads, joins, subqueries, CTEs, views, EXPLAIN, INSERT ... SELECT,
//! UPDATE and DELETE with subqueries, names that match table functions, `information_schema`, SHOW TABLES, subscriptions),
//! and every statement only some roles may run. The rules the server is
//! held to are written once here, and the role table of
//! `docs/security.md` is checked against them. (A column DEFAULT reads no
//! table at all, for any role: `hardening.rs`.)

use std::collections::BTreeSet;

use quiver_tests::{ROOT_BASIC, TestServer, WsClient, basic};
use serde_json::json;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    User,
    Service,
    Dba,
    System,
}

const ROLES: [Role; 4] = [Role::User, Role::Service, Role::Dba, Role::System];

impl Role {
    fn name(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Service => "service",
            Self::Dba => "dba",
            Self::System => "system",
        }
    }

    fn login(self) -> String {
        basic(&format!("a_{}", self.name()), "pw")
    }

    fn is_admin(self) -> bool {
        matches!(self, Self::Dba | Self::System)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    User,
    Stream,
    SharedPrivate,
    SharedPublic,
    System,
}

/// What a role may do: the rules of `docs/security.md`.
#[derive(Debug, Clone, Copy)]
enum Action {
    Read(Kind),
    Write(Kind),
    CreateUserTable,
    /// Namespaces, SHARED and STREAM tables, ALTER, DROP, views.
    OtherDdl,
    /// `STORAGE FLUSH/COMPACT`, user management (and reading `system.*`).
    Administer,
    ChangeOwnPassword,
}

fn may(role: Role, action: Action) -> bool {
    match action {
        Action::Read(Kind::User | Kind::Stream | Kind::SharedPublic)
        | Action::Write(Kind::User | Kind::Stream)
        | Action::CreateUserTable
        | Action::ChangeOwnPassword => true,
        Action::Read(Kind::SharedPrivate)
        | Action::Write(Kind::SharedPrivate | Kind::SharedPublic) => role != Role::User,
        Action::Read(Kind::System) | Action::OtherDdl | Action::Administer => role.is_admin(),
        // System tables are read-only for everyone.
        Action::Write(Kind::System) => false,
    }
}

/// A table of each kind; two private SHARED tables, one named like a
/// table function.
const TABLES: [(&str, Kind); 6] = [
    ("app.mine", Kind::User),
    ("app.events", Kind::Stream),
    ("app.secret", Kind::SharedPrivate),
    ("app.generate_series", Kind::SharedPrivate),
    ("app.open", Kind::SharedPublic),
    ("system.users", Kind::System),
];

/// Reads of `{t}` by every path that can name a table; `{k}` is a key
/// unique to each run.
const READ_PATHS: [(&str, &str); 13] = [
    ("select", "SELECT count(*) FROM {t}"),
    ("join", "SELECT count(*) FROM app.mine m CROSS JOIN {t} x"),
    ("scalar subquery", "SELECT (SELECT count(*) FROM {t}) AS n"),
    (
        "IN subquery",
        "SELECT count(*) FROM app.mine WHERE id IN (SELECT 1 FROM {t})",
    ),
    ("EXISTS", "SELECT 1 AS one WHERE EXISTS (SELECT 1 FROM {t})"),
    (
        "CTE",
        "WITH c AS (SELECT * FROM {t}) SELECT count(*) FROM c",
    ),
    ("UNION", "SELECT 1 AS n UNION ALL SELECT count(*) FROM {t}"),
    ("view", "SELECT count(*) FROM {view}"),
    ("EXPLAIN", "EXPLAIN SELECT * FROM {t}"),
    (
        "INSERT ... SELECT",
        "INSERT INTO app.mine (id, v) SELECT {k}, count(*) FROM {t}",
    ),
    (
        "UPDATE with a subquery",
        "UPDATE app.mine SET v = (SELECT count(*) FROM {t}) WHERE id = 1",
    ),
    (
        "DELETE with a subquery",
        "DELETE FROM app.mine WHERE id IN (SELECT -1 FROM {t})",
    ),
    ("DESCRIBE", "DESCRIBE TABLE {t}"),
];

/// Writes to `{t}`; the STREAM table has no primary key and takes only
/// INSERT.
fn write_paths(kind: Kind) -> Vec<&'static str> {
    match kind {
        Kind::Stream => vec!["INSERT INTO {t} (kind) VALUES ('{k}')"],
        _ => vec![
            "INSERT INTO {t} (id, v) VALUES ({k}, 1)",
            "INSERT INTO {t} (id, v) VALUES ({k}, 1) ON CONFLICT (id) DO NOTHING",
            "UPDATE {t} SET v = 2 WHERE id = {k}",
            "DELETE FROM {t} WHERE id = -1",
        ],
    }
}

/// The statements only some roles may run; `{r}` is the role's name.
const STATEMENTS: [(&str, Action); 10] = [
    (
        "CREATE USER TABLE app.notes_{r} (id BIGINT PRIMARY KEY)",
        Action::CreateUserTable,
    ),
    (
        "CREATE TABLE app.shared_{r} (id BIGINT PRIMARY KEY)",
        Action::OtherDdl,
    ),
    ("CREATE NAMESPACE ns_{r}", Action::OtherDdl),
    (
        "CREATE VIEW app.view_{r} AS SELECT 1 AS one",
        Action::OtherDdl,
    ),
    (
        "ALTER TABLE app.open ADD COLUMN c_{r} INT",
        Action::OtherDdl,
    ),
    ("DROP TABLE app.shared_{r}", Action::OtherDdl),
    ("STORAGE FLUSH TABLE app.open", Action::Administer),
    (
        "CREATE USER 'made_by_{r}' WITH PASSWORD 'x' ROLE user",
        Action::Administer,
    ),
    ("ALTER USER 'a_user' SET ROLE user", Action::Administer),
    (
        "ALTER USER 'a_{r}' SET PASSWORD 'pw'",
        Action::ChangeOwnPassword,
    ),
];

async fn node_with_a_table_of_each_kind() -> TestServer {
    let server = TestServer::start().await;
    let mut setup = String::from(
        "CREATE NAMESPACE app; \
         CREATE USER TABLE app.mine (id BIGINT PRIMARY KEY, v BIGINT); \
         CREATE STREAM TABLE app.events (kind TEXT) WITH (TTL_SECONDS = 600); \
         CREATE TABLE app.secret (id BIGINT PRIMARY KEY, v BIGINT); \
         CREATE TABLE app.generate_series (id BIGINT PRIMARY KEY, v BIGINT); \
         CREATE TABLE app.open (id BIGINT PRIMARY KEY, v BIGINT) WITH (ACCESS_LEVEL = 'PUBLIC'); \
         INSERT INTO app.secret VALUES (1, 41); INSERT INTO app.generate_series VALUES (1, 42); \
         INSERT INTO app.open VALUES (1, 43); ",
    );
    for (table, _) in TABLES {
        setup.push_str(&format!(
            "CREATE VIEW {} AS SELECT * FROM {table}; ",
            view_of(table)
        ));
    }
    for role in ROLES {
        setup.push_str(&format!(
            "CREATE USER 'a_{0}' WITH PASSWORD 'pw' ROLE {0}; ",
            role.name()
        ));
    }
    server.sql_ok(setup.trim_end_matches("; ")).await;
    server
}

fn view_of(table: &str) -> String {
    format!("app.v_{}", table.replace('.', "_"))
}

/// Runs `sql` as `role`: `None` if it ran when `allowed`, or was refused
/// with 403 PERMISSION_DENIED naming the user otherwise; what happened
/// instead if not.
async fn check(
    server: &TestServer,
    role: Role,
    namespace: &str,
    sql: &str,
    allowed: bool,
) -> Option<String> {
    let body = json!({ "sql": sql, "namespace_id": namespace }).to_string();
    let answer = server.post_as(&role.login(), body).await;
    let who = role.name();
    let refused = answer.status == 403
        && answer.code() == "PERMISSION_DENIED"
        && answer.message().contains(&format!("a_{who}"));
    let right = if allowed {
        answer.status == 200
    } else {
        refused
    };
    let expected = if allowed { "run" } else { "refused" };
    (!right).then(|| {
        format!(
            "{who} must be {expected}: {sql}: {} {}",
            answer.status, answer.body
        )
    })
}

/// Asserts what [`check`] checks.
async fn expect(server: &TestServer, role: Role, namespace: &str, sql: &str, allowed: bool) {
    if let Some(wrong) = check(server, role, namespace, sql, allowed).await {
        panic!("{wrong}");
    }
}

#[tokio::test]
async fn every_path_to_a_table_passes_the_same_authorization() {
    let server = node_with_a_table_of_each_kind().await;
    let mut key = 1000;
    let mut checked = 0;
    let mut wrong = Vec::new();
    for role in ROLES {
        for (table, kind) in TABLES {
            let readable = may(role, Action::Read(kind));
            for (_, template) in READ_PATHS {
                key += 1;
                let sql = template
                    .replace("{t}", table)
                    .replace("{view}", &view_of(table))
                    .replace("{k}", &key.to_string());
                wrong.extend(check(&server, role, "default", &sql, readable).await);
                checked += 1;
            }
            // The table's bare name, with its namespace as the session's
            // (`generate_series` is also a table function's name).
            if let Some(bare) = table.strip_prefix("app.") {
                let sql = format!("SELECT count(*) FROM {bare}");
                wrong.extend(check(&server, role, "app", &sql, readable).await);
                checked += 1;
            }
            if kind != Kind::System {
                for template in write_paths(kind) {
                    key += 1;
                    let sql = template
                        .replace("{t}", table)
                        .replace("{k}", &key.to_string());
                    let allowed = may(role, Action::Write(kind));
                    wrong.extend(check(&server, role, "default", &sql, allowed).await);
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 4 * (6 * READ_PATHS.len() + 5 + 4 * 4 + 1));
    assert!(
        wrong.is_empty(),
        "{} of {checked} checks went wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );

    // System tables take no writes from anyone.
    for role in ROLES {
        let answer = server
            .sql_as(
                &role.login(),
                "DELETE FROM system.users WHERE user_id = 'nobody'",
            )
            .await;
        assert!(
            answer.status == 403 || answer.status == 400,
            "{}: {}",
            role.name(),
            answer.body
        );
    }
    server.stop().await;
}

#[tokio::test]
async fn table_function_names_still_call_the_functions() {
    let server = node_with_a_table_of_each_kind().await;
    let run = |role: Role, namespace: &'static str, sql: &'static str| {
        let body = json!({ "sql": sql, "namespace_id": namespace }).to_string();
        let server = &server;
        async move { server.post_as(&role.login(), body).await }
    };
    // A call is the function's, wherever it is made and whoever makes it.
    for (namespace, sql) in [
        ("app", "SELECT count(*) AS n FROM generate_series(1, 3)"),
        ("default", "SELECT count(*) AS n FROM generate_series(1, 3)"),
        ("system", "SELECT count(*) AS n FROM generate_series(1, 3)"),
        ("app", "SELECT count(*) AS n FROM range(3)"),
        (
            "app",
            "WITH generate_series AS (SELECT 1 AS x UNION ALL SELECT 2 UNION ALL SELECT 3) \
             SELECT count(*) AS n FROM generate_series",
        ),
    ] {
        let answer = run(Role::User, namespace, sql).await;
        assert_eq!(answer.status, 200, "{namespace}: {sql}: {}", answer.body);
        assert_eq!(answer.rows(0)[0][0], "3", "{sql}");
    }
    // The name without arguments is a table's, and a missing one is said
    // to be missing.
    let missing = run(Role::Dba, "default", "SELECT * FROM generate_series").await;
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.code(), "TABLE_NOT_FOUND");
    let no_namespace = run(Role::Dba, "default", "SELECT * FROM nope.range").await;
    assert_eq!(
        no_namespace.code(),
        "TABLE_NOT_FOUND",
        "{}",
        no_namespace.body
    );
    assert!(
        no_namespace.message().contains("namespace"),
        "{}",
        no_namespace.body
    );
    // What a refused table holds shows nowhere: not its rows, not its
    // columns, not in a plan.
    for sql in [
        "SELECT v FROM generate_series",
        "SELECT * FROM generate_series WHERE false",
        "SELECT * FROM generate_series LIMIT 0",
        "EXPLAIN SELECT * FROM generate_series",
    ] {
        let answer = run(Role::User, "app", sql).await;
        let text = answer.body.to_string();
        assert!(
            answer.status == 403 || answer.status == 400,
            "{sql}: {text}"
        );
        let shown = format!("{} {}", answer.body["results"], answer.message());
        assert!(!shown.contains("42"), "{sql}: {text}");
        assert!(!text.contains("generate_series.id"), "{sql}: {text}");
    }
    server.stop().await;
}

#[tokio::test]
async fn listings_show_only_what_the_role_may_read() {
    let server = node_with_a_table_of_each_kind().await;
    for role in ROLES {
        let readable: BTreeSet<String> = TABLES
            .iter()
            .filter(|(_, kind)| may(role, Action::Read(*kind)))
            .map(|(table, _)| table.to_string())
            .collect();
        for sql in [
            "SELECT table_schema || '.' || table_name AS t FROM information_schema.tables",
            "SELECT DISTINCT table_schema || '.' || table_name AS t FROM information_schema.columns",
        ] {
            let answer = server.sql_as(&role.login(), sql).await;
            assert_eq!(
                answer.status,
                200,
                "{}: {sql}: {}",
                role.name(),
                answer.body
            );
            let listed: BTreeSet<String> = answer
                .rows(0)
                .iter()
                .map(|row| row[0].as_str().unwrap().to_string())
                .collect();
            for (table, _) in TABLES {
                assert_eq!(
                    listed.contains(table),
                    readable.contains(table),
                    "{}: {table} in {sql}: {listed:?}",
                    role.name()
                );
            }
            let system_listed = listed.iter().any(|t| t.starts_with("system."));
            assert_eq!(
                system_listed,
                role.is_admin(),
                "{}: {listed:?}",
                role.name()
            );
        }
        let answer = server.sql_as(&role.login(), "SHOW TABLES IN app").await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        let shown: BTreeSet<String> = answer
            .rows(0)
            .iter()
            .map(|row| format!("app.{}", row[1].as_str().unwrap()))
            .collect();
        for (table, _) in TABLES.iter().filter(|(t, _)| t.starts_with("app.")) {
            assert_eq!(
                shown.contains(*table),
                readable.contains(*table),
                "{}: SHOW TABLES: {shown:?}",
                role.name()
            );
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn subscriptions_pass_the_same_authorization() {
    let server = node_with_a_table_of_each_kind().await;
    for role in ROLES {
        let mut client = WsClient::signed_in(&server, &role.login()).await;
        for (i, (table, kind)) in TABLES.iter().enumerate() {
            if *kind == Kind::System {
                continue;
            }
            for (j, sql) in [
                format!("SELECT * FROM {table}"),
                // A subscription resumed from a position.
                format!("SELECT * FROM {table} WHERE 1 = 1"),
            ]
            .into_iter()
            .enumerate()
            {
                let id = format!("s{i}_{j}");
                let mut subscription = json!({"id": id, "sql": sql});
                if j == 1 {
                    subscription["options"] = json!({"from": 0});
                }
                client
                    .send(json!({"type": "subscribe", "subscription": subscription}))
                    .await;
                let answer = client.next().await;
                if may(role, Action::Read(*kind)) {
                    assert_eq!(
                        answer["type"],
                        "subscription_ack",
                        "{}: {sql}: {answer}",
                        role.name()
                    );
                    // The snapshot's first batch (or the replay) follows.
                    let first = client.next().await;
                    assert_eq!(first["type"], "initial_data_batch", "{first}");
                } else {
                    assert_eq!(answer["type"], "error", "{}: {sql}: {answer}", role.name());
                    assert_eq!(answer["code"], "UNAUTHORIZED", "{answer}");
                }
            }
        }
    }
    server.stop().await;
}

#[tokio::test]
async fn each_role_is_allowed_exactly_its_statements() {
    let server = node_with_a_table_of_each_kind().await;
    for (template, action) in STATEMENTS {
        for role in ROLES {
            let sql = template.replace("{r}", role.name());
            expect(&server, role, "default", &sql, may(role, action)).await;
        }
    }
    // A password change applies to the caller only.
    let other = server
        .sql_as(
            &Role::User.login(),
            "ALTER USER 'a_service' SET PASSWORD 'mine-now'",
        )
        .await;
    assert_eq!(other.status, 403);
    let root = server
        .sql_as(ROOT_BASIC, "SELECT COUNT(*) FROM app.secret")
        .await;
    assert_eq!(root.status, 200);
    server.stop().await;
}

/// The actions a row of the role table in `docs/security.md` stands for.
fn doc_row_actions(row: &str) -> Vec<Action> {
    match row {
        "read and write USER and STREAM tables" => vec![
            Action::Read(Kind::User),
            Action::Write(Kind::User),
            Action::Read(Kind::Stream),
            Action::Write(Kind::Stream),
        ],
        "read SHARED tables with `ACCESS_LEVEL = 'PUBLIC'`" => {
            vec![Action::Read(Kind::SharedPublic)]
        }
        "read other SHARED tables, write any SHARED table" => vec![
            Action::Read(Kind::SharedPrivate),
            Action::Write(Kind::SharedPrivate),
            Action::Write(Kind::SharedPublic),
        ],
        "`CREATE USER TABLE`" => vec![Action::CreateUserTable],
        "other DDL: namespaces, SHARED/STREAM tables, ALTER, DROP, views" => {
            vec![Action::OtherDdl]
        }
        "`system.*`, `STORAGE FLUSH/COMPACT`, users" => {
            vec![Action::Read(Kind::System), Action::Administer]
        }
        "change their own password" => vec![Action::ChangeOwnPassword],
        other => panic!("docs/security.md has a role row this test does not know: {other}"),
    }
}

#[test]
fn the_role_table_in_the_docs_states_these_rules() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/security.md"))
        .expect("docs/security.md");
    let section = docs.split("\n## Roles\n").nth(1).expect("a Roles section");
    let mut lines = section
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'));
    let cells = |line: &str| -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    };
    let header = cells(lines.next().expect("header"));
    let names: Vec<&str> = ROLES.iter().map(|r| r.name()).collect();
    assert_eq!(&header[1..], names.as_slice());
    let mut rows = 0;
    for line in lines.skip(1) {
        let cells = cells(line);
        for (role, cell) in ROLES.iter().zip(&cells[1..]) {
            let stated = match cell.as_str() {
                "yes" => true,
                "no" => false,
                other => panic!("{}: {other} is neither yes nor no", cells[0]),
            };
            for action in doc_row_actions(&cells[0]) {
                assert_eq!(
                    may(*role, action),
                    stated,
                    "docs say {} for {} on {:?}",
                    cell,
                    role.name(),
                    action
                );
            }
        }
        rows += 1;
    }
    assert_eq!(rows, 7);
}
