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

/// A client authentication method at the token and revocation endpoints, by its RFC 7591 name.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    /// A public client: `client_id` only.
    None,
}

impl AuthMethod {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientSecretBasic => "client_secret_basic",
            Self::ClientSecretPost => "client_secret_post",
            Self::None => "none",
        }
    }

    /// The method named `name`, if Switchboard can use it.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "client_secret_basic" => Some(Self::ClientSecretBasic),
            "client_secret_post" => Some(Self::ClientSecretPost),
            "none" => Some(Self::None),
            _ => None,
        }
    }

    /// The method a client uses: `stored` (what a registration answered, or what worked last
    /// time) when it fits the client, else the first secret method in the provider's list (its
    /// order is the only preference it can express: the MCP Python SDK lists
    /// `client_secret_post` first, and only that method works at its revocation endpoint) —
    /// `client_secret_basic`, RFC 8414's default, when it lists neither. A client without a
    /// secret can only be public.
    #[must_use]
    pub fn choose(stored: Option<&str>, has_secret: bool, advertised: &[String]) -> Self {
        if !has_secret {
            return Self::None;
        }
        match stored.and_then(Self::parse) {
            Some(m @ (Self::ClientSecretBasic | Self::ClientSecretPost)) => m,
            _ => advertised
                .iter()
                .filter_map(|m| Self::parse(m))
                .find(|m| *m != Self::None)
                .unwrap_or(Self::ClientSecretBasic),
        }
    }

    /// The method worth one more try after the endpoint refused the client with `self`
    /// (`invalid_client`): the other way of sending the secret, when the provider advertises it
    /// — or advertises nothing, since one more request costs nothing then. A public client has
    /// nothing else to try.
    #[must_use]
    pub fn fallback(self, advertised: &[String]) -> Option<Self> {
        let other = match self {
            Self::ClientSecretBasic => Self::ClientSecretPost,
            Self::ClientSecretPost => Self::ClientSecretBasic,
            Self::None => return None,
        };
        (advertised.is_empty() || advertised.iter().any(|m| m == other.as_str())).then_some(other)
    }
}

/// How the client authenticates at the token endpoint.
#[derive(Clone, Debug)]
pub enum ClientAuth<'a> {
    /// Public client: `client_id` in the body.
    None {
        client_id: &'a str,
    },
    /// HTTP Basic, with `client_id` repeated in the body (RFC 6749 §2.3.1 allows it, and servers
    /// built on the MCP Python SDK require it).
    Basic {
        client_id: &'a str,
        secret: &'a str,
    },
    Post {
        client_id: &'a str,
        secret: &'a str,
    },
}

impl<'a> ClientAuth<'a> {
    /// The authentication for `method`; a secret method without a secret falls back to `none`.
    #[must_use]
    pub fn new(client_id: &'a str, secret: Option<&'a str>, method: AuthMethod) -> Self {
        match (method, secret) {
            (AuthMethod::ClientSecretBasic, Some(secret)) => Self::Basic { client_id, secret },
            (AuthMethod::ClientSecretPost, Some(secret)) => Self::Post { client_id, secret },
            _ => Self::None { client_id },
        }
    }

    #[must_use]
    pub fn method(&self) -> AuthMethod {
        match self {
            Self::None { .. } => AuthMethod::None,
            Self::Basic { .. } => AuthMethod::ClientSecretBasic,
            Self::Post { .. } => AuthMethod::ClientSecretPost,
        }
    }

    /// The same client, authenticating with `method`.
    #[must_use]
    pub fn with_method(&self, method: AuthMethod) -> Self {
        match self {
            Self::None { client_id } => Self::None { client_id },
            Self::Basic { client_id, secret } | Self::Post { client_id, secret } => {
                Self::new(client_id, Some(secret), method)
            }
        }
    }
}

/// A validated token response. `Debug` redacts the tokens.
#[derive(Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: Option<String>,
    pub token_type: String,
    pub expires_in: Option<u64>,
    pub scope: Option<String>,
    /// An OpenID Connect ID token, when the provider issued one (verify it before trusting it:
    /// [`crate::oidc::verify_id_token`]).
    pub id_token: Option<String>,
    /// The client authentication method the endpoint accepted: the one asked for, or the other
    /// one after the first was refused (callers keep it for next time).
    pub client_auth: AuthMethod,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field("client_auth", &self.client_auth)
            .finish_non_exhaustive()
    }
}

/// An authorization-code exchange, with everything the flow recorded.
#[derive(Clone, Debug)]
pub struct CodeExchange<'a> {
    pub token_url: &'a Url,
    pub auth: ClientAuth<'a>,
    /// The provider's `token_endpoint_auth_methods_supported`: where to look for another method
    /// when the first is refused.
    pub advertised: &'a [String],
    pub code: &'a str,
    pub verifier: &'a str,
    pub redirect_uri: &'a str,
    pub resource: &'a str,
}

/// Exchanges an authorization code at the recorded token endpoint. Errors carry the RFC 6749
/// error code, never the body; [`TokenError::exchange_message`] words them for a person.
pub async fn exchange_code(
    fetcher: &Fetcher,
    x: &CodeExchange<'_>,
    steps: &mut Vec<Step>,
) -> Result<Tokens, TokenError> {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", x.code),
        ("redirect_uri", x.redirect_uri),
        ("code_verifier", x.verifier),
        ("resource", x.resource),
    ];
    let out = token_request(fetcher, x.token_url, &pairs, &x.auth, x.advertised, steps).await;
    if let Some(step) = steps.last_mut() {
        step.learned = match &out {
            Ok(t) => format!(
                "code exchanged: {} token{}",
                t.token_type,
                if t.refresh_token.is_some() { " with a refresh token" } else { "" }
            ),
            Err(e) => e.exchange_message(),
        };
    }
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

impl TokenError {
    /// The error as the outcome of an authorization-code exchange.
    #[must_use]
    pub fn exchange_message(&self) -> String {
        match self {
            Self::InvalidGrant => "the token endpoint refused the code (invalid_grant)".into(),
            Self::Refused(code) => format!("the token endpoint refused the code ({code})"),
            Self::Transient { message, .. } => message.clone(),
        }
    }
}

/// A token-endpoint request with `auth`, and once more with the provider's other advertised
/// method when it refuses the client (`invalid_client`) — servers disagree on Basic vs. the
/// body, and their metadata does not always say which they mean.
pub(crate) async fn token_request(
    fetcher: &Fetcher,
    token_url: &Url,
    pairs: &[(&str, &str)],
    auth: &ClientAuth<'_>,
    advertised: &[String],
    steps: &mut Vec<Step>,
) -> Result<Tokens, TokenError> {
    let first = token_request_once(fetcher, token_url, pairs, auth, steps).await;
    match (&first, auth.method().fallback(advertised)) {
        (Err(TokenError::Refused(code)), Some(other)) if code == "invalid_client" => {
            match token_request_once(fetcher, token_url, pairs, &auth.with_method(other), steps).await {
                Err(TokenError::Refused(code)) if code == "invalid_client" => first,
                again => again,
            }
        }
        _ => first,
    }
}

/// The RFC 6749 §5.2 code of a refusal, read through the dialects of providers that use
/// `invalid_request` for a grant the client may not use (oidc-provider: "requested grant type is
/// not allowed for this client"), which RFC 6749 names `unauthorized_client`.
fn refusal_code(json: &Value) -> &str {
    let code = error_code(json);
    let description = json.get("error_description").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
    let grant = description.contains("grant type") || description.contains("grant_type");
    if code == "invalid_request" && grant && description.contains("not allowed") {
        return "unauthorized_client";
    }
    code
}

/// One token-endpoint request (no redirects followed), its answer validated and classified, its
/// step recorded. Never puts a token in an error.
async fn token_request_once(
    fetcher: &Fetcher,
    token_url: &Url,
    pairs: &[(&str, &str)],
    auth: &ClientAuth<'_>,
    steps: &mut Vec<Step>,
) -> Result<Tokens, TokenError> {
    let (body, h) = with_client_auth(pairs, auth);
    let (mut step, res) = post_form(fetcher, token_url, h, body, "token endpoint").await;
    let out = match res {
        Err(e) => Err(e),
        Ok(f) => {
            let json: Value = serde_json::from_slice(&f.body).unwrap_or_default();
            let status = f.status.as_u16();
            match status {
                200..=299 => validate(&json)
                    .map(|t| Tokens { client_auth: auth.method(), ..t })
                    .map_err(|message| TokenError::Transient { message, retry_after: None }),
                400 | 401 => match refusal_code(&json) {
                    "invalid_grant" => Err(TokenError::InvalidGrant),
                    code => Err(TokenError::Refused(code.to_owned())),
                },
                _ => Err(TokenError::Transient {
                    message: format!("the token endpoint answered {status} ({})", error_code(&json)),
                    retry_after: f.retry_after(),
                }),
            }
        }
    };
    step.learned = match &out {
        Ok(_) => "tokens issued".into(),
        Err(e) => e.to_string(),
    };
    steps.push(step);
    out
}

/// A refresh (RFC 6749 §6) at the grant's pinned token endpoint, with the grant's `resource`
/// (RFC 8707) and without following redirects. Never logs or returns a token in an error.
pub async fn refresh(
    fetcher: &Fetcher,
    token_url: &Url,
    auth: &ClientAuth<'_>,
    advertised: &[String],
    refresh_token: &str,
    resource: Option<&str>,
    steps: &mut Vec<Step>,
) -> Result<Tokens, TokenError> {
    let mut pairs = vec![("grant_type", "refresh_token"), ("refresh_token", refresh_token)];
    if let Some(r) = resource {
        pairs.push(("resource", r));
    }
    let out = token_request(fetcher, token_url, &pairs, auth, advertised, steps).await;
    if let (Ok(t), Some(step)) = (&out, steps.last_mut()) {
        step.learned = format!(
            "refreshed: {} token{}",
            t.token_type,
            if t.refresh_token.is_some() { ", rotated refresh token" } else { "" }
        );
    }
    out
}

/// A client-credentials grant (RFC 6749 §4.4) with the configured scopes and `resource`.
pub async fn client_credentials(
    fetcher: &Fetcher,
    token_url: &Url,
    auth: &ClientAuth<'_>,
    advertised: &[String],
    scopes: &[String],
    resource: Option<&str>,
    steps: &mut Vec<Step>,
) -> Result<Tokens, TokenError> {
    let scope = scopes.join(" ");
    let mut pairs = vec![("grant_type", "client_credentials")];
    if !scope.is_empty() {
        pairs.push(("scope", &scope));
    }
    if let Some(r) = resource {
        pairs.push(("resource", r));
    }
    token_request(fetcher, token_url, &pairs, auth, advertised, steps).await
}

/// RFC 7009 revocation of one token at the grant's revocation endpoint (no redirects followed).
/// 200 is success whether or not the server knew the token, and answers the client
/// authentication method that was accepted (the provider's other advertised one is tried once
/// after `invalid_client`); `unsupported_token_type` is reported as [`TokenError::Refused`] so the
/// caller can move on; 503, other 5xx, 429 and network errors are transient (with `Retry-After`).
pub async fn revoke(
    fetcher: &Fetcher,
    revocation_url: &Url,
    auth: &ClientAuth<'_>,
    advertised: &[String],
    token: &str,
    token_type_hint: &str,
    steps: &mut Vec<Step>,
) -> Result<AuthMethod, TokenError> {
    let first = revoke_once(fetcher, revocation_url, auth, token, token_type_hint, false, steps).await;
    match (&first, auth, auth.method().fallback(advertised)) {
        (Err(TokenError::Refused(code)), _, Some(other))
            if code == "invalid_client" || code == "unauthorized_client" =>
        {
            let other_auth = auth.with_method(other);
            match revoke_once(fetcher, revocation_url, &other_auth, token, token_type_hint, false, steps).await {
                Err(TokenError::Refused(code)) if code == "invalid_client" || code == "unauthorized_client" => first,
                again => again,
            }
        }
        // The MCP Python SDK's revocation endpoint wants `client_secret` in the body even from a
        // Basic client (its request model requires the field): once more, with the secret in both.
        (Err(TokenError::Refused(code)), ClientAuth::Basic { .. }, _) if code == "invalid_request" => {
            revoke_once(fetcher, revocation_url, auth, token, token_type_hint, true, steps).await.or(first)
        }
        _ => first,
    }
}

async fn revoke_once(
    fetcher: &Fetcher,
    revocation_url: &Url,
    auth: &ClientAuth<'_>,
    token: &str,
    token_type_hint: &str,
    secret_in_body_too: bool,
    steps: &mut Vec<Step>,
) -> Result<AuthMethod, TokenError> {
    let (mut body, h) = with_client_auth(&[("token", token), ("token_type_hint", token_type_hint)], auth);
    if let (true, ClientAuth::Basic { secret, .. }) = (secret_in_body_too, auth) {
        body.push_str("&client_secret=");
        body.extend(url::form_urlencoded::byte_serialize(secret.as_bytes()));
    }
    let (mut step, res) = post_form(fetcher, revocation_url, h, body, "revocation endpoint").await;
    let out = match res {
        Err(e) => Err(e),
        Ok(f) => {
            let retry_after = f.retry_after();
            let json: Value = serde_json::from_slice(&f.body).unwrap_or_default();
            match f.status.as_u16() {
                200..=299 => Ok(auth.method()),
                400..=428 | 430..=499 => Err(TokenError::Refused(error_code(&json).to_owned())),
                s => {
                    Err(TokenError::Transient { message: format!("the revocation endpoint answered {s}"), retry_after })
                }
            }
        }
    };
    step.learned = match &out {
        Ok(_) => format!("{token_type_hint} revoked"),
        Err(e) => e.to_string(),
    };
    steps.push(step);
    out
}

/// One form POST to an OAuth endpoint (`what`, for messages), with its step (status and time)
/// started; an endpoint that cannot be reached is a transient error.
async fn post_form(
    fetcher: &Fetcher,
    url: &Url,
    headers: reqwest::header::HeaderMap,
    body: String,
    what: &str,
) -> (Step, Result<crate::http::Fetched, TokenError>) {
    let start = Instant::now();
    let res = fetcher.post(url, headers, body.into_bytes()).await;
    let mut step = Step {
        method: "POST".into(),
        url: url.to_string(),
        status: None,
        ms: ms_since(start),
        error: None,
        learned: String::new(),
    };
    let res = match res {
        Ok(f) => {
            step.status = Some(f.status.as_u16());
            Ok(f)
        }
        Err(e) => {
            step.error = Some(e.to_string());
            Err(TokenError::Transient { message: format!("the {what} could not be reached ({e})"), retry_after: None })
        }
    };
    (step, res)
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
            // Liberal in what we send: `client_id` in the body as well as in the header, which
            // RFC 6749 §2.3.1 allows and some servers require (the MCP Python SDK's).
            form.append_pair("client_id", client_id);
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
        id_token: text("id_token"),
        client_auth: AuthMethod::None,
    })
}

#[cfg(test)]
mod tests;
