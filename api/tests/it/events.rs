//! Connection events leave through two doors: a per-tenant webhook (signed in the Standard
//! Webhooks format — verified here with the reference npm library, not with our own code — at
//! least once, with a stable id across retries) and the runtime event stream (server-sent events,
//! only the ticket's user's).

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use switchboard_domain::connection::GrantKey;

use crate::helpers::{Options, TestApp};
use crate::strict_as::{Provider, seed_grant, start_provider};

type Received = Arc<Mutex<Vec<(Vec<(String, String)>, String)>>>;

/// A webhook receiver that records every delivery and answers 500 to the first attempt of each
/// message (by `webhook-id`), 204 to the retry.
fn receiver(received: Received) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/hooks", listener.local_addr().expect("addr"));
    let server = HttpServer::new(move || {
        let received = received.clone();
        App::new().route(
            "/hooks",
            web::post().to(move |req: HttpRequest, body: String| {
                let received = received.clone();
                async move {
                    let headers = req
                        .headers()
                        .iter()
                        .filter(|(k, _)| k.as_str().starts_with("webhook-"))
                        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
                        .collect();
                    let mut r = received.lock().expect("received");
                    let id =
                        |h: &Vec<(String, String)>| h.iter().find(|(k, _)| k == "webhook-id").map(|(_, v)| v.clone());
                    let first = !r.iter().any(|(seen, _)| id(seen) == id(&headers));
                    r.push((headers, body));
                    if first {
                        HttpResponse::InternalServerError().finish()
                    } else {
                        HttpResponse::NoContent().finish()
                    }
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .expect("listen")
    .run();
    tokio::spawn(server);
    url
}

/// Verifies one delivery with the `standardwebhooks` npm package (tests/peers/verify-webhook.mjs).
fn verify_independently(secret: &str, headers: &[(String, String)], body: &str) -> Result<Value, String> {
    let dir = std::env::var("SWITCHBOARD_PEERS_DIR")
        .unwrap_or_else(|_| format!("{}/.cache/switchboard/peers", std::env::var("HOME").unwrap_or_default()));
    let script = std::path::Path::new(&dir).join("verify-webhook.mjs");
    assert!(script.exists(), "{} is missing: run scripts/test (or tests/peers/install.sh)", script.display());
    let mut child = Command::new("node")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node runs the verifier");
    let input = json!({"secret": secret, "headers": headers.iter().cloned().collect::<std::collections::HashMap<_, _>>(), "body": body});
    child.stdin.take().expect("stdin").write_all(input.to_string().as_bytes()).expect("write");
    let out = child.wait_with_output().expect("verifier");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    if out.status.success() { serde_json::from_str(&text).map_err(|e| e.to_string()) } else { Err(text) }
}

#[tokio::test]
async fn events_reach_the_webhook_signed_and_the_runtime_stream() {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let received: Received = Arc::default();
    let hook = receiver(received.clone());

    // The webhook: validated, its secret shown once.
    for (body, field) in [
        (json!({"url": "ftp://example.com/x"}), "url"),
        (json!({}), "url"),
        (json!({"url": hook, "extra": 1}), "extra"),
    ] {
        let res = app.call(Method::PUT, "/v1/webhook", Some(&app.key), Some(&body)).await;
        assert_eq!(res.status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(res.field_errors().iter().any(|(f, _)| f == field), "{body}: {}", res.text);
    }
    app.call(Method::GET, "/v1/webhook", Some(&app.key), None).await.problem(StatusCode::NOT_FOUND, "not_found");
    let created = app.call(Method::PUT, "/v1/webhook", Some(&app.key), Some(&json!({"url": hook}))).await.json();
    let secret = created["secret"].as_str().expect("the secret, once").to_owned();
    assert!(secret.starts_with("whsec_"));
    let shown = app.call(Method::GET, "/v1/webhook", Some(&app.key), None).await.json();
    assert_eq!(shown["secret"]["last4"], secret[secret.len() - 4..]);
    assert!(!shown.to_string().contains(&secret));
    let again = app.call(Method::PUT, "/v1/webhook", Some(&app.key), Some(&json!({"url": hook}))).await.json();
    assert!(again["secret"].is_object(), "an update keeps (and hides) the secret");

    // A grant, and a ticket-holding console listening to the runtime stream.
    let provider = Arc::new(Mutex::new(Provider::default()));
    let as_base = start_provider(provider.clone());
    let server = app
        .post(
            "/v1/mcp-servers",
            &json!({"name": "strict", "config": {"endpoint": format!("{as_base}/mcp"),
            "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "c"}}}),
        )
        .await
        .id();
    let agent = app.create_agent("bot").await;
    app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    let key = GrantKey {
        tenant_id: app.tenant_id,
        user_id: "u".into(),
        agent_id: uuid::Uuid::parse_str(&agent).expect("id").into(),
        mcp_server_id: uuid::Uuid::parse_str(&server).expect("id").into(),
    };
    seed_grant(&app.store().tenant(app.tenant_id), &provider, &as_base, key, 0, chrono::TimeDelta::hours(1)).await;
    let ticket = |user: &str| {
        let (app, agent, user) = (&app, agent.clone(), user.to_owned());
        async move {
            app.post("/v1/session-tickets", &json!({"user_id": user, "agent_ids": [agent]})).await.json()["ticket"]
                .as_str()
                .expect("ticket")
                .to_owned()
        }
    };
    let (mine, theirs) = (ticket("u").await, ticket("someone-else").await);
    let open = |t: String| {
        let (client, url) = (reqwest::Client::new(), format!("{}/v1/runtime/events", app.base));
        async move {
            let res = client.get(url).bearer_auth(t).send().await.expect("stream");
            assert_eq!(res.status(), StatusCode::OK);
            assert!(res.headers()["content-type"].to_str().expect("type").starts_with("text/event-stream"));
            res
        }
    };
    // A worker's ticket, narrowed to another server: the same user's events of this server are
    // not its business.
    let narrowed = app
        .post("/v1/session-tickets/attenuate", &json!({"ticket": mine, "servers": ["another-server-v1"]}))
        .await
        .json()["ticket"]
        .as_str()
        .expect("narrowed")
        .to_owned();
    let (mut stream, mut other) = (open(mine.clone()).await, open(theirs).await);
    let mut narrowed_stream = open(narrowed).await;

    // An event: the user disconnects.
    let res = app
        .call(Method::POST, &format!("/v1/runtime/agents/{agent}/mcp-servers/{server}/disconnect"), Some(&mine), None)
        .await;
    assert_eq!(res.json()["status"], "revoked");

    // The stream shows it within a second or so.
    let mut seen = String::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !seen.contains("event: connection.revoked") {
        let left = deadline.saturating_duration_since(Instant::now());
        let chunk = tokio::time::timeout(left, stream.chunk()).await.expect("an event within 10 s").expect("read");
        seen.push_str(&String::from_utf8_lossy(&chunk.expect("the stream stays open")));
    }
    assert!(seen.contains("\"user_id\":\"u\""), "{seen}");
    // Someone else's console sees nothing of it, nor does the ticket narrowed to another server.
    if let Ok(Ok(Some(chunk))) = tokio::time::timeout(Duration::from_millis(1500), other.chunk()).await {
        assert!(!String::from_utf8_lossy(&chunk).contains("connection.revoked"));
    }
    let deadline = Instant::now() + Duration::from_millis(1500);
    while let Ok(Ok(Some(chunk))) =
        tokio::time::timeout(deadline.saturating_duration_since(Instant::now()), narrowed_stream.chunk()).await
    {
        assert!(!String::from_utf8_lossy(&chunk).contains("connection."), "{}", String::from_utf8_lossy(&chunk));
    }

    // The webhook: two events (the grant connected, then revoked); each one's first attempt gets
    // a 500, its retry a 204, both attempts with the same id.
    let worker = app.worker();
    let deadline = Instant::now() + Duration::from_secs(15);
    while received.lock().expect("received").len() < 4 {
        assert!(Instant::now() < deadline, "the deliveries were not retried");
        worker.jobs().tick(10).await.expect("tick");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let deliveries = received.lock().expect("received").clone();
    let id = |d: &(Vec<(String, String)>, String)| d.0.iter().find(|(k, _)| k == "webhook-id").map(|(_, v)| v.clone());
    let mut ids: Vec<Option<String>> = deliveries.iter().map(id).collect();
    ids.sort();
    assert!(
        ids[0] == ids[1] && ids[2] == ids[3] && ids[1] != ids[2],
        "one id per event, the same across retries: {ids:?}"
    );
    let mut types = Vec::new();
    for (headers, body) in &deliveries {
        let payload = verify_independently(&secret, headers, body).expect("standardwebhooks accepts the signature");
        types.push(payload["type"].as_str().unwrap_or_default().to_owned());
        assert_eq!(payload["data"]["user_id"], "u");
        // A tampered body is refused by the same library (the test can fail).
        let tampered = body.replace(r#""user_id":"u""#, r#""user_id":"v""#);
        assert_ne!(&tampered, body);
        assert!(verify_independently(&secret, headers, &tampered).is_err());
    }
    types.sort();
    assert_eq!(types, ["connection.connected", "connection.connected", "connection.revoked", "connection.revoked"]);
    let delivered = app
        .store()
        .tenant(app.tenant_id)
        .list_jobs()
        .await
        .expect("jobs")
        .into_iter()
        .filter(|j| j.kind == "deliver_event")
        .all(|j| j.status == "done");
    assert!(delivered);
}
