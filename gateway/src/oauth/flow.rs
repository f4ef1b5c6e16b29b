//! The browser's part: `authorize` checks the client, its redirect URI and the resource, then
//! sends the user to the tenant's identity provider (or straight to consent when this browser is
//! signed in already); `callback` verifies the provider's answer (state bound to the browser by a
//! cookie, RFC 9207 `iss`, the ID token's signature, issuer, audience, expiry and nonce); the
//! consent page asks the signed-in user, and its decision goes back to the client with `code`,
//! `state` and `iss`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use switchboard_discovery::oauth::{AuthMethod, AuthorizeRequest, ClientAuth, check_iss, pkce_pair};
use switchboard_discovery::oidc;
use switchboard_domain::sign_in::{GatewayClient, IdentityProvider};

use super::{
    CODE_LIFE, CODE_PREFIX, Code, Data, Issuer, PENDING_LIFE, PENDING_PREFIX, Pending, SIGN_IN_COOKIE, SIGN_IN_LIFE,
    SIGN_IN_PREFIX, SignIn, back_to_client, flow_cookie, html_escape, now, page, provider_id, random_token,
};
use crate::Inner;

#[derive(Debug, Deserialize)]
pub(super) struct AuthorizeQuery {
    response_type: Option<String>,
    client_id: Option<String>,
    redirect_uri: Option<String>,
    state: Option<String>,
    code_challenge: Option<String>,
    code_challenge_method: Option<String>,
    resource: Option<String>,
}

/// Whether `presented` is one of the client's redirect URIs: exactly, or — for a loopback `http`
/// URI — with any port (RFC 8252 §7.3: native apps listen on an ephemeral port).
fn redirect_matches(client: &GatewayClient, presented: &str) -> bool {
    if client.redirect_uris.iter().any(|r| r == presented) {
        return true;
    }
    let Ok(p) = url::Url::parse(presented) else { return false };
    p.scheme() == "http"
        && matches!(p.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
        && client.redirect_uris.iter().filter_map(|r| url::Url::parse(r).ok()).any(|mut r| {
            let _ = r.set_port(p.port());
            r.as_str() == p.as_str()
        })
}

impl Inner {
    /// The agent (and the server, for a route) a resource names: a gateway route or agent
    /// endpoint URL of this tenant; the server's name, or what the agent endpoint spans.
    async fn resource_route(
        &self,
        issuer: &Issuer,
        resource: &str,
    ) -> Result<(switchboard_domain::agent::Agent, String), String> {
        let prefix = format!("{}/mcp/", self.config.public_url);
        let rest = resource.strip_prefix(&prefix).ok_or("the resource is not a URL of this gateway")?;
        let segments: Vec<&str> = rest.split('/').collect();
        let (tenant, agent, server) = match segments.as_slice() {
            [tenant, agent, server] => (*tenant, *agent, Some(*server)),
            [tenant, agent] => (*tenant, *agent, None),
            _ => {
                return Err("the resource must be a gateway URL: {public_url}/mcp/{tenant}/{agent}[/{server}]".into());
            }
        };
        let t = &issuer.tenant;
        if !crate::inbound::names_tenant(tenant, t.id, &t.slug) {
            return Err("the resource belongs to another tenant".into());
        }
        let store = self.runtime.store.tenant(t.id);
        let found = match server {
            Some(server) => store.resolve_route(agent, server).await.map(|(a, s, _)| (a, s.name)),
            None => store.agent_by_ref(agent).await.map(|a| (a, "every service of this agent".to_owned())),
        };
        match found {
            Ok(found) => Ok(found),
            Err(switchboard_domain::DomainError::NotFound { .. }) => {
                Err("the resource names no agent, server or attachment of this tenant".into())
            }
            Err(e) => Err(switchboard_domain::error::chain(&e)),
        }
    }
}

/// `GET /oauth/{tenant}/authorize`.
pub(super) async fn authorize(
    gw: Data,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<AuthorizeQuery>,
) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return page(StatusCode::NOT_FOUND, "Sign-in not available", "there is no such tenant"),
        Err(r) => return r,
    };
    let Some(idp) = issuer.idp.clone() else {
        return page(
            StatusCode::BAD_REQUEST,
            "Sign-in not available",
            "this organisation has not configured an identity provider for its MCP gateway",
        );
    };
    // The client and its redirect URI first: until both check out, nothing goes back to it.
    let Some(client_id) = q.client_id.as_deref() else {
        return page(StatusCode::BAD_REQUEST, "Sign-in failed", "the request names no client_id");
    };
    let client = match inner.client(issuer.tenant.id, client_id).await {
        Ok(Some(c)) => c,
        Ok(None) => return page(StatusCode::BAD_REQUEST, "Sign-in failed", "the client is not registered here"),
        Err(why) => {
            return page(StatusCode::BAD_REQUEST, "Sign-in failed", &format!("the client cannot be used: {why}"));
        }
    };
    let Some(redirect_uri) = q.redirect_uri.clone().filter(|r| redirect_matches(&client, r)) else {
        return page(StatusCode::BAD_REQUEST, "Sign-in failed", "the redirect_uri is not one the client registered");
    };
    let state = q.state.clone();
    // Registration is open (and a metadata document needs none), so a redirect URI proves
    // nothing yet: a request refused before the user did anything gets a page, never a redirect
    // (which would make this an open redirector, RFC 9700 §4.11.2).
    let fail = |error: &str, why: &str| page(StatusCode::BAD_REQUEST, "Sign-in failed", &format!("{why} ({error})"));
    if state.as_ref().is_some_and(|s| s.len() > 512) {
        return fail("invalid_request", "state is longer than 512 characters");
    }
    if q.response_type.as_deref() != Some("code") {
        return fail("unsupported_response_type", "only response_type=code is supported");
    }
    let Some(challenge) = q.code_challenge.clone().filter(|c| (43..=128).contains(&c.len())) else {
        return fail("invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256");
    };
    if q.code_challenge_method.as_deref() != Some("S256") {
        return fail("invalid_request", "code_challenge_method must be S256");
    }
    let Some(resource) = q.resource.clone() else {
        return fail("invalid_target", "resource is required (RFC 8707): the gateway URL the token is for");
    };
    let (agent, server_name) = match inner.resource_route(&issuer, &resource).await {
        Ok(r) => r,
        Err(why) => return fail("invalid_target", &why),
    };
    let (Some(nonce), Some(browser), Ok(seed)) =
        (random_token(), random_token(), switchboard_domain::crypto::random_bytes::<32>())
    else {
        return fail("server_error", "no randomness");
    };
    let (verifier, _) = pkce_pair(seed);
    let mut pending = Pending {
        client_id: client.client_id.clone(),
        client_name: client.client_name.clone(),
        redirect_uri: redirect_uri.clone(),
        state: state.clone(),
        challenge,
        resource,
        agent: agent.id,
        agent_name: agent.name.clone(),
        server_name,
        nonce,
        verifier,
        browser,
        user: None,
        expires_at: now() + PENDING_LIFE,
        connect: None,
    };
    // Signed in already in this browser: straight to consent.
    if let Some(signed) = inner.signed_in(&req, issuer.tenant.id, &idp) {
        pending.user = Some(signed.user);
        return to_consent(inner, &path, &issuer, &pending);
    }
    to_identity_provider(inner, &path, &issuer, &idp, &pending)
}

/// Sends the browser to the tenant's identity provider to sign in (PKCE, a nonce, the pending
/// request sealed in `state` and bound to this browser by a cookie).
pub(super) fn to_identity_provider(
    inner: &Inner,
    segment: &str,
    issuer: &Issuer,
    idp: &IdentityProvider,
    pending: &Pending,
) -> HttpResponse {
    let failed = |why: &str| page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", why);
    let Some(sealed) = inner.seal(issuer.tenant.id, "pending", PENDING_PREFIX, pending) else {
        return failed("the request could not be sealed");
    };
    let Ok(auth_url) = url::Url::parse(&idp.metadata.authorization_endpoint) else {
        return failed("the identity provider's authorization endpoint is not valid");
    };
    let redirect = format!("{}/callback", issuer.url);
    let mut url = switchboard_discovery::oauth::authorize_url(&AuthorizeRequest {
        auth_url: &auth_url,
        client_id: &idp.client_id,
        redirect_uri: &redirect,
        scopes: &idp.scopes,
        state: &sealed,
        code_challenge: &switchboard_discovery::oauth::s256_challenge(&pending.verifier),
        resource: "",
    });
    // The identity provider signs the user in for Switchboard itself: no resource, a nonce.
    let pairs: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| k != "resource").map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    url.query_pairs_mut().clear().extend_pairs(pairs).append_pair("nonce", &pending.nonce);
    HttpResponse::Found()
        .insert_header(("location", url.to_string()))
        .insert_header(("cache-control", "no-store"))
        .cookie(inner.cookie(segment, flow_cookie(&pending.browser), pending.browser.clone(), PENDING_LIFE))
        .finish()
}

fn to_consent(inner: &Inner, segment: &str, issuer: &Issuer, pending: &Pending) -> HttpResponse {
    let Some(sealed) = inner.seal(issuer.tenant.id, "pending", PENDING_PREFIX, pending) else {
        return page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "the request could not be sealed");
    };
    let mut url = format!("{}/oauth/{segment}/consent", inner.config.public_url);
    url.push_str("?request=");
    url.push_str(&sealed);
    HttpResponse::Found().insert_header(("location", url)).insert_header(("cache-control", "no-store")).finish()
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    code: Option<String>,
    state: Option<String>,
    iss: Option<String>,
    error: Option<String>,
}

/// `GET /oauth/{tenant}/callback`: the identity provider's answer.
pub(super) async fn callback(
    gw: Data,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<CallbackQuery>,
) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return page(StatusCode::NOT_FOUND, "Sign-in failed", "there is no such tenant"),
        Err(r) => return r,
    };
    let Some(idp) = issuer.idp.clone() else {
        return page(StatusCode::BAD_REQUEST, "Sign-in failed", "this organisation no longer signs users in here");
    };
    let failed = |why: &str| page(StatusCode::BAD_REQUEST, "Sign-in failed", why);
    let Some(mut pending) = q
        .state
        .as_deref()
        .and_then(|s| inner.open::<Pending>(issuer.tenant.id, "pending", PENDING_PREFIX, s))
        .filter(|p| p.expires_at > now())
    else {
        return failed("this sign-in link is not valid or has expired; start again from your MCP client");
    };
    // The answer must come to the browser that asked (login CSRF).
    if req.cookie(&flow_cookie(&pending.browser)).map(|c| c.value().to_owned()).as_deref()
        != Some(pending.browser.as_str())
    {
        return failed("this sign-in was started in another browser; start again from your MCP client");
    }
    // RFC 9207, before anything else of the answer is used.
    if check_iss(&idp.issuer, idp.metadata.iss_parameter_supported, q.iss.as_deref()).is_err() {
        tracing::warn!(tenant.id = %issuer.tenant.id, "sign-in answer from another issuer refused");
        return failed("the sign-in answer did not come from your organisation's identity provider");
    }
    if let Some(error) = &q.error {
        let error = if error == "access_denied" { "access_denied" } else { "server_error" };
        let mut pairs = vec![("error", error), ("error_description", "the sign-in did not complete")];
        if let Some(s) = &pending.state {
            pairs.push(("state", s.as_str()));
        }
        return back_to_client(&pending.redirect_uri, &pairs, &issuer.url);
    }
    let Some(code) = q.code.as_deref() else { return failed("the identity provider sent no code") };
    let user = match sign_in(inner, &idp, &issuer.url, code, &pending).await {
        Ok(u) => u,
        Err(why) => {
            tracing::warn!(tenant.id = %issuer.tenant.id, why, "sign-in refused");
            return failed(&why);
        }
    };
    tracing::info!(tenant.id = %issuer.tenant.id, user.id = %user, "signed in through the identity provider");
    pending.user = Some(user.clone());
    let signed = SignIn { user, expires_at: now() + SIGN_IN_LIFE, provider: provider_id(&idp) };
    let Some(session) = inner.seal(issuer.tenant.id, "sign_in", SIGN_IN_PREFIX, &signed) else {
        return failed("the sign-in could not be recorded");
    };
    let mut r = match &pending.connect {
        Some(request) => super::to_connect(inner, &path, request),
        None => to_consent(inner, &path, &issuer, &pending),
    };
    let _ = r.add_cookie(&inner.cookie(&path, SIGN_IN_COOKIE, session, SIGN_IN_LIFE));
    let _ = r.add_cookie(&inner.cookie(&path, flow_cookie(&pending.browser), String::new(), 0));
    r
}

/// The code exchanged and the ID token verified; the user id, from the configured claim.
async fn sign_in(
    inner: &Inner,
    idp: &IdentityProvider,
    issuer_url: &str,
    code: &str,
    pending: &Pending,
) -> Result<String, String> {
    let fetcher = &inner.runtime.fetcher;
    let token_url =
        url::Url::parse(&idp.metadata.token_endpoint).map_err(|_| "the provider's token endpoint is not valid")?;
    let secret = idp.client_secret.as_ref().map(|s| s.expose());
    let method = AuthMethod::choose(None, secret.is_some(), &idp.metadata.token_endpoint_auth_methods);
    let auth = ClientAuth::new(&idp.client_id, secret, method);
    let redirect = format!("{issuer_url}/callback");
    let tokens = oidc::exchange_sign_in_code(
        fetcher,
        &token_url,
        &auth,
        &idp.metadata.token_endpoint_auth_methods,
        code,
        &pending.verifier,
        &redirect,
    )
    .await
    .map_err(|e| format!("the identity provider refused the sign-in: {}", e.exchange_message()))?;
    let id_token =
        tokens.id_token.ok_or("the identity provider returned no ID token (is `openid` among the scopes?)")?;
    let jwks_uri = url::Url::parse(&idp.metadata.jwks_uri).map_err(|_| "the provider's jwks_uri is not valid")?;
    let keys = oidc::fetch_jwks(fetcher, &jwks_uri).await?;
    let expected = oidc::Expected {
        issuer: &idp.issuer,
        client_id: &idp.client_id,
        nonce: &pending.nonce,
        now: std::time::SystemTime::now(),
    };
    let claims = oidc::verify_id_token(&id_token, &keys, &expected).map_err(|e| e.to_string())?;
    idp.admits(&claims)?;
    match claims.get(&idp.user_claim) {
        Some(serde_json::Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(s.clone()),
        _ => Err(format!("the ID token has no `{}` claim to name the user by", idp.user_claim)),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ConsentQuery {
    request: String,
}

/// The value that ties a consent form to the browser's sign-in (a form posted from elsewhere
/// lacks the cookie, or has another).
fn form_token(request: &str, session: &str) -> String {
    switchboard_domain::crypto::hex_digest(format!("consent\0{request}\0{session}").as_bytes())
}

/// `GET /oauth/{tenant}/consent?request=…`: "*client* wants to use *agent* on your behalf".
pub(super) async fn consent_page(
    gw: Data,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ConsentQuery>,
) -> HttpResponse {
    let inner = &gw.inner;
    let (issuer, pending, session) = match consent_context(inner, &req, &path, &q.request).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    let e = html_escape;
    let user = pending.user.as_deref().unwrap_or_default();
    let redirect_host = url::Url::parse(&pending.redirect_uri)
        .ok()
        .map(|u| u.host_str().map_or_else(|| u.scheme().to_owned(), str::to_owned))
        .unwrap_or_default();
    let body = format!(
        r#"<!doctype html><html><head><meta charset="utf-8"><title>Allow access</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}
button{{font-size:1rem;padding:.5rem 1.25rem;margin-right:.5rem}}.muted{{color:#555}}</style></head><body>
<h1 id="title"><span id="client">{client}</span> wants to use <span id="agent">{agent}</span> on your behalf</h1>
<p>Signed in as <b id="user">{user}</b> ({tenant}).</p>
<p>It will be able to use the tools of <b id="server">{server}</b> through <b>{agent}</b>, as you, until you revoke it.
Services you have not connected yet will ask you to connect them the first time they are used.</p>
<p class="muted">After you decide you go back to <b>{host}</b>.</p>
<form method="post" action="/oauth/{segment}/consent">
<input type="hidden" name="request" value="{request}">
<input type="hidden" name="csrf" value="{csrf}">
<button type="submit" name="decision" value="allow" id="allow">Allow</button>
<button type="submit" name="decision" value="deny" id="deny">Deny</button>
</form></body></html>"#,
        client = e(&pending.client_name),
        agent = e(&pending.agent_name),
        server = e(&pending.server_name),
        user = e(user),
        tenant = e(&issuer.tenant.name),
        host = e(&redirect_host),
        segment = e(&path),
        request = e(&q.request),
        csrf = form_token(&q.request, &session),
    );
    // The decision's answer redirects to the client: browsers hold that redirect to
    // `form-action` too, so the client's origin (or its private-use scheme) is allowed with ours.
    let client_origin = url::Url::parse(&pending.redirect_uri).ok().map(|u| match u.scheme() {
        "http" | "https" => u.origin().ascii_serialization(),
        scheme => format!("{scheme}:"),
    });
    let csp = format!(
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self' {}; frame-ancestors 'none'",
        client_origin.unwrap_or_default()
    );
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header(("x-frame-options", "DENY"))
        .insert_header(("content-security-policy", csp))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("cache-control", "no-store"))
        .body(body)
}

/// The pending request of a consent step, which must belong to the user signed in in this
/// browser; and that sign-in's cookie value.
async fn consent_context(
    inner: &Inner,
    req: &HttpRequest,
    segment: &str,
    request: &str,
) -> Result<(Issuer, Pending, String), HttpResponse> {
    let issuer = match inner.issuer(segment).await {
        Ok(Some(i)) => i,
        Ok(None) => return Err(page(StatusCode::NOT_FOUND, "Not found", "there is no such tenant")),
        Err(r) => return Err(r),
    };
    let pending = inner
        .open::<Pending>(issuer.tenant.id, "pending", PENDING_PREFIX, request)
        .filter(|p| p.expires_at > now())
        .ok_or_else(|| {
            page(
                StatusCode::BAD_REQUEST,
                "Request expired",
                "this request is not valid or has expired; start again from your MCP client",
            )
        })?;
    let Some(idp) = issuer.idp.as_ref() else {
        return Err(page(
            StatusCode::BAD_REQUEST,
            "Sign-in not available",
            "this organisation no longer signs users in here",
        ));
    };
    let signed = inner.signed_in(req, issuer.tenant.id, idp);
    let session = req.cookie(SIGN_IN_COOKIE).map(|c| c.value().to_owned()).unwrap_or_default();
    match (&pending.user, signed) {
        (Some(user), Some(s)) if *user == s.user => Ok((issuer, pending, session)),
        _ => Err(page(
            StatusCode::FORBIDDEN,
            "Sign in first",
            "this approval belongs to another sign-in; start again from your MCP client",
        )),
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct ConsentForm {
    request: String,
    csrf: String,
    decision: String,
}

/// `POST /oauth/{tenant}/consent`: the user's decision, back to the client.
pub(super) async fn consent_decision(
    gw: Data,
    req: HttpRequest,
    path: web::Path<String>,
    form: web::Form<ConsentForm>,
) -> HttpResponse {
    let inner = &gw.inner;
    let (issuer, pending, session) = match consent_context(inner, &req, &path, &form.request).await {
        Ok(c) => c,
        Err(r) => return r,
    };
    if !same(form.csrf.as_bytes(), form_token(&form.request, &session).as_bytes()) {
        return page(StatusCode::FORBIDDEN, "Request refused", "this form was not sent from the consent page");
    }
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    let user = pending.user.clone().unwrap_or_default();
    let code;
    if form.decision == "allow" {
        let Some(nonce) = random_token() else {
            return page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "no randomness");
        };
        let c = Code {
            client_id: pending.client_id.clone(),
            redirect_uri: pending.redirect_uri.clone(),
            challenge: pending.challenge.clone(),
            resource: pending.resource.clone(),
            agent: pending.agent,
            user: user.clone(),
            expires_at: now() + CODE_LIFE,
            nonce,
        };
        let Some(sealed) = inner.seal(issuer.tenant.id, "code", CODE_PREFIX, &c) else {
            return page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "the code could not be sealed");
        };
        code = sealed;
        pairs.push(("code", &code));
        tracing::info!(tenant.id = %issuer.tenant.id, user.id = %user, client_id = %pending.client_id, agent.id = %pending.agent, "mcp client allowed");
    } else {
        pairs.push(("error", "access_denied"));
        pairs.push(("error_description", "the user declined"));
        tracing::info!(tenant.id = %issuer.tenant.id, user.id = %user, client_id = %pending.client_id, "mcp client denied");
    }
    if let Some(s) = &pending.state {
        pairs.push(("state", s));
    }
    back_to_client(&pending.redirect_uri, &pairs, &issuer.url)
}

/// Compares in time that does not depend on where the values differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
