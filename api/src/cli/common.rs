//! What the commands share: the database arguments, the worker's knobs, the outbound policy,
//! errors for a terminal, and the shutdown signal.

use std::path::PathBuf;

use clap::Args;
use switchboard_domain::store::{Store, StoreOptions};

use crate::bootstrap;
use crate::config::load_master_key;

#[derive(Args, Debug, Clone)]
pub(super) struct StoreArgs {
    /// Database URL: sqlite://… (embedded) or postgres://….
    #[arg(
        long,
        env = "SWITCHBOARD_DATABASE_URL",
        default_value = "sqlite://./data/switchboard.db?mode=rwc",
        global = true
    )]
    pub(super) database_url: String,
    /// Directory for the SQLite file, the generated master key and the bootstrap key.
    #[arg(long, env = "SWITCHBOARD_DATA_DIR", default_value = "./data", global = true)]
    pub(super) data_dir: PathBuf,
    /// Base64 32-byte key-encryption key; a 0600 key file in the data directory when unset.
    #[arg(long, env = "SWITCHBOARD_MASTER_KEY", hide_env_values = true, global = true)]
    pub(super) master_key: Option<String>,
}

/// The background worker's knobs, shared by `serve` (its in-process worker) and `worker`.
#[derive(Args, Debug, Clone)]
pub(super) struct WorkerKnobs {
    /// How long a worker's claim on a refresh or a job lasts, in seconds (above the 10 s provider
    /// deadline).
    #[arg(long, env = "SWITCHBOARD_WORKER_LEASE_SECS", default_value_t = 30)]
    pub(super) worker_lease_secs: u64,
    /// How often the worker looks for due work when nothing wakes it, in milliseconds.
    #[arg(long, env = "SWITCHBOARD_WORKER_POLL_MS", default_value_t = 1000, hide = true)]
    pub(super) worker_poll_ms: u64,
    /// The first part of the name that marks this worker's leases (the host name by default).
    #[arg(long, env = "HOSTNAME", default_value = "worker", hide_env_values = true)]
    pub(super) worker_name: String,
}

impl WorkerKnobs {
    pub(super) fn config(&self) -> switchboard_worker::runtime::WorkerConfig {
        switchboard_worker::runtime::WorkerConfig {
            // The process id and a random part keep two processes on one host apart.
            name: format!("{}:{}:{}", self.worker_name, std::process::id(), uuid::Uuid::new_v4().simple()),
            lease: std::time::Duration::from_secs(self.worker_lease_secs),
            poll: std::time::Duration::from_millis(self.worker_poll_ms),
        }
    }
}

/// The outbound policy, as configured.
pub(super) fn network(
    allow_private_networks: bool,
    allowlist: &str,
) -> anyhow::Result<switchboard_discovery::NetworkPolicy> {
    switchboard_discovery::NetworkPolicy { allow_private_networks, allow: vec![] }
        .with_allowlist(allowlist)
        .map_err(|e| anyhow::anyhow!("SWITCHBOARD_OUTBOUND_ALLOWLIST: {e}"))
}

pub(super) async fn open(args: &StoreArgs, max_connections: u32) -> anyhow::Result<Store> {
    let envelope = load_master_key(args.master_key.as_deref(), &args.data_dir)?;
    bootstrap::open_store(&args.database_url, envelope, &StoreOptions { max_connections, ..StoreOptions::default() })
        .await
}

/// A domain error for a terminal: every invalid field with its hint.
pub(super) fn explain(e: switchboard_domain::DomainError) -> anyhow::Error {
    match e {
        switchboard_domain::DomainError::Invalid(fields) => anyhow::anyhow!(
            "{}",
            fields
                .iter()
                .map(|f| match &f.hint {
                    Some(h) => format!("{}: {} (hint: {h})", f.field, f.message),
                    None => format!("{}: {}", f.field, f.message),
                })
                .collect::<Vec<_>>()
                .join("; ")
        ),
        other => other.into(),
    }
}

pub(super) async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
