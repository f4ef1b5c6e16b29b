use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn changes_are_audited_per_tenant_newest_first() {
    let app = TestApp::spawn().await;
    let server = app.create_server("Audited").await;
    let agent = app.create_agent("bot").await;
    assert_eq!(app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await.status, StatusCode::CREATED);
    app.patch(&format!("/v1/mcp-servers/{server}"), &json!({"name": "Audited 2"})).await;
    assert_eq!(app.delete(&format!("/v1/mcp-servers/{server}")).await.status, StatusCode::NO_CONTENT);

    let all = app.get("/v1/audit-events?limit=100").await.json();
    let actions: Vec<&str> =
        all["data"].as_array().expect("data").iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(
        actions,
        [
            "mcp_server.deleted",
            "mcp_server.updated",
            "agent.mcp_server_attached",
            "agent.created",
            "mcp_server.created",
            "tenant.created"
        ]
    );
    let first = &all["data"][0];
    assert_eq!(first["target_id"], server.as_str());
    assert_eq!(first["data"]["name"], "Audited 2");
    assert!(first["actor"].as_str().is_some_and(|a| a.starts_with("api_key:")));

    let servers_only = app.get("/v1/audit-events?action=mcp_server.").await.json();
    assert_eq!(servers_only["data"].as_array().map(Vec::len), Some(3));
    let about = app.get(&format!("/v1/audit-events?target_id={agent}")).await.json();
    assert_eq!(about["data"].as_array().map(Vec::len), Some(2));

    // Pages walk backwards in time without overlap.
    let page1 = app.get("/v1/audit-events?limit=4").await.json();
    let cursor = page1["next_cursor"].as_str().expect("more");
    let page2 = app.get(&format!("/v1/audit-events?limit=4&cursor={cursor}")).await.json();
    assert_eq!(page2["data"].as_array().map(Vec::len), Some(2));
    assert!(page2["next_cursor"].is_null());

    // Another tenant sees only its own.
    let (_, other) = app.other_tenant().await;
    let theirs = app.call(Method::GET, "/v1/audit-events", Some(&other), None).await.json();
    let actions: Vec<&str> =
        theirs["data"].as_array().expect("data").iter().map(|e| e["action"].as_str().expect("action")).collect();
    assert_eq!(actions, ["tenant.created"]);
}
