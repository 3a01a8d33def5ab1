use quiver_common::ErrorCode;
use quiver_query::QueryError;

/// A request's failure as every protocol reports it: a public code, a
/// message a user can act on, and which statement failed. Each protocol
/// maps the code its own way (HTTP status, WebSocket code, SQLSTATE).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    /// The failed statement's position in the request, if one failed.
    pub statement_index: Option<usize>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            statement_index: None,
        }
    }

    /// Wraps a statement's failure; internal details are logged, never
    /// sent.
    pub fn from_query(error: QueryError, statement_index: Option<usize>) -> Self {
        let code = error.code();
        // A storage failure names its reason (never a path) so that an
        // application can tell a full disk from a bug.
        let internal = code == ErrorCode::InternalError
            && !matches!(
                error,
                QueryError::StorageUnavailable { .. } | QueryError::SegmentsUnavailable { .. }
            );
        let message = if internal {
            tracing::error!(error = %error, "internal error while running SQL");
            "internal error; the server log has the details".to_string()
        } else {
            error.to_string()
        };
        Self {
            code,
            message,
            statement_index,
        }
    }
}

impl From<QueryError> for ServiceError {
    fn from(error: QueryError) -> Self {
        Self::from_query(error, None)
    }
}
