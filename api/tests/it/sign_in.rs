//! Any MCP client, no SDK of ours: the gateway as its tenant's OAuth authorization server, with
//! `oidc-provider` (tests/peers/peers.mjs) as the tenant's identity provider. The MCP TypeScript
//! SDK's own client and OAuth provider interface (`oauth-client.mjs`) finds its way in from the
//! route's 401 alone — DCR or a Client ID Metadata Document, sign-in, consent, token, tools,
//! a call, refresh, reuse detection, revocation; a hand-driven flow checks what the SDK cannot
//! show (audiences across routes and tenants, a code exchanged twice); an in-process provider
//! makes the ID tokens a certified one never would (another issuer, a wrong nonce).

use std::collections::HashMap;
use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::gateway::{Upstream, peers_dir};
use crate::gateway_e2e::{local_app, route};
use crate::helpers::TestApp;
use crate::peers::Peers;

/// The tenant slug in a gateway URL `…/mcp/{tenant}/{agent}/{server}`.
fn tenant_segment(url: &str) -> String {
    url.split("/mcp/").nth(1).and_then(|r| r.split('/').next()).expect("tenant segment").to_owned()
}

/// Registers Switchboard at the identity provider (DCR) and configures it as the tenant's.
async fn configure_idp(app: &TestApp, key: &str, issuer: &str, slug: &str) -> Value {
    let redirect = format!("{}/oauth/{slug}/callback", app.base);
    let reg: Value = app
        .client
        .post(format!("{issuer}/reg"))
        .json(&json!({"redirect_uris": [redirect], "grant_types": ["authorization_code"], "response_types": ["code"],
            "token_endpoint_auth_method": "client_secret_basic", "client_name": "Switchboard"}))
        .send()
        .await
        .expect("register at the idp")
        .json()
        .await
        .expect("registration json");
    let body = json!({"issuer": issuer, "client_id": reg["client_id"], "client_secret": reg["client_secret"]});
    let put = app.call(Method::PUT, "/v1/settings/identity-provider", Some(key), Some(&body)).await;
    assert_eq!(put.status, StatusCode::OK, "{}", put.text);
    let shown = put.json();
    assert_eq!(shown["redirect_uri"], redirect);
    assert_eq!(shown["client_secret"]["set"], true);
    assert!(!put.text.contains(reg["client_secret"].as_str().expect("secret")), "the secret is never shown");
    shown
}

/// The SDK's OAuth client against `url` (see tests/peers/oauth-client.mjs).
async fn oauth_client(url: &str, extra: &[&str]) -> Value {
    let mut command = Command::new("node");
    command.arg(format!("{}/oauth-client.mjs", peers_dir())).arg(url).args(extra);
    let out =
        tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("node oauth-client.mjs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or_default())
        .unwrap_or_else(|_| panic!("oauth-client printed no JSON: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

struct Setup {
    app: TestApp,
    idp: Peers,
    _upstream: Upstream,
    url: String,
    /// A second route of the same tenant.
    other_url: String,
    issuer: String,
}

async fn setup() -> Setup {
    let app = local_app().await;
    let idp = Peers::start();
    let upstream = Upstream::start(&[]);
    let body = |slug: &str| json!({"name": slug, "slug": slug, "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    let (_, _, url) = route(&app, &app.key, body("fixture-a"), "Bot", None).await;
    let (_, _, other_url) = route(&app, &app.key, body("fixture-b"), "Other bot", None).await;
    let slug = tenant_segment(&url);
    configure_idp(&app, &app.key, &idp.issuer, &slug).await;
    let issuer = format!("{}/oauth/{slug}", app.base);
    Setup { app, idp, _upstream: upstream, url, other_url, issuer }
}

#[tokio::test]
async fn a_stock_sdk_client_signs_in_from_the_401_and_uses_the_route() {
    let s = setup().await;
    // What the client finds first: a 401 naming the metadata, which names the tenant's issuer.
    let bare = s.app.client.post(&s.url).json(&json!({})).send().await.expect("post");
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let prm_url =
        bare.headers()["www-authenticate"].to_str().expect("header").split('"').nth(1).expect("url").to_owned();
    let prm: Value = s.app.client.get(&prm_url).send().await.expect("prm").json().await.expect("json");
    assert_eq!(prm["authorization_servers"], json!([s.issuer]));
    assert_eq!(prm["resource"], s.url);

    let out = oauth_client(&s.url, &["--call", "test_simple_text", "--reuse"]).await;
    assert!(out["error"].is_null(), "{out}");
    assert_eq!(out["registration"], "dcr", "{out}");
    assert_eq!(out["authorization_server"], s.issuer);
    assert_eq!(out["iss"], s.issuer, "RFC 9207 iss in the answer");
    assert_eq!(out["state_ok"], true);
    let visited = out["visited"].to_string();
    assert!(visited.contains("/consent") && visited.contains("/callback"), "{out}");
    assert!(out["tools"].as_array().is_some_and(|t| t.iter().any(|n| n == "test_simple_text")), "{out}");
    assert_eq!(out["call"]["isError"], Value::Null, "{out}");
    assert!(out["call"]["content"].to_string().contains("simple text"), "{out}");
    // Refresh rotates; the spent token presented again kills the family, access tokens included.
    assert_eq!(out["rotated"], true, "{out}");
    assert!(out["tools_after_refresh"].as_array().is_some_and(|t| !t.is_empty()), "{out}");
    assert_eq!(out["reuse_error"], "invalid_grant", "{out}");
    assert_eq!(out["after_reuse_error"], "invalid_grant", "{out}");
    assert_eq!(out["access_after_reuse_status"], 401, "{out}");
}

/// Serves one JSON document at `http://127.0.0.1:{port}/client.json` (a Client ID Metadata
/// Document is hosted by the client, not by Switchboard).
async fn serve_document(
    doc: impl Fn(&str) -> Value + Send + Sync + 'static,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/client.json", listener.local_addr().expect("addr"));
    let body = doc(&url).to_string();
    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = hits.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let body = body.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    (url, hits)
}

#[tokio::test]
async fn a_client_id_metadata_document_client_signs_in_and_revocation_ends_its_tokens() {
    let s = setup().await;
    let (cimd, fetched) = serve_document(|url| {
        json!({"client_id": url, "client_name": "CIMD test client", "redirect_uris": ["http://127.0.0.1:33418/callback"],
            "grant_types": ["authorization_code", "refresh_token"], "response_types": ["code"], "token_endpoint_auth_method": "none"})
    })
    .await;
    let out = oauth_client(&s.url, &["--cimd", &cimd, "--revoke"]).await;
    assert!(out["error"].is_null(), "{out}");
    assert_eq!(out["client_id"], cimd, "{out}");
    assert!(out["tools"].as_array().is_some_and(|t| !t.is_empty()), "{out}");
    assert_eq!(out["revoke_status"], 200, "{out}");
    assert_eq!(out["access_after_revoke_status"], 401, "{out}");
    assert_eq!(out["refresh_after_revoke_error"], "invalid_grant", "{out}");
    // The document is kept a while: further authorization requests do not fetch it again.
    let before = fetched.load(std::sync::atomic::Ordering::SeqCst);
    assert!(before >= 1);
    for _ in 0..3 {
        let page = s
            .app
            .client
            .get(format!("{}/authorize", s.issuer))
            .query(&[
                ("client_id", cimd.as_str()),
                ("redirect_uri", "http://127.0.0.1:33418/callback"),
                ("response_type", "token"),
            ])
            .send()
            .await
            .expect("authorize");
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        assert!(page.text().await.expect("page").contains("response_type"), "the client resolved, the request refused");
    }
    assert_eq!(fetched.load(std::sync::atomic::Ordering::SeqCst), before);
}

/// A browser without a UI: follows redirects by hand, keeps Switchboard's cookies, submits the
/// consent form's allow button.
struct HandDriven<'a> {
    app: &'a TestApp,
    client: reqwest::Client,
    cookies: HashMap<String, String>,
}

impl<'a> HandDriven<'a> {
    fn new(app: &'a TestApp) -> Self {
        let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
        Self { app, client, cookies: HashMap::new() }
    }

    fn keep(&mut self, r: &reqwest::Response) {
        for v in r.headers().get_all("set-cookie") {
            let pair = v.to_str().unwrap_or_default().split(';').next().unwrap_or_default();
            if let Some((k, v)) = pair.split_once('=') {
                self.cookies.insert(k.to_owned(), v.to_owned());
            }
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Registers a client, authorizes for `resource`, approves, and returns (client id, code,
    /// verifier, redirect URI).
    async fn authorize(&mut self, issuer: &str, resource: &str) -> (String, String, String, String) {
        let redirect = "http://127.0.0.1:9/cb".to_owned();
        let reg = self
            .client
            .post(format!("{issuer}/register"))
            .json(&json!({"redirect_uris": [redirect], "client_name": "Hand"}))
            .send()
            .await
            .expect("register");
        assert_eq!(reg.status(), StatusCode::CREATED);
        let client_id = reg.json::<Value>().await.expect("json")["client_id"].as_str().expect("id").to_owned();
        let verifier = "v".repeat(50);
        let challenge = switchboard_discovery::oauth::s256_challenge(&verifier);
        let mut url = reqwest::Url::parse(&format!("{issuer}/authorize")).expect("url");
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &client_id)
            .append_pair("redirect_uri", &redirect)
            .append_pair("state", "s-1")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256")
            .append_pair("resource", resource);
        let back = self.drive(url.as_str(), &redirect).await;
        let u = reqwest::Url::parse(&back).expect("redirect");
        let q: HashMap<String, String> = u.query_pairs().into_owned().collect();
        assert_eq!(q.get("state").map(String::as_str), Some("s-1"));
        assert_eq!(q.get("iss").map(String::as_str), Some(issuer));
        (client_id, q["code"].clone(), verifier, redirect)
    }

    /// From an authorization URL through sign-in and consent (allowed) to the redirect back to
    /// `redirect`: that URL, not followed.
    async fn drive(&mut self, start: &str, redirect: &str) -> String {
        let mut next = start.to_owned();
        for _ in 0..20 {
            if next.starts_with(redirect) {
                return next;
            }
            let ours = next.starts_with(&self.app.base);
            let mut req = self.client.get(&next);
            if ours {
                req = req.header("cookie", self.cookie_header());
            }
            let r = req.send().await.expect("step");
            if ours {
                self.keep(&r);
            }
            if r.status().is_redirection() {
                let location = r.headers()["location"].to_str().expect("location").to_owned();
                next = reqwest::Url::parse(&next).expect("base").join(&location).expect("join").to_string();
                continue;
            }
            let status = r.status();
            let page = r.text().await.expect("page");
            assert_eq!(status, StatusCode::OK, "{next}: {page}");
            let field = |name: &str| {
                let marker = format!("name=\"{name}\" value=\"");
                let start = page.find(&marker).expect("field") + marker.len();
                page[start..].split('"').next().expect("value").replace("&amp;", "&")
            };
            let form = [("request", field("request")), ("csrf", field("csrf")), ("decision", "allow".to_owned())];
            let r = self
                .client
                .post(next.split('?').next().expect("action"))
                .header("cookie", self.cookie_header())
                .form(&form)
                .send()
                .await
                .expect("consent");
            assert!(r.status().is_redirection(), "{}", r.status());
            next = r.headers()["location"].to_str().expect("location").to_owned();
        }
        panic!("the flow did not come back to the client");
    }

    /// Follows redirects from `start` (keeping Switchboard's cookies) to the first page that is
    /// not one: its status, URL and text.
    async fn follow(&mut self, start: &str) -> (StatusCode, String, String) {
        let mut next = start.to_owned();
        for _ in 0..20 {
            let ours = next.starts_with(&self.app.base);
            let mut req = self.client.get(&next);
            if ours {
                req = req.header("cookie", self.cookie_header());
            }
            let r = req.send().await.expect("step");
            if ours {
                self.keep(&r);
            }
            if !r.status().is_redirection() {
                let status = r.status();
                return (status, next, r.text().await.unwrap_or_default());
            }
            let location = r.headers()["location"].to_str().expect("location").to_owned();
            next = reqwest::Url::parse(&next).expect("base").join(&location).expect("join").to_string();
        }
        panic!("too many redirects from {start}");
    }

    async fn token(&self, issuer: &str, form: &[(&str, &str)]) -> (StatusCode, Value) {
        let r = self.client.post(format!("{issuer}/token")).form(form).send().await.expect("token");
        (r.status(), r.json().await.unwrap_or_default())
    }
}

async fn initialize_status(app: &TestApp, url: &str, token: &str) -> (StatusCode, Value) {
    let r = app
        .client
        .post(url)
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}))
        .send()
        .await
        .expect("initialize");
    let status = r.status();
    (status, r.json().await.unwrap_or_default())
}

#[tokio::test]
async fn an_access_token_works_only_at_its_resource_and_a_code_works_once() {
    let s = setup().await;
    let mut browser = HandDriven::new(&s.app);
    let (client_id, code, verifier, redirect) = browser.authorize(&s.issuer, &s.url).await;
    let exchange = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
        ("resource", s.url.as_str()),
    ];
    // PKCE: another verifier is refused, and does not spend the code.
    let wrong = "w".repeat(50);
    let mut bad = exchange;
    bad[3] = ("code_verifier", wrong.as_str());
    assert_eq!(browser.token(&s.issuer, &bad).await.1["error"], "invalid_grant");
    let (status, tokens) = browser.token(&s.issuer, &exchange).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    assert_eq!(initialize_status(&s.app, &s.url, &access).await.0, StatusCode::OK);

    // Route B of the same tenant, the runtime plane, another tenant's route: all refuse it.
    let (status, body) = initialize_status(&s.app, &s.other_url, &access).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_audience")), "{body}");
    let runtime = s.app.call(Method::GET, "/v1/runtime/agents/x/mcp-servers", Some(&access), None).await;
    runtime.problem(StatusCode::FORBIDDEN, "wrong_credential");
    let (_, other_key) = s.app.other_tenant().await;
    let body = json!({"name": "Theirs", "slug": "fixture-a", "config": {"endpoint": "http://127.0.0.1:9/mcp", "auth": {"type": "none"}}});
    let (_, _, theirs) = route(&s.app, &other_key, body, "Bot", None).await;
    assert!(initialize_status(&s.app, &theirs, &access).await.0.is_client_error());

    // The same code again: refused, and what it gave is revoked.
    assert_eq!(browser.token(&s.issuer, &exchange).await.1["error"], "invalid_grant");
    assert_eq!(initialize_status(&s.app, &s.url, &access).await.0, StatusCode::UNAUTHORIZED);

    // A second sign-in in the same browser skips the identity provider (one sign-in), and a
    // resource of another tenant is refused at authorize.
    let idp_before = s.idp.stats().await["authorization_requests"].as_u64().expect("count");
    let (client_id, code, verifier, redirect) = browser.authorize(&s.issuer, &s.url).await;
    assert_eq!(s.idp.stats().await["authorization_requests"].as_u64(), Some(idp_before), "signed in once");
    let (status, tokens) = browser
        .token(
            &s.issuer,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let refreshed = browser
        .token(
            &s.issuer,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", tokens["refresh_token"].as_str().expect("rt")),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(refreshed.0, StatusCode::OK, "{}", refreshed.1);
    assert_eq!(
        initialize_status(&s.app, &s.url, refreshed.1["access_token"].as_str().expect("at")).await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_an_identity_provider_routes_keep_taking_tickets_and_say_so() {
    let app = local_app().await;
    let upstream = Upstream::start(&[]);
    let body = json!({"name": "F", "slug": "fixture", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    let (_, _, url) = route(&app, &app.key, body, "Bot", None).await;
    let slug = tenant_segment(&url);
    let prm: Value = app
        .client
        .get(url.replace("/mcp/", "/.well-known/oauth-protected-resource/mcp/"))
        .send()
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["authorization_servers"], json!([]));
    assert!(prm["switchboard"]["sign_in"].as_str().is_some_and(|s| s.starts_with("not configured")), "{prm}");
    let meta = app
        .client
        .get(format!("{}/.well-known/oauth-authorization-server/oauth/{slug}", app.base))
        .send()
        .await
        .expect("meta");
    assert_eq!(meta.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        app.call(Method::GET, "/v1/settings/identity-provider", Some(&app.key), None).await.status,
        StatusCode::NOT_FOUND
    );

    // A provider that is not one is refused on `issuer`, and nothing is stored.
    let bad = json!({"issuer": upstream.url.trim_end_matches("/mcp"), "client_id": "x"});
    let put = app.call(Method::PUT, "/v1/settings/identity-provider", Some(&app.key), Some(&bad)).await;
    assert_eq!(put.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", put.text);
    assert_eq!(put.field_errors().first().map(|(f, _)| f.as_str()), Some("issuer"), "{}", put.text);
    assert_eq!(
        app.call(Method::GET, "/v1/settings/identity-provider", Some(&app.key), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_stock_client_signs_in_to_an_agent_endpoint_and_uses_every_server() {
    let s = setup().await;
    // The agent "Bot" of route A carries one more server.
    let agent_url = s.url.rsplit_once('/').expect("route").0.to_owned();
    let out = oauth_client(&agent_url, &["--call", "fixture-a__test_simple_text"]).await;
    assert!(out["error"].is_null(), "{out}");
    assert_eq!(out["authorization_server"], s.issuer);
    assert!(out["tools"].as_array().is_some_and(|t| t.iter().any(|n| n == "fixture-a__test_simple_text")), "{out}");
    assert!(out["call"]["content"].to_string().contains("simple text"), "{out}");

    // Its token is for the agent endpoint only: the agent's own route refuses it.
    let mut browser = HandDriven::new(&s.app);
    let (client_id, code, verifier, redirect) = browser.authorize(&s.issuer, &agent_url).await;
    let (status, tokens) = browser
        .token(
            &s.issuer,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
                ("resource", &agent_url),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let access = tokens["access_token"].as_str().expect("access");
    assert_eq!(initialize_status(&s.app, &agent_url, access).await.0, StatusCode::OK);
    let (status, body) = initialize_status(&s.app, &s.url, access).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_audience")), "{body}");
}

/// The connect URL in a gateway answer (whatever its form).
fn connect_link(answer: &Value) -> String {
    let text = answer.to_string();
    let start = text.find("http").expect("a URL");
    let url: String = text[start..].chars().take_while(|c| !matches!(c, '"' | ' ' | '\\')).collect();
    assert!(url.contains("/connect/sbx_"), "{answer}");
    url
}

#[tokio::test]
async fn a_signed_in_user_connects_an_upstream_from_the_link_and_a_link_for_someone_else_is_refused() {
    let s = setup().await;
    // Gamma needs the user's own OAuth grant (the MCP server of the same peers).
    let body = json!({"name": "Gamma", "slug": "gamma", "config": {"endpoint": s.idp.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}});
    let (_, agent, gamma) = route(&s.app, &s.app.key, body, "Gamma bot", None).await;
    let mut browser = HandDriven::new(&s.app);
    let (client_id, code, verifier, redirect) = browser.authorize(&s.issuer, &gamma).await;
    let (_, tokens) = browser
        .token(
            &s.issuer,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
            ],
        )
        .await;
    let access = tokens["access_token"].as_str().expect("access").to_owned();
    let whoami =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let call = |token: String| {
        let app = &s.app;
        let gamma = gamma.clone();
        let whoami = whoami.clone();
        async move {
            let session = crate::gateway::open_session(app, &gamma, &token).await;
            crate::gateway::rpc_body(crate::gateway::mcp(app, &gamma, Some(&token), Some(&session), &whoami).await)
                .await
        }
    };
    let first = call(access.clone()).await;
    let link = connect_link(&first);

    // The same browser, signed in as user-1, opens the link: no app involved, straight to the
    // provider's consent and back to Switchboard's result page.
    let (status, landed, page) = browser.follow(&link).await;
    assert_eq!(status, StatusCode::OK, "{landed}: {page}");
    assert!(landed.contains("/service/mcp/consent/callback"), "{landed}");
    let after = call(access.clone()).await;
    assert_eq!(after["result"]["content"][0]["text"], "user-1", "{after}");

    // A link made for user-2, opened in user-1's browser: refused, and nothing is connected.
    let t2 = crate::gateway::ticket(&s.app, "user-2", &[&agent]).await;
    let theirs = connect_link(&call(t2.clone()).await);
    let (status, _, page) = browser.follow(&theirs).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{page}");
    assert!(page.contains("made for another user"), "{page}");
    assert!(call(t2).await.to_string().contains("/connect/sbx_"), "user-2 is still not connected");

    // A browser that is not signed in is sent to sign in first, then on to the link: user-1 is
    // connected already, which is what the page says.
    let mut fresh = HandDriven::new(&s.app);
    let idp_before = s.idp.stats().await["authorization_requests"].as_u64().expect("count");
    let (status, landed, page) = fresh.follow(&link).await;
    assert_eq!(status, StatusCode::OK, "{landed}");
    assert!(landed.contains("/oauth/") && page.contains("is connected"), "{landed}: {page}");
    assert_eq!(s.idp.stats().await["authorization_requests"].as_u64(), Some(idp_before + 1), "signed in once");
}

/// A loopback listener standing in for an MCP client's redirect URI: it answers a page and hands
/// over the query it was called with.
async fn redirect_listener() -> (String, tokio::sync::oneshot::Receiver<HashMap<String, String>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/callback", listener.local_addr().expect("addr"));
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
            let page = "<!doctype html><title>Signed in</title><h1>Signed in: you can close this window</h1>";
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
            let _ = socket.write_all(response.as_bytes()).await;
            if target.starts_with("/callback")
                && let Some(tx) = tx.take()
            {
                let q = reqwest::Url::parse(&format!("http://x{target}"))
                    .expect("url")
                    .query_pairs()
                    .into_owned()
                    .collect();
                let _ = tx.send(q);
            }
        }
    });
    (url, rx)
}

/// What "done" means for issue 15, in a real browser: a person whose MCP client has nothing but
/// the agent's URL signs in with their company account (the provider's own sign-in page),
/// approves the client on Switchboard's consent page, uses a tool, and connects an upstream the
/// first time it is used — from the connect link, with no app of the tenant involved.
#[tokio::test]
async fn in_a_real_browser_a_person_signs_in_approves_the_client_and_connects_an_upstream_on_first_use() {
    let app = local_app().await;
    let idp = Peers::start_with(&[("LOGIN_PAGE", "1")]);
    let upstream = Upstream::start(&[]);
    let none =
        json!({"name": "Fixture", "slug": "fixture", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    let (_, agent, route_url) = route(&app, &app.key, none, "Support bot", None).await;
    let gamma = json!({"name": "Peer MCP", "slug": "peer", "config": {"endpoint": idp.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}});
    let server = app.call(Method::POST, "/v1/mcp-servers", Some(&app.key), Some(&gamma)).await.id();
    assert!(
        app.call(Method::PUT, &format!("/v1/agents/{agent}/mcp-servers/{server}"), Some(&app.key), None)
            .await
            .status
            .is_success()
    );
    let slug = tenant_segment(&route_url);
    configure_idp(&app, &app.key, &idp.issuer, &slug).await;
    let issuer = format!("{}/oauth/{slug}", app.base);
    let endpoint = route_url.rsplit_once('/').expect("route").0.to_owned();

    // The client: DCR with a loopback redirect URI, then the authorization URL for the agent.
    let (redirect, code_rx) = redirect_listener().await;
    let reg: Value = app
        .client
        .post(format!("{issuer}/register"))
        .json(&json!({"redirect_uris": [redirect], "client_name": "Acme Desktop"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let client_id = reg["client_id"].as_str().expect("client_id").to_owned();
    let verifier = "q".repeat(64);
    let mut authorize = reqwest::Url::parse(&format!("{issuer}/authorize")).expect("url");
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", &client_id)
        .append_pair("redirect_uri", &redirect)
        .append_pair("state", "st")
        .append_pair("code_challenge", &switchboard_discovery::oauth::s256_challenge(&verifier))
        .append_pair("code_challenge_method", "S256")
        .append_pair("resource", &endpoint);

    let browser = crate::browser::Browser::start().await;
    browser.goto(authorize.as_str()).await;
    browser.wait_for_path("/interaction/").await;
    browser.screenshot("sign-in-provider.png").await;
    browser.type_into("#login", "user-1").await;
    browser.type_into("#password", "pass").await;
    browser.click("#approve").await;
    browser.wait_for_path(&format!("/oauth/{slug}/consent")).await;
    let text = browser.wait_for_text("wants to use").await;
    assert!(text.contains("Acme Desktop wants to use Support bot on your behalf"), "{text}");
    assert!(text.contains("Signed in as user-1"), "{text}");
    browser.screenshot("sign-in-consent.png").await;
    browser.click("#allow").await;
    browser.wait_for_text("you can close this window").await;
    let back =
        tokio::time::timeout(std::time::Duration::from_secs(10), code_rx).await.expect("in time").expect("query");
    assert_eq!(back.get("iss"), Some(&issuer));
    let (status, tokens) = HandDriven::new(&app)
        .token(
            &issuer,
            &[
                ("grant_type", "authorization_code"),
                ("code", &back["code"]),
                ("redirect_uri", &redirect),
                ("code_verifier", &verifier),
                ("client_id", &client_id),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    let token = tokens["access_token"].as_str().expect("access").to_owned();

    // The client uses the agent: the fixture's tools work at once; the peer's tool asks to connect.
    let session = crate::gateway::open_session(&app, &endpoint, &token).await;
    let call = |id: u64, name: &str| json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}});
    let simple = crate::gateway::rpc_body(
        crate::gateway::mcp(&app, &endpoint, Some(&token), Some(&session), &call(2, "fixture__test_simple_text")).await,
    )
    .await;
    assert!(simple["result"]["content"].is_array(), "{simple}");
    let list = crate::gateway::rpc_body(
        crate::gateway::mcp(
            &app,
            &endpoint,
            Some(&token),
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"}),
        )
        .await,
    )
    .await;
    assert!(list.to_string().contains("peer__connect"), "{list}");
    let ask = crate::gateway::rpc_body(
        crate::gateway::mcp(&app, &endpoint, Some(&token), Some(&session), &call(4, "peer__connect")).await,
    )
    .await;
    let link = connect_link(&ask);

    // The same browser opens the link: signed in already, it goes straight to the provider.
    browser.goto(&link).await;
    browser.wait_for_path("/interaction/").await;
    browser.type_into("#login", "user-1").await;
    browser.type_into("#password", "pass").await;
    browser.click("#approve").await;
    browser.wait_for_path("/service/mcp/consent/callback").await;
    browser.wait_for_text("is now connected").await;
    browser.screenshot("sign-in-connected.png").await;
    browser.quit().await;
    let whoami = crate::gateway::rpc_body(
        crate::gateway::mcp(&app, &endpoint, Some(&token), Some(&session), &call(5, "peer__whoami")).await,
    )
    .await;
    assert_eq!(whoami["result"]["content"][0]["text"], "user-1", "{whoami}");
}

/// `switchboard client`, the command-line MCP client, against an agent endpoint of a tenant that
/// signs users in: it registers, prints the authorization URL, the "browser" signs in and
/// approves, and the command lists the merged tools and calls one.
#[tokio::test]
async fn switchboard_client_signs_in_to_an_agent_endpoint() {
    use std::io::BufRead as _;
    let s = setup().await;
    let agent_url = s.url.rsplit_once('/').expect("route").0.to_owned();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .args([
            "client",
            &agent_url,
            "--allow-private-network",
            "--call",
            "fixture-a__test_simple_text",
            "--wait",
            "60",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("switchboard client");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            let line = line.trim().to_owned();
            if line.starts_with("http")
                && line.contains("/authorize?")
                && let Some(tx) = tx.take()
            {
                let _ = tx.send(line);
            }
        }
    });
    let url =
        tokio::time::timeout(std::time::Duration::from_secs(30), rx).await.expect("the URL in time").expect("url");
    assert!(url.starts_with(&s.issuer), "{url}");
    let mut browser = HandDriven::new(&s.app);
    let redirect = reqwest::Url::parse(&url)
        .expect("url")
        .query_pairs()
        .find(|(k, _)| k == "redirect_uri")
        .expect("redirect_uri")
        .1
        .into_owned();
    let back = browser.drive(&url, &redirect).await;
    assert!(
        back.contains(&format!(
            "iss={}",
            url::form_urlencoded::byte_serialize(s.issuer.as_bytes()).collect::<String>()
        )),
        "{back}"
    );
    reqwest::get(&back).await.expect("deliver the code to the command");
    let out = tokio::task::spawn_blocking(move || child.wait_with_output()).await.expect("join").expect("wait");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("OK: Bot answered with") && stdout.contains("call result"), "{stdout}");
}

/// A full sign-in for `url`: (client id, access token, refresh token).
async fn sign_in_tokens(browser: &mut HandDriven<'_>, issuer: &str, url: &str) -> (String, String, String) {
    let (client_id, code, verifier, redirect) = browser.authorize(issuer, url).await;
    let form = [
        ("grant_type", "authorization_code"),
        ("code", code.as_str()),
        ("redirect_uri", redirect.as_str()),
        ("code_verifier", verifier.as_str()),
        ("client_id", client_id.as_str()),
    ];
    let (status, tokens) = browser.token(issuer, &form).await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    (
        client_id,
        tokens["access_token"].as_str().expect("at").to_owned(),
        tokens["refresh_token"].as_str().expect("rt").to_owned(),
    )
}

#[tokio::test]
async fn offboarding_revokes_what_mcp_clients_hold_and_a_provider_change_needs_its_own_secret() {
    let s = setup().await;
    // A request refused before the user did anything is a page, never a redirect to whatever
    // redirect URI the (openly registered) client named.
    let mut browser = HandDriven::new(&s.app);
    let (client_id, access, refresh) = sign_in_tokens(&mut browser, &s.issuer, &s.url).await;
    let bad = browser
        .client
        .get(format!(
            "{}/authorize?response_type=token&client_id={client_id}&redirect_uri=http://127.0.0.1:9/cb",
            s.issuer
        ))
        .send()
        .await
        .expect("authorize");
    assert_eq!(bad.status(), StatusCode::BAD_REQUEST);
    assert!(bad.headers().get("location").is_none());

    // Deleting the user's data revokes their MCP clients' tokens at once.
    assert_eq!(s.app.call(Method::DELETE, "/v1/users/user-1", Some(&s.app.key), None).await.status, StatusCode::OK);
    assert_eq!(initialize_status(&s.app, &s.url, &access).await.0, StatusCode::UNAUTHORIZED);
    let again = browser
        .token(&s.issuer, &[("grant_type", "refresh_token"), ("refresh_token", &refresh), ("client_id", &client_id)])
        .await;
    assert_eq!(again.1["error"], "invalid_grant", "{}", again.1);

    // Saving the same provider again keeps its secret; another provider needs its own.
    let shown = s.app.call(Method::GET, "/v1/settings/identity-provider", Some(&s.app.key), None).await.json();
    let same = json!({"issuer": shown["issuer"], "client_id": shown["client_id"]});
    let put = s.app.call(Method::PUT, "/v1/settings/identity-provider", Some(&s.app.key), Some(&same)).await;
    assert_eq!((put.status, put.json()["client_secret"]["set"].clone()), (StatusCode::OK, json!(true)), "{}", put.text);
    let other = Peers::start();
    let moved = json!({"issuer": other.issuer, "client_id": shown["client_id"]});
    let put = s.app.call(Method::PUT, "/v1/settings/identity-provider", Some(&s.app.key), Some(&moved)).await;
    assert_eq!(put.status, StatusCode::UNPROCESSABLE_ENTITY, "{}", put.text);
    assert_eq!(put.field_errors().first().map(|(f, _)| f.as_str()), Some("client_secret"), "{}", put.text);

    // Turning sign-in off revokes every token MCP clients hold.
    let mut browser = HandDriven::new(&s.app);
    let (_, access, _) = sign_in_tokens(&mut browser, &s.issuer, &s.url).await;
    assert_eq!(initialize_status(&s.app, &s.url, &access).await.0, StatusCode::OK);
    assert_eq!(
        s.app.call(Method::DELETE, "/v1/settings/identity-provider", Some(&s.app.key), None).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(initialize_status(&s.app, &s.url, &access).await.0, StatusCode::UNAUTHORIZED);
}

/// An access token is a session ticket: its holder narrows it offline like any other, and the
/// gateway enforces the narrowing (the audience stays, being the authority block's).
#[tokio::test]
async fn an_access_token_narrows_offline_like_any_ticket() {
    let s = setup().await;
    let mut browser = HandDriven::new(&s.app);
    let (_, access, _) = sign_in_tokens(&mut browser, &s.issuer, &s.url).await;
    let key = s.app.get("/v1/session-tickets/public-key").await.json()["public_key"].as_str().expect("key").to_owned();
    let narrowed = switchboard_domain::ticket::attenuate(
        &access,
        &key,
        r#"check if operation($o), $o != "call" or requested_tool($t), {"test_simple_text"}.contains($t);"#,
    )
    .expect("attenuate");
    let session = crate::gateway::open_session(&s.app, &s.url, &narrowed).await;
    let call = |name: &str| json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": name, "arguments": {}}});
    let allowed = crate::gateway::rpc_body(
        crate::gateway::mcp(&s.app, &s.url, Some(&narrowed), Some(&session), &call("test_simple_text")).await,
    )
    .await;
    assert!(allowed["result"]["content"].is_array(), "{allowed}");
    let refused =
        crate::gateway::mcp(&s.app, &s.url, Some(&narrowed), Some(&session), &call("test_image_content")).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    // Narrowed or not, it stays bound to its URL.
    let (status, body) = initialize_status(&s.app, &s.other_url, &narrowed).await;
    assert_eq!((status, body["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("wrong_audience")), "{body}");
}
