//! The connection lifecycle as one API: what a request asks of a grant — connect, complete a
//! consent, check it upstream, disconnect it, hand out its access token — and what came of it,
//! as enums the HTTP layer only maps to responses. The rules of each transition live here (the
//! tenant's `return_url` allow-list, which statuses hold a usable token, when workers are woken),
//! not in handlers.

use std::sync::Arc;

use switchboard_domain::connection::{ConnectionStatus, GrantKey, TokenSet};
use switchboard_domain::store::Store;
use switchboard_domain::tenant::Actor;
use switchboard_domain::{DomainError, FieldError, TenantId};

use crate::changes::{Change, Changes};
use crate::consent::{CheckOutcome, ConnectOutcome, Consent, ConsentOutcome, Missing, Source, UpstreamCredential};
use crate::refresh::Refresher;
use crate::wake::Wakeups;

/// What the access-token call found.
#[derive(Debug)]
pub enum AccessToken {
    /// A token that works now (refreshed first when it was about to expire), for `resource`.
    Issued { tokens: TokenSet, resource: Option<String> },
    /// The provider ended the grant: the user consents again at `auth_url` (when one could be
    /// started).
    ReauthRequired { auth_url: Option<String> },
    /// The token expired and its provider cannot be reached to refresh it; the grant is kept.
    Unavailable,
    /// The grant holds no token in this status (never connected, revoked, pending).
    NotConnected { status: ConnectionStatus },
}

/// The lifecycle. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Lifecycle {
    store: Store,
    consent: Arc<Consent>,
    refresher: Refresher,
    wakeups: Wakeups,
    changes: Changes,
}

/// How close to its expiry an access token is refreshed before it is handed out.
const FRESH_FOR: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

impl Lifecycle {
    #[must_use]
    pub fn new(store: Store, consent: Arc<Consent>, refresher: Refresher, wakeups: Wakeups, changes: Changes) -> Self {
        Self { store, consent, refresher, wakeups, changes }
    }

    /// Connects `key` (its agent must have the server attached): at once for servers that need
    /// no consent, else a consent flow. `return_url` must be one of the tenant's return URLs,
    /// exactly.
    pub async fn connect(&self, key: GrantKey, return_url: Option<String>) -> Result<ConnectOutcome, DomainError> {
        let store = self.store.tenant(key.tenant_id);
        if let Some(url) = &return_url
            && !store.settings().await?.return_urls.contains(url)
        {
            return Err(DomainError::Invalid(vec![
                FieldError::new("return_url", "not_allowed", "return_url is not one of this tenant's return URLs")
                    .with_hint(
                        "add it, exactly, with PUT /v1/settings {\"return_urls\": [...]}; patterns are never matched",
                    ),
            ]));
        }
        store.get_attachment(key.agent_id, key.mcp_server_id).await?;
        let server = store.get_mcp_server(key.mcp_server_id).await?;
        let change = Change::grant(&key);
        let outcome = self.consent.connect(key, &server, return_url).await?;
        // Connected, or pending consent: either way the grant's status changed.
        self.changes.publish(change);
        if matches!(outcome, ConnectOutcome::Connected) {
            // A connection's event may be waiting for its webhook delivery.
            self.wakeups.wake();
        }
        Ok(outcome)
    }

    /// The consent callback: see [`Consent::complete`].
    pub async fn complete_consent(
        &self,
        state: Option<&str>,
        code: Option<&str>,
        iss: Option<&str>,
        error: Option<&str>,
    ) -> ConsentOutcome {
        let outcome = self.consent.complete(state, code, iss, error).await;
        if let Some(key) = &outcome.key {
            // Caches drop what they held for this grant (connected now, or failed); a gateway
            // session waiting for it tells its client the elicitation is complete.
            self.changes.publish(Change::grant(key));
        }
        outcome
    }

    /// `initialize` + `tools/list` upstream with `key`'s credentials; the tools are those the
    /// attachment allows.
    pub async fn check(&self, key: &GrantKey) -> Result<CheckOutcome, DomainError> {
        let store = self.store.tenant(key.tenant_id);
        let attachment = store.get_attachment(key.agent_id, key.mcp_server_id).await?;
        let server = store.get_mcp_server(key.mcp_server_id).await?;
        let outcome = self.consent.check(key, &server, attachment.tools.as_deref()).await;
        // A failed check records its error on the grant.
        self.changes.publish(Change::grant(key));
        outcome
    }

    /// Ends `key`'s grant: unusable when this returns; the provider's revocation is a job, and
    /// the worker is woken for it. No grant is a not-found.
    pub async fn disconnect(&self, key: &GrantKey, actor: &Actor) -> Result<(), DomainError> {
        match self.store.tenant(key.tenant_id).revoke_connection(key, actor).await? {
            Some(_) => {
                self.changes.publish(Change::grant(key));
                self.wakeups.wake();
                Ok(())
            }
            None => Err(DomainError::not_found("connection", format!("{}/{}", key.agent_id, key.mcp_server_id))),
        }
    }

    /// [`Self::disconnect`] of the connection with this id (the control plane's revoke).
    pub async fn revoke(&self, tenant: TenantId, id: uuid::Uuid, actor: &Actor) -> Result<(), DomainError> {
        let connection = self.store.tenant(tenant).get_connection(id).await?;
        self.store.tenant(tenant).revoke_connection(&connection.key, actor).await?;
        self.changes.publish(Change::grant(&connection.key));
        self.wakeups.wake();
        Ok(())
    }

    /// A usable access token of connection `id`, refreshed first (once, however many callers
    /// ask at the same time) when it expires within a minute; recorded as an issuance.
    pub async fn issue_access_token(&self, tenant: TenantId, id: uuid::Uuid) -> Result<AccessToken, DomainError> {
        use ConnectionStatus as S;
        let store = self.store.tenant(tenant);
        let row = self.refresher.ensure_fresh(tenant, id, FRESH_FOR).await?;
        Ok(match (row.status, row.tokens) {
            (S::NeedsReauth, _) => {
                let server = store.get_mcp_server(row.key.mcp_server_id).await?;
                let auth_url = match self.consent.connect(row.key.clone(), &server, None).await {
                    Ok(ConnectOutcome::PendingConsent { auth_url, .. }) => Some(auth_url),
                    _ => None,
                };
                self.changes.publish(Change::grant(&row.key));
                AccessToken::ReauthRequired { auth_url }
            }
            (S::Connected | S::Expired, Some(tokens)) => {
                if tokens.expires_at.is_some_and(|e| e <= switchboard_domain::clock::now()) {
                    return Ok(AccessToken::Unavailable);
                }
                store
                    .record_issuance(
                        &row.key,
                        "issued",
                        Some("access_token_api".into()),
                        &row.scopes,
                        tokens.expires_at,
                    )
                    .await?;
                AccessToken::Issued { tokens, resource: row.resource }
            }
            (status, _) => AccessToken::NotConnected { status },
        })
    }

    /// The credential the MCP gateway presents to `server` for `key`: the user's access token
    /// refreshed first when it expires within a minute, or — when the server refused `refused`,
    /// the token presented last — refreshed now (once, however many requests were refused at the
    /// same time). A grant's token is recorded as an issuance (channel `gateway`) each time it is
    /// handed out here; the gateway caches it, so that is once per token, not per call.
    pub async fn upstream_credential(
        &self,
        key: &GrantKey,
        server: &switchboard_domain::mcp_server::McpServer,
        refused: Option<&str>,
    ) -> Result<UpstreamCredential, DomainError> {
        use ConnectionStatus as S;
        let credential = self.consent.upstream_credential(key, server).await?;
        let UpstreamCredential::Bearer { token, source: Source::Grant { connection_id, expires_at, scopes } } =
            &credential
        else {
            return match (&credential, refused) {
                // A refused client-credentials token is dropped; the provider is asked anew.
                (UpstreamCredential::Bearer { source, .. }, Some(_)) => {
                    self.consent.refused(source);
                    self.consent.upstream_credential(key, server).await
                }
                _ => Ok(credential),
            };
        };
        let now = switchboard_domain::clock::now();
        let near = expires_at.is_some_and(|e| e <= now + FRESH_FOR);
        let row = match refused {
            Some(refused) => self.refresher.replace_refused(key.tenant_id, *connection_id, refused).await?,
            None if near => self.refresher.ensure_fresh(key.tenant_id, *connection_id, FRESH_FOR).await?,
            None => {
                self.record_gateway_issuance(key, scopes, *expires_at).await?;
                return Ok(UpstreamCredential::Bearer {
                    token: token.clone(),
                    source: Source::Grant {
                        connection_id: *connection_id,
                        expires_at: *expires_at,
                        scopes: scopes.clone(),
                    },
                });
            }
        };
        Ok(match (row.status, row.tokens) {
            (S::Connected | S::Expired, Some(tokens)) => {
                let replaced = refused.is_none_or(|r| tokens.access_token.expose() != r);
                if tokens.expires_at.is_some_and(|e| e <= switchboard_domain::clock::now()) {
                    UpstreamCredential::Missing(Missing::Unavailable)
                } else if !replaced {
                    // Refused and not replaceable (no refresh token): only a new consent helps.
                    UpstreamCredential::Missing(Missing::NotConnected { status: Some(S::NeedsReauth) })
                } else {
                    self.record_gateway_issuance(key, &row.scopes, tokens.expires_at).await?;
                    UpstreamCredential::Bearer {
                        token: tokens.access_token.expose().to_owned(),
                        source: Source::Grant {
                            connection_id: row.id,
                            expires_at: tokens.expires_at,
                            scopes: row.scopes,
                        },
                    }
                }
            }
            (status, _) => UpstreamCredential::Missing(Missing::NotConnected { status: Some(status) }),
        })
    }

    async fn record_gateway_issuance(
        &self,
        key: &GrantKey,
        scopes: &[String],
        expires_at: Option<chrono::DateTime<chrono::Utc>>,
    ) -> Result<(), DomainError> {
        self.store
            .tenant(key.tenant_id)
            .record_issuance(key, "issued", Some("gateway".into()), scopes, expires_at)
            .await
    }
}
