//! Durable jobs: work that must happen even if the process that promised it dies (revocation at
//! the provider after a disconnect, and the jobs that follow). Claimed with a lease
//! (`locked_by`, `locked_until`), retried with backoff (`run_at`, `attempts`), dead-lettered after
//! `max_attempts`. `payload` may hold sealed secrets; it is cleared when the job ends.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Jobs {
    Table,
    Id,
    TenantId,
    Kind,
    Payload,
    Status,
    Attempts,
    MaxAttempts,
    RunAt,
    LockedBy,
    LockedUntil,
    LastError,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Tenants {
    Table,
    Id,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table(Jobs::Table)
                .col(ColumnDef::new(Jobs::Id).uuid().not_null().primary_key())
                .col(ColumnDef::new(Jobs::TenantId).uuid().not_null())
                .col(ColumnDef::new(Jobs::Kind).text().not_null())
                .col(ColumnDef::new(Jobs::Payload).text().not_null())
                .col(ColumnDef::new(Jobs::Status).text().not_null())
                .col(ColumnDef::new(Jobs::Attempts).integer().not_null().default(0))
                .col(ColumnDef::new(Jobs::MaxAttempts).integer().not_null())
                .col(ColumnDef::new(Jobs::RunAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Jobs::LockedBy).text().null())
                .col(ColumnDef::new(Jobs::LockedUntil).timestamp_with_time_zone().null())
                .col(ColumnDef::new(Jobs::LastError).text().null())
                .col(ColumnDef::new(Jobs::CreatedAt).timestamp_with_time_zone().not_null())
                .col(ColumnDef::new(Jobs::UpdatedAt).timestamp_with_time_zone().not_null())
                .foreign_key(
                    ForeignKey::create()
                        .from(Jobs::Table, Jobs::TenantId)
                        .to(Tenants::Table, Tenants::Id)
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create().name("jobs_due").table(Jobs::Table).col(Jobs::Status).col(Jobs::RunAt).to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table(Jobs::Table).to_owned()).await
    }
}
