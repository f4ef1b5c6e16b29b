//! Discovery, hydration and dynamic client registration against real peers: `oidc-provider` as
//! the authorization server and an `@modelcontextprotocol/sdk` Streamable HTTP server that
//! publishes protected resource metadata pointing at it (tests/peers, installed by scripts/test).

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};

pub struct Peers {
    child: Child,
    pub issuer: String,
    pub mcp_url: String,
    pub prm_url: String,
    /// A second MCP server (resource B) behind the same authorization server.
    pub mcp_b_url: String,
}

impl Peers {
    /// Starts peers.mjs and waits for the line announcing its URLs.
    pub fn start() -> Self {
        Self::start_with(&[])
    }

    /// Starts peers.mjs with extra environment (e.g. `LOGIN_PAGE=1` for a real sign-in page).
    pub fn start_with(env: &[(&str, &str)]) -> Self {
        let dir = std::env::var("SWITCHBOARD_PEERS_DIR")
            .unwrap_or_else(|_| format!("{}/.cache/switchboard/peers", std::env::var("HOME").unwrap_or_default()));
        let script = std::path::Path::new(&dir).join("peers.mjs");
        assert!(
            script.exists(),
            "the test peers are not installed in {dir}: run scripts/test (or tests/peers/install.sh)"
        );
        let mut command = Command::new("node");
        command.arg(&script).envs(env.iter().copied());
        let (child, info) = spawn_until_ready(command, "peers.mjs", Duration::from_secs(30));
        let s = |k: &str| info[k].as_str().expect("peer url").to_owned();
        Self { issuer: s("issuer"), mcp_url: s("mcp_url"), prm_url: s("prm_url"), mcp_b_url: s("mcp_b_url"), child }
    }

    /// The authorization server's request counters.
    pub async fn stats(&self) -> Value {
        reqwest::get(format!("{}/__stats", self.issuer)).await.expect("stats").json().await.expect("stats json")
    }
}

/// Starts a peer process and waits for the one JSON line it prints on stdout once it listens.
pub fn spawn_until_ready(mut command: Command, name: &str, within: Duration) -> (Child, Value) {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{name} could not be started ({e}); scripts/test installs what the peers need"));
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(within).unwrap_or_else(|_| panic!("{name} did not start within {within:?}"));
    let info = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{name} printed no JSON ({e}): {line}"));
    (child, info)
}

impl Drop for Peers {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn local_app() -> TestApp {
    TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await
}

#[tokio::test]
async fn discovery_result_against_real_peers() {
    let peers = Peers::start();
    let app = local_app().await;
    let res = app.post("/v1/mcp-servers/discover", &json!({"endpoint": peers.mcp_url})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let r = res.json();
    let issuer = peers.issuer.as_str();
    assert_eq!(r["endpoint"], peers.mcp_url);
    assert_eq!(r["requires_auth"], true);
    assert_eq!(r["recommended_auth_mode"], "oauth_authorization_code_public_pkce", "{r:#}");
    assert_eq!(r["authorization_code_usable"], true);
    assert_eq!(r["issuer"], issuer);
    assert_eq!(r["authorization_servers"], json!([issuer]));
    assert_eq!(r["resource_metadata_url"], peers.prm_url);
    assert_eq!(r["resource"], peers.mcp_url);
    assert_eq!(r["auth_url"], format!("{issuer}/auth"));
    assert_eq!(r["token_url"], format!("{issuer}/token"));
    assert_eq!(r["register_url"], format!("{issuer}/reg"));
    assert_eq!(r["revocation_url"], format!("{issuer}/token/revocation"));
    assert_eq!(r["scopes"], json!(["mcp:read"]));
    assert_eq!(r["scopes_source"], "challenge");
    assert_eq!(r["code_challenge_methods_supported"], json!(["S256"]));
    assert_eq!(
        r["token_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "none"])
    );
    assert_eq!(r["client_id_metadata_document_supported"], false);
    assert_eq!(r["authorization_response_iss_parameter_supported"], true);
    assert_eq!(r["spec_version"], "2025-11-25");
    assert_eq!(r["warnings"], json!([]));
    assert!(r["message"].as_str().is_some_and(|m| m.contains("dynamic client registration")), "{r:#}");
    let steps = r["steps"].as_array().expect("steps");
    assert_eq!(steps[0]["method"], "POST");
    assert_eq!(steps[0]["status"], 401);
    assert_eq!(steps[1]["url"], peers.prm_url);
    assert_eq!(steps[1]["status"], 200);
    assert!(steps.iter().all(|s| s["ms"].as_u64().is_some() && s["learned"].as_str().is_some_and(|l| !l.is_empty())));
    // Nothing was saved, nothing registered.
    assert_eq!(app.get("/v1/mcp-servers").await.json()["data"], json!([]));
    assert_eq!(peers.stats().await["registrations"], 0);
}

#[tokio::test]
async fn create_hydrates_and_registers_once_per_issuer() {
    let peers = Peers::start();
    let app = local_app().await;
    let body =
        |name: &str, kind: &str| json!({"name": name, "config": {"endpoint": peers.mcp_url, "auth": {"type": kind}}});
    let res =
        app.post("/v1/mcp-servers", &body("Peer (confidential)", "oauth_authorization_code_confidential_pkce")).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let server = res.json();
    let auth = &server["config"]["auth"];
    let issuer = peers.issuer.as_str();
    assert_eq!(auth["auth_url"], format!("{issuer}/auth"));
    assert_eq!(auth["token_url"], format!("{issuer}/token"));
    assert_eq!(auth["register_url"], format!("{issuer}/reg"));
    assert_eq!(auth["resource"], peers.mcp_url);
    assert_eq!(auth["scopes"], json!(["mcp:read"]));
    let client_id = auth["client_id"].as_str().expect("a registered client_id").to_owned();
    assert_eq!(auth["client_secret"]["set"], true);
    let d = &server["discovery_result"];
    assert_eq!(d["client_registration"], "dynamic_registration");
    assert_eq!(
        d["hydrated_fields"],
        json!(["auth_url", "token_url", "register_url", "resource", "scopes", "client_id", "client_secret"])
    );
    let registration = d["steps"].as_array().expect("steps").last().expect("step").clone();
    assert_eq!(registration["method"], "POST");
    assert_eq!(registration["url"], format!("{issuer}/reg"));
    assert_eq!(registration["status"], 201);
    assert_eq!(peers.stats().await["registrations"], 1);

    // The secret is sealed in the database and readable by the code that will use it.
    let id = uuid::Uuid::parse_str(server["id"].as_str().expect("id")).expect("uuid").into();
    let secret = app
        .store()
        .tenant(app.tenant_id)
        .mcp_server_secrets(id)
        .await
        .expect("secrets")
        .client_secret
        .expect("client secret");
    assert!(!app.dump_database().await.contains(secret.expose()));
    assert!(!app.get("/v1/mcp-servers").await.text.contains(secret.expose()));

    // A second server of the same issuer reuses the client.
    let again =
        app.post("/v1/mcp-servers", &body("Peer again", "oauth_authorization_code_confidential_pkce")).await.json();
    assert_eq!(again["config"]["auth"]["client_id"], client_id.as_str());
    assert_eq!(peers.stats().await["registrations"], 1);

    // A public client is another registration, without a secret.
    let public =
        app.post("/v1/mcp-servers", &body("Peer (public)", "oauth_authorization_code_public_pkce")).await.json();
    assert_ne!(public["config"]["auth"]["client_id"], client_id.as_str());
    assert!(public["config"]["auth"].get("client_secret").is_none(), "{public:#}");
    assert_eq!(peers.stats().await["registrations"], 2);

    // Pre-registered credentials win: nothing is registered.
    let pre = app
        .post("/v1/mcp-servers", &json!({"name": "Pre", "config": {"endpoint": peers.mcp_url,
            "auth": {"type": "oauth_authorization_code_confidential_pkce", "client_id": "my-own-client", "client_secret": "my-own-secret-0000"}}}))
        .await
        .json();
    assert_eq!(pre["config"]["auth"]["client_id"], "my-own-client");
    assert_eq!(pre["discovery_result"]["client_registration"], "pre_registered");
    assert_eq!(peers.stats().await["registrations"], 2);

    // Rediscover refills what discovery filled, and keeps the registration.
    let sid = server["id"].as_str().expect("id");
    let res = app.call(Method::POST, &format!("/v1/mcp-servers/{sid}/rediscover"), Some(&app.key), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["config"]["auth"]["client_id"], client_id.as_str());
    assert_eq!(peers.stats().await["registrations"], 2);
}

#[tokio::test]
async fn concurrent_creates_register_one_client() {
    let peers = Peers::start();
    let app = local_app().await;
    let mut tasks = Vec::new();
    for i in 0..50 {
        let client = app.client.clone();
        let url = format!("{}/v1/mcp-servers", app.base);
        let key = app.key.clone();
        let body = json!({"name": format!("peer {i}"), "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce"}}});
        tasks.push(tokio::spawn(async move {
            let res = client.post(url).bearer_auth(key).json(&body).send().await.expect("send");
            (res.status(), res.json::<Value>().await.expect("json"))
        }));
    }
    let mut ids = std::collections::HashSet::new();
    for t in tasks {
        let (status, server) = t.await.expect("task");
        assert_eq!(status, StatusCode::CREATED, "{server:#}");
        ids.insert(
            server["config"]["auth"]["client_id"]
                .as_str()
                .unwrap_or_else(|| panic!("no client id: {server:#}"))
                .to_owned(),
        );
    }
    assert_eq!(ids.len(), 1, "every server shares one client");
    assert_eq!(peers.stats().await["registrations"], 1, "exactly one registration");
}

#[test]
fn discover_command_prints_a_report_and_json() {
    let peers = Peers::start();
    let bin = env!("CARGO_BIN_EXE_switchboard");
    let out = Command::new(bin)
        .args(["discover", &peers.mcp_url, "--allow-private-network"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "401",
        &peers.prm_url,
        "oauth_authorization_code_public_pkce",
        "Conclusion",
        "Next",
        &format!("{}/token", peers.issuer),
    ] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
    let out = Command::new(bin)
        .args(["discover", &peers.mcp_url, "--allow-private-network", "--json"])
        .env("RUST_LOG", "warn")
        .output()
        .expect("run");
    let json: Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(json["issuer"], peers.issuer);
    // Without the switch, loopback is refused before any request.
    let out = Command::new(bin)
        .args(["discover", &peers.mcp_url])
        .env_remove("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS")
        .output()
        .expect("run");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS"));
}

#[tokio::test]
async fn token_servers_are_verified_live_and_saved_even_when_wrong() {
    let peers = Peers::start();
    let app = local_app().await;
    let res = app
        .post("/v1/mcp-servers", &json!({"name": "Static", "config": {"endpoint": peers.mcp_url, "auth": {"type": "token", "auth_token": "not-a-valid-token-1234"}}}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let d = &res.json()["discovery_result"];
    assert_eq!(d["verification"]["ok"], false, "{d:#}");
    assert!(
        d["verification"]["error"].as_str().is_some_and(|e| e.starts_with("the server refused the credentials (401)")),
        "{d}"
    );
    let warnings = d["warnings"].as_array().expect("warnings");
    assert!(
        warnings.iter().any(|w| w
            .as_str()
            .is_some_and(|w| w.contains("discovery recommends `oauth_authorization_code_public_pkce`"))),
        "{d:#}"
    );
    assert!(!res.text.contains("not-a-valid-token-1234"));

    // `check` from the runtime plane reports the upstream 401 precisely.
    let server = res.id();
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let check = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check"), Some(&ticket), None)
        .await
        .json();
    assert_eq!(check["ok"], false);
    assert!(
        check["error"].as_str().is_some_and(|e| e.starts_with("the server refused the credentials (401)")),
        "{check}"
    );
}
