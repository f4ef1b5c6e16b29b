//! The bodies of `POST /v1/session-tickets` (a mint) and `POST /v1/session-tickets/attenuate` (a
//! narrowing), validated into what the ticket module takes, with field errors that name the
//! field and the fix.

use std::time::{Duration, SystemTime};

use super::delegation::{Cap, Narrowing};
use super::{DEFAULT_MAX_DELEGATION_DEPTH, MAX_LIFETIME, shape};
use crate::AgentId;

/// A JSON number that is a whole, non-negative number (`3600` or `3600.0`: JSON Schema's
/// `integer`), up to a billion.
fn whole_number(v: &serde_json::Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_f64().filter(|f| f.fract() == 0.0 && *f >= 0.0 && *f <= 1e9).map(|f| f as u64))
}

/// A validated `POST /v1/session-tickets` body.
#[derive(Clone, Debug)]
pub struct MintRequest {
    pub user_id: String,
    pub agents: Vec<AgentId>,
    pub expires_in: Duration,
    pub subject: Option<String>,
    pub max_delegation_depth: usize,
}

/// Validates `{user_id, agent_ids, expires_in?}` (expires_in in seconds, 60–86400, default 3600).
pub fn validate_mint(body: &serde_json::Value) -> Result<MintRequest, crate::DomainError> {
    use crate::FieldError;
    use crate::validate::{self, Errors, opt_string, reject_unknown};
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(crate::DomainError::Invalid(errs.0));
    };
    reject_unknown(
        &mut errs,
        map,
        "",
        &["user_id", "agent_ids", "expires_in", "subject", "max_delegation_depth"],
        &[("agent_id", "use agent_ids, an array")],
    );
    let user_id = opt_string(&mut errs, map, "", "user_id", 256);
    let subject = opt_string(&mut errs, map, "", "subject", 256);
    let max_delegation_depth = match map.get("max_delegation_depth") {
        None | Some(serde_json::Value::Null) => DEFAULT_MAX_DELEGATION_DEPTH,
        // `5.0` is a whole number too (JSON Schema's `integer`).
        Some(v) => match whole_number(v).and_then(|d| usize::try_from(d).ok()).filter(|d| *d <= shape::MAX_DEPTH) {
            Some(d) => d,
            None => {
                errs.push(FieldError::new(
                    "max_delegation_depth",
                    "out_of_range",
                    format!("max_delegation_depth must be a whole number from 0 to {}", shape::MAX_DEPTH),
                ));
                0
            }
        },
    };
    if map.get("user_id").is_none_or(serde_json::Value::is_null) {
        errs.required("user_id", "your identifier of the end user the session acts for");
    }
    let mut agents = Vec::new();
    match map.get("agent_ids") {
        Some(serde_json::Value::Array(items)) if !items.is_empty() && items.len() <= 50 => {
            for (i, item) in items.iter().enumerate() {
                match item.as_str().and_then(|s| uuid::Uuid::try_parse(s).ok()) {
                    Some(id) if !agents.contains(&AgentId(id)) => agents.push(AgentId(id)),
                    Some(_) => {}
                    None => errs.push(FieldError::new(
                        format!("agent_ids[{i}]"),
                        "invalid",
                        "each agent id must be an agent's UUID",
                    )),
                }
            }
        }
        Some(serde_json::Value::Array(_)) => {
            errs.push(FieldError::new("agent_ids", "invalid", "agent_ids must name 1 to 50 agents"));
        }
        _ => errs.push(
            FieldError::new("agent_ids", "required", "agent_ids is required: the agents this session may act for")
                .with_hint("send `\"agent_ids\": [\"<agent id>\"]`"),
        ),
    }
    let expires_in = match map.get("expires_in") {
        None | Some(serde_json::Value::Null) => 3600,
        // `3600.0` is a whole number too (JSON Schema's `integer`).
        Some(v) => match whole_number(v).filter(|s| (60..=MAX_LIFETIME.as_secs()).contains(s)) {
            Some(s) => s,
            None => {
                errs.push(FieldError::new(
                    "expires_in",
                    "out_of_range",
                    format!("expires_in must be a number of seconds from 60 to {}", MAX_LIFETIME.as_secs()),
                ));
                0
            }
        },
    };
    let user_id = errs
        .finish(user_id)?
        .ok_or_else(|| crate::DomainError::invalid("user_id", "required", "user_id is required"))?;
    Ok(MintRequest {
        user_id,
        agents,
        expires_in: Duration::from_secs(expires_in),
        subject: subject.filter(|s| !s.is_empty()),
        max_delegation_depth,
    })
}

/// Validates `POST /v1/session-tickets/attenuate`'s body: `{ticket, tools?, servers?, agents?,
/// operations?, expires_in?, caps?}`.
pub fn validate_attenuate(
    body: &serde_json::Value,
    now: SystemTime,
) -> Result<(String, Narrowing), crate::DomainError> {
    use serde_json::Value;

    use crate::FieldError;
    use crate::validate::{self, Errors, opt_string, reject_unknown};
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(crate::DomainError::Invalid(errs.0));
    };
    reject_unknown(
        &mut errs,
        map,
        "",
        &["ticket", "tools", "servers", "agents", "operations", "expires_in", "caps"],
        &[("ttl", "use expires_in, in seconds"), ("tool", "use tools, an array")],
    );
    let ticket = opt_string(&mut errs, map, "", "ticket", shape::MAX_TICKET_CHARS);
    if map.get("ticket").is_none_or(Value::is_null) {
        errs.required("ticket", "the session ticket to narrow");
    }
    let mut list = |key: &str| -> Option<Vec<String>> {
        match map.get(key) {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) if !items.is_empty() && items.len() <= 100 => {
                let names: Vec<String> = items
                    .iter()
                    .filter_map(|i| i.as_str().filter(|s| !s.is_empty() && s.chars().count() <= 256).map(str::to_owned))
                    .collect();
                if names.len() == items.len() {
                    Some(names)
                } else {
                    errs.push(FieldError::new(
                        key,
                        "invalid",
                        format!("{key} must be an array of names (1 to 256 characters)"),
                    ));
                    None
                }
            }
            Some(_) => {
                errs.push(
                    FieldError::new(key, "invalid", format!("{key} must be an array of 1 to 100 names"))
                        .with_hint("omit it to keep what the ticket has; a ticket cannot be narrowed to nothing"),
                );
                None
            }
        }
    };
    let (tools, servers, agents, operations) = (list("tools"), list("servers"), list("agents"), list("operations"));
    let expires_at = match map.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(v) => match whole_number(v).filter(|s| (1..=MAX_LIFETIME.as_secs()).contains(s)) {
            Some(s) => now.checked_add(std::time::Duration::from_secs(s)),
            None => {
                errs.push(FieldError::new(
                    "expires_in",
                    "out_of_range",
                    format!("expires_in must be a number of seconds from 1 to {}", MAX_LIFETIME.as_secs()),
                ));
                None
            }
        },
    };
    let caps = match map.get("caps") {
        None | Some(Value::Null) => vec![],
        Some(Value::Array(items)) if items.len() <= 16 => {
            let mut caps = Vec::new();
            for (i, item) in items.iter().enumerate() {
                let tool = item.get("tool").and_then(Value::as_str).filter(|s| !s.is_empty());
                let argument = item.get("argument").and_then(Value::as_str).filter(|s| !s.is_empty());
                let max = item.get("max").and_then(|m| {
                    m.as_i64()
                        .or_else(|| m.as_f64().filter(|f| f.fract() == 0.0 && f.abs() <= 9.0e15).map(|f| f as i64))
                });
                let default = item.get("default").and_then(Value::as_bool).unwrap_or(false);
                match (tool, argument, max) {
                    (Some(tool), Some(argument), Some(max)) => {
                        caps.push(Cap { tool: tool.to_owned(), argument: argument.to_owned(), max, default });
                    }
                    _ => errs.push(
                        FieldError::new(
                            format!("caps[{i}]"),
                            "invalid",
                            "a cap is {\"tool\", \"argument\", \"max\" (an integer), \"default\"?}",
                        )
                        .with_hint("{\"tool\": \"db_query\", \"argument\": \"max_rows\", \"max\": 100}"),
                    ),
                }
            }
            caps
        }
        Some(_) => {
            errs.push(FieldError::new("caps", "invalid", "caps must be an array of at most 16 caps"));
            vec![]
        }
    };
    let narrowing = Narrowing { tools, servers, agents, operations, expires_at, caps };
    let ticket = errs.finish(ticket)?.unwrap_or_default();
    Ok((ticket, narrowing))
}
