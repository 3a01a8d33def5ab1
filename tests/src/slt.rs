use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures::StreamExt;
use quiver::AppContext;
use quiver_common::UserId;
use quiver_query::{QueryEngine, StatementOutput};
use serde_json::Value;
use sqllogictest::{DBOutput, DefaultColumnType};

/// A failed statement, as the runner reports it.
#[derive(Debug, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SltError {
    code: String,
    message: String,
}

/// One cell as `.slt` files spell it: NULL, or the JSON value's text
/// (strings unquoted, nested values as compact JSON).
fn cell_text(value: &Value) -> String {
    match value {
        Value::Null => "NULL".to_string(),
        Value::String(s) if s.is_empty() => "(empty)".to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rows_text(rows: &[Value]) -> Vec<Vec<String>> {
    rows.iter()
        .map(|row| {
            row.as_array()
                .map(|cells| cells.iter().map(cell_text).collect())
                .unwrap_or_default()
        })
        .collect()
}

fn output(result: &Value) -> DBOutput<DefaultColumnType> {
    match result.get("rows").and_then(Value::as_array) {
        Some(rows) => {
            let width = result["schema"].as_array().map_or(0, Vec::len);
            DBOutput::Rows {
                types: vec![DefaultColumnType::Any; width],
                rows: rows_text(rows),
            }
        }
        None => DBOutput::StatementComplete(result["row_count"].as_u64().unwrap_or(0)),
    }
}

/// Runs `.slt` statements directly against a node's query engine, encoding
/// results with the API's encoder but without HTTP.
pub struct InProcessDb {
    engine: Arc<QueryEngine>,
    _context: AppContext,
    _dir: tempfile::TempDir,
}

impl InProcessDb {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let context = AppContext::build(crate::test_config(dir.path())).expect("node builds");
        Self {
            engine: context.engine.clone(),
            _context: context,
            _dir: dir,
        }
    }

    async fn run_sql(&self, sql: &str) -> Result<Value, SltError> {
        let fail = |e: quiver_query::QueryError| SltError {
            code: e.code().to_string(),
            message: e.to_string(),
        };
        let statements = self.engine.prepare(sql, &[]).map_err(fail)?;
        let mut session = self
            .engine
            .session(None, UserId::root(), quiver_common::Role::System)
            .map_err(fail)?;
        let mut last = Value::Null;
        for statement in statements {
            last = match session.execute(statement).await.map_err(fail)? {
                StatementOutput::Done { row_count, .. } => {
                    serde_json::json!({ "row_count": row_count })
                }
                StatementOutput::Rows(mut stream) => {
                    let schema = quiver_api::schema_json(&stream.schema());
                    let mut out = b"[".to_vec();
                    let mut first = true;
                    while let Some(batch) = stream.next().await {
                        let batch = batch.map_err(|e| fail(e.into()))?;
                        quiver_api::write_rows(&batch, &mut out, first);
                        first &= batch.num_rows() == 0;
                    }
                    out.push(b']');
                    let rows: Value = serde_json::from_slice(&out).expect("encoder writes JSON");
                    serde_json::json!({ "schema": schema, "rows": rows })
                }
            };
        }
        Ok(last)
    }
}

impl Default for InProcessDb {
    fn default() -> Self {
        Self::new()
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for InProcessDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        Ok(output(&self.run_sql(sql).await?))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "quiver-in-process"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// Runs `.slt` statements over HTTP against a running node.
pub struct HttpDb {
    client: reqwest::Client,
    url: String,
}

impl HttpDb {
    pub fn new(base_url: &str) -> Self {
        Self {
            client: reqwest::Client::new(),
            url: format!("{base_url}/v1/api/sql"),
        }
    }
}

#[async_trait::async_trait]
impl sqllogictest::AsyncDB for HttpDb {
    type Error = SltError;
    type ColumnType = DefaultColumnType;

    async fn run(&mut self, sql: &str) -> Result<DBOutput<DefaultColumnType>, SltError> {
        let transport = |e: reqwest::Error| SltError {
            code: "TRANSPORT".into(),
            message: e.to_string(),
        };
        let response = self
            .client
            .post(&self.url)
            .header("authorization", crate::ROOT_BASIC)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await
            .map_err(transport)?;
        let body: Value = response.json().await.map_err(transport)?;
        if body["status"] != "success" {
            return Err(SltError {
                code: body["error"]["code"].as_str().unwrap_or("?").to_string(),
                message: body["error"]["message"].as_str().unwrap_or("?").to_string(),
            });
        }
        let results = body["results"].as_array().cloned().unwrap_or_default();
        Ok(output(results.last().unwrap_or(&Value::Null)))
    }

    async fn shutdown(&mut self) {}

    fn engine_name(&self) -> &str {
        "quiver-http"
    }

    async fn sleep(duration: std::time::Duration) {
        tokio::time::sleep(duration).await;
    }
}

/// The `.slt` files of the suite, sorted.
pub fn slt_files() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("slt");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("tests/slt exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "slt"))
        .collect();
    files.sort();
    files
}

/// Runs one file against a database made by `make`, ignoring column type
/// letters (cells are compared as text).
pub async fn run_slt_file<D, F, Fut>(path: &Path, make: F) -> Result<(), String>
where
    D: sqllogictest::AsyncDB + Send + 'static,
    F: FnMut() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<D, D::Error>> + Send + 'static,
{
    let mut runner = sqllogictest::Runner::new(make);
    runner.with_column_validator(|_, _| true);
    runner
        .run_file_async(path)
        .await
        .map_err(|e| format!("{}: {}", path.display(), e.display(false)))
}
