//! Benchmarks of Quiver; see `benches/`. This library holds the shared
//! set-up: a node on a temporary directory and a helper that runs SQL
//! through its query engine.

use futures::StreamExt;
use quiver::AppContext;
use quiver_common::UserId;
use quiver_query::StatementOutput;

/// A node on a temporary data directory, for in-process benchmarks.
pub struct BenchNode {
    pub context: AppContext,
    _dir: tempfile::TempDir,
}

impl BenchNode {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = quiver_config::Config::default();
        config.storage.data_path = dir.path().to_path_buf();
        let context = AppContext::build(config).expect("node builds");
        Self { context, _dir: dir }
    }

    /// The rows `sql` returns, as a text table (for `EXPLAIN`).
    pub async fn text(&self, sql: &str) -> String {
        let engine = &self.context.engine;
        let mut session = engine
            .session(None, UserId::root(), quiver_common::Role::System)
            .expect("session");
        let mut text = String::new();
        for statement in engine.prepare(sql, &[]).expect("valid SQL") {
            if let StatementOutput::Rows(mut stream) =
                session.execute(statement).await.expect("statement runs")
            {
                let mut batches = Vec::new();
                while let Some(batch) = stream.next().await {
                    batches.push(batch.expect("batch"));
                }
                let table = datafusion::arrow::util::pretty::pretty_format_batches(&batches)
                    .expect("prints");
                text.push_str(&table.to_string());
            }
        }
        text
    }

    /// Runs `sql` with `params` and returns the rows read or affected.
    pub async fn run(&self, sql: &str, params: &[serde_json::Value]) -> usize {
        let engine = &self.context.engine;
        let statements = engine.prepare(sql, params).expect("valid SQL");
        let mut session = engine
            .session(None, UserId::root(), quiver_common::Role::System)
            .expect("session");
        let mut count = 0;
        for statement in statements {
            match session.execute(statement).await.expect("statement runs") {
                StatementOutput::Done { row_count, .. } => count += row_count as usize,
                StatementOutput::Rows(mut stream) => {
                    while let Some(batch) = stream.next().await {
                        count += batch.expect("batch").num_rows();
                    }
                }
            }
        }
        count
    }
}

impl Default for BenchNode {
    fn default() -> Self {
        Self::new()
    }
}
