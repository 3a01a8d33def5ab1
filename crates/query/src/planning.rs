//! Planning a query for a session: views expanded, every table resolved
//! through the session's catalog (which checks access), function-named
//! tables told apart from calls, and only reads allowed.

use std::collections::BTreeSet;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::common::TableReference;
use datafusion::dataframe::DataFrame;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::SendableRecordBatchStream;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{ObjectName, Statement, TableFactor, Visit, Visitor};

use crate::error::{QueryError, Result};
use crate::executor::QuerySession;
use crate::provider::{CATALOG_NAME, ReadPoint, refuse_unreadable};
use crate::system::SYSTEM_NAMESPACE;
use crate::{suggest, views};

impl QuerySession {
    /// Plans and starts a query through DataFusion.
    pub(crate) async fn query(&self, statement: Statement) -> Result<SendableRecordBatchStream> {
        let (ctx, plan) = self.plan(statement).await?;
        let frame = ctx.execute_logical_plan(plan).await?;
        Ok(frame.execute_stream().await?)
    }

    /// Plans a query that reads the scope of `point` as it stood when the
    /// point was taken; tables are resolved now.
    pub(crate) async fn plan_at(
        &self,
        statement: Statement,
        point: ReadPoint,
    ) -> Result<DataFrame> {
        let (ctx, plan) = self.plan(statement).await?;
        let mut state = ctx.state();
        state.config_mut().set_extension(Arc::new(point));
        Ok(DataFrame::new(state, plan))
    }

    /// Expands views and plans a query, refusing anything but reads.
    async fn plan(&self, mut statement: Statement) -> Result<(SessionContext, LogicalPlan)> {
        views::expand(&mut statement, &self.engine.catalog, &self.namespace)?;
        self.plan_expanded(statement).await
    }

    /// Plans a query whose views are already expanded.
    pub(crate) async fn plan_expanded(
        &self,
        statement: Statement,
    ) -> Result<(SessionContext, LogicalPlan)> {
        let ctx = self.context();
        let state = ctx.state();
        let statement = datafusion::sql::parser::Statement::Statement(Box::new(statement));
        // Tables resolve through this session's catalog, which checks
        // access; there is no other catalog.
        let references = state.resolve_table_references(&statement)?;
        if let Some(foreign) = references
            .iter()
            .find(|r| r.catalog().is_some_and(|c| c != CATALOG_NAME))
        {
            return Err(QueryError::table_not_found(foreign.to_string()));
        }
        self.check_function_named_tables(&ctx, &statement, &references)?;
        let plan = state.statement_to_plan(statement).await?;
        refuse_unreadable(&plan)?;
        datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false)
            .verify_plan(&plan)?;
        Ok((ctx, plan))
    }
}

impl QuerySession {
    /// Names the missing table of a relation without arguments whose name
    /// is also a table function's (the catalog lets such names through
    /// for the function's sake, and DataFusion would only say that nothing
    /// was found). `references` are the statement's tables, CTEs left out.
    fn check_function_named_tables(
        &self,
        ctx: &SessionContext,
        statement: &datafusion::sql::parser::Statement,
        references: &[TableReference],
    ) -> Result<()> {
        let functions = &self.engine.table_functions;
        if !references.iter().any(|r| functions.contains(r.table())) {
            return Ok(());
        }
        let datafusion::sql::parser::Statement::Statement(statement) = statement else {
            return Ok(());
        };
        struct Relations<'a> {
            functions: &'a BTreeSet<String>,
            found: Vec<ObjectName>,
        }
        impl Visitor for Relations<'_> {
            type Break = ();
            fn pre_visit_table_factor(&mut self, factor: &TableFactor) -> ControlFlow<()> {
                if let TableFactor::Table {
                    name, args: None, ..
                } = factor
                    && let Some(last) = name.0.last().and_then(|p| p.as_ident())
                    && self.functions.contains(&last.value.to_lowercase())
                {
                    self.found.push(name.clone());
                }
                ControlFlow::Continue(())
            }
        }
        let mut relations = Relations {
            functions,
            found: Vec::new(),
        };
        let _ = statement.visit(&mut relations);
        for name in relations.found {
            let (namespace, table) = self.split_name(&name)?;
            let named = |r: &TableReference| {
                r.table() == table.as_str()
                    && r.schema().unwrap_or(self.namespace.as_str()) == namespace.as_str()
            };
            if namespace.as_str() == SYSTEM_NAMESPACE || !references.iter().any(named) {
                continue;
            }
            if !self.engine.catalog.namespace_exists(&namespace) {
                return Err(suggest::namespace_not_found(
                    &self.engine.catalog,
                    namespace.as_str(),
                ));
            }
            let reference = TableReference::partial(namespace.as_str(), table.as_str());
            if !ctx.table_exist(reference)? {
                return Err(suggest::table_not_found(
                    &self.engine.catalog,
                    &namespace,
                    table.as_str(),
                ));
            }
        }
        Ok(())
    }
}
