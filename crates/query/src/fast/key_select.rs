//! `SELECT <columns | *> FROM t WHERE column = <literal | $n>`, read
//! straight from the request's text: the read an application sends most,
//! and one for which sqlparser's tokens and trees cost more than the
//! lookup. The scanner accepts the grammar [`super::scanner`] reads, with
//! names as the planned path resolves them (unquoted, lower case) and
//! none that sqlparser reads as something other than a name where it
//! stands; anything else declines and takes the parsed path.

use super::KeyRead;
use super::scanner::Scanner;

/// Recognizes `sql` as one primary-key read, with `params` bound to its
/// `$n` placeholders. `None` for anything the scanner does not read
/// exactly as the parsed path would.
pub(crate) fn recognize(
    sql: &str,
    params: &[serde_json::Value],
    floats_as_decimal: bool,
) -> Option<KeyRead> {
    let mut scan = Scanner::new(sql, params, floats_as_decimal);
    scan.blank();
    scan.keyword("SELECT")?;
    let mut items = Vec::new();
    loop {
        scan.blank();
        if scan.eat(b'*') {
            items.push(None);
        } else {
            items.push(Some(name(&mut scan)?));
        }
        scan.blank();
        if !scan.eat(b',') {
            break;
        }
    }
    scan.keyword("FROM")?;
    scan.blank();
    // `ns.t` without blanks around the dot, as the INSERT scanner reads it.
    let mut table = vec![name(&mut scan)?];
    if scan.eat(b'.') {
        table.push(name(&mut scan)?);
    }
    scan.blank();
    scan.keyword("WHERE")?;
    scan.blank();
    let column = name(&mut scan)?;
    scan.blank();
    scan.expect(b'=')?;
    scan.blank();
    // Only values a key compares with; `TRUE`, `NULL` and the like never
    // do, and a word here could be a column.
    if !matches!(scan.peek()?, b'\'' | b'0'..=b'9' | b'-' | b'$') {
        return None;
    }
    let key = scan.value()?;
    scan.blank();
    if scan.eat(b';') {
        scan.blank();
    }
    if !scan.complete() {
        return None;
    }
    Some(KeyRead {
        table,
        items,
        column,
        key,
    })
}

/// A name as the planned path resolves it, and as sqlparser reads it in
/// these places: unquoted, in lower case, and not a word sqlparser reads
/// as something else there.
fn name(scan: &mut Scanner<'_>) -> Option<String> {
    let word = scan.word()?;
    if word.bytes().any(|b| b.is_ascii_uppercase()) || SPECIAL_WORDS.contains(&word) {
        return None;
    }
    Some(word.to_string())
}

/// Words (in lower case, as names must be here) that sqlparser reads as
/// more than a name in a select list, a `FROM` or a `WHERE`: functions
/// without parentheses, literals, clauses, and words that end a select
/// list after a comma. A test holds it to sqlparser's every keyword.
const SPECIAL_WORDS: &[&str] = &[
    "all",
    "analyze",
    "cluster",
    "current_catalog",
    "current_date",
    "current_time",
    "current_timestamp",
    "current_user",
    "distinct",
    "distribute",
    "end",
    "except",
    "exclude",
    "exists",
    "explain",
    "false",
    "fetch",
    "from",
    "group",
    "having",
    "intersect",
    "interval",
    "into",
    "lateral",
    "limit",
    "localtime",
    "localtimestamp",
    "minus",
    "not",
    "null",
    "offset",
    "order",
    "returning",
    "select",
    "session_user",
    "sort",
    "struct",
    "table",
    "top",
    "trim",
    "true",
    "union",
    "unnest",
    "user",
    "values",
    "view",
    "where",
    "with",
];

#[cfg(test)]
mod tests {
    use datafusion::scalar::ScalarValue;
    use datafusion::sql::sqlparser::keywords::ALL_KEYWORDS;
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;
    use crate::fast::testing::{parsed_statement, pick};

    /// The parsed path's reading of `sql` with `params`, or why there is
    /// none.
    fn parsed(sql: &str, params: &[serde_json::Value]) -> Result<KeyRead, String> {
        KeyRead::of(&parsed_statement(sql, params)?, false).ok_or_else(|| "not a key read".into())
    }

    /// Recognized statements read exactly as the parsed path reads them.
    fn check(sql: &str, params: &[serde_json::Value]) -> Result<bool, TestCaseError> {
        let Some(fast) = recognize(sql, params, false) else {
            return Ok(false);
        };
        let full = parsed(sql, params)
            .map_err(|why| TestCaseError::fail(format!("{sql:?} {params:?}: {why}")))?;
        prop_assert_eq!(fast, full, "{:?}", sql);
        Ok(true)
    }

    #[test]
    fn the_shapes_applications_send_are_recognized() {
        let cases: &[(&str, serde_json::Value)] = &[
            (
                "SELECT id, v, body FROM bench.items WHERE id = $1",
                json!([7]),
            ),
            ("select * from items where id = 42;", json!([])),
            (
                "SELECT *, name FROM app.users WHERE name='it''s' ; ",
                json!([]),
            ),
            ("\n SELECT\tvalue,id FROM t WHERE id =-3", json!([])),
            ("SELECT id FROM t WHERE key = $1", json!(["k"])),
        ];
        for (sql, params) in cases {
            let params = params.as_array().unwrap();
            assert!(check(sql, params).unwrap(), "{sql} was not recognized");
        }
        let read = recognize(cases[0].0, &[json!(7)], false).unwrap();
        assert_eq!(read.table, ["bench", "items"]);
        assert_eq!(
            read.items,
            [Some("id".into()), Some("v".into()), Some("body".into())]
        );
        assert_eq!(read.column, "id");
        assert_eq!(read.key, ScalarValue::Int64(Some(7)));
    }

    #[test]
    fn anything_else_declines() {
        let cases: &[(&str, serde_json::Value)] = &[
            ("SELECT id FROM t WHERE id = $1", json!([])),
            ("SELECT id FROM t WHERE id = $1", json!([1, 2])),
            ("SELECT id FROM t WHERE id = $1", json!([[1]])),
            ("SELECT id FROM t WHERE id = 1 + 1", json!([])),
            ("SELECT id FROM t WHERE id = k", json!([])),
            ("SELECT id FROM t WHERE id = TRUE", json!([])),
            ("SELECT id FROM t WHERE id == 1", json!([])),
            ("SELECT id FROM t WHERE id = 1 AND k = 2", json!([])),
            ("SELECT id FROM t WHERE id = 1 LIMIT 1", json!([])),
            ("SELECT id FROM t WHERE id = 1; SELECT 1", json!([])),
            ("SELECT id FROM t WHERE id = 1 -- note", json!([])),
            ("SELECT id FROM t WHERE id = 1 /* note */", json!([])),
            ("SELECT Id FROM t WHERE id = 1", json!([])),
            ("SELECT \"id\" FROM t WHERE id = 1", json!([])),
            ("SELECT id FROM t AS x WHERE id = 1", json!([])),
            ("SELECT id FROM t, u WHERE id = 1", json!([])),
            ("SELECT t.id FROM t WHERE id = 1", json!([])),
            ("SELECT id AS k FROM t WHERE id = 1", json!([])),
            ("SELECT DISTINCT id FROM t WHERE id = 1", json!([])),
            ("SELECT id FROM t WHERE 1 = id", json!([])),
            ("SELECT id FROM t WHERE id = 'a\\'b'", json!([])),
            ("SELECT id FROM t", json!([])),
            ("SELECT FROM t WHERE id = 1", json!([])),
            ("SELECT id FROM ns . t WHERE id = 1", json!([])),
        ];
        for (sql, params) in cases {
            let params = params.as_array().unwrap();
            assert!(
                recognize(sql, params, false).is_none(),
                "{sql} was recognized"
            );
        }
    }

    /// Every sqlparser keyword, as a column, a table and the compared
    /// column: where the scanner takes it for a name, so does sqlparser.
    #[test]
    fn keywords_are_names_only_where_sqlparser_reads_them_so() {
        let mut differ = Vec::new();
        for keyword in ALL_KEYWORDS {
            let word = keyword.to_ascii_lowercase();
            for sql in [
                format!("SELECT {word} FROM t WHERE id = 1"),
                format!("SELECT {word}, id FROM t WHERE id = 1"),
                format!("SELECT id, {word} FROM t WHERE id = 1"),
                format!("SELECT id FROM {word} WHERE id = 1"),
                format!("SELECT id FROM {word}.t WHERE id = 1"),
                format!("SELECT id FROM ns.{word} WHERE id = 1"),
                format!("SELECT id FROM t WHERE {word} = 1"),
                format!("SELECT * FROM t WHERE {word} = 'a'"),
            ] {
                if let Err(e) = check(&sql, &[]) {
                    differ.push(format!("{word}: {e}"));
                }
            }
        }
        assert!(differ.is_empty(), "{differ:#?}");
    }

    const COLUMNS: &[&str] = &["id", "v", "body", "*", "name", "value"];
    const ODD_COLUMNS: &[&str] = &["Id", "\"id\"", "t.id", "id AS x", "1", "count(*)", "user"];
    const TABLES: &[&str] = &["t", "app.items", "bench.items", "key_values"];
    const ODD_TABLES: &[&str] = &["T", "app . t", "\"t\"", "a.b.c", "t x", "t, u"];
    const KEYS: &[&str] = &["id", "k", "name"];
    const ODD_KEYS: &[&str] = &["ID", "t.id", "(id)", "id + 0"];
    const VALUES: &[&str] = &["1", "-5", "'a'", "'it''s'", "$1", "$2", "1.5", "0"];
    const ODD_VALUES: &[&str] = &["1e3", "- 5", "$0", "$4", "NULL", "id", "'a", "0x1F", "1."];
    const EQUALS: &[&str] = &["=", " = ", "  =\n"];
    const ODD_EQUALS: &[&str] = &["==", "<>", ">=", " IS "];
    const ENDS: &[&str] = &["", ";", " ; ", "\n"];
    const ODD_ENDS: &[&str] = &["; SELECT 1", " LIMIT 1", " -- x", " AND id = 2", ";;"];

    fn params() -> impl Strategy<Value = Vec<serde_json::Value>> {
        let param = prop::sample::select(vec![
            json!(null),
            json!(true),
            json!(1),
            json!(-5),
            json!(1.5),
            json!("s"),
            json!([1]),
        ]);
        prop::collection::vec(param, 2)
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
            verb in pick(&["SELECT", "select", "Select"], &["SELECT ALL", "SELECTid"]),
            columns in prop::collection::vec(pick(COLUMNS, ODD_COLUMNS), 1..4),
            table in pick(TABLES, ODD_TABLES),
            key in pick(KEYS, ODD_KEYS),
            equals in pick(EQUALS, ODD_EQUALS),
            value in pick(VALUES, ODD_VALUES),
            swap in prop::bool::weighted(0.1),
            end in pick(ENDS, ODD_ENDS),
            exact_params in prop::bool::weighted(0.8),
            params in params(),
        ) {
            let condition = if swap {
                format!("{value}{equals}{key}")
            } else {
                format!("{key}{equals}{value}")
            };
            let sql = format!(
                "{lead}{verb} {} FROM {table} WHERE {condition}{end}",
                columns.join(", ")
            );
            let used = (1..=2).filter(|n| sql.contains(&format!("${n}"))).max().unwrap_or(0);
            let count = if exact_params { used } else { params.len() - used };
            check(&sql, &params[..count])?;
        }
    }
}
