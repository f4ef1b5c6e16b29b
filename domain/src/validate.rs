//! Field-by-field validation of JSON request bodies.
//!
//! Request bodies are validated from `serde_json::Value` rather than by serde's derive so that
//! every problem is reported at once, by JSON path, with a hint a person can act on — including
//! fields that are misplaced (`server_url`, a top-level `endpoint`) rather than merely unknown.

use serde_json::{Map, Value};
use url::{Host, Url};

use crate::{DomainError, FieldError};

/// Knobs of validation that come from the deployment, not the request.
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy {
    /// `SWITCHBOARD_ALLOW_PRIVATE_NETWORKS`: http URLs are accepted for loopback hosts.
    pub allow_private_networks: bool,
}

/// Collects field errors while a body is walked.
#[derive(Debug, Default)]
pub struct Errors(pub Vec<FieldError>);

impl Errors {
    pub fn push(&mut self, e: FieldError) {
        self.0.push(e);
    }

    pub fn required(&mut self, field: &str, what: &str) {
        self.push(FieldError::new(field, "required", format!("{field} is required: {what}")));
    }

    /// `Ok(value)` when nothing was collected, else all the errors.
    pub fn finish<T>(self, value: T) -> Result<T, DomainError> {
        if self.0.is_empty() { Ok(value) } else { Err(DomainError::Invalid(self.0)) }
    }
}

pub fn path(parent: &str, key: &str) -> String {
    if parent.is_empty() { key.to_owned() } else { format!("{parent}.{key}") }
}

/// The body's object, or an error naming it.
pub fn object<'v>(errs: &mut Errors, field: &str, value: &'v Value) -> Option<&'v Map<String, Value>> {
    match value {
        Value::Object(map) => Some(map),
        other => {
            let what = if field.is_empty() { "the request body" } else { field };
            errs.push(FieldError::new(
                if field.is_empty() { "body" } else { field },
                "invalid_type",
                format!("{what} must be a JSON object, got {}", type_name(other)),
            ));
            None
        }
    }
}

#[must_use]
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A string field: absent and null are `None`, anything else not a string is an error. The
/// rules are exactly what the OpenAPI document states (`minLength: 1`, `maxLength: max`, no NUL
/// character — Postgres text cannot hold one); the value is stored trimmed of surrounding
/// whitespace, unless that would leave nothing.
pub fn opt_string(errs: &mut Errors, map: &Map<String, Value>, parent: &str, key: &str, max: usize) -> Option<String> {
    let field = path(parent, key);
    match map.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::String(raw)) => {
            let s = if raw.trim().is_empty() { raw.as_str() } else { raw.trim() };
            if raw.contains('\0') {
                errs.push(FieldError::new(
                    field,
                    "invalid",
                    format!("{} must not contain a NUL character", path(parent, key)),
                ));
                None
            } else if s.is_empty() {
                errs.push(
                    FieldError::new(field, "invalid", format!("{} must not be empty", path(parent, key)))
                        .with_hint("omit the field instead of sending an empty string"),
                );
                None
            } else if raw.chars().count() > max {
                errs.push(FieldError::new(
                    field,
                    "too_long",
                    format!("{} is longer than {max} characters", path(parent, key)),
                ));
                None
            } else {
                Some(s.to_owned())
            }
        }
        Some(other) => {
            errs.push(FieldError::new(
                field.clone(),
                "invalid_type",
                format!("{field} must be a string, got {}", type_name(other)),
            ));
            None
        }
    }
}

/// Reports every key of `map` that is not in `allowed`, with a hint for the known mistakes.
pub fn reject_unknown(
    errs: &mut Errors,
    map: &Map<String, Value>,
    parent: &str,
    allowed: &[&str],
    hints: &[(&str, &str)],
) {
    for key in map.keys() {
        if allowed.contains(&key.as_str()) {
            continue;
        }
        let field = path(parent, key);
        let mut e = FieldError::new(field.clone(), "unknown_field", format!("{field} is not a field of this request"));
        if let Some((_, hint)) = hints.iter().find(|(k, _)| *k == key) {
            e = e.with_hint(*hint);
        } else {
            e = e.with_hint(format!("allowed fields here: {}", allowed.join(", ")));
        }
        errs.push(e);
    }
}

/// Checks an outbound URL: absolute http(s), a host, no userinfo, no fragment; http only for
/// loopback hosts and only when the policy allows private networks.
pub fn url(policy: Policy, field: &str, raw: &str) -> Result<Url, FieldError> {
    const MAX: usize = 2048;
    if raw.len() > MAX {
        return Err(FieldError::new(field, "too_long", format!("{field} is longer than {MAX} characters")));
    }
    let parsed = Url::parse(raw).map_err(|e| {
        FieldError::new(field, "invalid_url", format!("{field} is not an absolute URL ({e})"))
            .with_hint("use a full URL such as https://mcp.example.com/mcp")
    })?;
    let host_ok = parsed.host().is_some();
    if !matches!(parsed.scheme(), "https" | "http") || !host_ok {
        return Err(FieldError::new(field, "invalid_url", format!("{field} must be an http(s) URL with a host"))
            .with_hint("use a full URL such as https://mcp.example.com/mcp"));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(FieldError::new(field, "invalid_url", format!("{field} must not contain a user name or password"))
            .with_hint("put credentials in config.auth, never in the URL"));
    }
    if parsed.fragment().is_some() {
        return Err(FieldError::new(field, "invalid_url", format!("{field} must not contain a fragment (`#…`)")));
    }
    if parsed.scheme() == "http" {
        let loopback = is_loopback(&parsed);
        if !(loopback && policy.allow_private_networks) {
            let hint = if loopback {
                "http is accepted for loopback hosts only when the operator sets SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true (development and tests)"
            } else {
                "use https; plain http is only accepted for loopback hosts in development"
            };
            return Err(FieldError::new(field, "insecure_url", format!("{field} must use https")).with_hint(hint));
        }
    }
    Ok(parsed)
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost"),
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_follow_the_policy() {
        let strict = Policy::default();
        let dev = Policy { allow_private_networks: true };
        assert!(url(strict, "e", "https://mcp.example.com/mcp").is_ok());
        assert_eq!(url(strict, "e", "http://127.0.0.1:3000/mcp").err().map(|e| e.code), Some("insecure_url"));
        assert!(url(dev, "e", "http://127.0.0.1:3000/mcp").is_ok());
        assert!(url(dev, "e", "http://[::1]:3000/mcp").is_ok());
        assert!(url(dev, "e", "http://localhost:3000/mcp").is_ok());
        assert_eq!(url(dev, "e", "http://example.com/mcp").err().map(|e| e.code), Some("insecure_url"));
        for bad in [
            "mcp.example.com",
            "/mcp",
            "ftp://example.com/",
            "https://user:pw@example.com/",
            "https://example.com/#x",
            "https://example.com/#",
            "javascript:alert(1)",
            "file:///etc/passwd",
        ] {
            assert!(url(dev, "e", bad).is_err(), "{bad}");
        }
    }
}
