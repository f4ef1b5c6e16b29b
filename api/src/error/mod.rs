//! The API's one error type and its RFC 9457 `application/problem+json` rendering.
//!
//! Every failure a client can see goes through [`ApiError`]: one `match` names its
//! [`ErrorCode`], and the code's row in the [`spec`] table gives the status, title, default hint
//! and headers. 5xx bodies carry no internals; the cause is logged once, here, with its chain.

pub mod spec;

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use switchboard_domain::{DomainError, ErrorCode, FieldError};

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
    pub code: ErrorCode,
    /// How to fix it, when there is something to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
    /// One entry per invalid field (validation errors only).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// `reauth_required` only: where to send the user to consent again.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_url: Option<String>,
    /// The finding this error is, with its evidence (`ticket_scope`: which check of which
    /// block failed, and what the ticket covers).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finding: Option<switchboard_domain::finding::Finding>,
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
    BadRequest { code: ErrorCode, detail: String, hint: Option<String> },
    /// A session ticket that is not valid, or does not cover the request.
    #[error(transparent)]
    Ticket(#[from] switchboard_domain::ticket::TicketError),
    /// A ticket that does not cover the request, explained (`ticket_scope`).
    #[error("{}", .0.detail)]
    TicketScope(Box<switchboard_domain::finding::Finding>),
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
    TokenUnavailable { message: String },
    /// The request ran past its deadline (`SWITCHBOARD_REQUEST_TIMEOUT_SECS`), most likely
    /// waiting on a database that does not answer.
    #[error("the request did not finish within {0} s")]
    Timeout(u64),
    /// The path exists, the method does not (`allow` lists those that do, for the `Allow` header).
    #[error("{method} is not allowed on {path}")]
    MethodNotAllowed { method: String, path: String, allow: String },
}

impl ApiError {
    /// The one match from error to code; everything else about the answer is the code's row.
    #[must_use]
    pub fn code(&self) -> ErrorCode {
        use DomainError as D;
        use switchboard_domain::ticket::TicketError as T;
        match self {
            Self::Domain(D::NotFound { .. }) => ErrorCode::NotFound,
            Self::Domain(D::Conflict { code, .. }) => *code,
            Self::Domain(D::Invalid(_)) => ErrorCode::ValidationFailed,
            Self::Domain(D::Unavailable(_)) => ErrorCode::Unavailable,
            Self::Domain(D::Internal { .. }) | Self::Ticket(T::Internal) => ErrorCode::Internal,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::WrongCredential { .. } => ErrorCode::WrongCredential,
            Self::AdminDisabled => ErrorCode::AdminApiDisabled,
            Self::BadRequest { code, .. } => *code,
            Self::Ticket(T::Malformed | T::BadSignature | T::TooDeep { .. }) => ErrorCode::InvalidTicket,
            Self::Ticket(T::TooComplex(_)) => ErrorCode::TicketTooComplex,
            Self::Ticket(T::Argument(_)) => ErrorCode::TicketScope,
            Self::Ticket(T::Expired) => ErrorCode::TicketExpired,
            Self::Ticket(T::Revoked) => ErrorCode::TicketRevoked,
            Self::Ticket(T::Scope) | Self::TicketScope(_) => ErrorCode::TicketScope,
            Self::IdempotencyMismatch => ErrorCode::IdempotencyKeyReused,
            Self::IdempotencyInProgress => ErrorCode::IdempotencyKeyInProgress,
            Self::ReauthRequired { .. } => ErrorCode::ReauthRequired,
            Self::NotConnected(_) => ErrorCode::NotConnected,
            Self::TokenUnavailable { .. } => ErrorCode::TokenUnavailable,
            Self::Timeout(_) => ErrorCode::RequestTimeout,
            Self::MethodNotAllowed { .. } => ErrorCode::MethodNotAllowed,
        }
    }

    /// What this error says beyond its code's row: a more precise hint, its own `Retry-After`.
    fn hint(&self) -> Option<String> {
        match self {
            Self::Domain(DomainError::Invalid(errors)) => match errors.as_slice() {
                [only] => only.hint.clone(),
                _ => None,
            },
            Self::WrongCredential { hint, .. } => Some((*hint).into()),
            Self::BadRequest { hint: Some(hint), .. } => Some(hint.clone()),
            Self::ReauthRequired { auth_url: Some(_) } => {
                Some("send the user's browser to auth_url; the grant works again after the consent callback".into())
            }
            Self::MethodNotAllowed { allow, .. } => Some(format!("use {allow}")),
            Self::TicketScope(f) => Some(f.fix.clone()),
            _ => spec::spec(self.code()).hint.map(str::to_owned),
        }
    }

    fn detail(&self) -> String {
        match self {
            Self::Domain(DomainError::Invalid(errors)) => match errors.as_slice() {
                [only] => only.message.clone(),
                _ => format!(
                    "{} fields are invalid: {}",
                    errors.len(),
                    errors.iter().map(|e| e.field.as_str()).collect::<Vec<_>>().join(", ")
                ),
            },
            // Never echo internals: the cause is in the log, under the request id.
            _ if self.code() == ErrorCode::Internal => {
                "something went wrong on our side; the request id in X-Request-Id finds it in the logs".into()
            }
            Self::Domain(DomainError::Unavailable(_)) => "a dependency is unavailable; retry shortly".into(),
            Self::AdminDisabled => "the admin API is disabled on this deployment".into(),
            _ => self.to_string(),
        }
    }

    /// The problem document for this error.
    #[must_use]
    pub fn problem(&self) -> Problem {
        let code = self.code();
        let row = spec::spec(code);
        Problem {
            kind: format!("urn:switchboard:problem:{code}"),
            title: row.title,
            status: row.status.as_u16(),
            detail: self.detail(),
            code,
            hint: self.hint(),
            errors: match self {
                Self::Domain(DomainError::Invalid(errors)) => errors.clone(),
                _ => vec![],
            },
            auth_url: match self {
                Self::ReauthRequired { auth_url } => auth_url.clone(),
                _ => None,
            },
            finding: match self {
                Self::TicketScope(f) => Some((**f).clone()),
                _ => None,
            },
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        spec::spec(self.code()).status
    }

    fn error_response(&self) -> HttpResponse {
        let row = spec::spec(self.code());
        // The one log line of a failure on our side, with every cause under it.
        if row.status.is_server_error() {
            tracing::error!(code = %self.code(), error = %switchboard_domain::error::chain(self), "request failed");
        }
        let mut res = HttpResponse::build(row.status);
        res.insert_header((header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json")));
        if row.challenge {
            res.insert_header((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer realm=\"switchboard\"")));
        }
        if let Some(secs) = row.retry_after {
            res.insert_header((header::RETRY_AFTER, secs.to_string()));
        }
        if let Self::MethodNotAllowed { allow, .. } = self
            && let Ok(v) = HeaderValue::from_str(allow)
        {
            res.insert_header((header::ALLOW, v));
        }
        res.body(serde_json::to_vec(&self.problem()).unwrap_or_default())
    }
}

/// Renders actix's JSON body rejections as problems naming what failed.
pub fn json_error(err: actix_web::error::JsonPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    use actix_web::error::JsonPayloadError as J;
    let (code, detail, hint) = match &err {
        J::ContentType => (
            ErrorCode::UnsupportedMediaType,
            "the body must be JSON".to_owned(),
            Some("send `Content-Type: application/json`".to_owned()),
        ),
        J::OverflowKnownLength { limit, .. } | J::Overflow { limit } => {
            (ErrorCode::BodyTooLarge, format!("the body is larger than {limit} bytes"), None)
        }
        J::Deserialize(e) => (ErrorCode::InvalidJson, format!("the body is not valid JSON: {e}"), None),
        other => (ErrorCode::InvalidBody, format!("the body could not be read: {other}"), None),
    };
    ApiError::BadRequest { code, detail, hint }.into()
}

/// Renders query-string rejections as problems.
pub fn query_error(err: actix_web::error::QueryPayloadError, _req: &actix_web::HttpRequest) -> actix_web::Error {
    ApiError::BadRequest {
        code: ErrorCode::InvalidQuery,
        detail: format!("the query string is invalid: {err}"),
        hint: None,
    }
    .into()
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// A writer that keeps what the subscriber wrote.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().map_err(|_| std::io::Error::other("poisoned"))?.extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_5xx_is_logged_once_with_its_cause_chain_and_the_body_says_nothing_of_it() {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt().with_ansi(false).with_writer(move || writer.clone()).finish();
        let cause = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "connection reset by peer");
        let err = ApiError::from(DomainError::internal_from("database error", cause));
        let res = tracing::subscriber::with_default(subscriber, || err.error_response());
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let log = String::from_utf8(captured.0.lock().map(|b| b.clone()).unwrap_or_default()).unwrap_or_default();
        assert_eq!(log.lines().count(), 1, "{log}");
        assert!(log.contains("internal error: database error: connection reset by peer"), "{log}");
        assert!(!err.problem().detail.contains("reset"), "the body leaks the cause");
    }

    #[test]
    fn every_code_renders_with_its_rows_status_and_title() {
        let errors = [
            ApiError::Unauthorized("no"),
            ApiError::from(switchboard_domain::ticket::TicketError::Scope),
            ApiError::from(DomainError::Unavailable("down".into())),
            ApiError::TokenUnavailable { message: "down".into() },
        ];
        for err in errors {
            let res = err.error_response();
            let row = spec::spec(err.code());
            assert_eq!(res.status(), row.status);
            assert_eq!(err.problem().title, row.title);
            assert_eq!(res.headers().contains_key(header::WWW_AUTHENTICATE), row.challenge);
        }
        let res = ApiError::TokenUnavailable { message: "down".into() }.error_response();
        assert_eq!(res.headers().get(header::RETRY_AFTER).and_then(|v| v.to_str().ok()), Some("5"));
    }
}
