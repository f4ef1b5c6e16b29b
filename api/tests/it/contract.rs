//! The rules the OpenAPI document states, held by the server exactly (schemathesis fuzzes the
//! rest): what each changed rule accepts and refuses, with the field named.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::TestApp;

#[tokio::test]
async fn strings_lists_and_filters_follow_the_document() {
    let app = TestApp::spawn().await;
    // Strings: 1..=max characters, no NUL; surrounding whitespace is trimmed when something is left.
    let res = app.post("/v1/agents", &json!({"name": ""})).await;
    assert!(res.field_errors().contains(&("name".into(), "invalid".into())), "{}", res.text);
    let res = app.post("/v1/agents", &json!({"name": "a\u{0}b"})).await;
    assert!(res.field_errors().contains(&("name".into(), "invalid".into())), "{}", res.text);
    assert_eq!(app.post("/v1/agents", &json!({"name": "  bot  "})).await.json()["name"], "bot");
    let res = app.post("/v1/agents", &json!({"name": "é".repeat(200)})).await;
    assert_eq!(res.status, StatusCode::CREATED, "200 characters, 400 bytes: {}", res.text);
    // A name with nothing to make a slug of still makes a server (slug `server`).
    let res = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "☃", "config": {"endpoint": "https://mcp.example.invalid/mcp", "auth": {"type": "none"}}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.json()["slug"], "server");
    // Auth: the masked form of a secret keeps a stored one; on create there is none to keep.
    let res = app.post("/v1/mcp-servers", &json!({"name": "T", "config": {"endpoint": "https://mcp.example.invalid/mcp", "auth": {"type": "token", "auth_token": {"set": true, "last4": "abcd"}}}})).await;
    assert!(res.field_errors().contains(&("config.auth.auth_token".into(), "invalid".into())), "{}", res.text);
    // Lists: an empty limit, cursor or filter is not "no filter" but a bad value.
    for query in ["limit=", "cursor=", "agent_id=", "user_id=", "status=", "status=sleeping"] {
        let res = app.get(&format!("/v1/connections?{query}")).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {}", res.text);
    }
    assert_eq!(app.get("/v1/issuances?status=sleeping").await.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(app.get("/v1/connections?status=connected").await.status, StatusCode::OK);
    // Settings: return_urls is required (an empty list clears them), never silently wiped.
    for body in [json!({}), json!({"return_urls": null})] {
        let res = app.put("/v1/settings", Some(&body)).await;
        assert!(res.field_errors().contains(&("return_urls".into(), "required".into())), "{body}: {}", res.text);
    }
    assert_eq!(app.put("/v1/settings", Some(&json!({"return_urls": []}))).await.status, StatusCode::OK);
    // Tool names: exactly as given, 1-128 characters, no control character or surrounding space.
    let agent = app.create_agent("bot").await;
    let server = app.get("/v1/mcp-servers").await.json()["data"][0]["id"].as_str().expect("server").to_owned();
    let attach = |tools: serde_json::Value| {
        let path = format!("/v1/agents/{agent}/mcp-servers/{server}");
        let app = &app;
        async move { app.put(&path, Some(&json!({"tools": tools}))).await }
    };
    for bad in [json!([" echo"]), json!(["a\tb"]), json!([""]), json!(["x".repeat(129)])] {
        let res = attach(bad.clone()).await;
        assert!(res.field_errors().contains(&("tools[0]".into(), "invalid".into())), "{bad}: {}", res.text);
    }
    assert!(attach(json!(["é".repeat(128), "db query"])).await.status.is_success());
    // Tickets: whole numbers written as floats are whole numbers; an unknown agent is a 404.
    let res =
        app.post("/v1/session-tickets", &json!({"user_id": "u", "agent_ids": [agent], "expires_in": 600.0})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let ticket = res.json()["ticket"].as_str().expect("ticket").to_owned();
    // Connect takes an object with return_url at most.
    let connect = format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/connect");
    for body in [json!([null]), json!({"return_to": "https://app.example.com"}), json!({"return_url": 7})] {
        let res = app.call(Method::POST, &connect, Some(&ticket), Some(&body)).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}: {}", res.text);
    }
    // Idempotency-Key: visible ASCII only, as the document's pattern says.
    let res = app
        .client
        .post(format!("{}/v1/agents", app.base))
        .bearer_auth(&app.key)
        .header("idempotency-key", "two words")
        .json(&json!({"name": "x"}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
}

/// Every https-URL pattern in the served document is the one the validators apply.
#[tokio::test]
async fn the_documents_url_patterns_are_the_validators() {
    let app = TestApp::spawn().await;
    let doc = app.get("/openapi.json").await.text;
    let mut found = 0;
    for (i, _) in doc.match_indices("\"pattern\":\"^https") {
        let rest = &doc[i + "\"pattern\":".len()..];
        let end = rest[1..].find('"').map(|e| e + 2).expect("end of the pattern");
        let pattern: String = serde_json::from_str(&rest[..end]).expect("a JSON string");
        let pattern = pattern.replace("^https?://", "^https://");
        assert_eq!(pattern, switchboard_domain::validate::HTTPS_URL);
        found += 1;
    }
    assert!(found >= 5, "{found} URL patterns");
}
