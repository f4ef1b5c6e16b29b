//! The consent callback: the single-use state, RFC 9207 `iss`, the code exchange at the
//! recorded token endpoint, the token set stored, and what the user's page says.

use switchboard_discovery::oauth::{self, CodeExchange};
use switchboard_domain::TenantId;
use switchboard_domain::clock::now;
use switchboard_domain::connection::{ConnectionStatus, LastError, TokenSet};
use switchboard_domain::crypto::{Secret, hex_digest};
use switchboard_domain::tenant::Actor;
use url::Url;

use super::{Consent, ConsentOutcome};

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
