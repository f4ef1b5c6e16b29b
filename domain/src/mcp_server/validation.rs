//! The validation rules of the `config.endpoint` + `config.auth` contract: every problem of a
//! request reported at once, by JSON path, with a hint.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::{
    ALL_AUTH_FIELDS, AuthConfig, AuthType, McpServer, McpServerConfig, McpServerSpec, SecretChange, StoredSecrets,
};
use crate::crypto::Secret;
use crate::validate::{self, Errors, Policy, opt_string, path, reject_unknown};
use crate::{DomainError, FieldError, slug};

/// Validates the body of a discovery request: `{"endpoint": "https://…"}`.
pub fn validate_endpoint(policy: Policy, body: &Value) -> Result<url::Url, DomainError> {
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(&mut errs, map, "", &["endpoint"], &[("server_url", "use endpoint"), ("url", "use endpoint")]);
    let endpoint = match opt_string(&mut errs, map, "", "endpoint", 4096) {
        Some(raw) => validate::url(policy, "endpoint", &raw).map_err(|e| errs.push(e)).ok(),
        None => {
            if !map.contains_key("endpoint") {
                errs.required("endpoint", "the MCP server's Streamable HTTP URL, e.g. https://mcp.example.com/mcp");
            }
            None
        }
    };
    match (errs.0.is_empty(), endpoint) {
        (true, Some(u)) => Ok(u),
        _ => Err(DomainError::Invalid(errs.0)),
    }
}

/// Validates a create request.
pub fn validate_create(policy: Policy, body: &Value) -> Result<McpServerSpec, DomainError> {
    validate_spec(policy, body, StoredSecrets::default())
}

/// Validates a PATCH against the stored server: the patch is merged into the stored public view
/// (RFC 7396 merge patch; an `auth` whose `type` changes replaces the stored `auth` whole) and the
/// result is validated as a whole, so a PATCH can never store what a create would refuse.
pub fn validate_patch(policy: Policy, current: &McpServer, patch: &Value) -> Result<McpServerSpec, DomainError> {
    let mut errs = Errors::default();
    let Some(patch_map) = validate::object(&mut errs, "", patch) else {
        return Err(DomainError::Invalid(errs.0));
    };
    let mut merged = current.as_request_json();
    let type_changes = patch_map
        .get("config")
        .and_then(|c| c.get("auth"))
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        .is_some_and(|t| t != current.config.auth.kind.as_str());
    if type_changes && let Some(config) = merged.get_mut("config").and_then(Value::as_object_mut) {
        config.remove("auth");
    }
    merge_patch(&mut merged, patch);
    let stored = if type_changes {
        StoredSecrets::default()
    } else {
        StoredSecrets {
            auth_token: current.secret_hints.auth_token.is_some(),
            client_secret: current.secret_hints.client_secret.is_some(),
        }
    };
    // A `null` secret in the patch clears it; the merge removed the key, so read the raw patch.
    let cleared = |key: &str| {
        patch
            .get("config")
            .and_then(|c| c.get("auth"))
            .and_then(|a| a.as_object())
            .is_some_and(|a| a.get(key) == Some(&Value::Null))
    };
    let stored = StoredSecrets {
        auth_token: stored.auth_token && !cleared("auth_token"),
        client_secret: stored.client_secret && !cleared("client_secret"),
    };
    let mut spec = validate_spec(policy, &merged, stored)?;
    if cleared("auth_token") {
        spec.auth_token = SecretChange::Clear;
    }
    if cleared("client_secret") {
        spec.client_secret = SecretChange::Clear;
    }
    if type_changes {
        // Secrets of the old type never carry over to the new one.
        for change in [&mut spec.auth_token, &mut spec.client_secret] {
            if *change == SecretChange::Keep {
                *change = SecretChange::Clear;
            }
        }
    }
    Ok(spec)
}

/// RFC 7396 JSON merge patch.
fn merge_patch(target: &mut Value, patch: &Value) {
    let Value::Object(patch) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Map::new());
    }
    if let Value::Object(t) = target {
        for (k, v) in patch {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
    }
}

fn validate_spec(policy: Policy, body: &Value, stored: StoredSecrets) -> Result<McpServerSpec, DomainError> {
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(
        &mut errs,
        map,
        "",
        &["name", "slug", "description", "config"],
        &[
            ("server_url", "use config.endpoint: `{\"config\": {\"endpoint\": \"https://…\"}}`"),
            ("url", "use config.endpoint: `{\"config\": {\"endpoint\": \"https://…\"}}`"),
            ("endpoint", "move it into config: `{\"config\": {\"endpoint\": \"https://…\"}}`"),
            ("auth", "move it into config: `{\"config\": {\"auth\": {\"type\": \"…\"}}}`"),
            ("headers", "move it into config: `{\"config\": {\"headers\": {…}}}`"),
            ("discovery_result", "discovery_result is computed by Switchboard and cannot be set"),
        ],
    );
    let name = opt_string(&mut errs, map, "", "name", 200);
    if matches!(map.get("name"), None | Some(Value::Null)) {
        errs.required("name", "a display name such as \"Linear\"");
    }
    let description = opt_string(&mut errs, map, "", "description", 2000);
    let slug = match opt_string(&mut errs, map, "", "slug", slug::MAX_LEN + 1) {
        Some(s) => match slug::check("slug", &s) {
            Ok(()) => Some(s),
            Err(e) => {
                errs.push(e);
                None
            }
        },
        // A name with nothing to derive a slug from gets `server` (then `server-2`, …).
        None => None,
    };
    let config =
        match map.get("config") {
            None | Some(Value::Null) => {
                errs.push(FieldError::new("config", "required", "config is required").with_hint(
                    "send `{\"config\": {\"endpoint\": \"https://…/mcp\", \"auth\": {\"type\": \"none\"}}}`",
                ));
                None
            }
            Some(v) => validate_config(&mut errs, policy, v, stored),
        };
    let (Some((config, auth_token, client_secret)), Some(name), true) = (config, name, errs.0.is_empty()) else {
        return Err(DomainError::Invalid(errs.0));
    };
    Ok(McpServerSpec { name, slug, description, config, auth_token, client_secret, discovery_result: None })
}

fn validate_config(
    errs: &mut Errors,
    policy: Policy,
    value: &Value,
    stored: StoredSecrets,
) -> Option<(McpServerConfig, SecretChange, SecretChange)> {
    let map = validate::object(errs, "config", value)?;
    reject_unknown(
        errs,
        map,
        "config",
        &["endpoint", "headers", "auth"],
        &[
            ("server_url", "use config.endpoint"),
            ("url", "use config.endpoint"),
            ("type", "the auth type goes in config.auth.type"),
            ("auth_token", "secrets go in config.auth: `{\"auth\": {\"type\": \"token\", \"auth_token\": \"…\"}}`"),
            ("client_id", "OAuth client fields go in config.auth"),
            ("client_secret", "OAuth client fields go in config.auth"),
        ],
    );
    let endpoint = match opt_string(errs, map, "config", "endpoint", 4096) {
        Some(raw) => match validate::url(policy, "config.endpoint", &raw) {
            Ok(u) => Some(u.to_string()),
            Err(e) => {
                errs.push(e);
                None
            }
        },
        None => {
            if !map.contains_key("endpoint") {
                errs.push(
                    FieldError::new("config.endpoint", "required", "config.endpoint is required")
                        .with_hint("the MCP server's Streamable HTTP URL, e.g. https://mcp.example.com/mcp"),
                );
            }
            None
        }
    };
    let headers = validate_headers(errs, map.get("headers"));
    let auth = match map.get("auth") {
        None | Some(Value::Null) => {
            errs.push(FieldError::new("config.auth", "required", "config.auth is required").with_hint(format!(
                "send `{{\"type\": \"none\"}}` for a server without auth; types: {}",
                AuthType::ALL.join(", ")
            )));
            None
        }
        Some(v) => validate_auth(errs, policy, v, stored),
    };
    match (endpoint, headers, auth) {
        (Some(endpoint), Some(headers), Some((auth, t, s))) => {
            Some((McpServerConfig { endpoint, headers, auth }, t, s))
        }
        _ => None,
    }
}

fn validate_headers(errs: &mut Errors, value: Option<&Value>) -> Option<BTreeMap<String, String>> {
    const FORBIDDEN: &[&str] = &[
        "authorization",
        "host",
        "content-length",
        "content-type",
        "accept",
        "connection",
        "transfer-encoding",
        "mcp-session-id",
        "mcp-protocol-version",
        "cookie",
    ];
    let mut out = BTreeMap::new();
    let map = match value {
        None | Some(Value::Null) => return Some(out),
        Some(v) => validate::object(errs, "config.headers", v)?,
    };
    let before = errs.0.len();
    if map.len() > 32 {
        errs.push(FieldError::new("config.headers", "too_many", "config.headers may hold at most 32 headers"));
    }
    for (name, v) in map {
        let field = format!("config.headers.{name}");
        let token = !name.is_empty()
            && name.len() <= 128
            && name.bytes().all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            errs.push(FieldError::new(field, "invalid", format!("`{name}` is not a valid HTTP header name")));
            continue;
        }
        if FORBIDDEN.contains(&name.to_ascii_lowercase().as_str()) {
            let hint = if name.eq_ignore_ascii_case("authorization") {
                "use config.auth (type `token` with auth_token) so the credential is encrypted and never shown"
            } else {
                "Switchboard sets this header itself"
            };
            errs.push(
                FieldError::new(field, "not_allowed", format!("header `{name}` cannot be set here")).with_hint(hint),
            );
            continue;
        }
        match v {
            Value::String(s) if s.len() <= 4096 && s.bytes().all(|b| b == b'\t' || (0x20..0x7f).contains(&b)) => {
                out.insert(name.clone(), s.clone());
            }
            _ => errs.push(FieldError::new(
                field,
                "invalid",
                format!("header `{name}` must be a string of visible ASCII characters"),
            )),
        }
    }
    (errs.0.len() == before).then_some(out)
}

fn validate_auth(
    errs: &mut Errors,
    policy: Policy,
    value: &Value,
    stored: StoredSecrets,
) -> Option<(AuthConfig, SecretChange, SecretChange)> {
    let map = validate::object(errs, "config.auth", value)?;
    let kind = match map.get("type") {
        Some(Value::String(t)) => match AuthType::parse(t) {
            Some(k) => k,
            None => {
                errs.push(
                    FieldError::new("config.auth.type", "invalid", format!("`{t}` is not an auth type"))
                        .with_hint(format!("use one of: {}", AuthType::ALL.join(", "))),
                );
                return None;
            }
        },
        _ => {
            errs.push(
                FieldError::new("config.auth.type", "required", "config.auth.type is required")
                    .with_hint(format!("use one of: {}", AuthType::ALL.join(", "))),
            );
            return None;
        }
    };
    let before = errs.0.len();
    let allowed = kind.fields();
    for key in map.keys().filter(|k| k.as_str() != "type") {
        let field = format!("config.auth.{key}");
        if !ALL_AUTH_FIELDS.contains(&key.as_str()) {
            errs.push(
                FieldError::new(field.clone(), "unknown_field", format!("{field} is not an auth field"))
                    .with_hint(format!("fields for `{}`: {}", kind.as_str(), allowed.join(", "))),
            );
        } else if !allowed.contains(&key.as_str()) && !map[key].is_null() {
            errs.push(
                FieldError::new(
                    field.clone(),
                    "not_allowed",
                    format!("{field} is not used by auth type `{}`", kind.as_str()),
                )
                .with_hint(if allowed.is_empty() {
                    "remove it".to_owned()
                } else {
                    format!("fields for `{}`: {}", kind.as_str(), allowed.join(", "))
                }),
            );
        }
    }
    let p = "config.auth";
    let get = |errs: &mut Errors, key: &str, max: usize| {
        if allowed.contains(&key) { opt_string(errs, map, p, key, max) } else { None }
    };
    let url_field = |errs: &mut Errors, key: &str| {
        let raw = get(errs, key, 2048)?;
        match validate::url(policy, &path(p, key), &raw) {
            Ok(u) => Some(u.to_string()),
            Err(e) => {
                errs.push(e);
                None
            }
        }
    };
    let client_id = get(errs, "client_id", 512);
    let auth_url = url_field(errs, "auth_url");
    let token_url = url_field(errs, "token_url");
    let register_url = url_field(errs, "register_url");
    let resource = get(errs, "resource", 2048).and_then(|raw| match url::Url::parse(&raw) {
        Ok(u)
            if u.fragment().is_none()
                && matches!(u.scheme(), "https" | "http")
                && validate::resource_matches(policy, &raw) =>
        {
            Some(raw)
        }
        _ => {
            errs.push(FieldError::new("config.auth.resource", "invalid_url", "config.auth.resource must be an absolute http(s) URI without a fragment (RFC 8707)")
                .with_hint("usually the MCP endpoint itself, e.g. https://mcp.example.com/mcp; leave it out to use the one discovery finds"));
            None
        }
    });
    let scopes = if allowed.contains(&"scopes") { validate_scopes(errs, map.get("scopes")) } else { None };
    let auth_token = secret_change(errs, map, "auth_token", allowed, stored.auth_token);
    let client_secret = secret_change(errs, map, "client_secret", allowed, stored.client_secret);

    let has =
        |c: &SecretChange, stored: bool| matches!(c, SecretChange::Set(_)) || (stored && *c == SecretChange::Keep);
    match kind {
        AuthType::Token if !has(&auth_token, stored.auth_token) => {
            errs.push(
                FieldError::new(
                    "config.auth.auth_token",
                    "required",
                    "config.auth.auth_token is required for auth type `token`",
                )
                .with_hint(
                    "the bearer token Switchboard sends to the server; it is encrypted at rest and never shown again",
                ),
            );
        }
        AuthType::OauthClientCredentials => {
            if client_id.is_none() {
                errs.push(FieldError::new(
                    "config.auth.client_id",
                    "required",
                    "config.auth.client_id is required for auth type `oauth_client_credentials`",
                ));
            }
            if !has(&client_secret, stored.client_secret) {
                errs.push(FieldError::new(
                    "config.auth.client_secret",
                    "required",
                    "config.auth.client_secret is required for auth type `oauth_client_credentials`",
                ));
            }
        }
        AuthType::OauthAuthorizationCodeConfidentialPkce => {
            let secret = has(&client_secret, stored.client_secret);
            if client_id.is_some() && !secret {
                errs.push(
                    FieldError::new(
                        "config.auth.client_secret",
                        "required",
                        "config.auth.client_secret is required when client_id is given for a confidential client",
                    )
                    .with_hint("or leave out client_id too and Switchboard registers a client for you"),
                );
            }
            if client_id.is_none() && matches!(client_secret, SecretChange::Set(_)) {
                errs.push(FieldError::new(
                    "config.auth.client_id",
                    "required",
                    "config.auth.client_id is required when client_secret is given",
                ));
            }
        }
        _ => {}
    }
    if errs.0.len() != before {
        return None;
    }
    Some((
        AuthConfig { kind, client_id, auth_url, token_url, register_url, scopes, resource },
        auth_token,
        client_secret,
    ))
}

fn validate_scopes(errs: &mut Errors, value: Option<&Value>) -> Option<Vec<String>> {
    let field = "config.auth.scopes";
    let items = match value {
        None | Some(Value::Null) => return None,
        Some(Value::Array(items)) => items,
        Some(Value::String(_)) => {
            errs.push(
                FieldError::new(field, "invalid_type", "config.auth.scopes must be an array of strings")
                    .with_hint("send `[\"read\", \"write\"]`, not a space-separated string"),
            );
            return None;
        }
        Some(other) => {
            errs.push(FieldError::new(
                field,
                "invalid_type",
                format!("config.auth.scopes must be an array of strings, got {}", validate::type_name(other)),
            ));
            return None;
        }
    };
    let mut out: Vec<String> = Vec::with_capacity(items.len());
    for (i, item) in items.iter().enumerate() {
        // RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        match item.as_str() {
            Some(s)
                if !s.is_empty()
                    && s.len() <= 256
                    && s.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) =>
            {
                if !out.iter().any(|o| o == s) {
                    out.push(s.to_owned());
                }
            }
            _ => errs.push(FieldError::new(
                format!("{field}[{i}]"),
                "invalid",
                "each scope must be a non-empty string without spaces, quotes or backslashes (RFC 6749 §3.3)",
            )),
        }
    }
    if out.len() > 100 {
        errs.push(FieldError::new(field, "too_many", "config.auth.scopes may hold at most 100 scopes"));
    }
    Some(out)
}

fn secret_change(
    errs: &mut Errors,
    map: &Map<String, Value>,
    key: &str,
    allowed: &[&str],
    stored: bool,
) -> SecretChange {
    if !allowed.contains(&key) {
        return SecretChange::Keep;
    }
    match map.get(key) {
        None | Some(Value::Null) => SecretChange::Keep,
        Some(Value::String(s)) if !s.is_empty() && s.chars().count() <= 8192 => {
            SecretChange::Set(Secret::new(s.clone()))
        }
        // The masked form a GET returned, sent back unchanged by a console: keep the stored value
        // (there must be one to keep).
        Some(Value::Object(o)) if o.contains_key("set") && stored => SecretChange::Keep,
        Some(_) => {
            errs.push(FieldError::new(
                format!("config.auth.{key}"),
                "invalid",
                format!("config.auth.{key} must be a non-empty string"),
            ));
            SecretChange::Keep
        }
    }
}
