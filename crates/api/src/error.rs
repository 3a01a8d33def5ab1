use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use quiver_common::ErrorCode;
use quiver_service::ServiceError;
use serde_json::json;

/// An error as the API reports it: a public code, a message a user can act
/// on, optional details, and how long the request took.
#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub details: Option<serde_json::Value>,
    pub took_ms: f64,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            details: None,
            took_ms: 0.0,
        }
    }

    pub fn took(mut self, took_ms: f64) -> Self {
        self.took_ms = took_ms;
        self
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        Self {
            code: error.code,
            message: error.message,
            details: error
                .statement_index
                .map(|i| json!({ "statement_index": i })),
            took_ms: 0.0,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.code.http_status())
            .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = json!({ "code": self.code.as_str(), "message": self.message });
        if let Some(details) = self.details {
            error["details"] = details;
        }
        let body = json!({
            "status": "error",
            "results": [],
            "took": self.took_ms,
            "error": error,
        });
        (status, Json(body)).into_response()
    }
}
