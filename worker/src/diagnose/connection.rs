//! One user's connection through one agent: what its grant row says, and what a live check with
//! its credentials showed.

use serde_json::json;
use switchboard_domain::connection::{Connection, ConnectionStatus as S, GrantKey, LastError};
use switchboard_domain::finding::{Finding, FindingCode as C, Severity};
use switchboard_domain::mcp_server::{AuthType, McpServer};

use super::server::verification_findings;
use crate::consent::CheckOutcome;

/// The agent is not attached to the server, so no user can connect it through that agent.
#[must_use]
pub fn not_attached(key: &GrantKey) -> Finding {
    Finding::new(C::NotAttached, format!("agent {} is not attached to mcp server {}", key.agent_id, key.mcp_server_id))
        .with("agent_id", key.agent_id.to_string())
        .with("mcp_server_id", key.mcp_server_id.to_string())
        .fix(format!("Attach it: `PUT /v1/agents/{}/mcp-servers/{} {{}}`.", key.agent_id, key.mcp_server_id))
}

/// The finding a stored `last_error` stands for.
#[must_use]
pub fn from_last_error(e: &LastError, granted: &[String]) -> Finding {
    let base = |code: C, detail: String| {
        Finding::new(code, detail).with("last_error_code", e.code.as_str()).with("at", e.at.to_rfc3339())
    };
    let provider_code = switchboard_domain::finding::provider_code(&e.message);
    let code = e.finding();
    match code {
        C::InsufficientScope => base(code, format!("the MCP server refused the token for lack of scope: {}", e.message))
            .with("wanted", e.required_scopes.clone())
            .with("granted", granted.to_vec())
            .fix("Connect again: the consent asks for the scopes the server named (a step-up); if the server's scopes are configured by hand, add them first: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"scopes\": [...]}}}`."),
        C::NeedsReauth => base(code, format!("the provider refused to refresh the grant: {}", e.message)),
        C::RefreshFailing => base(code, format!("refreshing fails for now: {}", e.message))
            .with("retry_at", json!(e.retry_at.map(|t| t.to_rfc3339()))),
        C::AuthUrlMismatch => base(code, "the authorization response came from another issuer than the server's".into())
            .fix("Run `POST /v1/mcp-servers/{id}/rediscover` and have the user connect again."),
        C::InvalidClient => base(code, format!("the token endpoint refused the client at the code exchange: {}", e.message))
            .with("at", "token_endpoint"),
        C::ResourceMismatch => base(code, format!("the MCP server refuses the token's audience: {}", e.message)),
        C::UpstreamUnauthorized => base(code, format!("the MCP server refused the grant's token: {}", e.message)),
        C::UpstreamUnavailable => base(code, format!("the last check failed: {}", e.message)),
        _ if e.code == "access_denied" => base(code, "the user declined the consent".into())
            .severity(Severity::Info)
            .with("provider_error", "access_denied"),
        _ => base(code, format!("{}: {}", e.code, e.message)).with("provider_error", json!(provider_code)),
    }
}

/// The findings of a connection: its status and last error, then the live check's outcome.
#[must_use]
pub fn findings(server: &McpServer, grant: Option<&Connection>, outcome: &CheckOutcome) -> Vec<Finding> {
    let mut out = Vec::new();
    let granted = grant.map(|g| g.scopes.clone()).unwrap_or_default();
    let user_grant = matches!(
        server.config.auth.kind,
        AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce
    );
    match grant {
        None => out.push(Finding::new(C::NotConnected, "this user has never connected this server through this agent")),
        Some(g) => {
            let evidence = |f: Finding| f.with("status", g.status.as_str()).with("connection_id", g.id.to_string());
            match (g.status, &g.last_error) {
                // A connected grant whose refresh fails for now keeps its token, and says so.
                (S::Connected | S::Refreshing | S::Expired, Some(e)) if e.code == "refresh_failed" => {
                    out.push(evidence(from_last_error(e, &granted)));
                }
                (S::Connected | S::Refreshing, _) => {}
                (S::NotConnected | S::Revoked, _) => out.push(evidence(Finding::new(
                    C::NotConnected,
                    if g.status == S::Revoked {
                        "this user disconnected the server"
                    } else {
                        "this user has not connected the server"
                    },
                ))),
                (S::PendingConsent, _) => out.push(evidence(
                    Finding::new(C::NotConnected, "the user started a consent and has not finished it")
                        .with("pending", true),
                )),
                (_, Some(e)) => out.push(evidence(from_last_error(e, &granted))),
                (S::NeedsReauth, None) => {
                    out.push(evidence(Finding::new(C::NeedsReauth, "the grant needs a new consent")))
                }
                (S::Expired, None) => {
                    out.push(evidence(Finding::new(C::NeedsReauth, "the grant expired and holds no refresh token")))
                }
                (_, None) => {}
            }
            if user_grant && g.status == S::Connected {
                let facts = server.facts();
                if let (Some(pinned), Some(now)) = (&g.issuer, &facts.issuer)
                    && pinned != now
                {
                    out.push(
                        Finding::new(C::AuthUrlMismatch, format!("the grant was issued by `{pinned}`, but the server now names `{now}`"))
                            .with("grant_issuer", pinned.as_str())
                            .with("server_issuer", now.as_str())
                            .fix("Run `POST /v1/mcp-servers/{id}/rediscover` (grants of the old issuer go back to consent), then have the user connect again."),
                    );
                }
                if let (Some(pinned), Some(configured)) = (&g.resource, &server.config.auth.resource)
                    && switchboard_domain::store::normalize_endpoint(pinned)
                        != switchboard_domain::store::normalize_endpoint(configured)
                {
                    out.push(
                        Finding::new(C::ResourceMismatch, format!("the grant's token is for `{pinned}`, but the server is now configured for `{configured}`"))
                            .with("grant_resource", pinned.as_str())
                            .with("configured", configured.as_str())
                            .fix("Have the user connect again, so the token is issued for the configured resource."),
                    );
                }
            }
        }
    }
    if let Some(why) = &outcome.precondition
        && grant.is_some_and(|g| g.status == S::Connected)
    {
        // The server's own credentials failed before the check could start.
        match server.config.auth.kind {
            AuthType::OauthClientCredentials => {
                out.push(super::server::client_credentials_refusal(why, server.config.auth.token_url.as_deref()));
            }
            AuthType::Token => {
                out.push(Finding::new(C::ServerNotReady, why.clone()).with("missing", json!(["auth_token"])))
            }
            _ => {}
        }
    }
    if outcome.precondition.is_none() && outcome.verification.ok {
        // The MCP server answers now: what the grant recorded of an earlier answer is superseded.
        out.retain(|f| {
            !matches!(
                f.code,
                C::UpstreamUnavailable
                    | C::UpstreamTimeout
                    | C::UpstreamInvalid
                    | C::UpstreamUnauthorized
                    | C::InsufficientScope
                    | C::ResourceMismatch
            ) || !f.evidence.contains_key("last_error_code")
        });
    }
    if outcome.precondition.is_none() {
        let scopes = server.config.auth.scopes.clone().unwrap_or_default();
        for f in verification_findings(&outcome.verification, server.config.auth.kind, &scopes, &granted) {
            // The check's own words beat the stored copy of the same failure.
            out.retain(|o| o.code != f.code);
            out.push(f.with("latency_ms", outcome.latency_ms));
        }
    }
    out
}
