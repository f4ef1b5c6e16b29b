//! What the gateway records of each request: one span (route segments, MCP method and tool,
//! upstream status, outcome, latency — never a credential), the Prometheus counter and latency
//! by route slugs, method and outcome, and an audit event for every refusal.

use std::time::Instant;

use serde_json::{Value, json};

use switchboard_domain::finding::FindingCode;
use switchboard_domain::health::Source;

use crate::Inner;
use crate::inbound::Caller;

/// What the span and the metrics say of a request, filled in as it goes.
pub(crate) struct Observed {
    pub(crate) span: tracing::Span,
    /// The route's agent and server slugs, once the route is known.
    pub(crate) route: Option<(String, String)>,
    pub(crate) method: &'static str,
    /// `ok`, a finding code, or what the client did wrong (`session_not_found`, `upstream_error`
    /// for the upstream's 4xx to the client's request, `refused` before the route is known).
    pub(crate) outcome: &'static str,
    /// The route's tenant and server ids, once known: what health is counted under.
    pub(crate) server: Option<(switchboard_domain::TenantId, switchboard_domain::McpServerId)>,
    /// What a failure said, for the server's health (never a secret).
    pub(crate) detail: Option<String>,
    /// Health is counted when the streamed answer arrives ([`Observed::defer`]).
    deferred: bool,
    started: Instant,
}

impl Observed {
    /// A request on the route `path` by HTTP `verb` (`post`, `get`, `delete`).
    pub(crate) fn start(path: &(String, String, String), verb: &'static str) -> Self {
        let span = tracing::info_span!(
            "gateway",
            http.method = verb, tenant = %path.0, agent = %path.1, server = %path.2,
            mcp.method = tracing::field::Empty, mcp.tool = tracing::field::Empty,
            upstream.status = tracing::field::Empty, outcome = tracing::field::Empty, latency_us = tracing::field::Empty,
            ticket.subject = tracing::field::Empty, ticket.depth = tracing::field::Empty,
            ticket.revocation_id = tracing::field::Empty,
        );
        Self {
            span,
            route: None,
            method: "other",
            outcome: "refused",
            server: None,
            detail: None,
            deferred: false,
            started: Instant::now(),
        }
    }

    /// Records who calls: the ticket's subject, its delegation depth and its revocation id.
    /// Marks the request as the route's (its metrics labels and its server's health).
    pub(crate) fn route(&mut self, caller: &Caller) {
        self.route = Some((caller.route.agent.slug.clone(), caller.route.server.slug.clone()));
        self.server = Some((caller.key.tenant_id, caller.key.mcp_server_id));
    }

    /// A failure with its finding code and what it said.
    pub(crate) fn failed(&mut self, code: FindingCode, detail: impl Into<String>) {
        self.outcome = code.as_str();
        self.detail = Some(detail.into());
    }

    pub(crate) fn ticket(&self, caller: &Caller) {
        let t = &caller.ticket;
        self.span.record("ticket.subject", t.authority.subject.as_str());
        self.span.record("ticket.depth", t.authority.depth);
        self.span.record("ticket.revocation_id", t.revocation_id.as_str());
    }

    /// Closes the record: the span's outcome and latency, and the metrics once the route is
    /// known (a request for no route has no labels to be counted under).
    pub(crate) fn finish(self, inner: &Inner) {
        let elapsed = self.started.elapsed();
        self.span.record("latency_us", u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        self.span.record("outcome", self.outcome);
        if let Some((agent, server)) = self.route {
            let labels = crate::metrics::RequestLabels { agent, server, method: self.method, outcome: self.outcome };
            inner.metrics.observe(labels, elapsed.as_secs_f64());
        }
        if let Some((tenant, server)) = self.server.filter(|_| !self.deferred) {
            let outcome = health_outcome(self.outcome);
            inner.runtime.health.record(tenant, server, Source::Gateway, outcome, elapsed, self.detail.as_deref());
        }
    }
}

/// The outcome a server's health counts: `ok`, a finding code, or `client_error` for what the
/// client's own request caused (an ended session, a request the upstream refused).
fn health_outcome(outcome: &'static str) -> &'static str {
    match outcome {
        "ok" => switchboard_domain::health::OK,
        o if FindingCode::parse(o).is_some() => o,
        _ => "client_error",
    }
}

/// How a streamed answer ended, for the server's health.
pub(crate) enum Answer<'a> {
    /// The response to the request arrived.
    Answered,
    /// The gateway ended it with an error for the request: the finding and what it said.
    Failed(FindingCode, &'a str),
    /// No answer on this request: the client went away first, or a resumable stream ended for
    /// the client to resume.
    Cancelled,
}

/// Called once when a streamed answer is known (see [`Answer`]).
pub(crate) type OnAnswer = Box<dyn for<'a> FnOnce(Answer<'a>) + Send>;

impl Observed {
    /// For an answer that streams: its health is counted when the answer (or its failure)
    /// arrives, with the latency up to then, rather than when the headers do.
    pub(crate) fn defer(&mut self, inner: &Inner) -> OnAnswer {
        self.deferred = true;
        let health = inner.runtime.health.clone();
        let (server, started) = (self.server, self.started);
        Box::new(move |answer| {
            if let Some((tenant, server)) = server {
                let (outcome, detail) = match answer {
                    Answer::Answered => (switchboard_domain::health::OK, None),
                    Answer::Failed(code, detail) => (code.as_str(), Some(detail)),
                    Answer::Cancelled => ("cancelled", None),
                };
                health.record(tenant, server, Source::Gateway, outcome, started.elapsed(), detail);
            }
        })
    }
}

impl Inner {
    /// An audit event of a refusal, written in the background (the answer does not wait on it).
    pub(crate) fn audit_refusal(&self, caller: &Caller, action: &'static str, data: Value) {
        let store = self.runtime.store.clone();
        let key = caller.key.clone();
        let t = &caller.ticket;
        let who = [
            ("subject".to_owned(), json!(t.authority.subject)),
            ("delegation_depth".to_owned(), json!(t.authority.depth)),
            ("ticket_revocation_id".to_owned(), json!(t.revocation_id)),
        ];
        tokio::spawn(async move {
            let actor = switchboard_domain::tenant::Actor::User(key.user_id.clone());
            let mut data = data;
            if let Some(map) = data.as_object_mut() {
                map.insert("agent_id".into(), json!(key.agent_id));
                map.insert("channel".into(), json!("gateway"));
                map.extend(who);
            }
            let target = Some(key.mcp_server_id.to_string());
            if let Err(e) = store.tenant(key.tenant_id).record_event(&actor, action, "mcp_server", target, data).await {
                tracing::warn!(error = %switchboard_domain::error::chain(&e), "a gateway refusal was not audited");
            }
        });
    }
}
