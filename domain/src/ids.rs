//! Typed identifiers. Every id is a UUIDv7, so ids sort by creation time and serve as cursors.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A fresh, time-ordered id.
            #[must_use]
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<Uuid> for $name {
            fn from(value: Uuid) -> Self {
                Self(value)
            }
        }
    };
}

id_type!(
    /// A tenant: the unit of isolation. Every row and every job carries one.
    TenantId
);
id_type!(
    /// A tenant API key.
    ApiKeyId
);
id_type!(
    /// A registered MCP server.
    McpServerId
);
id_type!(
    /// An agent that MCP servers are attached to.
    AgentId
);
id_type!(
    /// One entry of the audit trail.
    AuditEventId
);
