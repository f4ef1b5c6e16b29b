//! OAuth clients Switchboard registered with authorization servers, one per (tenant, issuer,
//! client type), pinned to the issuer and shared by every server of the tenant that uses it.

use chrono::{DateTime, Utc};

use crate::TenantId;
use crate::crypto::Secret;

/// Public (PKCE, no secret) or confidential (a client secret).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientType {
    Public,
    Confidential,
}

impl ClientType {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Confidential => "confidential",
        }
    }
}

/// A registered client. `Debug` shows no secret ([`Secret`] redacts itself).
#[derive(Clone, Debug)]
pub struct OAuthClient {
    pub id: uuid::Uuid,
    pub tenant_id: TenantId,
    pub issuer: String,
    pub client_type: ClientType,
    /// `dynamic_registration` or `client_id_metadata_document`.
    pub registration: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub registration_access_token: Option<Secret>,
    pub registration_client_uri: Option<String>,
    pub token_endpoint_auth_method: String,
    pub redirect_uri: String,
    pub created_at: DateTime<Utc>,
}

/// What a registration produced, before it is stored.
#[derive(Clone, Debug)]
pub struct NewOAuthClient {
    pub issuer: String,
    pub client_type: ClientType,
    pub registration: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    pub registration_access_token: Option<Secret>,
    pub registration_client_uri: Option<String>,
    pub token_endpoint_auth_method: String,
    pub redirect_uri: String,
}
