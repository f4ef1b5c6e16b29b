//! "Only some tenants fail": the servers that several tenants registered at one endpoint, side
//! by side, with the fields where a tenant differs from the others marked
//! (`GET /v1/admin/mcp-servers/compare`, `switchboard admin compare`).

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;
use serde_json::Value;

use crate::mcp_server::McpServer;

/// One tenant's server at the endpoint.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct CompareRow {
    pub tenant_id: uuid::Uuid,
    pub tenant_slug: String,
    pub mcp_server_id: uuid::Uuid,
    pub mcp_server_slug: String,
    pub auth_type: String,
    pub issuer: Option<String>,
    /// `pre_registered`, `client_id_metadata_document`, `dynamic_registration`, or null.
    pub registration_method: Option<String>,
    /// The first characters of the client id (never the whole of it, never a secret).
    pub client_id_prefix: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub scopes: Vec<String>,
    pub resource: Option<String>,
    pub grants_by_status: BTreeMap<String, u64>,
    /// Failures of the last day by code: gateway calls and checks, and grants' recorded errors.
    pub failure_codes: BTreeMap<String, u64>,
    /// The fields where this tenant differs from the others (most tenants' value).
    pub differs: Vec<String>,
}

/// The fields compared across tenants.
const COMPARED: &[&str] = &[
    "auth_type",
    "issuer",
    "registration_method",
    "token_endpoint_auth_method",
    "scopes",
    "resource",
    "failure_codes",
];

/// A row for `server`, before the comparison.
#[must_use]
pub fn row(
    tenant_slug: &str,
    server: &McpServer,
    grants_by_status: BTreeMap<String, u64>,
    failure_codes: BTreeMap<String, u64>,
) -> CompareRow {
    let facts = server.facts();
    let discovered: Value =
        server.discovery_result.as_deref().and_then(|raw| serde_json::from_str(raw.get()).ok()).unwrap_or(Value::Null);
    let auth = &server.config.auth;
    let hydrated_client = facts.hydrated_fields.iter().any(|f| f == "client_id");
    let registration_method = discovered
        .get("client_registration")
        .and_then(Value::as_str)
        .map(str::to_owned)
        .or_else(|| (auth.client_id.is_some() && !hydrated_client).then(|| "pre_registered".to_owned()));
    CompareRow {
        tenant_id: server.tenant_id.0,
        tenant_slug: tenant_slug.to_owned(),
        mcp_server_id: server.id.0,
        mcp_server_slug: server.slug.clone(),
        auth_type: auth.kind.as_str().to_owned(),
        issuer: facts.issuer,
        registration_method,
        client_id_prefix: auth.client_id.as_deref().map(prefix),
        token_endpoint_auth_method: facts.token_endpoint_auth_method,
        scopes: auth.scopes.clone().unwrap_or_default(),
        resource: auth.resource.clone(),
        grants_by_status,
        failure_codes,
        differs: vec![],
    }
}

/// At most 8 characters of a client id, marked as cut when it was longer.
fn prefix(id: &str) -> String {
    let head: String = id.chars().take(8).collect();
    if head.len() < id.len() { format!("{head}…") } else { head }
}

fn value_of(r: &CompareRow, field: &str) -> String {
    match field {
        "auth_type" => r.auth_type.clone(),
        "issuer" => format!("{:?}", r.issuer),
        "registration_method" => format!("{:?}", r.registration_method),
        "token_endpoint_auth_method" => format!("{:?}", r.token_endpoint_auth_method),
        "scopes" => {
            let mut s = r.scopes.clone();
            s.sort();
            s.join(" ")
        }
        "resource" => format!("{:?}", r.resource),
        // What matters is whether a tenant fails at all, and with what.
        "failure_codes" => r.failure_codes.keys().cloned().collect::<Vec<_>>().join(" "),
        _ => String::new(),
    }
}

/// Marks, in each row, the fields whose value is not the one most tenants have (every value
/// of a tie is marked). Nothing is marked with fewer than two rows.
pub fn mark_differences(rows: &mut [CompareRow]) {
    if rows.len() < 2 {
        return;
    }
    for field in COMPARED {
        let mut counts: HashMap<String, usize> = HashMap::new();
        for r in rows.iter() {
            *counts.entry(value_of(r, field)).or_default() += 1;
        }
        if counts.len() < 2 {
            continue;
        }
        let top = counts.values().copied().max().unwrap_or(0);
        let leaders = counts.values().filter(|&&c| c == top).count();
        for r in rows.iter_mut() {
            let c = counts.get(&value_of(r, field)).copied().unwrap_or(0);
            if c < top || leaders > 1 {
                r.differs.push((*field).to_owned());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(issuer: &str, failures: &[&str]) -> CompareRow {
        CompareRow {
            tenant_id: uuid::Uuid::nil(),
            tenant_slug: "t".into(),
            mcp_server_id: uuid::Uuid::nil(),
            mcp_server_slug: "s".into(),
            auth_type: "oauth_authorization_code_public_pkce".into(),
            issuer: Some(issuer.into()),
            registration_method: Some("dynamic_registration".into()),
            client_id_prefix: Some("abc".into()),
            token_endpoint_auth_method: Some("none".into()),
            scopes: vec!["read".into()],
            resource: None,
            grants_by_status: BTreeMap::new(),
            failure_codes: failures.iter().map(|f| ((*f).to_owned(), 1)).collect(),
            differs: vec![],
        }
    }

    #[test]
    fn the_odd_tenant_out_is_marked() {
        let mut rows = vec![r("https://a", &[]), r("https://a", &[]), r("https://b", &["invalid_client"])];
        mark_differences(&mut rows);
        assert!(rows[0].differs.is_empty() && rows[1].differs.is_empty());
        assert_eq!(rows[2].differs, ["issuer", "failure_codes"]);
        assert_eq!(prefix("0123456789"), "01234567…");
        assert_eq!(prefix("short"), "short");
    }
}
