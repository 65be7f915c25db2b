//! The one error type at the gRPC edge: a small code enum, field violations for bad input,
//! and internal causes that are logged with a reference and never returned.

use std::fmt;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidArgument,
    NotFound,
    AlreadyExists,
    FailedPrecondition,
    PermissionDenied,
    Unauthenticated,
    Unavailable,
    /// A limit reached for now (a backlog, a quota): the client retries after `retry_after`.
    ResourceExhausted,
    DataLoss,
    Internal,
}

impl ErrorCode {
    pub fn grpc(self) -> Code {
        match self {
            ErrorCode::InvalidArgument => Code::InvalidArgument,
            ErrorCode::NotFound => Code::NotFound,
            ErrorCode::AlreadyExists => Code::AlreadyExists,
            ErrorCode::FailedPrecondition => Code::FailedPrecondition,
            ErrorCode::PermissionDenied => Code::PermissionDenied,
            ErrorCode::Unauthenticated => Code::Unauthenticated,
            ErrorCode::Unavailable => Code::Unavailable,
            ErrorCode::ResourceExhausted => Code::ResourceExhausted,
            ErrorCode::DataLoss => Code::DataLoss,
            ErrorCode::Internal => Code::Internal,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub field: String,
    pub description: String,
}

#[derive(Debug, thiserror::Error)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub violations: Vec<Violation>,
    /// When the client may try again (`google.rpc.RetryInfo`).
    pub retry_after: Option<std::time::Duration>,
    /// The internal cause: logged, never sent to the client.
    #[source]
    pub cause: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.code, self.message)?;
        if let Some(c) = &self.cause {
            write!(f, " ({c})")?;
        }
        Ok(())
    }
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
            violations: Vec::new(),
            retry_after: None,
            cause: None,
        }
    }

    /// Bad input: names the field and says what is wrong with its value.
    pub fn invalid(field: &str, description: impl Into<String>) -> ApiError {
        let description = description.into();
        ApiError {
            code: ErrorCode::InvalidArgument,
            message: format!("{field}: {description}"),
            violations: vec![Violation {
                field: field.to_string(),
                description,
            }],
            retry_after: None,
            cause: None,
        }
    }

    /// Several bad fields at once.
    pub fn invalid_many(message: impl Into<String>, violations: Vec<(String, String)>) -> ApiError {
        ApiError {
            code: ErrorCode::InvalidArgument,
            message: message.into(),
            violations: violations
                .into_iter()
                .map(|(field, description)| Violation { field, description })
                .collect(),
            retry_after: None,
            cause: None,
        }
    }

    pub fn not_found(what: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, what)
    }

    pub fn already_exists(what: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::AlreadyExists, what)
    }

    pub fn precondition(what: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::FailedPrecondition, what)
    }

    pub fn unavailable(what: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Unavailable, what)
    }

    /// A limit reached for now; the client may retry after `after`.
    pub fn exhausted(what: impl Into<String>, after: std::time::Duration) -> ApiError {
        ApiError {
            retry_after: Some(after),
            ..ApiError::new(ErrorCode::ResourceExhausted, what)
        }
    }

    pub fn internal(cause: impl std::error::Error + Send + Sync + 'static) -> ApiError {
        ApiError {
            code: ErrorCode::Internal,
            message: "internal error".into(),
            violations: Vec::new(),
            retry_after: None,
            cause: Some(Box::new(cause)),
        }
    }

    pub fn internal_msg(message: impl Into<String>) -> ApiError {
        ApiError::internal(std::io::Error::other(message.into()))
    }
}

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> ApiError {
        ApiError::internal(e)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        match e.code {
            ErrorCode::Internal => {
                let reference = uuid::Uuid::new_v4();
                tracing::error!(%reference, error = %e, "internal error");
                Status::internal(format!("internal error (reference {reference})"))
            }
            code if !e.violations.is_empty() => Status::with_error_details(
                code.grpc(),
                e.message,
                ErrorDetails::with_bad_request(
                    e.violations
                        .into_iter()
                        .map(|v| FieldViolation::new(v.field, v.description))
                        .collect::<Vec<_>>(),
                ),
            ),
            code if e.retry_after.is_some() => Status::with_error_details(
                code.grpc(),
                e.message,
                ErrorDetails::with_retry_info(e.retry_after),
            ),
            code => {
                if let Some(cause) = &e.cause {
                    tracing::warn!(code = ?code, error = %cause, "request failed");
                }
                Status::new(code.grpc(), e.message)
            }
        }
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// The retry hint of a status, if it has one.
pub fn retry_after(status: &Status) -> Option<std::time::Duration> {
    status.get_error_details().retry_info()?.retry_delay
}

impl From<cezone_bus::outbox::Saturated> for ApiError {
    fn from(e: cezone_bus::outbox::Saturated) -> ApiError {
        // About the time the relay takes to publish what is over the limit, at least a second.
        let over = e.backlog.saturating_sub(e.limit);
        let after = std::time::Duration::from_millis((over / 2).clamp(1000, 30_000));
        ApiError::exhausted(e.to_string(), after)
    }
}

/// The field violations of a status, for clients and tests.
pub fn violations(status: &Status) -> Vec<(String, String)> {
    status
        .get_error_details()
        .bad_request()
        .map(|b| {
            b.field_violations
                .iter()
                .map(|v| (v.field.clone(), v.description.clone()))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_input_carries_field_violations() {
        let s: Status = ApiError::invalid("criterion", "'9.9.9' is not in the framework").into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(
            violations(&s),
            vec![(
                "criterion".to_string(),
                "'9.9.9' is not in the framework".to_string()
            )]
        );
    }

    #[test]
    fn internal_causes_are_not_returned() {
        let s: Status = ApiError::internal(std::io::Error::other("disk /var/secret full")).into();
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("secret"));
    }
}
