//! The MCP gateway: `POST|GET|DELETE /mcp/{tenant}/{agent}/{server}`, one Streamable-HTTP
//! endpoint per attachment. It takes the session ticket as its bearer credential, resolves the
//! route, applies the attachment's filter, injects the user's upstream credential (never the
//! client's) and streams the upstream's answer back as it arrives.
//!
//! - `inbound.rs`: the ticket and the route, from in-process views (`cache.rs`) that changes
//!   invalidate at once (`switchboard_worker::changes`); no database read once warm.
//! - `rpc.rs`: what the gateway reads of a JSON-RPC message and the errors it answers itself.
//! - `filter.rs`: the allow-lists on lists and calls, and the gateway's own cursors.
//! - `handler.rs`: POST, the hot path; `streams.rs`: GET and DELETE; `pages.rs`: the route's
//!   resource metadata and the connect page; `origin.rs`: the DNS-rebinding defence.
//! - `upstream.rs`: the upstream call — headers in and out, the credential, one refresh and
//!   retry on a 401, the deadline, the upstream session behind a gateway session.
//! - `answer.rs`: refusals and upstream failures as the client sees them, and the upstream's
//!   answer relayed; `sse.rs`: the watch on a streamed answer (garbage, silence, an early end).
//! - `connect.rs`: "connect first" as the client's protocol version says (URL elicitation,
//!   `input_required`, or an error carrying the URL), and the sealed connect requests.
//! - `oauth/`: the gateway as each tenant's OAuth authorization server (issuer
//!   `{public_url}/oauth/{tenant}`), signing users in through the tenant's identity provider and
//!   issuing route-bound session tickets as access tokens.
//! - `agent.rs`: `/mcp/{tenant}/{agent}`, every server of an agent as one MCP server (names
//!   `<server_slug>__<name>`), each message served by the routes' own code.
//! - `sessions.rs`: the gateway's own session ids for sessions started before the user
//!   connected, mapped lazily onto upstream sessions.

mod agent;
mod answer;
pub mod cache;
pub mod connect;
pub mod filter;
mod handler;
pub mod inbound;
pub mod metrics;
mod oauth;
mod observe;
mod origin;
mod pages;
pub mod rpc;
mod sessions;
mod sse;
mod streams;
pub mod upstream;

pub use pages::html_escape;

use std::sync::Arc;
use std::time::Duration;

use actix_web::web;
use switchboard_worker::changes::Change;
use switchboard_worker::runtime::Runtime;

/// The gateway's knobs.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// Base of the gateway's URLs (routes, resource metadata, connect pages).
    pub public_url: String,
    /// How long the upstream may take to answer a request's headers, and — in a streamed answer
    /// to a request — the longest silence between two of its messages (progress counts).
    pub upstream_timeout: Duration,
    /// The longest a request's streamed answer may last in all, however often it reports
    /// progress.
    pub call_timeout: Duration,
    /// The largest client message accepted.
    pub max_body_bytes: usize,
    /// Origins allowed besides the public URL's own (browser-based MCP clients).
    pub allowed_origins: Vec<String>,
}

impl GatewayConfig {
    #[must_use]
    pub fn new(public_url: &str) -> Self {
        Self {
            public_url: public_url.trim_end_matches('/').to_owned(),
            upstream_timeout: Duration::from_secs(30),
            call_timeout: Duration::from_secs(600),
            max_body_bytes: 4 * 1024 * 1024,
            allowed_origins: vec![],
        }
    }
}

/// The gateway: its configuration, the runtime it draws credentials from, and its views.
/// Cheap to clone.
#[derive(Clone)]
pub struct Gateway {
    inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub(crate) runtime: Runtime,
    pub(crate) config: GatewayConfig,
    pub(crate) views: inbound::Views,
    pub(crate) sessions: sessions::Sessions,
    pub(crate) metrics: metrics::GatewayMetrics,
    /// The public URL, parsed once, and whether it is loopback (a local gateway).
    pub(crate) public: Option<url::Url>,
    pub(crate) loopback: bool,
}

impl Inner {
    fn apply(&self, change: &Change) {
        self.views.apply(change);
        if let Change::SessionEnded { session } = change {
            self.sessions.ended.put(session.clone(), ());
        }
    }
}

impl std::fmt::Debug for Gateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gateway").field("public_url", &self.inner.config.public_url).finish_non_exhaustive()
    }
}

impl Gateway {
    /// A gateway on `runtime`; it follows the runtime's changes for as long as it lives.
    #[must_use]
    pub fn new(runtime: Runtime, config: GatewayConfig) -> Self {
        let public = url::Url::parse(&config.public_url).ok();
        let loopback = public.as_ref().and_then(url::Url::host_str).is_some_and(origin::is_loopback_host);
        let inner = Arc::new(Inner {
            public,
            loopback,
            runtime,
            config,
            views: inbound::Views::default(),
            sessions: sessions::Sessions::default(),
            metrics: metrics::GatewayMetrics::default(),
        });
        // This process's own changes, applied before whoever made them answers.
        let observer = Arc::downgrade(&inner);
        inner.runtime.changes.observe(move |change| {
            if let Some(inner) = observer.upgrade() {
                inner.apply(change);
            }
        });
        let weak = Arc::downgrade(&inner);
        let mut changes = inner.runtime.changes.subscribe();
        // Changes made by other processes arrive through Redis (when configured).
        let relay = inner.runtime.changes.listen();
        tokio::spawn(async move {
            loop {
                let change = changes.recv().await;
                let Some(inner) = weak.upgrade() else { break };
                match change {
                    Ok(change) => inner.apply(&change),
                    // Fell behind: some change was missed, so nothing cached can be trusted.
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => inner.views.clear(),
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                }
            }
            if let Some(relay) = relay {
                relay.abort();
            }
        });
        Self { inner }
    }

    /// Adds the gateway's metrics to `registry` (the process's `/metrics`).
    pub fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    /// A session ticket verified from the gateway's views: its signature checked once with the
    /// tenant's cached key and its revocation looked up once, both kept until a change or their
    /// short life ends them. The runtime plane's credential check, so that every route of it
    /// shares the gateway's cache.
    pub async fn verify_ticket(&self, presented: &str) -> Result<Arc<inbound::VerifiedTicket>, inbound::Refusal> {
        self.inner.verify(presented).await
    }

    /// The tenant's slug (the first segment of its gateway routes), from the views.
    pub async fn tenant_slug(&self, tenant: switchboard_domain::TenantId) -> Result<String, inbound::Refusal> {
        Ok(self.inner.tenant_key(tenant).await?.slug.clone())
    }

    /// Every attachment of `agent`, from the views (filled with one read of all its pages).
    pub async fn agent_attachments(
        &self,
        tenant: switchboard_domain::TenantId,
        agent: switchboard_domain::AgentId,
    ) -> Result<Arc<Vec<switchboard_domain::agent::Attachment>>, switchboard_domain::DomainError> {
        let views = &self.inner.views;
        if let Some(a) = views.attachments.get(&(tenant, agent)) {
            return Ok(a);
        }
        let since = views.attachments.epoch(&(tenant, agent));
        let store = self.inner.runtime.store.tenant(tenant);
        let mut all = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = store
                .list_attachments(agent, switchboard_domain::page::PageRequest::parse(Some("100"), cursor.as_deref())?)
                .await?;
            all.extend(page.data);
            match page.next_cursor {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let all = Arc::new(all);
        views.attachments.fill(since, (tenant, agent), all.clone());
        Ok(all)
    }

    /// `user`'s connections through `agent` (their statuses, expiries and errors), from the
    /// views: read once, then kept until a change of one of them (every status write announces
    /// its grant) or their short life ends them.
    pub async fn user_connections(
        &self,
        tenant: switchboard_domain::TenantId,
        user: &str,
        agent: switchboard_domain::AgentId,
    ) -> Result<Arc<Vec<switchboard_domain::connection::Connection>>, switchboard_domain::DomainError> {
        let views = &self.inner.views;
        let key = (tenant, user.to_owned(), agent);
        if let Some(c) = views.connections.get(&key) {
            return Ok(c);
        }
        let since = views.connections.epoch(&key);
        let found = Arc::new(self.inner.runtime.store.tenant(tenant).user_connections(user, agent).await?);
        views.connections.fill(since, key, found.clone());
        Ok(found)
    }

    #[must_use]
    pub fn config(&self) -> &GatewayConfig {
        &self.inner.config
    }
}

/// Registers the gateway's routes.
pub fn configure(cfg: &mut web::ServiceConfig, gateway: &Gateway) {
    let limit = gateway.inner.config.max_body_bytes;
    cfg.app_data(web::Data::new(gateway.clone()))
        .service(
            web::resource("/mcp/{tenant}/{agent}/{server}")
                .app_data(web::PayloadConfig::default().limit(limit))
                .route(web::post().to(handler::post))
                .route(web::get().to(streams::get))
                .route(web::delete().to(streams::delete)),
        )
        .service(
            web::resource("/mcp/{tenant}/{agent}")
                .app_data(web::PayloadConfig::default().limit(limit))
                .route(web::post().to(agent::post))
                .route(web::get().to(agent::get))
                .route(web::delete().to(agent::delete)),
        )
        .service(
            web::resource("/.well-known/oauth-protected-resource/mcp/{tenant}/{agent}")
                .route(web::get().to(agent::resource_metadata)),
        )
        .service(
            web::resource("/.well-known/oauth-protected-resource/mcp/{tenant}/{agent}/{server}")
                .route(web::get().to(pages::resource_metadata)),
        )
        .service(web::resource("/connect/{request}").route(web::get().to(pages::connect_page)))
        .configure(oauth::configure);
}
