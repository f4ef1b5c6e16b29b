//! The live check of a grant: `initialize` + `tools/list` upstream with its credentials.

use switchboard_domain::DomainError;
use switchboard_domain::clock::now;
use switchboard_domain::connection::{ConnectionStatus, GrantKey, LastError};
use switchboard_domain::mcp_server::{AuthType, McpServer};
use url::Url;

use super::cc_cache::CcKey;
use super::{CheckOutcome, Consent, not_ready};

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
                let cached = self.cc_tokens.get(&cache_key);
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
                            self.cc_tokens.keep(cache_key, &token.access_token, token.expires_in);
                            let t = token.access_token;
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
            && let Some(k) = cc_key
        {
            self.cc_tokens.forget(&k);
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
