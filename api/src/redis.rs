//! The optional Redis connection. Redis holds nothing durable here: losing or flushing it loses
//! nothing. Every call is bounded by timeouts, so a paused Redis slows nothing but itself.

use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::OnceCell;

const CONNECT_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// A lazily connected Redis: the process starts (and serves) while Redis is down.
#[derive(Clone)]
pub struct RedisHandle {
    client: redis::Client,
    manager: std::sync::Arc<OnceCell<ConnectionManager>>,
    prefix: String,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may carry a password.
        f.debug_struct("RedisHandle").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl RedisHandle {
    pub fn new(url: &str, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url)
            .map_err(|e| anyhow::anyhow!("SWITCHBOARD_REDIS_URL is invalid: {}", redis_kind(&e)))?;
        Ok(Self { client, manager: std::sync::Arc::new(OnceCell::new()), prefix: prefix.to_owned() })
    }

    /// The key prefix every key of this deployment carries.
    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    async fn connection(&self) -> anyhow::Result<ConnectionManager> {
        let manager = self
            .manager
            .get_or_try_init(|| async {
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(CONNECT_TIMEOUT)
                    .set_response_timeout(RESPONSE_TIMEOUT)
                    .set_number_of_retries(1);
                tokio::time::timeout(
                    CONNECT_TIMEOUT * 2,
                    ConnectionManager::new_with_config(self.client.clone(), config),
                )
                .await
                .map_err(|_| anyhow::anyhow!("connecting to redis timed out"))?
                .map_err(|e| anyhow::anyhow!("connecting to redis failed: {}", redis_kind(&e)))
            })
            .await?;
        Ok(manager.clone())
    }

    /// PING, bounded by the response timeout.
    pub async fn ping(&self) -> anyhow::Result<()> {
        let mut conn = self.connection().await?;
        let pong: String = tokio::time::timeout(RESPONSE_TIMEOUT * 2, redis::cmd("PING").query_async(&mut conn))
            .await
            .map_err(|_| anyhow::anyhow!("redis did not answer in time"))?
            .map_err(|e| anyhow::anyhow!("redis ping failed: {}", redis_kind(&e)))?;
        anyhow::ensure!(pong == "PONG", "redis answered PING with something else");
        Ok(())
    }
}

/// The error's category only: redis error texts can quote the URL, password included.
fn redis_kind(e: &redis::RedisError) -> String {
    format!("{:?}", e.kind()).to_lowercase()
}
