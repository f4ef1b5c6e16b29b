//! How Switchboard's OAuth client authenticates at a provider's token and revocation endpoints:
//! one place decides it for the consent callback, refreshes, checks and revocations.

use switchboard_discovery::oauth::{AuthMethod, ClientAuth};
use switchboard_domain::DomainError;
use switchboard_domain::crypto::Secret;
use switchboard_domain::mcp_server::McpServer;
use switchboard_domain::store::TenantStore;

/// The client's credentials at a token or revocation endpoint, and how it authenticates there:
/// the method the registration answered (or that worked last time), else the one the provider
/// advertises. One place decides this for the consent callback, refreshes, checks and revocations.
pub(crate) struct ClientCredentials {
    /// The server whose discovery result keeps a method that worked better (none for a
    /// revocation job's snapshot).
    server: Option<switchboard_domain::McpServerId>,
    id: String,
    secret: Option<Secret>,
    method: AuthMethod,
    /// The provider's `token_endpoint_auth_methods_supported`.
    advertised: Vec<String>,
}

impl ClientCredentials {
    /// The credentials of `server`'s client. A failure to read its secret is an error, not a
    /// request sent without it (which the provider would refuse, and be blamed for).
    pub(crate) async fn of(store: &TenantStore<'_>, server: &McpServer) -> Result<Self, DomainError> {
        let secrets = store.mcp_server_secrets(server.id).await?;
        let facts = server.facts();
        let (advertised, stored) = (facts.token_endpoint_auth_methods_supported, facts.token_endpoint_auth_method);
        Ok(Self {
            server: Some(server.id),
            id: server.config.auth.client_id.clone().unwrap_or_default(),
            method: AuthMethod::choose(stored.as_deref(), secrets.client_secret.is_some(), &advertised),
            secret: secrets.client_secret,
            advertised,
        })
    }

    pub(crate) fn from_parts(
        id: String,
        secret: Option<Secret>,
        stored: Option<&str>,
        advertised: Vec<String>,
    ) -> Self {
        let method = AuthMethod::choose(stored, secret.is_some(), &advertised);
        Self { server: None, id, secret, method, advertised }
    }

    pub(crate) fn auth(&self) -> ClientAuth<'_> {
        ClientAuth::new(&self.id, self.secret.as_ref().map(Secret::expose), self.method)
    }

    /// The method these credentials chose.
    pub(crate) fn method(&self) -> AuthMethod {
        self.method
    }

    pub(crate) fn advertised(&self) -> &[String] {
        &self.advertised
    }

    /// After a request went through with `used` instead of the method these credentials chose
    /// (the provider refused the first with `invalid_client`): keeps it on the server and its
    /// client registration, so the next request does not fail first. Best effort.
    pub(crate) async fn keep(&self, store: &TenantStore<'_>, used: AuthMethod) {
        let Some(server) = self.server.filter(|_| used != self.method) else { return };
        tracing::info!(mcp_server.id = %server, from = self.method.as_str(), to = used.as_str(),
            "the token endpoint refused one client authentication method and accepted another; keeping it");
        if let Err(e) = store.keep_token_endpoint_auth_method(server, &self.id, used.as_str()).await {
            tracing::warn!(error = %e, "keeping the client authentication method that worked failed");
        }
    }
}
