//! Connecting a user's agent to a server: the start of the authorization-code flow (`connect`) and
//! its end (`complete`, behind the consent callback). Servers that need no user consent connect at
//! once. The flow row holds everything the callback needs, so the callback does no discovery.

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine as _;
use chrono::{Duration, Utc};
use switchboard_discovery::Discoverer;
use switchboard_discovery::oauth::{self, AuthorizeRequest, CodeExchange};
use switchboard_domain::clock::now;
use switchboard_domain::connection::{AuthFlow, ConnectionStatus, GrantKey, LastError, TokenSet};
use switchboard_domain::crypto::{Secret, hex_digest, random_bytes};
use switchboard_domain::mcp_server::{AuthType, McpServer};
use switchboard_domain::store::Store;
use switchboard_domain::tenant::Actor;
use switchboard_domain::{DomainError, TenantId};
use url::Url;

/// How long a consent flow may take.
pub const FLOW_TTL: Duration = Duration::minutes(10);

#[derive(Debug)]
pub enum ConnectOutcome {
    Connected,
    PendingConsent { auth_url: String, expires_at: chrono::DateTime<Utc> },
}

/// What the consent page says.
#[derive(Debug)]
pub struct ConsentOutcome {
    pub connected: bool,
    pub server_name: Option<String>,
    pub agent_name: Option<String>,
    /// In plain words, for the end user.
    pub message: String,
    pub return_url: Option<String>,
    /// No consent in progress has this state: expired, already used, or never started here.
    pub unknown: bool,
}

impl ConsentOutcome {
    /// A consent that did not complete, with what to tell the user.
    pub fn failed(message: impl Into<String>) -> Self {
        Self {
            connected: false,
            server_name: None,
            agent_name: None,
            message: message.into(),
            return_url: None,
            unknown: false,
        }
    }
}

pub struct Consent {
    store: Store,
    discoverer: Arc<Discoverer>,
    redirect_uri: String,
    /// Client-credentials tokens by server, reused until shortly before they expire.
    cc_tokens: std::sync::Mutex<HashMap<CcKey, (switchboard_domain::crypto::Secret, std::time::Instant)>>,
}

/// A client-credentials token is reused only for the exact configuration it was obtained with.
type CcKey = (switchboard_domain::McpServerId, [u8; 32]);

/// Renew a cached client-credentials token this long before it expires (or at half its life,
/// when that is sooner); tokens without an expiry are kept this long.
const CC_MARGIN: std::time::Duration = std::time::Duration::from_secs(60);
const CC_DEFAULT_LIFE: std::time::Duration = std::time::Duration::from_secs(300);

impl std::fmt::Debug for Consent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Consent").field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

fn not_ready(message: String) -> DomainError {
    DomainError::Conflict { code: switchboard_domain::ErrorCode::ServerNotReady, message }
}

impl Consent {
    #[must_use]
    pub fn new(store: Store, discoverer: Arc<Discoverer>, redirect_uri: String) -> Self {
        Self { store, discoverer, redirect_uri, cc_tokens: std::sync::Mutex::default() }
    }

    /// Starts (or completes at once) the connection of `key`.
    #[tracing::instrument(skip_all, fields(tenant.id = %key.tenant_id))]
    pub async fn connect(
        &self,
        key: GrantKey,
        server: &McpServer,
        return_url: Option<String>,
    ) -> Result<ConnectOutcome, DomainError> {
        let store = self.store.tenant(key.tenant_id);
        let auth = &server.config.auth;
        if !matches!(
            auth.kind,
            AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce
        ) {
            store.set_status(&key, ConnectionStatus::Connected, None).await?;
            return Ok(ConnectOutcome::Connected);
        }
        // Connecting twice is harmless: a working grant is reported as such, not consented again
        // (a grant that needs re-consent, or none, starts a flow).
        let existing = store
            .user_connections(&key.user_id, key.agent_id)
            .await?
            .into_iter()
            .find(|c| c.key.mcp_server_id == key.mcp_server_id);
        if existing.is_some_and(|c| c.status == ConnectionStatus::Connected) && store.token_set(&key).await?.is_some() {
            return Ok(ConnectOutcome::Connected);
        }
        let (Some(auth_url), Some(token_url), Some(client_id)) =
            (auth.auth_url.as_deref(), auth.token_url.as_deref(), auth.client_id.as_deref())
        else {
            return Err(not_ready(format!(
                "mcp server `{}` is not ready for user consent: it lacks {}; run POST /v1/mcp-servers/{}/rediscover or set them",
                server.slug,
                [
                    ("auth_url", auth.auth_url.is_none()),
                    ("token_url", auth.token_url.is_none()),
                    ("client_id", auth.client_id.is_none())
                ]
                .iter()
                .filter(|(_, missing)| *missing)
                .map(|(f, _)| *f)
                .collect::<Vec<_>>()
                .join(", "),
                server.id
            )));
        };
        let auth_url = Url::parse(auth_url).map_err(|_| not_ready("auth_url is not a URL".into()))?;
        let endpoint =
            Url::parse(&server.config.endpoint).map_err(|_| not_ready("the endpoint is not a URL".into()))?;
        let resource =
            auth.resource.clone().unwrap_or_else(|| switchboard_discovery::urls::canonical_resource(&endpoint));
        let issuer = server.facts().issuer.unwrap_or_else(|| auth_url.origin().ascii_serialization());
        let random = |_| DomainError::internal("the system random generator failed");
        let (verifier, challenge) = oauth::pkce_pair(random_bytes::<32>().map_err(random)?);
        // The state names the tenant (the callback has nothing else to go on) and 256 random bits.
        let state = format!(
            "{}{}",
            key.tenant_id.0.simple(),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random_bytes::<32>().map_err(random)?)
        );
        // Step-up: after a 403 insufficient_scope, ask for the union of what was granted and what
        // the server asked for.
        let mut scopes = auth.scopes.clone().unwrap_or_default();
        let existing = store
            .user_connections(&key.user_id, key.agent_id)
            .await?
            .into_iter()
            .find(|c| c.key.mcp_server_id == key.mcp_server_id);
        if let Some(c) = existing.filter(|c| c.status == ConnectionStatus::NeedsReauth) {
            let required = c.last_error.map(|e| e.required_scopes).unwrap_or_default();
            for s in c.scopes.into_iter().chain(required) {
                if !scopes.contains(&s) {
                    scopes.push(s);
                }
            }
        }
        let url = oauth::authorize_url(&AuthorizeRequest {
            auth_url: &auth_url,
            client_id,
            redirect_uri: &self.redirect_uri,
            scopes: &scopes,
            state: &state,
            code_challenge: &challenge,
            resource: &resource,
        });
        let expires_at = switchboard_domain::clock::now() + FLOW_TTL;
        let flow = AuthFlow {
            key,
            verifier: Secret::new(verifier),
            issuer,
            token_endpoint: token_url.to_owned(),
            resource,
            redirect_uri: self.redirect_uri.clone(),
            scopes,
            return_url,
            expires_at,
        };
        store.create_flow(&flow, &hex_digest(state.as_bytes())).await?;
        Ok(ConnectOutcome::PendingConsent { auth_url: url.to_string(), expires_at })
    }

    /// The consent callback: validates `state` (single use) and `iss` (RFC 9207), exchanges the
    /// code at the recorded token endpoint and stores the token set.
    #[tracing::instrument(skip_all)]
    pub async fn complete(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        iss: Option<&str>,
        error: Option<&str>,
    ) -> ConsentOutcome {
        let Some(state) = state.filter(|s| s.len() > 32 && s.len() < 512) else {
            return ConsentOutcome::failed("This sign-in link is incomplete. Start again from the app.");
        };
        let Some(tenant) = state_tenant(state) else {
            return ConsentOutcome::failed("This sign-in link is not valid. Start again from the app.");
        };
        let store = self.store.tenant(tenant);
        let flow = match store.take_flow(&hex_digest(state.as_bytes())).await {
            Ok(Some(flow)) => flow,
            Ok(None) => {
                return ConsentOutcome {
                    unknown: true,
                    ..ConsentOutcome::failed(
                        "This sign-in link has expired or was already used. Start again from the app.",
                    )
                };
            }
            Err(e) => {
                tracing::error!(error = %e, "reading a consent flow failed");
                return ConsentOutcome::failed("Something went wrong on our side. Start again from the app.");
            }
        };
        let server = store.get_mcp_server(flow.key.mcp_server_id).await.ok();
        let agent = store.get_agent(flow.key.agent_id).await.ok();
        let mut outcome = ConsentOutcome {
            connected: false,
            server_name: server.as_ref().map(|s| s.name.clone()),
            agent_name: agent.map(|a| a.name),
            message: String::new(),
            return_url: flow.return_url.clone(),
            unknown: false,
        };
        // RFC 9207: a mismatched issuer means the response may come from another server: act on
        // nothing it says, not even its error.
        let iss_supported = server.as_ref().is_some_and(|s| s.facts().authorization_response_iss_parameter_supported);
        match switchboard_discovery::oauth::check_iss(&flow.issuer, iss_supported, iss) {
            Err(switchboard_discovery::oauth::IssError::Mismatch) => {
                let error =
                    LastError::new("issuer_mismatch", "the authorization response came from another issuer", now());
                if let Err(e) = store.set_status(&flow.key, ConnectionStatus::Error, Some(error)).await {
                    tracing::warn!(error = %e, "recording a consent failure failed");
                }
                outcome.message = "The sign-in response did not come from the expected provider, so it was ignored. Start again from the app.".into();
                return outcome;
            }
            Err(switchboard_discovery::oauth::IssError::Missing) => {
                outcome.message =
                    "The provider's response is missing its issuer, so it was ignored. Start again from the app."
                        .into();
                return outcome;
            }
            Ok(()) => {}
        }
        if let Some(err) = error {
            let denied = err == "access_denied";
            let data = serde_json::json!({"user_id": flow.key.user_id, "agent_id": flow.key.agent_id, "mcp_server_id": flow.key.mcp_server_id, "error": safe_code(err)});
            if let Err(e) = store
                .record_event(
                    &Actor::User(flow.key.user_id.clone()),
                    "consent.denied",
                    "mcp_server",
                    Some(flow.key.mcp_server_id.to_string()),
                    data,
                )
                .await
            {
                tracing::warn!(error = %e, "recording an audit event failed");
            }
            let code = if denied { "access_denied" } else { "authorization_failed" };
            let status = if denied { ConnectionStatus::NotConnected } else { ConnectionStatus::Error };
            let error = LastError::new(code, format!("the provider answered `{}`", safe_code(err)), now());
            if let Err(e) = store.set_status(&flow.key, status, Some(error)).await {
                tracing::warn!(error = %e, "recording a consent failure failed");
            }
            outcome.message = if denied {
                "You declined access, so nothing was connected.".into()
            } else {
                format!("The provider refused the request ({}). Start again from the app.", safe_code(err))
            };
            return outcome;
        }
        let Some(code) = code.filter(|c| !c.is_empty() && c.len() <= 4096) else {
            outcome.message = "The provider sent no authorization code. Start again from the app.".into();
            return outcome;
        };
        let Some(server) = server else {
            outcome.message = "This server no longer exists.".into();
            return outcome;
        };
        let creds = match crate::client_auth::ClientCredentials::of(&store, &server).await {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "reading the server's client credentials failed");
                outcome.message =
                    "Something went wrong on our side while completing the sign-in. Start again from the app.".into();
                return outcome;
            }
        };
        let Ok(token_url) = Url::parse(&flow.token_endpoint) else {
            outcome.message = "The provider's token endpoint is not valid.".into();
            return outcome;
        };
        let exchange = CodeExchange {
            token_url: &token_url,
            auth: creds.auth(),
            advertised: creds.advertised(),
            code,
            verifier: flow.verifier.expose(),
            redirect_uri: &flow.redirect_uri,
            resource: &flow.resource,
        };
        let mut steps = Vec::new();
        let answer = oauth::exchange_code(self.discoverer.fetcher(), &exchange, &mut steps).await;
        // Kept after the tokens are stored (below): nothing may stand between the exchange and that write.
        let used = answer.as_ref().ok().map(|t| t.client_auth);
        match answer {
            Ok(tokens) => {
                // Expiry and the first refresh are measured on the database's clock, like every
                // later one (the process clock when the database cannot say).
                let now =
                    self.store.database_now().await.map_or_else(|_| switchboard_domain::clock::now(), |c| c.now());
                let granted: Vec<String> = tokens
                    .scope
                    .as_deref()
                    .map_or_else(|| flow.scopes.clone(), |s| s.split_ascii_whitespace().map(str::to_owned).collect());
                let set = TokenSet {
                    access_token: Secret::new(tokens.access_token),
                    refresh_token: tokens.refresh_token.map(Secret::new),
                    token_type: tokens.token_type,
                    expires_at: tokens.expires_in.map(|s| switchboard_domain::connection::expiry(now, s)),
                    scope: tokens.scope,
                };
                match store.save_tokens(&flow, &set, &granted, now).await {
                    Ok(()) => {
                        if let Some(method) = used {
                            creds.keep(&store, method).await;
                        }
                        if let Err(e) = store.record_issuance(&flow.key, "issued", None, &granted, set.expires_at).await
                        {
                            tracing::warn!(error = %e, "recording an issuance failed");
                        }
                        outcome.connected = true;
                        outcome.message = "is now connected".into();
                        let data = serde_json::json!({"user_id": flow.key.user_id, "agent_id": flow.key.agent_id, "mcp_server_id": flow.key.mcp_server_id,
                            "issuer": flow.issuer, "scopes": granted, "refresh_token": set.refresh_token.is_some()});
                        let actor = Actor::User(flow.key.user_id.clone());
                        let server_id = Some(flow.key.mcp_server_id.to_string());
                        for action in ["consent.granted", "token.issued"] {
                            if let Err(e) =
                                store.record_event(&actor, action, "mcp_server", server_id.clone(), data.clone()).await
                            {
                                tracing::warn!(error = %e, "recording an audit event failed");
                            }
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "storing a token set failed");
                        outcome.message =
                            "Something went wrong on our side while saving the connection. Start again from the app."
                                .into();
                    }
                }
            }
            Err(e) => {
                let e = e.exchange_message();
                let error = LastError::new("token_exchange_failed", e.clone(), now());
                if let Err(e) = store.set_status(&flow.key, ConnectionStatus::Error, Some(error)).await {
                    tracing::warn!(error = %e, "recording a failed token exchange failed");
                }
                outcome.message = format!("The provider did not accept the sign-in ({e}). Start again from the app.");
            }
        }
        outcome
    }
}

/// An OAuth error code as a provider sent it, reduced to what is safe to display.
fn safe_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_lowercase() || *c == '_').take(64).collect()
}

/// The outcome of `check`: what the upstream server answered with the stored credentials.
#[derive(Debug)]
pub struct CheckOutcome {
    pub verification: switchboard_discovery::mcp::Verification,
    pub latency_ms: u64,
    /// Why the check could not even start (not connected, no token), in words.
    pub precondition: Option<String>,
}

impl Consent {
    /// `initialize` + `tools/list` upstream with this grant's credentials, through the guarded
    /// client; `allowed_tools` (the attachment's allow-list) filters what is reported.
    #[tracing::instrument(skip_all, fields(tenant.id = %key.tenant_id))]
    pub async fn check(
        &self,
        key: &GrantKey,
        server: &McpServer,
        allowed_tools: Option<&[String]>,
    ) -> Result<CheckOutcome, DomainError> {
        let store = self.store.tenant(key.tenant_id);
        let fetcher = self.discoverer.fetcher();
        let endpoint =
            Url::parse(&server.config.endpoint).map_err(|_| not_ready("the endpoint is not a URL".into()))?;
        let mut steps = Vec::new();
        let precondition = |why: &str| CheckOutcome {
            verification: switchboard_discovery::mcp::Verification::default(),
            latency_ms: 0,
            precondition: Some(why.into()),
        };
        let mut cc_key: Option<CcKey> = None;
        let bearer = match server.config.auth.kind {
            AuthType::None => None,
            AuthType::Token => store.mcp_server_secrets(server.id).await?.auth_token.map(|t| t.expose().to_owned()),
            AuthType::OauthClientCredentials => {
                let secrets = store.mcp_server_secrets(server.id).await?;
                let creds = crate::client_auth::ClientCredentials::of(&store, server).await?;
                let auth = &server.config.auth;
                let (Some(token_url), Some(id), Some(secret)) = (
                    auth.token_url.as_deref().and_then(|u| Url::parse(u).ok()),
                    auth.client_id.as_deref(),
                    secrets.client_secret.as_ref(),
                ) else {
                    return Ok(precondition(
                        "the server's client credentials are incomplete (token_url, client_id, client_secret)",
                    ));
                };
                let scopes = auth.scopes.clone().unwrap_or_default();
                // The cache key covers everything the token depends on, the secret included
                // (hashed): a PATCH of any of them fetches a new token.
                let fingerprint = switchboard_domain::crypto::sha256(
                    format!(
                        "{token_url}\n{id}\n{}\n{}\n{}",
                        scopes.join(" "),
                        auth.resource.as_deref().unwrap_or(""),
                        secret.expose()
                    )
                    .as_bytes(),
                );
                let cache_key = (server.id, fingerprint);
                cc_key = Some(cache_key);
                let cached = self.cc_tokens.lock().ok().and_then(|m| {
                    m.get(&cache_key)
                        .filter(|(_, until)| std::time::Instant::now() < *until)
                        .map(|(t, _)| t.expose().to_owned())
                });
                match cached {
                    Some(t) => Some(t),
                    None => match switchboard_discovery::mcp::client_credentials_token(
                        fetcher,
                        &token_url,
                        &creds.auth(),
                        creds.advertised(),
                        &scopes,
                        auth.resource.as_deref(),
                        &mut steps,
                    )
                    .await
                    {
                        Ok(token) => {
                            creds.keep(&store, token.method).await;
                            let (t, expires_in) = (token.access_token, token.expires_in);
                            let life = expires_in.map_or(CC_DEFAULT_LIFE, std::time::Duration::from_secs);
                            let keep = life.saturating_sub(CC_MARGIN).min(life / 2);
                            if let Ok(mut m) = self.cc_tokens.lock() {
                                if m.len() > 10_000 {
                                    m.clear();
                                }
                                let until =
                                    std::time::Instant::now().checked_add(keep).unwrap_or_else(std::time::Instant::now);
                                m.insert(cache_key, (Secret::new(t.clone()), until));
                            }
                            Some(t)
                        }
                        Err(e) => return Ok(precondition(&e)),
                    },
                }
            }
            AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce => {
                match store.token_set(key).await? {
                    Some(tokens) => Some(tokens.access_token.expose().to_owned()),
                    None => {
                        // Say why there is no token: never connected, disconnected, or ended by the provider.
                        let status = store
                            .user_connections(&key.user_id, key.agent_id)
                            .await?
                            .into_iter()
                            .find(|c| c.key.mcp_server_id == key.mcp_server_id)
                            .map(|c| c.status);
                        let why = match status {
                            Some(ConnectionStatus::Revoked) => {
                                "this user disconnected this server: call connect again to get a new consent"
                            }
                            Some(ConnectionStatus::NeedsReauth) => {
                                "the provider ended this user's grant: call connect to get a new consent"
                            }
                            Some(ConnectionStatus::PendingConsent) => {
                                "this user has not finished the consent yet: open the auth_url from connect"
                            }
                            _ => "this user has not connected this server: call connect first",
                        };
                        return Ok(precondition(why));
                    }
                }
            }
        };
        let started = std::time::Instant::now();
        let mut v = switchboard_discovery::mcp::verify(
            fetcher,
            &endpoint,
            &server.config.headers,
            bearer.as_deref(),
            &mut steps,
        )
        .await;
        let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        // A cached client-credentials token the server refuses is dropped: the next call asks anew.
        if v.status == Some(401)
            && let (Some(k), Ok(mut m)) = (cc_key, self.cc_tokens.lock())
        {
            m.remove(&k);
        }
        if let Some(allowed) = allowed_tools {
            v.tools.retain(|t| allowed.contains(t));
        }
        if let Some(e) = &v.error {
            let insufficient = !v.required_scopes.is_empty() || v.status == Some(403);
            let code = if insufficient {
                "insufficient_scope"
            } else if v.status == Some(401) {
                "upstream_unauthorized"
            } else {
                "upstream_error"
            };
            let status = if insufficient { ConnectionStatus::NeedsReauth } else { ConnectionStatus::Error };
            if matches!(
                server.config.auth.kind,
                AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce
            ) {
                let detail =
                    LastError { required_scopes: v.required_scopes.clone(), ..LastError::new(code, e.clone(), now()) };
                store.set_status(key, status, Some(detail)).await?;
            }
        }
        Ok(CheckOutcome { verification: v, latency_ms, precondition: None })
    }
}

/// The tenant a consent `state` names: its first 32 characters, in hex. The state is outside
/// input (anyone can craft a callback link), so it is read without slicing through a character.
fn state_tenant(state: &str) -> Option<TenantId> {
    state.get(..32).and_then(|t| uuid::Uuid::try_parse(t).ok()).map(TenantId)
}

#[cfg(test)]
mod state_tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn the_state_names_its_tenant() {
        let tenant = TenantId::new();
        assert_eq!(state_tenant(&format!("{}{}", tenant.0.simple(), "x".repeat(40))), Some(tenant));
        assert_eq!(state_tenant(&format!("{}☃{}", "0".repeat(31), "a".repeat(40))), None);
    }

    proptest! {
        #[test]
        fn any_state_is_read_without_panicking(state in "\\PC{0,80}", hexish in "[0-9a-f]{30,34}\\PC{0,8}") {
            for s in [state, hexish] {
                if let Some(t) = state_tenant(&s) {
                    prop_assert!(s.to_ascii_lowercase().starts_with(&t.0.simple().to_string()));
                }
            }
        }
    }
}
