//! `POST /v1/api/sql`: decodes the JSON request, hands it to the request
//! service, and encodes what comes back in the v1 envelope, as it is
//! produced.
//!
//! A small answer is sent whole: `{"results":[...],"took":<ms>,"status":
//! "success"}`, or an error envelope with its HTTP status. A large one is
//! streamed (chunked) as its rows are produced; should it fail after its
//! first bytes were sent, the HTTP status is already 200 and the envelope
//! ends with `"status":"error"` and the `error` object instead, after the
//! results sent so far (the last of them cut short).

use std::convert::Infallible;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use futures::StreamExt;
use quiver_common::ErrorCode;
use quiver_service::{Encoder, Incoming, Reply, ServiceError, SqlRequest, StatementInfo};
use serde::Deserialize;
use serde_json::json;

use crate::auth::{credentials, peer};
use crate::encode::{schema_json, write_rows};
use crate::error::ApiError;
use crate::routes::ApiState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SqlBody {
    #[serde(default)]
    sql: String,
    #[serde(default)]
    params: Option<Vec<serde_json::Value>>,
    #[serde(default)]
    namespace_id: Option<String>,
}

/// `POST /v1/api/sql`: runs each statement in order and answers with one
/// result per statement, or with the first error.
pub(crate) async fn sql(
    State(state): State<ApiState>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let max_body_bytes = state.config.get().limits.max_body_bytes;
    let incoming = Incoming {
        credentials: credentials(&headers),
        peer: peer(addr, &headers),
        size: body.as_ref().map_or(0, Bytes::len),
        decode: move || decode(body, max_body_bytes),
        encoder: Box::new(JsonEncoder::default()),
    };
    match state.service.sql(incoming).await {
        Reply::Complete(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Reply::Failed { error, took_ms } => ApiError::from(error).took(took_ms).into_response(),
        Reply::Streaming { head, rest } => {
            let chunks = futures::stream::once(async { head })
                .chain(rest)
                .map(|chunk| Ok::<_, Infallible>(Bytes::from(chunk)));
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                Body::from_stream(chunks),
            )
                .into_response()
        }
    }
}

/// Reads the JSON body of a SQL request.
fn decode(
    body: Result<Bytes, BytesRejection>,
    max_body_bytes: usize,
) -> Result<SqlRequest, ServiceError> {
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServiceError::new(
                ErrorCode::PayloadTooLarge,
                format!(
                    "request body is larger than {max_body_bytes} bytes ([limits] max_body_bytes)"
                ),
            )
        } else {
            ServiceError::new(
                ErrorCode::InvalidParameter,
                format!("cannot read request body: {rejection}"),
            )
        }
    })?;
    let malformed = |e: String| {
        ServiceError::new(
            ErrorCode::InvalidParameter,
            format!(
                "malformed request body: {e}; expected {{\"sql\": \"...\", \"params\": [...], \"namespace_id\": \"...\"}}"
            ),
        )
    };
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| malformed(e.to_string()))?;
    if !value.is_object() {
        return Err(malformed("the body must be a JSON object".to_string()));
    }
    let request: SqlBody = serde_json::from_value(value).map_err(|e| malformed(e.to_string()))?;
    Ok(SqlRequest {
        sql: request.sql,
        params: request.params.unwrap_or_default(),
        namespace: request.namespace_id,
    })
}

/// The v1 JSON envelope, written as results arrive.
#[derive(Debug, Default)]
struct JsonEncoder {
    /// Results written so far.
    results: usize,
    /// The statement whose rows are being written: its user and rows.
    open: Option<(String, usize)>,
}

impl JsonEncoder {
    fn next_result(&mut self, out: &mut Vec<u8>) {
        out.extend_from_slice(if self.results == 0 {
            b"{\"results\":["
        } else {
            b","
        });
        self.results += 1;
    }

    /// Closes the results array, opening it first if nothing was written.
    fn close_results(&mut self, out: &mut Vec<u8>, took_ms: f64, status: &str) {
        if self.results == 0 {
            out.extend_from_slice(b"{\"results\":[");
        }
        out.extend_from_slice(
            format!("],\"took\":{took_ms:.3},\"status\":\"{status}\"").as_bytes(),
        );
    }
}

fn rows_tail(out: &mut Vec<u8>, row_count: usize, as_user: &str) {
    out.extend_from_slice(b"],\"row_count\":");
    out.extend_from_slice(row_count.to_string().as_bytes());
    out.extend_from_slice(b",\"as_user\":");
    serde_json::to_writer(&mut *out, as_user).expect("writing to a Vec cannot fail");
    out.push(b'}');
}

impl Encoder for JsonEncoder {
    fn rows_begin(&mut self, out: &mut Vec<u8>, statement: StatementInfo<'_>, schema: &SchemaRef) {
        self.next_result(out);
        out.extend_from_slice(b"{\"schema\":");
        serde_json::to_writer(&mut *out, &schema_json(schema))
            .expect("writing to a Vec cannot fail");
        out.extend_from_slice(b",\"rows\":[");
        self.open = Some((statement.as_user.to_string(), 0));
    }

    fn rows(&mut self, out: &mut Vec<u8>, batch: &RecordBatch) {
        if let Some((_, rows)) = &mut self.open {
            write_rows(batch, out, *rows == 0);
            *rows += batch.num_rows();
        }
    }

    fn rows_end(&mut self, out: &mut Vec<u8>, statement: StatementInfo<'_>, row_count: usize) {
        self.open = None;
        rows_tail(out, row_count, statement.as_user);
    }

    fn done(
        &mut self,
        out: &mut Vec<u8>,
        statement: StatementInfo<'_>,
        row_count: u64,
        message: &str,
    ) {
        self.next_result(out);
        let result = json!({
            "schema": [],
            "row_count": row_count,
            "as_user": statement.as_user,
            "message": message,
        });
        serde_json::to_writer(&mut *out, &result).expect("writing to a Vec cannot fail");
    }

    fn end(&mut self, out: &mut Vec<u8>, took_ms: f64) {
        self.close_results(out, took_ms, "success");
        out.push(b'}');
    }

    fn fail(&mut self, out: &mut Vec<u8>, error: &ServiceError, took_ms: f64) {
        if let Some((as_user, rows)) = self.open.take() {
            rows_tail(out, rows, &as_user);
        }
        self.close_results(out, took_ms, "error");
        let mut body = json!({ "code": error.code.as_str(), "message": error.message });
        if let Some(index) = error.statement_index {
            body["details"] = json!({ "statement_index": index });
        }
        out.extend_from_slice(b",\"error\":");
        serde_json::to_writer(&mut *out, &body).expect("writing to a Vec cannot fail");
        out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    fn info(index: usize) -> StatementInfo<'static> {
        StatementInfo {
            index,
            as_user: "ana",
        }
    }

    #[test]
    fn an_answer_cut_short_is_still_one_json_document() {
        let mut encoder = JsonEncoder::default();
        let mut out = Vec::new();
        encoder.done(&mut out, info(0), 1, "Inserted 1 row(s)");
        let first = batch(&[1, 2]);
        encoder.rows_begin(&mut out, info(1), &first.schema());
        encoder.rows(&mut out, &first);
        let error = ServiceError {
            code: ErrorCode::QueryTimeout,
            message: "too slow".into(),
            statement_index: Some(1),
        };
        encoder.fail(&mut out, &error, 12.5);
        let body: serde_json::Value = serde_json::from_slice(&out).expect("well-formed JSON");
        assert_eq!(body["status"], "error");
        assert_eq!(body["error"]["code"], "QUERY_TIMEOUT");
        assert_eq!(body["error"]["details"]["statement_index"], 1);
        assert_eq!(body["took"], 12.5);
        assert_eq!(body["results"][0]["row_count"], 1);
        assert_eq!(body["results"][1]["rows"], json!([["1"], ["2"]]));
        assert_eq!(body["results"][1]["row_count"], 2);
    }

    #[test]
    fn a_whole_answer_ends_with_success() {
        let mut encoder = JsonEncoder::default();
        let mut out = Vec::new();
        let rows = batch(&[7]);
        encoder.rows_begin(&mut out, info(0), &rows.schema());
        encoder.rows(&mut out, &rows);
        encoder.rows(&mut out, &batch(&[8]));
        encoder.rows_end(&mut out, info(0), 2);
        encoder.end(&mut out, 1.0);
        let body: serde_json::Value = serde_json::from_slice(&out).expect("well-formed JSON");
        assert_eq!(body["status"], "success");
        assert_eq!(body["results"][0]["rows"], json!([["7"], ["8"]]));
        assert_eq!(body["results"][0]["as_user"], "ana");

        let mut empty = Vec::new();
        JsonEncoder::default().end(&mut empty, 0.5);
        let body: serde_json::Value = serde_json::from_slice(&empty).expect("well-formed JSON");
        assert_eq!(body["results"], json!([]));
    }
}
