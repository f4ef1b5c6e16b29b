//! Troubleshooting as data: the findings of a server (`POST /v1/mcp-servers/{id}/diagnose`) and
//! of one user's connection (the runtime `check`, and `diagnose` with a user and an agent).
//!
//! A server's diagnosis runs discovery again and the live check with the stored credentials
//! (nothing saved, nothing registered), compares what it finds with the stored configuration
//! ([`server`]), asks an authorization-code server's provider whether it accepts the client and
//! the redirect URI ([`server::probe_client`]), and reads the last hour of real traffic and the
//! state of the server's grants ([`traffic`]). A connection's diagnosis reads its grant and runs a
//! live check with it ([`connection`]). Each step only adds findings: an empty list means all is
//! well.

pub mod connection;
pub mod server;
pub mod traffic;

use chrono::{DateTime, Utc};
use switchboard_discovery::DiscoveryResult;
use switchboard_domain::connection::GrantKey;
use switchboard_domain::finding::Finding;
use switchboard_domain::health::Source;
use switchboard_domain::mcp_server::McpServer;
use switchboard_domain::validate::Policy;
use switchboard_domain::{DomainError, McpServerId, TenantId};

use crate::consent::CheckOutcome;
use crate::runtime::Runtime;

/// What a diagnosis found.
#[derive(Clone, Debug)]
pub struct Diagnosis {
    pub server_id: McpServerId,
    pub checked_at: DateTime<Utc>,
    /// Worst first; empty when all is well.
    pub findings: Vec<Finding>,
    /// The discovery that was run for it (every probe in `steps`).
    pub discovery_result: DiscoveryResult,
}

/// Whose connection to diagnose beside the server.
#[derive(Clone, Debug)]
pub struct ConnectionTarget {
    pub user_id: String,
    pub agent_id: switchboard_domain::AgentId,
}

impl Runtime {
    /// Diagnoses `server` (and, with `target`, that user's connection through that agent).
    #[tracing::instrument(skip_all, fields(tenant.id = %tenant, mcp_server.id = %server.id))]
    pub async fn diagnose(
        &self,
        tenant: TenantId,
        server: &McpServer,
        policy: Policy,
        target: Option<ConnectionTarget>,
    ) -> Result<Diagnosis, DomainError> {
        let fresh = match self.servers.probe(tenant, server, policy).await {
            Ok(fresh) => fresh,
            // The stored configuration no longer passes the rules it was saved under (the network
            // policy tightened since): that is the finding, not a 422 of this request.
            Err(DomainError::Invalid(errors)) => {
                let said = errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
                let code = if errors.iter().any(|e| e.field.starts_with("config.endpoint")) {
                    switchboard_domain::finding::FindingCode::BlockedByNetworkPolicy
                } else {
                    switchboard_domain::finding::FindingCode::ServerNotReady
                };
                let finding = Finding::new(code, format!("the stored configuration is refused now: {said}"))
                    .with("errors", serde_json::to_value(&errors).unwrap_or_default());
                let discovery_result = DiscoveryResult {
                    endpoint: server.config.endpoint.clone(),
                    message: said,
                    ..DiscoveryResult::default()
                };
                let checked_at = switchboard_domain::clock::now();
                return Ok(Diagnosis { server_id: server.id, checked_at, findings: vec![finding], discovery_result });
            }
            Err(e) => return Err(e),
        };
        let redirect_uri = self.servers.redirect_uri();
        let mut findings = server::compare(server, &fresh, &redirect_uri, self.servers.client_metadata_url().is_some());
        let mut steps = Vec::new();
        findings.extend(server::probe_client(self, tenant, server, &fresh, &redirect_uri, &mut steps).await?);
        findings.extend(traffic::grants(self, tenant, server).await?);
        if let Some(t) = target {
            let key =
                GrantKey { tenant_id: tenant, user_id: t.user_id, agent_id: t.agent_id, mcp_server_id: server.id };
            match self.check_with_findings(&key).await {
                Ok((_, found)) => findings.extend(found),
                Err(DomainError::NotFound { .. }) => findings.push(connection::not_attached(&key)),
                Err(e) => return Err(e),
            }
        }
        let report = self.health.report(tenant, server.id).await?;
        traffic::merge_recent(&mut findings, &report);
        let mut discovery_result = fresh;
        discovery_result.steps.extend(steps);
        Ok(Diagnosis {
            server_id: server.id,
            checked_at: switchboard_domain::clock::now(),
            findings: sorted(findings),
            discovery_result,
        })
    }

    /// The runtime `check` with its findings: the live check with the grant's credentials, then
    /// what the grant's row says. Counted in the server's health as a `check`. An agent not
    /// attached to the server is a not-found, as for every runtime call.
    pub async fn check_with_findings(&self, key: &GrantKey) -> Result<(CheckOutcome, Vec<Finding>), DomainError> {
        let store = self.store.tenant(key.tenant_id);
        let server = store.get_mcp_server(key.mcp_server_id).await?;
        // The grant as it stood before this check (a failed check records its own error over a
        // refresh's, which must still be told).
        let grant = store
            .user_connections(&key.user_id, key.agent_id)
            .await?
            .into_iter()
            .find(|c| c.key.mcp_server_id == key.mcp_server_id);
        let started = std::time::Instant::now();
        let outcome = self.lifecycle.check(key).await?;
        let findings = sorted(connection::findings(&server, grant.as_ref(), &outcome));
        if outcome.precondition.is_none() {
            // Counted by what the live check itself showed.
            let failed = (!outcome.verification.ok)
                .then(|| {
                    let scopes = server.config.auth.scopes.clone().unwrap_or_default();
                    server::verification_findings(&outcome.verification, server.config.auth.kind, &scopes, &[])
                        .into_iter()
                        .next()
                })
                .flatten();
            // A failed check that names no finding (a 401 from a server configured with no auth,
            // which `diagnose` reports as the auth mode) still counts as a failure.
            let failed_code = match (&failed, outcome.verification.ok) {
                (Some(f), _) => f.code.as_str(),
                (None, true) => switchboard_domain::health::OK,
                (None, false) if outcome.verification.status == Some(401) => {
                    switchboard_domain::finding::FindingCode::UpstreamUnauthorized.as_str()
                }
                (None, false) => switchboard_domain::finding::FindingCode::UpstreamInvalid.as_str(),
            };
            self.health.record(
                key.tenant_id,
                key.mcp_server_id,
                Source::Check,
                failed_code,
                started.elapsed(),
                failed.as_ref().map(|f| f.detail.as_str()),
            );
        }
        Ok((outcome, findings))
    }
}

/// Worst first, then by code: a stable order for consoles and scripts.
fn sorted(mut findings: Vec<Finding>) -> Vec<Finding> {
    findings.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(&b.code)));
    findings
}
