//! Dynamic Client Registration (RFC 7591) and the Client ID Metadata Document Switchboard serves.
//!
//! Registration asks for exactly one redirect URI (Switchboard's consent callback), the
//! authorization-code and refresh-token grants, and the `application_type` (`web` for the service, `native` for the command-line client) — and no `scope`:
//! a registered scope caps what the client may ever request, and step-up needs more later. Confidential clients
//! try `client_secret_basic`, then `client_secret_post`, then `none`, skipping what the provider
//! does not list; public clients ask for `none`. A response that changes `redirect_uris`, lacks a
//! `client_id`, or lacks the secret a confidential method needs is refused: storing it would only
//! fail later, at the consent callback.

use std::time::Instant;

use serde_json::{Value, json};
use url::Url;

use crate::http::{FetchError, Fetcher, headers, ms_since};
use crate::result::Step;

/// What to register.
#[derive(Clone, Debug)]
pub struct RegistrationRequest<'a> {
    pub register_url: &'a Url,
    pub redirect_uri: &'a str,
    pub client_name: &'a str,
    pub confidential: bool,
    /// The provider's `token_endpoint_auth_methods_supported`.
    pub supported_methods: &'a [String],
    /// `web` for a hosted service (Switchboard), `native` for a loopback or command-line client.
    pub application_type: &'a str,
}

/// A registered client. `Debug` redacts the secrets.
#[derive(Clone)]
pub struct Registered {
    pub client_id: String,
    pub client_secret: Option<String>,
    pub registration_access_token: Option<String>,
    pub registration_client_uri: Option<String>,
    pub token_endpoint_auth_method: String,
}

impl std::fmt::Debug for Registered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registered")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret.as_ref().map(|_| "[redacted]"))
            .field("token_endpoint_auth_method", &self.token_endpoint_auth_method)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RegistrationError {
    #[error("the provider refused the registration: {0}")]
    Rejected(String),
    #[error("the provider's registration response is unusable: {0}")]
    Invalid(String),
    #[error("the registration endpoint could not be reached: {0}")]
    Fetch(FetchError),
}

/// The methods to try, in order, among those the provider allows: for a confidential client the
/// secret methods in the order the provider lists them (its only way to say which it prefers),
/// then `none`; `client_secret_basic` when it lists nothing usable.
fn methods(req: &RegistrationRequest<'_>) -> Vec<&'static str> {
    let wanted: &[&'static str] =
        if req.confidential { &["client_secret_basic", "client_secret_post", "none"] } else { &["none"] };
    let mut allowed: Vec<&'static str> = req
        .supported_methods
        .iter()
        .filter_map(|s| wanted.iter().copied().find(|m| m == s))
        .filter(|m| *m != "none")
        .collect();
    allowed.dedup();
    if wanted.contains(&"none") && req.supported_methods.iter().any(|s| s == "none") {
        allowed.push("none");
    }
    if allowed.is_empty() { wanted.iter().copied().take(1).collect() } else { allowed }
}

/// An RFC 7591 error response, reduced to what is safe to show: a known code and a short,
/// printable description.
fn rejection(body: &[u8], status: u16) -> String {
    let json: Value = serde_json::from_slice(body).unwrap_or_default();
    let code = json.get("error").and_then(Value::as_str).filter(|c| {
        [
            "invalid_redirect_uri",
            "invalid_client_metadata",
            "invalid_software_statement",
            "unapproved_software_statement",
            "invalid_request",
            "access_denied",
        ]
        .contains(c)
    });
    let description: String = json
        .get("error_description")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(200)
        .collect();
    match (code, description.is_empty()) {
        (Some(c), false) => format!("{c}: {description}"),
        (Some(c), true) => c.to_owned(),
        (None, _) => format!("status {status}"),
    }
}

/// Registers a client, trying each allowed auth method until one is accepted. Every request is
/// appended to `steps`.
pub async fn register(
    fetcher: &Fetcher,
    req: &RegistrationRequest<'_>,
    steps: &mut Vec<Step>,
) -> Result<Registered, RegistrationError> {
    let mut last = RegistrationError::Rejected("no auth method to try".into());
    for method in methods(req) {
        let body = json!({
            "client_name": req.client_name,
            "redirect_uris": [req.redirect_uri],
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
            "token_endpoint_auth_method": method,
            "application_type": req.application_type,
        });
        let start = Instant::now();
        let res = fetcher
            .post(
                req.register_url,
                headers(&[("content-type", "application/json"), ("accept", "application/json")]),
                body.to_string().into_bytes(),
            )
            .await;
        let mut step = Step {
            method: "POST".into(),
            url: req.register_url.to_string(),
            status: None,
            ms: ms_since(start),
            error: None,
            learned: String::new(),
        };
        let fetched = match res {
            Ok(f) => f,
            Err(e) => {
                step.error = Some(e.to_string());
                step.learned = "dynamic client registration failed".into();
                steps.push(step);
                return Err(RegistrationError::Fetch(e));
            }
        };
        let status = fetched.status.as_u16();
        step.status = Some(status);
        if !(200..300).contains(&status) {
            let why = rejection(&fetched.body, status);
            step.learned = format!("registration with {method} refused ({why})");
            steps.push(step);
            last = RegistrationError::Rejected(why);
            if status == 400 {
                continue; // another auth method may be accepted
            }
            return Err(last);
        }
        let result = accept(&fetched.body, req, method);
        step.learned = match &result {
            Ok(r) => format!("registered client {} ({})", r.client_id, r.token_endpoint_auth_method),
            Err(e) => e.to_string(),
        };
        steps.push(step);
        return result;
    }
    Err(last)
}

fn accept(body: &[u8], req: &RegistrationRequest<'_>, method: &str) -> Result<Registered, RegistrationError> {
    let json: Value = serde_json::from_slice(body).map_err(|_| RegistrationError::Invalid("not JSON".into()))?;
    let text =
        |k: &str| json.get(k).and_then(Value::as_str).filter(|s| !s.is_empty() && s.len() <= 4096).map(str::to_owned);
    let client_id = text("client_id").ok_or_else(|| RegistrationError::Invalid("no client_id".into()))?;
    if let Some(uris) = json.get("redirect_uris") {
        let uris: Vec<&str> = uris.as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
        if uris != [req.redirect_uri] {
            return Err(RegistrationError::Invalid(
                "the provider changed redirect_uris; the registration is refused".into(),
            ));
        }
    }
    let token_endpoint_auth_method = text("token_endpoint_auth_method").unwrap_or_else(|| method.to_owned());
    let client_secret = text("client_secret");
    if token_endpoint_auth_method != "none" && client_secret.is_none() {
        return Err(RegistrationError::Invalid(format!(
            "no client_secret for auth method {token_endpoint_auth_method}"
        )));
    }
    Ok(Registered {
        client_id,
        client_secret,
        registration_access_token: text("registration_access_token"),
        registration_client_uri: text("registration_client_uri").filter(|u| Url::parse(u).is_ok()),
        token_endpoint_auth_method,
    })
}

/// The Client ID Metadata Document Switchboard serves at `client_id` (an https URL with a path).
#[must_use]
pub fn client_metadata_document(client_id: &str, redirect_uri: &str) -> Value {
    json!({
        "client_id": client_id,
        "client_name": "Switchboard",
        "redirect_uris": [redirect_uri],
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": "none",
        "application_type": "web",
    })
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn registration_follows_the_providers_order() {
        let url = Url::parse("https://as.example/reg").expect("url");
        let order = |confidential: bool, supported: &[&str]| {
            let supported: Vec<String> = supported.iter().map(|s| (*s).to_owned()).collect();
            let req = RegistrationRequest {
                register_url: &url,
                redirect_uri: "https://sb.example/cb",
                client_name: "Switchboard",
                confidential,
                supported_methods: &supported,
                application_type: "web",
            };
            methods(&req)
        };
        assert_eq!(
            order(true, &["client_secret_post", "client_secret_basic"]),
            ["client_secret_post", "client_secret_basic"]
        );
        assert_eq!(
            order(true, &["none", "client_secret_basic", "private_key_jwt", "client_secret_post"]),
            ["client_secret_basic", "client_secret_post", "none"]
        );
        assert_eq!(order(true, &[]), ["client_secret_basic"]);
        assert_eq!(order(false, &["client_secret_basic", "none"]), ["none"]);
        assert_eq!(order(false, &["client_secret_basic"]), ["none"]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a registration endpoint answers, it is refused or accepted without a panic; a
        /// refusal shown to a person is short and printable, and nothing accepted changes the
        /// redirect URI or lacks the secret its method needs.
        #[test]
        fn registration_responses_are_read_safely(body in crate::arbitrary::body(), status in 100u16..600) {
            let why = rejection(&body, status);
            prop_assert!(why.chars().count() <= 260 && !why.chars().any(char::is_control));
            let req = RegistrationRequest {
                register_url: &Url::parse("https://as.example/reg").map_err(|e| TestCaseError::fail(e.to_string()))?,
                redirect_uri: "https://sb.example/service/mcp/consent/callback",
                client_name: "Switchboard",
                confidential: true,
                supported_methods: &[],
                application_type: "web",
            };
            if let Ok(r) = accept(&body, &req, "client_secret_basic") {
                prop_assert!(!r.client_id.is_empty());
                prop_assert!(r.token_endpoint_auth_method == "none" || r.client_secret.is_some());
            }
        }
    }
}
