//! The credential Switchboard presents upstream for a grant: nothing, the server's static
//! token, a client-credentials token (cached, see `cc_cache.rs`), or the user's access token.
//! The live check and the MCP gateway both take it from here, so they cannot disagree on which
//! token a server gets.

use switchboard_domain::DomainError;
use switchboard_domain::connection::{ConnectionStatus, GrantKey};
use switchboard_domain::mcp_server::{AuthType, McpServer};
use url::Url;

use super::Consent;
use super::cc_cache::CcKey;

/// What a grant presents upstream.
#[derive(Debug)]
pub enum UpstreamCredential {
    /// The server needs no authorization.
    Anonymous,
    /// `Authorization: Bearer <token>`.
    Bearer { token: String, source: Source },
    /// Nothing can be presented, and why (in words for the caller).
    Missing(Missing),
}

/// Where a bearer token came from: what to do when the server refuses it.
#[derive(Clone, Debug)]
pub enum Source {
    /// The server's configured `auth_token`: nothing to renew.
    Static,
    /// A client-credentials token: forgotten on refusal, so the next call asks anew.
    ClientCredentials(CcKey),
    /// The user's grant (this connection): refreshed on refusal.
    Grant { connection_id: uuid::Uuid, expires_at: Option<chrono::DateTime<chrono::Utc>>, scopes: Vec<String> },
}

/// Why there is no credential.
#[derive(Debug)]
pub enum Missing {
    /// The user has no usable grant: never connected, disconnected, pending, or ended.
    NotConnected { status: Option<ConnectionStatus> },
    /// The server's own credentials are incomplete, or its provider refused them.
    Server(String),
    /// The token expired and its provider cannot be reached to refresh it; the grant is kept.
    Unavailable,
}

impl Missing {
    /// In words, for a tenant's developer or an end user's agent.
    #[must_use]
    pub fn message(&self) -> String {
        match self {
            Self::NotConnected { status: Some(ConnectionStatus::Revoked) } => {
                "this user disconnected this server: call connect again to get a new consent".into()
            }
            Self::NotConnected { status: Some(ConnectionStatus::NeedsReauth) } => {
                "the provider ended this user's grant: call connect to get a new consent".into()
            }
            Self::NotConnected { status: Some(ConnectionStatus::PendingConsent) } => {
                "this user has not finished the consent yet: open the auth_url from connect".into()
            }
            Self::NotConnected { .. } => "this user has not connected this server: call connect first".into(),
            Self::Server(why) => why.clone(),
            Self::Unavailable => {
                "this user's token expired and the provider cannot be reached to refresh it; try again shortly".into()
            }
        }
    }
}

impl Consent {
    /// The credential `key` presents to `server`. For a user's grant this is the stored access
    /// token as it is (callers that need it fresh refresh first); for client credentials a
    /// cached token or a new one from the provider.
    pub async fn upstream_credential(
        &self,
        key: &GrantKey,
        server: &McpServer,
    ) -> Result<UpstreamCredential, DomainError> {
        let store = self.store.tenant(key.tenant_id);
        Ok(match server.config.auth.kind {
            AuthType::None => UpstreamCredential::Anonymous,
            AuthType::Token => match store.mcp_server_secrets(server.id).await?.auth_token {
                Some(t) => UpstreamCredential::Bearer { token: t.expose().to_owned(), source: Source::Static },
                None => UpstreamCredential::Missing(Missing::Server("the server's auth_token is not set".into())),
            },
            AuthType::OauthClientCredentials => self.client_credentials(key, server).await?,
            AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce => {
                let connection = store
                    .user_connections(&key.user_id, key.agent_id)
                    .await?
                    .into_iter()
                    .find(|c| c.key.mcp_server_id == key.mcp_server_id);
                match (&connection, store.token_set(key).await?) {
                    (Some(c), Some(tokens)) => UpstreamCredential::Bearer {
                        token: tokens.access_token.expose().to_owned(),
                        source: Source::Grant {
                            connection_id: c.id,
                            expires_at: tokens.expires_at,
                            scopes: c.scopes.clone(),
                        },
                    },
                    _ => UpstreamCredential::Missing(Missing::NotConnected { status: connection.map(|c| c.status) }),
                }
            }
        })
    }

    async fn client_credentials(&self, key: &GrantKey, server: &McpServer) -> Result<UpstreamCredential, DomainError> {
        let store = self.store.tenant(key.tenant_id);
        let secrets = store.mcp_server_secrets(server.id).await?;
        let creds = crate::client_auth::ClientCredentials::of(&store, server).await?;
        let auth = &server.config.auth;
        let (Some(token_url), Some(id), Some(secret)) = (
            auth.token_url.as_deref().and_then(|u| Url::parse(u).ok()),
            auth.client_id.as_deref(),
            secrets.client_secret.as_ref(),
        ) else {
            return Ok(UpstreamCredential::Missing(Missing::Server(
                "the server's client credentials are incomplete (token_url, client_id, client_secret)".into(),
            )));
        };
        let scopes = auth.scopes.clone().unwrap_or_default();
        // The cache key covers everything the token depends on, the secret included (hashed):
        // a PATCH of any of them fetches a new token.
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
        if let Some(token) = self.cc_tokens.get(&cache_key) {
            return Ok(UpstreamCredential::Bearer { token, source: Source::ClientCredentials(cache_key) });
        }
        let mut steps = Vec::new();
        match switchboard_discovery::mcp::client_credentials_token(
            self.discoverer.fetcher(),
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
                Ok(UpstreamCredential::Bearer {
                    token: token.access_token,
                    source: Source::ClientCredentials(cache_key),
                })
            }
            Err(e) => Ok(UpstreamCredential::Missing(Missing::Server(e))),
        }
    }

    /// The server refused a credential from `source`: a cached client-credentials token is
    /// dropped, so the next call asks the provider anew.
    pub fn refused(&self, source: &Source) {
        if let Source::ClientCredentials(k) = source {
            self.cc_tokens.forget(k);
        }
    }
}
