//! Delegation end to end through the gateway: MCPVault's example pipeline (root → worker A →
//! worker B), argument caps at every hop, two tools, depth, a block appended by another
//! language's Biscuit library, forged and foreign-key tickets, and revocation of the root — with
//! the project's upstream behind the route, which must never see a refused call.

use std::process::Command;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::gateway::Upstream;
use crate::helpers::{Options, TestApp};

struct Setup {
    app: TestApp,
    upstream: Upstream,
    url: String,
    agent: String,
    public_key: String,
}

async fn setup() -> Setup {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let upstream = Upstream::start(&[]);
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Database", "slug": "db-v1", "config": {"endpoint": upstream.url, "auth": {"type": "none"}}}),
        )
        .await
        .id();
    let agent = app.create_agent("orchestrator").await;
    let url = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.json()["gateway_url"]
        .as_str()
        .expect("gateway_url")
        .to_owned();
    let public_key =
        app.get("/v1/session-tickets/public-key").await.json()["public_key"].as_str().expect("key").to_owned();
    Setup { app, upstream, url, agent, public_key }
}

impl Setup {
    async fn root(&self, max_depth: u64) -> (String, String) {
        let res = self
            .app
            .post(
                "/v1/session-tickets",
                &json!({"user_id": "user-1", "agent_ids": [self.agent], "subject": "orchestrator", "max_delegation_depth": max_depth}),
            )
            .await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        let body = res.json();
        (body["ticket"].as_str().expect("ticket").to_owned(), body["revocation_id"].as_str().expect("id").to_owned())
    }

    /// Narrows through the API (as an integrator without a Biscuit library would).
    async fn narrow(&self, ticket: &str, narrowing: Value) -> Result<String, String> {
        let mut body = narrowing;
        body["ticket"] = json!(ticket);
        let res = self.app.post("/v1/session-tickets/attenuate", &body).await;
        if res.status == StatusCode::OK {
            Ok(res.json()["ticket"].as_str().expect("ticket").to_owned())
        } else {
            Err(res.text)
        }
    }

    /// A stateless 2026-07-28 `tools/call` (no session to set up first).
    async fn call(&self, ticket: &str, tool: &str, args: Value) -> (StatusCode, Value) {
        let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {"name": tool, "arguments": args,
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28", "io.modelcontextprotocol/clientCapabilities": {}}}});
        let res = self
            .app
            .client
            .post(&self.url)
            .bearer_auth(ticket)
            .header("accept", "application/json, text/event-stream")
            .header("mcp-protocol-version", "2026-07-28")
            .header("mcp-method", "tools/call")
            .header("mcp-name", tool)
            .json(&body)
            .send()
            .await
            .expect("gateway");
        let status = res.status();
        let text = res.text().await.expect("body");
        let value = serde_json::from_str::<Value>(&text).unwrap_or_else(|_| {
            text.lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .filter_map(|d| serde_json::from_str::<Value>(d).ok())
                .find(|v| v.get("id").is_some())
                .unwrap_or(Value::String(text.clone()))
        });
        (status, value)
    }

    /// The `tools/call` requests that reached the upstream.
    async fn calls_seen(&self) -> u64 {
        self.upstream.seen().await["by_method"]["tools/call"].as_u64().unwrap_or(0)
    }
}

fn answered(r: &(StatusCode, Value)) -> bool {
    r.0 == StatusCode::OK && r.1.get("result").is_some()
}

#[tokio::test]
async fn a_pipeline_narrows_offline_and_the_gateway_enforces_every_hop() {
    let s = setup().await;
    let (root, root_revocation) = s.root(2).await;

    // root → worker A (echo only, 30 min) → worker B (15 min).
    let a = s.narrow(&root, json!({"tools": ["echo"], "expires_in": 1800})).await.expect("A");
    let b = s.narrow(&a, json!({"expires_in": 900})).await.expect("B");
    let r = s.call(&b, "echo", json!({"text": "hi"})).await;
    assert!(answered(&r), "{r:?}");

    // B calls another tool: refused before the upstream, audited with who and how deep.
    let before = s.calls_seen().await;
    let r = s.call(&b, "test_simple_text", json!({})).await;
    assert_eq!(r.0, StatusCode::FORBIDDEN, "{r:?}");
    assert_eq!(r.1["code"], "ticket_scope", "{r:?}");
    assert_eq!(s.calls_seen().await, before, "the upstream never saw the refused call");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let event = loop {
        let events = s.app.get("/v1/audit-events?action=gateway.ticket_scope").await.json();
        if let Some(e) = events["data"].as_array().and_then(|d| d.first()).cloned() {
            break e;
        }
        assert!(std::time::Instant::now() < deadline, "no audit event");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(event["data"]["delegation_depth"], 2, "{event}");
    assert_eq!(event["data"]["subject"], "orchestrator", "{event}");
    assert!(event["data"]["ticket_revocation_id"].as_str().is_some_and(|id| id.len() == 128), "{event}");

    // Deeper than the root allows (max 2): refused by the library, and by the gateway when a
    // holder appends the block anyway.
    let err = s.narrow(&b, json!({"tools": ["echo"]})).await.expect_err("depth 3");
    assert!(err.contains("max_delegation_depth is 2"), "{err}");
    let c = switchboard_domain::ticket::attenuate(
        &b,
        &s.public_key,
        r#"check if requested_tool($t), {"echo"}.contains($t);"#,
    )
    .expect("append");
    let r = s.call(&c, "echo", json!({"text": "hi"})).await;
    assert_eq!(r.0, StatusCode::UNAUTHORIZED, "{r:?}");
    assert!(r.1["detail"].as_str().is_some_and(|d| d.contains("attenuated 3 times")), "{r:?}");

    // A TTL longer than the parent's, a tool it does not have: refused with the reason.
    let err = s.narrow(&a, json!({"expires_in": 7200})).await.expect_err("longer life");
    assert!(err.contains("cannot make it last longer"), "{err}");
    let err = s.narrow(&a, json!({"tools": ["test_simple_text"]})).await.expect_err("a tool A lacks");
    assert!(err.contains("does not grant tool `test_simple_text`"), "{err}");

    // Revoking the root kills B (and everything narrowed from it).
    let res = s.app.post("/v1/session-tickets/revoke", &json!({"revocation_id": root_revocation})).await;
    assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
    let r = s.call(&b, "echo", json!({"text": "hi"})).await;
    assert_eq!((r.0, r.1["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("ticket_revoked")), "{r:?}");
}

#[tokio::test]
async fn caps_hold_at_every_hop_against_the_real_arguments() {
    let s = setup().await;
    let (root, _) = s.root(3).await;
    let cap = |max: i64| json!({"caps": [{"tool": "echo", "argument": "max_rows", "max": max}]});
    let a = s.narrow(&root, cap(1000)).await.expect("1000");
    let b = s.narrow(&a, cap(100)).await.expect("100");
    assert!(s.narrow(&b, cap(500)).await.is_err(), "a cap cannot be raised");

    let before = s.calls_seen().await;
    let r = s.call(&b, "echo", json!({"text": "q", "max_rows": 250})).await;
    assert_eq!(r.0, StatusCode::OK);
    assert_eq!(r.1["error"]["code"], -32602, "{r:?}");
    let message = r.1["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("max_rows") && message.contains("100"), "{message}");
    let r = s.call(&b, "echo", json!({"text": "q"})).await;
    assert!(r.1["error"]["message"].as_str().is_some_and(|m| m.contains("is required")), "{r:?}");
    assert_eq!(s.calls_seen().await, before, "refused calls never reach the upstream");
    assert!(answered(&s.call(&b, "echo", json!({"text": "q", "max_rows": 50})).await));
    // The cap concerns its tool only.
    assert!(answered(&s.call(&b, "test_simple_text", json!({})).await));

    // A ticket narrowed to two tools can call both, and only them.
    let two = s.narrow(&root, json!({"tools": ["echo", "test_simple_text"]})).await.expect("two tools");
    assert!(answered(&s.call(&two, "echo", json!({"text": "a"})).await));
    assert!(answered(&s.call(&two, "test_simple_text", json!({})).await));
    assert_eq!(s.call(&two, "test_error_handling", json!({})).await.0, StatusCode::FORBIDDEN);
}

/// biscuit-python (tests/peers/python): a holder outside Switchboard appends a block.
fn python_attenuate(ticket: &str, public_key: &str, block: &str) -> String {
    let dir = std::env::var("SWITCHBOARD_PYPEERS_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/switchboard/pypeers", std::env::var("HOME").unwrap_or_default()));
    let out = Command::new(format!("{dir}/bin/python"))
        .arg(format!("{dir}/biscuit_attenuate.py"))
        .args([ticket, public_key, block])
        .output()
        .unwrap_or_else(|e| {
            panic!("biscuit-python is not installed in {dir} (run tests/peers/python/install.sh): {e}")
        });
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
}

#[tokio::test]
async fn blocks_from_another_library_are_honoured_and_forged_ones_refused() {
    let s = setup().await;
    let (root, _) = s.root(3).await;
    let narrowed = python_attenuate(
        &root,
        &s.public_key,
        r#"check if operation($o), $o != "call" or requested_tool($t), {"echo"}.contains($t);"#,
    );
    assert!(answered(&s.call(&narrowed, "echo", json!({"text": "hi"})).await));
    assert_eq!(s.call(&narrowed, "test_simple_text", json!({})).await.0, StatusCode::FORBIDDEN);
    // A cap written by the other library holds too.
    let capped = python_attenuate(
        &root,
        &s.public_key,
        r#"check if operation($o), $o != "call" or requested_tool($t), $t != "echo" or requested_tool("echo"), argument("max_rows", $v), $v.type() == "integer", $v <= 10;"#,
    );
    assert_eq!(s.call(&capped, "echo", json!({"text": "q", "max_rows": 11})).await.1["error"]["code"], -32602);
    assert!(answered(&s.call(&capped, "echo", json!({"text": "q", "max_rows": 10})).await));

    // Damaged in its last block: its signature fails.
    let mut chars: Vec<char> = narrowed.chars().collect();
    let at = chars.len() - 20;
    chars[at] = if chars[at] == 'A' { 'B' } else { 'A' };
    let damaged: String = chars.into_iter().collect();
    assert_eq!(s.call(&damaged, "echo", json!({"text": "hi"})).await.0, StatusCode::UNAUTHORIZED);

    // Re-signed: the same claims under another key, presented as this tenant's.
    let foreign = switchboard_domain::ticket::SigningKey::generate();
    let claims = switchboard_domain::ticket::TicketClaims {
        user_id: "user-1".into(),
        agents: vec![uuid::Uuid::parse_str(&s.agent).expect("id").into()],
        expires_at: std::time::SystemTime::now() + Duration::from_secs(600),
        subject: None,
        max_delegation_depth: 3,
        audience: None,
    };
    let (forged, _) = switchboard_domain::ticket::mint(s.app.tenant_id, &foreign, &claims).expect("mint");
    let r = s.call(&forged, "echo", json!({"text": "hi"})).await;
    assert_eq!((r.0, r.1["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("invalid_ticket")), "{r:?}");
    // A block spliced from another key's chain onto this tenant's root does not verify either.
    let foreign_narrowed =
        python_attenuate(&forged, &foreign.public_hex(), "check if time($t), $t <= 2100-01-01T00:00:00Z;");
    let spliced = format!("{}{}", &root[..37], &foreign_narrowed[37..]);
    assert_eq!(s.call(&spliced, "echo", json!({"text": "hi"})).await.0, StatusCode::UNAUTHORIZED);

    // Too complex to evaluate: a block with rules is refused before any Datalog runs.
    let rules = python_attenuate(&root, &s.public_key, r#"allowed("x") <- time($t);"#);
    let r = s.call(&rules, "echo", json!({"text": "hi"})).await;
    assert_eq!((r.0, r.1["code"].as_str()), (StatusCode::UNAUTHORIZED, Some("ticket_too_complex")), "{r:?}");
}
