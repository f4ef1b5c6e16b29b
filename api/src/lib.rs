//! Switchboard's HTTP API: routes, credentials, errors, observability, and the pieces the
//! `switchboard` binary assembles. Handlers stay thin: extract, authorize, call the domain, map.

pub mod app;
pub mod auth;
pub mod bootstrap;
pub mod cli;
pub mod config;
pub mod credentials;
pub mod error;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod panics;
pub mod redis;
pub mod routes;
pub mod state;
pub mod telemetry;
