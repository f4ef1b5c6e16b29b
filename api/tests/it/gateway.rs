//! The MCP gateway end to end: the project's dual-era upstream (tests/peers/upstream.mjs) and
//! the OAuth peers behind it, the MCP TypeScript SDK's client in front.

use std::process::{Child, Command};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::consent::consent_in_browser;
use crate::helpers::{Options, TestApp};
use crate::peers::{Peers, spawn_until_ready};

pub(crate) fn peers_dir() -> String {
    std::env::var("SWITCHBOARD_PEERS_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/switchboard/peers", std::env::var("HOME").unwrap_or_default()))
}

/// `upstream.mjs`, stopped when dropped.
pub(crate) struct Upstream {
    child: Child,
    pub(crate) url: String,
}

impl Upstream {
    pub(crate) fn start(env: &[(&str, &str)]) -> Self {
        let mut command = Command::new("node");
        command.arg(format!("{}/upstream.mjs", peers_dir())).envs(env.iter().copied());
        let (child, info) = spawn_until_ready(command, "upstream.mjs", Duration::from_secs(30));
        Self { child, url: info["mcp_url"].as_str().expect("mcp_url").to_owned() }
    }

    pub(crate) async fn seen(&self) -> Value {
        let base = self.url.trim_end_matches("/mcp");
        reqwest::get(format!("{base}/__seen")).await.expect("seen").json().await.expect("json")
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The SDK's client through `url` with `ticket`: one JSON line of what it saw. Run off the
/// test's runtime: the app's database connections are driven by it, so blocking it on the child
/// process would stall the very requests the client makes.
pub(crate) async fn sdk_client(url: &str, ticket: &str, extra: &[&str]) -> Value {
    let mut command = Command::new("node");
    command.arg(format!("{}/gateway-client.mjs", peers_dir())).arg(url).args(["--bearer", ticket]).args(extra);
    let out =
        tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("node gateway-client.mjs");
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|_| panic!("gateway-client printed no JSON: {text} {}", String::from_utf8_lossy(&out.stderr)))
}

pub(crate) async fn mcp(
    app: &TestApp,
    url: &str,
    ticket: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(t) = ticket {
        req = req.bearer_auth(t);
    }
    if let Some(s) = session {
        req = req.header("mcp-session-id", s).header("mcp-protocol-version", "2025-11-25");
    }
    req.send().await.expect("gateway")
}

/// The JSON-RPC message in a JSON or SSE body.
pub(crate) async fn rpc_body(res: reqwest::Response) -> Value {
    let text = res.text().await.expect("body");
    if let Ok(v) = serde_json::from_str::<Value>(&text) {
        return v;
    }
    text.lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no JSON-RPC response in {text}"))
}

pub(crate) async fn ticket(app: &TestApp, user: &str, agents: &[&str]) -> String {
    app.post("/v1/session-tickets", &json!({"user_id": user, "agent_ids": agents})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned()
}

pub(crate) fn initialize(capabilities: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": capabilities, "clientInfo": {"name": "test", "version": "0"}}})
}

#[tokio::test]
async fn the_sdk_client_calls_through_the_gateway_with_the_servers_token_and_the_filter() {
    let upstream = Upstream::start(&[("REQUIRE_TOKEN", "upstream-secret-token")]);
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Fixture", "slug": "fixture-v1", "config": {"endpoint": upstream.url, "auth": {"type": "token", "auth_token": "upstream-secret-token"}}}),
        )
        .await;
    assert_eq!(server.status, StatusCode::CREATED, "{}", server.text);
    let server = server.id();
    let agent = app.post("/v1/agents", &json!({"name": "Bot"})).await.id();
    let attached = app
        .put(
            &format!("/v1/agents/{agent}/mcp-servers/{server}"),
            Some(&json!({"tools": ["echo", "test_tool_with_progress"]})),
        )
        .await
        .json();
    let url = attached["gateway_url"].as_str().expect("gateway_url").to_owned();
    let ticket = ticket(&app, "u1", &[&agent]).await;

    // No ticket: 401 naming the route's own protected resource metadata.
    let res = mcp(&app, &url, None, None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let challenge = res.headers()["www-authenticate"].to_str().expect("challenge").to_owned();
    let prm_url = challenge.split('"').nth(1).expect("resource_metadata").to_owned();
    assert!(prm_url.ends_with(url.trim_start_matches(&app.base)), "{prm_url}");
    let prm: Value = app.client.get(&prm_url).send().await.expect("prm").json().await.expect("json");
    assert_eq!(prm["resource"], url.as_str());

    // The SDK's client: initialize, the filtered list, a call with progress over SSE, DELETE.
    let seen =
        sdk_client(&url, &ticket, &["--call", "test_tool_with_progress", "--args", "{}", "--progress", "--delete"])
            .await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(
        seen["tools"],
        json!(["test_tool_with_progress", "echo"]),
        "the allowed tools, in the upstream's order: {seen}"
    );
    assert!(seen["progress"].as_array().is_some_and(|p| p.len() >= 2), "progress arrived while the call ran: {seen}");
    assert_eq!(seen["deleted"], true, "{seen}");
    let seen = sdk_client(&url, &ticket, &["--call", "echo", "--args", r#"{"text":"hi"}"#]).await;
    assert_eq!(seen["call"]["content"][0]["text"], "hi", "{seen}");

    // A hidden tool reads as one that does not exist, before the upstream sees it.
    let before = upstream.seen().await["requests"].as_u64();
    let res = mcp(&app, &url, Some(&ticket), None, &json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": "test_simple_text", "arguments": {}}})).await;
    let body = rpc_body(res).await;
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(body["error"]["message"], "Unknown tool: test_simple_text");
    assert_eq!(upstream.seen().await["requests"].as_u64(), before, "the upstream never saw the refused call");

    // The refusal is counted by route and outcome, and audited for the tenant admin.
    let metrics =
        app.client.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text");
    let refused = metrics.lines().find(|l| {
        l.starts_with("switchboard_gateway_requests_total{")
            && l.contains(r#"server="fixture-v1""#)
            && l.contains(r#"method="tools/call""#)
            && l.contains(r#"outcome="tool_not_allowed""#)
    });
    assert!(refused.is_some_and(|l| l.ends_with(" 1")), "{metrics}");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let audited = loop {
        let events = app.get("/v1/audit-events?action=gateway.").await.json();
        if let Some(e) = events["data"].as_array().and_then(|d| d.first()).cloned() {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no gateway audit event: {events}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(audited["action"], "gateway.not_allowed", "{audited}");
    assert_eq!(audited["data"]["name"], "test_simple_text", "{audited}");
    assert_eq!(audited["target_id"], server.as_str(), "{audited}");

    // The upstream only ever saw the server's token, never the client's ticket.
    let authorizations = upstream.seen().await["authorization"].clone();
    assert_eq!(authorizations, json!(["Bearer upstream-secret-token"]), "{authorizations}");

    // Another tenant's route is not found; a ticket for another agent is out of scope.
    let foreign = url.replacen(&format!("/mcp/{}/", url.split('/').nth(4).expect("tenant")), "/mcp/someone-else/", 1);
    assert_eq!(mcp(&app, &foreign, Some(&ticket), None, &initialize(json!({}))).await.status(), StatusCode::NOT_FOUND);
    let other_agent = app.create_agent("Other").await;
    let narrow = self::ticket(&app, "u1", &[&other_agent]).await;
    let res = mcp(&app, &url, Some(&narrow), None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.json::<Value>().await.expect("problem")["code"], "ticket_scope");

    // A revoked ticket and a detached server stop working at once.
    let revoke = app.post("/v1/session-tickets/revoke", &json!({"ticket": ticket})).await;
    assert!(revoke.status.is_success(), "{}", revoke.text);
    let res = mcp(&app, &url, Some(&ticket), None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let fresh = self::ticket(&app, "u1", &[&agent]).await;
    assert_eq!(mcp(&app, &url, Some(&fresh), None, &initialize(json!({}))).await.status(), StatusCode::OK);
    assert_eq!(app.delete(&format!("/v1/agents/{agent}/mcp-servers/{server}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(mcp(&app, &url, Some(&fresh), None, &initialize(json!({}))).await.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_user_who_has_not_connected_is_asked_to_through_the_protocol_then_the_call_goes_through() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce"}}}))
        .await
        .id();
    let agent = app.create_agent("Support bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let ticket = ticket(&app, "user-1", &[&agent]).await;

    // Initialize before connecting: the gateway answers itself, with a session of its own.
    let res = mcp(&app, &url, Some(&ticket), None, &initialize(json!({"elicitation": {"url": {}}}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = res.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    assert!(session.starts_with("sbs_"), "{session}");
    let init = rpc_body(res).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "Peer MCP", "{init}");

    // The call: URL elicitation required, pointing at Switchboard's own connect page.
    let call =
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &call).await).await;
    assert_eq!(body["error"]["code"], -32042, "{body}");
    let elicitation = &body["error"]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url");
    let link = elicitation["url"].as_str().expect("url").to_owned();
    assert!(link.starts_with(&format!("{}/connect/", app.base)) && !link.contains("user-1"), "{link}");
    let elicitation_id = elicitation["elicitationId"].as_str().expect("elicitationId").to_owned();
    // The session's stream is open while the user connects: it will say when they did.
    let stream = app
        .client
        .get(&url)
        .bearer_auth(&ticket)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("GET stream");
    assert_eq!(stream.status(), StatusCode::OK);
    let completion = tokio::spawn(async move {
        let mut stream = stream;
        let mut text = String::new();
        while let Ok(Some(chunk)) = stream.chunk().await {
            text.push_str(&String::from_utf8_lossy(&chunk));
            if text.contains("notifications/elicitation/complete") {
                break;
            }
        }
        text
    });
    // Opening it starts nothing; the page says to confirm from the app.
    let page = app.client.get(&link).send().await.expect("page");
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(page.headers()["x-frame-options"], "DENY");

    // Another user's app cannot confirm it: the link is useless to whoever it is forwarded to.
    let request = link.rsplit('/').next().expect("request").to_owned();
    let confirm = format!("/v1/runtime/connect-requests/{request}/confirm");
    let mallory = self::ticket(&app, "mallory", &[&agent]).await;
    app.call(Method::POST, &confirm, Some(&mallory), None).await.problem(StatusCode::FORBIDDEN, "ticket_scope");
    // The user's own app confirms, and sends the browser to the provider's consent.
    let res = app.call(Method::POST, &confirm, Some(&ticket), None).await;
    assert_eq!(res.json()["status"], "pending_consent", "{}", res.text);
    let back = consent_in_browser(res.json()["auth_url"].as_str().expect("auth_url")).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    let done =
        app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("callback");
    assert_eq!(done.status(), StatusCode::OK);

    // The completion notification arrives on the session's stream, naming the elicitation.
    let text = tokio::time::timeout(Duration::from_secs(5), completion).await.expect("in time").expect("task");
    let note = text
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .find_map(|d| serde_json::from_str::<Value>(d).ok())
        .unwrap_or_else(|| panic!("no notification in {text}"));
    assert_eq!(note["method"], "notifications/elicitation/complete");
    assert_eq!(note["params"]["elicitationId"], elicitation_id.as_str());
    // The retried call goes through on the same session: the gateway initialized the upstream.
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &call).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "user-1", "{body}");
    let stats = peers.stats().await;
    assert!(stats["audiences_presented"]["/mcp"].is_object(), "{stats}");

    // The upstream forgets its sessions (a restart): the gateway starts another for the same
    // gateway session and the client never sees the 404.
    let dropped: Value = app
        .client
        .post(format!("{}/__drop_sessions", peers.issuer))
        .send()
        .await
        .expect("drop")
        .json()
        .await
        .expect("json");
    assert!(dropped["dropped"].as_u64().is_some_and(|n| n >= 1), "{dropped}");
    let res = mcp(&app, &url, Some(&ticket), Some(&session), &call).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = rpc_body(res).await;
    assert_eq!(body["result"]["content"][0]["text"], "user-1", "{body}");
}

/// A hand-written upstream whose behaviour a test switches: a sane answer (for discovery when
/// the server is registered), garbage, or silence — at once, or inside an SSE answer that began
/// well (headers and a progress notification) and then talks garbage, falls silent or ends.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    Sane,
    Garbage,
    Silent,
    SseGarbage,
    SseSilent,
    SseCut,
}

async fn switchable_upstream() -> (String, std::sync::Arc<std::sync::Mutex<Mode>>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/mcp", listener.local_addr().expect("addr"));
    let mode = std::sync::Arc::new(std::sync::Mutex::new(Mode::Sane));
    let m = mode.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let m = m.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                loop {
                    let Ok(n) = socket.read(&mut buf).await else { return };
                    if n == 0 {
                        return;
                    }
                    let mode = *m.lock().expect("mode");
                    let answer = match mode {
                        Mode::Silent => {
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        Mode::Garbage => {
                            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello"
                                .to_owned()
                        }
                        Mode::SseGarbage | Mode::SseSilent | Mode::SseCut => {
                            let head =
                                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n";
                            let progress = r#"data: {"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
                            let mut started = format!("{head}{progress}\n\n");
                            if mode == Mode::SseGarbage {
                                started.push_str("data: <html>upstream error page</html>\n\n");
                            }
                            if socket.write_all(started.as_bytes()).await.is_err() || mode == Mode::SseCut {
                                return;
                            }
                            tokio::time::sleep(Duration::from_secs(60)).await;
                            return;
                        }
                        Mode::Sane => {
                            let body = r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"x","version":"0"}}}"#;
                            format!(
                                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                                body.len()
                            )
                        }
                    };
                    if socket.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (url, mode)
}

#[tokio::test]
async fn an_upstream_that_is_down_slow_or_talks_garbage_is_a_clear_json_rpc_error_in_time() {
    let app = TestApp::spawn_with(Options {
        allow_private_networks: true,
        request_timeout: Some(Duration::from_secs(2)),
        ..Options::default()
    })
    .await;
    let (endpoint, mode) = switchable_upstream().await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Flaky", "config": {"endpoint": endpoint, "auth": {"type": "none"}}}))
        .await;
    assert_eq!(server.status, StatusCode::CREATED, "{}", server.text);
    let server = server.id();
    let agent = app.create_agent("bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let ticket = ticket(&app, "u1", &[&agent]).await;
    let call = json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "params": {"name": "echo", "arguments": {}}});

    *mode.lock().expect("mode") = Mode::Garbage;
    let body = rpc_body(mcp(&app, &url, Some(&ticket), None, &call).await).await;
    assert_eq!((body["id"].as_i64(), body["error"]["code"].as_i64()), (Some(4), Some(-31002)), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("not MCP")), "{body}");

    *mode.lock().expect("mode") = Mode::Silent;
    let started = std::time::Instant::now();
    let body = rpc_body(mcp(&app, &url, Some(&ticket), None, &call).await).await;
    assert_eq!(body["error"]["code"], -31000, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("in time")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3), "answered within the deadline: {:?}", started.elapsed());

    // A streamed answer that began well: the progress reaches the client, then the failure is
    // a JSON-RPC error for the call — never the garbage, never a hang.
    for (m, says) in [
        (Mode::SseGarbage, "not MCP"),
        (Mode::SseSilent, "did not answer in time"),
        (Mode::SseCut, "ended before it answered"),
    ] {
        *mode.lock().expect("mode") = m;
        let started = std::time::Instant::now();
        let res = mcp(&app, &url, Some(&ticket), None, &call).await;
        assert!(res.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("text/event-stream")));
        let text = tokio::time::timeout(Duration::from_secs(5), res.text()).await.expect("no hang").expect("body");
        assert!(text.contains("notifications/progress") && !text.contains("<html>"), "{text}");
        let answer: Value = text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .filter_map(|d| serde_json::from_str::<Value>(d).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or_else(|| panic!("no answer to the call in {text}"));
        assert_eq!(answer["id"], 4, "{answer}");
        assert!(answer["error"]["message"].as_str().is_some_and(|m| m.contains(says)), "{answer}");
        assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    }

    // Down: nothing listens at the endpoint any more.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/mcp", closed.local_addr().expect("addr"));
    drop(closed);
    let res = app
        .patch(&format!("/v1/mcp-servers/{server}"), &json!({"config": {"endpoint": dead, "auth": {"type": "none"}}}))
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let body = rpc_body(mcp(&app, &url, Some(&ticket), None, &call).await).await;
    assert_eq!(body["error"]["code"], -31000, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("could not be reached")), "{body}");
}

/// Two instances behind one load balancer, sharing the database and Redis: a ticket revoked and
/// a server detached through one stop working on the other within a second — its views were
/// warm, so only the change announced through Redis can tell it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_ticket_and_a_detached_server_stop_working_on_every_instance_within_a_second() {
    let redis = crate::ops::OwnRedis::start();
    let upstream = Upstream::start(&[]);
    let app = TestApp::spawn_with(Options {
        allow_private_networks: true,
        redis_url: Some(format!("redis://127.0.0.1:{}", redis.port)),
        ..Options::default()
    })
    .await;
    let other = app.sibling().await;
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Fixture", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}}),
        )
        .await
        .id();
    let agent = app.create_agent("bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let on_other = url.replacen(&app.base, &other.base, 1);
    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {"_meta": {
        "io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
    let ask = |ticket: String| {
        let (app, on_other, list) = (&app, on_other.clone(), list.clone());
        async move {
            app.client
                .post(&on_other)
                .bearer_auth(ticket)
                .header("accept", "application/json, text/event-stream")
                .header("mcp-protocol-version", "2026-07-28")
                .header("mcp-method", "tools/list")
                .json(&list)
                .send()
                .await
                .expect("other instance")
                .status()
        }
    };
    // The other instance's subscription to the change channel is up before anything changes.
    let channel = format!("{}:changes", app.state.settings.redis_prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let out = Command::new("redis-cli")
            .args(["-p", &redis.port.to_string(), "PUBSUB", "NUMSUB", &channel])
            .output()
            .expect("redis-cli");
        let n: u32 =
            String::from_utf8_lossy(&out.stdout).lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0);
        if n >= 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the instances never subscribed to {channel}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let until = |want: StatusCode, ticket: String| {
        let ask = &ask;
        async move {
            let started = std::time::Instant::now();
            loop {
                if ask(ticket.clone()).await == want {
                    return started.elapsed();
                }
                assert!(started.elapsed() < Duration::from_secs(5), "still not {want} after 5 s");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let first = ticket(&app, "u1", &[&agent]).await;
    assert_eq!(ask(first.clone()).await, StatusCode::OK, "warm the other instance's views");
    assert_eq!(app.post("/v1/session-tickets/revoke", &json!({"ticket": first})).await.status, StatusCode::NO_CONTENT);
    let took = until(StatusCode::UNAUTHORIZED, first).await;
    assert!(took < Duration::from_secs(1), "the revoked ticket worked on the other instance for {took:?}");

    let second = ticket(&app, "u1", &[&agent]).await;
    assert_eq!(ask(second.clone()).await, StatusCode::OK);
    assert_eq!(app.delete(&format!("/v1/agents/{agent}/mcp-servers/{server}")).await.status, StatusCode::NO_CONTENT);
    let took = until(StatusCode::NOT_FOUND, second).await;
    assert!(took < Duration::from_secs(1), "the detached server answered on the other instance for {took:?}");
}

/// A gateway session on `url`: `initialize`, `notifications/initialized`; its id.
pub(crate) async fn open_session(app: &TestApp, url: &str, ticket: &str) -> String {
    let res = mcp(app, url, Some(ticket), None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = res.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    let _ = res.text().await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(mcp(app, url, Some(ticket), Some(&session), &note).await.status().is_success());
    session
}

/// Each user grant's token goes only to its own server, and a token its server refuses is
/// replaced through one refresh and the call retried, unseen by the client.
#[tokio::test]
async fn an_upstream_401_is_refreshed_once_and_retried_and_each_server_sees_only_its_own_token() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let agent = app.create_agent("bot").await;
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    let mut routes = Vec::new();
    for (name, endpoint) in [("A", &peers.mcp_url), ("B", &peers.mcp_b_url)] {
        let body = json!({"name": name, "config": {"endpoint": endpoint, "auth": {"type": "oauth_authorization_code_public_pkce"}}});
        let server = app.post("/v1/mcp-servers", &body).await.id();
        let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
            .as_str()
            .expect("gateway_url")
            .to_owned();
        let res = app
            .call(
                Method::POST,
                &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"),
                Some(&ticket),
                None,
            )
            .await;
        let back = consent_in_browser(res.json()["auth_url"].as_str().expect("auth_url")).await;
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
        let done =
            app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("cb");
        assert_eq!(done.status(), StatusCode::OK);
        routes.push((server, url));
    }
    let whoami =
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "whoami", "arguments": {}}});
    let mut sessions = Vec::new();
    for (_, url) in &routes {
        let session = open_session(&app, url, &ticket).await;
        let body = rpc_body(mcp(&app, url, Some(&ticket), Some(&session), &whoami).await).await;
        assert_eq!(body["result"]["content"][0]["text"], "user-1", "{body}");
        sessions.push(session);
    }
    let stats = peers.stats().await;
    let seen = &stats["audiences_presented"];
    let audiences =
        |path: &str| -> Vec<String> { seen[path].as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default() };
    assert_eq!(audiences("/mcp"), std::slice::from_ref(&peers.mcp_url), "{seen:#}");
    assert_eq!(audiences("/b/mcp"), std::slice::from_ref(&peers.mcp_b_url), "{seen:#}");

    // A's stored token stops being accepted; the gateway holds it in its view until told.
    let key = switchboard_domain::connection::GrantKey {
        tenant_id: app.tenant_id,
        user_id: "user-1".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&routes[0].0).expect("id").into(),
    };
    switchboard_domain::store::testing::replace_access_token(app.store(), &key, "no-longer-accepted")
        .await
        .expect("replace");
    app.state.changed(switchboard_worker::changes::Change::grant(&key));
    let refreshes = |s: &Value| s["token_grants"]["refresh_token"].as_u64().unwrap_or(0);
    let before = refreshes(&stats);
    let body = rpc_body(mcp(&app, &routes[0].1, Some(&ticket), Some(&sessions[0]), &whoami).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "user-1", "the retried call answered: {body}");
    let after = peers.stats().await;
    assert_eq!(refreshes(&after), before + 1, "exactly one refresh: {after:#}");
    assert!(after["mcp_unauthorized"].as_u64().unwrap_or(0) >= 1, "the upstream did refuse the old token: {after:#}");
    let connection = app.get(&format!("/v1/connections?user_id=user-1&mcp_server_id={}", routes[0].0)).await.json();
    assert_eq!(connection["data"][0]["status"], "connected", "{connection}");
}
