//! Agents and their attachments to MCP servers.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::validate::{self, Errors, opt_string, reject_unknown};
use crate::{AgentId, DomainError, FieldError, McpServerId, TenantId};

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub name: String,
    pub description: Option<String>,
}

/// An agent ↔ MCP server link, with the tools the agent may use (`None`: all of them).
#[derive(Clone, Debug)]
pub struct Attachment {
    pub agent_id: AgentId,
    pub mcp_server_id: McpServerId,
    pub server_name: String,
    pub server_slug: String,
    /// The server's public configuration: runtime views need its endpoint, auth type and scopes.
    pub config: crate::mcp_server::McpServerConfig,
    pub tools: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

pub fn validate_create(body: &Value) -> Result<AgentSpec, DomainError> {
    validate_map(body)
}

/// Merges a PATCH into the stored agent and validates the result.
pub fn validate_patch(current: &Agent, patch: &Value) -> Result<AgentSpec, DomainError> {
    let mut errs = Errors::default();
    let Some(patch) = validate::object(&mut errs, "", patch) else {
        return Err(DomainError::Invalid(errs.0));
    };
    let mut merged = Map::new();
    merged.insert("name".into(), Value::String(current.name.clone()));
    if let Some(d) = &current.description {
        merged.insert("description".into(), Value::String(d.clone()));
    }
    for (k, v) in patch {
        if v.is_null() {
            merged.remove(k)
        } else {
            merged.insert(k.clone(), v.clone())
        };
    }
    validate_map(&Value::Object(merged))
}

fn validate_map(body: &Value) -> Result<AgentSpec, DomainError> {
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(&mut errs, map, "", &["name", "description"], &[]);
    let name = opt_string(&mut errs, map, "", "name", 200);
    if matches!(map.get("name"), None | Some(Value::Null)) {
        errs.required("name", "a display name such as \"support-bot\"");
    }
    let description = opt_string(&mut errs, map, "", "description", 2000);
    match (errs.0.is_empty(), name) {
        (true, Some(name)) => Ok(AgentSpec { name, description }),
        _ => Err(DomainError::Invalid(errs.0)),
    }
}

/// Validates the optional body of an attach: `{"tools": ["search", …]}` or nothing (all tools).
pub fn validate_attach(body: Option<&Value>) -> Result<Option<Vec<String>>, DomainError> {
    const MAX_TOOLS: usize = 500;
    let Some(body) = body.filter(|b| !b.is_null()) else { return Ok(None) };
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(&mut errs, map, "", &["tools"], &[("allowed_tools", "the allow-list field is `tools`")]);
    let tools = match map.get("tools") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                // Exactly the document's rule: 1-128 characters, no control character, no
                // surrounding whitespace.
                match item.as_str() {
                    Some(t)
                        if !t.is_empty()
                            && t.chars().count() <= 128
                            && t.trim() == t
                            && !t.chars().any(char::is_control) =>
                    {
                        if !out.iter().any(|o| o == t) {
                            out.push(t.to_owned());
                        }
                    }
                    _ => errs.push(FieldError::new(
                        format!("tools[{i}]"),
                        "invalid",
                        "each tool must be a tool name of 1-128 characters, without control characters or surrounding spaces",
                    )),
                }
            }
            if out.len() > MAX_TOOLS {
                errs.push(FieldError::new("tools", "too_many", format!("tools may name at most {MAX_TOOLS} tools")));
            }
            Some(out)
        }
        Some(other) => {
            errs.push(
                FieldError::new(
                    "tools",
                    "invalid_type",
                    format!("tools must be an array of tool names, got {}", validate::type_name(other)),
                )
                .with_hint("leave tools out to allow every tool; send [] to allow none"),
            );
            None
        }
    };
    errs.finish(tools)
}
