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
