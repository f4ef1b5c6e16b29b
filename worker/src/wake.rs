//! Wake-ups: a hint that work was queued, so that a worker starts it now instead of at its next
//! poll (every second). Only a hint — every job and every due refresh is in the database, and a
//! worker that hears nothing still finds them by polling — so losing Redis, or a message, delays
//! work by at most one poll and loses nothing.
//!
//! In one process (`serve` with its worker inside) a [`tokio::sync::Notify`] carries them. With
//! Redis configured they also travel on a pub/sub channel (`<prefix>:wake`) to every worker
//! process. Both coalesce: a burst of wake-ups while a worker is busy becomes one more pass, and
//! a publish already on its way absorbs the ones behind it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::Notify;

/// Bounds on every Redis call, so that a paused Redis delays nothing but the hint.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// Where wake-ups go and come from. Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Wakeups {
    local: Arc<Notify>,
    redis: Option<RedisChannel>,
}

#[derive(Clone)]
struct RedisChannel {
    client: redis::Client,
    channel: String,
    /// A publish is on its way: later wake-ups ride on it.
    publishing: Arc<AtomicBool>,
    publisher: Arc<tokio::sync::Mutex<Option<redis::aio::MultiplexedConnection>>>,
}

impl std::fmt::Debug for Wakeups {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Redis URL may carry a password: only the channel is shown.
        f.debug_struct("Wakeups").field("channel", &self.redis.as_ref().map(|r| &r.channel)).finish_non_exhaustive()
    }
}

impl Default for Wakeups {
    fn default() -> Self {
        Self::in_process()
    }
}

impl Wakeups {
    /// Wake-ups within this process only.
    #[must_use]
    pub fn in_process() -> Self {
        Self { local: Arc::default(), redis: None }
    }

    /// Wake-ups through Redis when a URL is configured (an empty one counts as none), within
    /// this process otherwise.
    pub fn configured(redis_url: Option<&str>, prefix: &str) -> Result<Self, String> {
        match redis_url.filter(|u| !u.is_empty()) {
            Some(url) => Self::with_redis(url, prefix),
            None => Ok(Self::in_process()),
        }
    }

    /// Wake-ups within this process and, through Redis at `url`, to every worker sharing
    /// `prefix`. Nothing connects until the first use.
    pub fn with_redis(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("the Redis URL is invalid ({:?})", e.kind()))?;
        Ok(Self {
            local: Arc::default(),
            redis: Some(RedisChannel {
                client,
                channel: format!("{prefix}:wake"),
                publishing: Arc::default(),
                publisher: Arc::default(),
            }),
        })
    }

    /// Work was queued: wake this process's worker now, and the others through Redis (best
    /// effort, in the background, bounded by timeouts).
    pub fn wake(&self) {
        self.local.notify_one();
        let Some(r) = &self.redis else { return };
        if r.publishing.swap(true, Ordering::AcqRel) {
            return;
        }
        let r = r.clone();
        tokio::spawn(async move {
            if let Err(e) = r.publish().await {
                tracing::debug!(error = %e, "a wake-up did not reach Redis; workers will find the work by polling");
            }
            r.publishing.store(false, Ordering::Release);
        });
    }

    /// Waits until woken or until `poll` has passed, whichever comes first.
    pub async fn wait(&self, poll: Duration) {
        tokio::select! {
            () = self.local.notified() => {}
            () = tokio::time::sleep(poll) => {}
        }
    }

    /// Relays the Redis channel's messages to [`Wakeups::wait`] in this process, reconnecting
    /// with backoff whenever Redis goes away; `None` without Redis. The worker runs it.
    #[must_use]
    pub fn listen(&self) -> Option<tokio::task::JoinHandle<()>> {
        let r = self.redis.clone()?;
        let local = self.local.clone();
        Some(tokio::spawn(async move {
            let mut backoff = Duration::from_millis(250);
            loop {
                match tokio::time::timeout(CONNECT_TIMEOUT, r.subscribe()).await {
                    Ok(Ok(pubsub)) => {
                        tracing::debug!(channel = %r.channel, "listening for wake-ups");
                        backoff = Duration::from_millis(250);
                        // Work may have been queued while we were away.
                        local.notify_one();
                        let mut messages = pubsub.into_on_message();
                        while messages.next().await.is_some() {
                            local.notify_one();
                        }
                        tracing::debug!("the wake-up channel closed; reconnecting");
                    }
                    Ok(Err(e)) => tracing::debug!(error = %e, "cannot subscribe to wake-ups; polling meanwhile"),
                    Err(_) => tracing::debug!("subscribing to wake-ups timed out; polling meanwhile"),
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(10));
            }
        }))
    }
}

impl RedisChannel {
    async fn subscribe(&self) -> Result<redis::aio::PubSub, String> {
        let mut pubsub = self.client.get_async_pubsub().await.map_err(|e| format!("{:?}", e.kind()))?;
        pubsub.subscribe(&self.channel).await.map_err(|e| format!("{:?}", e.kind()))?;
        Ok(pubsub)
    }

    /// Publishes one wake-up; a cached connection that fails is replaced once (Redis may have
    /// restarted since it was opened).
    async fn publish(&self) -> Result<(), String> {
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
                redis::cmd("PUBLISH").arg(&self.channel).arg("1").query_async::<i64>(conn),
            )
            .await
            .map_err(|_| "publishing timed out".to_owned())
            .and_then(|r| r.map(|_| ()).map_err(|e| format!("{:?}", e.kind())));
            if last.is_ok() {
                break;
            }
            // A broken connection is not reused.
            *slot = None;
        }
        last
    }
}
