//! Building and running the HTTP application.

use std::net::TcpListener;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, HttpServer, web};
use utoipa_swagger_ui::SwaggerUi;

use crate::error;
use crate::openapi::with_routes;
use crate::state::AppState;

const JSON_LIMIT: usize = 256 * 1024;

/// The application with its state, middleware, routes and docs. Each HTTP worker thread builds
/// its own, with a database pool of its own ([`AppState::for_worker`]).
pub fn build(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    let gateway = state.gateway.clone();
    let app = App::new()
        .configure(|cfg| switchboard_gateway::configure(cfg, &gateway))
        .data_factory(move || {
            let state = state.clone();
            async move { state.for_worker().await }
        })
        .app_data(web::JsonConfig::default().limit(JSON_LIMIT).error_handler(error::json_error))
        .app_data(web::QueryConfig::default().error_handler(error::query_error))
        .app_data(web::PayloadConfig::default().limit(JSON_LIMIT));
    let (app, spec) = with_routes(app);
    let methods = std::sync::Arc::new(MethodTable::from_spec(&spec));
    app.route(
        "/docs",
        web::get().to(|| async { HttpResponse::PermanentRedirect().insert_header(("location", "/docs/")).finish() }),
    )
    .service(SwaggerUi::new("/docs/{_:.*}").url("/openapi.json", spec))
    .app_data(web::Data::from(methods.clone()))
    .default_service(web::to(move |req: actix_web::HttpRequest| {
        let methods = methods.clone();
        async move { not_found(&methods, &req) }
    }))
    .wrap(from_fn(literal_paths))
    .wrap(from_fn(crate::middleware::observe))
}

/// Every documented path with the methods it answers, for the `405` + `Allow` of a known path
/// asked with another method (`TRACE /v1/agents`), as RFC 9110 §15.5.6 wants.
struct MethodTable {
    paths: Vec<(actix_web::dev::ResourceDef, String)>,
    /// The paths without a parameter, looked up on every request.
    literal: std::collections::HashMap<String, String>,
}

impl MethodTable {
    fn from_spec(spec: &utoipa::openapi::OpenApi) -> Self {
        let rows = spec
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                let mut methods = Vec::new();
                for (m, op) in [
                    ("GET", &item.get),
                    ("PUT", &item.put),
                    ("POST", &item.post),
                    ("DELETE", &item.delete),
                    ("PATCH", &item.patch),
                    ("HEAD", &item.head),
                    ("OPTIONS", &item.options),
                ] {
                    if op.is_some() {
                        methods.push(m);
                    }
                }
                (actix_web::dev::ResourceDef::new(path.as_str()), methods.join(", "))
            })
            .collect::<Vec<_>>();
        let literal = spec
            .paths
            .paths
            .keys()
            .filter(|p| !p.contains('{'))
            .filter_map(|p| {
                rows.iter().find(|(d, _)| d.pattern() == Some(p.as_str())).map(|(_, m)| (p.clone(), m.clone()))
            })
            .collect();
        Self { paths: rows, literal }
    }

    fn allowed(&self, path: &str) -> Option<&str> {
        self.paths.iter().find(|(def, _)| def.is_match(path)).map(|(_, m)| m.as_str())
    }

    /// A literal documented path (`/v1/mcp-servers/discover`) asked with a method it does not
    /// answer: its `Allow`, even where a templated sibling (`/v1/mcp-servers/{id}`) would take it.
    fn literal_refusal(&self, path: &str, method: &str) -> Option<&str> {
        self.literal.get(path).map(String::as_str).filter(|allow| !allow.split(", ").any(|m| m == method))
    }
}

/// Answers 405 for a literal documented path before the router can hand it to a templated route.
async fn literal_paths<B: MessageBody + 'static>(
    req: ServiceRequest,
    next: actix_web::middleware::Next<B>,
) -> Result<ServiceResponse<B>, actix_web::Error> {
    if let Some(table) = req.app_data::<web::Data<MethodTable>>()
        && let Some(allow) = table.literal_refusal(req.path(), req.method().as_str())
    {
        return Err(error::ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            allow: allow.to_owned(),
        }
        .into());
    }
    next.call(req).await
}

fn not_found(methods: &MethodTable, req: &actix_web::HttpRequest) -> Result<HttpResponse, error::ApiError> {
    if let Some(allow) = methods.allowed(req.path()) {
        return Err(error::ApiError::MethodNotAllowed {
            method: req.method().to_string(),
            path: req.path().to_owned(),
            allow: allow.to_owned(),
        });
    }
    Err(switchboard_domain::DomainError::NotFound { kind: "route", id: format!("{} {}", req.method(), req.path()) }
        .into())
}

/// Starts serving on an already bound listener (bind first, so callers know the port).
pub fn serve(state: AppState, listener: TcpListener, workers: usize) -> std::io::Result<Server> {
    // Health counters are written every few seconds while this server runs (and once more when
    // the process stops: `serve` flushes them after the server ends).
    tokio::spawn(state.runtime.health.clone().run(std::future::pending()));
    let server = HttpServer::new(move || build(state.clone()))
        .workers(workers.max(1))
        // Streamed answers (the gateway's SSE, the runtime event stream) are written event by
        // event: with Nagle's algorithm a small write behind an unacknowledged one waits for the
        // peer's delayed ACK (40 ms on Linux) — the end of every proxied SSE answer did.
        .on_connect(|conn, _| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .listen(listener)?
        .run();
    Ok(server)
}
