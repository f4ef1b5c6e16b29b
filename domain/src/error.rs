//! The one error type of the domain. It carries no HTTP or SQL types: the store maps database
//! errors at its edge and the API maps these variants to statuses in one place.

use serde::Serialize;

/// What went wrong with one field of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// JSON path of the field, e.g. `config.auth.client_id`.
    pub field: String,
    /// Stable snake_case code: `required`, `invalid`, `unknown_field`, `not_allowed`, `too_long`, ….
    pub code: &'static str,
    /// What is wrong, in words.
    pub message: String,
    /// How to fix it, when there is more to say than the message.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self { field: field.into(), code, message: message.into(), hint: None }
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DomainError {
    /// The resource does not exist for this tenant (another tenant's id lands here too).
    #[error("{kind} `{id}` not found")]
    NotFound { kind: &'static str, id: String },
    /// The request clashes with stored state (a taken slug, a reused idempotency key).
    #[error("{message}")]
    Conflict { code: crate::ErrorCode, message: String },
    /// The request is well-formed JSON but breaks the contract; one entry per bad field.
    #[error("invalid request: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
    /// The store or a dependency is unreachable right now; retrying may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state. The message and its cause are for logs, never for API
    /// bodies; the cause keeps its chain so the one log line can show all of it.
    #[error("internal error: {message}")]
    Internal {
        message: String,
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

fn summarize(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl DomainError {
    pub fn not_found(kind: &'static str, id: impl std::fmt::Display) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }

    /// An internal error with no underlying cause.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::Internal { message: message.into(), source: None }
    }

    /// An internal error caused by `source`, kept with its chain.
    pub fn internal_from(message: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self::Internal { message: message.into(), source: Some(Box::new(source)) }
    }

    /// A clash with stored state, under one of the documented codes.
    pub fn conflict(code: crate::ErrorCode, message: impl Into<String>) -> Self {
        Self::Conflict { code, message: message.into() }
    }

    pub fn invalid(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, code, message)])
    }
}

/// `error` and every cause under it, joined by `: ` (what the one log line of a failure shows).
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut next = error.source();
    while let Some(cause) = next {
        let text = cause.to_string();
        if !out.ends_with(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        next = cause.source();
    }
    out
}

pub type DomainResult<T> = Result<T, DomainError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_its_cause_chain() {
        let cause = std::io::Error::other("connection refused");
        let err = DomainError::internal_from("database error", cause);
        assert_eq!(chain(&err), "internal error: database error: connection refused");
        assert_eq!(chain(&DomainError::internal("plain")), "internal error: plain");
    }
}
