use std::fmt;

/// The public error codes of the v1 wire API, shared by HTTP and WebSocket
/// payloads. Each protocol names them its own way: [`ErrorCode::as_str`]
/// and [`ErrorCode::http_status`] for HTTP, [`ErrorCode::socket_name`] on
/// the WebSocket.
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
    /// A query needed more memory (or spill disk) than the node gives it.
    ResourcesExhausted,
    InternalError,
    ShuttingDown,
    /// No such endpoint or object.
    NotFound,
    /// The endpoint exists but not for this HTTP method.
    MethodNotAllowed,
    /// A statement or clause Quiver does not run.
    Unsupported,
    /// WebSocket: a message before the connection authenticated.
    AuthRequired,
    /// WebSocket: a subscription id that is malformed, in use or unknown.
    InvalidSubscriptionId,
    /// WebSocket: more subscriptions than a connection or user may hold.
    SubscriptionLimitExceeded,
    /// WebSocket: a subscription ended or could not start.
    SubscriptionFailed,
    /// WebSocket: a subscriber fell further behind than its queue holds.
    SubscriptionOverflow,
    /// WebSocket: a binary frame.
    UnsupportedData,
    /// WebSocket: a message that is not one of the protocol's.
    Protocol,
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
            Self::ResourcesExhausted => "RESOURCES_EXHAUSTED",
            Self::InternalError => "INTERNAL_ERROR",
            Self::ShuttingDown => "SHUTTING_DOWN",
            Self::NotFound => "NOT_FOUND",
            Self::MethodNotAllowed => "METHOD_NOT_ALLOWED",
            // Over HTTP an unsupported statement is invalid SQL.
            Self::Unsupported => "INVALID_SQL",
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::InvalidSubscriptionId => "INVALID_SUBSCRIPTION_ID",
            Self::SubscriptionLimitExceeded => "SUBSCRIPTION_LIMIT_EXCEEDED",
            Self::SubscriptionFailed => "SUBSCRIPTION_FAILED",
            Self::SubscriptionOverflow => "SUBSCRIPTION_OVERFLOW",
            Self::UnsupportedData => "UNSUPPORTED_DATA",
            Self::Protocol => "PROTOCOL",
        }
    }

    /// The code as a WebSocket `error` message carries it (KalamDB's
    /// socket codes, which differ from its HTTP ones).
    pub fn socket_name(self) -> &'static str {
        match self {
            Self::InvalidSql => "INVALID_SQL",
            Self::Unsupported => "UNSUPPORTED",
            Self::PermissionDenied
            | Self::MissingAuthorization
            | Self::InvalidCredentials
            | Self::TokenExpired => "UNAUTHORIZED",
            Self::TableNotFound | Self::NotFound => "NOT_FOUND",
            Self::RateLimitExceeded => "RATE_LIMIT_EXCEEDED",
            Self::PayloadTooLarge => "MESSAGE_TOO_LARGE",
            Self::AuthRequired => "AUTH_REQUIRED",
            Self::InvalidSubscriptionId => "INVALID_SUBSCRIPTION_ID",
            Self::SubscriptionLimitExceeded => "SUBSCRIPTION_LIMIT_EXCEEDED",
            Self::SubscriptionOverflow => "SUBSCRIPTION_OVERFLOW",
            Self::UnsupportedData => "UNSUPPORTED_DATA",
            Self::Protocol => "PROTOCOL",
            Self::InvalidParameter
            | Self::ParamsWithBatch
            | Self::EmptySql
            | Self::SubscriptionFailed
            | Self::SqlExecutionError
            | Self::ResultTooLarge
            | Self::QueryTimeout
            | Self::ResourcesExhausted
            | Self::InternalError
            | Self::ShuttingDown
            | Self::MethodNotAllowed => "SUBSCRIPTION_FAILED",
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
            | Self::ResultTooLarge
            | Self::Unsupported
            | Self::InvalidSubscriptionId
            | Self::SubscriptionLimitExceeded
            | Self::SubscriptionFailed
            | Self::SubscriptionOverflow
            | Self::UnsupportedData
            | Self::Protocol => 400,
            Self::MissingAuthorization
            | Self::InvalidCredentials
            | Self::TokenExpired
            | Self::AuthRequired => 401,
            Self::PermissionDenied => 403,
            Self::TableNotFound | Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::QueryTimeout => 408,
            Self::PayloadTooLarge => 413,
            Self::RateLimitExceeded => 429,
            Self::InternalError => 500,
            Self::ShuttingDown | Self::ResourcesExhausted => 503,
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
