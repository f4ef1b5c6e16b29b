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

/// The grammar of an https URL Switchboard stores, as the OpenAPI document states it: a DNS name
/// (two labels or more, the last starting with a letter), an optional port, a path and a query of
/// unreserved, sub-delim and percent-encoded characters; no user info, no fragment. What the
/// document's pattern accepts the server accepts, and the reverse.
pub const HTTPS_URL: &str = r"^https://([A-Za-z0-9-]+\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$";

#[expect(clippy::expect_used, reason = "a constant pattern; the tests compile it")]
static HTTPS_URL_RE: std::sync::LazyLock<regex::Regex> =
    std::sync::LazyLock::new(|| regex::Regex::new(HTTPS_URL).expect("the https URL pattern compiles"));

#[expect(clippy::expect_used, reason = "a constant pattern; the tests compile it")]
static RESOURCE_RE: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(&HTTPS_URL.replacen("^https://", "^https?://", 1)).expect("the resource pattern compiles")
});

/// An RFC 8707 resource indicator in the document's grammar (http allowed: it names, it is not
/// fetched); private networks relax it like [`url`].
#[must_use]
pub fn resource_matches(policy: Policy, raw: &str) -> bool {
    policy.allow_private_networks || RESOURCE_RE.is_match(raw)
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
    // The document's grammar, where it holds: private networks (development, tests) also allow
    // IP literals and single-label hosts.
    if parsed.scheme() == "https" && !policy.allow_private_networks && !HTTPS_URL_RE.is_match(raw) {
        return Err(FieldError::new(
            field,
            "invalid_url",
            format!("{field} must be an https URL with a DNS name, e.g. https://mcp.example.com/mcp"),
        )
        .with_hint("no IP address, user info or fragment; other characters percent-encoded"));
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
    fn https_urls_follow_the_documented_grammar() {
        let strict = Policy { allow_private_networks: false };
        for ok in [
            "https://mcp.linear.app/mcp",
            "https://a.b:8443/x/y?q=1&r=%20",
            "https://mcp.example.com",
            "https://x-1.example.io/a-b",
        ] {
            assert!(url(strict, "u", ok).is_ok(), "{ok}");
        }
        for bad in [
            "https://1.2.3.4/mcp",
            "https://localhost/mcp",
            "https://a.b:70000/",
            "https://a.b/é",
            "https://a.b/x y",
            "https://a.1/",
        ] {
            assert!(url(strict, "u", bad).is_err(), "{bad}");
        }
        // Development: loopback and IP literals stay usable.
        assert!(url(Policy { allow_private_networks: true }, "u", "https://127.0.0.1:8443/mcp").is_ok());
    }

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
