//! `INSERT INTO t [(a, b)] VALUES (...), ...` of plain literals and
//! `$n` parameters, read straight from the request's text.
//!
//! This is the shape of nearly every write an application sends, and for a
//! long list sqlparser's tokens and expression trees cost more than storing
//! the rows. The scanner accepts only a narrow grammar in which each piece
//! reads as sqlparser reads it: ASCII words, whitespace, single-quoted
//! strings without backslashes, decimal numbers, `NULL`, `TRUE`, `FALSE`,
//! `$1..$n`. Anything else (comments, quoted names, expressions, `ON
//! CONFLICT`, a second statement, a parameter left unused) declines, and
//! the statement takes the parsed path with its checks and messages.

use datafusion::arrow::array::RecordBatch;
use datafusion::scalar::ScalarValue;
use datafusion::sql::sqlparser::ast::{Ident, ObjectName};

use super::literal_batch;
use super::scanner::Scanner;

/// A recognized `INSERT ... VALUES` of literals.
#[derive(Debug, Clone)]
pub struct LiteralInsert {
    /// The table, as sqlparser names it.
    pub table: ObjectName,
    /// The listed target columns, in lower case; empty for all columns.
    pub columns: Vec<String>,
    /// The rows, one batch column per value position.
    pub rows: RecordBatch,
}

/// Recognizes `sql` as one literal `INSERT`, with `params` bound to its
/// `$n` placeholders. `None` for anything the scanner does not read
/// exactly as the parsed path would.
pub(crate) fn recognize(
    sql: &str,
    params: &[serde_json::Value],
    floats_as_decimal: bool,
) -> Option<LiteralInsert> {
    let mut scan = Scanner::new(sql, params, floats_as_decimal);
    scan.blank();
    scan.keyword("INSERT")?;
    scan.blank();
    scan.keyword("INTO")?;
    scan.blank();
    // `ns.t` without blanks around the dot: sqlparser reads some blanked
    // forms (`ns ._t`) as errors.
    let mut table = vec![scan.name()?];
    if scan.eat(b'.') {
        table.push(scan.name()?);
    }
    scan.blank();
    // sqlparser reads these words after `INTO` as clauses, not names.
    const CLAUSES: &[&str] = &["TABLE", "FUNCTION", "LOCAL", "DIRECTORY"];
    if table
        .iter()
        .any(|part| CLAUSES.iter().any(|c| part.eq_ignore_ascii_case(c)))
    {
        return None;
    }
    let mut columns = Vec::new();
    if scan.eat(b'(') {
        loop {
            scan.blank();
            let column = scan.word()?;
            // `(SELECT` opens a subquery for sqlparser.
            if columns.is_empty() && column.eq_ignore_ascii_case("SELECT") {
                return None;
            }
            columns.push(column.to_ascii_lowercase());
            scan.blank();
            if scan.eat(b',') {
                continue;
            }
            scan.expect(b')')?;
            break;
        }
        scan.blank();
    }
    scan.keyword("VALUES")?;
    let mut values: Vec<Vec<ScalarValue>> = Vec::new();
    let mut row_count = 0;
    loop {
        scan.blank();
        scan.expect(b'(')?;
        let mut position = 0;
        loop {
            scan.blank();
            let value = scan.value()?;
            if row_count == 0 {
                values.push(Vec::new());
            }
            values.get_mut(position)?.push(value);
            position += 1;
            scan.blank();
            if scan.eat(b',') {
                continue;
            }
            scan.expect(b')')?;
            break;
        }
        if position != values.len() {
            return None;
        }
        row_count += 1;
        scan.blank();
        if !scan.eat(b',') {
            break;
        }
    }
    if scan.eat(b';') {
        scan.blank();
    }
    if !scan.complete() {
        return None;
    }
    Some(LiteralInsert {
        table: ObjectName::from(table.into_iter().map(Ident::new).collect::<Vec<_>>()),
        columns,
        rows: literal_batch(values)?,
    })
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::{Insert, Statement, TableObject};
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::fast::literal_rows;
    use crate::fast::testing::{parsed_statement, pick};

    /// The parsed path's reading of `sql` with `params`: the table, the
    /// target columns and the literal rows, or why it differs.
    fn parsed(sql: &str, params: &[serde_json::Value]) -> Result<LiteralInsert, String> {
        let Statement::Insert(Insert {
            table: TableObject::TableName(table),
            columns,
            source: Some(source),
            on: None,
            returning: None,
            or: None,
            ignore: false,
            into: true,
            overwrite: false,
            table_alias: None,
            partitioned: None,
            assignments,
            ..
        }) = parsed_statement(sql, params)?
        else {
            return Err("another kind of INSERT".into());
        };
        if !assignments.is_empty()
            || table
                .0
                .iter()
                .any(|p| p.as_ident().unwrap().quote_style.is_some())
        {
            return Err("another kind of INSERT".into());
        }
        let rows = literal_rows(&source, false).ok_or("rows that need planning")?;
        Ok(LiteralInsert {
            table,
            columns: columns.iter().map(crate::dml::last_part).collect(),
            rows,
        })
    }

    /// Recognized statements read exactly as the parsed path reads them.
    fn check(sql: &str, params: &[serde_json::Value]) -> Result<bool, TestCaseError> {
        let Some(fast) = recognize(sql, params, false) else {
            return Ok(false);
        };
        let full = parsed(sql, params)
            .map_err(|why| TestCaseError::fail(format!("{sql:?} {params:?}: {why}")))?;
        prop_assert_eq!(fast.table.to_string(), full.table.to_string(), "{:?}", sql);
        prop_assert_eq!(&fast.columns, &full.columns, "{:?}", sql);
        prop_assert_eq!(&fast.rows, &full.rows, "{:?}", sql);
        Ok(true)
    }

    #[test]
    fn the_shapes_applications_send_are_recognized() {
        let cases: &[(&str, serde_json::Value)] = &[
            (
                "INSERT INTO bench.items (id, k, v, body) VALUES ($1, $2, $3, $4)",
                json!([1, "k", 2.5, "b"]),
            ),
            (
                "insert into items values (1, 'a', -2.5e3, NULL), (2, 'it''s', 3.5, null);",
                json!([]),
            ),
            (
                "INSERT INTO t(a,b) VALUES(1,TRUE),\n (2, false) ; ",
                json!([]),
            ),
            (
                "INSERT INTO app.name (id, name, value) VALUES ($2, $1, 'x')",
                json!(["n", -7]),
            ),
            ("INSERT INTO t VALUES ('é ünïcode', '')", json!([])),
        ];
        for (sql, params) in cases {
            let params = params.as_array().unwrap();
            assert!(check(sql, params).unwrap(), "{sql} was not recognized");
        }
        let insert = recognize(cases[1].0, &[], false).unwrap();
        assert_eq!(insert.rows.num_rows(), 2);
        assert_eq!(insert.table.to_string(), "items");
    }

    #[test]
    fn anything_else_declines() {
        let cases: &[(&str, serde_json::Value)] = &[
            ("INSERT INTO t VALUES ($1)", json!([1, 2])),
            ("INSERT INTO t VALUES ($2)", json!([1])),
            ("INSERT INTO t VALUES ($1)", json!([[1]])),
            ("INSERT INTO t VALUES (1 + 2)", json!([])),
            ("INSERT INTO t VALUES (1), (1, 2)", json!([])),
            ("INSERT INTO t VALUES (1), ('a')", json!([])),
            ("INSERT INTO t VALUES (1) ON CONFLICT DO NOTHING", json!([])),
            (
                "INSERT INTO t VALUES (1); INSERT INTO t VALUES (2)",
                json!([]),
            ),
            ("INSERT INTO t VALUES (1) -- note", json!([])),
            ("INSERT INTO \"T\" VALUES (1)", json!([])),
            ("INSERT INTO table t VALUES (1)", json!([])),
            ("INSERT INTO t VALUES ('a\\'b')", json!([])),
            ("INSERT INTO t VALUES (0x1F)", json!([])),
            ("INSERT INTO t VALUES (1.)", json!([])),
            ("INSERT INTO t VALUES ()", json!([])),
            ("INSERT INTO t SELECT 1", json!([])),
            ("INSERT INTO ns ._t VALUES (1)", json!([])),
        ];
        for (sql, params) in cases {
            let params = params.as_array().unwrap();
            assert!(
                recognize(sql, params, false).is_none(),
                "{sql} was recognized"
            );
        }
        // Floats parse as decimals there: the planned path types them.
        assert!(recognize("INSERT INTO t VALUES (1.5)", &[], true).is_none());
    }

    /// Pieces the scanner reads, then pieces it must decline or read with
    /// care; the generators pick mostly from the first.
    const NAMES: &[&str] = &[
        "t",
        "bench.items",
        "items",
        "T1",
        "_x",
        "a.b",
        "name",
        "values",
    ];
    const ODD_NAMES: &[&str] = &[
        "x$y",
        "\"q\"",
        "table",
        "function",
        "local",
        "directory",
        "default",
        "select",
        "into",
        "é",
        "t x",
        "a.b.c",
        "a ._b",
        "a . b",
        "a. b",
        "a .b",
        "a._b",
        "a.1",
    ];
    const COLUMNS: &[&str] = &["a", "id", "name", "value", "B", "x_1"];
    const ODD_COLUMNS: &[&str] = &["select", "x y", "\"c\"", "t.a", "with", "1"];
    const VALUES: &[&str] = &[
        "1", "-7", "- 7", "0", "42", "'a'", "'it''s'", "''", "'é'", "NULL", "nULL", "TRUE",
        "false", "$1", "$2", "0.5", "1e3", "-2.5E-3",
    ];
    const ODD_VALUES: &[&str] = &[
        "--1\n2",
        "1E+5",
        "1.",
        ".5",
        "1e",
        "0x1F",
        "1_000",
        "1abc",
        "1.5.3",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "1e400",
        "'a\\b'",
        "N'a'",
        "E'a'",
        "x'01'",
        "'a' 'b'",
        "true1",
        "$3",
        "$0",
        "$01",
        "$1.5",
        "1 + 2",
        "'1'::INT",
        "DATE '2020-01-01'",
        "(1)",
        "- - 1",
        "x",
        "/* c */ 3",
        "",
        "'a\nb'",
    ];
    const ENDS: &[&str] = &["", ";", " ; ", "\n"];
    const ODD_ENDS: &[&str] = &[
        ";;",
        " ON CONFLICT DO NOTHING",
        "; SELECT 1",
        " RETURNING a",
        " -- end",
        ",",
        ") ",
    ];

    fn params() -> impl Strategy<Value = Vec<serde_json::Value>> {
        let param = prop_oneof![
            8 => prop::sample::select(vec![
                json!(null),
                json!(true),
                json!(1),
                json!(-5),
                json!(1.5),
                json!("s"),
                json!("it's"),
            ]),
            1 => prop::sample::select(vec![json!(1e300), json!([1]), json!({"a": 1})]),
        ];
        prop::collection::vec(param, 3)
    }

    fn list(
        item: impl Strategy<Value = &'static str> + Clone,
        len: std::ops::Range<usize>,
    ) -> impl Strategy<Value = String> {
        (
            prop::collection::vec(item, len),
            prop::sample::select(&[", ", ",", " , ", "\n,"][..]),
        )
            .prop_map(|(items, separator)| items.join(separator))
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 10_000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever the statement holds, a recognized one reads as the
        /// parsed path reads it.
        #[test]
        fn recognized_statements_read_as_parsed(
            lead in prop::sample::select(&["", " ", "\n\t"][..]),
            verb in pick(&["INSERT INTO", "insert into", "Insert\n Into"], &["INSERT", "INSERT IGNORE INTO", "INSERTINTO"]),
            table in pick(NAMES, ODD_NAMES),
            columns in prop::option::of(list(pick(COLUMNS, ODD_COLUMNS), 1..4)),
            width in 1..4usize,
            rows in prop::collection::vec(list(pick(VALUES, ODD_VALUES), 1..4), 1..3),
            exact_params in prop::bool::weighted(0.8),
            end in pick(ENDS, ODD_ENDS),
            params in params(),
        ) {
            let columns = columns.map(|c| format!(" ({c})")).unwrap_or_default();
            // Rows mostly of one width, as real lists are.
            let rows: Vec<String> = rows
                .iter()
                .map(|r| {
                    let values: Vec<&str> = r.split(", ").collect();
                    if values.len() >= width { values[..width].join(", ") } else { r.clone() }
                })
                .collect();
            let rows: Vec<String> = rows.iter().map(|r| format!("({r})")).collect();
            let sql = format!("{lead}{verb} {table}{columns} VALUES {}{end}", rows.join(", "));
            // Mostly as many parameters as the statement uses.
            let used = (1..=3).filter(|n| sql.contains(&format!("${n}"))).max().unwrap_or(0);
            let count = if exact_params { used } else { params.len() - used };
            check(&sql, &params[..count])?;
        }
    }
}
