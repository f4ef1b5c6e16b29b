//! Durable jobs: the queue is a table, so a job survives any process and Redis is never needed to
//! keep one. A claim takes a lease (`locked_by`, `locked_until`) and counts an attempt; a job whose
//! holder died becomes claimable again when its lease lapses, so delivery is at least once and
//! handlers are idempotent. A finished job clears its payload (it may hold sealed secrets).
//!
//! Claiming is the one place where the dialects differ: Postgres claims a batch in one statement
//! with `FOR UPDATE SKIP LOCKED`; SQLite (one writer at a time) claims row by row with a
//! compare-and-swap on the lease.

use chrono::{DateTime, Utc};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult, QueryFilter,
    QueryOrder, QuerySelect, Set, Statement,
};

use super::entities::jobs;
use super::{QueueStore, TenantStore, map_err};
use crate::job::Job;
use crate::{DomainError, TenantId};

/// A claimed job.
#[derive(Clone, Debug)]
pub struct ClaimedJob {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    /// The `kind` column, as stored (for logs, and for a kind this code does not know).
    pub kind: String,
    /// What to do; an error when the stored kind or payload is not one this code knows.
    pub job: Result<Job, String>,
    /// Attempts so far, this one included.
    pub attempts: i32,
    pub max_attempts: i32,
}

/// How an attempt ended.
#[derive(Clone, Debug)]
pub enum JobEnd {
    Done,
    /// Try again at `at` (unless that was the last attempt: then the job is dead).
    Retry {
        at: DateTime<Utc>,
        error: String,
    },
    /// Not worth retrying.
    Dead {
        error: String,
    },
}

/// A job as listed (no payload).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobSummary {
    pub id: uuid::Uuid,
    pub kind: String,
    /// `queued`, `done` or `dead`.
    pub status: String,
    pub attempts: i32,
    pub last_error: Option<String>,
}

#[derive(Debug, FromQueryResult)]
struct ClaimedRow {
    id: uuid::Uuid,
    tenant_id: uuid::Uuid,
    kind: String,
    payload: String,
    attempts: i32,
    max_attempts: i32,
}

fn lease_free(now: DateTime<Utc>) -> Condition {
    Condition::any().add(jobs::Column::LockedUntil.is_null()).add(jobs::Column::LockedUntil.lt(now))
}

/// Enqueues a job in `db` — a transaction, when the job must exist exactly if a change commits.
pub(super) async fn enqueue(
    db: &impl ConnectionTrait,
    tenant: TenantId,
    job: &Job,
    max_attempts: i32,
) -> Result<uuid::Uuid, DomainError> {
    enqueue_with_id(db, uuid::Uuid::now_v7(), tenant, job, max_attempts).await
}

/// [`enqueue`] with the id chosen by the caller (a payload sealed for this job names it).
pub(super) async fn enqueue_with_id(
    db: &impl ConnectionTrait,
    id: uuid::Uuid,
    tenant: TenantId,
    job: &Job,
    max_attempts: i32,
) -> Result<uuid::Uuid, DomainError> {
    let (kind, payload) = job.to_columns().map_err(|e| DomainError::internal_from("encoding a job", e))?;
    let now = crate::clock::now();
    // Due at once for every worker, including one whose clock is behind this process's: "what
    // is due" is read on the database's clock, and this stamp is the process's.
    let run_at = now - chrono::TimeDelta::minutes(10);
    jobs::ActiveModel {
        id: Set(id),
        tenant_id: Set(tenant.0),
        kind: Set(kind.to_owned()),
        payload: Set(payload),
        status: Set("queued".into()),
        attempts: Set(0),
        max_attempts: Set(max_attempts),
        run_at: Set(run_at),
        locked_by: Set(None),
        locked_until: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(db)
    .await
    .map_err(map_err)?;
    Ok(id)
}

impl QueueStore<'_> {
    /// Claims up to `limit` due jobs for `owner` until `until`. Each claim counts an attempt.
    pub async fn claim_jobs(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ClaimedJob>, DomainError> {
        let rows = match self.db.get_database_backend() {
            DbBackend::Postgres => {
                let sql = "UPDATE jobs SET locked_by = $1, locked_until = $2, attempts = attempts + 1, updated_at = $3 \
                           WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $3 \
                           AND attempts < max_attempts \
                           AND (locked_until IS NULL OR locked_until < $3) ORDER BY run_at LIMIT $4 FOR UPDATE SKIP LOCKED) \
                           RETURNING id, tenant_id, kind, payload, attempts, max_attempts";
                ClaimedRow::find_by_statement(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    sql,
                    [owner.into(), until.into(), now.into(), i64::try_from(limit).unwrap_or(i64::MAX).into()],
                ))
                .all(&self.db)
                .await
                .map_err(map_err)?
            }
            _ => self.claim_row_by_row(owner, now, until, limit).await?,
        };
        rows.into_iter()
            .map(|r| {
                Ok(ClaimedJob {
                    id: r.id,
                    tenant_id: TenantId(r.tenant_id),
                    job: Job::from_columns(&r.kind, &r.payload).map_err(|e| e.to_string()),
                    kind: r.kind,
                    attempts: r.attempts,
                    max_attempts: r.max_attempts,
                })
            })
            .collect()
    }

    async fn claim_row_by_row(
        &self,
        owner: &str,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<ClaimedRow>, DomainError> {
        let candidates = jobs::Entity::find()
            .filter(jobs::Column::Status.eq("queued"))
            .filter(jobs::Column::RunAt.lte(now))
            .filter(Expr::col(jobs::Column::Attempts).lt(Expr::col(jobs::Column::MaxAttempts)))
            .filter(lease_free(now))
            .order_by_asc(jobs::Column::RunAt)
            .limit(limit)
            .all(&self.db)
            .await
            .map_err(map_err)?;
        let mut out = Vec::new();
        for job in candidates {
            let res = jobs::Entity::update_many()
                .col_expr(jobs::Column::LockedBy, Expr::value(owner))
                .col_expr(jobs::Column::LockedUntil, Expr::value(until))
                .col_expr(jobs::Column::Attempts, Expr::col(jobs::Column::Attempts).add(1))
                .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
                .filter(jobs::Column::Id.eq(job.id))
                .filter(jobs::Column::Status.eq("queued"))
                .filter(jobs::Column::Attempts.eq(job.attempts))
                .filter(lease_free(now))
                .exec(&self.db)
                .await
                .map_err(map_err)?;
            if res.rows_affected == 1 {
                out.push(ClaimedRow {
                    id: job.id,
                    tenant_id: job.tenant_id,
                    kind: job.kind,
                    payload: job.payload,
                    attempts: job.attempts + 1,
                    max_attempts: job.max_attempts,
                });
            }
        }
        Ok(out)
    }

    /// Ends an attempt, if `owner` still holds the job. A job that ends (done or dead) loses its
    /// payload; a retry past the last attempt is dead.
    pub async fn finish_job(&self, job: &ClaimedJob, owner: &str, end: &JobEnd) -> Result<bool, DomainError> {
        let now = crate::clock::now();
        let mut update = jobs::Entity::update_many()
            .col_expr(jobs::Column::LockedBy, Expr::value(Option::<String>::None))
            .col_expr(jobs::Column::LockedUntil, Expr::value(Option::<DateTime<Utc>>::None))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .filter(jobs::Column::Id.eq(job.id))
            .filter(jobs::Column::LockedBy.eq(owner));
        let last = job.attempts >= job.max_attempts;
        update = match end {
            JobEnd::Done => update
                .col_expr(jobs::Column::Status, Expr::value("done"))
                .col_expr(jobs::Column::Payload, Expr::value("{}"))
                .col_expr(jobs::Column::LastError, Expr::value(Option::<String>::None)),
            JobEnd::Retry { at, error } if !last => update
                .col_expr(jobs::Column::RunAt, Expr::value(*at))
                .col_expr(jobs::Column::LastError, Expr::value(error.clone())),
            JobEnd::Retry { error, .. } | JobEnd::Dead { error } => update
                .col_expr(jobs::Column::Status, Expr::value("dead"))
                .col_expr(jobs::Column::Payload, Expr::value("{}"))
                .col_expr(jobs::Column::LastError, Expr::value(error.clone())),
        };
        Ok(update.exec(&self.db).await.map_err(map_err)?.rows_affected == 1)
    }
}

impl TenantStore<'_> {
    /// This tenant's jobs, newest first (for operators and tests; payloads are never shown).
    pub async fn list_jobs(&self) -> Result<Vec<JobSummary>, DomainError> {
        let rows =
            self.find::<jobs::Entity>().order_by_desc(jobs::Column::Id).all(&self.store.db).await.map_err(map_err)?;
        Ok(rows
            .into_iter()
            .map(|r| JobSummary {
                id: r.id,
                kind: r.kind,
                status: r.status,
                attempts: r.attempts,
                last_error: r.last_error,
            })
            .collect())
    }
}

impl QueueStore<'_> {
    /// Deletes jobs that finished (`done`) before `before`; dead jobs stay for operators. Also
    /// buries jobs whose worker died during their last attempt (lease lapsed as of `now`, the
    /// database time leases are measured on; no attempt left), which no claim will take again.
    pub async fn purge_done_jobs(&self, now: DateTime<Utc>, before: DateTime<Utc>) -> Result<u64, DomainError> {
        jobs::Entity::update_many()
            .col_expr(jobs::Column::Status, Expr::value("dead"))
            .col_expr(jobs::Column::Payload, Expr::value("{}"))
            .col_expr(jobs::Column::LastError, Expr::value("the worker stopped during the last attempt"))
            .col_expr(jobs::Column::UpdatedAt, Expr::value(now))
            .filter(jobs::Column::Status.eq("queued"))
            .filter(Expr::col(jobs::Column::Attempts).gte(Expr::col(jobs::Column::MaxAttempts)))
            .filter(lease_free(now))
            .exec(&self.db)
            .await
            .map_err(map_err)?;
        Ok(jobs::Entity::delete_many()
            .filter(jobs::Column::Status.eq("done"))
            .filter(jobs::Column::UpdatedAt.lt(before))
            .exec(&self.db)
            .await
            .map_err(map_err)?
            .rows_affected)
    }

    /// The flow-expiry sweep: deletes consent flows past their expiry (used or not: a used one
    /// holds nothing more) and puts grants still `pending_consent` without a live flow back to
    /// `not_connected`. Returns (flows deleted, grants reset). Idempotent; any worker may run it.
    pub async fn sweep_expired_flows(&self, now: DateTime<Utc>) -> Result<(u64, u64), DomainError> {
        use sea_orm::sea_query::{Alias, Query};

        use super::entities::{auth_flows, connections};
        let deleted = auth_flows::Entity::delete_many()
            .filter(auth_flows::Column::ExpiresAt.lt(now))
            .exec(&self.db)
            .await
            .map_err(map_err)?
            .rows_affected;
        let f = Alias::new("f");
        let live = Query::select()
            .expr(Expr::val(1))
            .from_as(auth_flows::Entity, f.clone())
            .and_where(
                Expr::col((f.clone(), auth_flows::Column::TenantId))
                    .equals((connections::Entity, connections::Column::TenantId)),
            )
            .and_where(
                Expr::col((f.clone(), auth_flows::Column::UserId))
                    .equals((connections::Entity, connections::Column::UserId)),
            )
            .and_where(
                Expr::col((f.clone(), auth_flows::Column::AgentId))
                    .equals((connections::Entity, connections::Column::AgentId)),
            )
            .and_where(
                Expr::col((f, auth_flows::Column::McpServerId))
                    .equals((connections::Entity, connections::Column::McpServerId)),
            )
            .to_owned();
        let reset = connections::Entity::update_many()
            .col_expr(connections::Column::Status, Expr::value("not_connected"))
            .col_expr(connections::Column::UpdatedAt, Expr::value(now))
            .filter(connections::Column::Status.eq("pending_consent"))
            .filter(Expr::exists(live).not())
            .exec(&self.db)
            .await
            .map_err(map_err)?
            .rows_affected;
        Ok((deleted, reset))
    }
}
