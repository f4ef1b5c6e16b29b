//! Who is calling and which route: the session ticket (verified with the tenant's cached public
//! key, checked against the cached revocation state) and the route's agent, server and filter —
//! all from [`Views`], which the database fills once and changes empty at once.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use switchboard_domain::agent::{Agent, Filter};
use switchboard_domain::connection::{Connection, GrantKey};
use switchboard_domain::mcp_server::McpServer;
use switchboard_domain::ticket::{self, TicketError, TicketRequest};
use switchboard_domain::{DomainError, TenantId};
use switchboard_worker::changes::Change;

use crate::cache::Ttl;

/// How long a view is trusted without a change announcing otherwise.
const VIEW_LIFE: Duration = Duration::from_secs(30);
const MAX_ENTRIES: usize = 100_000;

/// A grant's credential as the gateway keeps it. The token is never logged or shown: `Debug`
/// leaves it out.
pub struct Credential {
    pub(crate) bearer: Option<String>,
    pub(crate) source: Option<switchboard_worker::consent::Source>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential").field("bearer", &self.bearer.as_ref().map(|_| "[redacted]")).finish()
    }
}

/// A tenant's ticket key and slug.
pub(crate) struct TenantKey {
    pub(crate) public_hex: String,
    pub(crate) slug: String,
}

/// A ticket whose signature checked out and that was not revoked when it was read.
pub struct VerifiedTicket {
    pub tenant: TenantId,
    pub token: biscuit_auth::Biscuit,
    pub authority: ticket::Authority,
    /// The last block's revocation id: what names this very ticket (revoking it revokes the
    /// ticket and what is narrowed from it; the root's id revokes the whole family).
    pub revocation_id: String,
}

impl VerifiedTicket {
    /// The agent-level check of a request: expiry and agent, from the authority facts when the
    /// ticket is not attenuated (no Datalog), else every block's checks (see
    /// [`ticket::authorize_agent`]).
    pub fn authorize_agent(
        &self,
        agent: switchboard_domain::AgentId,
        agent_slug: Option<&str>,
        operation: &str,
    ) -> Result<(), TicketError> {
        if let (false, Some(expires)) = (ticket::attenuated(&self.token), self.authority.expires_at) {
            if SystemTime::now() > expires {
                return Err(TicketError::Expired);
            }
            let agent = agent.to_string();
            return if self.authority.agents.contains(&agent) { Ok(()) } else { Err(TicketError::Scope) };
        }
        ticket::authorize_agent(&self.token, agent, agent_slug, operation, SystemTime::now())
    }
}

/// What a route resolves to.
pub(crate) struct Route {
    pub(crate) agent: Agent,
    pub(crate) server: McpServer,
    pub(crate) filter: Filter,
}

/// The gateway's views; see `cache.rs`.
pub(crate) struct Views {
    pub(crate) keys: Ttl<TenantId, Arc<TenantKey>>,
    /// An agent's attachments (the runtime list's view).
    pub(crate) attachments:
        Ttl<(TenantId, switchboard_domain::AgentId), Arc<Vec<switchboard_domain::agent::Attachment>>>,
    pub(crate) tickets: Ttl<[u8; 32], Arc<VerifiedTicket>>,
    pub(crate) routes: Ttl<(TenantId, String, String), Arc<Route>>,
    /// Agents by the `{agent}` segment of an agent endpoint.
    pub(crate) agents: Ttl<(TenantId, String), Arc<Agent>>,
    /// Client ID Metadata Documents by URL (the authorization server's `client_id`s that are
    /// URLs): fetched once per five minutes, not once per authorization request.
    pub(crate) client_documents: Ttl<String, Arc<switchboard_domain::sign_in::GatewayClient>>,
    pub(crate) credentials: Ttl<GrantKey, Arc<Credential>>,
    /// A user's connections through an agent (the runtime list's statuses): every status write
    /// announces its grant (`Change::Grant`), bulk ones their tenant or all (`Statuses`).
    pub(crate) connections: Ttl<(TenantId, String, switchboard_domain::AgentId), Arc<Vec<Connection>>>,
}

impl Default for Views {
    fn default() -> Self {
        Self {
            keys: Ttl::new(Duration::from_secs(300), 10_000),
            attachments: Ttl::new(VIEW_LIFE, MAX_ENTRIES),
            tickets: Ttl::new(VIEW_LIFE, MAX_ENTRIES),
            routes: Ttl::new(VIEW_LIFE, MAX_ENTRIES),
            agents: Ttl::new(VIEW_LIFE, MAX_ENTRIES),
            client_documents: Ttl::new(Duration::from_secs(300), 10_000),
            credentials: Ttl::new(Duration::from_secs(300), MAX_ENTRIES),
            connections: Ttl::new(VIEW_LIFE, MAX_ENTRIES),
        }
    }
}

impl Views {
    pub(crate) fn apply(&self, change: &Change) {
        match change {
            Change::Routes { tenant } => {
                self.routes.retain(|(t, _, _), _| t != tenant);
                self.agents.retain(|(t, _), _| t != tenant);
                self.attachments.retain(|(t, _), _| t != tenant);
                // A server's static token or client credentials may have changed with it.
                self.credentials.retain(|k, _| k.tenant_id != *tenant);
            }
            Change::Tickets { tenant } => {
                self.tickets.retain(|_, v| v.tenant != *tenant);
                self.keys.remove(tenant);
            }
            Change::Grant { tenant, user, agent, server } => {
                self.credentials.retain(|k, _| {
                    !(k.tenant_id == *tenant
                        && k.user_id == *user
                        && k.agent_id == *agent
                        && k.mcp_server_id == *server)
                });
                self.connections.remove(&(*tenant, user.clone(), *agent));
            }
            Change::Grants { tenant } => {
                self.credentials.retain(|k, _| k.tenant_id != *tenant);
                self.connections.retain(|(t, _, _), _| t != tenant);
            }
            Change::Statuses => self.connections.retain(|_, _| false),
            Change::SessionEnded { .. } => {}
            Change::Tenant { tenant } if tenant.0.is_nil() => self.clear(),
            Change::Tenant { tenant } => {
                self.keys.remove(tenant);
                self.attachments.retain(|(t, _), _| t != tenant);
                self.tickets.retain(|_, v| v.tenant != *tenant);
                self.routes.retain(|(t, _, _), _| t != tenant);
                self.agents.retain(|(t, _), _| t != tenant);
                self.credentials.retain(|k, _| k.tenant_id != *tenant);
                self.connections.retain(|(t, _, _), _| t != tenant);
            }
        }
    }

    pub(crate) fn clear(&self) {
        self.keys.retain(|_, _| false);
        self.attachments.retain(|_, _| false);
        self.tickets.retain(|_, _| false);
        self.routes.retain(|_, _| false);
        self.agents.retain(|_, _| false);
        self.credentials.retain(|_, _| false);
        self.connections.retain(|_, _| false);
    }
}

/// Why a request is refused before it reaches the upstream, as the HTTP answer says it.
#[derive(Debug)]
pub enum Refusal {
    /// No bearer credential: 401 with the route's resource metadata.
    NoCredential,
    /// 401 `invalid_token`.
    Ticket(TicketError),
    /// An API key where a ticket belongs.
    ApiKey,
    /// 404: another tenant's route, or no such agent, server or attachment.
    NotFound(String),
    /// 403 `ticket_scope`.
    Scope,
    /// 403 `ticket_scope`, with the finding that says which check failed.
    ScopeExplained(Box<switchboard_domain::finding::Finding>),
    /// A call's argument over a cap of the ticket (or missing): a JSON-RPC invalid-params error.
    Argument(String),
    /// 401 `invalid_token`: an access token issued for another gateway URL (its RFC 8707
    /// resource), or one presented outside the gateway.
    Audience,
    /// 503: the database could not be asked.
    Unavailable,
    /// 403: an `Origin` the gateway does not serve, or a `Host` that is not its own.
    Origin,
}

impl From<DomainError> for Refusal {
    fn from(e: DomainError) -> Self {
        match e {
            DomainError::NotFound { kind, id } => Self::NotFound(format!("{kind} `{id}` not found")),
            other => {
                tracing::error!(error = %switchboard_domain::error::chain(&other), "gateway lookup failed");
                Self::Unavailable
            }
        }
    }
}

/// Whether the `{tenant}` segment of a public URL names `tenant`: its slug, or its id in either
/// spelling.
pub(crate) fn names_tenant(segment: &str, tenant: TenantId, slug: &str) -> bool {
    segment == slug || segment == tenant.0.to_string() || segment == tenant.0.simple().to_string()
}

/// The verified caller of a route.
pub(crate) struct Caller {
    pub(crate) ticket: Arc<VerifiedTicket>,
    pub(crate) route: Arc<Route>,
    pub(crate) key: GrantKey,
}

impl crate::Inner {
    /// The ticket in `presented` verified and the route resolved; `segments` are the route's
    /// (tenant, agent, server).
    pub(crate) async fn authenticate(
        &self,
        presented: Option<&str>,
        segments: (&str, &str, &str),
    ) -> Result<Caller, Refusal> {
        let presented = presented.ok_or(Refusal::NoCredential)?;
        if presented.starts_with("sb_") {
            return Err(Refusal::ApiKey);
        }
        let verified = self.verify(presented).await?;
        if let Some(audience) = &verified.authority.audience {
            let here = self.route_url(&(segments.0.to_owned(), segments.1.to_owned(), segments.2.to_owned()));
            if *audience != here {
                return Err(Refusal::Audience);
            }
        }
        let tenant = verified.tenant;
        let key = self.tenant_key(tenant).await?;
        // Another tenant's route: as if it did not exist.
        if !names_tenant(segments.0, tenant, &key.slug) {
            return Err(Refusal::NotFound(format!("no gateway route /mcp/{}/…", segments.0)));
        }
        let route = self.route(tenant, segments.1, segments.2).await?;
        let key = GrantKey {
            tenant_id: tenant,
            user_id: verified.authority.user.clone(),
            agent_id: route.agent.id,
            mcp_server_id: route.server.id,
        };
        Ok(Caller { ticket: verified, route, key })
    }

    pub(crate) async fn tenant_key(&self, tenant: TenantId) -> Result<Arc<TenantKey>, Refusal> {
        if let Some(k) = self.views.keys.get(&tenant) {
            return Ok(k);
        }
        let since = self.views.keys.epoch(&tenant);
        let store = self.runtime.store.tenant(tenant);
        let slug = match store.own_tenant().await {
            Ok(t) if t.deleted_at.is_none() => t.slug,
            Ok(_) | Err(DomainError::NotFound { .. }) => return Err(Refusal::Ticket(TicketError::BadSignature)),
            Err(e) => return Err(e.into()),
        };
        let public_hex = store.signing_key().await?.public_hex();
        let k = Arc::new(TenantKey { public_hex, slug });
        self.views.keys.fill(since, tenant, k.clone());
        Ok(k)
    }

    pub(crate) async fn verify(&self, presented: &str) -> Result<Arc<VerifiedTicket>, Refusal> {
        let digest = switchboard_domain::crypto::sha256(presented.as_bytes());
        if let Some(v) = self.views.tickets.get(&digest) {
            return Ok(v);
        }
        let since = self.views.tickets.epoch(&digest);
        let tenant = ticket::tenant_of(presented).map_err(Refusal::Ticket)?;
        let key = self.tenant_key(tenant).await?;
        let (token, ids) = ticket::open(presented, &key.public_hex).map_err(Refusal::Ticket)?;
        if self.runtime.store.tenant(tenant).any_ticket_revoked(&ids).await? {
            return Err(Refusal::Ticket(TicketError::Revoked));
        }
        let authority = ticket::authority(&token).map_err(Refusal::Ticket)?;
        let life = authority.expires_at.and_then(|e| e.duration_since(SystemTime::now()).ok()).unwrap_or(VIEW_LIFE);
        let revocation_id = ids.last().cloned().unwrap_or_default();
        let v = Arc::new(VerifiedTicket { tenant, token, authority, revocation_id });
        self.views.tickets.fill_for(since, digest, v.clone(), life);
        Ok(v)
    }

    pub(crate) async fn route(&self, tenant: TenantId, agent: &str, server: &str) -> Result<Arc<Route>, Refusal> {
        let cache_key = (tenant, agent.to_owned(), server.to_owned());
        if let Some(r) = self.views.routes.get(&cache_key) {
            return Ok(r);
        }
        let since = self.views.routes.epoch(&cache_key);
        let (agent, server, attachment) = self.runtime.store.tenant(tenant).resolve_route(agent, server).await?;
        let route = Arc::new(Route { agent, server, filter: attachment.filter() });
        self.views.routes.fill(since, cache_key, route.clone());
        Ok(route)
    }
}

impl Caller {
    /// Checks the ticket for this request: `operation` is `call` for a tool, prompt or resource,
    /// `list` for anything else; a `tools/call`'s `arguments` meet the ticket's caps. An
    /// unattenuated ticket is decided from its authority facts (no Datalog); an attenuated one
    /// runs every block's checks.
    pub(crate) fn authorize(
        &self,
        operation: &str,
        tool: Option<&str>,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> Result<(), Refusal> {
        let t = &self.ticket;
        if !ticket::attenuated(&t.token) && t.authority.expires_at.is_some() {
            return match t.authorize_agent(self.route.agent.id, None, operation) {
                Ok(()) => Ok(()),
                Err(TicketError::Scope) => Err(Refusal::Scope),
                Err(e) => Err(Refusal::Ticket(e)),
            };
        }
        let server = self.route.server.id.to_string();
        let empty = serde_json::Map::new();
        let request = self.request(&server, operation, tool, arguments.or(tool.map(|_| &empty)));
        match ticket::authorize(&t.token, &request, SystemTime::now()) {
            Ok(_) => Ok(()),
            Err(TicketError::Scope) => Err(Refusal::Scope),
            Err(TicketError::Argument(m)) => Err(Refusal::Argument(m)),
            Err(e) => Err(Refusal::Ticket(e)),
        }
    }

    /// The request as the ticket's checks see it. A call without arguments has none: a cap then
    /// reads the argument as missing.
    fn request<'a>(
        &'a self,
        server: &'a str,
        operation: &'a str,
        tool: Option<&'a str>,
        arguments: Option<&'a serde_json::Map<String, serde_json::Value>>,
    ) -> TicketRequest<'a> {
        TicketRequest {
            agent: self.route.agent.id,
            agent_slug: Some(&self.route.agent.slug),
            server: Some(server),
            server_slug: Some(&self.route.server.slug),
            tool,
            operation,
            arguments,
        }
    }

    /// Why [`Self::authorize`] refused with [`Refusal::Scope`]: the `ticket_scope` finding, with
    /// the check that failed and what the ticket covers (the ticket is evaluated once more).
    pub(crate) fn scope_finding(
        &self,
        operation: &str,
        tool: Option<&str>,
        arguments: Option<&serde_json::Map<String, serde_json::Value>>,
    ) -> switchboard_domain::finding::Finding {
        let server = self.route.server.id.to_string();
        let empty = serde_json::Map::new();
        let request = self.request(&server, operation, tool, arguments.or(tool.map(|_| &empty)));
        ticket::scope_finding(&self.ticket.token, &self.ticket.authority, &request, SystemTime::now())
    }
}
