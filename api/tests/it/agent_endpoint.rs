//! One endpoint per agent (`/mcp/{tenant}/{agent}`): every attached server as one MCP server,
//! names `<server_slug>__<name>`, each call routed to its upstream; a server the user has not
//! connected listed and answered with "connect first"; one upstream down while the others answer;
//! an upstream that forgot its session re-initialised behind the client's back; and the same
//! endpoint signed into by the SDK's OAuth client. Upstreams are `upstream.mjs` (two of them) and
//! the MCP server of `peers.mjs` (which needs the user's OAuth grant).

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::gateway::{Upstream, initialize, mcp, rpc_body, sdk_client, ticket};
use crate::gateway_e2e::local_app;
use crate::helpers::TestApp;
use crate::peers::Peers;

/// Creates `servers` (name, slug, endpoint, auth) and attaches each to one new agent; the agent
/// id, its endpoint URL and the servers' ids.
async fn agent_with(app: &TestApp, servers: &[(&str, &str, &str, Value)]) -> (String, String, Vec<String>) {
    let agent =
        app.call(Method::POST, "/v1/agents", Some(&app.key), Some(&json!({"name": "Helper", "slug": "helper"}))).await;
    assert_eq!(agent.status, StatusCode::CREATED, "{}", agent.text);
    let agent = agent.id();
    let mut endpoint = String::new();
    let mut ids = Vec::new();
    for (name, slug, url, auth) in servers {
        let body = json!({"name": name, "slug": slug, "config": {"endpoint": url, "auth": auth}});
        let s = app.call(Method::POST, "/v1/mcp-servers", Some(&app.key), Some(&body)).await;
        assert_eq!(s.status, StatusCode::CREATED, "{}", s.text);
        let attached =
            app.call(Method::PUT, &format!("/v1/agents/{agent}/mcp-servers/{}", s.id()), Some(&app.key), None).await;
        assert!(attached.status.is_success(), "{}", attached.text);
        let route = attached.json()["gateway_url"].as_str().expect("gateway_url").to_owned();
        endpoint = route.rsplit_once('/').expect("route").0.to_owned();
        ids.push(s.id());
    }
    (agent, endpoint, ids)
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list["result"][key]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["name"].as_str().unwrap_or_default().to_owned())
        .collect()
}

fn call(id: u64, name: &str) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {"name": name, "arguments": {}}})
}

#[tokio::test]
async fn an_agent_endpoint_merges_its_servers_and_routes_each_call() {
    let app = local_app().await;
    let a = Upstream::start(&[]);
    let b = Upstream::start(&[]);
    let peers = Peers::start();
    let none = json!({"type": "none"});
    let (agent, endpoint, ids) = agent_with(
        &app,
        &[
            ("Alpha", "alpha", &a.url, none.clone()),
            ("Beta", "beta", &b.url, none),
            ("Gamma", "gamma", &peers.mcp_url, json!({"type": "oauth_authorization_code_public_pkce"})),
        ],
    )
    .await;
    let t = ticket(&app, "user-1", &[&agent]).await;

    // The SDK's client sees one server: every tool of both upstreams, prefixed; the server the
    // user has not connected is one `connect` tool; a call goes to the upstream its name names.
    let out = sdk_client(&endpoint, &t, &["--call", "beta__test_simple_text"]).await;
    assert!(out["error"].is_null(), "{out}");
    let tools: Vec<&str> = out["tools"].as_array().expect("tools").iter().filter_map(Value::as_str).collect();
    assert!(tools.contains(&"alpha__test_simple_text") && tools.contains(&"beta__test_simple_text"), "{tools:?}");
    assert!(tools.contains(&"gamma__connect"), "{tools:?}");
    assert!(tools.iter().all(|t| t.starts_with("alpha__") || t.starts_with("beta__") || t.starts_with("gamma__")));
    assert!(out["call"]["content"].to_string().contains("simple text"), "{out}");
    assert!(b.seen().await["by_method"]["tools/call"].as_u64().unwrap_or(0) >= 1, "beta answered the call");

    // Raw: a session of its own, prompts and resources prefixed too, the unconnected server's
    // tool answered with the connect link, an unknown prefix refused like an unknown tool.
    let res = mcp(&app, &endpoint, Some(&t), None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::OK);
    let session = res.headers()["mcp-session-id"].to_str().expect("session").to_owned();
    assert!(session.starts_with("sba_"), "{session}");
    let init = rpc_body(res).await;
    assert_eq!(init["result"]["serverInfo"]["name"], "Helper");
    let prompts = rpc_body(
        mcp(&app, &endpoint, Some(&t), Some(&session), &json!({"jsonrpc": "2.0", "id": 2, "method": "prompts/list"}))
            .await,
    )
    .await;
    assert!(
        names(&prompts, "prompts").iter().all(|n| n.starts_with("alpha__") || n.starts_with("beta__")),
        "{prompts}"
    );
    let resources = rpc_body(
        mcp(&app, &endpoint, Some(&t), Some(&session), &json!({"jsonrpc": "2.0", "id": 3, "method": "resources/list"}))
            .await,
    )
    .await;
    let uri = resources["result"]["resources"][0]["uri"].as_str().expect("a resource").to_owned();
    assert!(uri.starts_with("switchboard://alpha/") || uri.starts_with("switchboard://beta/"), "{uri}");
    let read = rpc_body(
        mcp(
            &app,
            &endpoint,
            Some(&t),
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": 4, "method": "resources/read", "params": {"uri": uri}}),
        )
        .await,
    )
    .await;
    assert!(read["result"]["contents"].is_array(), "{read}");
    let connect = rpc_body(mcp(&app, &endpoint, Some(&t), Some(&session), &call(5, "gamma__connect")).await).await;
    assert!(connect.to_string().contains("/connect/sbx_"), "{connect}");
    let unknown = rpc_body(mcp(&app, &endpoint, Some(&t), Some(&session), &call(6, "delta__anything")).await).await;
    assert_eq!(unknown["error"]["code"], -32602, "{unknown}");

    // The user connects Gamma: its own tools appear, called with this user's token; an upstream
    // that forgets its sessions is initialised again behind the client's back.
    crate::gateway_e2e::connect(&app, &t, &agent, &ids[2]).await;
    let list = rpc_body(
        mcp(&app, &endpoint, Some(&t), Some(&session), &json!({"jsonrpc": "2.0", "id": 7, "method": "tools/list"}))
            .await,
    )
    .await;
    assert!(names(&list, "tools").contains(&"gamma__whoami".to_owned()), "{list}");
    let whoami = rpc_body(mcp(&app, &endpoint, Some(&t), Some(&session), &call(8, "gamma__whoami")).await).await;
    assert_eq!(whoami["result"]["content"][0]["text"], "user-1", "{whoami}");
    reqwest::Client::new().post(format!("{}/__drop_sessions", peers.issuer)).send().await.expect("drop sessions");
    let again = rpc_body(mcp(&app, &endpoint, Some(&t), Some(&session), &call(9, "gamma__whoami")).await).await;
    assert_eq!(again["result"]["content"][0]["text"], "user-1", "{again}");
    // Another user who has not connected Gamma still sees its tools, and is asked to connect.
    let t2 = ticket(&app, "user-2", &[&agent]).await;
    let s2 = crate::gateway::open_session(&app, &endpoint, &t2).await;
    let list = rpc_body(
        mcp(&app, &endpoint, Some(&t2), Some(&s2), &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"})).await,
    )
    .await;
    assert!(names(&list, "tools").contains(&"gamma__whoami".to_owned()), "{list}");
    let ask = rpc_body(mcp(&app, &endpoint, Some(&t2), Some(&s2), &call(2, "gamma__whoami")).await).await;
    assert!(ask.to_string().contains("/connect/sbx_"), "{ask}");

    // One upstream down: the others still answer, its tools are left out.
    drop(b);
    let list = rpc_body(
        mcp(&app, &endpoint, Some(&t), Some(&session), &json!({"jsonrpc": "2.0", "id": 10, "method": "tools/list"}))
            .await,
    )
    .await;
    let listed = names(&list, "tools");
    assert!(listed.iter().any(|n| n.starts_with("alpha__")), "{list}");
    assert!(!listed.iter().any(|n| n.starts_with("beta__")), "{list}");
    let ok = rpc_body(mcp(&app, &endpoint, Some(&t), Some(&session), &call(11, "alpha__test_simple_text")).await).await;
    assert!(ok["result"]["content"].is_array(), "{ok}");

    // DELETE ends the session: it is then not found.
    let deleted =
        app.client.delete(&endpoint).bearer_auth(&t).header("mcp-session-id", &session).send().await.expect("delete");
    assert_eq!(deleted.status(), StatusCode::NO_CONTENT);
    let gone = mcp(&app, &endpoint, Some(&t), Some(&session), &call(12, "alpha__test_simple_text")).await;
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_ticket_for_another_agent_and_a_route_token_are_refused_at_the_agent_endpoint() {
    let app = local_app().await;
    let a = Upstream::start(&[]);
    let (_, endpoint, _) = agent_with(&app, &[("Alpha", "alpha", &a.url, json!({"type": "none"}))]).await;
    let other = app.call(Method::POST, "/v1/agents", Some(&app.key), Some(&json!({"name": "Other"}))).await.id();
    let t = ticket(&app, "user-1", &[&other]).await;
    let res = mcp(&app, &endpoint, Some(&t), None, &initialize(json!({}))).await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    let bare = mcp(&app, &endpoint, None, None, &initialize(json!({}))).await;
    assert_eq!(bare.status(), StatusCode::UNAUTHORIZED);
    let challenge = bare.headers()["www-authenticate"].to_str().expect("challenge").to_owned();
    assert!(
        challenge
            .ends_with(&format!("/.well-known/oauth-protected-resource{}\"", endpoint.trim_start_matches(&app.base))),
        "{challenge}"
    );
    let prm: Value = app
        .client
        .get(endpoint.replace("/mcp/", "/.well-known/oauth-protected-resource/mcp/"))
        .send()
        .await
        .expect("prm")
        .json()
        .await
        .expect("json");
    assert_eq!(prm["resource"], endpoint);
}

#[tokio::test]
async fn client_setup_gives_the_agent_endpoint_routes_and_snippets() {
    let app = local_app().await;
    let a = Upstream::start(&[]);
    let (agent, endpoint, ids) = agent_with(&app, &[("Alpha", "alpha", &a.url, json!({"type": "none"}))]).await;
    let setup = app.call(Method::GET, &format!("/v1/agents/{agent}/client-setup"), Some(&app.key), None).await;
    assert_eq!(setup.status, StatusCode::OK, "{}", setup.text);
    let setup = setup.json();
    assert_eq!(setup["agent_endpoint"], endpoint);
    assert_eq!(setup["routes"][0]["mcp_server_id"], ids[0]);
    assert_eq!(setup["routes"][0]["url"], format!("{endpoint}/alpha"));
    assert_eq!(setup["sign_in"], false);
    let cursor =
        setup["snippets"].as_array().expect("snippets").iter().find(|s| s["client"] == "cursor").expect("cursor");
    let config: Value = serde_json::from_str(cursor["content"].as_str().expect("content")).expect("json");
    assert_eq!(config["mcpServers"]["helper"]["url"], endpoint);
    assert_eq!(config["mcpServers"]["helper"]["headers"]["Authorization"], "Bearer <SESSION_TICKET>");
    // Another tenant's agent is not found.
    let (_, other_key) = app.other_tenant().await;
    let theirs = app.call(Method::GET, &format!("/v1/agents/{agent}/client-setup"), Some(&other_key), None).await;
    assert_eq!(theirs.status, StatusCode::NOT_FOUND);
}

/// The agent endpoint in the 2026-07-28 era: no session, `server/discover` answered here, lists
/// merged with the era's result fields, and a call sent upstream with the upstream's name in both
/// the body and `Mcp-Name` (the upstream checks they agree).
#[tokio::test]
async fn the_agent_endpoint_serves_2026_07_28_requests() {
    use crate::gateway_e2e::{modern, post_modern};
    let app = local_app().await;
    let a = Upstream::start(&[]);
    let b = Upstream::start(&[]);
    let none = json!({"type": "none"});
    let (agent, endpoint, _) =
        agent_with(&app, &[("Alpha", "alpha", &a.url, none.clone()), ("Beta", "beta", &b.url, none)]).await;
    let t = ticket(&app, "user-1", &[&agent]).await;
    let caps = json!({});
    let discover =
        post_modern(&app, &endpoint, &t, &modern(json!(1), "server/discover", json!({}), caps.clone())).await;
    assert_eq!(discover.status(), StatusCode::OK);
    assert!(discover.headers().get("mcp-session-id").is_none(), "no session in this era");
    let discover = rpc_body(discover).await;
    assert_eq!(discover["result"]["supportedVersions"], json!(["2026-07-28"]), "{discover}");
    let list =
        rpc_body(post_modern(&app, &endpoint, &t, &modern(json!(2), "tools/list", json!({}), caps.clone())).await)
            .await;
    assert_eq!(list["result"]["resultType"], "complete", "{list}");
    assert_eq!(list["result"]["cacheScope"], "private", "{list}");
    let tools = names(&list, "tools");
    assert!(
        tools.contains(&"alpha__test_simple_text".to_owned()) && tools.contains(&"beta__test_simple_text".to_owned()),
        "{list}"
    );
    let called = post_modern(
        &app,
        &endpoint,
        &t,
        &modern(json!(3), "tools/call", json!({"name": "beta__test_simple_text", "arguments": {}}), caps),
    )
    .await;
    assert_eq!(called.status(), StatusCode::OK);
    let called = rpc_body(called).await;
    assert!(called["result"]["content"].to_string().contains("simple text"), "{called}");
    assert_eq!(b.seen().await["by_era"]["modern"].as_u64().map(|n| n >= 2), Some(true), "beta saw modern requests");
}
