//! The API's one error type and its RFC 9457 `application/problem+json` rendering.
//!
//! Every failure a client can see goes through [`ApiError`]: one `match` maps it to a status, a
//! stable `code` and a title. 5xx bodies carry no internals; the cause is logged once, here.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use switchboard_domain::{DomainError, FieldError};

/// The problem document (RFC 9457) every error response carries.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Problem {
    /// `urn:switchboard:problem:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: &'static str,
    pub status: u16,
    /// What went wrong, in words.
    pub detail: String,
    /// Stable snake_case error code; see the README's error table.
    pub code: &'static str,
    /// How to fix it, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// One entry per invalid field (validation errors only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// `reauth_required` only: where to send the user to consent again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Domain(#[from] DomainError),
    /// No credential, or one that is not valid.
    #[error("{0}")]
    Unauthorized(&'static str),
    /// A valid credential for the wrong plane (a tenant key on an admin route, or the reverse).
    #[error("{detail}")]
    WrongCredential { detail: &'static str, hint: &'static str },
    #[error("the admin API is disabled")]
    AdminDisabled,
    /// The body, path or query could not be read at all (not JSON, wrong content type, too big).
    #[error("{detail}")]
    BadRequest { code: &'static str, detail: String, hint: Option<String> },
    /// A session ticket that is not valid, or does not cover the request.
    #[error(transparent)]
    Ticket(#[from] switchboard_domain::ticket::TicketError),
    #[error("this Idempotency-Key was already used with a different request")]
    IdempotencyMismatch,
    #[error("a request with this Idempotency-Key is still being processed")]
    IdempotencyInProgress,
    /// The grant was refused by its provider (or needs more scope): the user must consent again.
    #[error("this connection needs the user to consent again")]
    ReauthRequired { auth_url: Option<String> },
    /// The grant holds no token (never connected, revoked, or a server that needs none).
    #[error("{0}")]
    NotConnected(String),
    /// The access token expired and the provider cannot be reached to refresh it right now.
    #[error("the access token expired and could not be refreshed: {message}")]
    TokenUnavailable { message: String, retry_after: u64 },
    /// The request ran past its deadline (`SWITCHBOARD_REQUEST_TIMEOUT_SECS`), most likely
    /// waiting on a database that does not answer.
    #[error("the request did not finish within {0} s")]
    Timeout(u64),
    /// The path exists, the method does not (`allow` lists those that do, for the `Allow` header).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String, allow: String },
}

impl ApiError {
    fn parts(&self) -> (StatusCode, &'static str, &'static str) {
        use DomainError as D;
        match self {
            Self::Domain(D::NotFound { .. }) => (StatusCode::NOT_FOUND, "not_found", "Not Found"),
            Self::Domain(D::Conflict { code, .. }) => (StatusCode::CONFLICT, code, "Conflict"),
            Self::Domain(D::Invalid(_)) => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed", "Validation Failed"),
            Self::Domain(D::Unavailable(_)) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable", "Service Unavailable"),
            Self::Domain(D::Internal(_)) => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error"),
            Self::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized", "Unauthorized"),
            Self::WrongCredential { .. } => (StatusCode::FORBIDDEN, "wrong_credential", "Forbidden"),
            Self::AdminDisabled => (StatusCode::FORBIDDEN, "admin_api_disabled", "Forbidden"),
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code, "Bad Request"),
            Self::Ticket(t) => {
                use switchboard_domain::ticket::TicketError as T;
                match t {
                    T::Malformed | T::BadSignature => (StatusCode::UNAUTHORIZED, "invalid_ticket", "Unauthorized"),
                    T::Expired => (StatusCode::UNAUTHORIZED, "ticket_expired", "Unauthorized"),
                    T::Revoked => (StatusCode::UNAUTHORIZED, "ticket_revoked", "Unauthorized"),
                    T::Scope => (StatusCode::FORBIDDEN, "ticket_scope", "Forbidden"),
                    T::Internal => (StatusCode::INTERNAL_SERVER_ERROR, "internal", "Internal Server Error"),
                }
            }
            Self::IdempotencyMismatch => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused", "Idempotency Key Reused")
            }
            Self::IdempotencyInProgress => (StatusCode::CONFLICT, "idempotency_key_in_progress", "Conflict"),
            Self::ReauthRequired { .. } => (StatusCode::CONFLICT, "reauth_required", "Conflict"),
            Self::NotConnected(_) => (StatusCode::CONFLICT, "not_connected", "Conflict"),
            Self::TokenUnavailable { .. } => {
                (StatusCode::SERVICE_UNAVAILABLE, "token_unavailable", "Service Unavailable")
            }
            Self::Timeout(_) => (StatusCode::SERVICE_UNAVAILABLE, "request_timeout", "Service Unavailable"),
            Self::MethodNotAllowed { .. } => {
                (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "Method Not Allowed")
            }
        }
    }

    /// The problem document for this error.
    #[must_use]
    pub fn problem(&self) -> Problem {
        let (status, code, title) = self.parts();
        let (detail, hint, errors) = match self {
            Self::Domain(DomainError::Invalid(errors)) => {
                let detail = if let [only] = errors.as_slice() {
                    only.message.clone()
                } else {
                    format!(
                        "{} fields are invalid: {}",
                        errors.len(),
                        errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>().join(", ")
                    )
                };
                let hint = if let [only] = errors.as_slice() { only.hint.clone() } else { None };
                (detail, hint, errors.clone())
            }
            // Never echo internals: the cause is in the log, under the request id.
            Self::Domain(DomainError::Internal(_)) => (
                "something went wrong on our side; the request id in X-Request-Id finds it in the logs".into(),
                None,
                vec![],
            ),
            Self::Domain(DomainError::Unavailable(_)) => (
                "a dependency is unavailable; retry shortly".into(),
                Some("retry after Retry-After seconds, with the same Idempotency-Key for a create".into()),
                vec![],
            ),
            Self::Unauthorized(_) => (self.to_string(), Some("send `Authorization: Bearer <key>`".into()), vec![]),
            Self::WrongCredential { hint, .. } => (self.to_string(), Some((*hint).into()), vec![]),
            Self::AdminDisabled => (
                "the admin API is disabled on this deployment".into(),
                Some("set SWITCHBOARD_ADMIN_TOKEN, or use `switchboard admin` on the server".into()),
                vec![],
            ),
            Self::BadRequest { detail, hint, .. } => (detail.clone(), hint.clone(), vec![]),
            Self::Ticket(switchboard_domain::ticket::TicketError::Scope) => (
                self.to_string(),
                Some("mint a ticket whose agent_ids include this agent (POST /v1/session-tickets), or check the blocks appended to it".into()),
                vec![],
            ),
            Self::Ticket(switchboard_domain::ticket::TicketError::Internal) => {
                ("something went wrong on our side; the request id in X-Request-Id finds it in the logs".into(), None, vec![])
            }
            Self::Ticket(_) => (self.to_string(), Some("mint a new ticket with POST /v1/session-tickets".into()), vec![]),
            Self::IdempotencyMismatch => {
                (self.to_string(), Some("use a new Idempotency-Key for a different request".into()), vec![])
            }
            Self::IdempotencyInProgress => {
                (self.to_string(), Some("retry after the first request finishes".into()), vec![])
            }
            Self::ReauthRequired { auth_url } => (
                self.to_string(),
                Some(match auth_url {
                    Some(_) => "send the user's browser to auth_url; the grant works again after the consent callback".into(),
                    None => "start a new consent with the runtime connect call".into(),
                }),
                vec![],
            ),
            Self::NotConnected(_) => {
                (self.to_string(), Some("the user connects first (runtime connect, then consent)".into()), vec![])
            }
            Self::TokenUnavailable { .. } => {
                (self.to_string(), Some("retry after Retry-After seconds; the grant itself is kept".into()), vec![])
            }
            Self::Timeout(_) => (
                self.to_string(),
                Some("retry after Retry-After seconds, with the same Idempotency-Key: the request may or may not have taken effect".into()),
                vec![],
            ),
            Self::MethodNotAllowed { allow, .. } => (self.to_string(), Some(format!("use {allow}")), vec![]),
            Self::Domain(_) => (self.to_string(), None, vec![]),
        };
        Problem {
            kind: format!("urn:switchboard:problem:{code}"),
            title,
            status: status.as_u16(),
            detail,
            code,
            hint,
            errors,
            auth_url: match self {
                Self::ReauthRequired { auth_url } => auth_url.clone(),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.parts().0
    }

    fn error_response(&self) -> HttpResponse {
        let problem = self.problem();
        if problem.status >= 500 {
            tracing::error!(error = %self, "request failed");
        }
        let mut res = HttpResponse::build(self.status_code());
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if matches!(self, Self::Unauthorized(_))
            || (self.status_code() == StatusCode::UNAUTHORIZED && matches!(self, Self::Ticket(_)))
        {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"switchboard\"")));
        }
        match self {
            Self::TokenUnavailable { retry_after, .. } => {
                res.insert_header((header::RETRY_AFTER, retry_after.to_string()));
            }
            // A database restart or a full pool usually passes within seconds.
            Self::Domain(DomainError::Unavailable(_)) | Self::Timeout(_) => {
                res.insert_header((header::RETRY_AFTER, HeaderValue::from_static("2")));
            }
            Self::MethodNotAllowed { allow, .. } => {
                if let Ok(v) = HeaderValue::from_str(allow) {
                    res.insert_header((header::ALLOW, v));
                }
            }
            _ => {}
        }
        res.body(serde_json::to_vec(&problem).unwrap_or_default())
    }
}

/// Renders actix's JSON body rejections as problems naming what failed.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let (code, detail, hint) = match &err {
        J::ContentType => (
            "unsupported_media_type",
            "the body must be JSON".to_owned(),
            Some("send `Content-Type: application/json`".to_owned()),
        ),
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            ("body_too_large", format!("the body is larger than {limit} bytes"), None)
        }
        J::Deserialize(e) => ("invalid_json", format!("the body is not valid JSON: {e}"), None),
        other => ("invalid_body", format!("the body could not be read: {other}"), None),
    };
    ApiError::BadRequest { code, detail, hint }.into()
}

/// Renders query-string rejections as problems.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::BadRequest { code: "invalid_query", detail: format!("the query string is invalid: {err}"), hint: None }
        .into()
}
