//! Authorization for [`McpClient`]: discovery from a refusal, the client to use at each
//! authorization server, the token request (authorization code with PKCE, or client
//! credentials), and the headless authorizer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use url::Url;

use super::{Authorizer, Client, Grant, McpClient};
use crate::http::{Fetcher, headers, ms_since};
use crate::mcp;
use crate::oauth::{self, AuthMethod, AuthorizeRequest, ClientAuth, CodeExchange};
use crate::register::{self, RegistrationRequest};
use crate::result::{DiscoveryResult, Step};

/// An authorizer for servers that approve without a person: the authorization URL is requested
/// without a browser, and its redirects are followed (each hop through the guarded client, at most
/// ten) until one points at `redirect_uri`, which is returned without being requested. A page
/// instead of a redirect means the server wants a person to sign in.
#[must_use]
pub fn headless(fetcher: Fetcher, redirect_uri: String) -> Authorizer {
    Arc::new(move |start: Url| {
        let (fetcher, redirect_uri) = (fetcher.clone(), redirect_uri.clone());
        Box::pin(async move {
            let target = Url::parse(&redirect_uri).map_err(|_| "the redirect URI is not a URL".to_owned())?;
            let mut url = start;
            for _ in 0..10 {
                let f = fetcher.get_once(&url, headers(&[("accept", "text/html")])).await.map_err(|e| {
                    format!(
                        "the authorization server could not be reached at {} ({e})",
                        url.origin().ascii_serialization()
                    )
                })?;
                if !f.status.is_redirection() {
                    return Err(format!(
                        "the authorization server answered {} with a page instead of redirecting back: it wants a person to sign in (run without --headless)",
                        f.status.as_u16()
                    ));
                }
                let location = f
                    .headers
                    .get(reqwest::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .ok_or("the authorization server redirected without a Location")?;
                let next = url
                    .join(location)
                    .map_err(|_| "the authorization server redirected to an unreadable URL".to_owned())?;
                if next.origin() == target.origin() && next.path() == target.path() {
                    return Ok(next);
                }
                url = next;
            }
            Err("the authorization server redirected more than ten times without coming back".into())
        })
    })
}

impl McpClient {
    /// A 401: discover from its challenge and obtain a token.
    pub(super) async fn authenticate(&mut self, status: u16, www_authenticate: &str) -> Result<(), String> {
        if self.token.take().is_some() {
            // The token was refused: what was learned may be stale (SEP-2352: the server may now
            // name another authorization server). Discover again from scratch.
            self.discoverer.cache().clear();
        }
        let r = self.discoverer.discover_challenged(&self.opts.endpoint, status, www_authenticate).await;
        self.report.steps.extend(r.steps.iter().skip(1).cloned());
        if r.issuer.is_none() || r.token_url.is_none() {
            return Err(format!("discovery: {}", r.message));
        }
        (self.progress)(&format!(
            "discovered: issuer {} ({}), resource {}",
            r.issuer.as_deref().unwrap_or_default(),
            r.spec_version.as_deref().unwrap_or("?"),
            r.resource.as_deref().unwrap_or("?")
        ));
        let scopes = match &self.opts.scopes {
            Some(s) => s.clone(),
            None => r.scopes.clone(),
        };
        self.discovery = Some(r);
        self.obtain(scopes).await
    }

    /// A 403 insufficient_scope: ask for the union of what was requested and what is missing.
    pub(super) async fn step_up(&mut self, www_authenticate: &str, challenged: Vec<String>) -> Result<(), String> {
        if self.opts.grant == Grant::ClientCredentials {
            return Err(format!(
                "the server wants scopes {:?} that the client credentials were not granted",
                challenged.join(" ")
            ));
        }
        if self.discovery.is_none() {
            let r = self.discoverer.discover_challenged(&self.opts.endpoint, 403, www_authenticate).await;
            self.report.steps.extend(r.steps.iter().skip(1).cloned());
            if r.issuer.is_none() {
                return Err(format!("discovery: {}", r.message));
            }
            self.discovery = Some(r);
        }
        let mut union = self.requested.clone();
        union.extend(challenged);
        self.obtain(union.into_iter().collect()).await
    }

    async fn obtain(&mut self, scopes: Vec<String>) -> Result<(), String> {
        let Some(r) = self.discovery.clone() else { return Err("nothing discovered".into()) };
        let token_url = r.token_url.as_deref().and_then(|u| Url::parse(u).ok()).ok_or("no usable token endpoint")?;
        let resource = r.resource.clone().unwrap_or_else(|| crate::urls::canonical_resource(&self.opts.endpoint));
        self.report.issuer = r.issuer.clone();
        // Every token request counts, whatever the grant: a server that refuses each new token
        // must end the run, not loop.
        if self.report.authorizations >= self.opts.max_authorizations {
            let n = self.report.authorizations;
            return Err(format!(
                "gave up after {n} authorization{} (the limit): the server still answers {}",
                if n == 1 { "" } else { "s" },
                self.last_refusal
            ));
        }
        if self.opts.grant == Grant::ClientCredentials {
            self.report.scopes = scopes.clone();
            let pre =
                self.opts.pre_registered.clone().ok_or("client credentials need --client-id and --client-secret")?;
            // The secret belongs to the first authorization server it was used with.
            let issuer = r.issuer.clone().unwrap_or_default();
            match &self.pre_registered_issuer {
                Some(first) if *first != issuer => {
                    return Err(format!(
                        "the server moved from {first} to {issuer}; the client credentials belong to {first} and are not sent elsewhere"
                    ));
                }
                _ => self.pre_registered_issuer = Some(issuer),
            }
            let secret = pre.client_secret.ok_or("client credentials need --client-secret")?;
            let auth = ClientAuth::new(
                &pre.client_id,
                Some(&secret),
                AuthMethod::choose(None, true, &r.token_endpoint_auth_methods_supported),
            );
            let token = mcp::client_credentials_token(
                &self.fetcher,
                &token_url,
                &auth,
                &r.token_endpoint_auth_methods_supported,
                &scopes,
                Some(&resource),
                &mut self.report.steps,
            )
            .await?
            .access_token;
            self.report.authorizations += 1;
            (self.progress)("client credentials: token obtained");
            self.token = Some(token);
            self.report.client_registration = Some("pre_registered".into());
            return Ok(());
        }
        if !r.authorization_code_usable {
            return Err(format!(
                "the authorization-code flow cannot be used with {}: {}",
                r.issuer.as_deref().unwrap_or("this server"),
                r.warnings.last().map_or(r.message.as_str(), String::as_str)
            ));
        }
        self.report.scopes = scopes.clone();
        let client = self.client_for(&r).await?;
        let auth_url =
            r.auth_url.as_deref().and_then(|u| Url::parse(u).ok()).ok_or("no usable authorization endpoint")?;
        let (verifier, challenge) = oauth::pkce_pair(random()?);
        let state = {
            use base64::Engine as _;
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(random()?)
        };
        let url = oauth::authorize_url(&AuthorizeRequest {
            auth_url: &auth_url,
            client_id: &client.id,
            redirect_uri: &self.opts.redirect_uri,
            scopes: &scopes,
            state: &state,
            code_challenge: &challenge,
            resource: &resource,
        });
        self.report.authorizations += 1;
        (self.progress)(&format!(
            "authorization {} of at most {}: scopes {:?}",
            self.report.authorizations,
            self.opts.max_authorizations,
            scopes.join(" ")
        ));
        let start = Instant::now();
        let answer = (self.authorize)(url).await;
        let mut step = Step {
            method: "GET".into(),
            url: auth_url.to_string(),
            status: None,
            ms: ms_since(start),
            error: None,
            learned: "authorization request".into(),
        };
        let back = match answer {
            Ok(u) => u,
            Err(e) => {
                step.error = Some(e.clone());
                self.report.steps.push(step);
                return Err(e);
            }
        };
        step.learned = "authorization response received".into();
        self.report.steps.push(step);
        let params: HashMap<String, String> = back.query_pairs().into_owned().collect();
        if params.get("state") != Some(&state) {
            return Err("the authorization response's state does not match the request; it was discarded".into());
        }
        let issuer = r.issuer.clone().unwrap_or_default();
        oauth::check_iss(
            &issuer,
            r.authorization_response_iss_parameter_supported,
            params.get("iss").map(String::as_str),
        )
        .map_err(|e| format!("{e} (expected `{issuer}`); the code was not used"))?;
        if let Some(err) = params.get("error") {
            let code: String = err.chars().filter(char::is_ascii_graphic).take(64).collect();
            return Err(format!("the authorization server refused: {code}"));
        }
        let code = params.get("code").filter(|c| !c.is_empty()).ok_or("the authorization response has no code")?;
        let auth = ClientAuth::new(&client.id, client.secret.as_deref(), client.method);
        let exchange = CodeExchange {
            token_url: &token_url,
            auth,
            advertised: &r.token_endpoint_auth_methods_supported,
            code,
            verifier: &verifier,
            redirect_uri: &self.opts.redirect_uri,
            resource: &resource,
        };
        let tokens = oauth::exchange_code(&self.fetcher, &exchange, &mut self.report.steps).await;
        if let Ok(t) = &tokens
            && t.client_auth != client.method
            && let Some(c) = self.clients.get_mut(&issuer)
        {
            (self.progress)(&format!(
                "the token endpoint accepts {} for this client; keeping it",
                t.client_auth.as_str()
            ));
            c.method = t.client_auth;
        }
        let tokens = tokens.map_err(|e| e.exchange_message())?;
        (self.progress)(&format!(
            "token obtained{}",
            tokens.scope.as_deref().map_or(String::new(), |s| format!(" (granted scope {s:?})"))
        ));
        self.requested.extend(scopes);
        self.token = Some(tokens.access_token);
        Ok(())
    }

    /// The client to use at this issuer: the one already registered there, else pre-registered
    /// credentials, else the Client ID Metadata Document, else dynamic registration.
    async fn client_for(&mut self, r: &DiscoveryResult) -> Result<Client, String> {
        let issuer = r.issuer.clone().unwrap_or_default();
        if let Some(c) = self.clients.get(&issuer) {
            return Ok(c.clone());
        }
        let methods = &r.token_endpoint_auth_methods_supported;
        let supports = |m: &str| methods.iter().any(|x| x == m);
        let (client, how) = if let Some(pre) = self.opts.pre_registered.clone() {
            match &self.pre_registered_issuer {
                Some(first) if *first != issuer => {
                    return Err(format!(
                        "the server moved from {first} to {issuer}; the pre-registered client belongs to {first} and is not sent elsewhere: register a client at {issuer} and pass it"
                    ));
                }
                _ => self.pre_registered_issuer = Some(issuer.clone()),
            }
            let method = AuthMethod::choose(None, pre.client_secret.is_some(), methods);
            (Client { id: pre.client_id, secret: pre.client_secret, method }, "pre_registered")
        } else if let (true, Some(url)) = (r.client_id_metadata_document_supported, &self.opts.client_metadata_url) {
            (Client { id: url.clone(), secret: None, method: AuthMethod::None }, "client_id_metadata_document")
        } else if let Some(register_url) = r.register_url.as_deref().and_then(|u| Url::parse(u).ok()) {
            let registered = register::register(
                &self.fetcher,
                &RegistrationRequest {
                    register_url: &register_url,
                    redirect_uri: &self.opts.redirect_uri,
                    client_name: &self.opts.client_name,
                    confidential: !supports("none"),
                    supported_methods: methods,
                    application_type: "native",
                },
                &mut self.report.steps,
            )
            .await
            .map_err(|e| e.to_string())?;
            (
                Client {
                    method: AuthMethod::choose(
                        Some(&registered.token_endpoint_auth_method),
                        registered.client_secret.is_some(),
                        methods,
                    ),
                    id: registered.client_id,
                    secret: registered.client_secret,
                },
                "dynamic_registration",
            )
        } else {
            return Err(format!(
                "{issuer} offers neither Client ID Metadata Documents nor dynamic registration: pass --client-id (and --client-secret) from its console"
            ));
        };
        (self.progress)(&format!("client at {issuer}: {} ({how})", client.id));
        self.report.client_registration = Some(how.into());
        self.clients.insert(issuer, client.clone());
        Ok(client)
    }
}

fn random() -> Result<[u8; 32], String> {
    use ring::rand::SecureRandom as _;
    let mut out = [0u8; 32];
    ring::rand::SystemRandom::new().fill(&mut out).map_err(|_| "no randomness available".to_owned())?;
    Ok(out)
}
