use datafusion::error::DataFusionError;
use quiver_catalog::CatalogError;
use quiver_common::ErrorCode;
use quiver_store::StoreError;

/// Everything that can go wrong running SQL, each with its public code.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("request contains no SQL statement")]
    EmptySql,
    #[error("SQL is {len} bytes, more than the limit of {limit} ([limits] max_sql_bytes)")]
    SqlTooLong { len: usize, limit: usize },
    #[error(
        "request has {count} statements, more than the limit of {limit} ([limits] max_statements)"
    )]
    TooManyStatements { count: usize, limit: usize },
    #[error("invalid SQL: {0}")]
    Parse(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("unsupported statement: {0}")]
    Unsupported(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("params can only be used with a single statement, got {0} statements")]
    ParamsWithBatch(usize),
    #[error("table not found: {0}")]
    TableNotFound(String),
    #[error("namespace not found: {0}")]
    NamespaceNotFound(String),
    #[error("{0}")]
    Invalid(String),
    #[error("duplicate primary key in {table}: {key}")]
    DuplicateKey { table: String, key: String },
    #[error("result has more than {limit} rows ([limits] max_result_rows)")]
    ResultTooLarge { limit: usize },
    #[error("{0}")]
    DataFusion(String),
    /// The store cannot read or write its files: a full disk, a data
    /// directory that became unwritable, a failing device.
    #[error(
        "storage unavailable: {0}; writes fail until an operator frees space or repairs the \
         data directory and restarts the node"
    )]
    StorageUnavailable(String),
    /// Segment files could not be written or read: a full disk, an
    /// unwritable directory. A flush that fails this way leaves its rows
    /// in the hot store.
    #[error("segment files cannot be read or written: {0}")]
    SegmentsUnavailable(String),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::EmptySql => ErrorCode::EmptySql,
            Self::PermissionDenied(_) => ErrorCode::PermissionDenied,
            Self::SqlTooLong { .. } | Self::TooManyStatements { .. } | Self::Parse(_) => {
                ErrorCode::InvalidSql
            }
            Self::Unsupported(_) => ErrorCode::InvalidSql,
            Self::InvalidParameter(_) => ErrorCode::InvalidParameter,
            Self::ParamsWithBatch(_) => ErrorCode::ParamsWithBatch,
            Self::TableNotFound(_) | Self::NamespaceNotFound(_) => ErrorCode::TableNotFound,
            Self::Invalid(_) | Self::DuplicateKey { .. } | Self::DataFusion(_) => {
                ErrorCode::SqlExecutionError
            }
            Self::ResultTooLarge { .. } => ErrorCode::ResultTooLarge,
            Self::Internal(_) | Self::StorageUnavailable(_) | Self::SegmentsUnavailable(_) => {
                ErrorCode::InternalError
            }
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        let root = error.find_root();
        match root {
            DataFusionError::SQL(e, _) => Self::Parse(e.to_string()),
            DataFusionError::Plan(message) => plan_error(message),
            DataFusionError::SchemaError(e, _) => Self::DataFusion(e.to_string()),
            DataFusionError::NotImplemented(message) => Self::Unsupported(message.clone()),
            DataFusionError::Execution(message) => Self::DataFusion(message.clone()),
            DataFusionError::ArrowError(e, _) => Self::DataFusion(e.to_string()),
            DataFusionError::ResourcesExhausted(message) => Self::DataFusion(message.clone()),
            DataFusionError::Configuration(message) => Self::Invalid(message.clone()),
            DataFusionError::External(e) => match e.downcast_ref::<QueryError>() {
                Some(inner) => inner.clone_shallow(),
                None => Self::Internal(e.to_string()),
            },
            other => Self::Internal(other.message().to_string()),
        }
    }
}

fn plan_error(message: &str) -> QueryError {
    // DataFusion says "table 'quiver.app.t' not found"; name it as users wrote it.
    if let Some(rest) = message.strip_prefix("table '")
        && let Some(name) = rest.strip_suffix("' not found")
    {
        let name = name.strip_prefix("quiver.").unwrap_or(name);
        return QueryError::TableNotFound(name.to_string());
    }
    QueryError::DataFusion(message.to_string())
}

impl QueryError {
    /// A copy for errors that crossed DataFusion as `External`.
    fn clone_shallow(&self) -> Self {
        match self {
            Self::TableNotFound(t) => Self::TableNotFound(t.clone()),
            Self::NamespaceNotFound(n) => Self::NamespaceNotFound(n.clone()),
            Self::Invalid(m) => Self::Invalid(m.clone()),
            Self::InvalidParameter(m) => Self::InvalidParameter(m.clone()),
            Self::Internal(m) => Self::Internal(m.clone()),
            Self::StorageUnavailable(m) => Self::StorageUnavailable(m.clone()),
            Self::SegmentsUnavailable(m) => Self::SegmentsUnavailable(m.clone()),
            Self::PermissionDenied(m) => Self::PermissionDenied(m.clone()),
            other => Self::DataFusion(other.to_string()),
        }
    }
}

impl From<CatalogError> for QueryError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NamespaceNotFound(ns) => Self::NamespaceNotFound(ns.to_string()),
            CatalogError::TableNotFound(t) => Self::TableNotFound(t),
            CatalogError::Store(e) => e.into(),
            CatalogError::Corrupt { .. } => Self::Internal(error.to_string()),
            CatalogError::InvalidChange(message) => Self::Invalid(message),
            other => Self::Invalid(other.to_string()),
        }
    }
}

impl From<quiver_store::ColdError> for QueryError {
    fn from(error: quiver_store::ColdError) -> Self {
        match error {
            quiver_store::ColdError::Store(e) => e.into(),
            other => match other.io_reason() {
                Some(reason) => {
                    // The path stays in the server log.
                    tracing::error!(error = %other, "segment files cannot be read or written");
                    Self::SegmentsUnavailable(reason)
                }
                None => Self::Internal(other.to_string()),
            },
        }
    }
}

impl From<datafusion::arrow::error::ArrowError> for QueryError {
    fn from(error: datafusion::arrow::error::ArrowError) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<StoreError> for QueryError {
    fn from(error: StoreError) -> Self {
        match error.io_reason() {
            Some(reason) => {
                // The path stays in the server log.
                tracing::error!(error = %error, "storage unavailable");
                Self::StorageUnavailable(reason)
            }
            None => Self::Internal(error.to_string()),
        }
    }
}

impl From<quiver_common::IdError> for QueryError {
    fn from(error: quiver_common::IdError) -> Self {
        Self::Invalid(error.to_string())
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
