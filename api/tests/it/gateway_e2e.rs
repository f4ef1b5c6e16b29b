//! The gateway's promises end to end, each as its user would notice it: a broken SSE stream
//! resumed through it with nothing lost, progress that arrives while a call runs, DELETE that
//! ends the session upstream, filtered lists across upstream pages with the gateway's own
//! cursors, `list_changed` on the client's streams, another tenant's routes, a refused refresh,
//! "connect first" in the 2026-07-28 era and in a real browser, the latency histogram, and a
//! client-credentials token injected. The upstream is `tests/peers/upstream.mjs` (both eras), or
//! the MCP servers of `peers.mjs` where a user's OAuth grant is needed; clients are the MCP
//! TypeScript SDK's (`gateway-client.mjs`) or raw HTTP where timing and bytes matter.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::consent::consent_in_browser;
use crate::gateway::{Upstream, initialize, mcp, open_session, rpc_body, sdk_client, ticket};
use crate::helpers::{Options, TestApp};
use crate::peers::Peers;

const MODERN: &str = "2026-07-28";

pub(crate) async fn local_app() -> TestApp {
    TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await
}

/// A server `body` created with `key`, attached to a new agent named `agent` with `filter`:
/// (server id, agent id, gateway URL).
pub(crate) async fn route(
    app: &TestApp,
    key: &str,
    body: Value,
    agent: &str,
    filter: Option<Value>,
) -> (String, String, String) {
    let server = app.call(Method::POST, "/v1/mcp-servers", Some(key), Some(&body)).await;
    assert_eq!(server.status, StatusCode::CREATED, "{}", server.text);
    let server = server.id();
    let created = app.call(Method::POST, "/v1/agents", Some(key), Some(&json!({"name": agent}))).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let agent = created.id();
    let attached =
        app.call(Method::PUT, &format!("/v1/agents/{agent}/mcp-servers/{server}"), Some(key), filter.as_ref()).await;
    assert!(attached.status.is_success(), "{}", attached.text);
    let url = attached.json()["gateway_url"].as_str().expect("gateway_url").to_owned();
    (server, agent, url)
}

/// A route to `upstream` with no upstream credential and no filter.
async fn open_route(app: &TestApp, upstream: &Upstream) -> (String, String, String) {
    let body = json!({"name": "Fixture", "slug": "fixture-v1", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    route(app, &app.key, body, "Bot", None).await
}

fn upstream_base(upstream: &Upstream) -> String {
    upstream.url.trim_end_matches("/mcp").to_owned()
}

/// A 2026-07-28 request: version and capabilities in `_meta`.
pub(crate) fn modern(id: Value, method: &str, mut params: Value, capabilities: Value) -> Value {
    params["_meta"]["io.modelcontextprotocol/protocolVersion"] = json!(MODERN);
    params["_meta"]["io.modelcontextprotocol/clientCapabilities"] = capabilities;
    json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params})
}

/// POSTs a 2026-07-28 request with the headers that era requires (`Mcp-Method`, `Mcp-Name`).
pub(crate) async fn post_modern(app: &TestApp, url: &str, ticket: &str, body: &Value) -> reqwest::Response {
    let method = body["method"].as_str().expect("method");
    let mut req = app
        .client
        .post(url)
        .bearer_auth(ticket)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", method)
        .json(body);
    if let Some(name) = body["params"]["name"].as_str() {
        req = req.header("mcp-name", name);
    }
    req.send().await.expect("gateway")
}

fn call(id: Value, tool: &str, arguments: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": tool, "arguments": arguments}})
}

/// A GET or DELETE on a legacy session.
async fn on_session(app: &TestApp, method: Method, url: &str, ticket: &str, session: &str) -> reqwest::Response {
    app.client
        .request(method, url)
        .bearer_auth(ticket)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .expect("gateway")
}

/// One SSE event and when it reached the client.
#[derive(Debug)]
struct Event {
    id: Option<String>,
    data: Value,
    at: Instant,
}

/// An SSE body, read event by event as the bytes arrive.
struct Events {
    res: reqwest::Response,
    buf: String,
}

impl Events {
    fn new(res: reqwest::Response) -> Self {
        let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        assert!(kind.starts_with("text/event-stream"), "not an SSE answer: {kind} ({})", res.status());
        Self { res, buf: String::new() }
    }

    /// The next event with an id or data (comments skipped); `None` when the stream ends or
    /// `within` passes first.
    async fn next(&mut self, within: Duration) -> Option<Event> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            while let Some(end) = self.buf.find("\n\n") {
                let raw: String = self.buf.drain(..end + 2).collect();
                let field = |name: &str| {
                    raw.lines()
                        .filter_map(|l| l.strip_prefix(name))
                        .map(|v| v.strip_prefix(' ').unwrap_or(v))
                        .collect::<Vec<_>>()
                };
                let id = field("id:").first().map(|s| (*s).to_owned());
                let data = field("data:").join("\n");
                if id.is_none() && data.is_empty() {
                    continue;
                }
                let data =
                    if data.trim().is_empty() { Value::Null } else { serde_json::from_str(&data).expect("JSON data") };
                return Some(Event { id, data, at: Instant::now() });
            }
            let chunk = tokio::time::timeout_at(deadline, self.res.chunk()).await.ok()?.ok()??;
            self.buf.push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// Every event up to and including the first that `done` accepts; fails after `within`.
    async fn until(&mut self, within: Duration, done: impl Fn(&Value) -> bool) -> Vec<Event> {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(event) = self.next(left).await else {
                panic!("the stream ended or went quiet before the awaited event; it carried {seen:#?}")
            };
            let last = done(&event.data);
            seen.push(event);
            if last {
                return seen;
            }
        }
    }
}

fn is_response(id: Value) -> impl Fn(&Value) -> bool {
    move |v| v.get("id") == Some(&id) && (v.get("result").is_some() || v.get("error").is_some())
}

fn method_is(method: &'static str) -> impl Fn(&Value) -> bool {
    move |v| v["method"] == method
}

/// Session resumption through the gateway: the SDK's client, whose call's stream the upstream
/// closes mid-call, resumes with GET + `Last-Event-ID` and gets the result it missed. The same
/// by hand: the result produced while the client was away is replayed on the resumed stream.
#[tokio::test]

async fn a_stream_broken_mid_call_is_resumed_through_the_gateway_and_nothing_is_lost() {
    let upstream = Upstream::start(&[("REQUIRE_TOKEN", "upstream-secret-token")]);
    let app = local_app().await;
    let body = json!({"name": "Fixture", "config": {"endpoint": upstream.url, "auth": {"type": "token", "auth_token": "upstream-secret-token"}}});
    let (_, agent, url) = route(&app, &app.key, body, "Bot", None).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;

    let seen = sdk_client(&url, &ticket, &["--resume-test"]).await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["resume"]["resumed"], true, "{seen}");
    assert_eq!(seen["call"]["content"][0]["text"], "Reconnection test completed successfully", "{seen}");
    let gets = upstream.seen().await["by_http"]["GET"].as_u64().unwrap_or(0);
    assert!(gets >= 1, "the resumption reached the upstream");

    // By hand: the upstream ends the call's stream after its priming event.
    let session = open_session(&app, &url, &ticket).await;
    let res = mcp(&app, &url, Some(&ticket), Some(&session), &call(json!(7), "test_reconnection", json!({}))).await;
    let mut stream = Events::new(res);
    let mut before = Vec::new();
    while let Some(event) = stream.next(Duration::from_secs(5)).await {
        before.push(event);
    }
    assert!(before.iter().all(|e| e.data.get("id").is_none()), "the result came before the break: {before:?}");
    let last = before.last().and_then(|e| e.id.clone()).expect("the stream carried an event id to resume from");
    // The client is away while the call finishes: it runs a 400 ms call meanwhile (the
    // reconnection's result comes 200 ms after the break).
    let slow =
        rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &call(json!(8), "slow", json!({"ms": 400}))).await)
            .await;
    assert_eq!(slow["result"]["content"][0]["text"], "waited 400 ms", "{slow}");
    let res = app
        .client
        .get(&url)
        .bearer_auth(&ticket)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .header("last-event-id", &last)
        .send()
        .await
        .expect("resume");
    assert_eq!(res.status(), StatusCode::OK);
    let replayed = Events::new(res).until(Duration::from_secs(5), is_response(json!(7))).await;
    let result = replayed.last().expect("the result");
    assert_eq!(result.data["result"]["content"][0]["text"], "Reconnection test completed successfully");
    assert!(result.id.as_ref().is_some_and(|id| *id != last), "the replayed event has an id of its own: {result:?}");
}

/// When the first progress notification and the result of a call reached the client.
async fn progress_and_result(res: reqwest::Response, id: Value) -> (Vec<Instant>, Instant, Value) {
    let events = Events::new(res).until(Duration::from_secs(10), is_response(id)).await;
    let progress: Vec<Instant> =
        events.iter().filter(|e| e.data["method"] == "notifications/progress").map(|e| e.at).collect();
    let last = events.last().expect("the result");
    (progress, last.at, last.data.clone())
}

/// A slow call's progress streams through as the upstream sends it: the first notification
/// reaches the client long before the result, in both eras. A gateway that buffered the body
/// would deliver them together.
#[tokio::test]
async fn progress_reaches_the_client_while_the_call_runs_not_with_its_result() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (_, agent, url) = open_route(&app, &upstream).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;
    let args = json!({"ms": 1200});

    let session = open_session(&app, &url, &ticket).await;
    let mut slow = call(json!(3), "slow", args.clone());
    slow["params"]["_meta"] = json!({"progressToken": "legacy"});
    let sent = Instant::now();
    let res = mcp(&app, &url, Some(&ticket), Some(&session), &slow).await;
    let head = sent.elapsed();
    let (progress, result_at, result) = progress_and_result(res, json!(3)).await;
    assert_eq!(result["result"]["content"][0]["text"], "waited 1200 ms", "{result}");
    assert!(head < Duration::from_millis(800), "the answer's head waited for the call: {head:?}");
    assert!(progress.len() >= 5, "{} progress notifications", progress.len());
    let ahead = result_at - progress[0];
    assert!(ahead >= Duration::from_millis(700), "the first progress arrived only {ahead:?} before the result");
    let spread = *progress.last().expect("progress") - progress[0];
    assert!(spread >= Duration::from_millis(500), "the progress notifications arrived together ({spread:?})");

    let slow = modern(
        json!(4),
        "tools/call",
        json!({"name": "slow", "arguments": args, "_meta": {"progressToken": "modern"}}),
        json!({}),
    );
    let sent = Instant::now();
    let res = post_modern(&app, &url, &ticket, &slow).await;
    let head = sent.elapsed();
    let (progress, result_at, result) = progress_and_result(res, json!(4)).await;
    assert_eq!(result["result"]["content"][0]["text"], "waited 1200 ms", "{result}");
    assert!(head < Duration::from_millis(800), "the answer's head waited for the call: {head:?}");
    assert!(progress.len() >= 5, "{} progress notifications", progress.len());
    let ahead = result_at - progress[0];
    assert!(ahead >= Duration::from_millis(700), "the first progress arrived only {ahead:?} before the result");
}

/// DELETE ends the session where it lives: the upstream sees it, and the session id is not
/// found afterwards — on POST and on GET.
#[tokio::test]
async fn a_deleted_session_is_ended_upstream_and_gone() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (_, agent, url) = open_route(&app, &upstream).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;
    let session = open_session(&app, &url, &ticket).await;
    let echo = call(json!(2), "echo", json!({"text": "before"}));
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &echo).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "before", "{body}");
    let deletes = |s: &Value| s["by_http"]["DELETE"].as_u64().unwrap_or(0);
    let before = deletes(&upstream.seen().await);

    let res = on_session(&app, Method::DELETE, &url, &ticket, &session).await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(deletes(&upstream.seen().await), before + 1, "the DELETE reached the upstream");

    let res = mcp(&app, &url, Some(&ticket), Some(&session), &echo).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "a POST on the ended session");
    let res = on_session(&app, Method::GET, &url, &ticket, &session).await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND, "a GET on the ended session");
    // A new session works.
    let fresh = open_session(&app, &url, &ticket).await;
    assert_ne!(fresh, session);
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&fresh), &echo).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "before", "{body}");
}

/// Every tool of the upstream, in its order, read from the upstream itself.
async fn upstream_tools(upstream: &Upstream) -> Vec<String> {
    let all = sdk_client(&upstream.url, "unused", &[]).await;
    all["tools"].as_array().expect("tools").iter().map(|t| t.as_str().expect("name").to_owned()).collect()
}

fn names(result: &Value) -> Vec<String> {
    result["tools"].as_array().expect("tools").iter().map(|t| t["name"].as_str().expect("name").to_owned()).collect()
}

/// The filtered list across the upstream's pages: exactly the allowed tools, in both eras and
/// through the SDK's client; every cursor the gateway's own (sealed, never the upstream's), and
/// neither the upstream's cursor nor another route's accepted.
#[tokio::test]
async fn tools_lists_are_filtered_across_upstream_pages_with_the_gateways_own_cursors() {
    const PAGE: usize = 4;
    let upstream = Upstream::start(&[("PAGE_SIZE", "4")]);
    let app = local_app().await;
    let every = upstream_tools(&upstream).await;
    assert!(every.len() > 3 * PAGE, "the upstream pages its {} tools", every.len());
    // Allowed: one tool of every third page or so, the last one, and one the upstream lacks.
    // The two eras list the same number of tools (`test_reconnection` is legacy only,
    // `test_custom_header` modern only), so the allowed ones are listed in both.
    let both = |t: &&String| !["test_reconnection", "test_custom_header"].contains(&t.as_str());
    let mut allowed: Vec<String> = every.iter().step_by(PAGE * 2 + 1).filter(both).cloned().collect();
    if let Some(last) = every.iter().rev().find(both).filter(|t| !allowed.contains(t)) {
        allowed.push(last.clone());
    }
    let mut filter = allowed.clone();
    filter.push("no_such_tool".into());
    let body = json!({"name": "Fixture", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    let (server, agent, url) = route(&app, &app.key, body, "Bot", Some(json!({"tools": filter}))).await;
    let ticket = self::ticket(&app, "u1", &[&agent]).await;
    let upstream_cursors: Vec<String> = (1..=every.len() / PAGE)
        .map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("p{}", n * PAGE)))
        .collect();

    // The SDK's client follows the cursors and sees exactly the allowed tools, in order.
    let seen = sdk_client(&url, &ticket, &[]).await;
    assert!(seen.get("error").is_none(), "{seen}");
    assert_eq!(seen["tools"], json!(allowed), "{seen}");

    // By hand, in both eras: one gateway page per upstream page.
    let session = open_session(&app, &url, &ticket).await;
    for era in ["legacy", "modern"] {
        let (mut listed, mut cursor, mut pages) = (Vec::new(), None::<String>, 0);
        loop {
            let params = cursor.as_ref().map_or(json!({}), |c| json!({"cursor": c}));
            let page = if era == "legacy" {
                let list = json!({"jsonrpc": "2.0", "id": 10 + pages, "method": "tools/list", "params": params});
                rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &list).await).await
            } else {
                let list = modern(json!(10 + pages), "tools/list", params, json!({}));
                let res = post_modern(&app, &url, &ticket, &list).await;
                assert_eq!(res.status(), StatusCode::OK);
                rpc_body(res).await
            };
            pages += 1;
            let result = &page["result"];
            listed.extend(names(result));
            if era == "modern" {
                assert_eq!(result["cacheScope"], "private", "a filtered list is not for shared caches: {page}");
            }
            let Some(next) = result["nextCursor"].as_str() else { break };
            assert!(next.starts_with("sbc_"), "{era}: {next}");
            assert!(!upstream_cursors.iter().any(|u| u == next), "{era}: the upstream's own cursor: {next}");
            cursor = Some(next.to_owned());
            assert!(pages < 50, "the cursors never end");
        }
        assert_eq!(listed, allowed, "{era}");
        assert_eq!(pages, every.len().div_ceil(PAGE), "{era}: one page per upstream page");
    }

    // The upstream's own cursor, and another route's, are refused before the upstream sees them.
    let other_agent = app.create_agent("Other").await;
    let other_url =
        app.put(&format!("/v1/agents/{other_agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
            .as_str()
            .expect("gateway_url")
            .to_owned();
    let other_ticket = self::ticket(&app, "u1", &[&other_agent]).await;
    let first = modern(json!(1), "tools/list", json!({}), json!({}));
    let theirs = rpc_body(post_modern(&app, &other_url, &other_ticket, &first).await).await;
    let foreign = theirs["result"]["nextCursor"].as_str().expect("a cursor on the other route").to_owned();
    let lists = |s: &Value| s["by_method"]["tools/list"].as_u64().unwrap_or(0);
    let before = lists(&upstream.seen().await);
    for cursor in [upstream_cursors[0].as_str(), foreign.as_str()] {
        let list = json!({"jsonrpc": "2.0", "id": 30, "method": "tools/list", "params": {"cursor": cursor}});
        let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &list).await).await;
        assert_eq!(body["error"]["code"], -32602, "{cursor}: {body}");
        assert_eq!(body["error"]["message"], "Invalid cursor");
    }
    assert_eq!(lists(&upstream.seen().await), before, "the upstream never saw a refused cursor");
}

/// A 2026-07-28 form of a request with no `_meta` yet (so it needs no session).
fn modern_free(request: &Value) -> Value {
    modern(request["id"].clone(), request["method"].as_str().expect("method"), request["params"].clone(), json!({}))
}

/// `notifications/tools/list_changed` reaches the client: on a session's GET stream, and on a
/// 2026-07-28 `subscriptions/listen` stream that asked for it.
#[tokio::test]
async fn list_changed_reaches_the_client_on_its_get_stream_and_its_listen_stream() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (_, agent, url) = open_route(&app, &upstream).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;
    let changed = || async {
        let res: Value = reqwest::Client::new()
            .post(format!("{}/__tools_changed", upstream_base(&upstream)))
            .send()
            .await
            .expect("trigger")
            .json()
            .await
            .expect("json");
        res
    };

    let session = open_session(&app, &url, &ticket).await;
    let res = on_session(&app, Method::GET, &url, &ticket, &session).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = Events::new(res);
    // The upstream holds the GET stream once its head has reached the client.
    assert!(changed().await["legacy_sessions"].as_u64() >= Some(1));
    let got = stream.until(Duration::from_secs(5), method_is("notifications/tools/list_changed")).await;
    assert_eq!(got.len(), 1, "{got:?}");

    let listen = modern(
        json!("listen-1"),
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
        json!({}),
    );
    let res = post_modern(&app, &url, &ticket, &listen).await;
    assert_eq!(res.status(), StatusCode::OK);
    let mut stream = Events::new(res);
    let ack = stream.until(Duration::from_secs(5), method_is("notifications/subscriptions/acknowledged")).await;
    assert_eq!(ack[0].data["params"]["notifications"]["toolsListChanged"], true, "{ack:?}");
    assert_eq!(changed().await["listen_streams"], 1);
    let got = stream.until(Duration::from_secs(5), method_is("notifications/tools/list_changed")).await;
    let note = &got.last().expect("note").data;
    assert_eq!(note["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"], "listen-1", "{note}");
}

/// Two real tenants with the same agent and server slugs: their routes differ only in the
/// tenant's slug, and each one's valid ticket finds nothing on the other's route — whatever
/// the method — while the upstream sees none of it.
#[tokio::test]
async fn another_tenants_valid_ticket_is_not_found_on_either_route() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (b_tenant, b_key) = app.other_tenant().await;
    let (_, a_agent, a_url) = open_route(&app, &upstream).await;
    let body = json!({"name": "Fixture", "slug": "fixture-v1", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    let (_, b_agent, b_url) = route(&app, &b_key, body, "Bot", None).await;
    let slug = |u: &str| u.split('/').nth(4).expect("tenant segment").to_owned();
    assert_ne!(a_url, b_url);
    assert_eq!(a_url.replacen(&slug(&a_url), &slug(&b_url), 1), b_url, "the routes differ only in the tenant");
    let a_ticket = ticket(&app, "u1", &[&a_agent]).await;
    let b_ticket = app
        .call(
            Method::POST,
            "/v1/session-tickets",
            Some(&b_key),
            Some(&json!({"user_id": "u1", "agent_ids": [b_agent]})),
        )
        .await
        .json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    // Each ticket works on its own tenant's route.
    for (url, ticket) in [(&a_url, &a_ticket), (&b_url, &b_ticket)] {
        let res = mcp(&app, url, Some(ticket), None, &initialize(json!({}))).await;
        assert_eq!(res.status(), StatusCode::OK, "{url}");
    }

    let before = upstream.seen().await["requests"].clone();
    let a_by_id = a_url.replacen(&slug(&a_url), &app.tenant_id.0.to_string(), 1);
    let b_by_id = b_url.replacen(&slug(&b_url), &b_tenant.0.to_string(), 1);
    let crossings = [(&a_url, &b_ticket), (&a_by_id, &b_ticket), (&b_url, &a_ticket), (&b_by_id, &a_ticket)];
    for (url, ticket) in crossings {
        let echo = call(json!(2), "echo", json!({"text": "x"}));
        let posts = [
            mcp(&app, url, Some(ticket), None, &initialize(json!({}))).await,
            post_modern(&app, url, ticket, &modern_free(&echo)).await,
        ];
        let others = [
            on_session(&app, Method::GET, url, ticket, "any").await,
            on_session(&app, Method::DELETE, url, ticket, "any").await,
        ];
        for res in posts.into_iter().chain(others) {
            assert_eq!(res.status(), StatusCode::NOT_FOUND, "{url}");
            let problem: Value = res.json().await.expect("problem");
            assert_eq!(problem["code"], "not_found", "{problem}");
        }
    }
    assert_eq!(upstream.seen().await["requests"], before, "the upstream saw none of the crossings");
}

/// Connects `user` to `server` through the runtime `connect` call and the provider's consent.
pub(crate) async fn connect(app: &TestApp, ticket: &str, agent: &str, server: &str) {
    let path = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    let res = app.call(Method::POST, &path, Some(ticket), None).await;
    finish_consent(app, res.json()["auth_url"].as_str().expect("auth_url")).await;
}

/// The provider's consent (auto-approved by the test provider) and Switchboard's callback.
async fn finish_consent(app: &TestApp, auth_url: &str) {
    let back = consent_in_browser(auth_url).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    let done =
        app.client.get(format!("{}/service/mcp/consent/callback?{query}", app.base)).send().await.expect("callback");
    assert_eq!(done.status(), StatusCode::OK);
}

/// The user's app confirms a connect link with the user's ticket: the provider's consent URL.
async fn confirm(app: &TestApp, link: &str, ticket: &str) -> String {
    assert!(link.starts_with(&format!("{}/connect/", app.base)), "{link}");
    let request = link.rsplit('/').next().expect("request");
    let res =
        app.call(Method::POST, &format!("/v1/runtime/connect-requests/{request}/confirm"), Some(ticket), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.json()["auth_url"].as_str().expect("auth_url").to_owned()
}

/// A legacy session whose client declared URL-mode elicitation.
async fn url_capable_session(app: &TestApp, url: &str, ticket: &str) -> String {
    let res = mcp(app, url, Some(ticket), None, &initialize(json!({"elicitation": {"url": {}}}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = res.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    let _ = res.text().await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(mcp(app, url, Some(ticket), Some(&session), &note).await.status().is_success());
    session
}

/// A grant whose token the upstream refuses and whose refresh the provider refuses: the call
/// answers the connect-first form (`-32042`, a URL elicitation), the connection reads
/// `needs_reauth`, and connecting again through that URL makes the same session work.
#[tokio::test]
async fn a_refused_refresh_asks_the_user_to_connect_again_and_marks_the_grant_needs_reauth() {
    let peers = Peers::start();
    let app = local_app().await;
    let body = json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}});
    let created = app.post("/v1/mcp-servers", &body).await.json();
    let server = created["id"].as_str().expect("id").to_owned();
    let client_id = created["config"]["auth"]["client_id"].as_str().expect("client_id").to_owned();
    let agent = app.create_agent("Bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    connect(&app, &ticket, &agent, &server).await;
    let session = url_capable_session(&app, &url, &ticket).await;
    assert!(!session.starts_with("sbs_"), "the upstream's own session: {session}");
    let whoami = call(json!(3), "whoami", json!({}));
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &whoami).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "user-1", "{body}");
    // The runtime list's view of the user's connections is warm from here on: only the changes
    // each status write announces can keep it right.
    let runtime_status = || async {
        let list: Value = app
            .client
            .get(format!("{}/v1/runtime/agents/{agent}/mcp-servers", app.base))
            .bearer_auth(&ticket)
            .send()
            .await
            .expect("runtime list")
            .json()
            .await
            .expect("json");
        list["data"][0]["connection_status"].as_str().expect("status").to_owned()
    };
    assert_eq!(runtime_status().await, "connected");

    // The provider ends the grant: someone else spends its refresh token (its rotation makes the
    // stored one a replay), and the upstream stops accepting the stored access token.
    let key = switchboard_domain::connection::GrantKey {
        tenant_id: app.tenant_id,
        user_id: "user-1".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    let tokens = app.store().tenant(app.tenant_id).token_set(&key).await.expect("read").expect("tokens");
    let refresh = tokens.refresh_token.expect("a refresh token");
    let spent = reqwest::Client::new()
        .post(format!("{}/token", peers.issuer))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", refresh.expose()), ("client_id", &client_id)])
        .send()
        .await
        .expect("token");
    assert_eq!(spent.status(), StatusCode::OK);
    switchboard_domain::store::testing::replace_access_token(app.store(), &key, "no-longer-accepted")
        .await
        .expect("replace");
    app.state.changed(switchboard_worker::changes::Change::grant(&key));
    assert_eq!(runtime_status().await, "connected", "warm again after the test's own change");
    let stats = peers.stats().await;

    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &whoami).await).await;
    assert_eq!(body["error"]["code"], -32042, "{body}");
    let elicitation = &body["error"]["data"]["elicitations"][0];
    assert_eq!(elicitation["mode"], "url", "{body}");
    let link = elicitation["url"].as_str().expect("url").to_owned();
    let after = peers.stats().await;
    assert!(after["mcp_unauthorized"].as_u64() > stats["mcp_unauthorized"].as_u64(), "the upstream refused: {after:#}");
    assert!(after["token_requests"].as_u64() > stats["token_requests"].as_u64(), "a refresh was tried: {after:#}");
    assert_eq!(after["token_grants"], stats["token_grants"], "and refused: {after:#}");
    let listed = app.get(&format!("/v1/connections?user_id=user-1&mcp_server_id={server}")).await.json();
    assert_eq!(listed["data"][0]["status"], "needs_reauth", "{listed}");
    assert_eq!(runtime_status().await, "needs_reauth", "the refresher's verdict reached the runtime view");

    // The user connects again through the link; the same session answers.
    let auth_url = confirm(&app, &link, &ticket).await;
    finish_consent(&app, &auth_url).await;
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &whoami).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "user-1", "{body}");
    let listed = app.get(&format!("/v1/connections?user_id=user-1&mcp_server_id={server}")).await.json();
    assert_eq!(listed["data"][0]["status"], "connected", "{listed}");
    assert_eq!(runtime_status().await, "connected");

    // The tenant erases the user: their token stops reaching the upstream at once (the gateway
    // held it decrypted), and the runtime view forgets the grant.
    let erased = app.delete("/v1/users/user-1").await;
    assert_eq!(erased.status, StatusCode::OK, "{}", erased.text);
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &whoami).await).await;
    assert_eq!(body["error"]["code"], -32042, "asked to connect again: {body}");
    assert_eq!(runtime_status().await, "not_connected");
}

/// A user-grant server whose MCP endpoint is the dual-era `upstream.mjs` and whose tokens come
/// from `peers.mjs`'s authorization server (a client registered here, its fields given as
/// configuration; the tokens' audience is the peers' resource, which `upstream.mjs` does not
/// check): the 2026-07-28 era with a user's OAuth grant. Returns the server's id.
async fn oauth_upstream(app: &TestApp, peers: &Peers, upstream: &Upstream) -> String {
    let callback = format!("{}/service/mcp/consent/callback", app.base);
    let registration: Value = reqwest::Client::new()
        .post(format!("{}/reg", peers.issuer))
        .json(&json!({"client_name": "switchboard test", "redirect_uris": [callback], "response_types": ["code"],
            "grant_types": ["authorization_code", "refresh_token"], "token_endpoint_auth_method": "none"}))
        .send()
        .await
        .expect("register")
        .json()
        .await
        .expect("json");
    let client_id = registration["client_id"].as_str().unwrap_or_else(|| panic!("no client: {registration}"));
    let body = json!({"name": "Fixture", "slug": "fixture-v1", "config": {"endpoint": upstream.url, "auth": {
        "type": "oauth_authorization_code_public_pkce", "client_id": client_id,
        "auth_url": format!("{}/auth", peers.issuer), "token_url": format!("{}/token", peers.issuer),
        "resource": peers.mcp_url, "scopes": ["mcp:read"]}}});
    let res = app.post("/v1/mcp-servers", &body).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.id()
}

/// The claims of the JWT in a `Bearer` header value.
fn jwt_claims(authorization: &str) -> Option<Value> {
    let payload = authorization.strip_prefix("Bearer ")?.split('.').nth(1)?;
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).ok()?).ok()
}

/// 2026-07-28 "connect first": a stateless call before consent gets the `InputRequiredResult`
/// with a URL-mode elicitation and a `requestState`, never reaching the upstream; a client
/// without the capability gets an error carrying the URL; the user connects through the URL;
/// the retry with the `requestState` is answered by the upstream with the user's token.
#[tokio::test]
async fn the_2026_era_asks_for_input_then_the_retry_with_the_request_state_goes_through() {
    let peers = Peers::start();
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let server = oauth_upstream(&app, &peers, &upstream).await;
    let agent = app.create_agent("Bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    let before = upstream.seen().await["requests"].clone();
    let modern_before = upstream.seen().await["by_era"]["modern"].as_u64().unwrap_or(0);

    let url_capable = json!({"elicitation": {"url": {}}});
    let echo =
        modern(json!(5), "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}), url_capable.clone());
    let res = post_modern(&app, &url, &ticket, &echo).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = rpc_body(res).await;
    let result = &body["result"];
    assert_eq!(result["resultType"], "input_required", "{body}");
    let (_, ask) = result["inputRequests"].as_object().and_then(|m| m.iter().next()).expect("an input request");
    assert_eq!(ask["method"], "elicitation/create", "{body}");
    assert_eq!(ask["params"]["mode"], "url", "{body}");
    let link = ask["params"]["url"].as_str().expect("url").to_owned();
    assert!(link.starts_with(&format!("{}/connect/", app.base)) && !link.contains("user-1"), "{link}");
    let state = result["requestState"].as_str().expect("requestState").to_owned();

    // A client that cannot open URLs is told the URL in the error.
    let plain = modern(json!(6), "tools/call", json!({"name": "echo", "arguments": {"text": "hi"}}), json!({}));
    let res = post_modern(&app, &url, &ticket, &plain).await;
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let body = rpc_body(res).await;
    assert_eq!(body["error"]["code"], -32021, "{body}");
    let told = body["error"]["data"]["url"].as_str().expect("url");
    assert!(told.starts_with(&format!("{}/connect/", app.base)), "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains(told)), "the message carries the URL: {body}");
    assert_eq!(upstream.seen().await["requests"], before, "nothing reached the upstream before consent");

    let auth_url = confirm(&app, &link, &ticket).await;
    finish_consent(&app, &auth_url).await;

    // A forged state is refused; the retry with the real one is answered by the upstream.
    let retry = |state: &str| {
        let mut r = echo.clone();
        r["params"]["requestState"] = json!(state);
        r["params"]["inputResponses"] = json!({"connect": {"action": "accept"}});
        r
    };
    let body = rpc_body(post_modern(&app, &url, &ticket, &retry(&format!("{state}x"))).await).await;
    assert_eq!(
        (body["error"]["code"].as_i64(), body["error"]["message"].as_str()),
        (Some(-32602), Some("Invalid requestState")),
        "{body}"
    );
    let res = post_modern(&app, &url, &ticket, &retry(&state)).await;
    assert_eq!(res.status(), StatusCode::OK);
    let body = rpc_body(res).await;
    assert_eq!(body["result"]["content"][0]["text"], "hi", "{body}");
    let seen = upstream.seen().await;
    assert_eq!(seen["by_era"]["modern"].as_u64(), Some(modern_before + 1), "one call reached the upstream: {seen}");
    let presented: Vec<Value> = seen["authorization"]
        .as_array()
        .expect("authorization")
        .iter()
        .filter_map(|a| a.as_str().and_then(jwt_claims))
        .collect();
    assert!(
        presented.iter().any(|c| c["sub"] == "user-1" && c["aud"] == peers.mcp_url.as_str()),
        "the user's token: {seen}"
    );
}

/// A gateway session (started before the user connected) ended with DELETE: the upstream
/// session behind it ends, and the id is not found afterwards.
#[tokio::test]

async fn a_deleted_gateway_session_is_ended_upstream_and_gone() {
    let peers = Peers::start();
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let server = oauth_upstream(&app, &peers, &upstream).await;
    let agent = app.create_agent("Bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    let session = url_capable_session(&app, &url, &ticket).await;
    assert!(session.starts_with("sbs_"), "a gateway session: {session}");
    connect(&app, &ticket, &agent, &server).await;
    let echo = call(json!(2), "echo", json!({"text": "before"}));
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &echo).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "before", "{body}");

    let deletes = |s: &Value| s["by_http"]["DELETE"].as_u64().unwrap_or(0);
    let before = deletes(&upstream.seen().await);
    let res = on_session(&app, Method::DELETE, &url, &ticket, &session).await;
    assert!(res.status().is_success(), "{}", res.status());
    assert_eq!(deletes(&upstream.seen().await), before + 1, "the DELETE reached the upstream");
    let res = mcp(&app, &url, Some(&ticket), Some(&session), &echo).await;
    assert_eq!(
        res.status(),
        StatusCode::NOT_FOUND,
        "a POST on the ended session: {}",
        res.text().await.unwrap_or_default()
    );
}

/// "Connect first" with the URL opened in a real browser: the call gets the URL elicitation,
/// the browser opens Switchboard's connect page, the user's app confirms and sends the browser
/// to the provider, where the user signs in and approves; the session's stream announces the
/// completion, and the retried call goes through.
#[tokio::test]
async fn connect_first_completes_in_a_real_browser_and_the_retried_call_succeeds() {
    let peers = Peers::start_with(&[("LOGIN_PAGE", "1")]);
    let app = local_app().await;
    let body = json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce"}}});
    let server = app.post("/v1/mcp-servers", &body).await.id();
    let agent = app.create_agent("Support bot").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let ticket = ticket(&app, "user-1", &[&agent]).await;
    let session = url_capable_session(&app, &url, &ticket).await;
    let whoami = call(json!(2), "whoami", json!({}));
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &whoami).await).await;
    assert_eq!(body["error"]["code"], -32042, "{body}");
    let elicitation = &body["error"]["data"]["elicitations"][0];
    let link = elicitation["url"].as_str().expect("url").to_owned();
    let elicitation_id = elicitation["elicitationId"].as_str().expect("elicitationId").to_owned();
    let res = on_session(&app, Method::GET, &url, &ticket, &session).await;
    assert_eq!(res.status(), StatusCode::OK);
    let completion = tokio::spawn(async move {
        Events::new(res).until(Duration::from_secs(60), method_is("notifications/elicitation/complete")).await
    });

    let browser = Browser::start().await;
    browser.goto(&link).await;
    browser.wait_for_text("Connect from your app").await;
    browser.screenshot("gateway-connect-page.png").await;
    let auth_url = confirm(&app, &link, &ticket).await;
    browser.goto(&auth_url).await;
    browser.wait_for_path("/interaction/").await;
    browser.type_into("#login", "user-1").await;
    browser.type_into("#password", "pass").await;
    browser.click("#approve").await;
    browser.wait_for_path("/service/mcp/consent/callback").await;
    browser.wait_for_text("Peer MCP is now connected for Support bot").await;
    browser.screenshot("gateway-connected.png").await;
    browser.quit().await;

    let events = tokio::time::timeout(Duration::from_secs(10), completion).await.expect("in time").expect("task");
    let note = &events.last().expect("note").data;
    assert_eq!(note["params"]["elicitationId"], elicitation_id.as_str(), "{note}");
    let body = rpc_body(mcp(&app, &url, Some(&ticket), Some(&session), &whoami).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "user-1", "{body}");
}

/// A client-credentials token endpoint that issues `cc-token` and counts its requests (the
/// `peers.mjs` authorization server has no client-credentials grant).
fn token_endpoint(issued: Arc<AtomicUsize>) -> String {
    use actix_web::{App, HttpResponse, HttpServer, web};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/token", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let issued = issued.clone();
        App::new().route(
            "/token",
            web::post().to(move |form: web::Form<std::collections::HashMap<String, String>>| {
                let issued = issued.clone();
                async move {
                    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
                        return HttpResponse::BadRequest().json(json!({"error": "unsupported_grant_type"}));
                    }
                    issued.fetch_add(1, Ordering::SeqCst);
                    HttpResponse::Ok()
                        .json(json!({"access_token": "cc-token", "token_type": "Bearer", "expires_in": 3600}))
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    url
}

/// A client-credentials server's token is fetched once and injected through the gateway (the
/// upstream requires it), and the route's latency histogram is in `/metrics` under the
/// agent's and server's slugs, counting the calls.
#[tokio::test]
async fn client_credentials_reach_the_upstream_and_the_routes_latency_is_in_metrics() {
    let upstream = Upstream::start(&[("REQUIRE_TOKEN", "cc-token")]);
    let app = local_app().await;
    let issued = Arc::new(AtomicUsize::new(0));
    let token_url = token_endpoint(issued.clone());
    let body = json!({"name": "Machine", "slug": "machine-v1", "config": {"endpoint": upstream.url, "auth": {
        "type": "oauth_client_credentials", "client_id": "svc", "client_secret": "s3cret-value-1", "token_url": token_url}}});
    let (_, agent, url) = route(&app, &app.key, body, "Metrics bot", None).await;
    let agent_slug = url.split('/').nth(5).expect("agent segment").to_owned();
    let ticket = ticket(&app, "u1", &[&agent]).await;
    let at_create = issued.load(Ordering::SeqCst);

    let seen = sdk_client(&url, &ticket, &["--call", "echo", "--args", r#"{"text":"machine"}"#]).await;
    assert_eq!(seen["call"]["content"][0]["text"], "machine", "{seen}");
    let echo = modern(json!(2), "tools/call", json!({"name": "echo", "arguments": {"text": "again"}}), json!({}));
    let body = rpc_body(post_modern(&app, &url, &ticket, &echo).await).await;
    assert_eq!(body["result"]["content"][0]["text"], "again", "{body}");
    assert_eq!(upstream.seen().await["authorization"], json!(["Bearer cc-token"]), "only the fetched token");
    assert_eq!(issued.load(Ordering::SeqCst), at_create + 1, "one token for every call");

    let metrics =
        app.client.get(format!("{}/metrics", app.base)).send().await.expect("metrics").text().await.expect("text");
    let ours = |suffix: &str| -> Vec<String> {
        metrics
            .lines()
            .filter(|l| {
                l.starts_with(&format!("switchboard_gateway_request_duration_seconds_{suffix}{{"))
                    && l.contains(&format!(r#"agent="{agent_slug}""#))
                    && l.contains(r#"server="machine-v1""#)
                    && l.contains(r#"method="tools/call""#)
                    && l.contains(r#"outcome="ok""#)
            })
            .map(str::to_owned)
            .collect()
    };
    let count = ours("count");
    assert_eq!(count.len(), 1, "{metrics}");
    assert!(count[0].ends_with(" 2"), "two calls: {}", count[0]);
    let buckets = ours("bucket");
    assert!(buckets.len() > 5, "{metrics}");
    assert!(buckets.iter().any(|l| l.contains(r#"le="+Inf""#) && l.ends_with(" 2")), "{buckets:?}");
    assert_eq!(ours("sum").len(), 1, "{metrics}");
}
