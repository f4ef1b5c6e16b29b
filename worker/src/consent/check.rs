//! The live check of a grant: `initialize` + `tools/list` upstream with its credentials.

use switchboard_domain::DomainError;
use switchboard_domain::clock::now;
use switchboard_domain::connection::{ConnectionStatus, GrantKey, LastError};
use switchboard_domain::mcp_server::{AuthType, McpServer};
use url::Url;

use super::credential::UpstreamCredential;
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
        let (bearer, source) = match self.upstream_credential(key, server).await? {
            UpstreamCredential::Anonymous => (None, None),
            UpstreamCredential::Bearer { token, source } => (Some(token), Some(source)),
            UpstreamCredential::Missing(why) => return Ok(precondition(&why.message())),
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
            && let Some(source) = &source
        {
            self.refused(source);
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
