use datafusion::arrow::error::ArrowError;
use datafusion::error::DataFusionError;
use quiver_catalog::CatalogError;
use quiver_common::{ErrorCode, Role, UserId};
use quiver_store::{ColdError, StoreError};

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
    #[error("permission denied: {action} needs {needs}; {user} has role {role}")]
    PermissionDenied {
        /// What was refused, e.g. "reading app.t (shared table)".
        action: String,
        /// The role it needs, e.g. "the dba or system role".
        needs: String,
        user: UserId,
        role: Role,
    },
    #[error("unsupported statement: {0}")]
    Unsupported(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("params can only be used with a single statement, got {0} statements")]
    ParamsWithBatch(usize),
    #[error("table not found: {name}{hint}")]
    TableNotFound {
        name: String,
        /// ", did you mean ...?" or nothing.
        hint: String,
    },
    #[error("namespace not found: {name}{hint}")]
    NamespaceNotFound { name: String, hint: String },
    #[error("{0}")]
    Invalid(String),
    #[error("duplicate primary key in {table}: {key}")]
    DuplicateKey { table: String, key: String },
    #[error("result has more than {limit} rows ([limits] max_result_rows)")]
    ResultTooLarge { limit: usize },
    #[error("result is more than {limit} bytes ([limits] max_result_bytes)")]
    ResultTooManyBytes { limit: usize },
    #[error(
        "the statement writes more than {limit} rows ([limits] max_write_rows); nothing was \
         written: write in parts"
    )]
    TooManyWrites { limit: usize },
    /// The query needed more memory or spill space than the node gives
    /// it; DataFusion's account names the largest consumers.
    #[error(
        "the query needs more memory than it may use ([limits] query_memory_bytes, shared by \
         running queries): {}",
        .0.message()
    )]
    ResourcesExhausted(#[source] Box<DataFusionError>),
    /// A planning or execution error of DataFusion's: a missing column, a
    /// type mismatch, a division by zero.
    #[error("{}", .0.message())]
    DataFusion(#[source] Box<DataFusionError>),
    /// The store cannot read or write its files: a full disk, a data
    /// directory that became unwritable, a failing device.
    #[error(
        "storage unavailable: {reason}; writes fail until an operator frees space or repairs \
         the data directory and restarts the node"
    )]
    StorageUnavailable {
        /// The operating system's reason, without the path.
        reason: String,
        #[source]
        source: StoreError,
    },
    /// Segment files could not be written or read: a full disk, an
    /// unwritable directory. A flush that fails this way leaves its rows
    /// in the hot store.
    #[error("segment files cannot be read or written: {reason}")]
    SegmentsUnavailable {
        reason: String,
        #[source]
        source: ColdError,
    },
    /// Any other failure of the store: a bug or corruption.
    #[error("store: {0}")]
    Store(#[source] StoreError),
    /// Any other failure of the segment files.
    #[error("segments: {0}")]
    Cold(#[source] ColdError),
    #[error("catalog: {0}")]
    Catalog(#[source] CatalogError),
    #[error("arrow: {0}")]
    Arrow(#[source] ArrowError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl QueryError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::EmptySql => ErrorCode::EmptySql,
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::SqlTooLong { .. } | Self::TooManyStatements { .. } | Self::Parse(_) => {
                ErrorCode::InvalidSql
            }
            Self::Unsupported(_) => ErrorCode::Unsupported,
            Self::InvalidParameter(_) => ErrorCode::InvalidParameter,
            Self::ParamsWithBatch(_) => ErrorCode::ParamsWithBatch,
            Self::TableNotFound { .. } | Self::NamespaceNotFound { .. } => ErrorCode::TableNotFound,
            Self::Invalid(_)
            | Self::DuplicateKey { .. }
            | Self::DataFusion(_)
            | Self::TooManyWrites { .. } => ErrorCode::SqlExecutionError,
            Self::ResultTooLarge { .. } | Self::ResultTooManyBytes { .. } => {
                ErrorCode::ResultTooLarge
            }
            Self::ResourcesExhausted(_) => ErrorCode::ResourcesExhausted,
            Self::Internal(_)
            | Self::StorageUnavailable { .. }
            | Self::SegmentsUnavailable { .. }
            | Self::Store(_)
            | Self::Cold(_)
            | Self::Catalog(_)
            | Self::Arrow(_) => ErrorCode::InternalError,
        }
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::Invalid(message.into())
    }
}

impl QueryError {
    /// A table that does not exist, named as the user wrote it.
    pub(crate) fn table_not_found(name: impl Into<String>) -> Self {
        Self::TableNotFound {
            name: name.into(),
            hint: String::new(),
        }
    }

    pub(crate) fn namespace_not_found(name: impl Into<String>) -> Self {
        Self::NamespaceNotFound {
            name: name.into(),
            hint: String::new(),
        }
    }
}

/// Takes a DataFusion error apart down to what caused it: Quiver's own
/// errors raised inside DataFusion (a table provider's refusal, a storage
/// failure) come back as they were raised.
impl From<DataFusionError> for QueryError {
    fn from(error: DataFusionError) -> Self {
        match error {
            DataFusionError::Context(_, inner) | DataFusionError::Diagnostic(_, inner) => {
                Self::from(*inner)
            }
            DataFusionError::Collection(mut errors) if !errors.is_empty() => {
                Self::from(errors.swap_remove(0))
            }
            DataFusionError::Shared(shared) => match std::sync::Arc::try_unwrap(shared) {
                Ok(error) => Self::from(error),
                // Still held elsewhere (a hash join's build side is shared
                // by its probes): what ran out is told apart by reference.
                Err(shared) => match shared.find_root() {
                    DataFusionError::ResourcesExhausted(message) => Self::ResourcesExhausted(
                        Box::new(DataFusionError::ResourcesExhausted(message.clone())),
                    ),
                    _ => Self::Internal(shared.message().into_owned()),
                },
            },
            DataFusionError::External(external) => from_external(external),
            DataFusionError::ArrowError(arrow, backtrace) => match *arrow {
                ArrowError::ExternalError(external) => from_external(external),
                other => Self::DataFusion(Box::new(DataFusionError::ArrowError(
                    Box::new(other),
                    backtrace,
                ))),
            },
            DataFusionError::SQL(e, _) => Self::Parse(e.to_string()),
            DataFusionError::NotImplemented(message) => Self::Unsupported(message),
            DataFusionError::Configuration(message) => Self::Invalid(message),
            error @ DataFusionError::ResourcesExhausted(_) => {
                Self::ResourcesExhausted(Box::new(error))
            }
            error @ (DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::Execution(_)) => Self::DataFusion(Box::new(error)),
            other => Self::Internal(other.message().into_owned()),
        }
    }
}

fn from_external(error: Box<dyn std::error::Error + Send + Sync>) -> QueryError {
    let error = match error.downcast::<QueryError>() {
        Ok(query) => return *query,
        Err(other) => other,
    };
    match error.downcast::<DataFusionError>() {
        Ok(datafusion) => QueryError::from(*datafusion),
        Err(other) => QueryError::Internal(other.to_string()),
    }
}

impl From<CatalogError> for QueryError {
    fn from(error: CatalogError) -> Self {
        match error {
            CatalogError::NamespaceNotFound(ns) => Self::namespace_not_found(ns.to_string()),
            CatalogError::TableNotFound(t) => Self::table_not_found(t),
            CatalogError::Store(e) => e.into(),
            error @ CatalogError::Corrupt { .. } => Self::Catalog(error),
            CatalogError::InvalidChange(message) => Self::Invalid(message),
            other => Self::Invalid(other.to_string()),
        }
    }
}

impl From<ColdError> for QueryError {
    fn from(error: ColdError) -> Self {
        match error {
            ColdError::Store(e) => e.into(),
            other => match other.io_reason() {
                Some(reason) => {
                    // The path stays in the server log.
                    tracing::error!(error = %other, "segment files cannot be read or written");
                    Self::SegmentsUnavailable {
                        reason,
                        source: other,
                    }
                }
                None => Self::Cold(other),
            },
        }
    }
}

impl From<ArrowError> for QueryError {
    fn from(error: ArrowError) -> Self {
        Self::Arrow(error)
    }
}

impl From<StoreError> for QueryError {
    fn from(error: StoreError) -> Self {
        match error.io_reason() {
            Some(reason) => {
                // The path stays in the server log.
                tracing::error!(error = %error, "storage unavailable");
                Self::StorageUnavailable {
                    reason,
                    source: error,
                }
            }
            None => Self::Store(error),
        }
    }
}

impl From<quiver_common::IdError> for QueryError {
    fn from(error: quiver_common::IdError) -> Self {
        Self::Invalid(error.to_string())
    }
}

pub type Result<T, E = QueryError> = std::result::Result<T, E>;
