//! Tenant settings.

use sea_orm::{ActiveModelTrait, Set};

use super::entities::tenant_settings;
use super::{TenantStore, json_err, map_err};
use crate::DomainError;
use crate::tenant::TenantSettings;

impl TenantStore<'_> {
    pub async fn settings(&self) -> Result<TenantSettings, DomainError> {
        let row = self
            .find_by_id::<tenant_settings::Entity, _>(self.tenant_id.0)
            .one(&self.store.db)
            .await
            .map_err(map_err)?;
        Ok(match row {
            Some(r) => {
                TenantSettings { return_urls: serde_json::from_str(&r.return_urls).map_err(json_err("return urls"))? }
            }
            None => TenantSettings::default(),
        })
    }

    pub async fn put_settings(&self, settings: &TenantSettings) -> Result<TenantSettings, DomainError> {
        let (_write, txn) = self.store.begin_write().await?;
        let urls = serde_json::to_string(&settings.return_urls).map_err(json_err("return urls"))?;
        match self.find_by_id::<tenant_settings::Entity, _>(self.tenant_id.0).one(&txn).await.map_err(map_err)? {
            Some(row) => {
                let mut active: tenant_settings::ActiveModel = row.into();
                active.return_urls = Set(urls);
                active.updated_at = Set(crate::clock::now());
                active.update(&txn).await.map_err(map_err)?;
            }
            None => {
                tenant_settings::ActiveModel {
                    tenant_id: Set(self.tenant_id.0),
                    return_urls: Set(urls),
                    updated_at: Set(crate::clock::now()),
                }
                .insert(&txn)
                .await
                .map_err(map_err)?;
            }
        }
        txn.commit().await.map_err(map_err)?;
        Ok(settings.clone())
    }
}
