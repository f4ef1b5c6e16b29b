//! Troubleshooting as data, from real traffic: each failure the gateway sees carries its finding
//! code (`error.data.code` on the JSON-RPC error, `data.code` on the refusal's audit event, the
//! `finding` of a `ticket_scope` 403), is counted in the server's health by that code — across
//! instances — and comes back from `diagnose` with the last hour's figures; the cross-tenant
//! comparison marks the odd tenant out, and `switchboard doctor` / `switchboard admin compare`
//! print both. The upstream is `tests/peers/upstream.mjs` (tools `echo` and `slow`).

use std::process::Command;
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::gateway::{Upstream, initialize, mcp, ticket};
use crate::gateway_e2e::{local_app, route};
use crate::helpers::{Options, TestApp};

const MODERN: &str = "2026-07-28";

/// A route to `upstream` (auth `none`) through a new agent, with an optional `tools` allow-list.
async fn fixture_route(app: &TestApp, upstream: &Upstream, tools: Option<&[&str]>) -> (String, String, String) {
    let body = json!({"name": "Fixture", "slug": "fixture-v1", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}});
    route(app, &app.key, body, "Bot", tools.map(|t| json!({"tools": t}))).await
}

/// A stateless 2026-07-28 `tools/call` of `tool` through `url`: the HTTP status and the JSON-RPC
/// answer (from a JSON or an SSE body), or the body itself when it is a problem document.
async fn call_tool(app: &TestApp, url: &str, ticket: &str, tool: &str, args: Value) -> (StatusCode, Value, String) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": tool, "arguments": args,
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}}}});
    let res = app
        .client
        .post(url)
        .bearer_auth(ticket)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", tool)
        .json(&body)
        .send()
        .await
        .expect("gateway");
    let status = res.status();
    let kind = res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let text = res.text().await.expect("body");
    let value = serde_json::from_str::<Value>(&text).unwrap_or_else(|_| {
        text.lines()
            .filter_map(|l| l.strip_prefix("data:"))
            .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .find(|v| v.get("id").is_some())
            .unwrap_or_else(|| panic!("no JSON-RPC answer ({status}, {kind}): {text}"))
    });
    (status, value, text)
}

/// Asserts a successful `echo` of `text`.
async fn echo_ok(app: &TestApp, url: &str, ticket: &str, text: &str) {
    let (status, body, _) = call_tool(app, url, ticket, "echo", json!({"text": text})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["result"]["content"][0]["text"], text, "{body}");
}

async fn health(app: &TestApp, server: &str) -> Value {
    let res = app.get(&format!("/v1/mcp-servers/{server}/health")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.json()
}

async fn diagnose(app: &TestApp, server: &str) -> Value {
    let res = app.post(&format!("/v1/mcp-servers/{server}/diagnose"), &json!({})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.json()
}

/// The finding of `code` in a diagnosis (or a runtime check), exactly one.
#[track_caller]
fn finding<'a>(diagnosis: &'a Value, code: &str) -> &'a Value {
    let all: Vec<&Value> =
        diagnosis["findings"].as_array().expect("findings").iter().filter(|f| f["code"] == code).collect();
    assert_eq!(all.len(), 1, "one `{code}` finding: {diagnosis:#}");
    all[0]
}

/// The newest audit event of `action`, once the background write landed.
async fn audited(app: &TestApp, action: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let events = app.get(&format!("/v1/audit-events?action={action}")).await.json();
        if let Some(e) = events["data"].as_array().and_then(|d| d.iter().find(|e| e["action"] == action)).cloned() {
            return e;
        }
        assert!(Instant::now() < deadline, "no `{action}` audit event: {events}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `outcomes` of a health window as (outcome, count) pairs.
fn outcomes(window: &Value) -> Vec<(String, u64)> {
    window["outcomes"]
        .as_object()
        .expect("outcomes")
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().expect("count")))
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
}

/// A server with auth `none` at `endpoint` (on loopback): its id.
async fn none_server(app: &TestApp, name: &str, endpoint: &str) -> String {
    let res = app
        .post("/v1/mcp-servers", &json!({"name": name, "config": {"endpoint": endpoint, "auth": {"type": "none"}}}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    res.id()
}

/// Narrows `ticket` through the API.
async fn narrow(app: &TestApp, ticket: &str, narrowing: Value) -> String {
    let mut body = narrowing;
    body["ticket"] = json!(ticket);
    let res = app.post("/v1/session-tickets/attenuate", &body).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    res.json()["ticket"].as_str().expect("ticket").to_owned()
}

#[tokio::test]
async fn a_tool_outside_the_allow_list_is_coded_audited_counted_and_diagnosed() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (server, agent, url) = fixture_route(&app, &upstream, Some(&["echo"])).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;
    echo_ok(&app, &url, &ticket, "one").await;
    echo_ok(&app, &url, &ticket, "two").await;

    let before = upstream.seen().await["by_method"]["tools/call"].as_u64();
    let (status, body, _) = call_tool(&app, &url, &ticket, "slow", json!({"ms": 1})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(body["error"]["data"]["code"], "tool_not_allowed", "{body}");
    assert_eq!(upstream.seen().await["by_method"]["tools/call"].as_u64(), before, "the upstream never saw it");

    let event = audited(&app, "gateway.not_allowed").await;
    assert_eq!(event["data"]["code"], "tool_not_allowed", "{event}");
    assert_eq!(event["data"]["name"], "slow", "{event}");
    assert_eq!(event["target_id"], server.as_str(), "{event}");

    let h = health(&app, &server).await;
    let hour = &h["last_hour"];
    assert_eq!(hour["calls"], 3, "{h:#}");
    assert_eq!(outcomes(hour), pairs(&[("ok", 2), ("tool_not_allowed", 1)]), "{h:#}");
    assert_eq!(hour["by_source"]["gateway"]["calls"], 3, "{h:#}");
    assert_eq!(hour["timeouts"], 0, "{h:#}");
    // Counted, but not a failure of the server: the agent's own refusal.
    assert_eq!(hour["error_rate"], 0.0, "{h:#}");
    assert_eq!(h["last_day"]["calls"], 3, "{h:#}");
    let last = &h["last_failures"];
    assert_eq!(last.as_array().map(Vec::len), Some(1), "{h:#}");
    assert_eq!(last[0]["code"], "tool_not_allowed", "{h:#}");
    assert_eq!(last[0]["source"], "gateway", "{h:#}");
    assert_eq!(last[0]["count"], 1, "{h:#}");
    assert!(last[0]["detail"].as_str().is_some_and(|d| d.contains("slow")), "what it said: {h:#}");

    let d = diagnose(&app, &server).await;
    let f = finding(&d, "tool_not_allowed");
    assert_eq!(f["severity"], "warning", "{f:#}");
    assert_eq!(f["evidence"]["last_hour"]["failures"], 1, "{f:#}");
    assert_eq!(f["evidence"]["last_hour"]["calls"], 3, "{f:#}");
    assert!(f["fix"].as_str().is_some_and(|x| x.contains("PUT /v1/agents/")), "{f:#}");
    assert!(!d.to_string().contains(&ticket), "{d}");
}

#[tokio::test]
async fn a_call_over_a_delegated_cap_is_coded_audited_and_counted() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (server, agent, url) = fixture_route(&app, &upstream, None).await;
    let root = ticket(&app, "u1", &[&agent]).await;
    let capped = narrow(&app, &root, json!({"caps": [{"tool": "echo", "argument": "max_rows", "max": 10}]})).await;

    let (status, body, _) = call_tool(&app, &url, &capped, "echo", json!({"text": "q", "max_rows": 10})).await;
    assert_eq!((status, body["result"]["content"][0]["text"].as_str()), (StatusCode::OK, Some("q")), "{body}");
    let before = upstream.seen().await["by_method"]["tools/call"].as_u64();
    let (status, body, _) = call_tool(&app, &url, &capped, "echo", json!({"text": "q", "max_rows": 50})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["error"]["code"], -32602, "{body}");
    assert_eq!(body["error"]["data"]["code"], "argument_limit", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("max_rows")), "{body}");
    assert_eq!(upstream.seen().await["by_method"]["tools/call"].as_u64(), before, "the upstream never saw it");

    let event = audited(&app, "gateway.argument_limit").await;
    assert_eq!(event["data"]["code"], "argument_limit", "{event}");
    assert_eq!(event["data"]["tool"], "echo", "{event}");
    assert_eq!(event["data"]["delegation_depth"], 1, "{event}");

    let h = health(&app, &server).await;
    assert_eq!(h["last_hour"]["calls"], 2, "{h:#}");
    assert_eq!(outcomes(&h["last_hour"]), pairs(&[("argument_limit", 1), ("ok", 1)]), "{h:#}");
    assert_eq!(h["last_failures"][0]["code"], "argument_limit", "{h:#}");
    let d = diagnose(&app, &server).await;
    let f = finding(&d, "argument_limit");
    assert_eq!((f["severity"].as_str(), f["evidence"]["last_hour"]["failures"].as_u64()), (Some("warning"), Some(1)));
}

#[tokio::test]
async fn a_narrowed_ticket_refused_by_the_gateway_says_which_block_and_what_it_covers() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (server, agent, url) = fixture_route(&app, &upstream, None).await;
    let other_server = none_server(&app, "Elsewhere", &format!("{}/elsewhere", upstream.url)).await;
    let root = ticket(&app, "u1", &[&agent]).await;

    // Narrowed to `echo`: a call of `slow` is refused, naming block 1 and what it covers.
    let echo_only = narrow(&app, &root, json!({"tools": ["echo"]})).await;
    echo_ok(&app, &url, &echo_only, "fine").await;
    let (status, body, text) = call_tool(&app, &url, &echo_only, "slow", json!({"ms": 1})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    assert_eq!(body["code"], "ticket_scope", "{body:#}");
    assert_eq!(body["status"], 403, "{body:#}");
    let f = &body["finding"];
    assert_eq!(f["code"], "ticket_scope", "{body:#}");
    assert_eq!(f["severity"], "error", "{body:#}");
    let failed = f["evidence"]["failed_checks"].as_array().expect("failed_checks");
    assert!(!failed.is_empty(), "{body:#}");
    assert_eq!(failed[0]["block"], 1, "the narrowing block: {body:#}");
    assert!(f["detail"].as_str().is_some_and(|d| d.contains("block 1")), "{body:#}");
    assert_eq!(f["evidence"]["ticket_covers"]["tools"], json!(["echo"]), "{body:#}");
    assert_eq!(f["evidence"]["requested"]["tool"], "slow", "{body:#}");
    assert_eq!(body["hint"], f["fix"], "{body:#}");
    assert!(!text.contains(&echo_only) && !text.contains(&root), "the ticket is never echoed: {text}");

    // Narrowed to another server: refused on this one, naming block 1 and the server it covers.
    let elsewhere = narrow(&app, &root, json!({"servers": [other_server]})).await;
    let (status, body, text) = call_tool(&app, &url, &elsewhere, "echo", json!({"text": "x"})).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{text}");
    let f = &body["finding"];
    assert_eq!(f["code"], "ticket_scope", "{body:#}");
    assert_eq!(f["evidence"]["failed_checks"][0]["block"], 1, "{body:#}");
    assert_eq!(f["evidence"]["ticket_covers"]["servers"], json!([other_server]), "{body:#}");
    assert_eq!(f["evidence"]["requested"]["server"], server.as_str(), "{body:#}");
    assert!(!text.contains(&elsewhere), "{text}");

    // Audited with the code, counted in the server's health.
    let event = audited(&app, "gateway.ticket_scope").await;
    assert_eq!(event["data"]["code"], "ticket_scope", "{event}");
    assert!(event["data"]["evidence"]["failed_checks"].as_array().is_some_and(|c| !c.is_empty()), "{event}");
    let h = health(&app, &server).await;
    assert_eq!(outcomes(&h["last_hour"]), pairs(&[("ok", 1), ("ticket_scope", 2)]), "{h:#}");
}

#[tokio::test]
async fn the_runtime_plane_explains_a_ticket_minted_for_another_agent() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (server, agent, _) = fixture_route(&app, &upstream, None).await;
    let other_agent = app.create_agent("Someone else").await;
    let foreign = ticket(&app, "u1", &[&other_agent]).await;

    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"), Some(&foreign), None)
        .await;
    let body = res.problem(StatusCode::FORBIDDEN, "ticket_scope");
    let f = &body["finding"];
    assert_eq!(f["code"], "ticket_scope", "{body:#}");
    let detail = f["detail"].as_str().expect("detail");
    assert!(detail.contains("does not name this agent"), "{detail}");
    assert!(f["evidence"]["failed_checks"].as_array().is_some_and(|c| !c.is_empty()), "{body:#}");
    assert_eq!(f["evidence"]["requested"]["agent"], agent.as_str(), "{body:#}");
    assert_eq!(f["evidence"]["ticket_covers"]["agents"], json!([other_agent]), "{body:#}");
    assert!(!res.text.contains(&foreign), "the ticket is never echoed: {}", res.text);

    // The right agent's ticket connects (a `none` server needs no consent).
    let own = ticket(&app, "u1", &[&agent]).await;
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"), Some(&own), None)
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

#[tokio::test]
async fn a_slow_upstream_is_an_upstream_timeout_for_the_client_the_health_and_diagnose() {
    // The gateway waits for an upstream's answer to begin, and between its messages, for one
    // second less than the request deadline: 2 s here.
    let upstream = Upstream::start(&[]);
    let app = TestApp::spawn_with(Options {
        allow_private_networks: true,
        request_timeout: Some(Duration::from_secs(3)),
        ..Options::default()
    })
    .await;
    let (server, agent, url) = fixture_route(&app, &upstream, None).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;

    // 2026-07-28, answered as JSON: nothing arrives before the answer would.
    let started = Instant::now();
    let (status, body, _) = call_tool(&app, &url, &ticket, "slow", json!({"ms": 5000})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(body["error"]["data"]["code"], "upstream_timeout", "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|m| m.contains("in time")), "{body}");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());

    // A legacy session: the answer's stream opens at once, then falls silent past the deadline.
    let res = mcp(&app, &url, Some(&ticket), None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = res.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    let _ = res.text().await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(mcp(&app, &url, Some(&ticket), Some(&session), &note).await.status().is_success());
    let call = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "slow", "arguments": {"ms": 5000}}});
    let started = Instant::now();
    let res = mcp(&app, &url, Some(&ticket), Some(&session), &call).await;
    assert!(
        res.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("text/event-stream")),
        "{:?}",
        res.headers()
    );
    let text = tokio::time::timeout(Duration::from_secs(5), res.text()).await.expect("no hang").expect("body");
    let answer = text
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .filter_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
        .find(|v| v.get("id").is_some())
        .unwrap_or_else(|| panic!("no answer in {text}"));
    assert_eq!(answer["id"], 8, "{answer}");
    assert_eq!(answer["error"]["data"]["code"], "upstream_timeout", "{answer}");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());

    // Counted when each answer was known: two timeouts among four requests (initialize and its
    // notification answered).
    let h = health(&app, &server).await;
    let hour = &h["last_hour"];
    assert_eq!(hour["timeouts"], 2, "{h:#}");
    assert_eq!(hour["calls"], 4, "{h:#}");
    assert_eq!(outcomes(hour), pairs(&[("ok", 2), ("upstream_timeout", 2)]), "{h:#}");
    assert_eq!(h["last_failures"][0]["code"], "upstream_timeout", "{h:#}");
    assert!(h["last_failures"][0]["detail"].as_str().is_some_and(|d| d.contains("in time")), "{h:#}");
    // Their latency is the wait (2 s and a little): the slowest calls' bucket is 2,500 ms (or the
    // next one on a busy machine), the median an answered one's.
    let (p50, p95) = (hour["p50_ms"].as_u64().expect("p50"), hour["p95_ms"].as_u64().expect("p95"));
    assert!((2500..=5000).contains(&p95) && p50 < 2500, "{h:#}");

    let d = diagnose(&app, &server).await;
    let f = finding(&d, "upstream_timeout");
    let figures = &f["evidence"]["last_hour"];
    assert_eq!(figures["failures"], 2, "{f:#}");
    assert_eq!(figures["calls"], 4, "{f:#}");
    assert!(figures["last_at"].is_string(), "{f:#}");
    assert!(f["fix"].as_str().is_some_and(|x| x.contains("SWITCHBOARD_GATEWAY_CALL_TIMEOUT_SECS")), "{f:#}");
}

/// A client that leaves a streamed answer before it arrives is still counted — as `cancelled`,
/// not as a failure of the server, and not never.
#[tokio::test]
async fn a_streamed_call_the_client_leaves_is_counted_as_cancelled() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (server, agent, url) = fixture_route(&app, &upstream, None).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;
    let res = mcp(&app, &url, Some(&ticket), None, &initialize(json!({}))).await;
    let session = res.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    let _ = res.text().await;
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert!(mcp(&app, &url, Some(&ticket), Some(&session), &note).await.status().is_success());
    // Progress every 100 ms: the gateway's next writes find the client gone, long before the
    // answer would come.
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": {"name": "slow", "arguments": {"ms": 8000}, "_meta": {"progressToken": "p"}}});
    let mut res = mcp(&app, &url, Some(&ticket), Some(&session), &call).await;
    assert!(res.headers()["content-type"].to_str().is_ok_and(|c| c.starts_with("text/event-stream")));
    assert!(res.chunk().await.expect("a first event").is_some(), "the stream is open");
    drop(res);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let h = health(&app, &server).await;
        if h["last_hour"]["outcomes"]["cancelled"] == 1 {
            assert_eq!(h["last_hour"]["calls"], 3, "{h:#}");
            assert_eq!(h["last_hour"]["error_rate"], 0.0, "a client leaving is not the server failing: {h:#}");
            break;
        }
        assert!(Instant::now() < deadline, "the abandoned call was never counted: {h:#}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_stopped_upstream_is_upstream_unavailable_for_the_client_the_health_and_diagnose() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (server, agent, url) = fixture_route(&app, &upstream, None).await;
    let ticket = ticket(&app, "u1", &[&agent]).await;
    echo_ok(&app, &url, &ticket, "up").await;

    drop(upstream);
    let (status, body, _) = call_tool(&app, &url, &ticket, "echo", json!({"text": "down"})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["id"], 7, "{body}");
    assert_eq!(body["error"]["data"]["code"], "upstream_unavailable", "{body}");

    let h = health(&app, &server).await;
    assert_eq!(h["last_hour"]["calls"], 2, "{h:#}");
    assert_eq!(outcomes(&h["last_hour"]), pairs(&[("ok", 1), ("upstream_unavailable", 1)]), "{h:#}");
    assert_eq!(h["last_hour"]["timeouts"], 0, "{h:#}");
    assert_eq!(h["last_failures"][0]["code"], "upstream_unavailable", "{h:#}");

    // The probe finds it down too: the error, with the traffic's figures.
    let d = diagnose(&app, &server).await;
    let f = finding(&d, "upstream_unavailable");
    assert_eq!(f["severity"], "error", "{f:#}");
    assert_eq!(f["evidence"]["last_hour"]["failures"], 1, "{f:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_through_a_sibling_instance_count_in_the_health_every_instance_reports() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let sibling = app.sibling().await;
    let (server, agent, url) = fixture_route(&app, &upstream, Some(&["echo"])).await;
    let on_sibling = url.replacen(&app.base, &sibling.base, 1);
    let ticket = ticket(&app, "u1", &[&agent]).await;

    echo_ok(&app, &url, &ticket, "here").await;
    for i in 0..3 {
        echo_ok(&app, &on_sibling, &ticket, &format!("there {i}")).await;
    }
    let (_, body, _) = call_tool(&app, &on_sibling, &ticket, "slow", json!({"ms": 1})).await;
    assert_eq!(body["error"]["data"]["code"], "tool_not_allowed", "{body}");
    let done = Instant::now();

    // The first instance writes its own counts when asked; the sibling's arrive with its next
    // flush (every 5 s).
    let deadline = done + Duration::from_secs(12);
    let h = loop {
        let h = health(&app, &server).await;
        if h["last_hour"]["calls"] == 5 {
            break h;
        }
        assert!(h["last_hour"]["calls"].as_u64().is_some_and(|n| n < 5), "never more than were made: {h:#}");
        assert!(Instant::now() < deadline, "the sibling's calls never showed: {h:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(done.elapsed() < Duration::from_secs(11), "{:?}", done.elapsed());
    let hour = &h["last_hour"];
    assert_eq!(outcomes(hour), pairs(&[("ok", 4), ("tool_not_allowed", 1)]), "{h:#}");
    assert_eq!(hour["by_source"]["gateway"]["calls"], 5, "{h:#}");
    let (p50, p95) = (hour["p50_ms"].as_u64(), hour["p95_ms"].as_u64());
    assert!(p50.is_some() && p95.is_some() && p50 <= p95, "{h:#}");
    assert_eq!(h["last_day"]["calls"], 5, "{h:#}");
    // The same report from the sibling.
    let res = app
        .client
        .get(format!("{}/v1/mcp-servers/{server}/health", sibling.base))
        .bearer_auth(&app.key)
        .send()
        .await
        .expect("sibling");
    let there: Value = res.json().await.expect("json");
    assert_eq!(there["last_hour"]["calls"], 5, "{there:#}");
    assert_eq!(there["last_hour"]["outcomes"], hour["outcomes"], "{there:#}");
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

/// Runs the `switchboard` binary off the test's runtime (the app it may talk to runs on it).
async fn switchboard(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_switchboard"));
    command
        .args(args)
        .env_remove("SWITCHBOARD_DATABASE_URL")
        .env_remove("SWITCHBOARD_MASTER_KEY")
        .env_remove("SWITCHBOARD_URL")
        .env_remove("SWITCHBOARD_API_KEY")
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .envs(env.iter().copied());
    tokio::task::spawn_blocking(move || command.output()).await.expect("join").expect("run switchboard")
}

#[tokio::test]
async fn compare_marks_the_tenant_whose_configuration_differs_and_shows_no_secret() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let endpoint = upstream.url.clone();
    let client_id = "switchboard-shared-client-0123";
    let secret = "cc-canary-secret-9f8e7d6c";
    let config = |scopes: &[&str]| {
        json!({"name": "Shared", "config": {"endpoint": endpoint, "auth": {"type": "oauth_client_credentials",
            "client_id": client_id, "client_secret": secret, "token_url": "http://127.0.0.1:9/token", "scopes": scopes}}})
    };
    let (_, second_key) = app.other_tenant().await;
    let (odd_tenant, odd_key) = app.other_tenant().await;
    for (key, scopes) in
        [(&app.key, &["mcp:read"][..]), (&second_key, &["mcp:read"]), (&odd_key, &["mcp:read", "mcp:write"])]
    {
        let res = app.call(Method::POST, "/v1/mcp-servers", Some(key), Some(&config(scopes))).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    }
    // Another endpoint is not compared, even one that starts alike.
    none_server(&app, "Unrelated", &format!("{endpoint}/v2")).await;

    let path = |e: &str| format!("/v1/admin/mcp-servers/compare?endpoint={}", encode(e));
    let res = app.admin(Method::GET, &path(&endpoint), None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let body = res.json();
    assert_eq!(body["endpoint"], endpoint.as_str(), "{body:#}");
    let rows = body["data"].as_array().expect("rows");
    assert_eq!(rows.len(), 3, "one row per tenant: {body:#}");
    let mut tenants: Vec<&str> = rows.iter().map(|r| r["tenant_id"].as_str().expect("tenant")).collect();
    tenants.sort_unstable();
    tenants.dedup();
    assert_eq!(tenants.len(), 3, "{body:#}");
    for r in rows {
        let odd = r["tenant_id"] == odd_tenant.to_string();
        assert_eq!(r["differs"], if odd { json!(["scopes"]) } else { json!([]) }, "{body:#}");
        assert_eq!(r["auth_type"], "oauth_client_credentials", "{r}");
        assert_eq!(r["client_id_prefix"], "switchbo…", "{r}");
        assert_eq!(r["registration_method"], "pre_registered", "{r}");
        let scopes = if odd { json!(["mcp:read", "mcp:write"]) } else { json!(["mcp:read"]) };
        assert_eq!(r["scopes"], scopes, "{r}");
    }
    assert!(!res.text.contains(client_id), "never the whole client id: {}", res.text);
    assert!(!res.text.contains(secret) && !res.text.contains("\"client_secret\""), "no secret: {}", res.text);

    // The same endpoint with a trailing slash is the same endpoint.
    let slash = app.admin(Method::GET, &path(&format!("{endpoint}/")), None).await;
    assert_eq!(slash.status, StatusCode::OK, "{}", slash.text);
    assert_eq!(slash.json()["data"], body["data"]);
    assert_eq!(slash.json()["endpoint"], endpoint.as_str());

    // Not a URL: 422; without the admin token, or with a tenant key: refused.
    let res = app.admin(Method::GET, &path("not a url"), None).await;
    assert_eq!(res.field_errors(), vec![("endpoint".to_owned(), "invalid".to_owned())]);
    app.call(Method::GET, &path(&endpoint), None, None).await.problem(StatusCode::UNAUTHORIZED, "unauthorized");
    app.call(Method::GET, &path(&endpoint), Some(&app.key), None)
        .await
        .problem(StatusCode::FORBIDDEN, "wrong_credential");

    // `switchboard admin compare`, on the database: a table with `*` on the odd value.
    let env =
        [("SWITCHBOARD_DATABASE_URL", app.database_url.as_str()), ("SWITCHBOARD_MASTER_KEY", app.master_key.as_str())];
    let out = switchboard(&["admin", "compare", "--endpoint", &format!("{endpoint}/")], &env).await;
    let table = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{table} {}", String::from_utf8_lossy(&out.stderr));
    assert!(table.contains("3 tenants"), "{table}");
    let line = |field: &str| {
        table
            .lines()
            .find(|l| l.split_whitespace().next() == Some(field))
            .unwrap_or_else(|| panic!("no `{field}` line: {table}"))
            .to_owned()
    };
    let scopes = line("scopes");
    assert_eq!(scopes.matches('*').count(), 1, "{table}");
    assert!(scopes.contains("mcp:read mcp:write*"), "{table}");
    for field in ["auth_type", "issuer", "registration_method", "client_id_prefix", "resource", "failure_codes"] {
        assert!(!line(field).contains('*'), "{field} is alike: {table}");
    }
    assert!(line("client_id_prefix").contains("switchbo…"), "{table}");
    assert!(!table.contains(client_id) && !table.contains(secret), "{table}");

    let out = switchboard(&["admin", "compare", "--endpoint", &endpoint, "--json"], &env).await;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(parsed["endpoint"], endpoint.as_str());
    assert_eq!(parsed["data"], body["data"], "the CLI and the API agree");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains(client_id) && !text.contains(secret), "{text}");
}

#[tokio::test]
async fn doctor_reports_a_healthy_server_a_broken_one_and_a_user_who_never_connected() {
    let upstream = Upstream::start(&[]);
    let app = local_app().await;
    let (healthy, agent, _) = fixture_route(&app, &upstream, None).await;
    let agent_slug = app.get(&format!("/v1/agents/{agent}")).await.json()["slug"].as_str().expect("slug").to_owned();
    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let dead = format!("http://{}/mcp", closed.local_addr().expect("addr"));
    drop(closed);
    let broken = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Broken", "slug": "broken-v1", "config": {"endpoint": dead, "auth": {"type": "none"}}}),
        )
        .await;
    assert_eq!(broken.status, StatusCode::CREATED, "{}", broken.text);
    let env = [("SWITCHBOARD_URL", app.base.as_str()), ("SWITCHBOARD_API_KEY", app.key.as_str())];
    let stdout = |o: &std::process::Output| String::from_utf8_lossy(&o.stdout).into_owned();

    // Healthy: nothing to say, exit 0.
    let out = switchboard(&["doctor", "server", "fixture-v1"], &env).await;
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("no findings"), "{report}");
    assert!(report.contains(&healthy) && report.contains("fixture-v1"), "{report}");

    // Broken: the error with its code and fix, exit 2.
    let out = switchboard(&["doctor", "server", "broken-v1"], &env).await;
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{report} {}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("upstream_unavailable"), "{report}");
    let diagnosis = diagnose(&app, &broken.id()).await;
    let fix = finding(&diagnosis, "upstream_unavailable")["fix"].as_str().expect("fix").to_owned();
    assert!(fix.contains("config.endpoint"), "{fix}");
    assert!(report.contains(&format!("fix: {fix}")), "{report}");
    assert!(!report.contains(&app.key), "{report}");

    let out = switchboard(&["doctor", "server", "broken-v1", "--json"], &env).await;
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    let f = finding(&parsed["diagnosis"], "upstream_unavailable");
    assert_eq!(f["severity"], "error", "{parsed:#}");
    assert_eq!(parsed["diagnosis"]["server_id"], broken.id().as_str(), "{parsed:#}");
    assert!(parsed["health"]["last_hour"].is_object(), "{parsed:#}");

    // A user who never connected: `not_connected` is information, exit 0.
    let out = switchboard(
        &["doctor", "connection", "--user", "never-connected", "--agent", &agent_slug, "--server", "fixture-v1"],
        &env,
    )
    .await;
    let report = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{report} {}", String::from_utf8_lossy(&out.stderr));
    assert!(report.contains("not_connected"), "{report}");
    assert!(report.contains("never-connected"), "{report}");
    let out = switchboard(
        &[
            "doctor",
            "connection",
            "--user",
            "never-connected",
            "--agent",
            &agent_slug,
            "--server",
            "fixture-v1",
            "--json",
        ],
        &env,
    )
    .await;
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let parsed: Value = serde_json::from_slice(&out.stdout).expect("--json prints JSON");
    assert_eq!(finding(&parsed["diagnosis"], "not_connected")["severity"], "info", "{parsed:#}");

    // It could not ask: a wrong key, an unknown server — exit 3, the reason on stderr.
    let wrong = [
        ("SWITCHBOARD_URL", app.base.as_str()),
        ("SWITCHBOARD_API_KEY", "sb_wrong_key_0000000000000000000000000000000"),
    ];
    let out = switchboard(&["doctor", "server", "fixture-v1"], &wrong).await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = switchboard(&["doctor", "server", "no-such-server"], &env).await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
}
