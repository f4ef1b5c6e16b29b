//! Troubleshooting as data against real peers: each finding code of
//! `POST /v1/mcp-servers/{id}/diagnose` (and of the runtime `check`) produced by a real failure —
//! the `oidc-provider` authorization server and the MCP SDK resource servers of `peers.mjs`, the
//! `upstream.mjs` MCP server, a closed port, an address the network policy refuses — with its
//! code, its evidence, and no secret anywhere in the answer. A healthy server answers no finding
//! at all, so that every assertion here can fail both ways.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_domain::connection::GrantKey;

use crate::consent::consent_in_browser;
use crate::gateway::{Upstream, ticket};
use crate::gateway_e2e::local_app;
use crate::helpers::{Response, TestApp};
use crate::peers::Peers;

/// Switchboard's exact redirect URI: the app's public URL and the consent callback.
fn redirect_uri(app: &TestApp) -> String {
    format!("{}/service/mcp/consent/callback", app.base)
}

/// Creates a server named `name` with `config`; returns its JSON.
async fn create(app: &TestApp, name: &str, config: Value) -> Value {
    let res = app.post("/v1/mcp-servers", &json!({"name": name, "config": config})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.json()
}

fn id_of(server: &Value) -> String {
    server["id"].as_str().expect("id").to_owned()
}

/// `POST /v1/mcp-servers/{id}/diagnose` with `body`, answered 200: the raw answer.
async fn diagnose_raw(app: &TestApp, server: &str, body: Option<&Value>) -> Response {
    let res = app.call(Method::POST, &format!("/v1/mcp-servers/{server}/diagnose"), Some(&app.key), body).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res
}

/// The diagnosis of `server` (and, with `body`, a user's connection), checked for `secrets` and
/// for the answer's frame.
async fn diagnose(app: &TestApp, server: &str, body: Option<&Value>, secrets: &[&str]) -> Value {
    let res = diagnose_raw(app, server, body).await;
    assert_secret_free(app, &res.text, secrets);
    let d = res.json();
    assert_eq!(d["server_id"], server, "{d:#}");
    assert!(d["checked_at"].is_string(), "{d:#}");
    assert!(d["discovery_result"]["steps"].as_array().is_some_and(|s| !s.is_empty()), "{d:#}");
    for f in d["findings"].as_array().expect("findings") {
        for field in ["code", "severity", "title", "detail", "fix"] {
            assert!(f[field].as_str().is_some_and(|s| !s.is_empty()), "{field} of {f:#}");
        }
        assert!(f["evidence"].is_object(), "{f:#}");
    }
    d
}

/// No secret of the test (nor the tenant's API key) anywhere in `text`.
#[track_caller]
fn assert_secret_free(app: &TestApp, text: &str, secrets: &[&str]) {
    assert!(!text.contains(&app.key), "the tenant API key is in the answer: {text}");
    assert!(!text.contains(&app.admin_token), "the admin token is in the answer: {text}");
    for s in secrets {
        assert!(!s.is_empty(), "an empty secret proves nothing");
        assert!(!text.contains(s), "the secret `{s}` is in the answer: {text}");
    }
}

/// The findings' codes, in the answer's order (worst first, then by code).
fn codes(d: &Value) -> Vec<String> {
    d["findings"].as_array().expect("findings").iter().map(|f| f["code"].as_str().expect("code").to_owned()).collect()
}

/// Every finding of `code`.
fn all<'a>(d: &'a Value, code: &str) -> Vec<&'a Value> {
    d["findings"].as_array().expect("findings").iter().filter(|f| f["code"] == code).collect()
}

/// The one finding of `code`.
#[track_caller]
fn one<'a>(d: &'a Value, code: &str) -> &'a Value {
    let found = all(d, code);
    assert_eq!(found.len(), 1, "exactly one `{code}` finding expected: {:#}", d["findings"]);
    found[0]
}

/// A new agent attached to `server`: its id.
async fn attached_agent(app: &TestApp, server: &str, name: &str) -> String {
    let agent = app.create_agent(name).await;
    let res = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    assert!(res.status.is_success(), "{}", res.text);
    agent
}

/// The user connects through the provider's (auto-approved) consent and Switchboard's callback.
async fn connect(app: &TestApp, ticket: &str, agent: &str, server: &str) {
    let path = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    let res = app.call(Method::POST, &path, Some(ticket), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let back = consent_in_browser(res.json()["auth_url"].as_str().expect("auth_url")).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    let done =
        app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("callback");
    assert_eq!(done.status(), StatusCode::OK);
}

/// The runtime `check` with `ticket`: its raw answer.
async fn check(app: &TestApp, ticket: &str, agent: &str, server: &str) -> Response {
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check"), Some(ticket), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res
}

fn grant_key(app: &TestApp, user: &str, agent: &str, server: &str) -> GrantKey {
    GrantKey {
        tenant_id: app.tenant_id,
        user_id: user.into(),
        agent_id: uuid::Uuid::parse_str(agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(server).expect("id").into(),
    }
}

/// A client the test registers itself at the peers' registration endpoint.
async fn register_client(peers: &Peers, metadata: Value) -> Value {
    let res = reqwest::Client::new()
        .post(format!("{}/reg", peers.issuer))
        .json(&metadata)
        .send()
        .await
        .expect("registration");
    assert_eq!(res.status(), StatusCode::CREATED);
    res.json().await.expect("registration json")
}

/// A port nothing listens on: bound, read, released.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("addr").port()
}

/// A healthy server answers no finding: `none` at an open MCP server, and an OAuth server whose
/// client, redirect URI and resource the provider accepts, with a connected user whose check
/// and connection are fine.
#[tokio::test]
async fn healthy_servers_have_no_findings() {
    let upstream = Upstream::start(&[]);
    let peers = Peers::start();
    let app = local_app().await;

    let open = id_of(&create(&app, "Open", json!({"endpoint": upstream.url, "auth": {"type": "none"}})).await);
    let d = diagnose(&app, &open, None, &[]).await;
    assert_eq!(d["findings"], json!([]), "{d:#}");

    let created = create(
        &app,
        "Peer",
        json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce"}}),
    )
    .await;
    let server = id_of(&created);
    let id = uuid::Uuid::parse_str(&server).expect("uuid").into();
    let client_secret = app
        .store()
        .tenant(app.tenant_id)
        .mcp_server_secrets(id)
        .await
        .expect("secrets")
        .client_secret
        .expect("a registered client secret");
    let agent = attached_agent(&app, &server, "Bot").await;
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    connect(&app, &ticket, &agent, &server).await;
    let tokens = app
        .store()
        .tenant(app.tenant_id)
        .token_set(&grant_key(&app, "user-1", &agent, &server))
        .await
        .expect("read")
        .expect("tokens");
    let refresh = tokens.refresh_token.clone().expect("a refresh token");
    let secrets = [client_secret.expose(), tokens.access_token.expose(), refresh.expose(), ticket.as_str()];

    let res = check(&app, &ticket, &agent, &server).await;
    assert_secret_free(&app, &res.text, &secrets);
    let c = res.json();
    assert_eq!(c["ok"], true, "{c:#}");
    assert_eq!(c["findings"], json!([]), "{c:#}");

    let d = diagnose(&app, &server, Some(&json!({"user_id": "user-1", "agent_id": agent})), &secrets).await;
    assert_eq!(d["findings"], json!([]), "{d:#}");
    // The provider was asked about the client at both endpoints, and said yes.
    assert_eq!(
        diagnose_steps(&d),
        [
            "diagnose: the authorization endpoint accepts the client and redirect URI",
            "diagnose: the token endpoint accepts the client (and refused the made-up code)"
        ],
        "{d:#}"
    );
}

/// A `token` server in front of an OAuth-protected MCP server: the 401 with protected resource
/// metadata says it wants OAuth, whatever the token.
#[tokio::test]
async fn a_static_token_at_an_oauth_server_is_an_auth_mode_mismatch() {
    let peers = Peers::start();
    let app = local_app().await;
    let token = "static-junk-token-123";
    let server = id_of(
        &create(&app, "Peer", json!({"endpoint": peers.mcp_url, "auth": {"type": "token", "auth_token": token}})).await,
    );
    let d = diagnose(&app, &server, None, &[token]).await;
    assert_eq!(codes(&d), ["auth_mode_mismatch"], "{d:#}");
    let f = one(&d, "auth_mode_mismatch");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["evidence"]["configured"], "token");
    assert_eq!(f["evidence"]["recommended_auth_mode"], "oauth_authorization_code_public_pkce");
    assert_eq!(f["evidence"]["requires_auth"], true);
    assert_eq!(f["evidence"]["resource_metadata_url"], peers.prm_url);
}

/// An OAuth server in front of an MCP server that needs no credentials: a warning that the
/// type is more than the server asks for, and the consent cannot work (no authorization server).
#[tokio::test]
async fn oauth_at_a_server_that_needs_no_auth_is_a_warning() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let server = id_of(
        &create(
            &app,
            "Open",
            json!({"endpoint": upstream.url, "auth": {"type": "oauth_authorization_code_public_pkce"}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    let f = one(&d, "auth_mode_mismatch");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(f["evidence"]["configured"], "oauth_authorization_code_public_pkce");
    assert_eq!(f["evidence"]["requires_auth"], false);
    assert_eq!(f["evidence"]["recommended_auth_mode"], "none", "{f:#}");
    let not_ready = one(&d, "server_not_ready");
    assert_eq!(not_ready["evidence"]["missing"], json!(["auth_url", "token_url"]), "{not_ready:#}");
    assert_eq!(codes(&d), ["no_registration_endpoint", "server_not_ready", "auth_mode_mismatch"], "{d:#}");
}

/// A `token` server whose token the upstream refuses, with a bare Bearer challenge (no protected
/// resource metadata): the credential is wrong, not the auth type. Discovery's 2025-03-26
/// assumption is noted beside it.
#[tokio::test]
async fn a_refused_static_token_is_upstream_unauthorized() {
    let upstream = Upstream::start(&[("REQUIRE_TOKEN", "the-right-upstream-token")]);
    let app = local_app().await;
    let wrong = "wrong-upstream-token-456";
    let server = id_of(
        &create(&app, "Fixture", json!({"endpoint": upstream.url, "auth": {"type": "token", "auth_token": wrong}}))
            .await,
    );
    let d = diagnose(&app, &server, None, &[wrong, "the-right-upstream-token"]).await;
    assert_eq!(codes(&d), ["upstream_unauthorized", "discovery_warning"], "{d:#}");
    let f = one(&d, "upstream_unauthorized");
    assert_eq!(f["severity"], "error");
    assert!(
        f["evidence"]["said"].as_str().is_some_and(|s| s.starts_with("the server refused the credentials (401)")),
        "{f:#}"
    );
    // The upstream saw the configured token: the diagnosis used it.
    let seen = upstream.seen().await;
    assert!(seen["authorization"].as_array().is_some_and(|a| a.contains(&json!(format!("Bearer {wrong}")))), "{seen}");
}

/// A working `token` server that answers a bare Bearer challenge without metadata: discovery
/// assumes the 2025-03-26 default endpoints, which is worth a look — and only that.
#[tokio::test]
async fn a_discovery_warning_is_an_info_finding() {
    let right = "the-right-upstream-token";
    let upstream = Upstream::start(&[("REQUIRE_TOKEN", right)]);
    let app = local_app().await;
    let server = id_of(
        &create(&app, "Fixture", json!({"endpoint": upstream.url, "auth": {"type": "token", "auth_token": right}}))
            .await,
    );
    let d = diagnose(&app, &server, None, &[right]).await;
    assert_eq!(codes(&d), ["discovery_warning"], "{d:#}");
    let f = one(&d, "discovery_warning");
    assert_eq!(f["severity"], "info");
    let base = upstream.url.trim_end_matches("/mcp");
    assert_eq!(
        f["evidence"]["warning"],
        format!(
            "no OAuth metadata: assuming the 2025-03-26 default endpoints {base}/authorize, {base}/token and {base}/register (unverified)"
        ),
        "{f:#}"
    );
    assert_eq!(f["detail"], f["evidence"]["warning"]);
    assert_eq!(d["discovery_result"]["verification"]["ok"], true, "{d:#}");
}

/// `resource` set to another resource than the server's: told by comparison with the protected
/// resource metadata; and a resource the provider does not know: refused at the authorization
/// endpoint with `invalid_target`.
#[tokio::test]
async fn a_configured_resource_that_is_not_the_servers_is_a_resource_mismatch() {
    let peers = Peers::start();
    let app = local_app().await;
    let server = id_of(
        &create(
            &app,
            "Peer (resource B)",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", "resource": peers.mcp_b_url}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["resource_mismatch"], "{d:#}");
    let f = one(&d, "resource_mismatch");
    assert_eq!(f["evidence"]["configured"], peers.mcp_b_url);
    assert_eq!(f["evidence"]["discovered"], peers.mcp_url);
    assert_eq!(f["evidence"]["set_by"], "tenant");

    let unknown = "http://127.0.0.1:9/unknown";
    let server = id_of(
        &create(
            &app,
            "Peer (unknown resource)",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", "resource": unknown}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["resource_mismatch", "resource_mismatch"], "{d:#}");
    let refused: Vec<&Value> =
        all(&d, "resource_mismatch").into_iter().filter(|f| f["evidence"]["provider_error"].is_string()).collect();
    assert_eq!(refused.len(), 1, "{d:#}");
    assert_eq!(refused[0]["evidence"]["provider_error"], "invalid_target");
    assert_eq!(refused[0]["evidence"]["resource"], unknown);
    assert_eq!(refused[0]["evidence"]["discovered"], peers.mcp_url);
    assert_eq!(refused[0]["evidence"]["provider_said"], format!("unknown resource: {unknown}"));
}

/// The steps `diagnose` added to the discovery: what it asked the provider, and what it learned.
fn diagnose_steps(d: &Value) -> Vec<String> {
    d["discovery_result"]["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .filter_map(|s| s["learned"].as_str())
        .filter(|l| l.starts_with("diagnose:"))
        .map(str::to_owned)
        .collect()
}

/// `token_url` or `auth_url` set by hand to another URL of the issuer than its metadata names
/// (said once, though the wrong URL answers 404 too); and the 2025-03-26 default endpoints that
/// discovery assumed for a server without metadata, and that are not there.
#[tokio::test]
async fn hand_set_or_assumed_authorization_urls_that_are_wrong_are_auth_url_mismatch() {
    let peers = Peers::start();
    let app = local_app().await;
    for (field, path, right) in [("token_url", "elsewhere/token", "token"), ("auth_url", "elsewhere/auth", "auth")] {
        let elsewhere = format!("{}/{path}", peers.issuer);
        let server = id_of(
            &create(
                &app,
                &format!("Peer ({field})"),
                json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", field: elsewhere}}),
            )
            .await,
        );
        let d = diagnose(&app, &server, None, &[]).await;
        assert_eq!(codes(&d), ["auth_url_mismatch"], "{d:#}");
        let f = one(&d, "auth_url_mismatch");
        assert_eq!(f["evidence"]["field"], field);
        assert_eq!(f["evidence"]["configured"], elsewhere);
        assert_eq!(f["evidence"]["discovered"], format!("{}/{right}", peers.issuer));
        assert_eq!(f["evidence"]["issuer"], peers.issuer);
        assert_eq!(f["evidence"]["set_by"], "tenant");
        let what = if field == "token_url" { "token" } else { "authorization" };
        assert!(diagnose_steps(&d).contains(&format!("diagnose: no {what} endpoint at this URL (HTTP 404)")), "{d:#}");
    }

    // No metadata at all: discovery assumes {origin}/authorize and {origin}/token, which the
    // upstream does not serve.
    let upstream = Upstream::start(&[("REQUIRE_TOKEN", "the-right-upstream-token")]);
    let base = upstream.url.trim_end_matches("/mcp").to_owned();
    let server = id_of(
        &create(
            &app,
            "Legacy",
            json!({"endpoint": upstream.url, "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "pre-made"}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["auth_url_mismatch", "auth_url_mismatch", "discovery_warning"], "{d:#}");
    for (f, field, path) in [(0, "auth_url", "authorize"), (1, "token_url", "token")] {
        let f = &all(&d, "auth_url_mismatch")[f];
        assert_eq!(f["evidence"]["field"], field, "{f:#}");
        assert_eq!(f["evidence"]["configured"], format!("{base}/{path}"));
        assert_eq!(f["evidence"]["discovered"], format!("{base}/{path}"));
        assert_eq!(f["evidence"]["status"], 404);
    }
}

/// A pre-registered client whose only redirect URI is another app's: the authorization endpoint
/// refuses Switchboard's, and the finding names the exact URI to register.
#[tokio::test]
async fn a_client_without_switchboards_redirect_uri_is_redirect_not_registered() {
    let peers = Peers::start_with(&[("STATIC_CLIENT", "1")]);
    let app = local_app().await;
    let server = id_of(
        &create(
            &app,
            "Peer",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "fixed-public"}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["redirect_not_registered"], "{d:#}");
    let f = one(&d, "redirect_not_registered");
    let redirect = redirect_uri(&app);
    assert_eq!(redirect, app.state.runtime.servers.redirect_uri(), "the app's own redirect URI");
    assert_eq!(f["evidence"]["redirect_uri"], redirect);
    assert_eq!(f["evidence"]["client_id"], "fixed-public");
    assert_eq!(f["evidence"]["status"], 400);
    assert_eq!(f["evidence"]["provider_error"], "invalid_redirect_uri");
    assert!(f["fix"].as_str().is_some_and(|fix| fix.contains(&format!("`{redirect}`"))), "{f:#}");
}

/// A client the provider does not know is refused at the authorization endpoint; a known
/// confidential client with a wrong secret at the token endpoint. The secrets stay out.
#[tokio::test]
async fn an_unknown_client_or_a_wrong_secret_is_invalid_client() {
    let peers = Peers::start();
    let app = local_app().await;
    let server = id_of(
        &create(
            &app,
            "Peer (unknown client)",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "nope"}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    let at: Vec<&Value> = all(&d, "invalid_client").iter().map(|f| &f["evidence"]["at"]).collect();
    assert_eq!(at, [&json!("authorization_endpoint"), &json!("token_endpoint")], "{d:#}");
    assert_eq!(codes(&d), ["invalid_client", "invalid_client"], "{d:#}");
    let f = all(&d, "invalid_client")[0];
    assert_eq!(f["evidence"]["client_id"], "nope");
    assert_eq!(f["evidence"]["provider_error"], "invalid_client");
    assert_eq!(f["evidence"]["status"], 400);

    // The test registers a confidential client with Switchboard's redirect URI, then gives
    // Switchboard its id with a wrong secret.
    let registered = register_client(
        &peers,
        json!({"redirect_uris": [redirect_uri(&app)], "grant_types": ["authorization_code", "refresh_token"],
               "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    let client_id = registered["client_id"].as_str().expect("client_id");
    let real_secret = registered["client_secret"].as_str().expect("client_secret");
    let wrong = "wrong-secret-xyz";
    let created = create(
        &app,
        "Peer (wrong secret)",
        json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce",
               "client_id": client_id, "client_secret": wrong}}),
    )
    .await;
    assert!(!created.to_string().contains(wrong));
    let d = diagnose(&app, &id_of(&created), None, &[wrong, real_secret]).await;
    assert_eq!(codes(&d), ["invalid_client"], "{d:#}");
    let f = one(&d, "invalid_client");
    assert_eq!(f["evidence"]["at"], "token_endpoint");
    assert_eq!(f["evidence"]["client_id"], client_id);
    assert_eq!(f["evidence"]["provider_error"], "invalid_client");
    assert_eq!(f["evidence"]["token_endpoint_auth_method"], "client_secret_basic");
}

/// No client and a provider without Dynamic Client Registration: the finding says which
/// redirect URI the OAuth app made by hand needs.
#[tokio::test]
async fn no_client_and_no_registration_is_no_registration_endpoint() {
    let peers = Peers::start_with(&[("NO_REGISTRATION", "1")]);
    let app = local_app().await;
    let created = create(
        &app,
        "Peer",
        json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}),
    )
    .await;
    assert!(created["config"]["auth"].get("client_id").is_none_or(Value::is_null), "{created:#}");
    let d = diagnose(&app, &id_of(&created), None, &[]).await;
    assert_eq!(codes(&d), ["no_registration_endpoint"], "{d:#}");
    let f = one(&d, "no_registration_endpoint");
    assert_eq!(f["evidence"]["redirect_uri"], redirect_uri(&app));
    assert_eq!(f["evidence"]["issuer"], peers.issuer);
    assert_eq!(f["evidence"]["client_id_metadata_document_supported"], false);
    assert_eq!(peers.stats().await["registration_requests"], 0);
}

/// An endpoint at a closed port cannot be reached.
#[tokio::test]
async fn a_closed_port_is_upstream_unavailable() {
    let app = local_app().await;
    let endpoint = format!("http://127.0.0.1:{}/mcp", closed_port());
    let server = id_of(&create(&app, "Gone", json!({"endpoint": endpoint, "auth": {"type": "none"}})).await);
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["upstream_unavailable"], "{d:#}");
    let f = one(&d, "upstream_unavailable");
    assert_eq!(f["evidence"]["url"], endpoint);
    assert_eq!(f["evidence"]["error"], "the connection failed");
}

/// An endpoint that answers, but not as an MCP server (the provider's JWKS).
#[tokio::test]
async fn a_url_that_is_not_mcp_is_upstream_invalid() {
    let peers = Peers::start();
    let app = local_app().await;
    let endpoint = format!("{}/jwks", peers.issuer);
    let server = id_of(&create(&app, "Not MCP", json!({"endpoint": endpoint, "auth": {"type": "none"}})).await);
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["upstream_invalid"], "{d:#}");
    let f = one(&d, "upstream_invalid");
    assert_eq!(f["evidence"]["status"], 404);
    assert_eq!(f["evidence"]["url"], endpoint);
}

/// An address the guarded client refuses. With private networks refused, a server cannot even
/// be created at a private IP literal (the endpoint must be an https URL with a DNS name); with
/// them allowed (development), cloud metadata addresses stay refused — before any packet.
#[tokio::test]
async fn a_refused_address_is_blocked_by_network_policy() {
    let strict = TestApp::spawn().await;
    let res = strict
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Private", "config": {"endpoint": "https://10.255.255.1/mcp", "auth": {"type": "none"}}}),
        )
        .await;
    assert_eq!(res.field_errors(), vec![("config.endpoint".into(), "invalid_url".into())]);

    let app = local_app().await;
    let endpoint = "https://169.254.169.254/mcp";
    let server = id_of(&create(&app, "Metadata", json!({"endpoint": endpoint, "auth": {"type": "none"}})).await);
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["blocked_by_network_policy"], "{d:#}");
    let f = one(&d, "blocked_by_network_policy");
    assert_eq!(f["evidence"]["url"], endpoint);
    assert_eq!(f["evidence"]["error"], "blocked by network policy");
}

/// A user who never connected (through an attached agent) and an agent that is not attached.
#[tokio::test]
async fn a_users_connection_is_not_connected_or_not_attached() {
    let peers = Peers::start();
    let app = local_app().await;
    let server = id_of(
        &create(
            &app,
            "Peer",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}),
        )
        .await,
    );
    let agent = attached_agent(&app, &server, "Bot").await;
    let d = diagnose(&app, &server, Some(&json!({"user_id": "never-connected", "agent_id": agent})), &[]).await;
    assert_eq!(codes(&d), ["not_connected"], "{d:#}");
    assert_eq!(one(&d, "not_connected")["severity"], "info");

    let stranger = app.create_agent("Stranger").await;
    let d = diagnose(&app, &server, Some(&json!({"user_id": "user-1", "agent_id": stranger})), &[]).await;
    assert_eq!(codes(&d), ["not_attached"], "{d:#}");
    let f = one(&d, "not_attached");
    assert_eq!(f["evidence"]["agent_id"], stranger);
    assert_eq!(f["evidence"]["mcp_server_id"], server);
    assert!(f["fix"].as_str().is_some_and(|fix| fix.contains(&format!("/v1/agents/{stranger}/mcp-servers/{server}"))));

    // The runtime check of a ticket for that agent is a not-found, as every runtime call for
    // an agent not attached to the server.
    let ticket = ticket(&app, "user-1", &[&stranger]).await;
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{stranger}/mcp-servers/{server}/check"), Some(&ticket), None)
        .await;
    assert_secret_free(&app, &res.text, &[&ticket]);
    res.problem(StatusCode::NOT_FOUND, "not_found");
}

/// A server configured with too few scopes: the user's token lacks the one the MCP server asks
/// for, and the check names it and the fix.
#[tokio::test]
async fn a_grant_without_the_servers_scope_is_insufficient_scope() {
    let peers = Peers::start();
    let app = local_app().await;
    let server = id_of(
        &create(
            &app,
            "Peer",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", "scopes": ["mcp:write"]}}),
        )
        .await,
    );
    let agent = attached_agent(&app, &server, "Bot").await;
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    connect(&app, &ticket, &agent, &server).await;
    let tokens = app
        .store()
        .tenant(app.tenant_id)
        .token_set(&grant_key(&app, "user-1", &agent, &server))
        .await
        .expect("read")
        .expect("tokens");
    let refresh = tokens.refresh_token.clone().expect("a refresh token");
    let secrets = [tokens.access_token.expose(), refresh.expose(), ticket.as_str()];

    let res = check(&app, &ticket, &agent, &server).await;
    assert_secret_free(&app, &res.text, &secrets);
    let c = res.json();
    assert_eq!(c["ok"], false);
    assert_eq!(codes(&c), ["insufficient_scope"], "{c:#}");
    let f = one(&c, "insufficient_scope");
    assert_eq!(f["evidence"]["wanted"], json!(["mcp:read"]));
    assert_eq!(f["evidence"]["granted"], json!(["mcp:write"]));
    assert_eq!(f["evidence"]["missing"], json!(["mcp:read"]));
    let fix = f["fix"].as_str().expect("fix");
    assert!(fix.contains("`mcp:read`") && fix.contains(r#"["mcp:write","mcp:read"]"#), "{fix}");

    let d = diagnose(&app, &server, Some(&json!({"user_id": "user-1", "agent_id": agent})), &secrets).await;
    let connection: Vec<&Value> =
        all(&d, "insufficient_scope").into_iter().filter(|f| f["evidence"]["wanted"].is_array()).collect();
    assert_eq!(connection.len(), 1, "{d:#}");
    assert_eq!(connection[0]["severity"], "error");
    assert_eq!(connection[0]["evidence"]["wanted"], json!(["mcp:read"]));
    assert_eq!(connection[0]["evidence"]["granted"], json!(["mcp:write"]));
    // The diagnosis's own live check, not the stored copy of the check before.
    assert!(connection[0]["evidence"]["latency_ms"].is_u64(), "{d:#}");
    // The server's grants say it too: one refused for lack of scope, waiting for its user.
    let grants: Vec<&Value> =
        all(&d, "insufficient_scope").into_iter().filter(|f| f["evidence"]["grants"].is_number()).collect();
    assert_eq!(grants.len(), 1, "{d:#}");
    assert_eq!(grants[0]["evidence"]["grants"], 1);
    assert_eq!(one(&d, "needs_reauth")["evidence"]["grants_needing_reauth"], 1);
}

/// The provider refuses to refresh a grant (its refresh token was spent elsewhere): the server's
/// diagnosis counts the grant waiting for its user, and the user's connection says so.
#[tokio::test]
async fn a_refused_refresh_is_needs_reauth() {
    let peers = Peers::start();
    let app = local_app().await;
    let created = create(
        &app,
        "Peer",
        json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}),
    )
    .await;
    let server = id_of(&created);
    let client_id = created["config"]["auth"]["client_id"].as_str().expect("client_id").to_owned();
    let agent = attached_agent(&app, &server, "Bot").await;
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    connect(&app, &ticket, &agent, &server).await;
    let key = grant_key(&app, "user-1", &agent, &server);
    let tokens = app.store().tenant(app.tenant_id).token_set(&key).await.expect("read").expect("tokens");
    let refresh = tokens.refresh_token.clone().expect("a refresh token");
    // Someone else spends the refresh token: with rotation, Switchboard's copy is now a replay.
    let spent = reqwest::Client::new()
        .post(format!("{}/token", peers.issuer))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.expose()), ("client_id", &client_id)])
        .send()
        .await
        .expect("token");
    assert_eq!(spent.status(), StatusCode::OK);
    crate::refresh::make_due(&app).await;
    let report = app.worker().refresher().tick(100).await.expect("tick");
    assert_eq!(report.get(&switchboard_worker::refresh::Outcome::NeedsReauth), Some(&1), "{report:?}");
    let secrets = [tokens.access_token.expose(), refresh.expose(), ticket.as_str()];

    let d = diagnose(&app, &server, None, &secrets).await;
    assert_eq!(codes(&d), ["needs_reauth"], "{d:#}");
    let f = one(&d, "needs_reauth");
    assert_eq!(f["severity"], "error");
    assert_eq!(f["evidence"]["grants_needing_reauth"], 1);
    assert_eq!(f["evidence"]["grants"], 1);

    let d = diagnose(&app, &server, Some(&json!({"user_id": "user-1", "agent_id": agent})), &secrets).await;
    assert_eq!(codes(&d), ["needs_reauth", "needs_reauth"], "{d:#}");
    let connection: Vec<&Value> =
        all(&d, "needs_reauth").into_iter().filter(|f| f["evidence"]["status"] == "needs_reauth").collect();
    assert_eq!(connection.len(), 1, "{d:#}");
    assert_eq!(connection[0]["evidence"]["last_error_code"], "reauth_required");
    assert!(connection[0]["evidence"]["connection_id"].is_string());
}

/// The provider refuses Switchboard's authorization request for a reason that is neither the
/// client, the redirect URI nor the resource: here `invalid_scope`, for a client whose
/// registration limits its scopes to `mcp:read` while the server asks for `mcp:write`.
#[tokio::test]
async fn a_refused_authorization_request_is_consent_failed() {
    let peers = Peers::start();
    let app = local_app().await;
    let registered = register_client(
        &peers,
        json!({"redirect_uris": [redirect_uri(&app)], "grant_types": ["authorization_code", "refresh_token"],
               "token_endpoint_auth_method": "none", "scope": "mcp:read"}),
    )
    .await;
    let client_id = registered["client_id"].as_str().expect("client_id");
    let server = id_of(
        &create(
            &app,
            "Peer",
            json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce",
                   "client_id": client_id, "scopes": ["mcp:write"]}}),
        )
        .await,
    );
    let d = diagnose(&app, &server, None, &[]).await;
    assert_eq!(codes(&d), ["consent_failed"], "{d:#}");
    let f = one(&d, "consent_failed");
    assert_eq!(f["severity"], "warning");
    assert_eq!(f["evidence"]["provider_error"], "invalid_scope");
    assert_eq!(f["evidence"]["provider_said"], "requested scope is not allowed");
    assert_eq!(f["evidence"]["status"], 303);
}

/// Bad input: a connection needs both user and agent; another tenant's server is not found.
#[tokio::test]
async fn diagnose_validates_its_input_and_keeps_tenants_apart() {
    let app = local_app().await;
    // Servers at a closed loopback port: nothing here may reach beyond this machine.
    let config = json!({"endpoint": format!("http://127.0.0.1:{}/mcp", closed_port()), "auth": {"type": "none"}});
    let server = id_of(&create(&app, "Mine", config.clone()).await);
    let res = app
        .call(
            Method::POST,
            &format!("/v1/mcp-servers/{server}/diagnose"),
            Some(&app.key),
            Some(&json!({"user_id": "user-1"})),
        )
        .await;
    assert_eq!(res.field_errors(), vec![("agent_id".into(), "required".into())]);
    let agent = app.create_agent("Bot").await;
    let res = app
        .call(
            Method::POST,
            &format!("/v1/mcp-servers/{server}/diagnose"),
            Some(&app.key),
            Some(&json!({"agent_id": agent})),
        )
        .await;
    assert_eq!(res.field_errors(), vec![("user_id".into(), "required".into())]);

    let (_, other_key) = app.other_tenant().await;
    let res = app
        .call(Method::POST, "/v1/mcp-servers", Some(&other_key), Some(&json!({"name": "Theirs", "config": config})))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let theirs = res.id();
    let res = app.call(Method::POST, &format!("/v1/mcp-servers/{theirs}/diagnose"), Some(&app.key), None).await;
    res.problem(StatusCode::NOT_FOUND, "not_found");
    // Nor may a connection name another tenant's agent.
    let their_agent =
        app.call(Method::POST, "/v1/agents", Some(&other_key), Some(&json!({"name": "Their bot"}))).await.id();
    let res = app
        .call(
            Method::POST,
            &format!("/v1/mcp-servers/{server}/diagnose"),
            Some(&app.key),
            Some(&json!({"user_id": "user-1", "agent_id": their_agent})),
        )
        .await;
    // The server exists: the body names an agent this tenant does not have, a 422 on that field
    // (saying nothing of whose agent it is).
    res.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(res.field_errors(), vec![("agent_id".into(), "not_found".into())]);
}

/// Client-credentials servers at oidc-provider with the grant on: a working client has no
/// finding; a wrong secret is `invalid_client` (in `diagnose` and in a user's `check`); a client
/// the provider does not let use the grant is `auth_mode_mismatch`.
#[tokio::test]
async fn client_credentials_refused_at_the_token_endpoint_are_named_by_their_code() {
    let peers = Peers::start_with(&[("CLIENT_CREDENTIALS", "1")]);
    let app = local_app().await;
    let machine = register_client(
        &peers,
        json!({"grant_types": ["client_credentials"], "response_types": [], "redirect_uris": [],
               "token_endpoint_auth_method": "client_secret_basic", "scope": "mcp:read"}),
    )
    .await;
    let (id, secret) = (machine["client_id"].as_str().expect("id"), machine["client_secret"].as_str().expect("secret"));
    let cc = |secret: &str, client: &str| {
        json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_client_credentials", "client_id": client,
               "client_secret": secret, "scopes": ["mcp:read"]}})
    };

    let healthy = id_of(&create(&app, "Machine", cc(secret, id)).await);
    let d = diagnose(&app, &healthy, None, &[secret]).await;
    assert_eq!(codes(&d), Vec::<String>::new(), "{d:#}");

    let wrong = "cc-wrong-secret-5a4b";
    let broken = id_of(&create(&app, "Machine (wrong secret)", cc(wrong, id)).await);
    let d = diagnose(&app, &broken, None, &[secret, wrong]).await;
    assert_eq!(codes(&d), ["invalid_client"], "{d:#}");
    let f = one(&d, "invalid_client");
    assert_eq!(f["evidence"]["at"], "token_endpoint", "{f:#}");
    assert!(f["evidence"]["token_url"].as_str().is_some_and(|u| u.starts_with(&peers.issuer)), "{f:#}");

    // The same failure, seen from a user's runtime check.
    let agent = attached_agent(&app, &broken, "machine agent").await;
    let t = ticket(&app, "u1", &[&agent]).await;
    let connect = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{broken}/connect"), Some(&t), None)
        .await;
    assert_eq!(connect.status, StatusCode::OK, "{}", connect.text);
    let res = check(&app, &t, &agent, &broken).await;
    assert_secret_free(&app, &res.text, &[secret, wrong, &t]);
    let c = res.json();
    assert_eq!(c["ok"], false, "{c:#}");
    assert_eq!(codes(&c), ["invalid_client"], "{c:#}");

    // A client registered for the authorization code grant only.
    let interactive = register_client(
        &peers,
        json!({"grant_types": ["authorization_code"], "redirect_uris": [redirect_uri(&app)],
               "token_endpoint_auth_method": "client_secret_basic"}),
    )
    .await;
    let (other_id, other_secret) =
        (interactive["client_id"].as_str().expect("id"), interactive["client_secret"].as_str().expect("secret"));
    let misfit = id_of(&create(&app, "Machine (no grant)", cc(other_secret, other_id)).await);
    let d = diagnose(&app, &misfit, None, &[other_secret]).await;
    assert_eq!(codes(&d), ["auth_mode_mismatch"], "{d:#}");
    assert!(
        one(&d, "auth_mode_mismatch")["evidence"]["said"].as_str().is_some_and(|s| s.contains("unauthorized_client")),
        "{d:#}"
    );
}

/// The provider is down when a grant is due for refresh: the grant keeps its token and says when
/// it retries (`refresh_failing`, a warning, with `retry_at`), beside what the endpoint's own
/// silence says.
#[tokio::test]
async fn a_provider_down_at_refresh_time_is_refresh_failing() {
    let peers = Peers::start();
    let app = local_app().await;
    let created = create(
        &app,
        "Peer",
        json!({"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}),
    )
    .await;
    let server = id_of(&created);
    let agent = attached_agent(&app, &server, "Bot").await;
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    connect(&app, &ticket, &agent, &server).await;
    let key = grant_key(&app, "user-1", &agent, &server);
    let tokens = app.store().tenant(app.tenant_id).token_set(&key).await.expect("read").expect("tokens");
    let refresh = tokens.refresh_token.clone().expect("a refresh token");
    // The provider and its MCP servers stop (one process): the refresh cannot be asked.
    drop(peers);
    crate::refresh::make_due(&app).await;
    app.worker().refresher().tick(100).await.expect("tick");
    let secrets = [tokens.access_token.expose(), refresh.expose(), ticket.as_str()];

    let d = diagnose(&app, &server, Some(&json!({"user_id": "user-1", "agent_id": agent})), &secrets).await;
    let failing = all(&d, "refresh_failing");
    let connection: Vec<&&Value> = failing.iter().filter(|f| f["evidence"]["status"].is_string()).collect();
    assert_eq!(connection.len(), 1, "{d:#}");
    let f = connection[0];
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(f["evidence"]["last_error_code"], "refresh_failed", "{f:#}");
    assert!(f["evidence"]["retry_at"].is_string(), "{f:#}");
    // The server's grants say so too, and the endpoint's silence is its own finding.
    assert!(failing.iter().any(|f| f["evidence"]["grants"] == 1), "{d:#}");
    assert!(codes(&d).contains(&"upstream_unavailable".to_owned()), "{d:#}");
}
