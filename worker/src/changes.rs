//! Changes that make cached views wrong, announced to whoever caches them — the MCP gateway's
//! route, ticket and token views. In one process a [`tokio::sync::broadcast`] carries them; with
//! Redis configured they also travel on a pub/sub channel (`<prefix>:changes`) to every process,
//! so a detached server or a revoked ticket stops working everywhere within a round trip.
//!
//! Like wake-ups, only a hint: every cache also expires on its own (seconds), so a lost message
//! delays a change by at most that long and loses nothing.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde::{Deserialize, Serialize};
use switchboard_domain::connection::GrantKey;
use switchboard_domain::{AgentId, McpServerId, TenantId};
use tokio::sync::broadcast;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// What changed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A tenant's agents, servers or attachments (what routes resolve to).
    Routes { tenant: TenantId },
    /// A tenant's tickets were revoked, or its signing key changed.
    Tickets { tenant: TenantId },
    /// One grant's tokens changed or ended (disconnect, revoke, consent).
    Grant { tenant: TenantId, user: String, agent: AgentId, server: McpServerId },
    /// A tenant's grants of a server or an agent ended together (a deletion).
    Grants { tenant: TenantId },
    /// A tenant was deleted.
    Tenant { tenant: TenantId },
    /// Grants of any tenant changed status together (the sweep of abandoned consent flows):
    /// what is known of connection statuses is stale; tokens are not concerned.
    Statuses,
    /// A client ended a gateway session (`session`: the digest of its id).
    SessionEnded { session: String },
}

impl Change {
    #[must_use]
    pub fn grant(key: &GrantKey) -> Self {
        Self::Grant { tenant: key.tenant_id, user: key.user_id.clone(), agent: key.agent_id, server: key.mcp_server_id }
    }
}

/// Where changes go and come from. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Changes {
    local: broadcast::Sender<Change>,
    redis: Option<Arc<Redis>>,
    /// Applied synchronously by [`Changes::publish`], before it returns: a cache of this
    /// process is right by the time the code that made the change answers.
    observers: Arc<std::sync::RwLock<Vec<Observer>>>,
}

type Observer = Arc<dyn Fn(&Change) + Send + Sync>;

struct Redis {
    client: redis::Client,
    channel: String,
    publisher: tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>,
}

impl std::fmt::Debug for Changes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Changes").field("channel", &self.redis.as_ref().map(|r| &r.channel)).finish_non_exhaustive()
    }
}

impl Default for Changes {
    fn default() -> Self {
        Self::in_process()
    }
}

impl Changes {
    #[must_use]
    pub fn in_process() -> Self {
        Self { local: broadcast::channel(1024).0, redis: None, observers: Arc::default() }
    }

    /// Through Redis when a URL is configured (an empty one counts as none).
    pub fn configured(redis_url: Option<&str>, prefix: &str) -> Result<Self, String> {
        let Some(url) = redis_url.filter(|u| !u.is_empty()) else { return Ok(Self::in_process()) };
        let client = redis::Client::open(url).map_err(|e| format!("the Redis URL is invalid ({:?})", e.kind()))?;
        Ok(Self {
            observers: Arc::default(),
            local: broadcast::channel(1024).0,
            redis: Some(Arc::new(Redis {
                client,
                channel: format!("{prefix}:changes"),
                publisher: tokio::sync::Mutex::default(),
            })),
        })
    }

    /// Has `observer` applied every change published in this process, synchronously.
    pub fn observe(&self, observer: impl Fn(&Change) + Send + Sync + 'static) {
        if let Ok(mut list) = self.observers.write() {
            list.push(Arc::new(observer));
        }
    }

    /// Announces `change` here at once (observers apply it before this returns; subscribers
    /// receive it), and to the other processes in the background.
    pub fn publish(&self, change: Change) {
        if let Ok(list) = self.observers.read() {
            for observe in list.iter() {
                observe(&change);
            }
        }
        let _ = self.local.send(change.clone());
        let Some(r) = self.redis.clone() else { return };
        tokio::spawn(async move {
            if let Err(e) = r.publish(&change).await {
                tracing::debug!(error = %e, "a change did not reach Redis; other processes' caches expire on their own");
            }
        });
    }

    /// The changes announced from now on (here, and from other processes once [`Self::listen`]
    /// runs). A receiver that falls behind gets `Lagged`: it must then drop everything.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Change> {
        self.local.subscribe()
    }

    /// Relays the Redis channel into this process, reconnecting with backoff; `None` without
    /// Redis. A reconnect is announced as a change of everything (messages may have been lost),
    /// which subscribers see as `Lagged`-like: [`Change::Tenant`] of the nil tenant.
    #[must_use]
    pub fn listen(&self) -> Option<tokio::task::JoinHandle<()>> {
        let r = self.redis.clone()?;
        let local = self.local.clone();
        Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                match tokio::time::timeout(CONNECT_TIMEOUT, r.subscribe()).await {
                    Ok(Ok(pubsub)) => {
                        backoff = Duration::from_millis(250);
                        let _ = local.send(Change::Tenant { tenant: TenantId(uuid::Uuid::nil()) });
                        let mut messages = pubsub.into_on_message();
                        while let Some(msg) = messages.next().await {
                            let Ok(payload) = msg.get_payload::<String>() else { continue };
                            if let Ok(change) = serde_json::from_str::<Change>(&payload) {
                                let _ = local.send(change);
                            }
                        }
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "cannot subscribe to changes"),
                    Err(_) => tracing::debug!("subscribing to changes timed out"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }))
    }
}

impl Redis {
    async fn subscribe(&self) -> Result<redis::aio::PubSub, String> {
        let mut pubsub = self.client.get_async_pubsub().await.map_err(|e| format!("{:?}", e.kind()))?;
        pubsub.subscribe(&self.channel).await.map_err(|e| format!("{:?}", e.kind()))?;
        Ok(pubsub)
    }

    async fn publish(&self, change: &Change) -> Result<(), String> {
        let payload = serde_json::to_string(change).map_err(|e| e.to_string())?;
        let mut slot = self.publisher.lock().await;
        let mut last = Err(String::new());
        for _ in 0..2 {
            if slot.is_none() {
                let config = redis::AsyncConnectionConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT);
                let conn = tokio::time::timeout(
                    CONNECT_TIMEOUT * 2,
                    self.client.get_multiplexed_async_connection_with_config(&config),
                )
                .await
                .map_err(|_| "connecting timed out".to_owned())?
                .map_err(|e| format!("{:?}", e.kind()))?;
                *slot = Some(conn);
            }
            let Some(conn) = slot.as_mut() else { break };
            last = tokio::time::timeout(
                RESPONSE_TIMEOUT * 2,
                redis::cmd("PUBLISH").arg(&self.channel).arg(&payload).query_async::<i64>(conn),
            )
            .await
            .map_err(|_| "publishing timed out".to_owned())
            .and_then(|r| r.map(|_| ()).map_err(|e| format!("{:?}", e.kind())));
            if last.is_ok() {
                break;
            }
            *slot = None;
        }
        last
    }
}
