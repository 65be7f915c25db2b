//! Errors of the HTTP/JSON API: a service's gRPC status, or the gateway's own refusal of a
//! request it cannot turn into one, as an HTTP status and a JSON body naming the field.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tonic::Code;

#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A service answered with an error status (or could not be reached).
    #[error("{service}: {}", .status.message())]
    Status {
        service: &'static str,
        status: tonic::Status,
    },
    /// The request could not be read: names the field and says why.
    #[error("{field}: {description}")]
    BadRequest { field: String, description: String },
    /// No route of the API has this path.
    #[error("no route {0}")]
    NoRoute(String),
    /// The path is a route, but not for this method; `allow` lists the ones it takes
    /// (`GET, HEAD` or `POST`).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed {
        method: String,
        path: String,
        allow: String,
    },
}

impl GatewayError {
    pub fn bad(field: impl Into<String>, description: impl Into<String>) -> GatewayError {
        GatewayError::BadRequest {
            field: field.into(),
            description: description.into(),
        }
    }

    pub fn status(service: &'static str, status: tonic::Status) -> GatewayError {
        GatewayError::Status { service, status }
    }
}

/// The JSON body of every error answer.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// The gRPC code's name, e.g. `INVALID_ARGUMENT`.
    pub code: &'static str,
    pub message: String,
    /// The fields at fault, for bad input.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub field_violations: Vec<FieldViolation>,
    /// When to try again, for `RESOURCE_EXHAUSTED` (also in the `Retry-After` header).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_after_seconds: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

/// The HTTP status a gRPC code is answered with.
pub fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::OutOfRange => StatusCode::BAD_REQUEST,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        // The state of things forbids it now (already there, locked, not yet published).
        Code::AlreadyExists | Code::Aborted | Code::FailedPrecondition => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// The name of a gRPC code as the protos spell it.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let allow = match &self {
            GatewayError::MethodNotAllowed { allow, .. } if !allow.is_empty() => {
                HeaderValue::from_str(allow).ok()
            }
            _ => None,
        };
        let (status, body) = match self {
            GatewayError::BadRequest { field, description } => (
                StatusCode::BAD_REQUEST,
                ErrorBody {
                    code: code_name(Code::InvalidArgument),
                    message: format!("{field}: {description}"),
                    field_violations: vec![FieldViolation { field, description }],
                    retry_after_seconds: None,
                },
            ),
            GatewayError::NoRoute(path) => (
                StatusCode::NOT_FOUND,
                ErrorBody {
                    code: code_name(Code::NotFound),
                    message: format!(
                        "no route {path}: the routes are listed in /api/v1/openapi.json"
                    ),
                    field_violations: Vec::new(),
                    retry_after_seconds: None,
                },
            ),
            GatewayError::MethodNotAllowed {
                method,
                path,
                allow,
            } => (
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorBody {
                    // As grpc-gateway answers it: the route exists, the method is not served.
                    code: code_name(Code::Unimplemented),
                    message: if allow.is_empty() {
                        format!("{method} is not allowed on {path}")
                    } else {
                        format!("{method} is not allowed on {path}; use {allow}")
                    },
                    field_violations: Vec::new(),
                    retry_after_seconds: None,
                },
            ),
            GatewayError::Status { service, status } => {
                (http_status(status.code()), from_status(service, &status))
            }
        };
        let mut res = (status, axum::Json(&body)).into_response();
        let h = res.headers_mut();
        if let Some(allow) = allow {
            h.insert(header::ALLOW, allow);
        }
        if status == StatusCode::UNAUTHORIZED {
            h.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"cezone\""),
            );
        }
        if let Some(s) = body.retry_after_seconds {
            h.insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        res
    }
}

/// A status's body: its message and the field violations and retry hint its details carry
/// (`google.rpc.BadRequest`, `google.rpc.RetryInfo`), as the services put them there.
fn from_status(service: &'static str, status: &tonic::Status) -> ErrorBody {
    // A status the client library made itself (the connection failed) carries a cause whose
    // text names addresses and sockets: logged, never returned.
    let message = if std::error::Error::source(status).is_some() {
        tracing::warn!(service, code = ?status.code(), error = %status, "service call failed");
        format!("the {service} service cannot be reached")
    } else {
        status.message().to_string()
    };
    let field_violations = cezone_platform::error::violations(status)
        .into_iter()
        .map(|(field, description)| FieldViolation { field, description })
        .collect();
    let retry_after_seconds = cezone_platform::error::retry_after(status)
        .map(|d| d.as_secs() + u64::from(d.subsec_nanos() > 0));
    ErrorBody {
        code: code_name(status.code()),
        message,
        field_violations,
        retry_after_seconds,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cezone_platform::error::ApiError;

    #[test]
    fn codes_map_to_http_statuses() {
        for (code, http) in [
            (Code::InvalidArgument, 400),
            (Code::Unauthenticated, 401),
            (Code::PermissionDenied, 403),
            (Code::NotFound, 404),
            (Code::AlreadyExists, 409),
            (Code::FailedPrecondition, 409),
            (Code::ResourceExhausted, 429),
            (Code::Unavailable, 503),
            (Code::Internal, 500),
            (Code::DataLoss, 500),
        ] {
            assert_eq!(http_status(code).as_u16(), http, "{code:?}");
        }
    }

    #[test]
    fn field_violations_and_retry_hints_reach_the_body() {
        let s: tonic::Status = ApiError::invalid("metric", "'x' is not a metric").into();
        let b = from_status("surveys", &s);
        assert_eq!(b.code, "INVALID_ARGUMENT");
        assert_eq!(b.field_violations[0].field, "metric");
        assert_eq!(b.field_violations[0].description, "'x' is not a metric");
        let s: tonic::Status =
            ApiError::exhausted("backlog", std::time::Duration::from_millis(1500)).into();
        let res = GatewayError::status("surveys", s).into_response();
        assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(res.headers()[header::RETRY_AFTER], "2");
    }
}
