//! `rediscover_server`: the daily rediscovery of one server, keeping the last good discovery
//! when the authorization server does not answer.

use std::sync::Arc;

use switchboard_domain::clock::Reading;
use switchboard_domain::store::{ClaimedJob, JobEnd};
use switchboard_domain::tenant::Actor;
use switchboard_domain::validate::Policy;
use switchboard_domain::{DomainError, McpServerId};

use super::retry::retry_at;
use crate::servers::ServerSetup;

pub(super) async fn run(
    servers: Option<&(Arc<ServerSetup>, Policy)>,
    job: &ClaimedJob,
    id: McpServerId,
    clock: &Reading,
) -> Result<JobEnd, DomainError> {
    let Some((servers, policy)) = servers else {
        return Ok(JobEnd::Retry {
            at: retry_at(clock, job.attempts, None),
            error: "this worker was started without what rediscovery needs (its public URL)".into(),
        });
    };
    match servers.rediscover(job.tenant_id, id, &Actor::System, *policy, true).await {
        Ok(done) => {
            tracing::info!(mcp_server.id = %id, kept_last_good = done.kept_last_good, grants_ended = done.grants_ended, "server rediscovered");
            Ok(JobEnd::Done)
        }
        // Deleted since it was queued, or edited while it ran (the edit rediscovered it): done.
        Err(DomainError::NotFound { .. } | DomainError::Conflict { .. }) => Ok(JobEnd::Done),
        Err(e) => Err(e),
    }
}
