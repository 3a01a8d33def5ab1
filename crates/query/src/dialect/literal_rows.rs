//! Long `VALUES` lists of plain literals, read straight from the tokens.
//!
//! sqlparser parses every value as a general expression: it first tries to
//! read a type name (for `DATE '...'`), builds an error message when that
//! fails, then reads the literal. For a 1,000-row `INSERT` that is most of
//! the statement's parse time. Here the rows after the first of a list whose
//! values are all literals are taken out of the token stream before parsing
//! and put back into the parsed `VALUES` afterwards, built exactly as
//! sqlparser builds them. The first row stays, so sqlparser still checks the
//! list's place in the statement; it is also how the list is found again.

use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Parens, Query, SetExpr, UnaryOperator, Value as SqlValue, Values, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::tokenizer::{Span, Token, TokenWithSpan};

use super::QuiverStatement;

/// The rows taken out after the first row of one `VALUES` list.
pub(super) struct LiteralTail {
    /// Where the list's first row opens: the `(` sqlparser keeps.
    anchor: Span,
    rows: Vec<Parens<Vec<Expr>>>,
}

/// Takes the literal rows after the first of every `VALUES` list out of
/// `tokens`. A list stops at the first row holding anything but literals;
/// that row and the rest stay for sqlparser.
pub(super) fn take_tails(tokens: &mut Vec<TokenWithSpan>) -> Vec<LiteralTail> {
    let mut tails = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let is_values = matches!(
            &tokens[i].token,
            Token::Word(w) if w.keyword == Keyword::VALUES && w.quote_style.is_none()
        );
        if !is_values {
            i += 1;
            continue;
        }
        let Some((first_end, first)) = literal_row(tokens, i + 1) else {
            i += 1;
            continue;
        };
        let mut end = first_end;
        let mut rows = Vec::new();
        while let Some(comma) = next_token(tokens, end)
            && tokens[comma].token == Token::Comma
            && let Some((row_end, row)) = literal_row(tokens, comma + 1)
        {
            rows.push(row);
            end = row_end;
        }
        if rows.is_empty() {
            i = first_end;
            continue;
        }
        tails.push(LiteralTail {
            anchor: first.opening_token.0.span,
            rows,
        });
        tokens.drain(first_end..end);
        i = first_end;
    }
    tails
}

/// Puts each tail back after the first row of its list. False when a list
/// was not found where sqlparser put it (a `VALUES` that is not a query's
/// rows): the statements are then incomplete and must be parsed again from
/// all their tokens.
pub(super) fn restore_tails(statements: &mut [QuiverStatement], tails: Vec<LiteralTail>) -> bool {
    let mut restorer = Restorer {
        tails: tails.into_iter().map(Some).collect(),
    };
    for statement in statements {
        if restorer.done() {
            break;
        }
        visit_statement(statement, &mut restorer);
    }
    restorer.done()
}

fn visit_statement(statement: &mut QuiverStatement, restorer: &mut Restorer) {
    let _ = match statement {
        QuiverStatement::Standard(statement) => statement.visit(restorer),
        QuiverStatement::CreateTable { create, .. } => create.visit(restorer),
        QuiverStatement::ExecuteAs { statement, .. } => {
            visit_statement(statement, restorer);
            ControlFlow::Continue(())
        }
        _ => ControlFlow::Continue(()),
    };
}

struct Restorer {
    tails: Vec<Option<LiteralTail>>,
}

impl Restorer {
    /// Whether every tail is back in place.
    fn done(&self) -> bool {
        self.tails.iter().all(Option::is_none)
    }

    fn restore(&mut self, body: &mut SetExpr) {
        match body {
            SetExpr::Values(Values { rows, .. }) => {
                let Some(first) = rows.first() else { return };
                let anchor = first.opening_token.0.span;
                let tail = self
                    .tails
                    .iter_mut()
                    .find(|t| t.as_ref().is_some_and(|t| t.anchor == anchor))
                    .and_then(Option::take);
                if let Some(tail) = tail {
                    rows.splice(1..1, tail.rows);
                }
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.restore(left);
                self.restore(right);
            }
            _ => {}
        }
    }
}

impl VisitorMut for Restorer {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        self.restore(&mut query.body);
        // Once every tail is back, the rest of the tree (the rows just put
        // back among it) need not be walked.
        if self.done() {
            return ControlFlow::Break(());
        }
        ControlFlow::Continue(())
    }
}

/// The index of the first token at or after `at` that is not whitespace
/// or a comment.
fn next_token(tokens: &[TokenWithSpan], at: usize) -> Option<usize> {
    (at..tokens.len()).find(|&i| !matches!(tokens[i].token, Token::Whitespace(_)))
}

/// A row `( literal, ... )` starting at the first token at or after `at`:
/// the index just past its `)` and the row as sqlparser builds it.
fn literal_row(tokens: &[TokenWithSpan], at: usize) -> Option<(usize, Parens<Vec<Expr>>)> {
    let open = next_token(tokens, at)?;
    if tokens[open].token != Token::LParen {
        return None;
    }
    let mut values = Vec::new();
    let mut i = open + 1;
    loop {
        let (after, value) = literal(tokens, i)?;
        values.push(value);
        let next = next_token(tokens, after)?;
        match tokens[next].token {
            Token::Comma => i = next + 1,
            Token::RParen => {
                let row = Parens {
                    opening_token: tokens[open].clone().into(),
                    content: values,
                    closing_token: tokens[next].clone().into(),
                };
                return Some((next + 1, row));
            }
            _ => return None,
        }
    }
}

/// A number, a `-` number, a single-quoted string, `NULL`, `TRUE` or
/// `FALSE` starting at the first token at or after `at`.
fn literal(tokens: &[TokenWithSpan], at: usize) -> Option<(usize, Expr)> {
    let i = next_token(tokens, at)?;
    let token = &tokens[i];
    let value = match &token.token {
        Token::Number(digits, long) => SqlValue::Number(digits.clone(), *long),
        Token::SingleQuotedString(s) => SqlValue::SingleQuotedString(s.clone()),
        Token::Word(w) if w.quote_style.is_none() => match w.keyword {
            Keyword::NULL => SqlValue::Null,
            Keyword::TRUE => SqlValue::Boolean(true),
            Keyword::FALSE => SqlValue::Boolean(false),
            _ => return None,
        },
        Token::Minus => {
            let (after, number) = literal(tokens, i + 1)?;
            let is_number =
                matches!(&number, Expr::Value(v) if matches!(v.value, SqlValue::Number(..)));
            if !is_number {
                return None;
            }
            let negated = Expr::UnaryOp {
                op: UnaryOperator::Minus,
                expr: Box::new(number),
            };
            return Some((after, negated));
        }
        _ => return None,
    };
    Some((i + 1, Expr::Value(value.with_span(token.span))))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::tokenizer::Tokenizer;
    use proptest::prelude::*;

    use super::*;
    use crate::dialect::{drop_niladic_parens, parse, parse_tokens};

    fn tokens(sql: &str) -> Vec<TokenWithSpan> {
        let mut tokens = Tokenizer::new(&GenericDialect {}, sql)
            .tokenize_with_location()
            .unwrap();
        drop_niladic_parens(&mut tokens);
        tokens
    }

    /// The statements (or error) sqlparser gives from all the tokens.
    fn parsed_in_full(sql: &str) -> String {
        match parse_tokens(&GenericDialect {}, tokens(sql)) {
            Ok(statements) => format!("{statements:?}"),
            Err(error) => format!("error: {error}"),
        }
    }

    fn parsed(sql: &str) -> String {
        match parse(sql) {
            Ok(statements) => format!("{statements:?}"),
            Err(error) => format!("error: {error}"),
        }
    }

    #[test]
    fn literal_rows_after_the_first_are_taken_out() {
        let mut t = tokens("INSERT INTO t VALUES (1, 'a'), (-2, NULL), (3.5, true)");
        let before = t.len();
        let tails = take_tails(&mut t);
        assert_eq!(tails.len(), 1);
        assert_eq!(tails[0].rows.len(), 2);
        assert!(t.len() < before);
        assert_eq!(
            parsed("INSERT INTO t VALUES (1, 'a'), (-2, NULL), (3.5, true)"),
            parsed_in_full("INSERT INTO t VALUES (1, 'a'), (-2, NULL), (3.5, true)")
        );
    }

    #[test]
    fn a_list_stops_at_the_first_row_with_an_expression() {
        let sql = "INSERT INTO t VALUES (1), (2), (1 + 2), (4)";
        let mut t = tokens(sql);
        let tails = take_tails(&mut t);
        assert_eq!(tails.len(), 1);
        assert_eq!(tails[0].rows.len(), 1);
        assert_eq!(parsed(sql), parsed_in_full(sql));
        assert!(parsed(sql).contains("BinaryOp"));
    }

    #[test]
    fn values_that_are_not_a_query_fall_back_to_a_full_parse() {
        // sqlparser reads `values(1)` here as a function call, so the rows
        // taken out are never found again.
        let sql = "SELECT values(1), (2), (3)";
        assert!(!take_tails(&mut tokens(sql)).is_empty());
        assert_eq!(parsed(sql), parsed_in_full(sql));
    }

    const VALUES: &[&str] = &[
        "1",
        "-7",
        "- 7",
        "--1\n2",
        "0.5",
        "1e3",
        "'a'",
        "'it''s'",
        "''",
        "NULL",
        "null",
        "TRUE",
        "False",
        "$1",
        "1 + 2",
        "'1'::INT",
        "DATE '2020-01-01'",
        "(1)",
        "- - 1",
        "-'a'",
        "x",
        "\"NULL\"",
        "/* c */ 3",
        "4 /* c */",
        "",
    ];

    const STATEMENTS: &[&str] = &[
        "INSERT INTO t VALUES {}",
        "INSERT INTO t (a, b) VALUES {} ON CONFLICT (a) DO NOTHING",
        "SELECT * FROM (VALUES {}) AS v",
        "VALUES {} UNION ALL VALUES {}",
        "INSERT INTO t SELECT * FROM (VALUES {})",
        "EXECUTE AS USER 'bob' (INSERT INTO t VALUES {})",
        "INSERT INTO t VALUES {}; INSERT INTO u VALUES {}",
        "INSERT INTO t VALUES {} {}",
        "SELECT values{}",
    ];

    fn row() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(VALUES), 0..4)
            .prop_map(|values| format!("({})", values.join(", ")))
    }

    fn rows() -> impl Strategy<Value = String> {
        (
            prop::collection::vec(row(), 1..6),
            prop::sample::select(&[", ", ",", " , ", " "][..]),
        )
            .prop_map(|(rows, separator)| rows.join(separator))
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 2000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        /// Whatever the list holds, the shortcut gives the statements (or
        /// the error) that parsing every token gives.
        #[test]
        fn the_shortcut_parses_as_sqlparser_does(
            statement in prop::sample::select(STATEMENTS),
            first in rows(),
            second in rows(),
        ) {
            let sql = statement.replacen("{}", &first, 1).replacen("{}", &second, 1);
            prop_assert_eq!(parsed(&sql), parsed_in_full(&sql), "{}", sql);
        }
    }
}
