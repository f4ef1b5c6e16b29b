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
    /// Set when the tenant is being deleted: its grants are revoked and its keys gone; the row
    /// and all its data disappear once the revocations at the providers have run.
    pub deleted_at: Option<DateTime<Utc>>,
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
    if let Some(s) = &slug
        && let Err(e) = slug::check("slug", s)
    {
        errs.push(e);
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

/// A tenant's settings.
#[derive(Clone, Debug, Default)]
pub struct TenantSettings {
    /// Exact URLs the consent page may send the browser back to (`connect`'s `return_url`).
    pub return_urls: Vec<String>,
}

/// Validates `{"return_urls": [...]}`: absolute http(s) URLs without fragment or userinfo (http only
/// for loopback in development), at most 20, compared later by exact match — never a pattern.
pub fn validate_settings(policy: crate::validate::Policy, body: &Value) -> Result<TenantSettings, DomainError> {
    use crate::FieldError;
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(&mut errs, map, "", &["return_urls"], &[]);
    let mut urls: Vec<String> = Vec::new();
    match map.get("return_urls") {
        None | Some(Value::Null) => errs.required(
            "return_urls",
            "the exact URLs connect may name, e.g. [\"https://app.example.com/connected\"], or [] for none",
        ),
        Some(Value::Array(items)) if items.len() <= 20 => {
            for (i, item) in items.iter().enumerate() {
                let field = format!("return_urls[{i}]");
                match item.as_str() {
                    Some(raw) if raw.contains('*') => errs.push(FieldError::new(
                        field,
                        "invalid",
                        "return URLs are exact; patterns are not supported",
                    )),
                    Some(raw) => match validate::url(policy, &field, raw) {
                        Ok(u) if !urls.contains(&u.to_string()) => urls.push(u.to_string()),
                        Ok(_) => {}
                        Err(e) => errs.push(e),
                    },
                    None => errs.push(FieldError::new(field, "invalid_type", "each return URL must be a string")),
                }
            }
        }
        Some(_) => {
            errs.push(FieldError::new("return_urls", "invalid", "return_urls must be an array of at most 20 URLs"))
        }
    }
    errs.finish(TenantSettings { return_urls: urls })
}
