//! The authorization-code flow end to end against the real peers: connect → the provider's
//! consent (auto-approved by the test provider) → the consent callback → a stored, working token.

use std::collections::BTreeMap;
use std::collections::HashMap;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_domain::connection::GrantKey;
use url::Url;

use crate::helpers::{Options, TestApp};
use crate::peers::Peers;

/// Follows the provider's redirects (no cookies needed) until it sends the browser back to
/// Switchboard; returns the callback's query.
pub async fn consent_in_browser(auth_url: &str) -> HashMap<String, String> {
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client");
    let mut url = Url::parse(auth_url).expect("auth url");
    for _ in 0..10 {
        let res = client.get(url.clone()).send().await.expect("provider");
        let location = res
            .headers()
            .get("location")
            .and_then(|l| l.to_str().ok())
            .unwrap_or_else(|| panic!("no redirect from {url}: {}", res.status()))
            .to_owned();
        let next = url.join(&location).expect("location");
        if next.path() == "/service/mcp/consent/callback" {
            return next.query_pairs().into_owned().collect();
        }
        url = next;
    }
    panic!("the provider never redirected back");
}

#[tokio::test]
async fn a_user_connects_through_the_providers_consent() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce"}}}))
        .await
        .id();
    let agent = app.create_agent("Support bot").await;
    assert_eq!(app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.status, StatusCode::CREATED);
    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "user-1", "agent_ids": [agent]})).await.json()["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
    let rt = |method: Method, path: String| {
        let (app, ticket) = (&app, ticket.clone());
        async move { app.call(method, &path, Some(&ticket), None).await }
    };

    let res = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let connect = res.json();
    assert_eq!(connect["status"], "pending_consent");
    let auth_url = connect["auth_url"].as_str().expect("auth_url");
    let q: HashMap<String, String> = Url::parse(auth_url).expect("url").query_pairs().into_owned().collect();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["resource"], peers.mcp_url);
    assert_eq!(q["redirect_uri"], format!("{}/service/mcp/consent/callback", app.base));
    assert_eq!(q["scope"], "mcp:read");
    assert!(q["state"].starts_with(&app.tenant_id.0.simple().to_string()));
    let listed = rt(Method::GET, format!("/v1/runtime/agents/{agent}/mcp-servers")).await.json();
    assert_eq!(listed["data"][0]["connection_status"], "pending_consent");

    // The browser goes to the provider and comes back with a code.
    let back = consent_in_browser(auth_url).await;
    assert_eq!(back.get("iss").map(String::as_str), Some(peers.issuer.as_str()));
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    // Twenty browsers (or an attacker) land on the callback at once: exactly one code exchange.
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let (client, url) = (app.client.clone(), format!("{}/service/mcp/consent/callback?{query}", app.base));
        tasks.push(tokio::spawn(async move {
            let res = client.get(url).send().await.expect("callback");
            let headers = res.headers().clone();
            (res.status(), headers, res.text().await.expect("page"))
        }));
    }
    let mut pages = Vec::new();
    for t in tasks {
        pages.push(t.await.expect("task"));
    }
    let ok: Vec<_> = pages.iter().filter(|(s, _, _)| *s == StatusCode::OK).collect();
    assert_eq!(ok.len(), 1, "exactly one callback completes the flow");
    let (_, headers, page) = ok[0];
    assert_eq!(headers["referrer-policy"], "no-referrer");
    assert!(headers["content-security-policy"].to_str().expect("csp").contains("frame-ancestors 'none'"));
    assert!(page.contains("<strong>Peer MCP</strong> is now connected for <strong>Support bot</strong>"), "{page}");
    assert!(
        pages
            .iter()
            .filter(|(s, _, _)| *s != StatusCode::OK)
            .all(|(s, _, p)| *s == StatusCode::NOT_FOUND && p.contains("expired or was already used"))
    );
    assert_eq!(peers.stats().await["token_grants"]["authorization_code"], 1);

    let listed = rt(Method::GET, format!("/v1/runtime/agents/{agent}/mcp-servers")).await.json();
    let entry: &Value = &listed["data"][0];
    assert_eq!(entry["connection_status"], "connected", "{listed:#}");
    assert!(entry["connected_at"].is_string() && entry["expires_at"].is_string());
    assert_eq!(entry["scopes"], json!(["mcp:read"]));
    // Connecting again is idempotent: the working grant is reported, no new consent is asked for.
    let before = peers.stats().await["authorization_requests"].clone();
    let again = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect")).await.json();
    assert_eq!(again, json!({"status": "connected"}));
    assert_eq!(peers.stats().await["authorization_requests"], before);

    let audit = app.get("/v1/audit-events?action=consent.granted").await.json();
    assert_eq!(audit["data"][0]["actor"], "user:user-1");
    assert_eq!(audit["data"][0]["data"]["scopes"], json!(["mcp:read"]));
    assert_eq!(app.get("/v1/audit-events?action=token.issued").await.json()["data"].as_array().map(Vec::len), Some(1));

    // The stored token is sealed, and works at the MCP server it was issued for.
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "user-1".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    let tokens = app.store().tenant(app.tenant_id).token_set(&key).await.expect("read").expect("tokens");
    assert!(tokens.refresh_token.is_some());
    assert!(!app.dump_database().await.contains(tokens.access_token.expose()));
    let v = switchboard_discovery::mcp::verify(
        app.state.runtime.servers.discoverer().fetcher(),
        &Url::parse(&peers.mcp_url).expect("url"),
        &BTreeMap::new(),
        Some(tokens.access_token.expose()),
        &mut Vec::new(),
    )
    .await;
    assert!(v.ok, "{v:?}");
    assert_eq!(v.tools, ["echo", "whoami"]);

    // `check` calls the server with the stored token; the attachment's allow-list filters tools.
    let res = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check")).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let check = res.json();
    assert_eq!(check["ok"], true, "{check:#}");
    assert_eq!(check["tools"], json!(["echo", "whoami"]));
    assert_eq!(
        app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), Some(&json!({"tools": ["echo"]}))).await.status,
        StatusCode::OK
    );
    assert_eq!(
        rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check")).await.json()["tools"],
        json!(["echo"])
    );

    // Nothing secret reached the logs (captured at TRACE): not the token, the code, the state or the ticket.
    let logs = String::from_utf8_lossy(&crate::helpers::captured_logs().lock().expect("logs")).into_owned();
    assert!(logs.contains("/service/mcp/consent/callback"), "the capture works");
    for (what, secret) in [
        ("access token", tokens.access_token.expose()),
        ("code", back["code"].as_str()),
        ("state", back["state"].as_str()),
        ("ticket", ticket.as_str()),
    ] {
        assert!(!logs.contains(secret), "the {what} reached the logs");
    }
    if let Some(refresh) = &tokens.refresh_token {
        assert!(!logs.contains(refresh.expose()) && !app.dump_database().await.contains(refresh.expose()));
    }

    let issuances = app.get(&format!("/v1/issuances?mcp_server_id={server}")).await.json();
    assert_eq!(issuances["data"][0]["outcome"], "issued");
    assert_eq!(issuances["data"][0]["user_id"], "user-1");
    assert!(!issuances.to_string().contains(tokens.access_token.expose()));

    // Disconnecting makes the grant unusable at once: the token set is gone.
    let res = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/disconnect")).await;
    assert_eq!(res.json()["status"], "revoked");
    assert!(app.store().tenant(app.tenant_id).token_set(&key).await.expect("read").is_none());
    let outcomes: Vec<Value> = app.get(&format!("/v1/issuances?mcp_server_id={server}")).await.json()["data"]
        .as_array()
        .expect("data")
        .iter()
        .map(|i| i["outcome"].clone())
        .collect();
    assert_eq!(outcomes, [json!("revoked"), json!("issued")]);
    let check = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check")).await.json();
    assert_eq!(check["ok"], false);
    assert!(
        check["error"].as_str().is_some_and(|e| e.contains("disconnected this server: call connect again")),
        "{check:#}"
    );
}

#[tokio::test]
async fn bad_callbacks_say_what_happened_and_exchange_nothing() {
    let app = TestApp::spawn().await;
    for (query, needle, status) in [
        ("", "incomplete", StatusCode::BAD_REQUEST),
        ("state=short", "incomplete", StatusCode::BAD_REQUEST),
        // Well formed, but no consent in progress has it.
        (
            &format!("state={}{}&code=x", "0".repeat(32), "a".repeat(40)) as &str,
            "expired or was already used",
            StatusCode::NOT_FOUND,
        ),
        (&format!("state={}{}&code=x", "z".repeat(32), "a".repeat(40)), "not valid", StatusCode::BAD_REQUEST),
        // The 32nd byte inside a multi-byte character (a crafted link once panicked here).
        (&format!("state={}%E2%98%83{}&code=x", "0".repeat(31), "a".repeat(40)), "not valid", StatusCode::BAD_REQUEST),
        (&format!("state={}%F0%9F%92%A9{}", "é".repeat(16), "a".repeat(40)), "not valid", StatusCode::BAD_REQUEST),
    ] {
        let res = app
            .client
            .get(format!("{}/service/mcp/consent/callback?{query}", app.base))
            .send()
            .await
            .expect("callback");
        assert_eq!(res.status(), status, "{query}");
        let page = res.text().await.expect("page");
        assert!(page.contains(needle), "{query}: {page}");
    }
    // Attacker-controlled text is escaped, never rendered.
    let res = app
        .client
        .get(format!("{}/service/mcp/consent/callback?state=<script>alert(1)</script>{}", app.base, "a".repeat(40)))
        .send()
        .await
        .expect("callback");
    assert!(!res.text().await.expect("page").contains("<script>"));
}

#[tokio::test]
async fn servers_without_user_consent_connect_at_once() {
    let app = TestApp::spawn().await;
    let server = app.create_server("Open").await;
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"), Some(&ticket), None)
        .await;
    assert_eq!(res.json(), json!({"status": "connected"}));
    let listed =
        app.call(Method::GET, &format!("/v1/runtime/agents/{agent}/mcp-servers"), Some(&ticket), None).await.json();
    assert_eq!(listed["data"][0]["connection_status"], "connected");
    // A server that is not attached is not found; one outside the ticket is out of scope.
    let other = app.create_server("Other").await;
    app.call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{other}/connect"), Some(&ticket), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let narrowed = switchboard_domain::ticket::attenuate(
        &ticket,
        app.get("/v1/session-tickets/public-key").await.json()["public_key"].as_str().expect("key"),
        &format!(r#"check if requested_server($s), {{"{other}"}}.contains($s)"#),
    )
    .expect("attenuate");
    app.call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"), Some(&narrowed), None)
        .await
        .problem(StatusCode::FORBIDDEN, "ticket_scope");
}

#[tokio::test]
async fn connections_are_listed_revoked_and_kept_apart() {
    let app = TestApp::spawn().await;
    let server = app.create_server("Open").await;
    let (a1, a2) = (app.create_agent("one").await, app.create_agent("two").await);
    for a in [&a1, &a2] {
        app.put(&format!("/v1/agents/{a}/mcp-servers/{server}"), None).await;
    }
    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "alice", "agent_ids": [a1, a2]})).await.json()["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
    for a in [&a1, &a2] {
        let res = app
            .call(Method::POST, &format!("/v1/runtime/agents/{a}/mcp-servers/{server}/connect"), Some(&ticket), None)
            .await;
        assert_eq!(res.json()["status"], "connected");
    }
    let list = app.get("/v1/connections?user_id=alice").await.json();
    assert_eq!(list["data"].as_array().map(Vec::len), Some(2));
    let only_a1 = app.get(&format!("/v1/connections?agent_id={a1}")).await.json();
    assert_eq!(only_a1["data"].as_array().map(Vec::len), Some(1));
    let id = only_a1["data"][0]["id"].as_str().expect("id").to_owned();
    assert_eq!(app.get(&format!("/v1/connections/{id}")).await.json()["status"], "connected");
    app.get("/v1/connections?agent_id=nope").await.field_errors();

    // Another tenant sees nothing and can revoke nothing.
    let (_, other) = app.other_tenant().await;
    app.call(Method::GET, &format!("/v1/connections/{id}"), Some(&other), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    app.call(Method::DELETE, &format!("/v1/connections/{id}"), Some(&other), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");

    // Revoking one grant leaves the other untouched.
    assert_eq!(app.delete(&format!("/v1/connections/{id}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/connections/{id}")).await.json()["status"], "revoked");
    assert_eq!(app.get(&format!("/v1/connections?agent_id={a2}")).await.json()["data"][0]["status"], "connected");

    // The user disconnects the other one from the runtime plane.
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{a2}/mcp-servers/{server}/disconnect"), Some(&ticket), None)
        .await;
    assert_eq!(res.json(), json!({"status": "revoked"}));
    assert_eq!(app.get("/v1/connections?status=revoked").await.json()["data"].as_array().map(Vec::len), Some(2));
    let fresh = app.create_server("Never connected").await;
    app.put(&format!("/v1/agents/{a1}/mcp-servers/{fresh}"), None).await;
    app.call(Method::POST, &format!("/v1/runtime/agents/{a1}/mcp-servers/{fresh}/disconnect"), Some(&ticket), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");
    let audit = app.get("/v1/audit-events?action=connection.revoked").await.json();
    let actors: Vec<&str> =
        audit["data"].as_array().expect("data").iter().map(|e| e["actor"].as_str().expect("actor")).collect();
    assert_eq!(actors.len(), 2);
    assert!(actors.contains(&"user:alice") && actors.iter().any(|a| a.starts_with("api_key:")));
}

#[tokio::test]
async fn insufficient_scope_leads_to_a_step_up_with_the_union_of_scopes() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    // The admin asked for too little: the MCP server needs mcp:read.
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce", "scopes": ["mcp:write"]}}}))
        .await
        .id();
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "user-1", "agent_ids": [agent]})).await.json()["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
    let rt = |method: Method, path: String| {
        let (app, ticket) = (&app, ticket.clone());
        async move { app.call(method, &path, Some(&ticket), None).await }
    };
    let connect_path = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    let complete = |auth_url: String| {
        let app = &app;
        async move {
            let back = consent_in_browser(&auth_url).await;
            let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
            let res = app
                .client
                .get(format!("{}/service/mcp/consent/callback?{query}", app.base))
                .send()
                .await
                .expect("callback");
            let status = res.status();
            let page = res.text().await.unwrap_or_default();
            assert_eq!(status, StatusCode::OK, "{page}");
            page
        }
    };

    let first = rt(Method::POST, connect_path.clone()).await.json();
    let scope_of =
        |u: &str| Url::parse(u).expect("url").query_pairs().find(|(k, _)| k == "scope").map(|(_, v)| v.into_owned());
    assert_eq!(scope_of(first["auth_url"].as_str().expect("url")).as_deref(), Some("mcp:write"));
    complete(first["auth_url"].as_str().expect("url").to_owned()).await;

    let check = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check")).await.json();
    assert_eq!(check["ok"], false);
    assert!(
        check["error"].as_str().is_some_and(|e| e.starts_with("the credentials lack a required scope (403)")),
        "{check}"
    );
    let listed = rt(Method::GET, format!("/v1/runtime/agents/{agent}/mcp-servers")).await.json();
    assert_eq!(listed["data"][0]["connection_status"], "needs_reauth");
    assert_eq!(listed["data"][0]["last_error"]["required_scopes"], json!(["mcp:read"]));

    // The next connect asks for the union of the granted and the required scopes, and this time
    // names an allow-listed return URL.
    let return_url = "https://app.example.com/connected?from=switchboard";
    let res = app.call(Method::POST, &connect_path, Some(&ticket), Some(&json!({"return_url": return_url}))).await;
    assert_eq!(res.field_errors(), vec![("return_url".into(), "not_allowed".into())]);
    let res = app.call(Method::PUT, "/v1/settings", Some(&app.key), Some(&json!({"return_urls": [return_url]}))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    // Exact match only: a prefix or a variant is refused.
    let res = app
        .call(
            Method::POST,
            &connect_path,
            Some(&ticket),
            Some(&json!({"return_url": "https://app.example.com/connected"})),
        )
        .await;
    assert_eq!(res.field_errors(), vec![("return_url".into(), "not_allowed".into())]);
    let second =
        app.call(Method::POST, &connect_path, Some(&ticket), Some(&json!({"return_url": return_url}))).await.json();
    assert_eq!(scope_of(second["auth_url"].as_str().expect("url")).as_deref(), Some("mcp:write mcp:read"));
    let page = complete(second["auth_url"].as_str().expect("url").to_owned()).await;
    assert!(
        page.contains(
            r#"<meta http-equiv="refresh" content="3;url=https://app.example.com/connected?from=switchboard">"#
        ),
        "{page}"
    );
    let check = rt(Method::POST, format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/check")).await.json();
    assert_eq!(check["ok"], true, "{check:#}");
}

#[tokio::test]
async fn return_urls_are_exact_and_validated() {
    let app = TestApp::spawn().await;
    assert_eq!(app.get("/v1/settings").await.json(), json!({"return_urls": []}));
    let cases = [
        (json!({"return_urls": ["https://app.example.com/*"]}), "return_urls[0]", "invalid"),
        (json!({"return_urls": ["http://app.example.com/done"]}), "return_urls[0]", "insecure_url"),
        (json!({"return_urls": ["https://app.example.com/done#x"]}), "return_urls[0]", "invalid_url"),
        (json!({"return_urls": ["javascript:alert(1)"]}), "return_urls[0]", "invalid_url"),
        (json!({"return_urls": "https://app.example.com"}), "return_urls", "invalid"),
        (json!({"return_url": []}), "return_url", "unknown_field"),
    ];
    for (body, field, code) in cases {
        let res = app.call(Method::PUT, "/v1/settings", Some(&app.key), Some(&body)).await;
        assert!(res.field_errors().contains(&(field.to_owned(), code.to_owned())), "{body}: {}", res.text);
    }
    let many: Vec<String> = (0..21).map(|i| format!("https://app.example.com/{i}")).collect();
    app.call(Method::PUT, "/v1/settings", Some(&app.key), Some(&json!({"return_urls": many}))).await.field_errors();
    let ok = app
        .call(
            Method::PUT,
            "/v1/settings",
            Some(&app.key),
            Some(&json!({"return_urls": ["https://app.example.com/done"]})),
        )
        .await;
    assert_eq!(ok.json(), json!({"return_urls": ["https://app.example.com/done"]}));
    assert_eq!(app.get("/v1/settings").await.json(), json!({"return_urls": ["https://app.example.com/done"]}));
    let (_, other) = app.other_tenant().await;
    assert_eq!(app.call(Method::GET, "/v1/settings", Some(&other), None).await.json(), json!({"return_urls": []}));
}

/// Return URLs that real open-redirect bugs were made of (security-reliability.md §6.2 / SEC-C5),
/// against an allow-list holding only `https://app.example.com/done`: none is accepted, and none
/// is stored on a flow (so the consent page can never send a browser there).
#[tokio::test]
async fn open_redirect_corpus_is_refused_at_connect() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}}))
        .await
        .id();
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    app.call(
        Method::PUT,
        "/v1/settings",
        Some(&app.key),
        Some(&json!({"return_urls": ["https://app.example.com/done"]})),
    )
    .await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let connect = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    let corpus = [
        "//evil.com",
        "/\\evil.com",
        "/%09/evil.com",
        "/%0a/evil.com",
        "https://app.example.com.evil.com",
        "https://app.example.com@evil.com",
        "https://app.example.com.evil.com/done",
        "https://evil.com/https://app.example.com/done",
        "https://app.example.com/done/../../evil",
        "https://app.example.com/done/",
        "https://app.example.com/done?next=https://evil.com",
        "https://app.example.com/done#@evil.com",
        "HTTPS://APP.EXAMPLE.COM/done",
        " https://app.example.com/done",
        "https://app.example.com/done\t",
        "javascript:alert(1)",
        "JaVaScRiPt:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "https://app.example.com/done\u{0}",
        "",
    ];
    for target in corpus {
        let res = app.call(Method::POST, &connect, Some(&ticket), Some(&json!({"return_url": target}))).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{target:?} was accepted: {}", res.text);
        assert!(res.field_errors().contains(&("return_url".to_owned(), "not_allowed".to_owned())), "{target:?}");
    }
    // The exact entry is accepted, and the consent page then offers exactly it.
    let res = app
        .call(Method::POST, &connect, Some(&ticket), Some(&json!({"return_url": "https://app.example.com/done"})))
        .await;
    assert_eq!(res.json()["status"], "pending_consent", "{}", res.text);
    let back = consent_in_browser(res.json()["auth_url"].as_str().expect("auth_url")).await;
    let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(back.iter()).finish();
    let page = app
        .client
        .get(format!("{}/service/mcp/consent/callback?{query}", app.base))
        .send()
        .await
        .expect("callback")
        .text()
        .await
        .expect("page");
    assert!(page.contains("https://app.example.com/done"), "{page}");
    assert!(!page.contains("evil"), "{page}");
}

/// A state names its tenant; moving it to another tenant finds nothing there and consumes nothing.
#[tokio::test]
async fn a_state_cannot_be_replayed_in_another_tenant() {
    let peers = Peers::start();
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_public_pkce"}}}))
        .await
        .id();
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let ticket = app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent]})).await.json()["ticket"]
        .as_str()
        .expect("ticket")
        .to_owned();
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"), Some(&ticket), None)
        .await;
    let back = consent_in_browser(res.json()["auth_url"].as_str().expect("auth_url")).await;
    let state = back["state"].clone();
    let (other, _) = app.other_tenant().await;
    let moved = format!("{}{}", other.0.simple(), &state[32..]);
    let callback = |state: String| {
        let mut q = back.clone();
        q.insert("state".into(), state);
        let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(q.iter()).finish();
        let (client, base) = (app.client.clone(), app.base.clone());
        async move {
            let res =
                client.get(format!("{base}/service/mcp/consent/callback?{query}")).send().await.expect("callback");
            (res.status(), res.text().await.expect("page"))
        }
    };
    let (status, page) = callback(moved).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(page.contains("expired or was already used"), "{page}");
    assert_eq!(peers.stats().await["token_requests"], 0, "no code exchange for a state of another tenant");
    let (status, page) = callback(state).await;
    assert_eq!(status, StatusCode::OK, "the real flow is still usable: {page}");
}

/// A flow past its ten minutes is gone: the callback says so and no code is exchanged.
#[tokio::test]
async fn an_expired_flow_exchanges_nothing() {
    let app = TestApp::spawn().await;
    let server = app.create_server("Open").await;
    let agent = app.create_agent("bot").await;
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    let state = format!("{}{}", app.tenant_id.0.simple(), "s".repeat(43));
    let flow = switchboard_domain::connection::AuthFlow {
        key,
        verifier: switchboard_domain::crypto::Secret::new("v".repeat(43)),
        issuer: "https://as.example.com".into(),
        // Nothing listens here: were the code exchanged, the page would say the provider failed.
        token_endpoint: "https://as.example.com/token".into(),
        resource: "https://mcp.example.com/mcp".into(),
        redirect_uri: format!("{}/service/mcp/consent/callback", app.base),
        scopes: vec![],
        return_url: None,
        expires_at: switchboard_domain::clock::now() - chrono::Duration::seconds(1),
    };
    let store = app.store().tenant(app.tenant_id);
    store.create_flow(&flow, &switchboard_domain::crypto::hex_digest(state.as_bytes())).await.expect("flow");
    let res = app
        .client
        .get(format!("{}/service/mcp/consent/callback?state={state}&code=c", app.base))
        .send()
        .await
        .expect("callback");
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.expect("page").contains("expired or was already used"));
}

/// The worker's flow-expiry sweep: expired flows are deleted and their grants, still waiting for a
/// consent that can no longer come, go back to `not_connected`; live flows are left alone.
#[tokio::test]
async fn expired_flows_are_swept_and_their_grants_reset() {
    use switchboard_domain::connection::{AuthFlow, ConnectionStatus};
    let app = TestApp::spawn().await;
    let server = app.create_server("Open").await;
    let agent = app.create_agent("bot").await;
    let store = app.store().tenant(app.tenant_id);
    let key = |user: &str| GrantKey {
        tenant_id: app.tenant_id,
        user_id: user.into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    for (user, life) in [("late", -1), ("waiting", 600)] {
        let flow = AuthFlow {
            key: key(user),
            verifier: switchboard_domain::crypto::Secret::new("v".repeat(43)),
            issuer: "https://as.example.com".into(),
            token_endpoint: "https://as.example.com/token".into(),
            resource: "https://mcp.example.com/mcp".into(),
            redirect_uri: format!("{}/service/mcp/consent/callback", app.base),
            scopes: vec![],
            return_url: None,
            expires_at: switchboard_domain::clock::now() + chrono::Duration::seconds(life),
        };
        store.create_flow(&flow, &switchboard_domain::crypto::hex_digest(user.as_bytes())).await.expect("flow");
        store.set_status(&key(user), ConnectionStatus::PendingConsent, None).await.expect("pending");
    }
    assert_eq!(app.store().queue().sweep_expired_flows(switchboard_domain::clock::now()).await.expect("sweep"), (1, 1));
    let status = |user: &'static str| {
        let app = &app;
        async move {
            app.get(&format!("/v1/connections?user_id={user}")).await.json()["data"][0]["status"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        }
    };
    assert_eq!(status("late").await, "not_connected");
    assert_eq!(status("waiting").await, "pending_consent");
    assert_eq!(
        app.store().queue().sweep_expired_flows(switchboard_domain::clock::now()).await.expect("sweep"),
        (0, 0),
        "idempotent"
    );
}
