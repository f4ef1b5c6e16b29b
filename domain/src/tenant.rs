//! Tenants and their API keys.

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::crypto::Secret;
use crate::validate::{self, Errors, opt_string, reject_unknown};
use crate::{ApiKeyId, DomainError, TenantId, slug};

#[derive(Clone, Debug)]
pub struct Tenant {
    pub id: TenantId,
    pub name: String,
    pub slug: String,
    pub created_at: DateTime<Utc>,
}

/// A stored API key: never its plaintext.
#[derive(Clone, Debug)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub tenant_id: TenantId,
    pub name: Option<String>,
    pub prefix: String,
    pub created_at: DateTime<Utc>,
}

/// An API key at the one moment its plaintext exists: right after it was created.
#[derive(Debug)]
pub struct CreatedApiKey {
    pub key: ApiKey,
    pub plaintext: Secret,
}

/// Who is acting, for the audit trail.
#[derive(Clone, Debug)]
pub enum Actor {
    Admin,
    ApiKey(ApiKeyId),
    /// An end user, through a session ticket or a consent page.
    User(String),
    System,
}

impl Actor {
    #[must_use]
    pub fn label(&self) -> String {
        match self {
            Self::Admin => "admin".into(),
            Self::ApiKey(id) => format!("api_key:{id}"),
            Self::User(id) => format!("user:{id}"),
            Self::System => "system".into(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct TenantSpec {
    pub name: String,
    pub slug: Option<String>,
}

/// Validates `{name, slug?}`.
pub fn validate_create(body: &Value) -> Result<TenantSpec, DomainError> {
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(&mut errs, map, "", &["name", "slug"], &[]);
    let name = opt_string(&mut errs, map, "", "name", 200);
    if !map.contains_key("name") || map["name"].is_null() {
        errs.required("name", "the tenant's display name");
    }
    let slug = opt_string(&mut errs, map, "", "slug", slug::MAX_LEN + 1);
    if let Some(s) = &slug {
        if let Err(e) = slug::check("slug", s) {
            errs.push(e);
        }
    } else if name.as_deref().is_some_and(|n| slug::derive(n).is_none()) {
        errs.required("slug", "no slug can be derived from this name; pass one");
    }
    let spec = name.map(|name| TenantSpec { name, slug });
    errs.finish(spec).and_then(|s| s.ok_or_else(|| DomainError::invalid("name", "required", "name is required")))
}

/// Validates the optional `{name}` of a new API key.
pub fn validate_api_key(body: Option<&Value>) -> Result<Option<String>, DomainError> {
    let Some(body) = body.filter(|b| !b.is_null()) else { return Ok(None) };
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(&mut errs, map, "", &["name"], &[]);
    let name = opt_string(&mut errs, map, "", "name", 200);
    errs.finish(name)
}
