use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::helpers::{Options, TestApp};

#[tokio::test]
async fn health_readiness_metrics_and_request_ids() {
    let app = TestApp::spawn().await;
    let res = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(res.status, StatusCode::OK);
    let id = res.header("x-request-id").expect("request id").to_owned();
    assert!(uuid::Uuid::parse_str(&id).is_ok());

    let res = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(res.status, StatusCode::OK, "{}", res.text);
    assert_eq!(res.json()["checks"]["database"], "ok");

    // A caller's request id is echoed; a hostile one is replaced.
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .expect("send");
    assert_eq!(res.headers()["x-request-id"], "trace-abc.123");
    let res = app
        .client
        .get(format!("{}/healthz", app.base))
        .header("x-request-id", "bad id\twith\"quotes")
        .send()
        .await
        .expect("send");
    assert_ne!(res.headers()["x-request-id"], "bad id\twith\"quotes");

    app.get("/v1/mcp-servers").await;
    app.get(&format!("/v1/mcp-servers/{}", uuid::Uuid::now_v7())).await;
    let metrics = app.call(Method::GET, "/metrics", None, None).await.text;
    assert!(
        metrics.contains(r#"switchboard_http_requests_total{method="GET",route="/v1/mcp-servers",status="200"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"route="/v1/mcp-servers/{id}",status="404""#),
        "route patterns, not raw paths: {metrics}"
    );
    assert!(metrics.contains("switchboard_http_request_duration_seconds_bucket"), "{metrics}");

    // Unknown routes are problem documents too.
    app.get("/v1/nothing-here").await.problem(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn openapi_and_offline_docs() {
    let app = TestApp::spawn().await;
    let spec = app.call(Method::GET, "/openapi.json", None, None).await.json();
    for path in [
        "/v1/mcp-servers",
        "/v1/mcp-servers/{id}",
        "/v1/agents/{id}/mcp-servers/{server_id}",
        "/v1/admin/tenants",
        "/healthz",
    ] {
        assert!(spec["paths"].get(path).is_some(), "{path} missing from the spec");
    }
    assert_eq!(spec["paths"]["/v1/mcp-servers"]["post"]["operationId"], "create_mcp_server");
    assert!(
        spec["paths"]["/v1/mcp-servers"]["post"]["responses"].get("401").is_some(),
        "shared problem responses added"
    );
    let res = app.call(Method::GET, "/docs", None, None).await;
    assert_eq!(res.status, StatusCode::PERMANENT_REDIRECT);
    let page = app.call(Method::GET, "/docs/", None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.text.contains("swagger"), "{}", page.text);
    let bundle = app.call(Method::GET, "/docs/swagger-ui-bundle.js", None, None).await;
    assert_eq!(bundle.status, StatusCode::OK, "assets are served from the binary");
    assert!(bundle.text.len() > 100_000);
    let init = app.call(Method::GET, "/docs/swagger-initializer.js", None, None).await.text;
    assert!(init.contains("/openapi.json"), "{init}");
    assert!(!init.contains("https://"), "no CDN: {init}");
}

/// A Redis of the test's own on a spare port, stopped (SIGSTOP/SIGKILL) only by its pid.
pub struct OwnRedis {
    child: Child,
    pub port: u16,
}

impl OwnRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        Self::start_on(port)
    }

    /// A Redis on `port` (to restart one where the app expects it).
    pub fn start_on(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for this test (the CI script installs it)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        Self { child, port }
    }

    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill").args([sig, &self.child.id().to_string()]).status().expect("kill");
        assert!(status.success());
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.signal("-CONT");
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn a_paused_redis_does_not_hang_requests() {
    let redis = OwnRedis::start();
    let app = TestApp::spawn_with(Options {
        redis_url: Some(format!("redis://127.0.0.1:{}", redis.port)),
        ..Options::default()
    })
    .await;
    let ready = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(ready.status, StatusCode::OK, "{}", ready.text);
    assert_eq!(ready.json()["checks"]["redis"], "ok");

    redis.signal("-STOP");
    let started = Instant::now();
    let res = app.call(Method::GET, "/readyz", None, None).await;
    let took = started.elapsed();
    assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.text);
    assert!(res.json()["checks"]["redis"].as_str().is_some_and(|s| s.starts_with("error")));
    assert!(took < Duration::from_secs(3), "readiness took {took:?} with Redis paused");
    // The API itself does not wait on Redis.
    let started = Instant::now();
    assert_eq!(app.get("/v1/mcp-servers").await.status, StatusCode::OK);
    assert!(started.elapsed() < Duration::from_secs(1));

    redis.signal("-CONT");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let res = app.call(Method::GET, "/readyz", None, None).await;
        if res.status == StatusCode::OK {
            break;
        }
        assert!(Instant::now() < deadline, "never ready again after Redis resumed: {}", res.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A documented path asked with a method it does not answer is `405` with `Allow` (RFC 9110
/// §15.5.6), as problem+json; an unknown path stays `404`.
#[tokio::test]
async fn undeclared_methods_are_405_with_allow() {
    let app = TestApp::spawn().await;
    for (method, path, allow) in [
        ("TRACE", "/v1/agents", "GET, POST"),
        ("DELETE", "/v1/agents", "GET, POST"),
        ("PUT", "/v1/agents/01234567-89ab-7def-8123-456789abcdef", "GET, DELETE, PATCH"),
        ("POST", "/healthz", "GET"),
        ("PATCH", "/v1/webhook", "GET, PUT, DELETE"),
        // A literal path wins over its templated sibling (`/v1/mcp-servers/{id}` takes PATCH).
        ("PATCH", "/v1/mcp-servers/discover", "POST"),
        ("GET", "/v1/session-tickets/revoke", "POST"),
    ] {
        let m = reqwest::Method::from_bytes(method.as_bytes()).expect("method");
        let res = app.call(m, path, Some(&app.key), None).await;
        assert_eq!(res.status, reqwest::StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {}", res.text);
        let mut got: Vec<&str> = res.header("allow").unwrap_or_default().split(", ").collect();
        let mut want: Vec<&str> = allow.split(", ").collect();
        got.sort_unstable();
        want.sort_unstable();
        assert_eq!(got, want, "{method} {path}");
        assert_eq!(res.header("content-type"), Some("application/problem+json"));
        assert_eq!(res.json()["code"], "method_not_allowed");
    }
    let res = app.call(reqwest::Method::GET, "/v1/nothing-here", Some(&app.key), None).await;
    assert_eq!(res.status, reqwest::StatusCode::NOT_FOUND);
}
