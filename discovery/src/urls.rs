//! The URLs discovery may request, built exactly as the MCP authorization spec lists them, and the
//! canonical `resource` (RFC 8707) of an endpoint.

use url::Url;

const PRM: &str = "/.well-known/oauth-protected-resource";
const AS_RFC8414: &str = "/.well-known/oauth-authorization-server";
const OIDC: &str = "/.well-known/openid-configuration";

fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The path of `url` without a trailing slash; empty for the root.
fn trimmed_path(url: &Url) -> &str {
    url.path().trim_end_matches('/')
}

/// RFC 9728 §3.1: the well-known URI inserted between the host and the path of the endpoint,
/// e.g. `https://h/public/mcp` → `https://h/.well-known/oauth-protected-resource/public/mcp`.
#[must_use]
pub fn prm_path_inserted(endpoint: &Url) -> Option<Url> {
    let path = trimmed_path(endpoint);
    if path.is_empty() {
        return None;
    }
    Url::parse(&format!("{}{PRM}{path}", origin(endpoint))).ok()
}

/// The root protected resource metadata URL of the endpoint's origin.
#[must_use]
pub fn prm_root(endpoint: &Url) -> Option<Url> {
    Url::parse(&format!("{}{PRM}", origin(endpoint))).ok()
}

/// Authorization server metadata URLs for `issuer`, in the spec's order of priority (2025-11-25):
/// an issuer with a path gets RFC 8414 path insertion, OIDC path insertion, OIDC path appending —
/// never the root `/.well-known/oauth-authorization-server`; an issuer without a path gets RFC 8414
/// then OIDC at the root.
#[must_use]
pub fn as_metadata_candidates(issuer: &Url) -> Vec<Url> {
    let base = origin(issuer);
    let path = trimmed_path(issuer);
    let urls = if path.is_empty() {
        vec![format!("{base}{AS_RFC8414}"), format!("{base}{OIDC}")]
    } else {
        vec![format!("{base}{AS_RFC8414}{path}"), format!("{base}{OIDC}{path}"), format!("{base}{path}{OIDC}")]
    };
    urls.iter().filter_map(|u| Url::parse(u).ok()).collect()
}

/// The 2025-03-26 fallback: the endpoint's origin is the authorization server.
#[must_use]
pub fn legacy_authorization_base(endpoint: &Url) -> String {
    origin(endpoint)
}

/// RFC 8707 canonical resource URI: lowercase scheme and host (the parser does that), no fragment,
/// no trailing slash on a bare origin (`https://h/` → `https://h`).
#[must_use]
pub fn canonical_resource(endpoint: &Url) -> String {
    let mut u = endpoint.clone();
    u.set_fragment(None);
    let s = u.to_string();
    if u.path() == "/" && u.query().is_none() { s.trim_end_matches('/').to_owned() } else { s }
}

/// How a protected resource metadata `resource` relates to the endpoint it was discovered for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResourceMatch {
    /// Identical after canonicalisation (RFC 9728 §3.3).
    Exact,
    /// Same origin and the PRM resource's path is a prefix of the endpoint's path on a segment
    /// boundary (draft-mcguinness-oauth-rfc9728bis; what the reference client accepts).
    SameOriginPrefix,
    Mismatch,
}

/// Compares a PRM `resource` with the endpoint. Switchboard accepts `Exact` and `SameOriginPrefix`
/// (the conformance suite serves `resource = origin` for an endpoint at `/mcp`).
#[must_use]
pub fn resource_match(prm_resource: &str, endpoint: &Url) -> ResourceMatch {
    let Ok(resource) = Url::parse(prm_resource) else { return ResourceMatch::Mismatch };
    if resource.fragment().is_some() {
        return ResourceMatch::Mismatch;
    }
    if canonical_resource(&resource) == canonical_resource(endpoint) {
        return ResourceMatch::Exact;
    }
    if resource.origin() != endpoint.origin() || resource.query().is_some() {
        return ResourceMatch::Mismatch;
    }
    let prefix = trimmed_path(&resource);
    let path = trimmed_path(endpoint);
    if prefix.is_empty() || path == prefix || path.strip_prefix(prefix).is_some_and(|rest| rest.starts_with('/')) {
        ResourceMatch::SameOriginPrefix
    } else {
        ResourceMatch::Mismatch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn u(s: &str) -> Url {
        Url::parse(s).expect("url")
    }

    fn strs(urls: Vec<Url>) -> Vec<String> {
        urls.into_iter().map(String::from).collect()
    }

    #[test]
    fn protected_resource_metadata_urls() {
        let e = u("https://example.com/public/mcp");
        assert_eq!(
            prm_path_inserted(&e).map(String::from).as_deref(),
            Some("https://example.com/.well-known/oauth-protected-resource/public/mcp")
        );
        assert_eq!(
            prm_root(&e).map(String::from).as_deref(),
            Some("https://example.com/.well-known/oauth-protected-resource")
        );
        assert_eq!(
            prm_path_inserted(&u("https://example.com/mcp/")).map(String::from).as_deref(),
            Some("https://example.com/.well-known/oauth-protected-resource/mcp")
        );
        assert_eq!(prm_path_inserted(&u("https://example.com/")), None, "the root has only the root URL");
        assert_eq!(
            prm_path_inserted(&u("http://127.0.0.1:8080/mcp?x=1")).map(String::from).as_deref(),
            Some("http://127.0.0.1:8080/.well-known/oauth-protected-resource/mcp")
        );
    }

    #[test]
    fn authorization_server_metadata_urls_in_spec_order() {
        assert_eq!(
            strs(as_metadata_candidates(&u("https://auth.example.com/tenant1"))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server/tenant1",
                "https://auth.example.com/.well-known/openid-configuration/tenant1",
                "https://auth.example.com/tenant1/.well-known/openid-configuration",
            ]
        );
        assert_eq!(
            strs(as_metadata_candidates(&u("https://auth.example.com"))),
            [
                "https://auth.example.com/.well-known/oauth-authorization-server",
                "https://auth.example.com/.well-known/openid-configuration"
            ]
        );
        assert_eq!(strs(as_metadata_candidates(&u("https://auth.example.com/"))).len(), 2);
        let deep = strs(as_metadata_candidates(&u("https://auth.example.com/realms/acme/")));
        assert_eq!(deep[0], "https://auth.example.com/.well-known/oauth-authorization-server/realms/acme");
        assert!(
            !deep.iter().any(|d| d == "https://auth.example.com/.well-known/oauth-authorization-server"),
            "never the root for an issuer with a path"
        );
    }

    #[test]
    fn canonical_resources() {
        assert_eq!(canonical_resource(&u("HTTPS://MCP.Example.COM/mcp")), "https://mcp.example.com/mcp");
        assert_eq!(canonical_resource(&u("https://mcp.example.com/")), "https://mcp.example.com");
        assert_eq!(canonical_resource(&u("https://mcp.example.com:8443")), "https://mcp.example.com:8443");
        assert_eq!(canonical_resource(&u("https://mcp.example.com:443/mcp")), "https://mcp.example.com/mcp");
        assert_eq!(canonical_resource(&u("https://mcp.example.com/mcp#frag")), "https://mcp.example.com/mcp");
    }

    #[test]
    fn resource_matching() {
        let e = u("https://mcp.example.com/tenant/mcp");
        assert_eq!(resource_match("https://mcp.example.com/tenant/mcp", &e), ResourceMatch::Exact);
        assert_eq!(resource_match("HTTPS://mcp.example.com/tenant/mcp", &e), ResourceMatch::Exact);
        assert_eq!(resource_match("https://mcp.example.com", &e), ResourceMatch::SameOriginPrefix);
        assert_eq!(resource_match("https://mcp.example.com/tenant", &e), ResourceMatch::SameOriginPrefix);
        assert_eq!(resource_match("https://mcp.example.com/ten", &e), ResourceMatch::Mismatch, "segment boundary");
        assert_eq!(resource_match("https://evil.example.com/tenant/mcp", &e), ResourceMatch::Mismatch);
        assert_eq!(resource_match("http://mcp.example.com/tenant/mcp", &e), ResourceMatch::Mismatch);
        assert_eq!(resource_match("https://mcp.example.com/tenant/mcp/more", &e), ResourceMatch::Mismatch);
        assert_eq!(resource_match("not a url", &e), ResourceMatch::Mismatch);
    }
}
