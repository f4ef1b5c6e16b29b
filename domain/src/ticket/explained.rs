//! A refused ticket, explained as a `ticket_scope` finding: which check of which block failed,
//! what was asked, and what the ticket covers — for the runtime plane's 403 and the gateway's.

use std::time::SystemTime;

use biscuit_auth::Biscuit;
use serde_json::json;

use super::delegation::{explain, grants};
use super::{Authority, TicketRequest};
use crate::finding::{Finding, FindingCode};

/// The `ticket_scope` finding for `request`, refused by `token`. Computed only on a refusal:
/// it evaluates the ticket once more.
#[must_use]
pub fn scope_finding(token: &Biscuit, authority: &Authority, request: &TicketRequest<'_>, now: SystemTime) -> Finding {
    let (_, failed) = explain(token, request, now);
    let asked = json!({
        "agent": request.agent.to_string(),
        "agent_slug": request.agent_slug,
        "server": request.server,
        "server_slug": request.server_slug,
        "tool": request.tool,
        "operation": request.operation,
    });
    let covers = grants(token, authority).map_or(serde_json::Value::Null, |g| {
        json!({
            "agents": g.agents,
            "agent_filter": g.agent_filter,
            "servers": g.servers,
            "tools": g.tools,
            "operations": g.operations,
            "expires_at": g.expires_at,
            "delegation_depth": g.depth,
        })
    });
    let first = failed.first();
    let detail = match first {
        Some(c) => match c.block {
            Some(0) => format!("check {} of the authority block failed: {}", c.check, c.rule),
            Some(b) => format!("check {} of block {b} (added by a holder) failed: {}", c.check, c.rule),
            None if c.rule.starts_with("allow if agent(") => {
                "the ticket does not name this agent (it was minted for other agents)".to_owned()
            }
            None => format!("the verifier's check failed: {}", c.rule),
        },
        None => "the session ticket's scope does not include this request".to_owned(),
    };
    Finding::new(FindingCode::TicketScope, detail)
        .with("failed_checks", serde_json::to_value(&failed).unwrap_or_default())
        .with("requested", asked)
        .with("ticket_covers", covers)
}
