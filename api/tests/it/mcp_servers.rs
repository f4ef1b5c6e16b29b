use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{Options, TestApp};

#[tokio::test]
async fn create_get_update_delete() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "Linear (prod)", "description": "issues",
            "config": {"endpoint": "https://mcp.linear.app/mcp", "headers": {"X-Team": "core"},
                       "auth": {"type": "oauth_authorization_code_public_pkce", "scopes": ["read"]}}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let created = res.json();
    let id = res.id();
    assert_eq!(res.header("location"), Some(format!("/v1/mcp-servers/{id}").as_str()));
    assert_eq!(created["slug"], "linear-prod");
    assert_eq!(created["config"]["endpoint"], "https://mcp.linear.app/mcp");
    assert_eq!(created["config"]["headers"]["X-Team"], "core");
    assert_eq!(created["config"]["auth"]["type"], "oauth_authorization_code_public_pkce");
    assert_eq!(created["config"]["auth"]["scopes"], json!(["read"]));
    assert!(created.as_object().expect("object").contains_key("discovery_result"));
    // The endpoint does not resolve here: discovery says so, and the server is saved anyway.
    let discovery = &created["discovery_result"];
    assert_eq!(discovery["endpoint"], "https://mcp.linear.app/mcp");
    assert!(discovery["message"].as_str().is_some_and(|m| m.contains("could not be reached")), "{discovery}");
    assert_eq!(uuid::Uuid::parse_str(&id).expect("uuid").get_version_num(), 7);

    let got = app.get(&format!("/v1/mcp-servers/{id}")).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(got.json()["name"], "Linear (prod)");

    let res = app
        .patch(
            &format!("/v1/mcp-servers/{id}"),
            &json!({"name": "Linear", "config": {"auth": {"scopes": ["read", "write"]}}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let updated = res.json();
    assert_eq!(updated["name"], "Linear");
    assert_eq!(updated["slug"], "linear-prod", "renaming keeps the slug");
    assert_eq!(updated["config"]["auth"]["scopes"], json!(["read", "write"]));
    assert_eq!(updated["config"]["endpoint"], "https://mcp.linear.app/mcp", "the merge keeps what the patch omits");
    assert_eq!(updated["config"]["headers"]["X-Team"], "core");

    assert_eq!(app.delete(&format!("/v1/mcp-servers/{id}")).await.status, StatusCode::NO_CONTENT);
    app.get(&format!("/v1/mcp-servers/{id}")).await.problem(StatusCode::NOT_FOUND, "not_found");
    app.delete(&format!("/v1/mcp-servers/{id}")).await.problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn slugs_are_derived_numbered_and_overridable() {
    let app = TestApp::spawn().await;
    let body = |slug: Option<&str>| {
        let mut b =
            json!({"name": "GitHub", "config": {"endpoint": "https://a.example/mcp", "auth": {"type": "none"}}});
        if let Some(s) = slug {
            b["slug"] = json!(s);
        }
        b
    };
    assert_eq!(app.post("/v1/mcp-servers", &body(None)).await.json()["slug"], "github");
    assert_eq!(app.post("/v1/mcp-servers", &body(None)).await.json()["slug"], "github-2");
    assert_eq!(app.post("/v1/mcp-servers", &body(Some("gh-enterprise"))).await.json()["slug"], "gh-enterprise");
    let taken = app.post("/v1/mcp-servers", &body(Some("github"))).await.problem(StatusCode::CONFLICT, "slug_taken");
    assert!(taken["detail"].as_str().expect("detail").contains("github"));
    let bad = app.post("/v1/mcp-servers", &body(Some("Not A Slug"))).await.field_errors();
    assert_eq!(bad, vec![("slug".into(), "invalid".into())]);
    // A PATCH to a taken slug is a conflict and changes nothing.
    let id = app.post("/v1/mcp-servers", &body(Some("other"))).await.id();
    app.patch(&format!("/v1/mcp-servers/{id}"), &json!({"slug": "github"}))
        .await
        .problem(StatusCode::CONFLICT, "slug_taken");
    assert_eq!(app.get(&format!("/v1/mcp-servers/{id}")).await.json()["slug"], "other");
}

#[tokio::test]
async fn list_paginates_with_cursors() {
    let app = TestApp::spawn().await;
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(app.create_server(&format!("server {i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &cursor {
            Some(c) => format!("/v1/mcp-servers?limit=3&cursor={c}"),
            None => "/v1/mcp-servers?limit=3".to_owned(),
        };
        let page = app.get(&path).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        let body = page.json();
        let data = body["data"].as_array().expect("data");
        assert!(data.len() <= 3);
        seen.extend(data.iter().map(|s| s["id"].as_str().expect("id").to_owned()));
        pages += 1;
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(seen, ids, "every server once, oldest first");

    app.get("/v1/mcp-servers?limit=0").await.field_errors();
    assert_eq!(
        app.get("/v1/mcp-servers?limit=101").await.field_errors(),
        vec![("limit".into(), "out_of_range".into())]
    );
    assert_eq!(app.get("/v1/mcp-servers?limit=ten").await.field_errors(), vec![("limit".into(), "invalid".into())]);
    assert_eq!(
        app.get("/v1/mcp-servers?cursor=garbage").await.field_errors(),
        vec![("cursor".into(), "invalid".into())]
    );
    assert_eq!(app.get("/v1/mcp-servers").await.json()["data"].as_array().map(Vec::len), Some(7), "default limit 20");
}

#[tokio::test]
async fn validation_errors_name_the_field_and_the_fix() {
    let app = TestApp::spawn().await;
    let ep = "https://mcp.example.com/mcp";
    let cases = [
        (
            json!({"name": "x", "server_url": ep, "config": {"endpoint": ep, "auth": {"type": "none"}}}),
            "server_url",
            "unknown_field",
            Some("config.endpoint"),
        ),
        (
            json!({"name": "x", "endpoint": ep, "config": {"endpoint": ep, "auth": {"type": "none"}}}),
            "endpoint",
            "unknown_field",
            Some("config"),
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "magic"}}}),
            "config.auth.type",
            "invalid",
            Some("oauth_client_credentials"),
        ),
        (json!({"name": "x", "config": {"endpoint": ep, "auth": {}}}), "config.auth.type", "required", None),
        (json!({"name": "x", "config": {"endpoint": ep}}), "config.auth", "required", None),
        (json!({"name": "x", "config": {"auth": {"type": "none"}}}), "config.endpoint", "required", None),
        (json!({"config": {"endpoint": ep, "auth": {"type": "none"}}}), "name", "required", None),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "token"}}}),
            "config.auth.auth_token",
            "required",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "oauth_client_credentials", "client_secret": "s"}}}),
            "config.auth.client_id",
            "required",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "oauth_client_credentials", "client_id": "c"}}}),
            "config.auth.client_secret",
            "required",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "oauth_authorization_code_confidential_pkce", "client_id": "c"}}}),
            "config.auth.client_secret",
            "required",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "none", "client_id": "c"}}}),
            "config.auth.client_id",
            "not_allowed",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": "mcp.example.com/mcp", "auth": {"type": "none"}}}),
            "config.endpoint",
            "invalid_url",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": "ftp://mcp.example.com/mcp", "auth": {"type": "none"}}}),
            "config.endpoint",
            "invalid_url",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": "https://mcp.example.com/mcp#top", "auth": {"type": "none"}}}),
            "config.endpoint",
            "invalid_url",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": "https://me:pw@mcp.example.com/mcp", "auth": {"type": "none"}}}),
            "config.endpoint",
            "invalid_url",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": "http://mcp.example.com/mcp", "auth": {"type": "none"}}}),
            "config.endpoint",
            "insecure_url",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": "http://127.0.0.1:9/mcp", "auth": {"type": "none"}}}),
            "config.endpoint",
            "insecure_url",
            Some("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS"),
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "auth": {"type": "oauth_authorization_code_public_pkce", "scopes": "a b"}}}),
            "config.auth.scopes",
            "invalid_type",
            None,
        ),
        (
            json!({"name": "x", "config": {"endpoint": ep, "headers": {"Authorization": "Bearer x"}, "auth": {"type": "none"}}}),
            "config.headers.Authorization",
            "not_allowed",
            Some("config.auth"),
        ),
    ];
    for (body, field, code, hint) in cases {
        let res = app.post("/v1/mcp-servers", &body).await;
        let problem = res.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        let errors = problem["errors"].as_array().expect("errors");
        let e = errors
            .iter()
            .find(|e| e["field"] == field)
            .unwrap_or_else(|| panic!("{body}: no error for {field}: {}", res.text));
        assert_eq!(e["code"], code, "{body}: {}", res.text);
        if let Some(h) = hint {
            assert!(e["hint"].as_str().is_some_and(|t| t.contains(h)), "{body}: hint should mention {h}: {}", res.text);
        }
    }
    // Nothing of the above was stored.
    assert_eq!(app.get("/v1/mcp-servers").await.json()["data"], json!([]));

    // Bodies that are not JSON objects at all.
    let res = app
        .client
        .post(format!("{}/v1/mcp-servers", app.base))
        .bearer_auth(&app.key)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    let res = app
        .client
        .post(format!("{}/v1/mcp-servers", app.base))
        .bearer_auth(&app.key)
        .body("name=x")
        .send()
        .await
        .expect("send");
    assert_eq!(res.status(), StatusCode::BAD_REQUEST);
    assert_eq!(res.headers().get("content-type").and_then(|v| v.to_str().ok()), Some("application/problem+json"));
    app.post("/v1/mcp-servers", &json!(["a"])).await.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
}

#[tokio::test]
async fn loopback_http_is_allowed_only_with_the_private_network_switch() {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let res = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "local", "config": {"endpoint": "http://127.0.0.1:3000/mcp", "auth": {"type": "none"}}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
    let res = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "remote", "config": {"endpoint": "http://mcp.example.com/mcp", "auth": {"type": "none"}}}),
        )
        .await;
    assert_eq!(res.field_errors(), vec![("config.endpoint".into(), "insecure_url".into())]);
}

#[tokio::test]
async fn bad_patch_loses_nothing() {
    let app = TestApp::spawn().await;
    let res = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "CC", "config": {"endpoint": "https://a.example/mcp",
            "auth": {"type": "oauth_client_credentials", "client_id": "cid", "client_secret": "cc-secret-0000-1111"}}}),
        )
        .await;
    let id = res.id();
    let before = app.get(&format!("/v1/mcp-servers/{id}")).await.json();
    for patch in [
        json!({"config": {"endpoint": "not a url"}}),
        json!({"config": {"auth": {"client_secret": null}}}),
        json!({"config": {"auth": {"type": "token"}}}),
        json!({"server_url": "https://b.example"}),
        json!({"name": null}),
    ] {
        let res = app.patch(&format!("/v1/mcp-servers/{id}"), &patch).await;
        res.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    }
    let after = app.get(&format!("/v1/mcp-servers/{id}")).await.json();
    assert_eq!(before, after);
    // A valid change of type replaces auth and drops the old secret.
    let res = app
        .patch(
            &format!("/v1/mcp-servers/{id}"),
            &json!({"config": {"auth": {"type": "token", "auth_token": "tok-abcdefgh-5678"}}}),
        )
        .await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    let auth = &res.json()["config"]["auth"];
    assert_eq!(auth["type"], "token");
    assert_eq!(auth["auth_token"], json!({"set": true, "last4": "5678"}));
    assert!(auth.get("client_secret").is_none() && auth.get("client_id").is_none(), "{auth}");
    let secrets = app
        .store()
        .tenant(app.tenant_id)
        .mcp_server_secrets(uuid::Uuid::parse_str(&id).expect("uuid").into())
        .await
        .expect("secrets");
    assert!(secrets.client_secret.is_none());
    assert_eq!(secrets.auth_token.map(|s| s.expose().to_owned()).as_deref(), Some("tok-abcdefgh-5678"));
}
