//! The interop matrix: the whole life of a grant — discovery, client registration, consent,
//! refresh (with rotation where the server rotates), access-token delivery to the MCP server,
//! revocation on disconnect — against independent authorization servers:
//!
//! | server | library | client |
//! |---|---|---|
//! | `oidc-provider` (Node) | panva's certified OpenID provider | DCR, public and confidential |
//! | the MCP Python SDK's authorization server | `mcp` (PyPI), as FastMCP servers use it | DCR, confidential (`client_id` wanted in the body next to Basic) |
//! | Authlib (Python) | `authlib` (PyPI) with Flask | DCR, confidential |
//!
//! Each peer runs as its own process on loopback (tests/peers, tests/peers/python), installed by
//! scripts/test. Plus the method fallback: a client registered for `client_secret_post` behind a
//! server that advertises Basic first is refused once, then kept on `client_secret_post`.

use std::process::{Child, Command};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_domain::connection::GrantKey;
use switchboard_worker::refresh::Outcome;

use crate::consent::consent_in_browser;
use crate::helpers::{Options, TestApp};
use crate::peers::Peers;
use crate::refresh::make_due;

/// A Python peer (tests/peers/python): one process, one JSON line on stdout when it listens.
pub struct PyPeer {
    child: Child,
    pub issuer: String,
    pub mcp_url: String,
    pub version: String,
}

impl PyPeer {
    pub fn start(script: &str, env: &[(&str, &str)]) -> Self {
        let dir = std::env::var("SWITCHBOARD_PYPEERS_DIR")
            .unwrap_or_else(|_| format!("{}/.cache/switchboard/pypeers", std::env::var("HOME").unwrap_or_default()));
        let dir = std::path::Path::new(&dir);
        let python = dir.join("bin/python");
        assert!(
            python.exists() && dir.join(script).exists(),
            "the Python peers are not installed in {}: run scripts/test (or tests/peers/python/install.sh)",
            dir.display()
        );
        let mut command = Command::new(python);
        command.arg(dir.join(script)).envs(env.iter().copied());
        let (child, info) = crate::peers::spawn_until_ready(command, script, Duration::from_secs(60));
        let s = |k: &str| info[k].as_str().unwrap_or_else(|| panic!("{script}: no {k} in {info}")).to_owned();
        Self { issuer: s("issuer"), mcp_url: s("mcp_url"), version: s("version"), child }
    }

    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__stats", self.issuer.trim_end_matches('/')))
            .await
            .expect("stats")
            .json()
            .await
            .expect("stats json")
    }
}

impl Drop for PyPeer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one grant's life showed.
pub struct Life {
    pub server: Value,
    pub rotated: bool,
    pub tools: Vec<String>,
    pub old_refresh_token: String,
    pub client_id: String,
    pub client_secret: Option<String>,
}

/// Runs the life of one grant against `mcp_url` with `auth` (the `config.auth` object), asserting
/// every step a user would notice, and returns what the provider-specific checks need.
pub async fn life_of_a_grant(app: &TestApp, mcp_url: &str, auth: Value) -> Life {
    let res =
        app.post("/v1/mcp-servers", &json!({"name": "Interop", "config": {"endpoint": mcp_url, "auth": auth}})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let server = res.json();
    let d = &server["discovery_result"];
    assert!(d["requires_auth"].as_bool().unwrap_or_default(), "{d:#}");
    assert!(d["authorization_code_usable"].as_bool().unwrap_or_default(), "{d:#}");
    assert!(server["config"]["auth"]["client_id"].is_string(), "a client was obtained: {d:#}");
    let id = server["id"].as_str().expect("id").to_owned();
    let client_id = server["config"]["auth"]["client_id"].as_str().expect("client").to_owned();
    let agent = app.create_agent("interop bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{id}"), None).await;
    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "user-1", "agent_ids": [agent]})).await.json()["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
    let path = |verb: &str| format!("/v1/runtime/agents/{agent}/mcp-servers/{id}/{verb}");

    // Consent: the provider approves and sends the browser back; the callback stores the grant.
    let connect = app.call(Method::POST, &path("connect"), Some(&ticket), None).await.json();
    assert_eq!(connect["status"], "pending_consent", "{connect}");
    let back = consent_in_browser(connect["auth_url"].as_str().expect("auth_url")).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    let res = app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("cb");
    let page = res.text().await.expect("page");
    assert!(page.contains("is now connected"), "{page}");
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "user-1".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&id).expect("id").into(),
    };
    let store = app.store().tenant(app.tenant_id);
    let first = store.token_set(&key).await.expect("read").expect("tokens");
    let old_refresh_token = first.refresh_token.clone().expect("a refresh token").expose().to_owned();

    // Refresh before expiry, by the worker.
    make_due(app).await;
    let worker = app.worker();
    let report = worker.refresher().tick(100).await.expect("tick");
    assert_eq!(report.get(&Outcome::Refreshed), Some(&1), "{report:?}");
    let second = store.token_set(&key).await.expect("read").expect("tokens");
    assert_ne!(second.access_token.expose(), first.access_token.expose(), "a new access token");
    let rotated = second.refresh_token.as_ref().is_some_and(|r| r.expose() != old_refresh_token);

    // The refreshed token reaches the MCP server: check lists its tools; the access-token call serves it.
    let checked = app.call(Method::POST, &path("check"), Some(&ticket), None).await;
    assert_eq!(checked.status, StatusCode::OK, "{}", checked.text);
    let checked = checked.json();
    assert_eq!(checked["ok"], true, "{checked:#}");
    let tools: Vec<String> =
        checked["tools"].as_array().into_iter().flatten().filter_map(|t| t.as_str().map(str::to_owned)).collect();
    let connection = app.get("/v1/connections").await.json()["data"][0]["id"].as_str().expect("id").to_owned();
    let token = app.post(&format!("/v1/connections/{connection}/access-token"), &json!({})).await;
    assert_eq!(token.status, StatusCode::OK, "{}", token.text);
    assert_eq!(token.json()["access_token"].as_str(), Some(second.access_token.expose()));

    // Disconnect: unusable at once; the revocation job tells the provider.
    assert_eq!(app.call(Method::POST, &path("disconnect"), Some(&ticket), None).await.json()["status"], "revoked");
    assert!(worker.jobs().tick(10).await.expect("tick") >= 1);
    let jobs = store.list_jobs().await.expect("jobs");
    let revoke: Vec<_> = jobs.iter().filter(|j| j.kind == "revoke_tokens").collect();
    assert_eq!(revoke.len(), 1);
    assert_eq!(revoke[0].status, "done", "{revoke:?}");
    let server = app.get(&format!("/v1/mcp-servers/{id}")).await.json();
    let client_secret = store
        .mcp_server_secrets(key.mcp_server_id)
        .await
        .expect("secrets")
        .client_secret
        .map(|s| s.expose().to_owned());
    Life {
        server,
        rotated,
        tools,
        old_refresh_token: second.refresh_token.map(|r| r.expose().to_owned()).unwrap_or(old_refresh_token),
        client_id,
        client_secret,
    }
}

/// After revocation the refresh token is refused at the provider (sent the way the server's
/// client authenticates, with `client_id` in the body as every server here accepts).
async fn refresh_token_is_dead(life: &Life) {
    let d = &life.server["discovery_result"];
    let token_url = d["token_url"].as_str().expect("token url");
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("refresh_token", life.old_refresh_token.as_str()),
        ("client_id", life.client_id.as_str()),
    ];
    let mut req = reqwest::Client::new().post(token_url);
    match (d["token_endpoint_auth_method"].as_str(), &life.client_secret) {
        (Some("client_secret_basic"), Some(s)) => req = req.basic_auth(&life.client_id, Some(s)),
        (_, Some(s)) => form.push(("client_secret", s)),
        _ => {}
    }
    let res = req.form(&form).send().await.expect("refresh");
    let status = res.status();
    let body: Value = res.json().await.unwrap_or_default();
    assert!(status.is_client_error(), "{status} {body}");
    assert_eq!(body["error"], "invalid_grant", "{body}");
}

/// The Python peers count their revocation endpoint's answers: both tokens were sent (refresh
/// token first, which takes its access tokens with it) and neither was refused.
fn revoked_both(stats: &Value) {
    assert_eq!(stats["revocation_requests"], 2, "{stats}");
    assert_eq!(stats["revocation_errors"], json!({}), "{stats}");
    assert_eq!(stats["revocations"]["refresh_token"], 1, "{stats}");
}

/// Registers a client at `register_url` by hand, as a tenant admin would in a provider's console.
async fn register_by_hand(register_url: &str, app: &TestApp, method: &str) -> Value {
    let redirect = format!("{}/service/mcp/consent/callback", app.base);
    let res = reqwest::Client::new()
        .post(register_url)
        .json(&json!({"client_name": "pre-registered", "redirect_uris": [redirect], "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"], "token_endpoint_auth_method": method, "scope": "mcp:read mcp:write"}))
        .send()
        .await
        .expect("register");
    assert!(res.status().is_success(), "{}", res.status());
    res.json().await.expect("json")
}

fn local() -> Options {
    Options { allow_private_networks: true, ..Options::default() }
}

#[tokio::test]
async fn oidc_provider_public_and_confidential() {
    let peers = Peers::start();
    for kind in ["oauth_authorization_code_public_pkce", "oauth_authorization_code_confidential_pkce"] {
        let app = TestApp::spawn_with(local()).await;
        let life = life_of_a_grant(&app, &peers.mcp_url, json!({"type": kind})).await;
        let d = &life.server["discovery_result"];
        assert_eq!(d["client_registration"], "dynamic_registration");
        let method = if kind.contains("public") { "none" } else { "client_secret_basic" };
        assert_eq!(d["token_endpoint_auth_method"], method, "{d:#}");
        assert!(life.rotated, "oidc-provider rotates refresh tokens");
        assert_eq!(life.tools, ["echo", "whoami"]);
        refresh_token_is_dead(&life).await;
    }
}

#[tokio::test]
async fn mcp_python_sdk_authorization_server() {
    let peer = PyPeer::start("mcp_sdk_as.py", &[]);
    assert_eq!(peer.version, "2.3.0", "the README's table names the version tested");
    let app = TestApp::spawn_with(local()).await;
    let life =
        life_of_a_grant(&app, &peer.mcp_url, json!({"type": "oauth_authorization_code_confidential_pkce"})).await;
    let d = &life.server["discovery_result"];
    assert_eq!(d["client_registration"], "dynamic_registration", "{d:#}");
    assert_eq!(d["token_endpoint_auth_method"], "client_secret_post", "the first method the server lists");
    assert!(life.rotated, "the peer rotates refresh tokens");
    assert_eq!(life.tools, ["echo", "whoami"]);
    let stats = peer.stats().await;
    assert_eq!(stats["token_errors"], json!({}), "no token request was refused: {stats}");
    revoked_both(&stats);
    refresh_token_is_dead(&life).await;
}

/// The report that opened this work: a confidential client on HTTP Basic against a server built on
/// the MCP Python SDK ("Missing client_id" without `client_id` in the body), whose revocation
/// endpoint also wants `client_secret` in the body.
#[tokio::test]
async fn mcp_python_sdk_with_a_basic_client() {
    let peer = PyPeer::start("mcp_sdk_as.py", &[]);
    let app = TestApp::spawn_with(local()).await;
    let reg = register_by_hand(&format!("{}/register", peer.issuer), &app, "client_secret_basic").await;
    let auth = json!({"type": "oauth_authorization_code_confidential_pkce", "client_id": reg["client_id"], "client_secret": reg["client_secret"]});
    let created = app.post("/v1/mcp-servers/discover", &json!({"endpoint": peer.mcp_url})).await.json();
    assert_eq!(created["token_endpoint_auth_methods_supported"], json!(["client_secret_post", "client_secret_basic"]));
    // Pre-registered, so Switchboard starts with the first method the server lists (the body),
    // is refused once, and keeps Basic.
    let life = life_of_a_grant(&app, &peer.mcp_url, auth).await;
    let d = &life.server["discovery_result"];
    assert_eq!(d["client_registration"], "pre_registered");
    assert_eq!(d["token_endpoint_auth_method"], "client_secret_basic", "{d:#}");
    let stats = peer.stats().await;
    assert_eq!(stats["token_errors"], json!({"invalid_client": 1}), "{stats}");
    assert_eq!(stats["token_auth"]["client_id_missing_from_body"], 0, "{stats}");
    assert_eq!(stats["token_auth_methods"]["client_secret_basic"], 2, "code exchange and refresh on Basic: {stats}");
    // Each revocation: Basic refused for the missing body secret, then Basic with it accepted.
    assert_eq!(
        (&stats["revocation_requests"], &stats["revocation_errors"]),
        (&json!(4), &json!({"invalid_request": 2})),
        "{stats}"
    );
    assert_eq!(stats["revocations"]["refresh_token"], 1, "{stats}");
    refresh_token_is_dead(&life).await;
}

#[tokio::test]
async fn authlib_authorization_server() {
    let peer = PyPeer::start("authlib_as.py", &[]);
    assert_eq!(peer.version, "1.9.10", "the README's table names the version tested");
    let app = TestApp::spawn_with(local()).await;
    let life =
        life_of_a_grant(&app, &peer.mcp_url, json!({"type": "oauth_authorization_code_confidential_pkce"})).await;
    let d = &life.server["discovery_result"];
    assert_eq!(d["client_registration"], "dynamic_registration", "{d:#}");
    assert_eq!(d["token_endpoint_auth_method"], "client_secret_basic");
    assert_eq!(d["authorization_response_iss_parameter_supported"], true);
    assert!(life.rotated, "the peer rotates refresh tokens");
    assert_eq!(life.tools, ["echo", "whoami"]);
    let stats = peer.stats().await;
    revoked_both(&stats);
    refresh_token_is_dead(&life).await;
}

/// A client registered for `client_secret_post`, given to Switchboard without saying so: the
/// server lists Basic first, refuses it once (`invalid_client`) and accepts the body; Switchboard
/// keeps `client_secret_post` (refresh and revocation use it at once, rediscovery keeps it).
#[tokio::test]
async fn a_refused_method_is_tried_once_then_the_other_is_kept() {
    let peer = PyPeer::start("authlib_as.py", &[]);
    let app = TestApp::spawn_with(local()).await;
    let reg = register_by_hand(&format!("{}/register", peer.issuer), &app, "client_secret_post").await;
    let auth = json!({"type": "oauth_authorization_code_confidential_pkce", "client_id": reg["client_id"], "client_secret": reg["client_secret"]});
    let life = life_of_a_grant(&app, &peer.mcp_url, auth).await;
    let d = &life.server["discovery_result"];
    assert_eq!(d["client_registration"], "pre_registered");
    assert_eq!(d["token_endpoint_auth_method"], "client_secret_post", "kept after it worked: {d:#}");
    let stats = peer.stats().await;
    assert_eq!(stats["token_errors"], json!({"invalid_client": 1}), "one refusal, at the code exchange: {stats}");
    assert_eq!(stats["token_grants"]["refresh_token"], 1, "{stats}");
    revoked_both(&stats);
    let id = life.server["id"].as_str().expect("id");
    let again = app.post(&format!("/v1/mcp-servers/{id}/rediscover"), &json!({})).await.json();
    assert_eq!(again["discovery_result"]["token_endpoint_auth_method"], "client_secret_post", "{again:#}");
    refresh_token_is_dead(&life).await;
}
