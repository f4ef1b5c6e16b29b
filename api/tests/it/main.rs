//! Integration tests: each boots the real app on a random port and drives it over HTTP. The same
//! suite runs on SQLite and, with `SWITCHBOARD_TEST_DATABASE_URL` / `SWITCHBOARD_TEST_REDIS_URL`
//! set, on Postgres and Redis.

#![expect(clippy::expect_used, reason = "test helpers fail loudly, naming what they expected")]
#![expect(
    clippy::indexing_slicing,
    clippy::string_slice,
    reason = "tests index JSON they just asserted on; a panic is a failed test"
)]

mod admin;
mod agent_endpoint;
mod agents;
mod audience;
mod audit;
mod browser;
mod cli;
mod client_credentials;
mod consent;
mod contract;
mod delegation;
mod erasure;
mod events;
mod faults;
mod gateway;
mod gateway_e2e;
mod helpers;
mod idempotency;
mod interop;
mod mcp_servers;
mod migrations;
mod ops;
mod panics;
mod peers;
mod pg_faults;
mod race;
mod rediscovery;
mod refresh;
mod registration;
mod revocation;
mod secrets;
mod sign_in;
mod sign_in_faults;
mod soak;
mod strict_as;
mod tenancy;
mod tickets;
mod troubleshooting;
mod troubleshooting_traffic;
mod wakeups;
