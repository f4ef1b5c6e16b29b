//! The spec table: what each [`ErrorCode`] means on the wire. One row per code, read by the
//! problem renderer (status, title, default hint), by the response headers (`Retry-After`,
//! `WWW-Authenticate`) and by the README's error table, which [`readme_table`] renders and a test
//! holds the README to — so the code, the responses and the documentation cannot drift apart.

use actix_web::http::StatusCode;
use switchboard_domain::ErrorCode;

/// What one error code means on the wire.
#[derive(Clone, Copy, Debug)]
pub struct ErrorSpec {
    pub status: StatusCode,
    /// The problem's `title`.
    pub title: &'static str,
    /// When it is answered, in the README's words.
    pub when: &'static str,
    /// What to do, when there is something general to say (an error may say something more
    /// precise instead).
    pub hint: Option<&'static str>,
    /// `Retry-After` seconds, for the codes whose fix is to wait (an error that knows better —
    /// a provider's own `Retry-After` — sends its own).
    pub retry_after: Option<u32>,
    /// Whether the answer carries `WWW-Authenticate: Bearer realm="switchboard"`.
    pub challenge: bool,
}

const fn row(status: StatusCode, title: &'static str, when: &'static str) -> ErrorSpec {
    ErrorSpec { status, title, when, hint: None, retry_after: None, challenge: false }
}

const fn hinted(status: StatusCode, title: &'static str, when: &'static str, hint: &'static str) -> ErrorSpec {
    ErrorSpec { status, title, when, hint: Some(hint), retry_after: None, challenge: false }
}

/// A 401: answered with `WWW-Authenticate`.
const fn challenged(when: &'static str, hint: &'static str) -> ErrorSpec {
    ErrorSpec { challenge: true, ..hinted(StatusCode::UNAUTHORIZED, "Unauthorized", when, hint) }
}

const RETRY_HINT: &str = "retry after Retry-After seconds, with the same Idempotency-Key for a create";
const NEW_TICKET: &str = "mint a new ticket with POST /v1/session-tickets";

/// The row of `code`.
#[must_use]
pub const fn spec(code: ErrorCode) -> ErrorSpec {
    use ErrorCode as C;
    use StatusCode as S;
    let bad = "Bad Request";
    match code {
        C::InvalidJson => row(S::BAD_REQUEST, bad, "the body is not valid JSON"),
        C::UnsupportedMediaType => {
            hinted(S::BAD_REQUEST, bad, "the body is not JSON", "send `Content-Type: application/json`")
        }
        C::BodyTooLarge => row(S::BAD_REQUEST, bad, "the body is larger than the operation accepts"),
        C::InvalidBody => row(S::BAD_REQUEST, bad, "the body could not be read at all"),
        C::InvalidQuery => row(S::BAD_REQUEST, bad, "the query string could not be read"),
        C::InvalidIdempotencyKey => hinted(
            S::BAD_REQUEST,
            bad,
            "the `Idempotency-Key` header is not 1-255 visible ASCII characters",
            "use a UUID per logical operation",
        ),
        C::Unauthorized => challenged("no credential, or not a valid one", "send `Authorization: Bearer <key>`"),
        C::InvalidTicket => challenged("the session ticket is malformed or not signed by this tenant", NEW_TICKET),
        C::TicketExpired => challenged("the session ticket has expired", NEW_TICKET),
        C::TicketRevoked => challenged("the session ticket has been revoked", NEW_TICKET),
        C::TicketScope => hinted(
            S::FORBIDDEN,
            "Forbidden",
            "the session ticket does not cover this agent, server or operation",
            "mint a ticket whose agent_ids include this agent (POST /v1/session-tickets), or check the blocks appended to it",
        ),
        C::TicketTooComplex => challenged(
            "the session ticket is too large, attenuated too deeply, or too costly to evaluate (the detail says which)",
            "narrow the ticket with fewer blocks (checks only: at most 16 per block, 8 alternatives per check), or mint a new one",
        ),
        C::WrongCredential => {
            row(S::FORBIDDEN, "Forbidden", "a tenant key on an admin route, or the admin token on a tenant route")
        }
        C::AdminApiDisabled => hinted(
            S::FORBIDDEN,
            "Forbidden",
            "`SWITCHBOARD_ADMIN_TOKEN` is not set",
            "set SWITCHBOARD_ADMIN_TOKEN, or use `switchboard admin` on the server",
        ),
        C::NotFound => row(
            S::NOT_FOUND,
            "Not Found",
            "no such resource for this tenant (or no such route; an agent a ticket names that the tenant does not have)",
        ),
        C::MethodNotAllowed => row(
            S::METHOD_NOT_ALLOWED,
            "Method Not Allowed",
            "a documented path asked with a method it does not answer (`TRACE /v1/agents`); `Allow` lists those it does",
        ),
        C::SlugTaken => row(S::CONFLICT, "Conflict", "the slug is taken in this tenant"),
        C::SlugInUse => hinted(
            S::CONFLICT,
            "Conflict",
            "changing the slug of a server or agent whose gateway routes users are connected through",
            "publish a new server beside this one under the new slug (`linear-v2` beside `linear-v1`), move users over, retire the old one; or revoke its connections first",
        ),
        C::Conflict => row(S::CONFLICT, "Conflict", "a resource with these values already exists"),
        C::IdempotencyKeyInProgress => hinted(
            S::CONFLICT,
            "Conflict",
            "a request with this `Idempotency-Key` is still running",
            "retry after the first request finishes",
        ),
        C::TenantDeleted => row(S::CONFLICT, "Conflict", "a new API key for a tenant being deleted"),
        C::ServerChanged => row(S::CONFLICT, "Conflict", "`rediscover` while the server was edited; run it again"),
        C::ServerNotReady => row(
            S::CONFLICT,
            "Conflict",
            "a connect to a server that lacks `auth_url`, `token_url` or `client_id` (run `rediscover` or set them)",
        ),
        C::ReauthRequired => hinted(
            S::CONFLICT,
            "Conflict",
            "the access-token call for a grant that needs a new consent (the body carries `auth_url`)",
            "start a new consent with the runtime connect call",
        ),
        C::NotConnected => hinted(
            S::CONFLICT,
            "Conflict",
            "the access-token call for a grant that holds no token",
            "the user connects first (runtime connect, then consent)",
        ),
        C::ValidationFailed => row(
            S::UNPROCESSABLE_ENTITY,
            "Validation Failed",
            "the request breaks the contract; `errors[]` names each field, with its own code",
        ),
        C::IdempotencyKeyReused => hinted(
            S::UNPROCESSABLE_ENTITY,
            "Idempotency Key Reused",
            "the `Idempotency-Key` was used before with a different request",
            "use a new Idempotency-Key for a different request",
        ),
        C::Internal => row(
            S::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "a bug; the body says nothing more, the log has the cause under the request id (a handler that panicked answers this too: the panic is logged once with its backtrace and counted in `switchboard_panics_total`)",
        ),
        // A database restart or a full pool usually passes within seconds.
        C::Unavailable => ErrorSpec {
            retry_after: Some(2),
            ..hinted(
                S::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "the database is unreachable, restarting or out of connections; retry (with the same `Idempotency-Key`: a write cut off at its commit may have landed)",
                RETRY_HINT,
            )
        },
        C::RequestTimeout => ErrorSpec {
            retry_after: Some(2),
            ..hinted(
                S::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "the request ran past `SWITCHBOARD_REQUEST_TIMEOUT_SECS` (a database that stopped answering); it may or may not have taken effect: retry with the same `Idempotency-Key`",
                "retry after Retry-After seconds, with the same Idempotency-Key: the request may or may not have taken effect",
            )
        },
        C::TokenUnavailable => ErrorSpec {
            retry_after: Some(5),
            ..hinted(
                S::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "the access token expired and its provider cannot be reached right now",
                "retry after Retry-After seconds; the grant itself is kept",
            )
        },
    }
}

/// The README's error table, one row per code, as the code defines it.
#[must_use]
pub fn readme_table() -> String {
    let mut out = String::from("| status | `code` | headers | when |\n|---|---|---|---|\n");
    for &code in ErrorCode::ALL {
        let s = spec(code);
        let mut headers = Vec::new();
        if s.challenge {
            headers.push("`WWW-Authenticate`");
        }
        if s.retry_after.is_some() {
            headers.push("`Retry-After`");
        }
        out.push_str(&format!("| {} | `{code}` | {} | {} |\n", s.status.as_u16(), headers.join(", "), s.when));
    }
    out
}

/// Where the README keeps the generated table: between these two lines.
pub const README_START: &str = "<!-- error-table:start (generated from api/src/error/spec.rs; `cargo run -p switchboard-openapi` rewrites it) -->\n";
pub const README_END: &str = "<!-- error-table:end -->";

/// `readme` with its error table replaced by the current one; `None` when the markers are missing.
#[must_use]
pub fn with_readme_table(readme: &str) -> Option<String> {
    switchboard_domain::finding::replace_between(readme, README_START, README_END, &readme_table())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_error_table_is_the_spec_table() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap_or_default();
        assert_eq!(
            with_readme_table(&readme).as_deref(),
            Some(readme.as_str()),
            "the README's error table is out of date; run `cargo run -p switchboard-openapi` and commit the result"
        );
    }

    #[test]
    fn every_status_is_an_error_and_only_401s_challenge() {
        for &code in ErrorCode::ALL {
            let s = spec(code);
            assert!(s.status.is_client_error() || s.status.is_server_error(), "{code}");
            assert_eq!(s.challenge, s.status == StatusCode::UNAUTHORIZED, "{code}");
            assert!(s.retry_after.is_none() || s.status == StatusCode::SERVICE_UNAVAILABLE, "{code}");
        }
    }
}
