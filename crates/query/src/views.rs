//! Views: the SQL text is the definition. At `CREATE VIEW` every table it
//! reads is qualified with its namespace (so the view means the same from
//! any session), and the query is planned once to validate it; at query
//! time each view reference is replaced by its query as a subquery before
//! DataFusion plans the statement.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    CreateView, Ident, ObjectName, ObjectNamePart, Query, Statement, TableAlias,
    TableAliasColumnDef, TableFactor, VisitMut, VisitorMut,
};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::Parser;
use quiver_catalog::{Catalog, ViewDef};
use quiver_common::{NamespaceId, TableName};

use crate::error::{QueryError, Result};
use crate::executor::{QuerySession, StatementOutput, done};
use crate::provider::relation_name;
use crate::suggest;

/// How many view references one statement may expand, which also stops a
/// view that (through others) reads itself.
const MAX_EXPANSIONS: usize = 64;

/// Every name a `WITH` clause defines anywhere in the statement.
struct CteNames(HashSet<String>);

impl VisitorMut for CteNames {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.0.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        ControlFlow::Continue(())
    }
}

/// Qualifies unqualified table names with `namespace` and records every
/// relation read.
struct Qualify<'a> {
    namespace: &'a NamespaceId,
    ctes: HashSet<String>,
    reads: Vec<String>,
}

impl VisitorMut for Qualify<'_> {
    type Break = ();

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<()> {
        if let TableFactor::Table {
            name, args: None, ..
        } = factor
        {
            let single = name.0.len() == 1;
            if single
                && let Some(ident) = name.0[0].as_ident()
                && self.ctes.contains(&ident.value.to_ascii_lowercase())
            {
                return ControlFlow::Continue(());
            }
            if let Ok((ns, table)) = relation_name(name, self.namespace) {
                if single {
                    *name = ObjectName(vec![
                        ObjectNamePart::Identifier(Ident::new(ns.as_str())),
                        name.0[0].clone(),
                    ]);
                }
                let read = format!("{ns}.{table}");
                if !self.reads.contains(&read) {
                    self.reads.push(read);
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// Replaces references to views by their queries.
struct Expand<'a> {
    catalog: &'a Catalog,
    namespace: &'a NamespaceId,
    expanded: Vec<String>,
}

impl VisitorMut for Expand<'_> {
    type Break = QueryError;

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> ControlFlow<QueryError> {
        let TableFactor::Table {
            name,
            alias,
            args: None,
            ..
        } = factor
        else {
            return ControlFlow::Continue(());
        };
        let Some((ns, view_name)) = relation_name(name, self.namespace).ok() else {
            return ControlFlow::Continue(());
        };
        let Some(view) = self.catalog.view(&ns, &view_name) else {
            return ControlFlow::Continue(());
        };
        if self.expanded.len() >= MAX_EXPANSIONS {
            return ControlFlow::Break(QueryError::invalid(format!(
                "view {} expands more than {MAX_EXPANSIONS} views deep: does it read itself?",
                view.qualified_name()
            )));
        }
        if let Err(e) = check_reads(self.catalog, &view) {
            return ControlFlow::Break(e);
        }
        let query = match parse_query(&view.sql) {
            Ok(query) => query,
            Err(e) => return ControlFlow::Break(e),
        };
        self.expanded.push(view.qualified_name());
        let mut alias = alias.take().unwrap_or_else(|| TableAlias {
            explicit: true,
            name: Ident::new(view.name.as_str()),
            columns: Vec::new(),
            at: None,
        });
        if alias.columns.is_empty() {
            alias.columns = view
                .columns
                .iter()
                .map(|c| TableAliasColumnDef {
                    name: Ident::new(c),
                    data_type: None,
                })
                .collect();
        }
        *factor = TableFactor::Derived {
            lateral: false,
            subquery: query,
            alias: Some(alias),
            sample: None,
        };
        ControlFlow::Continue(())
    }
}

fn parse_query(sql: &str) -> Result<Box<Query>> {
    let mut statements = Parser::parse_sql(&GenericDialect {}, sql)
        .map_err(|e| QueryError::Internal(format!("stored view does not parse: {e}")))?;
    match statements.pop() {
        Some(Statement::Query(query)) => Ok(query),
        _ => Err(QueryError::Internal("stored view is not a query".into())),
    }
}

/// Fails, naming the view and the table, when something the view reads is
/// gone.
fn check_reads(catalog: &Catalog, view: &ViewDef) -> Result<()> {
    for read in &view.reads {
        let present = read.split_once('.').is_some_and(|(ns, table)| {
            match (NamespaceId::new(ns), TableName::new(table)) {
                (Ok(ns), Ok(table)) => {
                    (ns.as_str() == crate::system::SYSTEM_NAMESPACE
                        && crate::system::is_system_table(table.as_str()))
                        || catalog.table(&ns, &table).is_some()
                        || catalog.view(&ns, &table).is_some()
                }
                _ => false,
            }
        });
        if !present {
            return Err(QueryError::table_not_found(format!(
                "{read}, read by view {view}; recreate {read} or drop the view with DROP VIEW {view}",
                view = view.qualified_name()
            )));
        }
    }
    Ok(())
}

/// Expands every view `statement` reads; returns the views expanded.
pub(crate) fn expand(
    statement: &mut Statement,
    catalog: &Catalog,
    namespace: &NamespaceId,
) -> Result<Vec<String>> {
    let mut expander = Expand {
        catalog,
        namespace,
        expanded: Vec::new(),
    };
    match statement.visit(&mut expander) {
        ControlFlow::Break(e) => Err(e),
        ControlFlow::Continue(()) => Ok(expander.expanded),
    }
}

/// Prepares a `CREATE VIEW`: the stored definition (query with qualified
/// names) and the statement to validate it with.
pub(crate) fn prepare(
    create: &CreateView,
    namespace: NamespaceId,
    name: TableName,
) -> Result<(ViewDef, Statement)> {
    if create.materialized || create.or_alter || !create.cluster_by.is_empty() {
        return Err(QueryError::Unsupported(
            "materialized or clustered views".into(),
        ));
    }
    let mut statement = Statement::Query(create.query.clone());
    let mut ctes = CteNames(HashSet::new());
    let _ = statement.visit(&mut ctes);
    let mut qualify = Qualify {
        namespace: &namespace,
        ctes: ctes.0,
        reads: Vec::new(),
    };
    let _ = statement.visit(&mut qualify);
    let def = ViewDef {
        sql: statement.to_string(),
        columns: create
            .columns
            .iter()
            .map(|c| c.name.value.to_ascii_lowercase())
            .collect(),
        reads: qualify.reads,
        namespace,
        name,
        created_at: 0,
    };
    Ok((def, statement))
}

impl QuerySession {
    /// `CREATE [OR REPLACE] VIEW`: validated by planning it; nothing is
    /// stored if that fails.
    pub(crate) async fn create_view(&self, create: &CreateView) -> Result<StatementOutput> {
        let (namespace, name) = self.split_name(&create.name)?;
        let catalog = self.engine().catalog();
        if !catalog.namespace_exists(&namespace) {
            return Err(suggest::namespace_not_found(catalog, namespace.as_str()));
        }
        let (def, mut statement) = prepare(create, namespace, name)?;
        let qualified = def.qualified_name();
        let expanded = expand(&mut statement, catalog, self.namespace())?;
        if expanded.contains(&qualified) {
            return Err(QueryError::invalid(format!(
                "view {qualified} cannot read itself"
            )));
        }
        let (_, plan) = self.plan_expanded(statement).await?;
        let width = plan.schema().fields().len();
        if !def.columns.is_empty() && def.columns.len() != width {
            return Err(QueryError::invalid(format!(
                "view {qualified} names {} column(s) but its query returns {width}",
                def.columns.len()
            )));
        }
        let replaced = create.or_replace && catalog.view(&def.namespace, &def.name).is_some();
        if create.if_not_exists && catalog.view(&def.namespace, &def.name).is_some() {
            return Ok(done(0, format!("View {qualified} already exists")));
        }
        catalog.create_view(def, create.or_replace)?;
        Ok(done(
            0,
            if replaced {
                format!("View {qualified} replaced")
            } else {
                format!("View {qualified} created")
            },
        ))
    }
}
