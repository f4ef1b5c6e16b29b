//! The closed set of error codes Switchboard answers with. Each is public API: a client matches on
//! it, the README's error table and the OpenAPI document's `code` enum are generated from
//! [`ErrorCode::ALL`], and a code is never renamed or reused for another meaning. What each one
//! means on the wire (its status, title, hint, `Retry-After`, challenge) is the API's spec table
//! (`switchboard_api::error::spec`), so this crate stays free of HTTP.

use serde::{Deserialize, Serialize};

macro_rules! error_codes {
    ($($(#[doc = $doc:literal])* $variant:ident => $wire:literal,)*) => {
        /// A stable, documented snake_case error code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum ErrorCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl ErrorCode {
            /// Every code, in the order the README lists them.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            /// The code as it appears in a problem document.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $wire,)*
                }
            }
        }
    };
}

error_codes! {
    /// The body is not valid JSON (or not the JSON the operation takes).
    InvalidJson => "invalid_json",
    /// The body is not `application/json`.
    UnsupportedMediaType => "unsupported_media_type",
    /// The body is larger than the operation accepts.
    BodyTooLarge => "body_too_large",
    /// The body could not be read at all.
    InvalidBody => "invalid_body",
    /// The query string could not be read.
    InvalidQuery => "invalid_query",
    /// The `Idempotency-Key` header is not 1 to 255 visible ASCII characters.
    InvalidIdempotencyKey => "invalid_idempotency_key",
    /// No credential, or not a valid one.
    Unauthorized => "unauthorized",
    /// The session ticket is malformed or not signed by this tenant.
    InvalidTicket => "invalid_ticket",
    /// The session ticket has expired.
    TicketExpired => "ticket_expired",
    /// The session ticket has been revoked.
    TicketRevoked => "ticket_revoked",
    /// The session ticket does not cover this agent, server or operation.
    TicketScope => "ticket_scope",
    /// The session ticket is too large, too deep or too costly to evaluate.
    TicketTooComplex => "ticket_too_complex",
    /// A credential for the other plane (a tenant key on an admin route, or the reverse).
    WrongCredential => "wrong_credential",
    /// The admin API is off (no `SWITCHBOARD_ADMIN_TOKEN`).
    AdminApiDisabled => "admin_api_disabled",
    /// No such resource for this tenant, or no such route.
    NotFound => "not_found",
    /// A documented path asked with a method it does not answer.
    MethodNotAllowed => "method_not_allowed",
    /// The slug is taken in this tenant.
    SlugTaken => "slug_taken",
    /// The slug names gateway routes that users are connected through; it cannot change now.
    SlugInUse => "slug_in_use",
    /// A resource with these values already exists.
    Conflict => "conflict",
    /// A request with this `Idempotency-Key` is still running.
    IdempotencyKeyInProgress => "idempotency_key_in_progress",
    /// The tenant is being deleted.
    TenantDeleted => "tenant_deleted",
    /// The server was edited while it was being rediscovered.
    ServerChanged => "server_changed",
    /// The server lacks what a user consent needs (`auth_url`, `token_url`, `client_id`).
    ServerNotReady => "server_not_ready",
    /// The grant needs the user to consent again.
    ReauthRequired => "reauth_required",
    /// The grant holds no token.
    NotConnected => "not_connected",
    /// The request breaks the contract; `errors[]` names each field.
    ValidationFailed => "validation_failed",
    /// The `Idempotency-Key` was used before with a different request.
    IdempotencyKeyReused => "idempotency_key_reused",
    /// A bug: nothing more is said, the log has the cause under the request id.
    Internal => "internal",
    /// A dependency (the database) is unreachable right now.
    Unavailable => "unavailable",
    /// The request ran past its deadline.
    RequestTimeout => "request_timeout",
    /// The access token expired and its provider cannot be reached to refresh it.
    TokenUnavailable => "token_unavailable",
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_wire_name_and_names_are_unique() {
        let mut seen = std::collections::HashSet::new();
        for code in ErrorCode::ALL {
            assert_eq!(serde_json::to_value(code).ok(), Some(serde_json::Value::from(code.as_str())));
            assert!(seen.insert(code.as_str()), "{code} is listed twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code} is not snake_case");
        }
    }
}
