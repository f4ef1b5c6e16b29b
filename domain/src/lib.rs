//! Switchboard's model: tenants, API keys, MCP servers and their auth configs, agents and their
//! attachments — with the rules that govern them — plus the secret envelope.
//!
//! The model modules do no IO. Persistence lives in [`store`], which implements the model's
//! operations on sea-orm for SQLite and Postgres; nothing in the model imports it.

pub mod agent;
pub mod api_key;
pub mod audit;
pub mod client_setup;
pub mod clock;
pub mod compare;
pub mod connection;
pub mod crypto;
pub mod error;
pub mod error_code;
pub mod finding;
pub mod health;
pub mod ids;
pub mod job;
pub mod mcp_server;
pub mod oauth_client;
pub mod page;
pub mod sign_in;
pub mod slug;
pub mod store;
pub mod tenant;
pub mod ticket;
pub mod validate;
pub mod webhook;

pub use error::{DomainError, FieldError};
pub use error_code::ErrorCode;
pub use ids::{AgentId, ApiKeyId, AuditEventId, McpServerId, TenantId};
