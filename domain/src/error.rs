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
    Conflict { code: &'static str, message: String },
    /// The request is well-formed JSON but breaks the contract; one entry per bad field.
    #[error("invalid request: {}", summarize(.0))]
    Invalid(Vec<FieldError>),
    /// The store or a dependency is unreachable right now; retrying may succeed.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected state. The message is for logs, never for API bodies.
    #[error("internal error: {0}")]
    Internal(String),
}

fn summarize(errors: &[FieldError]) -> String {
    errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ")
}

impl DomainError {
    pub fn not_found(kind: &'static str, id: impl std::fmt::Display) -> Self {
        Self::NotFound { kind, id: id.to_string() }
    }

    pub fn invalid(field: impl Into<String>, code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid(vec![FieldError::new(field, code, message)])
    }
}

pub type DomainResult<T> = Result<T, DomainError>;
