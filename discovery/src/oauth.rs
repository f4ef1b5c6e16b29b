//! The authorization-code flow's outbound half: PKCE (S256 only), the authorization URL with the
//! RFC 8707 `resource`, and the code exchange at the recorded token endpoint (no redirects
//! followed; the response validated before anything is stored).

use std::time::Instant;

use base64::Engine as _;
use serde_json::Value;
use url::Url;

use crate::http::{Fetcher, headers, ms_since};
use crate::result::Step;

/// A PKCE verifier (43 characters of base64url over 32 random bytes) and its S256 challenge.
#[must_use]
pub fn pkce_pair(random: [u8; 32]) -> (String, String) {
    let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random);
    let challenge = s256_challenge(&verifier);
    (verifier, challenge)
}

/// `BASE64URL(SHA256(verifier))` (RFC 7636 §4.2).
#[must_use]
pub fn s256_challenge(verifier: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, verifier.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Why an authorization response was not acted on (RFC 9207 as the 2026-07-28 MCP spec applies it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IssError {
    #[error("the authorization response names another issuer")]
    Mismatch,
    #[error("the authorization response lacks the `iss` its server advertises")]
    Missing,
}

/// Checks the `iss` of an authorization response against the issuer recorded when the flow
/// started, by simple string comparison (no case folding, port or trailing-slash normalization):
/// a present `iss` must match whether or not the server advertised support; an absent one is an
/// error only when `authorization_response_iss_parameter_supported` was true. On an error, act on
/// nothing else in the response — not even its `error_description`.
pub fn check_iss(recorded: &str, advertised: bool, received: Option<&str>) -> Result<(), IssError> {
    match received {
        Some(iss) if iss != recorded => Err(IssError::Mismatch),
        None if advertised => Err(IssError::Missing),
        _ => Ok(()),
    }
}

/// What goes into the authorization URL.
#[derive(Clone, Debug)]
pub struct AuthorizeRequest<'a> {
    pub auth_url: &'a Url,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub state: &'a str,
    pub code_challenge: &'a str,
    pub resource: &'a str,
}

/// The URL to send the user's browser to.
#[must_use]
pub fn authorize_url(r: &AuthorizeRequest<'_>) -> Url {
    let mut url = r.auth_url.clone();
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", r.client_id)
            .append_pair("redirect_uri", r.redirect_uri)
            .append_pair("state", r.state)
            .append_pair("code_challenge", r.code_challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", r.resource);
        if !r.scopes.is_empty() {
            q.append_pair("scope", &r.scopes.join(" "));
        }
    }
    url
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth<'a> {
    /// Public client: `client_id` in the body.
    None {
        client_id: &'a str,
    },
    Basic {
        client_id: &'a str,
        secret: &'a str,
    },
    Post {
        client_id: &'a str,
        secret: &'a str,
    },
}

/// A validated token response. `Debug` redacts the tokens.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// An authorization-code exchange, with everything the flow recorded.
#[derive(Clone, Debug)]
pub struct CodeExchange<'a> {
    pub token_url: &'a Url,
    pub auth: ClientAuth<'a>,
    pub code: &'a str,
    pub verifier: &'a str,
    pub redirect_uri: &'a str,
    pub resource: &'a str,
}

/// Exchanges an authorization code. Errors are reduced to words safe to show (the RFC 6749
/// error code, never the body).
pub async fn exchange_code(fetcher: &Fetcher, x: &CodeExchange<'_>, steps: &mut Vec<Step>) -> Result<Tokens, String> {
    let (token_url, auth, code, verifier, redirect_uri, resource) =
        (x.token_url, &x.auth, x.code, x.verifier, x.redirect_uri, x.resource);
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("resource", resource),
    ];
    let (body, h) = with_client_auth(&pairs, auth);
    let start = Instant::now();
    let res = fetcher.post(token_url, h, body.into_bytes()).await;
    let mut step = Step {
        method: "POST".into(),
        url: token_url.to_string(),
        status: None,
        ms: ms_since(start),
        error: None,
        learned: String::new(),
    };
    let out = match res {
        Err(e) => {
            step.error = Some(e.to_string());
            Err(format!("the token endpoint could not be reached ({e})"))
        }
        Ok(f) => {
            step.status = Some(f.status.as_u16());
            let json: Value = serde_json::from_slice(&f.body).unwrap_or_default();
            if f.status.is_success() {
                validate(&json)
            } else {
                Err(format!("the token endpoint refused the code ({})", error_code(&json)))
            }
        }
    };
    step.learned = match &out {
        Ok(t) => format!(
            "code exchanged: {} token{}",
            t.token_type,
            if t.refresh_token.is_some() { " with a refresh token" } else { "" }
        ),
        Err(e) => e.clone(),
    };
    steps.push(step);
    out
}

/// Why a token request failed, classified for the refresh protocol: only a definitive answer
/// from the authorization server (`invalid_grant`) ends a grant; a refusal of the client is a
/// configuration problem; everything else is worth retrying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// The refresh token is no longer valid (RFC 6749 §5.2 `invalid_grant`).
    #[error("the authorization server no longer accepts the refresh token (invalid_grant)")]
    InvalidGrant,
    /// The client itself was refused (`invalid_client`, `unauthorized_client`, …): retrying the
    /// same request will not help.
    #[error("the token endpoint refused the client ({0})")]
    Refused(String),
    /// Timeouts, network and DNS errors, 5xx, 429 and unusable 200s. `retry_after` in seconds when
    /// the server said (`Retry-After`).
    #[error("{message}")]
    Transient { message: String, retry_after: Option<u64> },
}

/// A refresh (RFC 6749 §6) at the grant's pinned token endpoint, with the grant's `resource`
/// (RFC 8707) and without following redirects. Never logs or returns a token in an error.
pub async fn refresh(
    fetcher: &Fetcher,
    token_url: &Url,
    auth: &ClientAuth<'_>,
    refresh_token: &str,
    resource: Option<&str>,
    steps: &mut Vec<Step>,
) -> Result<Tokens, TokenError> {
    let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    if let Some(r) = resource {
        pairs.push(("resource", r));
    }
    let (body, h) = with_client_auth(&pairs, auth);
    let start = Instant::now();
    let res = fetcher.post(token_url, h, body.into_bytes()).await;
    let mut step = Step {
        method: "POST".into(),
        url: token_url.to_string(),
        status: None,
        ms: ms_since(start),
        error: None,
        learned: String::new(),
    };
    let out = match res {
        Err(e) => {
            step.error = Some(e.to_string());
            Err(TokenError::Transient {
                message: format!("the token endpoint could not be reached ({e})"),
                retry_after: None,
            })
        }
        Ok(f) => {
            step.status = Some(f.status.as_u16());
            let json: Value = serde_json::from_slice(&f.body).unwrap_or_default();
            let status = f.status.as_u16();
            let retry_after = f.retry_after();
            match status {
                200..=299 => validate(&json).map_err(|message| TokenError::Transient { message, retry_after: None }),
                400 | 401 => match error_code(&json) {
                    "invalid_grant" => Err(TokenError::InvalidGrant),
                    code => Err(TokenError::Refused(code.to_owned())),
                },
                _ => Err(TokenError::Transient {
                    message: format!("the token endpoint answered {status} ({})", error_code(&json)),
                    retry_after,
                }),
            }
        }
    };
    step.learned = match &out {
        Ok(t) => format!(
            "refreshed: {} token{}",
            t.token_type,
            if t.refresh_token.is_some() { ", rotated refresh token" } else { "" }
        ),
        Err(e) => e.to_string(),
    };
    steps.push(step);
    out
}

/// RFC 7009 revocation of one token at the grant's revocation endpoint (no redirects followed).
/// 200 is success whether or not the server knew the token; `unsupported_token_type` is reported
/// as [`TokenError::Refused`] so the caller can move on; 503, other 5xx, 429 and network errors are
/// transient (with `Retry-After`).
pub async fn revoke(
    fetcher: &Fetcher,
    revocation_url: &Url,
    auth: &ClientAuth<'_>,
    token: &str,
    token_type_hint: &str,
    steps: &mut Vec<Step>,
) -> Result<(), TokenError> {
    let (body, h) = with_client_auth(&[("token", token), ("token_type_hint", token_type_hint)], auth);
    let start = Instant::now();
    let res = fetcher.post(revocation_url, h, body.into_bytes()).await;
    let mut step = Step {
        method: "POST".into(),
        url: revocation_url.to_string(),
        status: None,
        ms: ms_since(start),
        error: None,
        learned: String::new(),
    };
    let out = match res {
        Err(e) => {
            step.error = Some(e.to_string());
            Err(TokenError::Transient {
                message: format!("the revocation endpoint could not be reached ({e})"),
                retry_after: None,
            })
        }
        Ok(f) => {
            step.status = Some(f.status.as_u16());
            let retry_after = f.retry_after();
            let json: Value = serde_json::from_slice(&f.body).unwrap_or_default();
            match f.status.as_u16() {
                200..=299 => Ok(()),
                400..=428 | 430..=499 => Err(TokenError::Refused(error_code(&json).to_owned())),
                s => {
                    Err(TokenError::Transient { message: format!("the revocation endpoint answered {s}"), retry_after })
                }
            }
        }
    };
    step.learned = match &out {
        Ok(()) => format!("{token_type_hint} revoked"),
        Err(e) => e.to_string(),
    };
    steps.push(step);
    out
}

/// A token request's form body and headers, with the client's authentication. (Synchronous: the
/// form serializer is not `Send` and must not live across an await.)
pub(crate) fn with_client_auth(pairs: &[(&str, &str)], auth: &ClientAuth<'_>) -> (String, reqwest::header::HeaderMap) {
    let mut form = url::form_urlencoded::Serializer::new(String::new());
    form.extend_pairs(pairs.iter().copied());
    let mut h = headers(&[("content-type", "application/x-www-form-urlencoded"), ("accept", "application/json")]);
    match auth {
        ClientAuth::None { client_id } => {
            form.append_pair("client_id", client_id);
        }
        ClientAuth::Post { client_id, secret } => {
            form.append_pair("client_id", client_id).append_pair("client_secret", secret);
        }
        ClientAuth::Basic { client_id, secret } => {
            // RFC 6749 §2.3.1: id and secret are form-urlencoded before base64.
            let enc = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
            let basic = base64::engine::general_purpose::STANDARD.encode(format!("{}:{}", enc(client_id), enc(secret)));
            if let Ok(mut v) = reqwest::header::HeaderValue::from_str(&format!("Basic {basic}")) {
                v.set_sensitive(true);
                h.insert(reqwest::header::AUTHORIZATION, v);
            }
        }
    }
    (form.finish(), h)
}

fn error_code(json: &Value) -> &str {
    json.get("error")
        .and_then(Value::as_str)
        .filter(|c| c.len() < 64 && c.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .unwrap_or("no error code")
}

/// RFC 6749 §5.1 with size and type limits: a bearer `access_token`, an optional string
/// `refresh_token`, a non-negative `expires_in` under ten years.
fn validate(json: &Value) -> Result<Tokens, String> {
    let text = |k: &str| {
        json.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 16 * 1024).map(str::to_owned)
    };
    let access_token = text("access_token").ok_or("the token response has no usable access_token")?;
    let token_type = text("token_type").unwrap_or_else(|| "Bearer".into());
    if !token_type.eq_ignore_ascii_case("bearer") {
        return Err(format!("the token type `{}` is not supported", token_type.chars().take(32).collect::<String>()));
    }
    let expires_in = match json.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => Some(
            v.as_u64()
                .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                .filter(|s| *s <= 10 * 365 * 24 * 3600)
                .ok_or("the token response's expires_in is not a number of seconds")?,
        ),
    };
    Ok(Tokens {
        access_token,
        refresh_token: text("refresh_token"),
        token_type: "Bearer".into(),
        expires_in,
        scope: text("scope"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iss_follows_the_rfc_9207_table() {
        let rec = "https://as.example.com";
        assert_eq!(check_iss(rec, true, Some(rec)), Ok(()));
        assert_eq!(check_iss(rec, true, None), Err(IssError::Missing));
        assert_eq!(check_iss(rec, false, Some("https://evil.example.com")), Err(IssError::Mismatch));
        assert_eq!(check_iss(rec, false, None), Ok(()));
        // No normalization: a trailing slash, a case change or a default port is another issuer.
        for variant in ["https://as.example.com/", "https://AS.example.com", "https://as.example.com:443"] {
            assert_eq!(check_iss(rec, true, Some(variant)), Err(IssError::Mismatch), "{variant}");
        }
    }

    #[test]
    fn pkce_challenges_are_s256() {
        // Vector computed independently (Python: urlsafe_b64encode(sha256(v)).rstrip("=")).
        assert_eq!(
            s256_challenge("dBjftJeZ4CVP-mJ92K9qWyhsxW5yTcXPS5MtM0H9OWc"),
            "4LJT_lw8-oaTrlRawghSHRlTmHSYc0RpT5noKKqCD7Q"
        );
        let (v, c) = pkce_pair([7u8; 32]);
        assert_eq!(v.len(), 43);
        assert_eq!(c, s256_challenge(&v));
    }

    #[test]
    fn authorize_urls_carry_every_parameter() {
        let auth = Url::parse("https://as.example.com/authorize?tenant=x").expect("url");
        let url = authorize_url(&AuthorizeRequest {
            auth_url: &auth,
            client_id: "cid",
            redirect_uri: "https://sb.example.com/service/mcp/consent/callback",
            scopes: &["read".into(), "write".into()],
            state: "st",
            code_challenge: "ch",
            resource: "https://mcp.example.com/mcp",
        });
        let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
        for (k, v) in [
            ("tenant", "x"),
            ("response_type", "code"),
            ("client_id", "cid"),
            ("state", "st"),
            ("code_challenge", "ch"),
            ("code_challenge_method", "S256"),
            ("resource", "https://mcp.example.com/mcp"),
            ("scope", "read write"),
        ] {
            assert_eq!(q.get(k).map(String::as_str), Some(v), "{k}");
        }
    }

    #[test]
    fn token_responses_are_validated() {
        assert!(
            validate(&serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": 3600})).is_ok()
        );
        assert!(validate(&serde_json::json!({"token_type": "Bearer"})).is_err());
        assert!(validate(&serde_json::json!({"access_token": "a", "token_type": "mac"})).is_err());
        assert!(validate(&serde_json::json!({"access_token": "a", "expires_in": -5})).is_err());
        assert!(validate(&serde_json::json!({"access_token": "x".repeat(20_000)})).is_err());
        assert_eq!(
            validate(&serde_json::json!({"access_token": "a", "expires_in": "60"})).map(|t| t.expires_in),
            Ok(Some(60))
        );
    }
}
