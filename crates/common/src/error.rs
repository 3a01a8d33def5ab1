use std::fmt;

/// The public error codes of the v1 wire API, shared by HTTP and WebSocket
/// payloads. Each maps to exactly one HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    InvalidSql,
    SqlExecutionError,
    TableNotFound,
    InvalidParameter,
    ParamsWithBatch,
    EmptySql,
    ResultTooLarge,
    PayloadTooLarge,
    MissingAuthorization,
    InvalidCredentials,
    TokenExpired,
    PermissionDenied,
    RateLimitExceeded,
    QueryTimeout,
    InternalError,
    ShuttingDown,
    /// No such endpoint or object.
    NotFound,
    /// The endpoint exists but not for this HTTP method.
    MethodNotAllowed,
}

impl ErrorCode {
    /// The code as it appears on the wire, e.g. `TABLE_NOT_FOUND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidSql => "INVALID_SQL",
            Self::SqlExecutionError => "SQL_EXECUTION_ERROR",
            Self::TableNotFound => "TABLE_NOT_FOUND",
            Self::InvalidParameter => "INVALID_PARAMETER",
            Self::ParamsWithBatch => "PARAMS_WITH_BATCH",
            Self::EmptySql => "EMPTY_SQL",
            Self::ResultTooLarge => "RESULT_TOO_LARGE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::MissingAuthorization => "MISSING_AUTHORIZATION",
            Self::InvalidCredentials => "INVALID_CREDENTIALS",
            Self::TokenExpired => "TOKEN_EXPIRED",
            Self::PermissionDenied => "PERMISSION_DENIED",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::QueryTimeout => "QUERY_TIMEOUT",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
        }
    }

    /// The HTTP status that carries this code.
    pub fn http_status(self) -> u16 {
        match self {
            Self::InvalidSql
            | Self::SqlExecutionError
            | Self::InvalidParameter
            | Self::ParamsWithBatch
            | Self::EmptySql
            | Self::ResultTooLarge => 400,
            Self::MissingAuthorization | Self::InvalidCredentials | Self::TokenExpired => 401,
            Self::PermissionDenied => 403,
            Self::TableNotFound | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::QueryTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::RateLimitExceeded => 429,
            Self::InternalError => 500,
            Self::ShuttingDown => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
