//! A server's configuration against what discovery finds now, and its provider asked whether it
//! accepts Switchboard's client.

use serde_json::json;
use switchboard_discovery::http::FetchError;
use switchboard_discovery::mcp::Verification;
use switchboard_discovery::probe::{self, AuthorizeVerdict, ClientVerdict};
use switchboard_discovery::{DiscoveryResult, Step};
use switchboard_domain::finding::{Finding, FindingCode as C, Severity};
use switchboard_domain::mcp_server::{AuthType, McpServer};
use switchboard_domain::store::normalize_endpoint;
use switchboard_domain::{DomainError, TenantId};
use url::Url;

use crate::client_auth::ClientCredentials;
use crate::runtime::Runtime;

fn is_code_flow(kind: AuthType) -> bool {
    matches!(kind, AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce)
}

/// The finding for a request that got no answer, from the words the guarded client uses.
pub(crate) fn unreachable(what: &str, url: &str, error: &str) -> Finding {
    let code = if error == FetchError::Blocked.to_string() {
        C::BlockedByNetworkPolicy
    } else if error == FetchError::Timeout.to_string() {
        C::UpstreamTimeout
    } else {
        C::UpstreamUnavailable
    };
    Finding::new(code, format!("{what} did not answer: {error}")).with("url", url).with("error", error)
}

/// Compares the stored configuration with `fresh` discovery (and its live check, for servers
/// that need no user).
#[must_use]
pub fn compare(server: &McpServer, fresh: &DiscoveryResult, redirect_uri: &str, cimd: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let auth = &server.config.auth;
    let endpoint = &server.config.endpoint;
    // The guarded client refused to even send the probe (the policy, an http URL).
    if fresh.steps.is_empty()
        && let Some(why) = fresh.message.strip_prefix("the endpoint cannot be probed: ")
    {
        let f = if why == FetchError::Blocked.to_string() || why == FetchError::InsecureUrl.to_string() {
            Finding::new(C::BlockedByNetworkPolicy, format!("the endpoint is not probed: {why}"))
        } else {
            Finding::new(C::UpstreamUnavailable, format!("the endpoint is not probed: {why}"))
        };
        out.push(f.with("url", endpoint.as_str()).with("error", why));
        return out;
    }
    // The endpoint itself: the first probe is the unauthenticated MCP request.
    if let Some(first) = fresh.steps.first() {
        match (first.status, &first.error) {
            (None, Some(e)) => {
                out.push(unreachable("the MCP endpoint", endpoint, e));
                return out;
            }
            (Some(s), _) if s >= 500 => {
                out.push(
                    Finding::new(C::UpstreamUnavailable, format!("the MCP endpoint answered HTTP {s}"))
                        .with("url", endpoint.as_str())
                        .with("status", s),
                );
                return out;
            }
            (Some(s @ 404..=406), _) if !fresh.requires_auth => {
                out.push(
                    Finding::new(C::UpstreamInvalid, format!("the endpoint answered an MCP request with HTTP {s}"))
                        .with("url", endpoint.as_str())
                        .with("status", s),
                );
            }
            _ => {}
        }
    }
    let recommended = fresh.recommended_auth_mode.clone();
    let mismatch = |detail: String| {
        Finding::new(C::AuthModeMismatch, detail)
            .with("configured", auth.kind.as_str())
            .with("recommended_auth_mode", json!(recommended))
            .with("requires_auth", fresh.requires_auth)
            .with("resource_metadata_url", json!(fresh.resource_metadata_url))
    };
    let verification = fresh.verification.as_ref();
    match auth.kind {
        AuthType::None if fresh.requires_auth => out.push(mismatch(
            "the server is configured with no auth, but its endpoint refuses requests without credentials".into(),
        )),
        AuthType::Token => {
            if let Some(v) = verification.filter(|v| v.status == Some(401)) {
                if fresh.resource_metadata_url.is_some() {
                    out.push(mismatch(format!(
                        "the server is configured with a static token, but it refuses it ({}) and asks for OAuth: it publishes protected resource metadata",
                        v.error.as_deref().unwrap_or("401")
                    )));
                } else {
                    out.push(
                        Finding::new(C::UpstreamUnauthorized, "the MCP server refuses the configured static token")
                            .with("status", 401)
                            .with("said", json!(v.error)),
                    );
                }
            }
        }
        kind if kind != AuthType::None && !fresh.requires_auth && first_ok(fresh) => out.push(
            mismatch(format!(
                "the server is configured for {}, but its endpoint answers without any credentials",
                kind.as_str()
            ))
            .severity(Severity::Warning),
        ),
        AuthType::OauthClientCredentials
            if !fresh.grant_types_supported.is_empty()
                && !fresh.grant_types_supported.iter().any(|g| g == "client_credentials") =>
        {
            out.push(
                mismatch("the server is configured for client credentials, but its authorization server does not offer that grant".into())
                    .with("grant_types_supported", fresh.grant_types_supported.clone()),
            );
        }
        kind if is_code_flow(kind)
            && !fresh.grant_types_supported.is_empty()
            && !fresh.grant_types_supported.iter().any(|g| g == "authorization_code") =>
        {
            out.push(
                mismatch("the server is configured for the authorization code flow, but its authorization server does not offer that grant".into())
                    .with("grant_types_supported", fresh.grant_types_supported.clone()),
            );
        }
        _ => {}
    }
    match verification {
        // A client-credentials server's live check stops at the token endpoint when it refuses.
        Some(v) if auth.kind == AuthType::OauthClientCredentials && v.status.is_none() && !v.ok => {
            out.push(client_credentials_refusal(v.error.as_deref().unwrap_or_default(), auth.token_url.as_deref()));
        }
        Some(v) => {
            // What the endpoint's first probe or the auth type's check said already is not said twice.
            for f in verification_findings(v, auth.kind, &auth.scopes.clone().unwrap_or_default(), &[]) {
                if !out.iter().any(|o| o.code == f.code) {
                    out.push(f);
                }
            }
        }
        None => {}
    }
    if auth.kind != AuthType::None && auth.kind != AuthType::Token {
        out.extend(compare_oauth(server, fresh, redirect_uri, cimd));
    }
    for w in &fresh.warnings {
        if w.starts_with("verification failed") {
            continue; // said by the verification's own finding
        }
        out.push(Finding::new(C::DiscoveryWarning, w.clone()).with("warning", w.as_str()));
    }
    // The auth-mode finding already says what an unauthenticated verification refusal means.
    if out.iter().any(|f| f.code == C::AuthModeMismatch) {
        out.retain(|f| f.code != C::UpstreamUnauthorized);
    }
    out
}

/// What a token endpoint's refusal of client credentials means (the live check's words carry the
/// RFC 6749 error code in parentheses).
pub(crate) fn client_credentials_refusal(said: &str, token_url: Option<&str>) -> Finding {
    let code = switchboard_domain::finding::provider_code(said).unwrap_or("");
    let base = |c: C, detail: String| {
        Finding::new(c, detail).with("token_url", json!(token_url)).with("said", said).with("at", "token_endpoint")
    };
    match code {
        "invalid_client" => {
            base(C::InvalidClient, format!("the token endpoint refuses the client's credentials: {said}"))
        }
        "unauthorized_client" | "unsupported_grant_type" => base(
            C::AuthModeMismatch,
            format!("the authorization server does not let this client use the client credentials grant: {said}"),
        ),
        "invalid_scope" => {
            base(C::InsufficientScope, format!("the token endpoint refuses the configured scopes: {said}"))
        }
        "invalid_target" => {
            base(C::ResourceMismatch, format!("the token endpoint refuses the configured resource: {said}"))
        }
        _ if said.contains(&FetchError::Timeout.to_string()) => base(C::UpstreamTimeout, said.to_owned()),
        _ if said.starts_with("no token_url") || said.contains("incomplete") => {
            base(C::ServerNotReady, said.to_owned()).with("missing", json!(["token_url"]))
        }
        _ => base(C::UpstreamUnavailable, format!("the token endpoint could not give a token: {said}")),
    }
}

fn first_ok(fresh: &DiscoveryResult) -> bool {
    fresh.steps.first().and_then(|s| s.status).is_some_and(|s| (200..300).contains(&s))
}

fn same(a: &str, b: &str) -> bool {
    normalize_endpoint(a) == normalize_endpoint(b)
}

fn compare_oauth(server: &McpServer, fresh: &DiscoveryResult, redirect_uri: &str, cimd: bool) -> Vec<Finding> {
    let mut out = Vec::new();
    let auth = &server.config.auth;
    let facts = server.facts();
    let hydrated = |field: &str| facts.hydrated_fields.iter().any(|f| f == field);
    if let (Some(configured), Some(discovered)) = (&auth.resource, &fresh.resource)
        && !same(configured, discovered)
    {
        out.push(
            Finding::new(
                C::ResourceMismatch,
                format!("tokens are asked for `{configured}`, but the server's protected resource metadata names `{discovered}`"),
            )
            .with("configured", configured.as_str())
            .with("discovered", discovered.as_str())
            .with("set_by", if hydrated("resource") { "discovery" } else { "tenant" }),
        );
    }
    let urls = [("auth_url", &auth.auth_url, &fresh.auth_url), ("token_url", &auth.token_url, &fresh.token_url)];
    for (field, configured, discovered) in urls {
        if field == "auth_url" && !is_code_flow(auth.kind) {
            continue;
        }
        if let (Some(c), Some(d)) = (configured, discovered)
            && !same(c, d)
        {
            out.push(
                Finding::new(
                    C::AuthUrlMismatch,
                    format!(
                        "`{field}` is `{c}`, but the server's authorization server (`{}`) names `{d}`",
                        fresh.issuer.as_deref().unwrap_or("unknown")
                    ),
                )
                .with("field", field)
                .with("configured", c.as_str())
                .with("discovered", d.as_str())
                .with("issuer", json!(fresh.issuer))
                .with("set_by", if hydrated(field) { "discovery" } else { "tenant" }),
            );
        }
    }
    if let (Some(stored), Some(now)) = (&facts.issuer, &fresh.issuer)
        && stored != now
    {
        out.push(
            Finding::new(
                C::AuthUrlMismatch,
                format!("the server's authorization server changed from `{stored}` to `{now}` since it was last discovered"),
            )
            .with("field", "issuer")
            .with("stored_issuer", stored.as_str())
            .with("discovered_issuer", now.as_str())
            .fix(format!("Run `POST /v1/mcp-servers/{}/rediscover`: Switchboard refills the URLs and sends the grants of the old issuer back to consent.", server.id)),
        );
    }
    if is_code_flow(auth.kind) {
        let missing: Vec<&str> = [("auth_url", auth.auth_url.is_none()), ("token_url", auth.token_url.is_none())]
            .into_iter()
            .filter_map(|(f, m)| m.then_some(f))
            .collect();
        if auth.client_id.is_none() {
            let cimd_usable = cimd && fresh.client_id_metadata_document_supported;
            if fresh.register_url.is_none() && !cimd_usable {
                out.push(
                    Finding::new(
                        C::NoRegistrationEndpoint,
                        format!(
                            "no client_id is configured and `{}` offers neither Dynamic Client Registration (no registration_endpoint) nor Client ID Metadata Documents",
                            fresh.issuer.as_deref().unwrap_or("the authorization server")
                        ),
                    )
                    .with("issuer", json!(fresh.issuer))
                    .with("redirect_uri", redirect_uri)
                    .with("client_id_metadata_document_supported", fresh.client_id_metadata_document_supported),
                );
            } else {
                out.push(
                    Finding::new(C::ServerNotReady, "no client_id: the last registration did not succeed")
                        .with("missing", json!(["client_id"]))
                        .with("register_url", json!(fresh.register_url))
                        .fix(format!("Run `POST /v1/mcp-servers/{}/rediscover` to register again; its discovery_result says why a registration fails.", server.id)),
                );
            }
        }
        if !missing.is_empty() && fresh.issuer.is_none() {
            out.push(
                Finding::new(
                    C::ServerNotReady,
                    format!("the server lacks {} and discovery found no authorization server", missing.join(", ")),
                )
                .with("missing", json!(missing)),
            );
        }
    }
    out
}

/// What a live check's failure means. `granted` are the grant's scopes, when a user's.
#[must_use]
pub fn verification_findings(
    v: &Verification,
    kind: AuthType,
    configured_scopes: &[String],
    granted: &[String],
) -> Vec<Finding> {
    if v.ok {
        return vec![];
    }
    let said = v.error.clone().unwrap_or_default();
    let f = match v.status {
        Some(403) => {
            let wanted = v.required_scopes.clone();
            let missing: Vec<&String> =
                wanted.iter().filter(|s| !granted.contains(s) && !configured_scopes.contains(s)).collect();
            let fix = if wanted.is_empty() {
                C::InsufficientScope.fix().to_owned()
            } else {
                let mut all: Vec<String> = configured_scopes.to_vec();
                all.extend(wanted.iter().filter(|s| !configured_scopes.contains(s)).cloned());
                format!(
                    "Add {} to the server's scopes and have the user connect again (the consent asks for them): `PATCH /v1/mcp-servers/{{id}} {{\"config\": {{\"auth\": {{\"scopes\": {}}}}}}}`.",
                    wanted.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", "),
                    serde_json::to_string(&all).unwrap_or_default()
                )
            };
            Finding::new(C::InsufficientScope, format!("the MCP server refused the token for lack of scope: {said}"))
                .with("wanted", wanted.clone())
                .with("granted", granted.to_vec())
                .with("configured_scopes", configured_scopes.to_vec())
                .with("missing", json!(missing))
                .fix(fix)
        }
        Some(401) if said.contains("audience") && !matches!(kind, AuthType::None | AuthType::Token) => {
            Finding::new(C::ResourceMismatch, format!("the MCP server refuses the token's audience: {said}"))
                .with("said", said)
        }
        Some(401) if kind == AuthType::None => return vec![],
        Some(401) => Finding::new(C::UpstreamUnauthorized, format!("the MCP server refused the credential: {said}"))
            .with("said", said),
        Some(s) if s >= 500 => {
            Finding::new(C::UpstreamUnavailable, format!("the MCP server answered HTTP {s}")).with("status", s)
        }
        Some(s) => {
            Finding::new(C::UpstreamInvalid, format!("the MCP server answered HTTP {s}: {said}")).with("status", s)
        }
        None if said.contains(&FetchError::Timeout.to_string()) => {
            Finding::new(C::UpstreamTimeout, format!("the MCP server did not answer in time: {said}"))
                .with("error", said)
        }
        None if said.contains(&FetchError::Blocked.to_string()) => {
            Finding::new(C::BlockedByNetworkPolicy, said.clone()).with("error", said)
        }
        None if said.contains("could not be reached") => {
            Finding::new(C::UpstreamUnavailable, said.clone()).with("error", said)
        }
        None => {
            Finding::new(C::UpstreamInvalid, format!("the MCP server's answer is not MCP: {said}")).with("said", said)
        }
    };
    vec![f]
}

/// For authorization-code servers with a client: asks the authorization endpoint whether it
/// accepts the client, the redirect URI and the resource, and the token endpoint whether it
/// accepts the client's credentials.
pub async fn probe_client(
    runtime: &Runtime,
    tenant: TenantId,
    server: &McpServer,
    fresh: &DiscoveryResult,
    redirect_uri: &str,
    steps: &mut Vec<Step>,
) -> Result<Vec<Finding>, DomainError> {
    let auth = &server.config.auth;
    let mut out = Vec::new();
    if !is_code_flow(auth.kind) {
        return Ok(out);
    }
    let Some(client_id) = auth.client_id.as_deref() else { return Ok(out) };
    // The resource a consent asks for (as `consent/connect.rs` computes it).
    let resource = match (&auth.resource, Url::parse(&server.config.endpoint)) {
        (Some(r), _) => r.clone(),
        (None, Ok(endpoint)) => switchboard_discovery::urls::canonical_resource(&endpoint),
        (None, Err(_)) => server.config.endpoint.clone(),
    };
    let scopes = auth.scopes.clone().unwrap_or_default();
    let fetcher = &runtime.fetcher;
    if let Some(auth_url) = auth.auth_url.as_deref().and_then(|u| Url::parse(u).ok()) {
        let verdict = probe::authorize(fetcher, &auth_url, client_id, redirect_uri, &scopes, &resource, steps).await;
        let said = |r: &probe::Refusal| {
            [r.error.as_deref(), r.description.as_deref()].into_iter().flatten().collect::<Vec<_>>().join(": ")
        };
        match verdict {
            AuthorizeVerdict::Accepted => {}
            AuthorizeVerdict::RedirectRefused(r) => out.push(
                Finding::new(C::RedirectNotRegistered, format!("the authorization endpoint refused Switchboard's redirect URI: {}", said(&r)))
                    .with("redirect_uri", redirect_uri)
                    .with("client_id", client_id)
                    .with("status", r.status)
                    .with("provider_error", json!(r.error))
                    .with("provider_said", json!(r.description))
                    .fix(format!(
                        "Register `{redirect_uri}` as a redirect URI of client `{client_id}` at the provider (exactly, with this scheme, host and path); or remove `client_id` so Switchboard registers a client of its own."
                    )),
            ),
            AuthorizeVerdict::ClientRefused(r) => out.push(
                Finding::new(C::InvalidClient, format!("the authorization endpoint does not accept client `{client_id}`: {}", said(&r)))
                    .with("client_id", client_id)
                    .with("at", "authorization_endpoint")
                    .with("status", r.status)
                    .with("provider_error", json!(r.error))
                    .with("provider_said", json!(r.description)),
            ),
            AuthorizeVerdict::ResourceRefused(r) => out.push(
                Finding::new(C::ResourceMismatch, format!("the authorization server refuses the resource `{resource}`: {}", said(&r)))
                    .with("resource", resource.as_str())
                    .with("discovered", json!(fresh.resource))
                    .with("provider_error", json!(r.error))
                    .with("provider_said", json!(r.description)),
            ),
            AuthorizeVerdict::Refused(r) => out.push(
                Finding::new(C::ConsentFailed, format!("the authorization endpoint refuses Switchboard's authorization request: {}", said(&r)))
                    .with("status", r.status)
                    .with("provider_error", json!(r.error))
                    .with("provider_said", json!(r.description))
                    .fix("Fix what the provider names (evidence: `provider_error`), e.g. scopes it does not know: `PATCH /v1/mcp-servers/{id} {\"config\": {\"auth\": {\"scopes\": [\"…\"]}}}`."),
            ),
            AuthorizeVerdict::NotFound(status) => {
                out.extend(not_an_endpoint("auth_url", &auth_url, auth.auth_url.as_deref(), fresh.auth_url.as_deref(), status));
            }
            AuthorizeVerdict::Unreachable(e) => out.push(unreachable("the authorization endpoint", auth_url.as_str(), &e)),
        }
    }
    if let Some(token_url) = auth.token_url.as_deref().and_then(|u| Url::parse(u).ok()) {
        let store = runtime.store.tenant(tenant);
        let credentials = ClientCredentials::of(&store, server).await?;
        let verdict = probe::token_client(
            fetcher,
            &token_url,
            credentials.auth(),
            credentials.advertised(),
            redirect_uri,
            &resource,
            steps,
        )
        .await;
        match verdict {
            ClientVerdict::Accepted | ClientVerdict::Other(_) => {}
            ClientVerdict::Refused(code) if code == "unauthorized_client" => out.push(
                Finding::new(
                    C::AuthModeMismatch,
                    format!(
                        "the token endpoint does not let client `{client_id}` use the authorization code grant ({code})"
                    ),
                )
                .with("client_id", client_id)
                .with("at", "token_endpoint")
                .with("provider_error", code.as_str()),
            ),
            ClientVerdict::Refused(code) => out.push(
                Finding::new(C::InvalidClient, format!("the token endpoint refuses client `{client_id}` ({code})"))
                    .with("client_id", client_id)
                    .with("at", "token_endpoint")
                    .with("provider_error", code.as_str())
                    .with("token_endpoint_auth_method", credentials.method().as_str()),
            ),
            ClientVerdict::NotFound(status) => {
                out.extend(not_an_endpoint(
                    "token_url",
                    &token_url,
                    auth.token_url.as_deref(),
                    fresh.token_url.as_deref(),
                    status,
                ));
            }
            ClientVerdict::Unreachable(e) => out.push(unreachable("the token endpoint", token_url.as_str(), &e)),
        }
    }
    Ok(out)
}

/// A configured `auth_url` / `token_url` that answers 404 or 405: no such endpoint there. Said
/// once: when it is not the URL discovery found, [`compare`] has said so already.
fn not_an_endpoint(
    field: &str,
    url: &Url,
    configured: Option<&str>,
    discovered: Option<&str>,
    status: u16,
) -> Option<Finding> {
    if configured.zip(discovered).is_some_and(|(c, d)| !same(c, d)) {
        return None;
    }
    Some(
        Finding::new(
            C::AuthUrlMismatch,
            format!("`{field}` `{url}` answered HTTP {status}: there is no such endpoint at this URL"),
        )
        .with("field", field)
        .with("configured", url.as_str())
        .with("discovered", json!(discovered))
        .with("status", status),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreachable_names_the_cause() {
        assert_eq!(unreachable("x", "u", &FetchError::Blocked.to_string()).code, C::BlockedByNetworkPolicy);
        assert_eq!(unreachable("x", "u", &FetchError::Timeout.to_string()).code, C::UpstreamTimeout);
        assert_eq!(unreachable("x", "u", &FetchError::Connect.to_string()).code, C::UpstreamUnavailable);
    }

    #[test]
    fn a_refusal_for_scope_says_which_scopes_to_add() {
        let v = Verification {
            status: Some(403),
            error: Some("the credentials lack a required scope (403)".into()),
            required_scopes: vec!["mcp:read".into()],
            ..Verification::default()
        };
        let f = verification_findings(
            &v,
            AuthType::OauthAuthorizationCodePublicPkce,
            &["mcp:write".into()],
            &["mcp:write".into()],
        );
        assert_eq!(f[0].code, C::InsufficientScope);
        assert_eq!(f[0].evidence["wanted"], json!(["mcp:read"]));
        assert!(f[0].fix.contains(r#"["mcp:write","mcp:read"]"#), "{}", f[0].fix);
    }
}
