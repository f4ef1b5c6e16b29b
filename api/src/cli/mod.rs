//! The `switchboard` command line: one module per command (`serve`, `worker`, `admin`,
//! `discover`, `client` and its report), what they share in `common`. `main.rs` only calls
//! [`main`].

mod admin;
pub mod client;
mod common;
mod discover;
mod doctor;
pub mod report;
mod serve;
mod ticket;
mod worker;

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};

use crate::bootstrap;
use crate::telemetry::{self, LogFormat};

use admin::AdminCommand;
use common::StoreArgs;
use serve::ServeArgs;
use worker::WorkerArgs;

/// Switchboard: the control plane that connects AI agents to remote MCP servers.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version)]
struct Cli {
    /// Log line format.
    #[arg(long, global = true, env = "SWITCHBOARD_LOG_FORMAT", value_enum, default_value = "text")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve the HTTP API (and, by default, run the worker in the same process).
    Serve(ServeArgs),
    /// Run the background worker on its own (for the production shape: API and workers apart).
    Worker(WorkerArgs),
    /// Apply pending database migrations, then exit.
    Migrate(StoreArgs),
    /// Discover how an MCP server wants to be authorized, and print what was found (nothing is saved).
    Discover {
        /// The MCP server's Streamable HTTP URL.
        url: String,
        /// Print the discovery_result JSON instead of the report.
        #[arg(long)]
        json: bool,
        /// Allow loopback and private addresses (development only).
        #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::SetTrue)]
        allow_private_network: bool,
        /// Comma-separated CIDRs and host names outbound calls may reach despite the policy.
        #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
        outbound_allowlist: String,
    },
    /// Connect to an MCP server as a client would — discovery, registration, authorization,
    /// initialize, tools/list, optionally a tool call — and report what worked.
    Client(client::ClientArgs),
    /// Delegation offline: narrow a session ticket, read what it grants, or verify a request
    /// against it as the gateway would — with the tenant's public key alone.
    Ticket {
        #[command(subcommand)]
        command: ticket::TicketCommand,
    },
    /// The tenant admin's troubleshooting: ask the API (SWITCHBOARD_URL, SWITCHBOARD_API_KEY) to
    /// diagnose a server or a user's connection, and print the findings. Exit code 0 when all is
    /// well, 1 with warnings, 2 with errors, 3 when it could not ask.
    Doctor {
        #[command(subcommand)]
        command: doctor::DoctorCommand,
    },
    /// Print the OpenAPI document (or write it to a file).
    Openapi {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Administer tenants and API keys from the command line (e.g. the first tenant of a fresh install).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
}

/// The `switchboard` binary.
pub fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // Before any TLS client exists (the OTLP exporter's included).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let _telemetry = match telemetry::init(cli.log_format) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot set up logging: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<std::process::ExitCode> {
    match command {
        // The one command whose exit code reports an outcome rather than only success or error.
        Command::Client(args) => client::run(args).await,
        Command::Doctor { command } => Ok(doctor::run(command).await),
        // Offline and scripted: its errors go to stderr only, stdout carries nothing but results.
        Command::Ticket { command } => Ok(ticket::run(command).unwrap_or_else(|e| {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(2)
        })),
        other => run_other(other).await.map(|()| std::process::ExitCode::SUCCESS),
    }
}

async fn run_other(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve::serve(args).await,
        Command::Worker(args) => worker::run(args).await,
        Command::Migrate(args) => {
            let store = common::open(&args, 1).await?;
            bootstrap::migrate(&store).await?;
            println!("migrations applied");
            Ok(())
        }
        Command::Discover { url, json, allow_private_network, outbound_allowlist } => {
            discover::discover(&url, json, allow_private_network, &outbound_allowlist).await
        }
        Command::Openapi { output } => {
            let text = crate::openapi::spec_json();
            match output {
                Some(path) => std::fs::write(&path, text).with_context(|| format!("writing {}", path.display())),
                None => {
                    print!("{text}");
                    Ok(())
                }
            }
        }
        Command::Admin { command, store } => admin::admin(command, &common::open(&store, 2).await?).await,
        // Routed by `run`, which keeps their exit codes.
        Command::Client(_) | Command::Ticket { .. } | Command::Doctor { .. } => Ok(()),
    }
}
