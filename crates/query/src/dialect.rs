//! Quiver's SQL dialect: DataFusion's SQL plus namespace, table-type and
//! introspection statements, parsed with sqlparser's own parser so that
//! strings, comments and quoting behave exactly as in standard statements.

use datafusion::sql::sqlparser::ast::{
    CreateTable, Expr, ObjectName, Statement, Value as SqlValue, visit_expressions_mut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::keywords::Keyword;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::{Token, TokenWithSpan, Tokenizer};
use quiver_catalog::TableType;
use quiver_common::Role;
use std::ops::ControlFlow;

use crate::error::{QueryError, Result};
use crate::fast::literal_insert::LiteralInsert;
use crate::fast::{KeyRead, PointSelect};

mod literal_rows;

/// One parsed statement.
#[derive(Debug, Clone)]
pub enum QuiverStatement {
    CreateNamespace {
        name: String,
        if_not_exists: bool,
    },
    DropNamespace {
        name: String,
        if_exists: bool,
        cascade: bool,
    },
    Use {
        name: String,
    },
    ShowNamespaces,
    ShowTables {
        namespace: Option<String>,
    },
    DescribeTable {
        name: ObjectName,
        history: bool,
    },
    CreateTable {
        table_type: Option<TableType>,
        create: Box<CreateTable>,
    },
    DropTable {
        name: ObjectName,
        if_exists: bool,
    },
    /// `STORAGE FLUSH TABLE t`, `STORAGE FLUSH ALL [IN ns]`.
    StorageFlush {
        target: StorageTarget,
    },
    /// `STORAGE COMPACT TABLE t`, `STORAGE COMPACT ALL [IN ns]`.
    StorageCompact {
        target: StorageTarget,
    },
    /// `CREATE USER 'name' WITH PASSWORD '...' ROLE r [EMAIL '...']`.
    CreateUser {
        name: String,
        password: String,
        role: Role,
        email: Option<String>,
        if_not_exists: bool,
    },
    /// `ALTER USER 'name' SET PASSWORD '...' | SET ROLE r | SET EMAIL '...'`.
    AlterUser {
        name: String,
        change: UserChange,
    },
    /// `DROP USER [IF EXISTS] 'name'`.
    DropUser {
        name: String,
        if_exists: bool,
    },
    /// `KILL LIVE QUERY '<live_id>'`.
    KillLiveQuery {
        live_id: String,
    },
    /// `EXECUTE AS USER 'name' ( <one statement> )`.
    ExecuteAs {
        user: String,
        statement: Box<QuiverStatement>,
    },
    /// INSERT, UPDATE, DELETE, SELECT and EXPLAIN, as sqlparser reads them.
    Standard(Box<Statement>),
    /// An `INSERT` of literal rows, read without sqlparser.
    InsertLiterals(Box<LiteralInsert>),
    /// A `SELECT` of one row by key, read without sqlparser.
    KeySelect(Box<TextKeyRead>),
    /// A key read already resolved for the session that runs it (see
    /// `QuerySession::runs_directly`).
    PointSelect(Box<PointSelect>),
}

/// A key read recognized from a request's text, with that text and its
/// parameters for the parsed path should the names not resolve to a
/// table's primary key.
#[derive(Debug, Clone)]
pub struct TextKeyRead {
    pub read: KeyRead,
    pub sql: String,
    pub params: Vec<serde_json::Value>,
}

impl TextKeyRead {
    /// The statement as sqlparser reads it, parameters bound.
    pub fn parsed(&self) -> Result<Statement> {
        let mut statements = parse(&self.sql)?;
        match (statements.pop(), statements.is_empty()) {
            (Some(QuiverStatement::Standard(mut statement)), true) => {
                bind_params(&mut statement, &self.params)?;
                Ok(*statement)
            }
            _ => Err(QueryError::Internal(format!(
                "{:?} was read as one SELECT, but sqlparser reads it otherwise",
                self.sql
            ))),
        }
    }
}

impl QuiverStatement {
    /// The user a statement names to run as, if any.
    pub fn runs_as(&self) -> Option<&str> {
        match self {
            Self::ExecuteAs { user, .. } => Some(user),
            _ => None,
        }
    }
}

/// What `ALTER USER` changes.
#[derive(Debug, Clone, PartialEq)]
pub enum UserChange {
    Password(String),
    Role(Role),
    Email(String),
}

/// A user name: `'quoted'` or a bare identifier.
fn parse_user_name(parser: &mut Parser<'_>) -> Result<String, ParserError> {
    let token = parser.next_token();
    match token.token {
        Token::SingleQuotedString(s) | Token::DoubleQuotedString(s) => Ok(s),
        Token::Word(w) => Ok(w.value),
        _ => parser.expected("a user name", token),
    }
}

fn parse_string(parser: &mut Parser<'_>, what: &str) -> Result<String, ParserError> {
    let token = parser.next_token();
    match token.token {
        Token::SingleQuotedString(s) => Ok(s),
        _ => parser.expected(what, token),
    }
}

fn parse_role(parser: &mut Parser<'_>) -> Result<Role, ParserError> {
    let token = parser.next_token();
    let name = match &token.token {
        Token::Word(w) => w.value.clone(),
        Token::SingleQuotedString(s) => s.clone(),
        _ => return parser.expected("a role (user, service, dba, system)", token),
    };
    match Role::parse(&name) {
        Some(Role::Anonymous) | None => {
            parser.expected("a role (user, service, dba, system)", token)
        }
        Some(role) => Ok(role),
    }
}

/// What a `STORAGE` statement works on.
#[derive(Debug, Clone, PartialEq)]
pub enum StorageTarget {
    Table(ObjectName),
    /// Every table, or every table of one namespace.
    All {
        namespace: Option<String>,
    },
}

fn word_is(token: &Token, word: &str) -> bool {
    matches!(token, Token::Word(w) if w.quote_style.is_none() && w.value.eq_ignore_ascii_case(word))
}

fn parse_error(e: ParserError) -> QueryError {
    let message = match e {
        ParserError::ParserError(m) | ParserError::TokenizerError(m) => m,
        ParserError::RecursionLimitExceeded => "statement is nested too deeply".to_string(),
    };
    QueryError::Parse(message)
}

/// Splits `sql` into statements and parses each.
pub fn parse(sql: &str) -> Result<Vec<QuiverStatement>> {
    let dialect = GenericDialect {};
    let tokenize = || {
        let mut tokens = Tokenizer::new(&dialect, sql)
            .tokenize_with_location()
            .map_err(|e| QueryError::Parse(e.to_string()))?;
        drop_niladic_parens(&mut tokens);
        Ok::<_, QueryError>(tokens)
    };
    let mut tokens = tokenize()?;
    let tails = literal_rows::take_tails(&mut tokens);
    if tails.is_empty() {
        return parse_tokens(&dialect, tokens);
    }
    // An error, or a list not found again, is answered from all tokens,
    // exactly as without the shortcut.
    if let Ok(mut statements) = parse_tokens(&dialect, tokens)
        && literal_rows::restore_tails(&mut statements, tails)
    {
        return Ok(statements);
    }
    parse_tokens(&dialect, tokenize()?)
}

fn parse_tokens(
    dialect: &GenericDialect,
    tokens: Vec<TokenWithSpan>,
) -> Result<Vec<QuiverStatement>> {
    let mut parser = Parser::new(dialect).with_tokens_with_locations(tokens);
    let mut statements = Vec::new();
    loop {
        while parser.consume_token(&Token::SemiColon) {}
        if parser.peek_token().token == Token::EOF {
            break;
        }
        statements.push(parse_statement(&mut parser).map_err(parse_error)?);
        let next = parser.peek_token();
        if next.token != Token::EOF && next.token != Token::SemiColon {
            return Err(QueryError::Parse(format!(
                "expected ';' or end of input, found {} at {}",
                next.token, next.span.start
            )));
        }
    }
    Ok(statements)
}

/// `CURRENT_USER()` is how Quiver spells the SQL keyword `CURRENT_USER`;
/// the empty parentheses are dropped so the standard parser accepts it.
fn drop_niladic_parens(tokens: &mut Vec<TokenWithSpan>) {
    let mut i = 0;
    while i + 2 < tokens.len() {
        if word_is(&tokens[i].token, "CURRENT_USER")
            && tokens[i + 1].token == Token::LParen
            && tokens[i + 2].token == Token::RParen
        {
            tokens.drain(i + 1..i + 3);
        }
        i += 1;
    }
}

fn table_type_word(token: &Token) -> Option<TableType> {
    [
        ("USER", TableType::User),
        ("SHARED", TableType::Shared),
        ("STREAM", TableType::Stream),
    ]
    .into_iter()
    .find_map(|(word, ty)| word_is(token, word).then_some(ty))
}

fn parse_statement(parser: &mut Parser<'_>) -> Result<QuiverStatement, ParserError> {
    let first = parser.peek_nth_token(0).token;
    let second = parser.peek_nth_token(1).token;
    let third = parser.peek_nth_token(2).token;

    if word_is(&first, "CREATE") && word_is(&second, "NAMESPACE") {
        parser.next_token();
        parser.next_token();
        let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = parser.parse_identifier()?.value;
        return Ok(QuiverStatement::CreateNamespace {
            name,
            if_not_exists,
        });
    }
    if word_is(&first, "DROP") && word_is(&second, "NAMESPACE") {
        parser.next_token();
        parser.next_token();
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = parser.parse_identifier()?.value;
        let cascade = parser.parse_keyword(Keyword::CASCADE);
        return Ok(QuiverStatement::DropNamespace {
            name,
            if_exists,
            cascade,
        });
    }
    if word_is(&first, "USE") {
        parser.next_token();
        if word_is(&parser.peek_token().token, "NAMESPACE") {
            parser.next_token();
        }
        let name = parser.parse_identifier()?.value;
        return Ok(QuiverStatement::Use { name });
    }
    if word_is(&first, "SHOW") && word_is(&second, "NAMESPACES") {
        parser.next_token();
        parser.next_token();
        return Ok(QuiverStatement::ShowNamespaces);
    }
    if word_is(&first, "SHOW") && word_is(&second, "TABLES") {
        parser.next_token();
        parser.next_token();
        let namespace = if parser
            .parse_one_of_keywords(&[Keyword::IN, Keyword::FROM])
            .is_some()
        {
            Some(parser.parse_identifier()?.value)
        } else {
            None
        };
        return Ok(QuiverStatement::ShowTables { namespace });
    }
    if (word_is(&first, "DESCRIBE") || word_is(&first, "DESC")) && !word_is(&second, "SELECT") {
        parser.next_token();
        let _ = parser.parse_keyword(Keyword::TABLE);
        let name = parser.parse_object_name(false)?;
        let history = word_is(&parser.peek_token().token, "HISTORY");
        if history {
            parser.next_token();
        }
        return Ok(QuiverStatement::DescribeTable { name, history });
    }
    if word_is(&first, "STORAGE") && (word_is(&second, "FLUSH") || word_is(&second, "COMPACT")) {
        parser.next_token();
        parser.next_token();
        let target = if parser.parse_keyword(Keyword::TABLE) {
            StorageTarget::Table(parser.parse_object_name(false)?)
        } else if parser.parse_keyword(Keyword::ALL) {
            let namespace = if parser.parse_keyword(Keyword::IN) {
                Some(parser.parse_identifier()?.value)
            } else {
                None
            };
            StorageTarget::All { namespace }
        } else {
            return parser.expected("TABLE or ALL", parser.peek_token());
        };
        return Ok(if word_is(&second, "FLUSH") {
            QuiverStatement::StorageFlush { target }
        } else {
            QuiverStatement::StorageCompact { target }
        });
    }
    if word_is(&first, "CREATE") && word_is(&second, "USER") && !word_is(&third, "TABLE") {
        parser.next_token();
        parser.next_token();
        let if_not_exists = parser.parse_keywords(&[Keyword::IF, Keyword::NOT, Keyword::EXISTS]);
        let name = parse_user_name(parser)?;
        let _ = parser.parse_keyword(Keyword::WITH);
        let mut password = None;
        let mut role = None;
        let mut email = None;
        loop {
            let next = parser.peek_token().token;
            if word_is(&next, "PASSWORD") {
                parser.next_token();
                password = Some(parse_string(parser, "a quoted password")?);
            } else if word_is(&next, "ROLE") {
                parser.next_token();
                role = Some(parse_role(parser)?);
            } else if word_is(&next, "EMAIL") {
                parser.next_token();
                email = Some(parse_string(parser, "a quoted email")?);
            } else {
                break;
            }
        }
        let Some(password) = password else {
            return parser.expected("PASSWORD '...'", parser.peek_token());
        };
        return Ok(QuiverStatement::CreateUser {
            name,
            password,
            role: role.unwrap_or(Role::User),
            email,
            if_not_exists,
        });
    }
    if word_is(&first, "ALTER") && word_is(&second, "USER") {
        parser.next_token();
        parser.next_token();
        let name = parse_user_name(parser)?;
        if !parser.parse_keyword(Keyword::SET) {
            return parser.expected("SET", parser.peek_token());
        }
        let next = parser.peek_token().token;
        let change = if word_is(&next, "PASSWORD") {
            parser.next_token();
            UserChange::Password(parse_string(parser, "a quoted password")?)
        } else if word_is(&next, "ROLE") {
            parser.next_token();
            UserChange::Role(parse_role(parser)?)
        } else if word_is(&next, "EMAIL") {
            parser.next_token();
            UserChange::Email(parse_string(parser, "a quoted email")?)
        } else {
            return parser.expected("PASSWORD, ROLE or EMAIL", parser.peek_token());
        };
        return Ok(QuiverStatement::AlterUser { name, change });
    }
    if word_is(&first, "DROP") && word_is(&second, "USER") && !word_is(&third, "TABLE") {
        parser.next_token();
        parser.next_token();
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = parse_user_name(parser)?;
        return Ok(QuiverStatement::DropUser { name, if_exists });
    }
    if word_is(&first, "KILL") && word_is(&second, "LIVE") && word_is(&third, "QUERY") {
        parser.next_token();
        parser.next_token();
        parser.next_token();
        let live_id = parse_string(parser, "a quoted live query id")?;
        return Ok(QuiverStatement::KillLiveQuery { live_id });
    }
    if word_is(&first, "EXECUTE") && word_is(&second, "AS") && word_is(&third, "USER") {
        parser.next_token();
        parser.next_token();
        parser.next_token();
        let user = parse_user_name(parser)?;
        parser.expect_token(&Token::LParen)?;
        if word_is(&parser.peek_token().token, "EXECUTE") {
            return parser.expected("a statement other than EXECUTE AS", parser.peek_token());
        }
        let statement = parse_statement(parser)?;
        parser.expect_token(&Token::RParen)?;
        return Ok(QuiverStatement::ExecuteAs {
            user,
            statement: Box::new(statement),
        });
    }
    if word_is(&first, "CREATE")
        && let Some(table_type) = table_type_word(&second)
        && word_is(&third, "TABLE")
    {
        parser.next_token();
        parser.next_token();
        parser.next_token();
        let create = parser.parse_create_table(false, false, None, false)?;
        return Ok(QuiverStatement::CreateTable {
            table_type: Some(table_type),
            create: Box::new(create),
        });
    }
    if word_is(&first, "DROP") && table_type_word(&second).is_some() && word_is(&third, "TABLE") {
        parser.next_token();
        parser.next_token();
        parser.next_token();
        let if_exists = parser.parse_keywords(&[Keyword::IF, Keyword::EXISTS]);
        let name = parser.parse_object_name(false)?;
        return Ok(QuiverStatement::DropTable { name, if_exists });
    }

    let statement = parser.parse_statement()?;
    Ok(match statement {
        Statement::CreateTable(create) => QuiverStatement::CreateTable {
            table_type: None,
            create: Box::new(create),
        },
        Statement::Drop {
            object_type: datafusion::sql::sqlparser::ast::ObjectType::Table,
            if_exists,
            mut names,
            ..
        } if names.len() == 1 => QuiverStatement::DropTable {
            name: names.remove(0),
            if_exists,
        },
        other => QuiverStatement::Standard(Box::new(other)),
    })
}

/// Replaces `$1..$n` placeholders in a statement with the request's
/// parameters, as SQL literals. Every parameter must be used and every
/// placeholder must have a parameter.
pub fn bind_params(statement: &mut Statement, params: &[serde_json::Value]) -> Result<()> {
    let literals: Vec<SqlValue> = params
        .iter()
        .enumerate()
        .map(|(i, p)| param_literal(i + 1, p))
        .collect::<Result<_>>()?;
    let mut highest = 0usize;
    let mut error = None;
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Value(v) = expr
            && let SqlValue::Placeholder(name) = &v.value
        {
            let index = name
                .strip_prefix('$')
                .and_then(|n| n.parse::<usize>().ok())
                .filter(|n| *n >= 1);
            let Some(index) = index else {
                error = Some(QueryError::InvalidParameter(format!(
                    "unsupported placeholder {name}: use $1, $2, ..."
                )));
                return ControlFlow::Break(());
            };
            highest = highest.max(index);
            match literals.get(index - 1) {
                Some(literal) => v.value = literal.clone(),
                None => {
                    error = Some(QueryError::InvalidParameter(format!(
                        "statement uses ${index} but {} parameter(s) were given",
                        literals.len()
                    )));
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    });
    if let Some(error) = error {
        return Err(error);
    }
    if highest < literals.len() {
        return Err(QueryError::InvalidParameter(format!(
            "{} parameter(s) were given but the statement uses {highest}",
            literals.len()
        )));
    }
    Ok(())
}

fn param_literal(position: usize, value: &serde_json::Value) -> Result<SqlValue> {
    Ok(match value {
        serde_json::Value::Null => SqlValue::Null,
        serde_json::Value::Bool(b) => SqlValue::Boolean(*b),
        serde_json::Value::Number(n) => SqlValue::Number(n.to_string(), false),
        serde_json::Value::String(s) => SqlValue::SingleQuotedString(s.clone()),
        serde_json::Value::Array(_) | serde_json::Value::Object(_) => {
            return Err(QueryError::InvalidParameter(format!(
                "parameter ${position} is not a JSON scalar; pass JSON documents as strings"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_and_recognises_dialect_statements() {
        let stmts = parse(
            "CREATE NAMESPACE IF NOT EXISTS app; USE app;; SHOW TABLES IN app; \
             CREATE USER TABLE app.t (id BIGINT PRIMARY KEY) WITH (TTL_SECONDS = 5); \
             DROP STREAM TABLE IF EXISTS app.s; SELECT ';' AS x; DESCRIBE TABLE app.t",
        )
        .unwrap();
        assert_eq!(stmts.len(), 7);
        assert!(
            matches!(&stmts[0], QuiverStatement::CreateNamespace { name, if_not_exists: true } if name == "app")
        );
        assert!(matches!(&stmts[1], QuiverStatement::Use { name } if name == "app"));
        assert!(
            matches!(&stmts[2], QuiverStatement::ShowTables { namespace: Some(n) } if n == "app")
        );
        assert!(matches!(
            &stmts[3],
            QuiverStatement::CreateTable {
                table_type: Some(TableType::User),
                ..
            }
        ));
        assert!(matches!(
            &stmts[4],
            QuiverStatement::DropTable {
                if_exists: true,
                ..
            }
        ));
        assert!(matches!(&stmts[5], QuiverStatement::Standard(_)));
        assert!(matches!(&stmts[6], QuiverStatement::DescribeTable { .. }));
    }

    #[test]
    fn execute_as_wraps_one_statement() {
        let stmts =
            parse("EXECUTE AS USER 'alice' (SELECT * FROM app.t WHERE x = ')'); SELECT 1").unwrap();
        assert_eq!(stmts.len(), 2);
        let QuiverStatement::ExecuteAs { user, statement } = &stmts[0] else {
            panic!("EXECUTE AS expected: {stmts:?}")
        };
        assert_eq!(user, "alice");
        assert!(matches!(**statement, QuiverStatement::Standard(_)));
        assert_eq!(stmts[0].runs_as(), Some("alice"));
        let nested = parse("EXECUTE AS USER bob (CREATE NAMESPACE n)").unwrap();
        assert!(matches!(
            &nested[0],
            QuiverStatement::ExecuteAs { statement, .. }
                if matches!(**statement, QuiverStatement::CreateNamespace { .. })
        ));
        for bad in [
            "EXECUTE AS USER 'a' SELECT 1",
            "EXECUTE AS USER 'a' (SELECT 1",
            "EXECUTE AS USER 'a' (SELECT 1; SELECT 2)",
            "EXECUTE AS USER 'a' (EXECUTE AS USER 'b' (SELECT 1))",
        ] {
            assert!(matches!(parse(bad), Err(QueryError::Parse(_))), "{bad}");
        }
    }

    #[test]
    fn garbage_is_a_parse_error() {
        assert!(matches!(parse("SELEC 1"), Err(QueryError::Parse(_))));
        assert!(matches!(parse("SELECT 1 2 3"), Err(QueryError::Parse(_))));
        assert!(matches!(parse("'unterminated"), Err(QueryError::Parse(_))));
        assert!(parse("  ;; ").unwrap().is_empty());
    }

    fn bound(sql: &str, params: serde_json::Value) -> Result<String> {
        let mut stmts = parse(sql).unwrap();
        let QuiverStatement::Standard(stmt) = &mut stmts[0] else {
            panic!("standard statement expected")
        };
        bind_params(stmt, params.as_array().unwrap())?;
        Ok(stmt.to_string())
    }

    #[test]
    fn params_bind_as_literals() {
        let sql = bound(
            "SELECT * FROM t WHERE a = $1 AND b = $2 AND c = $3 AND d = $4",
            serde_json::json!(["it's", 5, true, null]),
        )
        .unwrap();
        assert_eq!(
            sql,
            "SELECT * FROM t WHERE a = 'it''s' AND b = 5 AND c = true AND d = NULL"
        );
    }

    #[test]
    fn param_count_and_type_are_checked() {
        assert!(matches!(
            bound("SELECT $1, $2", serde_json::json!([1])),
            Err(QueryError::InvalidParameter(_))
        ));
        assert!(matches!(
            bound("SELECT $1", serde_json::json!([1, 2])),
            Err(QueryError::InvalidParameter(_))
        ));
        assert!(matches!(
            bound("SELECT $1", serde_json::json!([[1]])),
            Err(QueryError::InvalidParameter(_))
        ));
    }
}

/// Property test: whatever the text, the dialect parser and parameter
/// binding return statements or an error with a code, never a panic.
#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    const WORDS: &[&str] = &[
        "CREATE",
        "DROP",
        "ALTER",
        "NAMESPACE",
        "TABLE",
        "USER",
        "STREAM",
        "SHARED",
        "IF",
        "NOT",
        "EXISTS",
        "USE",
        "SHOW",
        "TABLES",
        "IN",
        "DESCRIBE",
        "HISTORY",
        "STORAGE",
        "FLUSH",
        "COMPACT",
        "ALL",
        "PASSWORD",
        "ROLE",
        "EMAIL",
        "SET",
        "EXECUTE",
        "AS",
        "KILL",
        "LIVE",
        "QUERY",
        "SELECT",
        "FROM",
        "WHERE",
        "INSERT",
        "INTO",
        "VALUES",
        "UPDATE",
        "DELETE",
        "WITH",
        "TTL_SECONDS",
        "FLUSH_POLICY",
        "PRIMARY",
        "KEY",
        "DEFAULT",
        "NOW()",
        "CASCADE",
        "VIEW",
        "OR",
        "REPLACE",
        "ON",
        "CONFLICT",
        "DO",
        "NOTHING",
        "app",
        "app.t",
        "t",
        "id",
        "'x'",
        "'rows:5'",
        "1",
        "-1",
        "99999999999999999999999",
        "$1",
        "$0",
        "$",
        "$x",
        "(",
        ")",
        ",",
        ";",
        "=",
        "*",
        ".",
        "'",
        "\"",
        "--",
        "/*",
        "*/",
        "\\",
        "\n",
        "é",
        "\u{0}",
    ];

    const SEEDS: &[&str] = &[
        "CREATE NAMESPACE IF NOT EXISTS app",
        "CREATE USER TABLE app.t (id BIGINT PRIMARY KEY, v TEXT DEFAULT 'x') WITH (TTL_SECONDS = 5)",
        "CREATE STREAM TABLE app.s (id BIGINT PRIMARY KEY) WITH (TTL_SECONDS = 10)",
        "ALTER TABLE app.t ADD COLUMN c INT DEFAULT 1",
        "STORAGE FLUSH ALL IN app",
        "STORAGE COMPACT TABLE app.t",
        "CREATE USER bob WITH PASSWORD 'pw' ROLE service EMAIL 'b@x'",
        "ALTER USER bob SET PASSWORD 'new'",
        "EXECUTE AS USER 'bob' (SELECT * FROM app.t WHERE id = $1)",
        "KILL LIVE QUERY 'abc'",
        "DESCRIBE TABLE app.t HISTORY",
        "INSERT INTO app.t VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET v = EXCLUDED.v",
        "SELECT id, count(*) FROM app.t GROUP BY id; USE app; SHOW TABLES",
    ];

    fn soup() -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(WORDS), 0..40).prop_map(|w| w.join(" "))
    }

    /// A valid statement with a word spliced in or a range cut out.
    fn mutated() -> impl Strategy<Value = String> {
        (
            prop::sample::select(SEEDS),
            any::<prop::sample::Index>(),
            any::<prop::sample::Index>(),
            prop::sample::select(WORDS),
            any::<bool>(),
        )
            .prop_map(|(seed, a, b, word, cut)| {
                let (x, y) = (a.index(seed.len() + 1), b.index(seed.len() + 1));
                let (from, to) = (x.min(y), x.max(y));
                if cut {
                    format!("{}{}", &seed[..from], &seed[to..])
                } else {
                    format!("{}{word}{}", &seed[..from], &seed[from..])
                }
            })
    }

    /// Deep nesting, which must end in an error rather than the stack.
    fn nested() -> impl Strategy<Value = String> {
        (1..5000usize, 0..3u8).prop_map(|(depth, kind)| match kind {
            0 => format!("SELECT {}1{}", "(".repeat(depth), ")".repeat(depth)),
            1 => format!("SELECT {}", "-".repeat(depth) + "1"),
            _ => format!(
                "SELECT * FROM t WHERE {}",
                vec!["NOT"; depth].join(" ") + " true"
            ),
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig {
            cases: 3000,
            failure_persistence: None,
            ..ProptestConfig::default()
        })]

        #[test]
        fn any_text_parses_or_is_refused_with_a_code(
            sql in prop_oneof![soup(), mutated(), nested(), any::<String>()],
            params in prop::collection::vec(
                prop_oneof![
                    Just(serde_json::json!(null)),
                    any::<i64>().prop_map(|n| serde_json::json!(n)),
                    any::<f64>().prop_map(|f| serde_json::json!(f)),
                    ".{0,8}".prop_map(|s| serde_json::json!(s)),
                    Just(serde_json::json!([1])),
                ],
                0..3,
            ),
        ) {
            match parse(&sql) {
                Ok(statements) => {
                    for statement in statements {
                        if let QuiverStatement::Standard(mut statement) = statement {
                            // Binding fails or succeeds, but never panics.
                            let _ = bind_params(&mut statement, &params);
                        }
                    }
                }
                Err(error) => {
                    prop_assert!(!error.to_string().is_empty());
                    prop_assert_ne!(error.code(), quiver_common::ErrorCode::InternalError);
                }
            }
        }
    }
}
