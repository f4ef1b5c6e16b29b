//! A scriptable HTTP server on 127.0.0.1: routes by (method, path), counts every hit, can delay,
//! trickle or flood its answers.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};
use futures_util::stream;

#[derive(Clone, Default)]
pub struct Route {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub delay: Duration,
    /// Send the body one byte every 200 ms (slow-loris).
    pub trickle: bool,
    /// Stream this many bytes of filler without a Content-Length.
    pub flood: usize,
    /// Answer 401 unless `Authorization` is exactly this.
    pub require_auth: Option<String>,
    /// Answer 401 `invalid_client` unless the form body has each of these pairs (a token
    /// endpoint's client authentication).
    pub require_form: Vec<(String, String)>,
}

impl Route {
    pub fn json(status: u16, body: serde_json::Value) -> Self {
        Self {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string().into_bytes(),
            ..Self::default()
        }
    }

    pub fn status(status: u16) -> Self {
        Self { status, ..Self::default() }
    }

    pub fn requires(mut self, authorization: &str) -> Self {
        self.require_auth = Some(authorization.into());
        self
    }

    pub fn requires_form(mut self, name: &str, value: &str) -> Self {
        self.require_form.push((name.into(), value.into()));
        self
    }

    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Clone)]
pub struct Fake {
    pub base: String,
    pub port: u16,
    routes: Arc<Mutex<HashMap<(String, String), Route>>>,
    hits: Arc<Mutex<Vec<String>>>,
    /// Applied to every response (the round-trip benchmark's 50 ms).
    pub delay_all: Arc<Mutex<Duration>>,
}

impl Fake {
    pub fn start() -> Self {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let fake = Self {
            base: format!("http://127.0.0.1:{port}"),
            port,
            routes: Arc::default(),
            hits: Arc::default(),
            delay_all: Arc::default(),
        };
        let state = fake.clone();
        let server = HttpServer::new(move || {
            App::new().app_data(web::Data::new(state.clone())).default_service(web::to(handle))
        })
        .workers(1)
        .listen(listener)
        .expect("listen")
        .run();
        tokio::spawn(server);
        fake
    }

    pub fn route(&self, method: &str, path: &str, route: Route) {
        self.routes.lock().expect("lock").insert((method.to_owned(), path.to_owned()), route);
    }

    pub fn hits(&self, path: &str) -> usize {
        self.hits.lock().expect("lock").iter().filter(|h| h.split_once(' ').is_some_and(|(_, p)| p == path)).count()
    }

    pub fn total_hits(&self) -> usize {
        self.hits.lock().expect("lock").len()
    }
}

async fn handle(req: HttpRequest, body: web::Bytes, fake: web::Data<Fake>) -> HttpResponse {
    let path = req.uri().path_and_query().map_or_else(|| req.path().to_owned(), |p| p.as_str().to_owned());
    fake.hits.lock().expect("lock").push(format!("{} {path}", req.method()));
    // JSON-RPC posts may be routed by method: `/mcp#tools/list`.
    let rpc_method = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("method")?.as_str().map(str::to_owned));
    let route = {
        let routes = fake.routes.lock().expect("lock");
        rpc_method
            .and_then(|m| routes.get(&(req.method().to_string(), format!("{}#{m}", req.path()))).cloned())
            .or_else(|| routes.get(&(req.method().to_string(), req.path().to_owned())).cloned())
    };
    let delay = *fake.delay_all.lock().expect("lock");
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let Some(route) = route else { return HttpResponse::NotFound().finish() };
    if let Some(want) = &route.require_auth {
        let got = req.headers().get("authorization").and_then(|v| v.to_str().ok());
        if got != Some(want.as_str()) {
            return HttpResponse::Unauthorized()
                .insert_header(("www-authenticate", "Bearer error=\"invalid_token\""))
                .finish();
        }
    }
    if !route.require_form.is_empty() {
        let form: Vec<(String, String)> = url::form_urlencoded::parse(&body).into_owned().collect();
        if !route.require_form.iter().all(|want| form.contains(want)) {
            return HttpResponse::Unauthorized()
                .content_type("application/json")
                .body(r#"{"error":"invalid_client","error_description":"client authentication failed"}"#);
        }
    }
    if !route.delay.is_zero() {
        tokio::time::sleep(route.delay).await;
    }
    let mut res = HttpResponse::build(actix_web::http::StatusCode::from_u16(route.status).expect("status"));
    for (k, v) in &route.headers {
        res.insert_header((k.as_str(), v.as_str()));
    }
    if route.trickle {
        let s = stream::unfold(0u32, |n| async move {
            if n > 600 {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            Some((Ok::<_, actix_web::Error>(web::Bytes::from_static(b" ")), n + 1))
        });
        return res.streaming(s);
    }
    if route.flood > 0 {
        let chunk = web::Bytes::from(vec![b'x'; 64 * 1024]);
        let chunks = route.flood / chunk.len();
        let s = stream::iter((0..chunks).map(move |_| Ok::<_, actix_web::Error>(chunk.clone())));
        return res.streaming(s);
    }
    res.body(route.body)
}
