//! Wake-ups: a disconnect's revocation starts at once instead of at the worker's next poll — in
//! one process, and across processes through Redis — and without Redis (killed mid-run) nothing
//! is lost: the poll finds the job.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};

use crate::helpers::{Options, TestApp};
use crate::ops::OwnRedis;
use crate::strict_as::{Provider, grant_key, seed_grant, start_provider, strict_server};

struct Setup {
    app: TestApp,
    provider: Arc<Mutex<Provider>>,
    /// Connection ids of users u0, u1, u2.
    connections: Vec<String>,
}

async fn setup(options: Options) -> Setup {
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..options }).await;
    let provider = Arc::new(Mutex::new(Provider::default()));
    let as_base = start_provider(provider.clone());
    let (server, agent) = strict_server(&app, &as_base, true).await;
    let store = app.store().tenant(app.tenant_id);
    let mut connections = Vec::new();
    for i in 0..3 {
        let key = grant_key(&app, &format!("u{i}"), &agent, &server);
        seed_grant(&store, &provider, &as_base, key, i, chrono::TimeDelta::hours(1)).await;
        let listed = app.get(&format!("/v1/connections?user_id=u{i}")).await.json();
        connections.push(listed["data"][0]["id"].as_str().expect("id").to_owned());
    }
    Setup { app, provider, connections }
}

impl Setup {
    /// Disconnects user `i` and returns how long until the provider saw its refresh token revoked.
    async fn disconnect_and_time_revocation(&self, i: usize, within: Duration) -> Duration {
        let started = Instant::now();
        let res = self
            .app
            .call(Method::DELETE, &format!("/v1/connections/{}", self.connections[i]), Some(&self.app.key), None)
            .await;
        assert_eq!(res.status, StatusCode::NO_CONTENT, "{}", res.text);
        assert!(started.elapsed() < Duration::from_secs(1), "the disconnect itself waits on nothing");
        let token = format!("rt-{i}-0");
        loop {
            if self.provider.lock().expect("provider").revoked.iter().any(|(_, t)| *t == token) {
                return started.elapsed();
            }
            assert!(started.elapsed() < within, "user {i}'s refresh token was not revoked within {within:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// In one process (`serve` with its worker inside): the API's wake-up starts the revocation
/// although the worker polls only every 30 s.
#[tokio::test]
async fn a_disconnect_wakes_the_worker_in_the_same_process() {
    let s = setup(Options::default()).await;
    let mut worker = s.app.worker();
    worker.interval = Duration::from_secs(30);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(worker.run(async move {
        let _ = stopped.await;
    }));
    // Past the worker's first pass, so that only a wake-up can start the next one soon.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = s.disconnect_and_time_revocation(0, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "revoked after {took:?}");
    let _ = stop.send(());
    let _ = running.await;
}

struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn subscribers(redis_port: u16, channel: &str) -> u32 {
    let out = Command::new("redis-cli")
        .args(["-p", &redis_port.to_string(), "PUBSUB", "NUMSUB", channel])
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).lines().last().and_then(|l| l.trim().parse().ok()).unwrap_or(0)
}

fn wait_for_subscriber(redis_port: u16, channel: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while subscribers(redis_port, channel) == 0 {
        assert!(Instant::now() < deadline, "the worker never subscribed to {channel}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Across processes, through Redis: a `switchboard worker` process polling every 20 s starts a
/// revocation within a second of the API's disconnect. With Redis killed the disconnect still
/// answers at once and the job is found by the poll; once Redis is back, wake-ups resume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_in_other_processes_are_woken_through_redis_and_lose_nothing_without_it() {
    let redis = OwnRedis::start();
    let port = redis.port;
    let s = setup(Options { redis_url: Some(format!("redis://127.0.0.1:{port}")), ..Options::default() }).await;
    let prefix = s.app.state.settings.redis_prefix.clone();
    let channel = format!("{prefix}:wake");
    let _worker = WorkerProcess(
        Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("worker")
            .env("SWITCHBOARD_DATABASE_URL", &s.app.database_url)
            .env("SWITCHBOARD_MASTER_KEY", &s.app.master_key)
            .env("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", "true")
            .env("SWITCHBOARD_DATA_DIR", std::env::temp_dir())
            .env("SWITCHBOARD_REDIS_URL", format!("redis://127.0.0.1:{port}"))
            .env("SWITCHBOARD_REDIS_PREFIX", &prefix)
            .env("SWITCHBOARD_WORKER_POLL_MS", "20000")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start a worker process"),
    );
    wait_for_subscriber(port, &channel);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let took = s.disconnect_and_time_revocation(0, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "woken through Redis: revoked after {took:?}");

    // Redis dies: nothing waits on it, and the job is found by the next poll.
    redis.signal("-KILL");
    let took = s.disconnect_and_time_revocation(1, Duration::from_secs(30)).await;
    assert!(took > Duration::from_secs(2), "without Redis only the poll finds it ({took:?})");
    drop(redis);

    // Redis is back on its port: the worker subscribes again, and wake-ups work again.
    let _redis = OwnRedis::start_on(port);
    wait_for_subscriber(port, &channel);
    let took = s.disconnect_and_time_revocation(2, Duration::from_secs(5)).await;
    assert!(took < Duration::from_secs(2), "woken again: revoked after {took:?}");
}
