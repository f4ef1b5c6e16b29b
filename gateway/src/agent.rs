//! One endpoint per agent: `POST/DELETE /mcp/{tenant}/{agent}` is one MCP server carrying every
//! server attached to the agent. Names are `<server_slug>__<name>` for tools and prompts, and
//! resource URIs `switchboard://<server_slug>/<upstream uri>` (resource names are prefixed like
//! tools). Server slugs hold only `a-z`, `0-9` and `-`, so the first `__` always ends the slug:
//! the names are stable (a slug cannot change while users are connected through it) and never
//! collide across servers.
//!
//! Each message is served by the per-server route's own code (`handler::serve`): the ticket's
//! checks, the attachment's filter, the user's credential, "connect first", streaming — so the
//! agent endpoint enforces exactly what the routes do. Lists fan out to every server at once and
//! are merged; a call goes to the one server its name names. The client's session (`sba_…`,
//! answered here) maps onto one gateway session per upstream (`sbs_…`), which maps lazily onto
//! the upstream's own and is initialized again when the upstream forgets it. A server the user
//! has not connected keeps its tools listed (the last tool list anyone got through this agent —
//! never resources or prompts, which may be someone's data — or one `<slug>__connect` tool), and
//! calling one answers with the connect elicitation. A server that
//! is down is left out of lists while the others answer.

use std::sync::Arc;

use actix_web::http::header::{HeaderMap, HeaderName, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use switchboard_domain::TenantId;
use switchboard_domain::agent::Agent;
use switchboard_domain::connection::GrantKey;
use switchboard_worker::changes::Change;

use crate::answer::{bearer, header, json_response};
use crate::inbound::{Caller, Refusal, VerifiedTicket};
use crate::observe::Observed;
use crate::rpc::{self, Era, Message, code};
use crate::{Gateway, Inner, handler, sessions};

const SESSION_PREFIX: &str = "sba_";
/// Between the server slug and the upstream name.
pub const SEPARATOR: &str = "__";
/// The tool listed for a server the user has not connected, when no list of it is known.
pub const CONNECT_TOOL: &str = "connect";
const URI_PREFIX: &str = "switchboard://";
const MODERN: &str = "2026-07-28";
/// Pages read from one upstream for one merged list.
const MAX_PAGES: usize = 10;

pub(crate) type AgentSegments = web::Path<(String, String)>;

/// What an agent session id holds (sealed, like a gateway session's).
#[derive(Clone, Debug, Serialize, Deserialize)]
struct AgentSession {
    init: Value,
    url: bool,
    user: String,
    agent: uuid::Uuid,
    at: i64,
}

/// The verified caller of an agent endpoint: one route caller per attached server.
struct AgentCaller {
    ticket: Arc<VerifiedTicket>,
    agent: Arc<Agent>,
    tenant: TenantId,
    servers: Vec<Caller>,
}

impl Inner {
    fn agent_url(&self, tenant: &str, agent: &str) -> String {
        self.route_url(&(tenant.to_owned(), agent.to_owned(), String::new()))
    }

    async fn agent(&self, tenant: TenantId, agent: &str) -> Result<Arc<Agent>, Refusal> {
        let key = (tenant, agent.to_owned());
        if let Some(a) = self.views.agents.get(&key) {
            return Ok(a);
        }
        let since = self.views.agents.epoch(&key);
        let found = Arc::new(self.runtime.store.tenant(tenant).agent_by_ref(agent).await?);
        self.views.agents.fill(since, key, found.clone());
        Ok(found)
    }
}

async fn authenticate(gw: &Gateway, presented: Option<&str>, path: &(String, String)) -> Result<AgentCaller, Refusal> {
    let inner = &gw.inner;
    let presented = presented.ok_or(Refusal::NoCredential)?;
    if presented.starts_with("sb_") {
        return Err(Refusal::ApiKey);
    }
    let ticket = inner.verify(presented).await?;
    if ticket.authority.audience.as_ref().is_some_and(|a| *a != inner.agent_url(&path.0, &path.1)) {
        return Err(Refusal::Audience);
    }
    let tenant = ticket.tenant;
    let key = inner.tenant_key(tenant).await?;
    if !crate::inbound::names_tenant(&path.0, tenant, &key.slug) {
        return Err(Refusal::NotFound(format!("no gateway route /mcp/{}/…", path.0)));
    }
    let agent = inner.agent(tenant, &path.1).await?;
    match ticket.authorize_agent(agent.id, Some(&agent.slug), "list") {
        Ok(()) => {}
        Err(switchboard_domain::ticket::TicketError::Scope) => return Err(Refusal::Scope),
        Err(e) => return Err(Refusal::Ticket(e)),
    }
    let attachments = gw.agent_attachments(tenant, agent.id).await?;
    let mut servers = Vec::with_capacity(attachments.len());
    for a in attachments.iter() {
        // One server that cannot be resolved (detached meanwhile, a failing read) is left out;
        // the others still answer.
        let route = match inner.route(tenant, &agent.slug, &a.server_slug).await {
            Ok(r) => r,
            Err(r) => {
                tracing::warn!(tenant.id = %tenant, server = %a.server_slug, refusal = ?r, "left out of the agent endpoint");
                continue;
            }
        };
        let key = GrantKey {
            tenant_id: tenant,
            user_id: ticket.authority.user.clone(),
            agent_id: agent.id,
            mcp_server_id: route.server.id,
        };
        servers.push(Caller { ticket: ticket.clone(), route, key });
    }
    Ok(AgentCaller { ticket, agent, tenant, servers })
}

fn segments(path: &(String, String), caller: &Caller) -> (String, String, String) {
    (path.0.clone(), path.1.clone(), caller.route.server.slug.clone())
}

/// The per-server copy of the client's headers: its session replaced by the one this agent
/// session holds with the server, and `Mcp-Name` by the upstream's name.
fn upstream_headers(client: &HeaderMap, session: Option<&str>, name: Option<&str>) -> HeaderMap {
    let mut h = client.clone();
    h.remove("mcp-session-id");
    if let Some(v) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        h.insert(HeaderName::from_static("mcp-session-id"), v);
    }
    if let (Some(n), true) = (name, h.contains_key("mcp-name"))
        && let Ok(v) = HeaderValue::from_str(n)
    {
        h.insert(HeaderName::from_static("mcp-name"), v);
    }
    h
}

/// `POST /mcp/{tenant}/{agent}`.
pub(crate) async fn post(gw: web::Data<Gateway>, req: HttpRequest, path: AgentSegments, body: Bytes) -> HttpResponse {
    let inner = &gw.inner;
    if let Err(r) = inner.check_origin(&req) {
        return agent_refusal(inner, &path, &r);
    }
    let caller = match authenticate(&gw, bearer(&req), &path).await {
        Ok(c) => c,
        Err(r) => return agent_refusal(inner, &path, &r),
    };
    let message = match Message::parse(&body) {
        Ok(m) => m,
        Err(e) => return crate::answer::bad_message(&e),
    };
    let era = message.era(header(&req, "mcp-protocol-version"));
    let id = message.id.clone();
    let session = match header(&req, "mcp-session-id") {
        Some(s) if era == Era::Legacy && message.method() != "initialize" => match open_session(inner, &caller, s) {
            Some(_) => Some(s.to_owned()),
            None => return HttpResponse::NotFound().finish(),
        },
        _ => None,
    };
    if !message.is_request() {
        return HttpResponse::Accepted().finish();
    }
    let method = message.method().to_owned();
    let result = |v: Value| json_response(200, &rpc::result(id.as_ref(), v));
    match method.as_str() {
        "initialize" => initialize(inner, &caller, &message),
        "server/discover" => result(json!({
            "supportedVersions": [MODERN],
            "capabilities": capabilities(),
            "instructions": instructions(&caller),
            "ttlMs": 0,
            "cacheScope": "private",
            "resultType": "complete",
            "_meta": {"io.modelcontextprotocol/serverInfo": server_info(&caller)},
        })),
        "ping" | "logging/setLevel" => result(json!({})),
        "tools/list" | "prompts/list" | "resources/list" | "resources/templates/list" => {
            merged_list(&gw, &req, &path, &caller, &message, session.as_deref(), era).await
        }
        "tools/call" | "prompts/get" | "resources/read" => {
            routed(inner, &req, &path, &caller, &message, session.as_deref()).await
        }
        other => {
            let status = if era == Era::Modern { 404 } else { 200 };
            json_response(
                status,
                &rpc::error(id.as_ref(), code::METHOD_NOT_FOUND, &format!("Method not found: {other}"), None),
            )
        }
    }
}

fn agent_refusal(inner: &Inner, path: &(String, String), r: &Refusal) -> HttpResponse {
    inner.refusal(&(path.0.clone(), path.1.clone(), String::new()), r)
}

fn capabilities() -> Value {
    json!({"tools": {"listChanged": false}, "prompts": {"listChanged": false}, "resources": {"listChanged": false}})
}

fn server_info(caller: &AgentCaller) -> Value {
    json!({"name": caller.agent.name, "version": "switchboard-gateway"})
}

fn instructions(caller: &AgentCaller) -> String {
    let names: Vec<&str> = caller.servers.iter().map(|c| c.route.server.slug.as_str()).collect();
    format!(
        "The tools of {} services ({}), named <service>{SEPARATOR}<tool>. A service you have not connected asks you to connect it the first time one of its tools is used.",
        names.len(),
        names.join(", ")
    )
}

fn open_session(inner: &Inner, caller: &AgentCaller, id: &str) -> Option<AgentSession> {
    let (tenant, s): (TenantId, AgentSession) =
        crate::connect::open_json(inner.runtime.store.envelope(), "agent_session", SESSION_PREFIX, id)?;
    let ours = tenant == caller.tenant && s.user == caller.ticket.authority.user && s.agent == caller.agent.id.0;
    (ours && inner.sessions.live(id, s.at)).then_some(s)
}

fn initialize(inner: &Inner, caller: &AgentCaller, message: &Message) -> HttpResponse {
    let id = message.id.as_ref();
    let params = message.params().cloned().unwrap_or(Value::Null);
    let asked = params.get("protocolVersion").and_then(Value::as_str).unwrap_or("2025-06-18");
    let version = if matches!(asked, "2025-06-18" | "2025-11-25") { asked } else { "2025-11-25" }.to_owned();
    let session = AgentSession {
        url: rpc::supports_url_elicitation(message.capabilities()),
        init: params,
        user: caller.ticket.authority.user.clone(),
        agent: caller.agent.id.0,
        at: switchboard_domain::clock::now().timestamp(),
    };
    let Some(sid) = crate::connect::seal_json(
        inner.runtime.store.envelope(),
        caller.tenant,
        "agent_session",
        SESSION_PREFIX,
        &session,
    ) else {
        return json_response(500, &rpc::error(id, -32603, "the session could not be created", None));
    };
    let result = json!({
        "protocolVersion": version,
        "capabilities": capabilities(),
        "serverInfo": server_info(caller),
        "instructions": instructions(caller),
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header(("mcp-session-id", sid))
        .body(rpc::result(id, result).to_string())
}

/// The gateway session this agent session holds with `server` (made on first use, per
/// process: a gateway session maps onto its upstream's lazily anyway).
fn server_session(inner: &Inner, agent_session: &str, caller: &Caller) -> Option<String> {
    let key = (sessions::digest(agent_session), caller.route.server.id.0);
    if let Some(s) = inner.sessions.per_server.get(&key) {
        return Some(s);
    }
    let (_, s): (TenantId, AgentSession) =
        crate::connect::open_json(inner.runtime.store.envelope(), "agent_session", SESSION_PREFIX, agent_session)?;
    let id = sessions::seal(inner.runtime.store.envelope(), &caller.key, s.init, s.url)?;
    inner.sessions.per_server.put(key, id.clone());
    Some(id)
}

/// Serves `body` on `caller`'s route with the agent session's per-server session and the
/// upstream's name; observed (metrics, health) as the route's own request.
async fn on_server(
    inner: &Inner,
    client: &HeaderMap,
    path: &(String, String),
    caller: &Caller,
    session: Option<&str>,
    name: Option<&str>,
    body: Bytes,
) -> HttpResponse {
    let route = segments(path, caller);
    let server_session = session.and_then(|s| server_session(inner, s, caller));
    let headers = upstream_headers(client, server_session.as_deref(), name);
    let mut observed = Observed::start(&route, "post");
    let mut res = handler::serve(inner, &headers, &route, caller, body, &mut observed).await;
    observed.finish(inner);
    res.headers_mut().remove("mcp-session-id");
    res
}

/// What one server gave a merged list.
enum Part {
    Items(Vec<Value>),
    NotConnected,
    Down(String),
}

async fn list_from(
    inner: &Inner,
    client: &HeaderMap,
    path: &(String, String),
    caller: &Caller,
    message: &Message,
    session: Option<&str>,
) -> Part {
    let method = message.method();
    let Some((list, _)) = crate::filter::list_of(method) else { return Part::Items(vec![]) };
    let id = json!("switchboard-list");
    let meta = message.params().and_then(|p| p.get("_meta")).cloned();
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..MAX_PAGES {
        let mut params = serde_json::Map::new();
        if let Some(m) = &meta {
            params.insert("_meta".into(), m.clone());
        }
        if let Some(c) = &cursor {
            params.insert("cursor".into(), json!(c));
        }
        let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": Value::Object(params)});
        let res = on_server(inner, client, path, caller, session, None, Bytes::from(body.to_string())).await;
        let status = res.status();
        let Ok(bytes) = actix_web::body::to_bytes(res.into_body()).await else {
            return Part::Down("the answer could not be read".into());
        };
        let Some(answer) = crate::filter::response_in(&bytes, &id) else {
            return Part::Down(format!("HTTP {}", status.as_u16()));
        };
        if let Some(error) = answer.get("error") {
            let connect = error.get("data").is_some_and(|d| d.to_string().contains("/connect/"));
            return if connect {
                Part::NotConnected
            } else {
                Part::Down(error["message"].as_str().unwrap_or("error").to_owned())
            };
        }
        let result = answer.get("result").unwrap_or(&Value::Null);
        if result.get("resultType").and_then(Value::as_str) == Some("input_required") {
            return Part::NotConnected;
        }
        items.extend(result.get(list).and_then(Value::as_array).cloned().unwrap_or_default());
        match result.get("nextCursor").and_then(Value::as_str) {
            Some(c) if !c.is_empty() => cursor = Some(c.to_owned()),
            _ => break,
        }
    }
    Part::Items(items)
}

/// An upstream item as the agent endpoint shows it.
fn prefixed(method: &str, slug: &str, mut item: Value) -> Value {
    let Some(map) = item.as_object_mut() else { return item };
    if let Some(name) = map.get("name").and_then(Value::as_str) {
        let name = format!("{slug}{SEPARATOR}{name}");
        map.insert("name".into(), json!(name));
    }
    let uri_key = match method {
        "resources/list" => Some("uri"),
        "resources/templates/list" => Some("uriTemplate"),
        _ => None,
    };
    if let Some(k) = uri_key
        && let Some(uri) = map.get(k).and_then(Value::as_str)
    {
        let uri = format!("{URI_PREFIX}{slug}/{uri}");
        map.insert(k.into(), json!(uri));
    }
    item
}

async fn merged_list(
    gw: &Gateway,
    req: &HttpRequest,
    path: &(String, String),
    caller: &AgentCaller,
    message: &Message,
    session: Option<&str>,
    era: Era,
) -> HttpResponse {
    let inner = &gw.inner;
    let method = message.method();
    let Some((list, _)) = crate::filter::list_of(method) else {
        return json_response(200, &rpc::error(message.id.as_ref(), code::METHOD_NOT_FOUND, "Method not found", None));
    };
    let parts = futures_util::future::join_all(
        caller.servers.iter().map(|c| list_from(inner, req.headers(), path, c, message, session)),
    )
    .await;
    let mut merged = Vec::new();
    for (c, part) in caller.servers.iter().zip(parts) {
        let slug = &c.route.server.slug;
        let known_key = (caller.tenant, caller.agent.id, c.route.server.id, method.to_owned());
        match part {
            Part::Items(items) => {
                let items: Vec<Value> = items.into_iter().map(|i| prefixed(method, slug, i)).collect();
                // Only tool lists are kept for users yet to connect: what a server offers, not a
                // user's data (resources and prompts may be someone's files and text).
                if method == "tools/list" {
                    inner.sessions.known_lists.put(known_key, Arc::new(items.clone()));
                }
                merged.extend(items);
            }
            Part::NotConnected => match inner.sessions.known_lists.get(&known_key) {
                Some(items) => merged.extend(items.iter().cloned()),
                None if method == "tools/list" => merged.push(json!({
                    "name": format!("{slug}{SEPARATOR}{CONNECT_TOOL}"),
                    "title": format!("Connect {}", c.route.server.name),
                    "description": format!("Connect {} to use its tools: you will be asked to approve it in your browser.", c.route.server.name),
                    "inputSchema": {"type": "object", "properties": {}},
                })),
                None => {}
            },
            Part::Down(why) => {
                tracing::warn!(tenant.id = %caller.tenant, server = %slug, why, "left out of the agent's merged list");
            }
        }
    }
    let mut result = serde_json::Map::new();
    result.insert(list.into(), Value::Array(merged));
    if era == Era::Modern {
        result.insert("resultType".into(), json!("complete"));
        result.insert("ttlMs".into(), json!(0));
        result.insert("cacheScope".into(), json!("private"));
    }
    json_response(200, &rpc::result(message.id.as_ref(), Value::Object(result)))
}

/// A call, a prompt or a resource read, sent to the server its name or URI names.
async fn routed(
    inner: &Inner,
    req: &HttpRequest,
    path: &(String, String),
    caller: &AgentCaller,
    message: &Message,
    session: Option<&str>,
) -> HttpResponse {
    let id = message.id.as_ref();
    let method = message.method();
    let (key, unknown) = match method {
        "resources/read" => ("uri", "Resource not found"),
        "prompts/get" => ("name", "Unknown prompt"),
        _ => ("name", "Unknown tool"),
    };
    let asked = message.params().and_then(|p| p.get(key)).and_then(Value::as_str).unwrap_or("");
    let split = if key == "uri" {
        asked.strip_prefix(URI_PREFIX).and_then(|rest| rest.split_once('/'))
    } else {
        asked.split_once(SEPARATOR)
    };
    let refused = || {
        let c = if method == "resources/read" { code::RESOURCE_NOT_FOUND } else { code::INVALID_PARAMS };
        json_response(200, &rpc::error(id, c, &format!("{unknown}: {asked}"), None))
    };
    let Some((slug, upstream_name)) = split else { return refused() };
    let Some(server) = caller.servers.iter().find(|c| c.route.server.slug == slug) else { return refused() };
    // The stand-in tool of a server not yet connected: "connect first" if still so.
    let known = (caller.tenant, caller.agent.id, server.route.server.id, "tools/list".to_owned());
    let real_tool =
        inner.sessions.known_lists.get(&known).is_some_and(|l| l.iter().any(|t| t.get("name") == Some(&json!(asked))));
    if method == "tools/call"
        && upstream_name == CONNECT_TOOL
        && !real_tool
        && let Ok(Ok(_)) = inner.credential(server, None).await
    {
        let text = format!("{} is connected: list the tools again to see its own.", server.route.server.name);
        return json_response(200, &rpc::result(id, json!({"content": [{"type": "text", "text": text}]})));
    }
    let mut body = message.value.clone();
    if let Some(p) = body.get_mut("params").and_then(Value::as_object_mut) {
        p.insert(key.into(), json!(upstream_name));
    }
    on_server(inner, req.headers(), path, server, session, Some(upstream_name), Bytes::from(body.to_string())).await
}

/// `DELETE /mcp/{tenant}/{agent}`: ends the agent session and the gateway sessions it holds.
pub(crate) async fn delete(gw: web::Data<Gateway>, req: HttpRequest, path: AgentSegments) -> HttpResponse {
    let inner = &gw.inner;
    let caller = match authenticate(&gw, bearer(&req), &path).await {
        Ok(c) => c,
        Err(r) => return agent_refusal(inner, &path, &r),
    };
    let Some(session) = header(&req, "mcp-session-id").filter(|s| open_session(inner, &caller, s).is_some()) else {
        return HttpResponse::NotFound().finish();
    };
    for c in &caller.servers {
        let key = (sessions::digest(session), c.route.server.id.0);
        if let Some(s) = inner.sessions.per_server.get(&key) {
            inner.sessions.end(&s);
            inner.runtime.changes.publish(Change::SessionEnded { session: sessions::digest(&s) });
            inner.sessions.per_server.remove(&key);
        }
    }
    inner.sessions.end(session);
    inner.runtime.changes.publish(Change::SessionEnded { session: sessions::digest(session) });
    HttpResponse::NoContent().finish()
}

/// `GET /mcp/{tenant}/{agent}`: no server-initiated stream on a merged endpoint (405, as the
/// spec allows).
pub(crate) async fn get() -> HttpResponse {
    HttpResponse::MethodNotAllowed().insert_header(("allow", "POST, DELETE")).finish()
}

/// `GET /.well-known/oauth-protected-resource/mcp/{tenant}/{agent}`.
pub(crate) async fn resource_metadata(gw: web::Data<Gateway>, path: AgentSegments) -> HttpResponse {
    crate::pages::metadata_document(&gw.inner, &(path.0.clone(), path.1.clone(), String::new())).await
}
