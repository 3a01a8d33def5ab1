//! Statements the engine runs on a user's behalf, put together as syntax
//! trees from the user's own (already parsed) expressions: no text made
//! from user input is ever parsed again. The templates are constant.

use datafusion::sql::sqlparser::ast::{
    Expr, Ident, ObjectName, SelectItem, SetExpr, Statement, TableFactor, TableWithJoins,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;

use crate::error::{QueryError, Result};

/// A plain `SELECT`, to be filled in.
pub(crate) const SELECT: &str = "SELECT 1 FROM t";

/// A name as written, whatever it holds.
pub(crate) fn quoted(name: &str) -> Ident {
    Ident::with_quote('"', name)
}

/// `(<expr>) AS __v<i>`: the i-th value a statement computes per row.
pub(crate) fn value_column(i: usize, expr: Expr) -> SelectItem {
    SelectItem::ExprWithAlias {
        expr: Expr::Nested(Box::new(expr)),
        alias: Ident::new(format!("__v{i}")),
    }
}

/// `template` (a `SELECT ... FROM t ...` of constant text) with its
/// column list, its one table and its `WHERE` replaced.
pub(crate) fn select(
    template: &str,
    projection: Vec<SelectItem>,
    from: TableWithJoins,
    selection: Option<Expr>,
) -> Result<Statement> {
    let mut statement = parse(template)?;
    let Statement::Query(query) = &mut statement else {
        return Err(not_a_select(template));
    };
    let SetExpr::Select(select) = query.body.as_mut() else {
        return Err(not_a_select(template));
    };
    select.projection = projection;
    select.from = vec![from];
    select.selection = selection;
    Ok(statement)
}

/// The table `name`, as a `FROM` item.
pub(crate) fn table(name: ObjectName) -> Result<TableWithJoins> {
    let Statement::Query(query) = parse(SELECT)? else {
        return Err(not_a_select(SELECT));
    };
    let SetExpr::Select(mut select) = *query.body else {
        return Err(not_a_select(SELECT));
    };
    let mut from = select.from.pop().ok_or_else(|| not_a_select(SELECT))?;
    if let TableFactor::Table { name: target, .. } = &mut from.relation {
        *target = name;
    }
    Ok(from)
}

fn parse(template: &str) -> Result<Statement> {
    Parser::parse_sql(&GenericDialect {}, template)
        .map_err(|e| QueryError::Internal(format!("statement template {template}: {e}")))?
        .pop()
        .ok_or_else(|| not_a_select(template))
}

fn not_a_select(template: &str) -> QueryError {
    QueryError::Internal(format!("statement template is not one SELECT: {template}"))
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::ast::ObjectNamePart;

    use super::*;

    #[test]
    fn names_and_expressions_stay_what_they_were_parsed_as() {
        let hostile = "x\" FROM secret; DROP TABLE t; --";
        let from = table(ObjectName(vec![ObjectNamePart::Identifier(quoted(
            hostile,
        ))]))
        .unwrap();
        let statement = select(
            "SELECT 1 FROM t ORDER BY _seq",
            vec![value_column(0, Expr::Identifier(quoted(hostile)))],
            from,
            None,
        )
        .unwrap();
        let Statement::Query(query) = &statement else {
            panic!("a query")
        };
        assert!(query.order_by.is_some(), "the template's ORDER BY stays");
        let SetExpr::Select(select) = query.body.as_ref() else {
            panic!("a select")
        };
        let TableFactor::Table { name, .. } = &select.from[0].relation else {
            panic!("a table")
        };
        assert_eq!(name.0.len(), 1);
        assert_eq!(
            name.0[0].as_ident().map(|i| i.value.as_str()),
            Some(hostile),
            "one name, whatever it holds"
        );
    }
}
