//! `purge_tenant`: the last step of a tenant's deletion, once its revocation and delivery jobs
//! are done.

use switchboard_domain::DomainError;
use switchboard_domain::clock::Reading;
use switchboard_domain::store::{ClaimedJob, JobEnd, PurgeStep, Store};

use super::retry::retry_at;

pub(super) async fn run(store: &Store, job: &ClaimedJob, clock: &Reading) -> Result<JobEnd, DomainError> {
    Ok(match store.queue().purge_tenant(job.tenant_id).await? {
        PurgeStep::Purged => {
            tracing::info!(tenant.id = %job.tenant_id, "tenant purged");
            JobEnd::Done
        }
        PurgeStep::NotDeleting => JobEnd::Dead { error: "the tenant is not being deleted".into() },
        PurgeStep::Waiting { jobs } => JobEnd::Retry {
            at: retry_at(clock, job.attempts, None),
            error: format!("waiting for {jobs} revocation or delivery jobs of the tenant"),
        },
    })
}
