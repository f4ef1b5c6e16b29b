//! Canary sweep: secrets planted through the API appear in no response, no log line (captured at
//! TRACE) and no database column in clear.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{TestApp, captured_logs};

#[tokio::test]
async fn canary_secrets_never_leak() {
    let app = TestApp::spawn().await;
    let canary = format!("canary{}", uuid::Uuid::new_v4().simple());
    let token = format!("{canary}-static-token");
    let secret = format!("{canary}-client-secret");
    let rotated = format!("{canary}-rotated-secret");
    let mut responses = Vec::new();

    let res = app.post("/v1/mcp-servers", &json!({"name": "Static", "config": {"endpoint": "https://a.example/mcp", "auth": {"type": "token", "auth_token": token}}})).await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    assert_eq!(res.json()["config"]["auth"]["auth_token"], json!({"set": true, "last4": "oken"}));
    let static_id = res.id();
    responses.push(res.text);

    let res = app
        .post("/v1/mcp-servers", &json!({"name": "Confidential", "config": {"endpoint": "https://b.example/mcp",
            "auth": {"type": "oauth_authorization_code_confidential_pkce", "client_id": "cid", "client_secret": secret}}}))
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let conf_id = res.id();
    responses.push(res.text);

    // A rename keeps the secret; the console sending back the mask keeps it too; then a rotation.
    responses.push(app.patch(&format!("/v1/mcp-servers/{conf_id}"), &json!({"name": "Renamed"})).await.text);
    let masked = app.get(&format!("/v1/mcp-servers/{conf_id}")).await.json()["config"].clone();
    responses.push(app.patch(&format!("/v1/mcp-servers/{conf_id}"), &json!({"config": masked})).await.text);
    let tenant_store = app.store().tenant(app.tenant_id);
    let conf_uuid = uuid::Uuid::parse_str(&conf_id).expect("uuid").into();
    assert_eq!(
        tenant_store.mcp_server_secrets(conf_uuid).await.expect("open").client_secret.map(|s| s.expose().to_owned()),
        Some(secret.clone())
    );
    responses.push(
        app.patch(&format!("/v1/mcp-servers/{conf_id}"), &json!({"config": {"auth": {"client_secret": rotated}}}))
            .await
            .text,
    );
    assert_eq!(
        tenant_store.mcp_server_secrets(conf_uuid).await.expect("open").client_secret.map(|s| s.expose().to_owned()),
        Some(rotated.clone())
    );

    // Failure paths carry the secret too.
    responses.push(
        app.post(
            "/v1/mcp-servers",
            &json!({"name": "Bad", "config": {"endpoint": "nope", "auth": {"type": "token", "auth_token": token}}}),
        )
        .await
        .text,
    );
    responses.push(app.post("/v1/mcp-servers", &json!({"name": "Bad", "config": {"endpoint": "https://c.example", "auth": {"type": "none", "auth_token": token}}})).await.text);

    for path in
        ["/v1/mcp-servers".to_owned(), format!("/v1/mcp-servers/{static_id}"), format!("/v1/mcp-servers/{conf_id}")]
    {
        let res = app.get(&path).await;
        assert_eq!(res.status, StatusCode::OK);
        responses.push(res.text);
    }

    for (i, body) in responses.iter().enumerate() {
        assert!(!body.contains(&canary), "response {i} leaked a secret: {body}");
    }
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("logs")).into_owned();
    assert!(logs.contains("/v1/mcp-servers"), "the log capture works (saw no request lines)");
    assert!(!logs.contains(&canary), "a secret reached the logs");
    let dump = app.dump_database().await;
    assert!(dump.contains("Renamed"), "the dump sees the rows (no server name in it)");
    assert!(!dump.contains(&canary), "a secret is stored in clear");
    let hex: String = canary.bytes().map(|b| format!("{b:02x}")).collect();
    assert!(!dump.contains(&hex), "a secret is stored in clear (hex)");
}

#[tokio::test]
async fn api_keys_are_stored_as_digests() {
    let app = TestApp::spawn().await;
    let dump = app.dump_database().await;
    assert!(!dump.contains(&app.key), "the plaintext API key is stored");
    assert!(dump.contains(&app.key[..12]), "the visible prefix is stored");
    assert_eq!(app.get("/v1/mcp-servers").await.status, StatusCode::OK);
    let logs = String::from_utf8_lossy(&captured_logs().lock().expect("logs")).into_owned();
    assert!(!logs.contains(&app.key));
}
