//! Agents and their attachments to MCP servers.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::validate::{self, Errors, opt_string, reject_unknown};
use crate::{AgentId, DomainError, FieldError, McpServerId, TenantId, slug};

#[derive(Clone, Debug)]
pub struct Agent {
    pub id: AgentId,
    pub tenant_id: TenantId,
    pub name: String,
    /// Unique per tenant; the `{agent}` segment of the gateway's routes.
    pub slug: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Clone, Debug)]
pub struct AgentSpec {
    pub name: String,
    /// The caller's slug, when given; otherwise the store derives one from the name (create) or
    /// keeps the stored one (update).
    pub slug: Option<String>,
    pub description: Option<String>,
}

/// What an attachment lets the agent see of its server, per kind: `None` is everything the
/// server offers, `Some([])` nothing. Names match exactly (tools and prompts by name, resources
/// by URI).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    pub tools: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
}

impl Filter {
    /// Whether `list` (one of the filter's lists) lets `name` through.
    #[must_use]
    pub fn allows(list: Option<&[String]>, name: &str) -> bool {
        list.is_none_or(|names| names.iter().any(|n| n == name))
    }
}

/// An agent ↔ MCP server link, with the tools, prompts and resources the agent may use.
#[derive(Clone, Debug)]
pub struct Attachment {
    pub agent_id: AgentId,
    pub agent_slug: String,
    pub mcp_server_id: McpServerId,
    pub server_name: String,
    pub server_slug: String,
    /// The server's public configuration: runtime views need its endpoint, auth type and scopes.
    pub config: crate::mcp_server::McpServerConfig,
    /// The tools the agent may use (`None`: all of them).
    pub tools: Option<Vec<String>>,
    pub prompts: Option<Vec<String>>,
    pub resources: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

impl Attachment {
    /// The gateway route of this attachment: `{public_url}/mcp/{tenant}/{agent}/{server}`, by
    /// slugs. A public contract: MCP clients are configured with it.
    #[must_use]
    pub fn gateway_url(&self, public_url: &str, tenant_slug: &str) -> String {
        gateway_url(public_url, tenant_slug, &self.agent_slug, &self.server_slug)
    }

    #[must_use]
    pub fn filter(&self) -> Filter {
        Filter { tools: self.tools.clone(), prompts: self.prompts.clone(), resources: self.resources.clone() }
    }
}

/// `{public_url}/mcp/{tenant}/{agent}/{server}`.
#[must_use]
pub fn gateway_url(public_url: &str, tenant: &str, agent: &str, server: &str) -> String {
    format!("{}/mcp/{tenant}/{agent}/{server}", public_url.trim_end_matches('/'))
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
    merged.insert("slug".into(), Value::String(current.slug.clone()));
    if let Some(d) = &current.description {
        merged.insert("description".into(), Value::String(d.clone()));
    }
    if patch.get("slug").is_some_and(Value::is_null) {
        errs.push(
            FieldError::new("slug", "invalid_type", "slug cannot be removed")
                .with_hint("leave slug out to keep it, or send a new one"),
        );
        return Err(DomainError::Invalid(errs.0));
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
    reject_unknown(&mut errs, map, "", &["name", "slug", "description"], &[]);
    let name = opt_string(&mut errs, map, "", "name", 200);
    if matches!(map.get("name"), None | Some(Value::Null)) {
        errs.required("name", "a display name such as \"support-bot\"");
    }
    let slug = opt_string(&mut errs, map, "", "slug", slug::MAX_LEN + 1).and_then(|s| match slug::check("slug", &s) {
        Ok(()) => Some(s),
        Err(e) => {
            errs.push(e);
            None
        }
    });
    let description = opt_string(&mut errs, map, "", "description", 2000);
    match (errs.0.is_empty(), name) {
        (true, Some(name)) => Ok(AgentSpec { name, slug, description }),
        _ => Err(DomainError::Invalid(errs.0)),
    }
}

/// Validates the optional body of an attach: `{"tools": ["search", …], "prompts": […],
/// "resources": ["file:///…", …]}`, each list optional (everything), or nothing at all.
pub fn validate_attach(body: Option<&Value>) -> Result<Filter, DomainError> {
    let Some(body) = body.filter(|b| !b.is_null()) else { return Ok(Filter::default()) };
    let mut errs = Errors::default();
    let Some(map) = validate::object(&mut errs, "", body) else {
        return Err(DomainError::Invalid(errs.0));
    };
    reject_unknown(
        &mut errs,
        map,
        "",
        &["tools", "prompts", "resources"],
        &[("allowed_tools", "the allow-list field is `tools`")],
    );
    let filter = Filter {
        tools: name_list(&mut errs, map, "tools", "tool name", 128),
        prompts: name_list(&mut errs, map, "prompts", "prompt name", 128),
        resources: name_list(&mut errs, map, "resources", "resource URI", 2048),
    };
    errs.finish(filter)
}

/// One allow-list: an array of distinct names (duplicates dropped), each 1–`max_chars`
/// characters without control characters or surrounding whitespace.
fn name_list(
    errs: &mut Errors,
    map: &Map<String, Value>,
    field: &str,
    what: &str,
    max_chars: usize,
) -> Option<Vec<String>> {
    const MAX_ITEMS: usize = 500;
    match map.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => {
            let mut out: Vec<String> = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                match item.as_str() {
                    Some(t)
                        if !t.is_empty()
                            && t.chars().count() <= max_chars
                            && t.trim() == t
                            && !t.chars().any(char::is_control) =>
                    {
                        if !out.iter().any(|o| o == t) {
                            out.push(t.to_owned());
                        }
                    }
                    _ => errs.push(FieldError::new(
                        format!("{field}[{i}]"),
                        "invalid",
                        format!(
                            "each entry must be a {what} of 1-{max_chars} characters, without control characters or surrounding spaces"
                        ),
                    )),
                }
            }
            if out.len() > MAX_ITEMS {
                errs.push(FieldError::new(field, "too_many", format!("{field} may name at most {MAX_ITEMS} entries")));
            }
            Some(out)
        }
        Some(other) => {
            errs.push(
                FieldError::new(
                    field,
                    "invalid_type",
                    format!("{field} must be an array of {what}s, got {}", validate::type_name(other)),
                )
                .with_hint(format!("leave {field} out to allow every one; send [] to allow none")),
            );
            None
        }
    }
}
