//! The audit trail: who did what to which resource, written in the same transaction as the change.

use chrono::{DateTime, Utc};

use crate::AuditEventId;

/// One recorded action. `data` never holds a secret: names, slugs, types, ids.
#[derive(Clone, Debug)]
pub struct AuditEvent {
    pub id: AuditEventId,
    /// `api_key:<id>`, `admin` or `system`.
    pub actor: String,
    /// `mcp_server.created`, `agent.mcp_server_attached`, `api_key.deleted`, …
    pub action: String,
    pub target_type: String,
    pub target_id: Option<String>,
    pub data: Box<serde_json::value::RawValue>,
    pub created_at: DateTime<Utc>,
}

/// Filters of the audit list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Exact action, or a prefix ending in `.` (`mcp_server.`).
    pub action: Option<String>,
    pub target_id: Option<String>,
}
