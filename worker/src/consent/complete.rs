//! The consent callback: the single-use state, RFC 9207 `iss`, the code exchange at the
//! recorded token endpoint, the token set stored, and what the user's page says.

use switchboard_discovery::oauth::{self, CodeExchange};
use switchboard_domain::clock::now;
use switchboard_domain::connection::{AuthFlow, ConnectionStatus, LastError, TokenSet};
use switchboard_domain::crypto::{Secret, hex_digest};
use switchboard_domain::finding::FindingCode;
use switchboard_domain::mcp_server::McpServer;
use switchboard_domain::store::TenantStore;
use switchboard_domain::tenant::Actor;
use switchboard_domain::{DomainError, TenantId};
use url::Url;

use super::{Consent, ConsentOutcome};

/// What ends a callback early: the sentence for the user's page.
type Stop = String;

impl Consent {
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
        let (store, flow) = match self.take_flow(state).await {
            Ok(taken) => taken,
            Err(outcome) => return outcome,
        };
        let (server, agent) = match (
            optional(store.get_mcp_server(flow.key.mcp_server_id).await),
            optional(store.get_agent(flow.key.agent_id).await),
        ) {
            (Ok(server), Ok(agent)) => (server, agent),
            (Err(e), _) | (_, Err(e)) => {
                tracing::error!(error = %e, "reading the consent's server or agent failed");
                return ConsentOutcome::failed("Something went wrong on our side. Start again from the app.");
            }
        };
        let mut outcome = ConsentOutcome {
            connected: false,
            key: Some(flow.key.clone()),
            server_name: server.as_ref().map(|s| s.name.clone()),
            agent_name: agent.map(|a| a.name),
            message: String::new(),
            return_url: flow.return_url.clone(),
            unknown: false,
        };
        let done = async {
            self.check_issuer(&store, &flow, server.as_ref(), iss).await?;
            if let Some(err) = error {
                return Err(refused(&store, &flow, err).await);
            }
            let code = code
                .filter(|c| !c.is_empty() && c.len() <= 4096)
                .ok_or_else(|| "The provider sent no authorization code. Start again from the app.".to_owned())?;
            let server = server.as_ref().ok_or_else(|| "This server no longer exists.".to_owned())?;
            self.exchange(&store, &flow, server, code).await
        };
        match done.await {
            Ok(()) => {
                outcome.connected = true;
                outcome.message = "is now connected".into();
            }
            Err(message) => outcome.message = message,
        }
        outcome
    }

    /// The flow `state` names, taken once (a replayed or expired link finds none).
    async fn take_flow(&self, state: Option<&str>) -> Result<(TenantStore<'_>, AuthFlow), ConsentOutcome> {
        let Some(state) = state.filter(|s| s.len() > 32 && s.len() < 512) else {
            return Err(ConsentOutcome::failed("This sign-in link is incomplete. Start again from the app."));
        };
        let Some(tenant) = state_tenant(state) else {
            return Err(ConsentOutcome::failed("This sign-in link is not valid. Start again from the app."));
        };
        let store = self.store.tenant(tenant);
        match store.take_flow(&hex_digest(state.as_bytes())).await {
            Ok(Some(flow)) => Ok((store, flow)),
            Ok(None) => Err(ConsentOutcome {
                unknown: true,
                ..ConsentOutcome::failed("This sign-in link has expired or was already used. Start again from the app.")
            }),
            Err(e) => {
                tracing::error!(error = %e, "reading a consent flow failed");
                Err(ConsentOutcome::failed("Something went wrong on our side. Start again from the app."))
            }
        }
    }

    /// RFC 9207: a mismatched issuer means the response may come from another server: act on
    /// nothing it says, not even its error.
    async fn check_issuer(
        &self,
        store: &TenantStore<'_>,
        flow: &AuthFlow,
        server: Option<&McpServer>,
        iss: Option<&str>,
    ) -> Result<(), Stop> {
        let iss_supported = server.is_some_and(|s| s.facts().authorization_response_iss_parameter_supported);
        match oauth::check_iss(&flow.issuer, iss_supported, iss) {
            Ok(()) => Ok(()),
            Err(oauth::IssError::Mismatch) => {
                let error =
                    LastError::new("issuer_mismatch", "the authorization response came from another issuer", now());
                record_failure(store, flow, ConnectionStatus::Error, error).await;
                Err("The sign-in response did not come from the expected provider, so it was ignored. Start again from the app.".into())
            }
            Err(oauth::IssError::Missing) => {
                Err("The provider's response is missing its issuer, so it was ignored. Start again from the app."
                    .into())
            }
        }
    }

    /// Exchanges `code` at the flow's token endpoint and stores the tokens, with their audit
    /// trail.
    async fn exchange(
        &self,
        store: &TenantStore<'_>,
        flow: &AuthFlow,
        server: &McpServer,
        code: &str,
    ) -> Result<(), Stop> {
        let creds = crate::client_auth::ClientCredentials::of(store, server).await.map_err(|e| {
            tracing::error!(error = %e, "reading the server's client credentials failed");
            "Something went wrong on our side while completing the sign-in. Start again from the app.".to_owned()
        })?;
        let token_url =
            Url::parse(&flow.token_endpoint).map_err(|_| "The provider's token endpoint is not valid.".to_owned())?;
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
        let tokens = match oauth::exchange_code(self.discoverer.fetcher(), &exchange, &mut steps).await {
            Ok(tokens) => tokens,
            Err(e) => {
                let e = e.exchange_message();
                record_failure(
                    store,
                    flow,
                    ConnectionStatus::Error,
                    LastError::new("token_exchange_failed", e.clone(), now()),
                )
                .await;
                return Err(format!("The provider did not accept the sign-in ({e}). Start again from the app."));
            }
        };
        // Kept after the tokens are stored: nothing may stand between the exchange and that write.
        let used = tokens.client_auth;
        // Expiry and the first refresh are measured on the database's clock, like every later one
        // (the process clock when the database cannot say).
        let at = self.store.database_now().await.map_or_else(|_| now(), |c| c.now());
        let granted: Vec<String> = tokens
            .scope
            .as_deref()
            .map_or_else(|| flow.scopes.clone(), |s| s.split_ascii_whitespace().map(str::to_owned).collect());
        let set = TokenSet {
            access_token: Secret::new(tokens.access_token),
            refresh_token: tokens.refresh_token.map(Secret::new),
            token_type: tokens.token_type,
            expires_at: tokens.expires_in.map(|s| switchboard_domain::connection::expiry(at, s)),
            scope: tokens.scope,
        };
        store.save_tokens(flow, &set, &granted, at).await.map_err(|e| {
            tracing::error!(error = %e, "storing a token set failed");
            "Something went wrong on our side while saving the connection. Start again from the app.".to_owned()
        })?;
        creds.keep(store, used).await;
        if let Err(e) = store.record_issuance(&flow.key, "issued", None, &granted, set.expires_at).await {
            tracing::warn!(error = %e, "recording an issuance failed");
        }
        let data = serde_json::json!({"user_id": flow.key.user_id, "agent_id": flow.key.agent_id, "mcp_server_id": flow.key.mcp_server_id,
            "issuer": flow.issuer, "scopes": granted, "refresh_token": set.refresh_token.is_some()});
        let actor = Actor::User(flow.key.user_id.clone());
        let server_id = Some(flow.key.mcp_server_id.to_string());
        for action in ["consent.granted", "token.issued"] {
            if let Err(e) = store.record_event(&actor, action, "mcp_server", server_id.clone(), data.clone()).await {
                tracing::warn!(error = %e, "recording an audit event failed");
            }
        }
        Ok(())
    }
}

/// The provider answered with an error instead of a code: recorded, and said in words.
async fn refused(store: &TenantStore<'_>, flow: &AuthFlow, err: &str) -> Stop {
    let denied = err == "access_denied";
    // The finding the refusal is, for consoles and scripts reading the audit trail.
    let finding = match err {
        "invalid_client" | "unauthorized_client" => FindingCode::InvalidClient,
        "invalid_target" => FindingCode::ResourceMismatch,
        _ => FindingCode::ConsentFailed,
    };
    let data = serde_json::json!({"user_id": flow.key.user_id, "agent_id": flow.key.agent_id, "mcp_server_id": flow.key.mcp_server_id,
        "error": safe_code(err), "code": finding});
    let actor = Actor::User(flow.key.user_id.clone());
    let target = Some(flow.key.mcp_server_id.to_string());
    if let Err(e) = store.record_event(&actor, "consent.denied", "mcp_server", target, data).await {
        tracing::warn!(error = %e, "recording an audit event failed");
    }
    let code = if denied { "access_denied" } else { "authorization_failed" };
    let status = if denied { ConnectionStatus::NotConnected } else { ConnectionStatus::Error };
    record_failure(
        store,
        flow,
        status,
        LastError::new(code, format!("the provider answered `{}`", safe_code(err)), now()),
    )
    .await;
    if denied {
        "You declined access, so nothing was connected.".into()
    } else {
        format!("The provider refused the request ({}). Start again from the app.", safe_code(err))
    }
}

/// Records why a consent did not connect (best effort: the page says it either way).
async fn record_failure(store: &TenantStore<'_>, flow: &AuthFlow, status: ConnectionStatus, error: LastError) {
    if let Err(e) = store.set_status(&flow.key, status, Some(error)).await {
        tracing::warn!(error = %e, "recording a consent failure failed");
    }
}

/// A lookup whose not-found is an answer (`None`), not a failure.
fn optional<T>(found: Result<T, DomainError>) -> Result<Option<T>, DomainError> {
    match found {
        Ok(v) => Ok(Some(v)),
        Err(DomainError::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// An OAuth error code as a provider sent it, reduced to what is safe to display.
fn safe_code(code: &str) -> String {
    code.chars().filter(|c| c.is_ascii_lowercase() || *c == '_').take(64).collect()
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
