//! Preparing a server for use: discovery, hydration of the auth fields the tenant left out, and
//! the OAuth client registration — on create, on a PATCH of the endpoint or auth, and on
//! `rediscover`. Nothing here refuses to save a server: what went wrong is reported in its
//! `discovery_result` so that an admin can fix it.
//!
//! Registration happens once per (tenant, issuer, client type): concurrent creates for servers of
//! the same issuer wait for one another here, and the store keeps the first registration if
//! another process raced this one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use switchboard_discovery::mcp::{self, Verification};
use switchboard_discovery::oauth::{AuthMethod, ClientAuth};
use switchboard_discovery::register::{self, RegistrationRequest};
use switchboard_discovery::{Discoverer, DiscoveryResult};
use switchboard_domain::crypto::Secret;
use switchboard_domain::mcp_server;
use switchboard_domain::mcp_server::{AuthType, Discovered, McpServer, McpServerSpec, SecretChange};
use switchboard_domain::oauth_client::{ClientType, NewOAuthClient, OAuthClient};
use switchboard_domain::store::Store;
use switchboard_domain::tenant::Actor;
use switchboard_domain::validate::Policy;
use switchboard_domain::{DomainError, McpServerId, TenantId};
use url::Url;

/// The path of Switchboard's Client ID Metadata Document under the public URL.
pub const CLIENT_METADATA_PATH: &str = "/oauth/client-metadata.json";
/// The path of the consent callback under the public URL.
pub const CALLBACK_PATH: &str = "/service/mcp/consent/callback";

type LockKey = (TenantId, String, &'static str);

/// What a rediscovery did.
#[derive(Debug)]
pub struct Rediscovered {
    pub server: McpServer,
    /// The new discovery failed and the stored one was kept.
    pub kept_last_good: bool,
    /// Grants sent back to consent because the server moved to another authorization server.
    pub grants_ended: usize,
}

pub struct ServerSetup {
    store: Store,
    discoverer: Arc<Discoverer>,
    public_url: String,
    locks: Mutex<HashMap<LockKey, Arc<tokio::sync::Mutex<()>>>>,
    /// Announces a rediscovered server (its routes' views and its grants' credentials change).
    changes: crate::changes::Changes,
}

impl std::fmt::Debug for ServerSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerSetup").field("public_url", &self.public_url).finish_non_exhaustive()
    }
}

impl ServerSetup {
    #[must_use]
    pub fn new(store: Store, discoverer: Arc<Discoverer>, public_url: &str) -> Self {
        Self {
            store,
            discoverer,
            public_url: public_url.trim_end_matches('/').to_owned(),
            locks: Mutex::default(),
            changes: crate::changes::Changes::in_process(),
        }
    }

    /// Announces rediscovered servers on `changes` (the background job's too, in any process).
    #[must_use]
    pub fn with_changes(mut self, changes: crate::changes::Changes) -> Self {
        self.changes = changes;
        self
    }

    #[must_use]
    pub fn discoverer(&self) -> &Discoverer {
        &self.discoverer
    }

    /// `${SWITCHBOARD_PUBLIC_URL}/service/mcp/consent/callback`.
    #[must_use]
    pub fn redirect_uri(&self) -> String {
        format!("{}{CALLBACK_PATH}", self.public_url)
    }

    /// Switchboard's CIMD `client_id`: only an https public URL can serve one.
    #[must_use]
    pub fn client_metadata_url(&self) -> Option<String> {
        self.public_url.starts_with("https://").then(|| format!("{}{CLIENT_METADATA_PATH}", self.public_url))
    }

    /// Probes a stored server again and refills what discovery fills (`POST …/rediscover`, and
    /// the daily background job). When the server now names another authorization server, its
    /// grants pinned to the old one go to `needs_reauth`. `keep_last_good` (the background job)
    /// keeps the stored discovery when this one found no authorization server for an OAuth server
    /// that had one: a provider's bad minute must not erase a working configuration.
    #[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
    pub async fn rediscover(
        &self,
        tenant: TenantId,
        id: McpServerId,
        actor: &Actor,
        policy: Policy,
        keep_last_good: bool,
    ) -> Result<Rediscovered, DomainError> {
        let store = self.store.tenant(tenant);
        let current = store.get_mcp_server(id).await?;
        let mut spec = mcp_server::validate_patch(policy, &current, &serde_json::json!({}))?;
        self.discoverer.cache().clear();
        self.prepare(tenant, &mut spec, Some(&current)).await;
        let old_issuer = current.facts().issuer;
        let new_issuer =
            spec.discovery_result.as_ref().and_then(|d| d.get("issuer")).and_then(|v| v.as_str()).map(str::to_owned);
        let oauth = current.config.auth.kind != AuthType::None && current.config.auth.kind != AuthType::Token;
        if keep_last_good && oauth && old_issuer.is_some() && new_issuer.is_none() {
            tracing::warn!(mcp_server.id = %id, "rediscovery found no authorization server; keeping the last good discovery");
            return Ok(Rediscovered { server: current, kept_last_good: true, grants_ended: 0 });
        }
        let server = store.update_mcp_server(actor, id, spec, Some(current.updated_at)).await?;
        // Only on a change: a grant made while discovery knew no issuer is pinned to its
        // authorization URL's origin, which a stable issuer with a path never equals. (A run cut
        // off between the write above and this leaves the old issuer's grants to their refresh at
        // the old issuer, where they were issued.)
        let grants_ended = match (&old_issuer, &new_issuer) {
            (Some(old), Some(new)) if old != new => {
                let ended = store.reauth_grants_of_other_issuers(id, new).await;
                // Some grants may have moved before a failure: announced either way.
                self.changes.publish(crate::changes::Change::Grants { tenant });
                let n = ended?;
                if n > 0 {
                    tracing::warn!(mcp_server.id = %id, grants = n, "the server moved to another authorization server; its grants need a new consent");
                }
                n
            }
            _ => 0,
        };
        self.changes.publish(crate::changes::Change::Routes { tenant });
        self.changes.publish(crate::changes::Change::Grants { tenant });
        Ok(Rediscovered { server, kept_last_good: false, grants_ended })
    }

    /// Discovery afresh plus, for `none`, `token` and client-credentials servers, the live check
    /// with the stored credentials — nothing saved, nothing registered: what `diagnose` compares
    /// the stored configuration with.
    pub async fn probe(
        &self,
        tenant: TenantId,
        current: &McpServer,
        policy: Policy,
    ) -> Result<DiscoveryResult, DomainError> {
        let spec = mcp_server::validate_patch(policy, current, &serde_json::json!({}))?;
        let endpoint = Url::parse(&current.config.endpoint)
            .map_err(|_| DomainError::invalid("config.endpoint", "invalid", "the endpoint is not a URL"))?;
        self.discoverer.cache().clear();
        let mut result = self.discoverer.discover(&endpoint).await;
        if matches!(current.config.auth.kind, AuthType::None | AuthType::Token | AuthType::OauthClientCredentials) {
            self.verify(tenant, &spec, Some(current), &endpoint, &mut result).await;
        }
        Ok(result)
    }

    /// Discovery only, nothing saved.
    pub async fn discover(&self, endpoint: &Url) -> DiscoveryResult {
        self.discoverer.discover(endpoint).await
    }

    /// Discovers, hydrates and registers for `spec`, and records the outcome in
    /// `spec.discovery_result`. `previous` is the stored server when updating: the fields its
    /// last discovery filled are filled afresh unless this request set them.
    #[tracing::instrument(skip_all, fields(tenant.id = %tenant))]
    pub async fn prepare(&self, tenant: TenantId, spec: &mut McpServerSpec, previous: Option<&McpServer>) {
        if let Some(prev) = previous {
            clear_hydrated(spec, prev);
        }
        let Ok(endpoint) = Url::parse(&spec.config.endpoint) else { return };
        let mut result = self.discoverer.discover(&endpoint).await;
        let kind = spec.config.auth.kind;
        let oauth = matches!(
            kind,
            AuthType::OauthClientCredentials
                | AuthType::OauthAuthorizationCodePublicPkce
                | AuthType::OauthAuthorizationCodeConfidentialPkce
        );
        if oauth {
            let found = Discovered {
                auth_url: result.auth_url.clone(),
                token_url: result.token_url.clone(),
                register_url: result.register_url.clone(),
                resource: result.resource.clone(),
                scopes: result.scopes.clone(),
            };
            result.hydrated_fields = spec.hydrate(&found).into_iter().map(str::to_owned).collect();
        }
        if let Some(rec) = &result.recommended_auth_mode
            && rec != kind.as_str()
            && result.requires_auth
        {
            result
                .warnings
                .push(format!("this server is configured as `{}` but discovery recommends `{rec}`", kind.as_str()));
        }
        match kind {
            AuthType::OauthAuthorizationCodePublicPkce | AuthType::OauthAuthorizationCodeConfidentialPkce => {
                if spec.config.auth.client_id.is_some() {
                    result.client_registration = Some("pre_registered".into());
                } else {
                    self.obtain_client(tenant, spec, &mut result).await;
                }
            }
            AuthType::None | AuthType::Token | AuthType::OauthClientCredentials => {
                self.verify(tenant, spec, previous, &endpoint, &mut result).await;
            }
        }
        if oauth && result.token_endpoint_auth_method.is_none() {
            let chosen = kept_auth_method(spec, previous, &result);
            result.token_endpoint_auth_method = Some(chosen.as_str().into());
        }
        spec.discovery_result = serde_json::to_value(&result).ok();
    }

    /// A live `initialize` + `tools/list` with the configured credentials (none, the static token,
    /// or a client-credentials token fetched for the purpose and then dropped).
    async fn verify(
        &self,
        tenant: TenantId,
        spec: &McpServerSpec,
        previous: Option<&McpServer>,
        endpoint: &Url,
        result: &mut DiscoveryResult,
    ) {
        // A secret that cannot be read is not a check to run without it: the provider would
        // refuse, and be blamed for it.
        let stored = match previous {
            Some(p) => match self.store.tenant(tenant).mcp_server_secrets(p.id).await {
                Ok(stored) => stored,
                Err(e) => {
                    tracing::warn!(error = %e, "reading a server's stored secrets failed; its live check is skipped");
                    result.warnings.push(
                        "the live check was skipped: the stored secrets could not be read; run rediscover again".into(),
                    );
                    return;
                }
            },
            None => Default::default(),
        };
        let secrets = spec.apply_secrets(&stored);
        let fetcher = self.discoverer.fetcher();
        let auth = &spec.config.auth;
        let bearer = match auth.kind {
            AuthType::Token => secrets.auth_token.as_ref().map(|t| t.expose().to_owned()),
            AuthType::OauthClientCredentials => {
                let token_url = auth.token_url.as_deref().and_then(|u| Url::parse(u).ok());
                let (Some(token_url), Some(id), Some(secret)) =
                    (token_url, auth.client_id.as_deref(), secrets.client_secret.as_ref())
                else {
                    result.verification = Some(Verification {
                        error: Some("no token_url is known: set config.auth.token_url".into()),
                        ..Verification::default()
                    });
                    return;
                };
                let scopes = auth.scopes.clone().unwrap_or_default();
                let method = kept_auth_method(spec, previous, result);
                let client = ClientAuth::new(id, Some(secret.expose()), method);
                result.token_endpoint_auth_method = Some(method.as_str().into());
                match mcp::client_credentials_token(
                    fetcher,
                    &token_url,
                    &client,
                    &result.token_endpoint_auth_methods_supported,
                    &scopes,
                    auth.resource.as_deref(),
                    &mut result.steps,
                )
                .await
                {
                    Ok(token) => {
                        result.token_endpoint_auth_method = Some(token.method.as_str().into());
                        Some(token.access_token)
                    }
                    Err(e) => {
                        result.warnings.push(format!("verification failed: {e}"));
                        result.verification = Some(Verification { error: Some(e), ..Verification::default() });
                        return;
                    }
                }
            }
            _ => None,
        };
        let v = mcp::verify(fetcher, endpoint, &spec.config.headers, bearer.as_deref(), &mut result.steps).await;
        if v.ok {
            let verified = format!("verified with the configured credentials: {} tools", v.tools.len());
            let found = result.message.trim_end_matches('.');
            result.message = if found.is_empty() { verified } else { format!("{found}; {verified}") };
        } else if let Some(e) = &v.error {
            result.warnings.push(format!("verification failed: {e}"));
        }
        result.verification = Some(v);
    }

    async fn obtain_client(&self, tenant: TenantId, spec: &mut McpServerSpec, result: &mut DiscoveryResult) {
        let Some(issuer) = result.issuer.clone() else {
            result.warnings.push(
                "no client was registered: the authorization server is unknown; supply client_id (and client_secret)"
                    .into(),
            );
            return;
        };
        let client_type = if spec.config.auth.kind == AuthType::OauthAuthorizationCodeConfidentialPkce {
            ClientType::Confidential
        } else {
            ClientType::Public
        };
        let lock = {
            let Ok(mut locks) = self.locks.lock() else { return };
            locks.entry((tenant, issuer.clone(), client_type.as_str())).or_default().clone()
        };
        let _guard = lock.lock().await;
        let store = self.store.tenant(tenant);
        let client = match store.find_oauth_client(&issuer, client_type).await {
            Ok(Some(existing)) => Some(existing),
            Ok(None) => self.register(tenant, &issuer, client_type, spec, result).await,
            Err(e) => {
                tracing::error!(error = %e, "reading registered clients failed");
                result.warnings.push("the stored client registrations could not be read; retry with rediscover".into());
                None
            }
        };
        let Some(client) = client else { return };
        spec.config.auth.client_id = Some(client.client_id.clone());
        result.hydrated_fields.push("client_id".into());
        if client_type == ClientType::Confidential
            && let Some(secret) = &client.client_secret
        {
            spec.client_secret = SecretChange::Set(secret.clone());
            result.hydrated_fields.push("client_secret".into());
        }
        result.client_registration = Some(client.registration.clone());
        let method = AuthMethod::choose(
            Some(&client.token_endpoint_auth_method),
            client_type == ClientType::Confidential && client.client_secret.is_some(),
            &result.token_endpoint_auth_methods_supported,
        );
        result.token_endpoint_auth_method = Some(method.as_str().into());
    }

    async fn register(
        &self,
        tenant: TenantId,
        issuer: &str,
        client_type: ClientType,
        spec: &McpServerSpec,
        result: &mut DiscoveryResult,
    ) -> Option<OAuthClient> {
        let redirect_uri = self.redirect_uri();
        let new = if client_type == ClientType::Public
            && result.client_id_metadata_document_supported
            && let Some(client_id) = self.client_metadata_url()
        {
            NewOAuthClient {
                issuer: issuer.to_owned(),
                client_type,
                registration: "client_id_metadata_document".into(),
                client_id,
                client_secret: None,
                registration_access_token: None,
                registration_client_uri: None,
                token_endpoint_auth_method: "none".into(),
                redirect_uri,
            }
        } else if let Some(register_url) = spec.config.auth.register_url.as_deref().and_then(|u| Url::parse(u).ok()) {
            let req = RegistrationRequest {
                register_url: &register_url,
                redirect_uri: &redirect_uri,
                client_name: "Switchboard",
                confidential: client_type == ClientType::Confidential,
                supported_methods: &result.token_endpoint_auth_methods_supported,
                application_type: "web",
            };
            match register::register(self.discoverer.fetcher(), &req, &mut result.steps).await {
                Ok(r) => NewOAuthClient {
                    issuer: issuer.to_owned(),
                    client_type,
                    registration: "dynamic_registration".into(),
                    client_id: r.client_id,
                    client_secret: r.client_secret.map(Secret::new),
                    registration_access_token: r.registration_access_token.map(Secret::new),
                    registration_client_uri: r.registration_client_uri,
                    token_endpoint_auth_method: r.token_endpoint_auth_method,
                    redirect_uri,
                },
                Err(e) => {
                    result.warnings.push(format!("dynamic client registration failed: {e}"));
                    result.message = format!(
                        "{}. No client could be registered ({e}); supply client_id (and client_secret) from the provider's console",
                        result.message
                    );
                    return None;
                }
            }
        } else {
            result.message = format!(
                "{}. The provider supports neither dynamic client registration nor client ID metadata documents{}: supply client_id (and client_secret) registered with redirect URI {redirect_uri}",
                result.message,
                if self.client_metadata_url().is_none() && result.client_id_metadata_document_supported {
                    " usable here (SWITCHBOARD_PUBLIC_URL is not https)"
                } else {
                    ""
                }
            );
            return None;
        };
        match self.store.tenant(tenant).save_oauth_client(new).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::error!(error = %e, "storing a client registration failed");
                result.warnings.push("the client registration could not be stored; retry with rediscover".into());
                None
            }
        }
    }
}

/// Clears what the previous discovery filled in, unless this request changed it: those fields are
/// Switchboard's to refill (a new endpoint may have a new authorization server).
fn clear_hydrated(spec: &mut McpServerSpec, prev: &McpServer) {
    let hydrated = prev.facts().hydrated_fields;
    let auth = &mut spec.config.auth;
    let old = &prev.config.auth;
    for field in &hydrated {
        match field.as_str() {
            "auth_url" if auth.auth_url == old.auth_url => auth.auth_url = None,
            "token_url" if auth.token_url == old.token_url => auth.token_url = None,
            "register_url" if auth.register_url == old.register_url => auth.register_url = None,
            "resource" if auth.resource == old.resource => auth.resource = None,
            "scopes" if auth.scopes == old.scopes => auth.scopes = None,
            "client_id" if auth.client_id == old.client_id => {
                auth.client_id = None;
                if spec.client_secret == SecretChange::Keep {
                    spec.client_secret = SecretChange::Clear;
                }
            }
            _ => {}
        }
    }
}

/// The client authentication method for a server whose client Switchboard did not register just
/// now: the one its last discovery recorded while the client is the same (it may be one that
/// worked after another was refused), else the first the provider advertises.
fn kept_auth_method(spec: &McpServerSpec, previous: Option<&McpServer>, result: &DiscoveryResult) -> AuthMethod {
    let kept = previous
        .filter(|p| p.config.auth.client_id == spec.config.auth.client_id)
        .and_then(|p| p.facts().token_endpoint_auth_method);
    let has_secret = spec.config.auth.kind != AuthType::OauthAuthorizationCodePublicPkce;
    AuthMethod::choose(kept.as_deref(), has_secret, &result.token_endpoint_auth_methods_supported)
}
