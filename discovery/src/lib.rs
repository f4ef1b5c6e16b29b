//! Switchboard's outbound side: everything that talks to MCP servers and authorization servers.
//!
//! - [`www_authenticate`]: an RFC 9110 challenge parser (what a 401/403 asks for);
//! - [`urls`]: the metadata URLs the MCP authorization spec lets a client request, in its order,
//!   and the canonical RFC 8707 `resource`.

pub mod urls;
pub mod www_authenticate;
