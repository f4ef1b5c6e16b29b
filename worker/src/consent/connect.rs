//! The start of a connection: at once for servers that need no user consent, else an
//! authorization-code flow (PKCE, the RFC 8707 resource, a step-up's scopes) stored for the callback.

use base64::Engine as _;
use switchboard_discovery::oauth::{self, AuthorizeRequest};
use switchboard_domain::DomainError;
use switchboard_domain::connection::{AuthFlow, ConnectionStatus, GrantKey};
use switchboard_domain::crypto::{Secret, hex_digest, random_bytes};
use switchboard_domain::mcp_server::{AuthType, McpServer};
use url::Url;

use super::{ConnectOutcome, Consent, FLOW_TTL, not_ready};

impl Consent {
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
}
