//! Troubleshooting as data: every failure Switchboard can see, named with a stable code, a
//! severity, a title and the fix — the one catalogue behind `POST /v1/mcp-servers/{id}/diagnose`,
//! the runtime `check`, the gateway's JSON-RPC errors, audit events and `switchboard doctor`.
//!
//! A [`Finding`] is one occurrence: the catalogue's row plus what this case showed (`detail`,
//! `evidence`) and, where the case knows better than the catalogue (the exact redirect URI to
//! register, the scopes to add), a `fix` of its own. Codes are public API, like error codes: never
//! renamed or reused; the README's list and the OpenAPI enum are generated from [`FindingCode::ALL`].
//!
//! Evidence never holds a secret: [`Finding::with`] replaces the value of any key that names
//! one (`client_secret`, `access_token`, `code_verifier`, …) before it is kept.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// How bad a finding is. `switchboard doctor` exits 0 with only `info`, 1 with a `warning`, 2
/// with an `error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing fails because of it.
    Info,
    /// Something fails for some calls or users, or will fail soon.
    Warning,
    /// Something fails now and needs a change.
    Error,
}

impl Severity {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Error => "error",
        }
    }
}

macro_rules! findings {
    ($($(#[doc = $doc:literal])* $variant:ident => $wire:literal, $severity:ident, $title:literal, $fix:literal;)*) => {
        /// A stable, documented snake_case finding code.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
        #[serde(rename_all = "snake_case")]
        pub enum FindingCode {
            $($(#[doc = $doc])* $variant,)*
        }

        impl FindingCode {
            /// Every code, in the order the README lists them.
            pub const ALL: &[Self] = &[$(Self::$variant,)*];

            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire,)* }
            }

            /// The severity a finding of this code has unless the case says otherwise.
            #[must_use]
            pub const fn severity(self) -> Severity {
                match self { $(Self::$variant => Severity::$severity,)* }
            }

            #[must_use]
            pub const fn title(self) -> &'static str {
                match self { $(Self::$variant => $title,)* }
            }

            /// The catalogue's fix, with a copy-paste example.
            #[must_use]
            pub const fn fix(self) -> &'static str {
                match self { $(Self::$variant => $fix,)* }
            }

            /// The code named by `wire`, if it is one.
            #[must_use]
            pub fn parse(wire: &str) -> Option<Self> {
                match wire { $($wire => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

findings! {
    /// The session ticket does not cover the agent, server, tool or operation asked for.
    TicketScope => "ticket_scope", Error,
        "The session ticket does not cover this request",
        "Mint a ticket that names the agent: `POST /v1/session-tickets {\"user_id\": \"U\", \"agent_ids\": [\"A\"]}`; or narrow it less (`switchboard ticket inspect` shows what each block allows; the evidence names the check that failed and its block).";
    /// The configured auth type is not what the server asks for.
    AuthModeMismatch => "auth_mode_mismatch", Error,
        "The configured auth type is not what the server wants",
        "Switch to the type discovery recommends (evidence: `recommended_auth_mode`): `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"type\": \"oauth_authorization_code_public_pkce\"}}}`.";
    /// The upstream refuses the grant's token for lack of scope.
    InsufficientScope => "insufficient_scope", Error,
        "The grant lacks scopes the server asks for",
        "Add the scopes the server wants (evidence: `wanted`) and have the user connect again, which asks for them: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"scopes\": [\"read\", \"write\"]}}}`, then `POST /v1/runtime/agents/{agent}/mcp-servers/{id}/connect`.";
    /// The configured `resource` is not the protected resource the metadata names, or the
    /// upstream refuses the token's audience.
    ResourceMismatch => "resource_mismatch", Error,
        "Tokens are asked for another resource than the server's",
        "Set `resource` to what the server's protected resource metadata names (evidence: `discovered`), or remove it to let discovery fill it: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"resource\": null}}}`; users connect again afterwards.";
    /// `auth_url` / `token_url` are not those of the authorization server the metadata names,
    /// or its issuer changed.
    AuthUrlMismatch => "auth_url_mismatch", Error,
        "The authorization URLs are not the server's authorization server",
        "Remove the hand-set URLs so discovery fills them from the server's metadata: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"auth_url\": null, \"token_url\": null}}}`, or `POST /v1/mcp-servers/{id}/rediscover` after an issuer change.";
    /// The provider refuses Switchboard's redirect URI.
    RedirectNotRegistered => "redirect_not_registered", Error,
        "The provider does not accept Switchboard's redirect URI",
        "Register the exact redirect URI (evidence: `redirect_uri`) in the OAuth app at the provider, or let Switchboard register its own client by removing `client_id`.";
    /// The provider does not know the client, or refuses its credentials.
    InvalidClient => "invalid_client", Error,
        "The provider does not accept Switchboard's OAuth client",
        "Check `client_id` and `client_secret` against the OAuth app at the provider and set them again: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"client_id\": \"…\", \"client_secret\": \"…\"}}}`; or remove `client_id` to let Switchboard register a client.";
    /// No client, and the provider offers neither Dynamic Client Registration nor Client ID
    /// Metadata Documents.
    NoRegistrationEndpoint => "no_registration_endpoint", Error,
        "No OAuth client, and the provider offers no registration",
        "Create an OAuth app at the provider with Switchboard's redirect URI (evidence: `redirect_uri`) and give its credentials: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"type\": \"oauth_authorization_code_confidential_pkce\", \"client_id\": \"…\", \"client_secret\": \"…\"}}}`.";
    /// The provider refused to refresh: users must consent again.
    NeedsReauth => "needs_reauth", Error,
        "Users must consent again",
        "Send the user through connect again: `POST /v1/runtime/agents/{agent}/mcp-servers/{id}/connect` returns the `auth_url`; the gateway asks for it through the protocol by itself.";
    /// Refreshing fails for now (the provider is down or slow); Switchboard retries.
    RefreshFailing => "refresh_failing", Warning,
        "Refreshing tokens fails for now",
        "Nothing to change if the provider recovers: Switchboard retries at `retry_at`. If it lasts, check the provider's status and `token_url`.";
    /// The user has not connected the server (or disconnected it).
    NotConnected => "not_connected", Info,
        "This user has not connected the server",
        "Have the user connect: `POST /v1/runtime/agents/{agent}/mcp-servers/{id}/connect`.";
    /// The last consent did not complete: the user declined, or the provider refused.
    ConsentFailed => "consent_failed", Warning,
        "The last consent did not complete",
        "Have the user connect again; if the provider refused (evidence: `provider_error`), fix what it names first.";
    /// The server lacks what a user's consent needs.
    ServerNotReady => "server_not_ready", Error,
        "The server is not ready for user consent",
        "Let discovery fill the missing fields (`POST /v1/mcp-servers/{id}/rediscover`) or set them (evidence: `missing`).";
    /// The agent is not attached to the server.
    NotAttached => "not_attached", Error,
        "The agent is not attached to this server",
        "Attach it: `PUT /v1/agents/{agent}/mcp-servers/{id} {}` (with a `tools` allow-list to limit what it may call).";
    /// The MCP server does not answer in time.
    UpstreamTimeout => "upstream_timeout", Error,
        "The MCP server does not answer in time",
        "Check the server's status; a tool that takes long needs `SWITCHBOARD_GATEWAY_CALL_TIMEOUT_SECS` (default 600) and an upstream that sends progress within `SWITCHBOARD_UPSTREAM_TIMEOUT_SECS`.";
    /// The MCP server cannot be reached or answers 5xx.
    UpstreamUnavailable => "upstream_unavailable", Error,
        "The MCP server cannot be reached",
        "Check `config.endpoint` and the server's status (evidence: `status` or `error`).";
    /// The MCP server refuses the credential Switchboard presents.
    UpstreamUnauthorized => "upstream_unauthorized", Error,
        "The MCP server refuses the credential",
        "Set a valid credential: for a `token` server `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"auth_token\": \"…\"}}}`; for OAuth servers have the user connect again.";
    /// The endpoint answers, but not as an MCP server.
    UpstreamInvalid => "upstream_invalid", Error,
        "The endpoint does not answer as an MCP server",
        "Check that `config.endpoint` is the MCP endpoint itself (often ending in `/mcp`), not the product's website or API.";
    /// The endpoint resolves to an address the network policy forbids.
    BlockedByNetworkPolicy => "blocked_by_network_policy", Error,
        "The server's address is blocked by the network policy",
        "Use a public endpoint; loopback and private addresses are reachable only with `SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true` (development only).";
    /// Calls to a tool (prompt, resource) the agent's attachment does not allow.
    ToolNotAllowed => "tool_not_allowed", Warning,
        "Calls to a tool the agent may not use",
        "Allow the tool on the attachment if the agent should use it: `PUT /v1/agents/{agent}/mcp-servers/{id} {\"tools\": [\"search\", \"create_issue\"]}`.";
    /// Calls over an argument cap of a delegated ticket.
    ArgumentLimit => "argument_limit", Warning,
        "Calls over an argument cap of a delegated ticket",
        "The caller narrowed its ticket with a cap (`switchboard ticket inspect` shows it); send arguments within it, or narrow with a higher cap.";
    /// Discovery noticed something that works but deserves attention.
    DiscoveryWarning => "discovery_warning", Info,
        "Discovery noticed something worth a look",
        "Read the warning (evidence: `warning`); `POST /v1/mcp-servers/discover {\"endpoint\": \"…\"}` shows every probe.";
}

impl std::fmt::Display for FindingCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One finding: the catalogue's row for its code plus what this case showed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Finding {
    pub code: FindingCode,
    pub severity: Severity,
    pub title: String,
    /// What was seen, in words.
    pub detail: String,
    /// What it was seen in: URLs, statuses, scopes, counts — never a secret.
    #[schema(value_type = Object)]
    pub evidence: Map<String, Value>,
    /// What to change, with an example.
    pub fix: String,
}

impl Finding {
    #[must_use]
    pub fn new(code: FindingCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            severity: code.severity(),
            title: code.title().to_owned(),
            detail: detail.into(),
            evidence: Map::new(),
            fix: code.fix().to_owned(),
        }
    }

    /// Adds `key: value` to the evidence, with any secret in it replaced.
    #[must_use]
    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        let mut value = value.into();
        if is_secret_key(key) {
            value = Value::String(REDACTED.into());
        } else {
            redact(&mut value);
        }
        self.evidence.insert(key.to_owned(), value);
        self
    }

    /// A fix that knows this case better than the catalogue's.
    #[must_use]
    pub fn fix(mut self, fix: impl Into<String>) -> Self {
        self.fix = fix.into();
        self
    }

    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }
}

/// The provider's RFC 6749 error code at the end of a token-endpoint failure as Switchboard words
/// it ("the token endpoint refused the client credentials (invalid_client)"): the one place that
/// reads it back, for the findings a stored message stands for.
#[must_use]
pub fn provider_code(message: &str) -> Option<&str> {
    let code = message.rsplit_once('(')?.1.strip_suffix(')')?;
    (!code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')).then_some(code)
}

/// The worst severity of `findings` (`None` when there is none).
#[must_use]
pub fn worst(findings: &[Finding]) -> Option<Severity> {
    findings.iter().map(|f| f.severity).max()
}

const REDACTED: &str = "[redacted]";

/// Key names whose values are secrets wherever they appear in evidence.
fn is_secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    matches!(
        k.as_str(),
        "access_token"
            | "refresh_token"
            | "id_token"
            | "auth_token"
            | "client_secret"
            | "registration_access_token"
            | "code"
            | "code_verifier"
            | "password"
            | "authorization"
            | "cookie"
            | "ticket"
            | "secret"
    ) || k.ends_with("_secret")
        || k.ends_with("_password")
}

/// Replaces every secret-named member in `value`, at any depth.
pub fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if is_secret_key(k) {
                    *v = Value::String(REDACTED.into());
                } else {
                    redact(v);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

/// The README's list of findings, one row per code, as the catalogue defines it.
#[must_use]
pub fn readme_table() -> String {
    let mut out = String::from("| `code` | severity | what | fix |\n|---|---|---|---|\n");
    for &code in FindingCode::ALL {
        let fix = code.fix().replace('|', "\\|");
        out.push_str(&format!("| `{code}` | {} | {} | {fix} |\n", code.severity().as_str(), code.title()));
    }
    out
}

/// Where the README keeps the generated list: between these two lines.
pub const README_START: &str = "<!-- findings-table:start (generated from domain/src/finding.rs; `cargo run -p switchboard-openapi` rewrites it) -->\n";
pub const README_END: &str = "<!-- findings-table:end -->";

/// `readme` with its findings list replaced by the current one; `None` when the markers are missing.
#[must_use]
pub fn with_readme_table(readme: &str) -> Option<String> {
    replace_between(readme, README_START, README_END, &readme_table())
}

/// `text` with what stands between the `start` and `end` lines replaced by `body`; `None` when
/// a marker is missing. The README's generated tables (errors, findings) are kept this way.
#[must_use]
pub fn replace_between(text: &str, start: &str, end: &str, body: &str) -> Option<String> {
    let (head, rest) = text.split_once(start)?;
    let (_, tail) = rest.split_once(end)?;
    Some(format!("{head}{start}{body}{end}{tail}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for &code in FindingCode::ALL {
            assert!(seen.insert(code.as_str()), "{code} twice");
            assert!(code.as_str().bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{code}");
            assert_eq!(FindingCode::parse(code.as_str()), Some(code));
            assert_eq!(serde_json::to_value(code).ok(), Some(Value::from(code.as_str())));
            assert!(!code.fix().is_empty() && !code.title().is_empty());
        }
    }

    #[test]
    fn the_provider_code_is_read_from_the_end_of_a_message_only() {
        assert_eq!(
            provider_code("the token endpoint refused the client credentials (invalid_client)"),
            Some("invalid_client")
        );
        assert_eq!(provider_code("the server refused the credentials (401) — invalid_token"), None);
        assert_eq!(provider_code("no parentheses"), None);
    }

    #[test]
    fn evidence_never_keeps_a_secret() {
        let f = Finding::new(FindingCode::InvalidClient, "x")
            .with("client_secret", "s3cr3t")
            .with("request", serde_json::json!({"client_id": "c", "nested": [{"refresh_token": "r"}], "code": "abc"}));
        let text = serde_json::to_string(&f).unwrap_or_default();
        assert!(!text.contains("s3cr3t") && !text.contains("\"r\"") && !text.contains("abc"), "{text}");
        assert!(text.contains("\"client_id\":\"c\""), "{text}");
    }

    #[test]
    fn the_readme_lists_every_finding_as_the_catalogue_defines_it() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap_or_default();
        assert_eq!(
            with_readme_table(&readme).as_deref(),
            Some(readme.as_str()),
            "the README's findings list is out of date; run `cargo run -p switchboard-openapi` and commit the result"
        );
    }
}
