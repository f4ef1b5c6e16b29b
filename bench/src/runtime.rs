//! The runtime plane: `runtime-seed` prepares an agent with 20 attached servers whose connections
//! for one user are in mixed states (connected, pending consent, revoked, never connected) and
//! prints a session ticket for the load generator; `connect-roundtrip` measures connect → consent
//! callback against an in-process authorization server that answers at once, and reports the
//! time Switchboard itself adds (the client-observed total minus the authorization server's own
//! handling time).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use anyhow::{Context as _, bail};
use serde_json::{Value, json};

async fn call(
    client: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    key: &str,
    body: Option<Value>,
) -> anyhow::Result<Value> {
    let mut req = client.request(method, &url).bearer_auth(key);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let res = req.send().await?;
    let status = res.status();
    let text = res.text().await?;
    if !status.is_success() {
        bail!("{url}: {status} {text}");
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn auth_code_server(i: usize, as_base: &str) -> Value {
    json!({"name": format!("runtime bench {i}"), "config": {"endpoint": format!("https://rt{i}.example.com/mcp"),
        "auth": {"type": "oauth_authorization_code_public_pkce", "client_id": "bench-client", "scopes": ["read"],
                 "auth_url": format!("{as_base}/authorize"), "token_url": format!("{as_base}/token")}}})
}

async fn ticket(client: &reqwest::Client, url: &str, key: &str, user: &str, agent: &str) -> anyhow::Result<String> {
    let t = call(
        client,
        reqwest::Method::POST,
        format!("{url}/v1/session-tickets"),
        key,
        Some(json!({"user_id": user, "agent_ids": [agent], "expires_in": 3600})),
    )
    .await?;
    Ok(t["ticket"].as_str().context("no ticket")?.to_owned())
}

/// 20 servers attached to one agent; for user `bench-user`: 5 connected (token), 5 pending
/// consent (authorization code), 5 revoked, 5 never connected. Prints `{agent_id, ticket}`.
pub async fn seed(url: &str, key: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let agent = call(
        &client,
        reqwest::Method::POST,
        format!("{url}/v1/agents"),
        key,
        Some(json!({"name": "runtime bench agent"})),
    )
    .await?;
    let agent = agent["id"].as_str().context("agent id")?.to_owned();
    let mut servers = Vec::new();
    for i in 0..20 {
        let body = if i % 4 == 1 || i % 4 == 3 {
            auth_code_server(i, "https://as.example.com")
        } else {
            json!({"name": format!("runtime bench {i}"), "config": {"endpoint": format!("https://rt{i}.example.com/mcp"),
                "auth": {"type": "token", "auth_token": format!("bench-token-{i}")}}})
        };
        let s = call(&client, reqwest::Method::POST, format!("{url}/v1/mcp-servers"), key, Some(body)).await?;
        let id = s["id"].as_str().context("server id")?.to_owned();
        call(&client, reqwest::Method::PUT, format!("{url}/v1/agents/{agent}/mcp-servers/{id}"), key, None).await?;
        servers.push(id);
    }
    let t = ticket(&client, url, key, "bench-user", &agent).await?;
    for (i, id) in servers.iter().enumerate() {
        let base = format!("{url}/v1/runtime/agents/{agent}/mcp-servers/{id}");
        match i % 4 {
            0 | 1 => {
                call(&client, reqwest::Method::POST, format!("{base}/connect"), &t, None).await?;
            }
            2 => {
                call(&client, reqwest::Method::POST, format!("{base}/connect"), &t, None).await?;
                call(&client, reqwest::Method::POST, format!("{base}/disconnect"), &t, None).await?;
            }
            _ => {}
        }
    }
    let listed =
        call(&client, reqwest::Method::GET, format!("{url}/v1/runtime/agents/{agent}/mcp-servers"), &t, None).await?;
    let mut states = std::collections::BTreeMap::<String, usize>::new();
    for s in listed["data"].as_array().context("data")? {
        *states.entry(s["connection_status"].as_str().unwrap_or("?").to_owned()).or_default() += 1;
    }
    eprintln!("seeded 20 servers: {states:?}");
    println!("{}", json!({"agent_id": agent, "ticket": t}));
    Ok(())
}

/// Nanoseconds the fake authorization server spent answering token requests.
type Spent = Arc<Mutex<Vec<Duration>>>;

fn fake_authorization_server() -> anyhow::Result<(String, Spent)> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let spent: Spent = Arc::default();
    let s = spent.clone();
    let server = HttpServer::new(move || {
        let s = s.clone();
        App::new()
            .route(
                "/authorize",
                web::get().to(|req: HttpRequest| async move {
                    let q: std::collections::HashMap<String, String> =
                        url::form_urlencoded::parse(req.query_string().as_bytes()).into_owned().collect();
                    let Ok(mut back) = url::Url::parse(q.get("redirect_uri").map_or("", String::as_str)) else {
                        return HttpResponse::BadRequest().finish();
                    };
                    back.query_pairs_mut()
                        .append_pair("code", "bench-code")
                        .append_pair("state", q.get("state").map_or("", String::as_str));
                    HttpResponse::Found().insert_header(("location", back.to_string())).finish()
                }),
            )
            .route(
                "/token",
                web::post().to(move |_body: web::Bytes| {
                    let s = s.clone();
                    async move {
                        let t0 = Instant::now();
                        let res = HttpResponse::Ok()
                            .json(json!({"access_token": "bench-access", "token_type": "Bearer",
                            "expires_in": 3600, "refresh_token": "bench-refresh", "scope": "read"}));
                        if let Ok(mut v) = s.lock() {
                            v.push(t0.elapsed());
                        }
                        res
                    }
                }),
            )
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok((base, spent))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { f64::NAN } else { v[v.len() / 2] }
}

/// `runs` users each connect one authorization-code server: connect, the (instant) provider,
/// the callback. Prints medians in milliseconds.
pub async fn connect_roundtrip(url: &str, key: &str, runs: usize) -> anyhow::Result<()> {
    let (as_base, spent) = fake_authorization_server()?;
    let client = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let agent =
        call(&client, reqwest::Method::POST, format!("{url}/v1/agents"), key, Some(json!({"name": "roundtrip agent"})))
            .await?;
    let agent = agent["id"].as_str().context("agent id")?.to_owned();
    let server =
        call(&client, reqwest::Method::POST, format!("{url}/v1/mcp-servers"), key, Some(auth_code_server(0, &as_base)))
            .await?;
    let server = server["id"].as_str().context("server id")?.to_owned();
    call(&client, reqwest::Method::PUT, format!("{url}/v1/agents/{agent}/mcp-servers/{server}"), key, None).await?;
    let (mut connect_ms, mut callback_ms, mut as_ms, mut added_ms) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs + 3 {
        let t = ticket(&client, url, key, &format!("roundtrip-user-{i}"), &agent).await?;
        let before = spent.lock().map(|v| v.len()).unwrap_or(0);
        let t0 = Instant::now();
        let c = call(
            &client,
            reqwest::Method::POST,
            format!("{url}/v1/runtime/agents/{agent}/mcp-servers/{server}/connect"),
            &t,
            None,
        )
        .await?;
        let connect = t0.elapsed();
        let auth_url = c["auth_url"].as_str().context("no auth_url")?;
        let res = client.get(auth_url).send().await?;
        let back = res.headers().get("location").and_then(|l| l.to_str().ok()).context("no redirect")?.to_owned();
        let t1 = Instant::now();
        let res = client.get(&back).send().await?;
        let callback = t1.elapsed();
        let page = res.text().await?;
        if !page.contains("is now connected") {
            bail!("the callback did not connect: {page}");
        }
        let as_token = spent.lock().ok().and_then(|v| v.get(before).copied()).unwrap_or_default();
        if i < 3 {
            continue; // warm-up
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        connect_ms.push(ms(connect));
        callback_ms.push(ms(callback));
        as_ms.push(ms(as_token));
        added_ms.push(ms(connect) + ms(callback) - ms(as_token));
    }
    let r = |v: f64| (v * 100.0).round() / 100.0;
    println!(
        "{}",
        json!({"runs": runs, "connect_ms": r(median(&mut connect_ms)), "callback_ms": r(median(&mut callback_ms)),
               "as_token_handling_ms": r(median(&mut as_ms)), "switchboard_added_ms": r(median(&mut added_ms))})
    );
    Ok(())
}
