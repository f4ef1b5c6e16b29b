//! The connection lifecycle and its background jobs.
//!
//! Today the worker only owns its run loop: it starts, reports that it is idle, and stops cleanly
//! on shutdown. The jobs (proactive refresh, revocation, client-credentials renewal, rediscovery,
//! flow expiry, event delivery) arrive with the runtime-plane and worker issues, in this crate.

pub mod consent;
pub mod servers;

use std::future::Future;

use switchboard_domain::store::Store;

/// The background worker.
#[derive(Clone, Debug)]
pub struct Worker {
    store: Store,
}

impl Worker {
    #[must_use]
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    /// Runs until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()>) {
        tracing::info!(backend = ?self.store.backend(), "worker started; no job kinds are defined yet, waiting for shutdown");
        shutdown.await;
        tracing::info!("worker stopped");
    }
}
