//! Probes that ask a provider, without a user, whether it would accept Switchboard's client:
//! an authorization request nobody completes (is the redirect URI registered? is the client
//! known? is the resource accepted?) and a token request with a code that does not exist (does
//! the token endpoint accept the client's credentials?). `diagnose` runs them; nothing here is
//! kept by the provider beyond an abandoned interaction.

use std::time::Instant;

use serde_json::Value;
use url::Url;

use crate::http::{Fetcher, ms_since};
use crate::oauth::{self, AuthorizeRequest, ClientAuth, CodeExchange, TokenError};
use crate::result::Step;

/// What the authorization endpoint made of a request for this client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AuthorizeVerdict {
    /// It went on to sign-in or consent (a redirect elsewhere, or a page).
    Accepted,
    /// It refused the redirect URI (it cannot send the user back, so it shows an error itself).
    RedirectRefused(Refusal),
    /// It does not know or accept the client.
    ClientRefused(Refusal),
    /// It refused the `resource` (RFC 8707 `invalid_target`).
    ResourceRefused(Refusal),
    /// It refused the request for another reason.
    Refused(Refusal),
    /// There is no authorization endpoint at this URL: it answered 404 or 405.
    NotFound(u16),
    /// It could not be asked (network, 5xx).
    Unreachable(String),
}

/// What a provider said when it refused.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    /// The RFC 6749 `error`, when it gave one.
    pub error: Option<String>,
    /// Its `error_description`, or the start of its page's text (control characters removed).
    pub description: Option<String>,
}

/// Sends the authorization request a user's browser would be sent, and reads the answer without
/// following it.
pub async fn authorize(
    fetcher: &Fetcher,
    auth_url: &Url,
    client_id: &str,
    redirect_uri: &str,
    scopes: &[String],
    resource: &str,
    steps: &mut Vec<Step>,
) -> AuthorizeVerdict {
    let (_, challenge) = oauth::pkce_pair(random());
    let state = format!("diagnose-{}", hex(&random()[..12]));
    let url = oauth::authorize_url(&AuthorizeRequest {
        auth_url,
        client_id,
        redirect_uri,
        scopes,
        state: &state,
        code_challenge: &challenge,
        resource,
    });
    let start = Instant::now();
    let res = fetcher.get_once(&url, crate::http::headers(&[("accept", "text/html, application/json")])).await;
    let mut step = Step {
        method: "GET".into(),
        url: auth_url.to_string(),
        status: None,
        ms: ms_since(start),
        error: None,
        learned: String::new(),
    };
    let verdict = match res {
        Err(e) => {
            step.error = Some(e.to_string());
            AuthorizeVerdict::Unreachable(e.to_string())
        }
        Ok(f) => {
            step.status = Some(f.status.as_u16());
            let status = f.status.as_u16();
            if f.status.is_redirection() {
                let location = f.headers.get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
                let target = url.join(location).ok();
                match target {
                    Some(t) if t.as_str().starts_with(redirect_uri) => {
                        let q: std::collections::HashMap<_, _> = t.query_pairs().into_owned().collect();
                        match q.get("error") {
                            None => AuthorizeVerdict::Accepted,
                            Some(e) => classify(Refusal {
                                status,
                                error: Some(e.clone()),
                                description: q.get("error_description").map(|d| clean(d)),
                            }),
                        }
                    }
                    _ => AuthorizeVerdict::Accepted,
                }
            } else if f.status.is_server_error() {
                AuthorizeVerdict::Unreachable(format!("HTTP {status}"))
            } else if matches!(status, 404 | 405) {
                AuthorizeVerdict::NotFound(status)
            } else {
                let json = f.json();
                let error = json.as_ref().and_then(|j| j.get("error")).and_then(Value::as_str).map(str::to_owned);
                let description = json
                    .as_ref()
                    .and_then(|j| j.get("error_description"))
                    .and_then(Value::as_str)
                    .map(clean)
                    .or_else(|| (!f.status.is_success()).then(|| page_text(&f.body)));
                if f.status.is_success() && error.is_none() {
                    AuthorizeVerdict::Accepted
                } else {
                    classify(Refusal { status, error, description })
                }
            }
        }
    };
    step.learned = match &verdict {
        AuthorizeVerdict::Accepted => "diagnose: the authorization endpoint accepts the client and redirect URI".into(),
        AuthorizeVerdict::RedirectRefused(_) => "diagnose: the authorization endpoint refuses the redirect URI".into(),
        AuthorizeVerdict::ClientRefused(_) => "diagnose: the authorization endpoint does not accept the client".into(),
        AuthorizeVerdict::ResourceRefused(_) => "diagnose: the authorization endpoint refuses the resource".into(),
        AuthorizeVerdict::Refused(r) => {
            format!("diagnose: the authorization endpoint refused ({})", r.error.as_deref().unwrap_or("no error code"))
        }
        AuthorizeVerdict::NotFound(s) => format!("diagnose: no authorization endpoint at this URL (HTTP {s})"),
        AuthorizeVerdict::Unreachable(e) => format!("diagnose: the authorization endpoint could not be asked ({e})"),
    };
    steps.push(step);
    verdict
}

/// Which refusal it is. An explicit error code is trusted; the description is read only for
/// `invalid_request` (which providers use for a bad redirect URI too). A page without a code is
/// read for the phrases of an error, not for parameter names alone: error pages often echo the
/// request (`redirect_uri=…`, `client_id=…`) whatever went wrong.
fn classify(r: Refusal) -> AuthorizeVerdict {
    let said = r.description.as_deref().unwrap_or("").to_ascii_lowercase();
    let redirect_words = ["redirect_uri", "redirect uri", "callback url"];
    let refused_words = ["mismatch", "did not match", "not registered", "not allowed", "invalid", "not valid"];
    let about_redirect =
        redirect_words.iter().any(|w| said.contains(w)) && refused_words.iter().any(|w| said.contains(w));
    match r.error.as_deref() {
        Some("invalid_redirect_uri" | "redirect_uri_mismatch") => AuthorizeVerdict::RedirectRefused(r),
        Some("invalid_client" | "unauthorized_client") => AuthorizeVerdict::ClientRefused(r),
        Some("invalid_target") => AuthorizeVerdict::ResourceRefused(r),
        Some("invalid_request") if about_redirect => AuthorizeVerdict::RedirectRefused(r),
        Some(_) => AuthorizeVerdict::Refused(r),
        None if about_redirect || said.contains("redirect_uri_mismatch") => AuthorizeVerdict::RedirectRefused(r),
        None if said.contains("invalid_client")
            || said.contains("unknown client")
            || said.contains("client not found")
            || said.contains("invalid client") =>
        {
            AuthorizeVerdict::ClientRefused(r)
        }
        None if said.contains("invalid_target") => AuthorizeVerdict::ResourceRefused(r),
        None => AuthorizeVerdict::Refused(r),
    }
}

/// What the token endpoint made of the client's credentials.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientVerdict {
    /// It authenticated the client (and refused the made-up code, as it should).
    Accepted,
    /// It refused the client (`invalid_client`, `unauthorized_client`).
    Refused(String),
    /// It refused the request for another reason (the RFC 6749 code).
    Other(String),
    /// There is no token endpoint at this URL: it answered 404 or 405.
    NotFound(u16),
    Unreachable(String),
}

/// A code exchange with a code that does not exist: a provider authenticates the client before
/// it looks at the code, so `invalid_grant` means the client is fine and `invalid_client` that
/// it is not.
pub async fn token_client(
    fetcher: &Fetcher,
    token_url: &Url,
    auth: ClientAuth<'_>,
    advertised: &[String],
    redirect_uri: &str,
    resource: &str,
    steps: &mut Vec<Step>,
) -> ClientVerdict {
    let (verifier, _) = oauth::pkce_pair(random());
    let code = format!("switchboard-diagnose-{}", hex(&random()[..12]));
    let exchange =
        CodeExchange { token_url, auth, advertised, code: &code, verifier: &verifier, redirect_uri, resource };
    let verdict = match oauth::exchange_code(fetcher, &exchange, steps).await {
        Ok(_) | Err(TokenError::InvalidGrant) => ClientVerdict::Accepted,
        Err(TokenError::Refused(c)) if c == "invalid_client" || c == "unauthorized_client" => ClientVerdict::Refused(c),
        Err(TokenError::Refused(c)) => ClientVerdict::Other(c),
        // An answer is not an outage: a 404 or 405 says the URL is not a token endpoint.
        Err(TokenError::Transient { message, .. }) => match steps.last().and_then(|s| s.status) {
            Some(s @ (404 | 405)) => ClientVerdict::NotFound(s),
            _ => ClientVerdict::Unreachable(message),
        },
    };
    if let Some(step) = steps.last_mut() {
        step.learned = match &verdict {
            ClientVerdict::Accepted => {
                "diagnose: the token endpoint accepts the client (and refused the made-up code)".into()
            }
            ClientVerdict::Refused(c) => format!("diagnose: the token endpoint refuses the client ({c})"),
            ClientVerdict::Other(c) => format!("diagnose: the token endpoint refused ({c})"),
            ClientVerdict::NotFound(s) => format!("diagnose: no token endpoint at this URL (HTTP {s})"),
            ClientVerdict::Unreachable(m) => format!("diagnose: the token endpoint could not be asked ({m})"),
        };
    }
    verdict
}

/// Randomness for a probe's state, verifier and code: nothing secret rides on them (the probe is
/// never completed), so a failed draw falls back to a fixed value.
fn random() -> [u8; 32] {
    use ring::rand::SecureRandom as _;
    let mut out = [7u8; 32];
    let _ = ring::rand::SystemRandom::new().fill(&mut out);
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

/// The visible words at the start of an error page (tags dropped).
fn page_text(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut out = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            _ if !in_tag => out.push(c),
            _ => {}
        }
        if out.len() > 2_000 {
            break;
        }
    }
    clean(&out.split_whitespace().collect::<Vec<_>>().join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_are_told_apart_by_code_then_words() {
        let r = |error: Option<&str>, d: &str| Refusal {
            status: 400,
            error: error.map(str::to_owned),
            description: Some(d.into()),
        };
        assert!(matches!(classify(r(Some("invalid_redirect_uri"), "")), AuthorizeVerdict::RedirectRefused(_)));
        assert!(matches!(
            classify(r(
                Some("invalid_request"),
                "redirect_uri did not match any of the client's registered redirect_uris"
            )),
            AuthorizeVerdict::RedirectRefused(_)
        ));
        assert!(matches!(classify(r(Some("invalid_client"), "client is invalid")), AuthorizeVerdict::ClientRefused(_)));
        assert!(matches!(classify(r(None, "Unknown client")), AuthorizeVerdict::ClientRefused(_)));
        // An explicit code wins over the words; an echoed parameter alone is not the error.
        let scope = r(Some("invalid_scope"), "scope x not allowed for client y");
        assert!(matches!(classify(scope), AuthorizeVerdict::Refused(_)));
        let echoed = r(None, "Something went wrong. redirect_uri=https://a client_id=b");
        assert!(matches!(classify(echoed), AuthorizeVerdict::Refused(_)));
        assert!(matches!(classify(r(Some("invalid_target"), "")), AuthorizeVerdict::ResourceRefused(_)));
        assert!(matches!(classify(r(Some("invalid_scope"), "")), AuthorizeVerdict::Refused(_)));
        assert_eq!(page_text(b"<html><h1>Error</h1><p>bad redirect_uri</p></html>"), "Error bad redirect_uri");
    }
}
