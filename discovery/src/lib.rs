//! Switchboard's outbound side: everything that talks to MCP servers and authorization servers.
//!
//! - [`policy`] and [`http`]: the SSRF-guarded client every outbound call goes through;
//! - [`www_authenticate`]: an RFC 9110 challenge parser (what a 401/403 asks for);
//! - [`urls`]: the metadata URLs the MCP authorization spec lets a client request, in its order,
//!   and the canonical RFC 8707 `resource`;
//! - [`discover`]: probe → protected resource metadata → authorization server metadata, producing a
//!   [`result::DiscoveryResult`];
//! - [`client`]: the engine of `switchboard client`, an MCP client that authorizes itself.

#[cfg(test)]
mod arbitrary;
pub mod client;
pub mod discover;
pub mod http;
pub mod mcp;
pub mod oauth;
pub mod oidc;
pub mod policy;
pub mod probe;
pub mod register;
pub mod result;
pub mod urls;
pub mod www_authenticate;

pub use discover::Discoverer;
pub use http::{FetchError, Fetcher, Limits};
pub use policy::NetworkPolicy;
pub use result::{DiscoveryResult, Step};
