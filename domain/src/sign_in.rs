//! Switchboard as the OAuth authorization server of its gateway (issuer
//! `{public_url}/oauth/{tenant}`): the tenant's identity provider that users sign in with, the MCP
//! clients that register with it, and the rules their redirect URIs follow. No IO here; the
//! store keeps them (`store::sign_in`), the gateway serves the endpoints.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::validate::{self, Errors, Policy, reject_unknown};
use crate::{DomainError, FieldError};

/// The claim that names the user when the tenant does not say.
pub const DEFAULT_USER_CLAIM: &str = "sub";

/// What the provider's metadata said when the settings were saved (re-read on every save).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdpMetadata {
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    pub jwks_uri: String,
    /// RFC 9207 `authorization_response_iss_parameter_supported`.
    #[serde(default)]
    pub iss_parameter_supported: bool,
    /// `token_endpoint_auth_methods_supported`, as advertised.
    #[serde(default)]
    pub token_endpoint_auth_methods: Vec<String>,
}

/// A tenant's OpenID Connect provider. `Debug` leaves the secret out.
#[derive(Clone)]
pub struct IdentityProvider {
    pub issuer: String,
    pub client_id: String,
    pub client_secret: Option<crate::crypto::Secret>,
    pub scopes: Vec<String>,
    /// The ID-token claim whose value is the `user_id` (`sub` by default; `email` is common).
    pub user_claim: String,
    /// Who may sign in at all (beyond holding an account at the provider).
    pub rules: SignInRules,
    pub metadata: IdpMetadata,
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

/// Who of the provider's users may sign in: an ID token must carry every required claim (a
/// string equal to the value, or an array containing it — `groups`), and, when domains are
/// listed, a verified `email` in one of them. Without rules every account of the provider may
/// use every agent of the tenant.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignInRules {
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub required_claims: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_email_domains: Vec<String>,
}

impl IdentityProvider {
    /// Whether the verified ID-token `claims` may sign in; the refusal says why, for the page.
    pub fn admits(&self, claims: &serde_json::Map<String, Value>) -> Result<(), String> {
        for (name, wanted) in &self.rules.required_claims {
            let ok = match claims.get(name) {
                Some(Value::String(s)) => s == wanted,
                Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(wanted)),
                Some(Value::Bool(b)) => wanted == if *b { "true" } else { "false" },
                _ => false,
            };
            if !ok {
                return Err(format!("your account is not allowed to sign in here (`{name}` must be `{wanted}`)"));
            }
        }
        let email_needed = !self.rules.allowed_email_domains.is_empty() || self.user_claim == "email";
        if email_needed {
            let verified = matches!(claims.get("email_verified"), Some(Value::Bool(true)))
                || claims.get("email_verified").and_then(Value::as_str) == Some("true");
            let email = claims.get("email").and_then(Value::as_str).unwrap_or_default().to_ascii_lowercase();
            if email.is_empty() || !verified {
                return Err("your account's email address is not verified at the identity provider".into());
            }
            let domain = email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
            if !self.rules.allowed_email_domains.is_empty()
                && !self.rules.allowed_email_domains.iter().any(|d| d == domain)
            {
                return Err(format!("accounts of `{domain}` are not allowed to sign in here"));
            }
        }
        Ok(())
    }
}

impl std::fmt::Debug for IdentityProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdentityProvider")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("user_claim", &self.user_claim)
            .finish_non_exhaustive()
    }
}

/// A validated `PUT /v1/settings/identity-provider` body. A missing `client_secret` keeps the
/// stored one; `null` removes it (a public client).
#[derive(Clone)]
pub struct IdentityProviderSpec {
    pub issuer: url::Url,
    pub client_id: String,
    pub client_secret: SecretChange,
    pub scopes: Vec<String>,
    pub user_claim: String,
    pub rules: SignInRules,
}

/// What a write does to a stored secret.
#[derive(Clone)]
pub enum SecretChange {
    Keep,
    Remove,
    Set(crate::crypto::Secret),
}

/// Validates `{issuer, client_id, client_secret?, scopes?, user_claim?}`.
pub fn validate_identity_provider(policy: Policy, body: &Value) -> Result<IdentityProviderSpec, DomainError> {
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(
        &mut errs,
        map,
        "",
        &["issuer", "client_id", "client_secret", "scopes", "user_claim", "required_claims", "allowed_email_domains"],
        &[
            ("discovery_url", "give the issuer (e.g. https://login.example.com); its metadata is discovered"),
            ("secret", "the field is client_secret"),
        ],
    );
    let issuer = match validate::opt_string(&mut errs, map, "", "issuer", 2048) {
        Some(raw) => match validate::url(policy, "issuer", &raw) {
            Ok(u) if u.query().is_some() => {
                errs.push(FieldError::new(
                    "issuer",
                    "invalid_url",
                    "an issuer has no query (OpenID Connect Discovery §3)",
                ));
                None
            }
            Ok(u) => Some(u),
            Err(e) => {
                errs.push(e);
                None
            }
        },
        None => {
            errs.required("issuer", "the provider's issuer URL, e.g. https://login.example.com");
            None
        }
    };
    let client_id = validate::opt_string(&mut errs, map, "", "client_id", 512);
    if client_id.is_none() && !map.contains_key("client_id") {
        errs.required("client_id", "the client id Switchboard signs users in with, registered at the provider");
    }
    let client_secret = match map.get("client_secret") {
        None => SecretChange::Keep,
        Some(Value::Null) => SecretChange::Remove,
        Some(_) => validate::opt_string(&mut errs, map, "", "client_secret", 4096)
            .map_or(SecretChange::Keep, |s| SecretChange::Set(crate::crypto::Secret::new(s))),
    };
    let scopes = match map.get("scopes") {
        None | Some(Value::Null) => vec!["openid".to_owned()],
        Some(Value::Array(items)) if items.len() <= 20 => {
            let mut scopes: Vec<String> = Vec::new();
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(s)
                        if !s.is_empty()
                            && s.len() <= 128
                            && s.chars().all(|c| c.is_ascii_graphic() && c != '"' && c != '\\') =>
                    {
                        if !scopes.iter().any(|x| x == s) {
                            scopes.push(s.to_owned());
                        }
                    }
                    _ => errs.push(FieldError::new(
                        format!("scopes[{i}]"),
                        "invalid",
                        "a scope is a non-empty string of printable characters without spaces or quotes",
                    )),
                }
            }
            if !scopes.iter().any(|s| s == "openid") {
                scopes.insert(0, "openid".to_owned());
            }
            scopes
        }
        Some(_) => {
            errs.push(FieldError::new("scopes", "invalid", "scopes must be an array of at most 20 strings"));
            vec![]
        }
    };
    let user_claim =
        validate::opt_string(&mut errs, map, "", "user_claim", 128).unwrap_or_else(|| DEFAULT_USER_CLAIM.to_owned());
    let rules = sign_in_rules(&mut errs, map);
    match (issuer, client_id) {
        (Some(issuer), Some(client_id)) if errs.0.is_empty() => {
            Ok(IdentityProviderSpec { issuer, client_id, client_secret, scopes, user_claim, rules })
        }
        _ => Err(DomainError::Invalid(errs.0)),
    }
}

/// `required_claims` and `allowed_email_domains`.
fn sign_in_rules(errs: &mut Errors, map: &serde_json::Map<String, Value>) -> SignInRules {
    let mut rules = SignInRules::default();
    match map.get("required_claims") {
        None | Some(Value::Null) => {}
        Some(Value::Object(o)) if o.len() <= 10 => {
            for (k, v) in o {
                match v.as_str().filter(|v| !v.is_empty() && v.len() <= 256 && !k.is_empty() && k.len() <= 128) {
                    Some(v) => {
                        rules.required_claims.insert(k.clone(), v.to_owned());
                    }
                    None => errs.push(FieldError::new(
                        format!("required_claims.{k}"),
                        "invalid",
                        "each required claim is a non-empty string value, e.g. {\"hd\": \"acme.com\"}",
                    )),
                }
            }
        }
        Some(_) => errs.push(FieldError::new(
            "required_claims",
            "invalid",
            "required_claims is an object of at most 10 claim names to string values, e.g. {\"hd\": \"acme.com\"}",
        )),
    }
    match map.get("allowed_email_domains") {
        None | Some(Value::Null) => {}
        Some(Value::Array(items)) if items.len() <= 20 => {
            for (i, item) in items.iter().enumerate() {
                let domain = item.as_str().map(str::to_ascii_lowercase).filter(|d| {
                    d.contains('.')
                        && d.len() <= 253
                        && d.chars().all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
                });
                match domain {
                    Some(d) => rules.allowed_email_domains.push(d),
                    None => errs.push(FieldError::new(
                        format!("allowed_email_domains[{i}]"),
                        "invalid",
                        "a domain such as acme.com (no @, no wildcard)",
                    )),
                }
            }
        }
        Some(_) => errs.push(FieldError::new("allowed_email_domains", "invalid", "an array of at most 20 domains")),
    }
    rules
}

/// An MCP client registered with a tenant's authorization server (Dynamic Client Registration),
/// or read from its Client ID Metadata Document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayClient {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uris: Vec<String>,
}

/// Why a redirect URI is not accepted, as the registration error says it.
///
/// Accepted (OAuth 2.1 §2.3.1 and RFC 8252 for native apps): `https` anywhere; `http` on a
/// loopback host only (`127.0.0.1`, `[::1]`, `localhost`), any port; a private-use scheme in
/// reverse-domain form (`com.example.app:/callback`). Never a fragment, user info, or a scheme
/// that runs code or reads local files.
pub fn check_redirect_uri(raw: &str) -> Result<url::Url, String> {
    let u = url::Url::parse(raw).map_err(|_| format!("`{raw}` is not an absolute URI"))?;
    if u.fragment().is_some() {
        return Err(format!("`{raw}` has a fragment; redirect URIs must not (RFC 6749 §3.1.2)"));
    }
    if !u.username().is_empty() || u.password().is_some() {
        return Err(format!("`{raw}` carries user info"));
    }
    match u.scheme() {
        "https" if u.host().is_some() => Ok(u),
        "http" => match u.host_str() {
            Some("127.0.0.1" | "[::1]" | "localhost") => Ok(u),
            _ => Err(format!(
                "`{raw}` is plain http on a host that is not loopback; use https, or http://127.0.0.1:<port>/…"
            )),
        },
        "javascript" | "data" | "file" | "vbscript" | "about" | "blob" | "ftp" | "ws" | "wss" => {
            Err(format!("`{raw}` uses a scheme that cannot be a redirect URI"))
        }
        scheme if scheme.contains('.') => Ok(u),
        _ => Err(format!(
            "`{raw}`: a custom scheme must be in reverse-domain form (RFC 8252 §7.1), e.g. com.example.app:/callback"
        )),
    }
}

/// A registration request (RFC 7591 §2), as far as Switchboard uses it: `redirect_uris` (one or
/// more, see [`check_redirect_uri`]) and `client_name`. Everything else is answered with what the
/// server does (public client, code + refresh), as §3.2.1 allows.
///
/// The error is RFC 7591's `(error, description)`.
pub fn validate_registration(body: &Value) -> Result<(String, Vec<String>), (&'static str, String)> {
    let invalid_redirect = |m: String| ("invalid_redirect_uri", m);
    let Some(map) = body.as_object() else {
        return Err(("invalid_client_metadata", "the body must be a JSON object".into()));
    };
    let uris = match map.get("redirect_uris") {
        Some(Value::Array(items)) if !items.is_empty() && items.len() <= 10 => items,
        _ => return Err(invalid_redirect("redirect_uris must be an array of 1 to 10 URIs".into())),
    };
    let mut redirect_uris = Vec::new();
    for item in uris {
        let raw = item.as_str().ok_or_else(|| invalid_redirect("each redirect URI must be a string".into()))?;
        if raw.len() > 2048 {
            return Err(invalid_redirect("a redirect URI is longer than 2048 characters".into()));
        }
        check_redirect_uri(raw).map_err(invalid_redirect)?;
        redirect_uris.push(raw.to_owned());
    }
    if let Some(m) = map.get("token_endpoint_auth_method").and_then(Value::as_str)
        && m != "none"
        && !m.starts_with("client_secret")
    {
        return Err((
            "invalid_client_metadata",
            format!("token_endpoint_auth_method `{m}` is not supported; use none"),
        ));
    }
    let name = match map.get("client_name") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.trim().chars().take(200).collect(),
        None | Some(Value::Null) => "MCP client".to_owned(),
        Some(_) => return Err(("invalid_client_metadata", "client_name must be a string".into())),
    };
    Ok((name, redirect_uris))
}

/// A token family: what one authorization code started, and every token rotated from it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GatewayGrant {
    pub id: uuid::Uuid,
    pub client_id: String,
    pub user_id: String,
    pub agent_id: crate::AgentId,
    /// The RFC 8707 resource the tokens are bound to (a gateway URL).
    pub resource: String,
}

/// What presenting a refresh token did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Rotation {
    /// The token was current: it is spent now and its successor is stored.
    Rotated,
    /// Unknown, expired, or its family was revoked.
    Invalid,
    /// The token had been rotated already: presented twice means stolen, so the whole family is
    /// revoked (its access tokens too, whose revocation ids are returned).
    Reused { revoked: Vec<String> },
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn redirect_uris_follow_oauth_2_1_and_rfc_8252() {
        for ok in [
            "https://app.example.com/cb",
            "http://127.0.0.1:33418/callback",
            "http://localhost:8000/cb",
            "http://[::1]:9/cb",
            "com.example.app:/oauth2redirect",
            "cursor.app://anysphere.cursor-retrieval/oauth/callback",
        ] {
            assert!(check_redirect_uri(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://app.example.com/cb",
            "javascript:alert(1)",
            "data:text/html,x",
            "file:///etc/passwd",
            "https://app.example.com/cb#frag",
            "https://user:pw@app.example.com/cb",
            "myapp:/cb",
            "/relative",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn a_registration_needs_redirect_uris_and_answers_rfc_7591_errors() {
        let (name, uris) =
            validate_registration(&json!({"redirect_uris": ["http://127.0.0.1:1/cb"], "client_name": " Inspector "}))
                .unwrap();
        assert_eq!((name.as_str(), uris.len()), ("Inspector", 1));
        assert_eq!(validate_registration(&json!({})).unwrap_err().0, "invalid_redirect_uri");
        assert_eq!(
            validate_registration(&json!({"redirect_uris": ["javascript:x"]})).unwrap_err().0,
            "invalid_redirect_uri"
        );
        assert_eq!(
            validate_registration(
                &json!({"redirect_uris": ["https://a.example/cb"], "token_endpoint_auth_method": "private_key_jwt"})
            )
            .unwrap_err()
            .0,
            "invalid_client_metadata"
        );
    }

    #[test]
    fn sign_in_rules_admit_only_the_tenants_people() {
        let idp = |rules: SignInRules, claim: &str| IdentityProvider {
            issuer: "https://idp".into(),
            client_id: "c".into(),
            client_secret: None,
            scopes: vec![],
            user_claim: claim.into(),
            rules,
            metadata: IdpMetadata::default(),
            updated_at: crate::clock::now(),
        };
        let claims = |v: Value| v.as_object().unwrap().clone();
        let open = idp(SignInRules::default(), "sub");
        assert!(open.admits(&claims(json!({"sub": "x"}))).is_ok());
        // `email` as the user id needs a verified email.
        let by_email = idp(SignInRules::default(), "email");
        assert!(by_email.admits(&claims(json!({"email": "a@acme.com", "email_verified": false}))).is_err());
        assert!(by_email.admits(&claims(json!({"email": "a@acme.com", "email_verified": true}))).is_ok());
        let rules = SignInRules {
            required_claims: [("groups".to_owned(), "mcp-users".to_owned())].into_iter().collect(),
            allowed_email_domains: vec!["acme.com".into()],
        };
        let strict = idp(rules, "sub");
        let ok = json!({"sub": "x", "groups": ["staff", "mcp-users"], "email": "A@Acme.com", "email_verified": true});
        assert!(strict.admits(&claims(ok)).is_ok());
        let other_domain = json!({"sub": "x", "groups": ["mcp-users"], "email": "a@evil.com", "email_verified": true});
        assert!(strict.admits(&claims(other_domain)).unwrap_err().contains("evil.com"));
        let no_group = json!({"sub": "x", "groups": ["staff"], "email": "a@acme.com", "email_verified": true});
        assert!(strict.admits(&claims(no_group)).unwrap_err().contains("groups"));
    }

    #[test]
    fn identity_provider_settings_name_each_bad_field() {
        let policy = Policy { allow_private_networks: false };
        let spec = validate_identity_provider(
            policy,
            &json!({"issuer": "https://login.example.com", "client_id": "sb", "scopes": ["email"]}),
        )
        .unwrap();
        assert_eq!(spec.scopes, ["openid", "email"]);
        assert_eq!(spec.user_claim, "sub");
        assert!(matches!(spec.client_secret, SecretChange::Keep));
        let Err(DomainError::Invalid(errs)) =
            validate_identity_provider(policy, &json!({"issuer": "http://login.example.com", "secret": "x"}))
        else {
            panic!("expected invalid")
        };
        let fields: Vec<_> = errs.iter().map(|e| e.field.as_str()).collect();
        assert!(
            fields.contains(&"issuer") && fields.contains(&"client_id") && fields.contains(&"secret"),
            "{fields:?}"
        );
    }
}
