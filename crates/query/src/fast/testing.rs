//! What the text recognizers' tests share: the parsed path's reading of a
//! statement, and the strategy that mixes usual pieces with odd ones.

use datafusion::sql::sqlparser::ast::Statement;
use proptest::prelude::*;

use crate::dialect::{QuiverStatement, bind_params, parse};

/// `sql` as the parsed path reads it, parameters bound: one standard
/// statement, or why it is not.
pub(super) fn parsed_statement(
    sql: &str,
    params: &[serde_json::Value],
) -> Result<Statement, String> {
    let mut statements = parse(sql).map_err(|e| e.to_string())?;
    if statements.len() != 1 {
        return Err(format!("{} statements", statements.len()));
    }
    let Some(QuiverStatement::Standard(mut statement)) = statements.pop() else {
        return Err("not a standard statement".into());
    };
    bind_params(&mut statement, params).map_err(|e| e.to_string())?;
    Ok(*statement)
}

/// Mostly a usual piece, now and then an odd one.
pub(super) fn pick(
    usual: &'static [&'static str],
    odd: &'static [&'static str],
) -> impl Strategy<Value = &'static str> + Clone {
    prop_oneof![6 => prop::sample::select(usual), 1 => prop::sample::select(odd)]
}
