//! Registered OAuth clients; their secrets sealed with AAD bound to (tenant, row, column).

use sea_orm::{ActiveModelTrait, ColumnTrait, QueryFilter, Set};

use super::entities::oauth_clients;
use super::{TenantStore, is_unique_violation, map_err};
use crate::DomainError;
use crate::crypto::{SealContext, Secret};
use crate::oauth_client::{ClientType, NewOAuthClient, OAuthClient};

const TABLE: &str = "oauth_clients";

impl TenantStore<'_> {
    fn client_ctx<'c>(&self, row: uuid::Uuid, column: &'c str) -> SealContext<'c> {
        SealContext { tenant: self.tenant_id, table: TABLE, column, row }
    }

    fn seal_opt(&self, row: uuid::Uuid, column: &str, secret: Option<&Secret>) -> Result<Option<Vec<u8>>, DomainError> {
        secret
            .map(|s| self.store.envelope.seal(&self.client_ctx(row, column), s.expose().as_bytes()))
            .transpose()
            .map_err(|e| DomainError::internal_from("sealing an oauth client secret failed", e))
    }

    fn open_opt(&self, row: uuid::Uuid, column: &str, sealed: Option<&[u8]>) -> Result<Option<Secret>, DomainError> {
        sealed
            .map(|b| {
                let plain = self
                    .store
                    .envelope
                    .open(&self.client_ctx(row, column), b)
                    .map_err(|e| DomainError::internal(format!("oauth client {row}: {e}")))?;
                String::from_utf8(plain)
                    .map(Secret::new)
                    .map_err(|_| DomainError::internal("sealed secret is not UTF-8"))
            })
            .transpose()
    }

    fn client_from_row(&self, m: oauth_clients::Model) -> Result<OAuthClient, DomainError> {
        Ok(OAuthClient {
            client_secret: self.open_opt(m.id, "client_secret", m.client_secret.as_deref())?,
            registration_access_token: self.open_opt(
                m.id,
                "registration_access_token",
                m.registration_access_token.as_deref(),
            )?,
            id: m.id,
            tenant_id: m.tenant_id.into(),
            issuer: m.issuer,
            client_type: if m.client_type == "confidential" { ClientType::Confidential } else { ClientType::Public },
            registration: m.registration,
            client_id: m.client_id,
            registration_client_uri: m.registration_client_uri,
            token_endpoint_auth_method: m.token_endpoint_auth_method,
            redirect_uri: m.redirect_uri,
            created_at: m.created_at,
        })
    }

    /// The client registered with `issuer`, if any.
    pub async fn find_oauth_client(
        &self,
        issuer: &str,
        client_type: ClientType,
    ) -> Result<Option<OAuthClient>, DomainError> {
        let found = self
            .find::<oauth_clients::Entity>()
            .filter(oauth_clients::Column::Issuer.eq(issuer))
            .filter(oauth_clients::Column::ClientType.eq(client_type.as_str()))
            .one(&self.store.db)
            .await
            .map_err(map_err)?;
        found.map(|m| self.client_from_row(m)).transpose()
    }

    /// Stores a registration. If another process stored one for the same issuer first, that one
    /// is kept and returned (one client per tenant, issuer and type).
    pub async fn save_oauth_client(&self, new: NewOAuthClient) -> Result<OAuthClient, DomainError> {
        let id = uuid::Uuid::now_v7();
        let model = oauth_clients::ActiveModel {
            id: Set(id),
            tenant_id: Set(self.tenant_id.0),
            issuer: Set(new.issuer.clone()),
            client_type: Set(new.client_type.as_str().to_owned()),
            registration: Set(new.registration),
            client_id: Set(new.client_id),
            client_secret: Set(self.seal_opt(id, "client_secret", new.client_secret.as_ref())?),
            registration_access_token: Set(self.seal_opt(
                id,
                "registration_access_token",
                new.registration_access_token.as_ref(),
            )?),
            registration_client_uri: Set(new.registration_client_uri),
            token_endpoint_auth_method: Set(new.token_endpoint_auth_method),
            redirect_uri: Set(new.redirect_uri),
            created_at: Set(crate::clock::now()),
        };
        match model.insert(&self.store.db).await {
            Ok(m) => self.client_from_row(m),
            Err(e) if is_unique_violation(&e) => self
                .find_oauth_client(&new.issuer, new.client_type)
                .await?
                .ok_or_else(|| DomainError::internal("oauth client vanished after a conflict")),
            Err(e) => Err(map_err(e)),
        }
    }
}
