use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn agent_crud() {
    let app = TestApp::spawn().await;
    let res = app.post("/v1/agents", &json!({"name": "support-bot", "description": "answers tickets"})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let id = res.id();
    assert_eq!(res.header("location"), Some(format!("/v1/agents/{id}").as_str()));
    assert_eq!(app.get(&format!("/v1/agents/{id}")).await.json()["description"], "answers tickets");

    let res = app.patch(&format!("/v1/agents/{id}"), &json!({"description": null})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["name"], "support-bot");
    assert!(res.json().get("description").is_none());

    assert_eq!(
        app.patch(&format!("/v1/agents/{id}"), &json!({"nme": "typo"})).await.field_errors(),
        vec![("nme".into(), "unknown_field".into())]
    );
    assert_eq!(app.post("/v1/agents", &json!({})).await.field_errors(), vec![("name".into(), "required".into())]);

    let second = app.create_agent("b").await;
    let list = app.get("/v1/agents?limit=1").await.json();
    assert_eq!(list["data"][0]["id"], id.as_str());
    let next = list["next_cursor"].as_str().expect("more");
    let list = app.get(&format!("/v1/agents?limit=1&cursor={next}")).await.json();
    assert_eq!(list["data"][0]["id"], second.as_str());
    assert!(list["next_cursor"].is_null());

    assert_eq!(app.delete(&format!("/v1/agents/{id}")).await.status, StatusCode::NO_CONTENT);
    app.get(&format!("/v1/agents/{id}")).await.problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn attach_list_update_detach() {
    let app = TestApp::spawn().await;
    let agent = app.create_agent("bot").await;
    let linear = app.create_server("Linear").await;
    let github = app.create_server("GitHub").await;

    // No body: every tool.
    let res = app.put(&format!("/v1/agents/{agent}/mcp-servers/{linear}"), None).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert!(res.json()["tools"].is_null());
    assert_eq!(res.json()["slug"], "linear");

    let res = app
        .put(
            &format!("/v1/agents/{agent}/mcp-servers/{github}"),
            Some(&json!({"tools": ["search_issues", "get_issue"]})),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);

    // Attaching again replaces the allow-list.
    let res =
        app.put(&format!("/v1/agents/{agent}/mcp-servers/{github}"), Some(&json!({"tools": ["search_issues"]}))).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["tools"], json!(["search_issues"]));

    let list = app.get(&format!("/v1/agents/{agent}/mcp-servers")).await.json();
    let data = list["data"].as_array().expect("data");
    assert_eq!(data.len(), 2);
    let gh = data.iter().find(|a| a["mcp_server_id"] == github.as_str()).expect("github attached");
    assert_eq!(gh["tools"], json!(["search_issues"]));
    assert_eq!(gh["endpoint"], "https://mcp.example.com/mcp");

    assert_eq!(
        app.put(&format!("/v1/agents/{agent}/mcp-servers/{linear}"), Some(&json!({"tools": "search"})))
            .await
            .field_errors(),
        vec![("tools".into(), "invalid_type".into())]
    );
    assert_eq!(
        app.put(&format!("/v1/agents/{agent}/mcp-servers/{linear}"), Some(&json!({"tools": ["ok", ""]})))
            .await
            .field_errors(),
        vec![("tools[1]".into(), "invalid".into())]
    );
    let missing = uuid::Uuid::now_v7();
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{missing}"), None)
        .await
        .problem(StatusCode::NOT_FOUND, "not_found");

    assert_eq!(app.delete(&format!("/v1/agents/{agent}/mcp-servers/{linear}")).await.status, StatusCode::NO_CONTENT);
    app.delete(&format!("/v1/agents/{agent}/mcp-servers/{linear}")).await.problem(StatusCode::NOT_FOUND, "not_found");

    // Deleting a server detaches it.
    assert_eq!(app.delete(&format!("/v1/mcp-servers/{github}")).await.status, StatusCode::NO_CONTENT);
    assert_eq!(app.get(&format!("/v1/agents/{agent}/mcp-servers")).await.json()["data"], json!([]));
}

#[tokio::test]
async fn agents_have_slugs_unique_per_tenant() {
    let app = TestApp::spawn().await;
    let res = app.post("/v1/agents", &json!({"name": "Support Bot"})).await;
    assert_eq!(res.json()["slug"], "support-bot");
    // The same name again is numbered; an explicit slug that is taken is refused, naming it.
    assert_eq!(app.post("/v1/agents", &json!({"name": "support bot"})).await.json()["slug"], "support-bot-2");
    let taken = app.post("/v1/agents", &json!({"name": "x", "slug": "support-bot"})).await;
    let problem = taken.problem(StatusCode::CONFLICT, "slug_taken");
    assert!(problem["detail"].as_str().is_some_and(|d| d.contains("`support-bot`")), "{problem}");
    assert_eq!(
        app.post("/v1/agents", &json!({"name": "x", "slug": "Not A Slug"})).await.field_errors(),
        vec![("slug".into(), "invalid".into())]
    );
    // A name with nothing to derive from gets `agent`; a slug can be chosen and changed.
    assert_eq!(app.post("/v1/agents", &json!({"name": "日本"})).await.json()["slug"], "agent");
    let id = app.post("/v1/agents", &json!({"name": "triage", "slug": "triage-v1"})).await.id();
    let res = app.patch(&format!("/v1/agents/{id}"), &json!({"description": "kept"})).await;
    assert_eq!(res.json()["slug"], "triage-v1", "a patch without slug keeps it");
    assert_eq!(
        app.patch(&format!("/v1/agents/{id}"), &json!({"slug": null})).await.field_errors(),
        vec![("slug".into(), "invalid_type".into())]
    );
    let res = app.patch(&format!("/v1/agents/{id}"), &json!({"slug": "triage-v2"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["slug"], "triage-v2");
    // Another tenant may use the same slug.
    let (_, other_key) = app.other_tenant().await;
    let res =
        app.call(reqwest::Method::POST, "/v1/agents", Some(&other_key), Some(&json!({"name": "Support Bot"}))).await;
    assert_eq!(res.json()["slug"], "support-bot");
}

#[tokio::test]
async fn the_gateway_route_is_in_attachment_and_runtime_views_and_its_slugs_hold_while_users_are_connected() {
    let app = TestApp::spawn().await;
    let agent = app.post("/v1/agents", &json!({"name": "Support Bot"})).await.id();
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Linear", "slug": "linear-v1", "config": {"endpoint": "https://mcp.example.com/mcp", "auth": {"type": "none"}}}),
        )
        .await
        .id();
    let res = app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let url = res.json()["gateway_url"].as_str().expect("gateway_url").to_owned();
    let prefix = format!("{}/mcp/", app.base);
    assert!(url.starts_with(&prefix) && url.ends_with("/support-bot/linear-v1"), "{url}");
    assert_eq!(res.json()["agent_slug"], "support-bot");
    let listed = app.get(&format!("/v1/agents/{agent}/mcp-servers")).await.json();
    assert_eq!(listed["data"][0]["gateway_url"], url.as_str());

    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "u1", "agent_ids": [agent]})).await.json()["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
    let runtime =
        app.call(reqwest::Method::GET, &format!("/v1/runtime/agents/{agent}/mcp-servers"), Some(&ticket), None).await;
    assert_eq!(runtime.json()["data"][0]["gateway_url"], url.as_str(), "{}", runtime.text);

    // Nobody connected yet: slugs may change.
    let res = app.patch(&format!("/v1/mcp-servers/{server}"), &json!({"slug": "linear-v9"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    app.patch(&format!("/v1/mcp-servers/{server}"), &json!({"slug": "linear-v1"})).await;

    let connect = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    let res = app.call(reqwest::Method::POST, &connect, Some(&ticket), None).await;
    assert_eq!(res.json()["status"], "connected", "{}", res.text);

    // A connected user's route is a public contract: both slugs hold, and the refusal names the
    // connection; nothing is written.
    let res = app.patch(&format!("/v1/mcp-servers/{server}"), &json!({"slug": "linear-v2", "name": "Renamed"})).await;
    let problem = res.problem(StatusCode::CONFLICT, "slug_in_use");
    let detail = problem["detail"].as_str().expect("detail");
    assert!(detail.contains("`linear-v1`") && detail.contains("user `u1`"), "{detail}");
    assert!(problem["hint"].as_str().is_some_and(|h| h.contains("linear-v2")), "{problem}");
    assert_eq!(app.get(&format!("/v1/mcp-servers/{server}")).await.json()["name"], "Linear");
    app.patch(&format!("/v1/agents/{agent}"), &json!({"slug": "helper"}))
        .await
        .problem(StatusCode::CONFLICT, "slug_in_use");
    // Renaming without touching the slug is fine.
    let res = app.patch(&format!("/v1/agents/{agent}"), &json!({"name": "Support Bot 2"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);

    // Once the user disconnected, the slug is free to change.
    let disconnect = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/disconnect");
    assert_eq!(app.call(reqwest::Method::POST, &disconnect, Some(&ticket), None).await.status, StatusCode::OK);
    let res = app.patch(&format!("/v1/agents/{agent}"), &json!({"slug": "helper"})).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
}

#[tokio::test]
async fn attachments_filter_prompts_and_resources_too() {
    let app = TestApp::spawn().await;
    let agent = app.create_agent("bot").await;
    let server = app.create_server("Docs").await;
    let path = format!("/v1/agents/{agent}/mcp-servers/{server}");
    let res =
        app.put(&path, Some(&json!({"tools": [], "prompts": ["summarize"], "resources": ["file:///README.md"]}))).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let body = res.json();
    assert_eq!(body["tools"], json!([]));
    assert_eq!(body["prompts"], json!(["summarize"]));
    assert_eq!(body["resources"], json!(["file:///README.md"]));
    assert_eq!(
        app.put(&path, Some(&json!({"prompts": "summarize", "resources": [" x"]}))).await.field_errors(),
        vec![("prompts".into(), "invalid_type".into()), ("resources[0]".into(), "invalid".into())]
    );
    // The bad request lost nothing.
    assert_eq!(
        app.get(&format!("/v1/agents/{agent}/mcp-servers")).await.json()["data"][0]["prompts"],
        json!(["summarize"])
    );
}
