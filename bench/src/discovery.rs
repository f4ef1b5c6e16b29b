//! `switchboard-bench discovery`: discovery (and registration) against local servers whose every
//! response is delayed, for each metadata layout of the conformance suite. Reports the total time
//! and the number of sequential round trips it implies (total / delay).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use serde_json::{Value, json};
use switchboard_discovery::register::{self, RegistrationRequest};
use switchboard_discovery::{Discoverer, Fetcher, Limits, NetworkPolicy};
use url::Url;

type Routes = Arc<Mutex<HashMap<String, (u16, Value, Option<String>)>>>;

struct Server {
    base: String,
    routes: Routes,
    hits: Arc<Mutex<usize>>,
}

fn start(delay: Duration) -> anyhow::Result<Server> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let base = format!("http://{}", listener.local_addr()?);
    let routes: Routes = Arc::default();
    let hits = Arc::new(Mutex::new(0usize));
    let (r, h) = (routes.clone(), hits.clone());
    let server = HttpServer::new(move || {
        let (r, h) = (r.clone(), h.clone());
        App::new().default_service(web::to(move |req: HttpRequest| {
            let (r, h) = (r.clone(), h.clone());
            async move {
                tokio::time::sleep(delay).await;
                if let Ok(mut n) = h.lock() {
                    *n += 1;
                }
                let key = format!("{} {}", req.method(), req.path());
                let found = r.lock().ok().and_then(|r| r.get(&key).cloned());
                match found {
                    Some((status, body, www)) => {
                        let mut res =
                            HttpResponse::build(actix_web::http::StatusCode::from_u16(status).unwrap_or_default());
                        if let Some(w) = www {
                            res.insert_header(("www-authenticate", w));
                        }
                        res.json(body)
                    }
                    None => HttpResponse::NotFound().finish(),
                }
            }
        }))
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    Ok(Server { base, routes, hits })
}

impl Server {
    fn route(&self, method: &str, path: &str, status: u16, body: Value, www: Option<String>) {
        if let Ok(mut r) = self.routes.lock() {
            r.insert(format!("{method} {path}"), (status, body, www));
        }
    }
}

fn as_meta(issuer: &str) -> Value {
    json!({"issuer": issuer, "authorization_endpoint": format!("{issuer}/authorize"), "token_endpoint": format!("{issuer}/token"),
           "registration_endpoint": format!("{issuer}/register"), "code_challenge_methods_supported": ["S256"],
           "token_endpoint_auth_methods_supported": ["client_secret_basic", "none"], "grant_types_supported": ["authorization_code", "refresh_token"]})
}

/// Sets up one layout; returns the MCP endpoint.
fn layout(name: &str, rs: &Server, auth: &Server) -> String {
    let mcp = format!("{}/mcp", rs.base);
    let prm = |resource: &str, issuer: &str| json!({"resource": resource, "authorization_servers": [issuer]});
    let reg = json!({"client_id": "bench-client", "client_secret": "bench-secret", "token_endpoint_auth_method": "client_secret_basic"});
    match name {
        "path-prm-in-header" => {
            rs.route(
                "POST",
                "/mcp",
                401,
                json!({}),
                Some(format!(r#"Bearer resource_metadata="{}/.well-known/oauth-protected-resource/mcp""#, rs.base)),
            );
            rs.route("GET", "/.well-known/oauth-protected-resource/mcp", 200, prm(&mcp, &auth.base), None);
            auth.route("GET", "/.well-known/oauth-authorization-server", 200, as_meta(&auth.base), None);
            auth.route("POST", "/register", 201, reg, None);
        }
        "path-prm-no-header-oidc-only" => {
            rs.route("POST", "/mcp", 401, json!({}), Some("Bearer".into()));
            rs.route("GET", "/.well-known/oauth-protected-resource/mcp", 200, prm(&mcp, &auth.base), None);
            auth.route("GET", "/.well-known/openid-configuration", 200, as_meta(&auth.base), None);
            auth.route("POST", "/register", 201, reg, None);
        }
        "root-prm-issuer-with-path" => {
            let issuer = format!("{}/tenant1", auth.base);
            rs.route("POST", "/mcp", 401, json!({}), Some("Bearer".into()));
            rs.route("GET", "/.well-known/oauth-protected-resource", 200, prm(&rs.base, &issuer), None);
            auth.route("GET", "/.well-known/oauth-authorization-server/tenant1", 200, as_meta(&issuer), None);
            auth.route("POST", "/tenant1/register", 201, reg, None);
        }
        _ => {
            // custom PRM location, issuer with a path, OIDC path appending only
            let issuer = format!("{}/tenant1", auth.base);
            rs.route(
                "POST",
                "/mcp",
                401,
                json!({}),
                Some(format!(r#"Bearer resource_metadata="{}/custom/prm""#, rs.base)),
            );
            rs.route("GET", "/custom/prm", 200, prm(&mcp, &issuer), None);
            auth.route("GET", "/tenant1/.well-known/openid-configuration", 200, as_meta(&issuer), None);
            auth.route("POST", "/tenant1/register", 201, reg, None);
        }
    }
    mcp
}

/// The reference TypeScript client's sequential requests for discovery plus registration in each
/// layout (mcp-auth-client.md §2.1: every step awaited in turn), for comparison.
fn reference_round_trips(name: &str) -> u32 {
    match name {
        "path-prm-in-header" => 4,           // probe, PRM, AS 8414, register
        "path-prm-no-header-oidc-only" => 5, // probe, PRM, AS 8414 (404), OIDC, register
        "root-prm-issuer-with-path" => 5,    // probe, PRM path (404), PRM root, AS 8414, register
        _ => 6,                              // probe, PRM, 8414 (404), OIDC insert (404), OIDC append, register
    }
}

pub async fn run(delay_ms: u64, runs: usize) -> anyhow::Result<()> {
    let delay = Duration::from_millis(delay_ms);
    let policy = NetworkPolicy { allow_private_networks: true, allow: vec![] };
    for name in [
        "path-prm-in-header",
        "path-prm-no-header-oidc-only",
        "root-prm-issuer-with-path",
        "custom-prm-oidc-path-append",
    ] {
        let mut totals = Vec::new();
        let mut requests = 0;
        for _ in 0..runs {
            let (rs, auth) = (start(delay)?, start(delay)?);
            let endpoint = Url::parse(&layout(name, &rs, &auth))?;
            // A fresh discoverer each run: nothing cached.
            let discoverer =
                Discoverer::new(Fetcher::new(policy.clone(), Limits::default()).map_err(|e| anyhow::anyhow!("{e}"))?);
            let started = Instant::now();
            let mut result = discoverer.discover(&endpoint).await;
            let register_url = result
                .register_url
                .clone()
                .and_then(|u| Url::parse(&u).ok())
                .ok_or_else(|| anyhow::anyhow!("{name}: {}", result.message))?;
            let req = RegistrationRequest {
                register_url: &register_url,
                redirect_uri: "https://switchboard.example/service/mcp/consent/callback",
                client_name: "bench",
                confidential: true,
                supported_methods: &result.token_endpoint_auth_methods_supported.clone(),
                application_type: "web",
            };
            register::register(discoverer.fetcher(), &req, &mut result.steps)
                .await
                .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
            totals.push(started.elapsed());
            requests = rs.hits.lock().map(|n| *n).unwrap_or(0) + auth.hits.lock().map(|n| *n).unwrap_or(0);
        }
        totals.sort();
        let median = totals[totals.len() / 2];
        let rtts = (median.as_secs_f64() / delay.as_secs_f64()).round();
        println!(
            "{}",
            json!({"layout": name, "delay_ms": delay_ms, "runs": runs, "median_total_ms": median.as_millis(), "sequential_round_trips": rtts,
                   "requests": requests, "reference_client_round_trips": reference_round_trips(name)})
        );
    }
    Ok(())
}
