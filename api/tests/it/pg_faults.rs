//! Postgres faults (FLT-03, FLT-04): a Postgres of the test's own — `initdb` and `postgres` run as
//! the `postgres` user in a temporary directory, on a spare port — is paused (`SIGSTOP` to its
//! postmaster and backends) or crashed (`SIGQUIT`, an immediate shutdown) and restarted while a
//! real `switchboard worker` process refreshes a burst of grants against the strict provider.
//! Only this instance's process ids are signalled; the machine's Postgres is never touched.
//!
//! After each fault, the invariants: every grant refreshed exactly once, its stored refresh token
//! the provider's current one (I1, I2); writes acknowledged before the fault are there (I3);
//! callers got a bounded 503 with `Retry-After` meanwhile, never a hang (I6); the API and the
//! worker recover without a restart (I8).

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use switchboard_domain::connection::GrantKey;

use crate::helpers::{Options, TestApp};
use crate::strict_as::{Fault, Provider, grant_key, seed_grant, start_provider, strict_server};

/// A Postgres server owned by one test.
pub struct OwnPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    pub port: u16,
    server: Option<Child>,
}

impl OwnPostgres {
    pub fn start() -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL server binaries must be installed under /usr/lib/postgresql for this test")
            .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
            .filter(|p| p.join("initdb").exists())
            .max()
            .expect("no initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().expect("temp dir");
        run(Command::new("chown").args(["postgres:postgres", &dir.path().display().to_string()]));
        run(Command::new("runuser").args(["-u", "postgres", "--"]).arg(bin.join("initdb")).args([
            "-D",
            &dir.path().join("data").display().to_string(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]));
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let mut pg = Self { dir, bin, port, server: None };
        pg.boot();
        pg
    }

    pub fn admin_url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Starts the server on its port and waits until it accepts connections.
    fn boot(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("server.log"))
            .expect("log");
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(self.bin.join("postgres"))
            .args(["-D", &self.dir.path().join("data").display().to_string()])
            .args(["-p", &self.port.to_string(), "-k", &self.dir.path().display().to_string()])
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off", "-c", "max_connections=200"])
            .current_dir(self.dir.path())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start postgres");
        self.server = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
                .stdout(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return;
            }
            assert!(Instant::now() < deadline, "own postgres did not start: {}", self.log());
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The postmaster's pid (first line of `postmaster.pid`).
    fn postmaster(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir.path().join("data/postmaster.pid")).ok()?.lines().next()?.trim().parse().ok()
    }

    /// The postmaster and its children (backends, checkpointer, …): this instance only.
    fn pids(&self) -> Vec<u32> {
        let Some(master) = self.postmaster() else { return vec![] };
        let mut pids = vec![master];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
            let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
            // pid (comm) state ppid …; comm may hold spaces, so split after the last ')'.
            let ppid = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
            if ppid == Some(master) {
                pids.push(pid);
            }
        }
        pids
    }

    fn signal(pids: &[u32], sig: &str) {
        for pid in pids {
            let _ = Command::new("kill").args([sig, &pid.to_string()]).status();
        }
    }

    /// Freezes the server: its sockets stay open and nothing answers. The returned list, for
    /// [`OwnPostgres::resume`], also holds our `runuser` process, which stops itself when its
    /// child stops and must be continued as well.
    pub fn pause(&self) -> Vec<u32> {
        let mut pids = self.pids();
        assert!(!pids.is_empty(), "no postgres processes to pause");
        Self::signal(&pids, "-STOP");
        pids.extend(self.server.as_ref().map(Child::id));
        pids
    }

    pub fn resume(pids: &[u32]) {
        Self::signal(pids, "-CONT");
    }

    /// An immediate shutdown (what `pg_ctl stop -m immediate` sends): backends die without a
    /// checkpoint, and the next start recovers from the write-ahead log. A server that does not
    /// go within 10 s is killed outright (`SIGKILL` to each of its processes) — a crash either way.
    pub fn crash(&mut self) {
        let pids = self.pids();
        Self::signal(&pids, "-CONT");
        Self::signal(&self.server.as_ref().map(Child::id).into_iter().collect::<Vec<_>>(), "-CONT");
        if let Some(&master) = pids.first() {
            Self::signal(&[master], "-QUIT");
        }
        let Some(mut child) = self.server.take() else { return };
        let mut deadline = Instant::now() + Duration::from_secs(10);
        let mut killed = false;
        while child.try_wait().ok().flatten().is_none() {
            if Instant::now() >= deadline {
                assert!(!killed, "own postgres did not stop, even after SIGKILL: {}", self.log());
                let mut all = self.pids();
                all.extend(&pids);
                Self::signal(&all, "-KILL");
                killed = true;
                deadline = Instant::now() + Duration::from_secs(10);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn restart(&mut self) {
        self.boot();
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        let pids = self.pids();
        Self::signal(&pids, "-CONT");
        Self::signal(&self.server.as_ref().map(Child::id).into_iter().collect::<Vec<_>>(), "-CONT");
        if let Some(master) = self.postmaster() {
            Self::signal(&[master], "-QUIT");
        }
        if let Some(mut child) = self.server.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().expect("run a setup command");
    assert!(out.status.success(), "{cmd:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A worker process, killed when dropped.
struct WorkerProcess(Child);

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Burst {
    /// The worker's log (warnings), to show that the fault reached it.
    log: tempfile::NamedTempFile,
    app: TestApp,
    provider: Arc<Mutex<Provider>>,
    keys: Vec<GrantKey>,
    worker: WorkerProcess,
}

const GRANTS: usize = 60;

/// `GRANTS` grants due at once on `pg`, a provider that takes 300 ms per refresh (so the burst
/// lasts a few seconds), and a worker process refreshing them.
async fn burst(pg: &OwnPostgres) -> Burst {
    let app = TestApp::spawn_with(Options {
        allow_private_networks: true,
        postgres_admin_url: Some(pg.admin_url()),
        request_timeout: Some(Duration::from_secs(3)),
        ..Options::default()
    })
    .await;
    let provider = Arc::new(Mutex::new(Provider::default()));
    provider
        .lock()
        .expect("provider")
        .token_faults
        .extend((0..GRANTS).map(|_| Fault::Delay(Duration::from_millis(300))));
    let as_base = start_provider(provider.clone());
    let (server, agent) = strict_server(&app, &as_base, false).await;
    let store = app.store().tenant(app.tenant_id);
    let mut keys = Vec::new();
    for i in 0..GRANTS {
        let key = grant_key(&app, &format!("user-{i}"), &agent, &server);
        seed_grant(&store, &provider, &as_base, key.clone(), i, chrono::TimeDelta::seconds(1)).await;
        keys.push(key);
    }
    crate::refresh::make_due(&app).await;
    let log = tempfile::NamedTempFile::new().expect("log file");
    let worker = Command::new(env!("CARGO_BIN_EXE_switchboard"))
        .arg("worker")
        .env("SWITCHBOARD_DATABASE_URL", &app.database_url)
        .env("SWITCHBOARD_MASTER_KEY", &app.master_key)
        .env("SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", "true")
        .env("SWITCHBOARD_DATA_DIR", std::env::temp_dir())
        .env("RUST_LOG", "warn")
        .env("NO_COLOR", "1")
        .stdout(log.reopen().expect("log"))
        .stderr(log.reopen().expect("log"))
        .spawn()
        .expect("start a worker process");
    Burst { log, app, provider, keys, worker: WorkerProcess(worker) }
}

impl Burst {
    /// The worker met the fault (a pass or a write failed and was retried, or its connections
    /// were cut), so the test did not pass by missing it.
    fn worker_saw_the_fault(&self) {
        let log = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let seen = ["retrying", "unreachable", "terminating connection"].iter().any(|s| log.contains(s));
        assert!(seen, "the worker never noticed the database fault:\n{log}");
    }

    fn presented(&self) -> usize {
        self.provider.lock().expect("provider").families.iter().filter(|f| f.presentations > 0).count()
    }

    async fn wait_for_presentations(&self, n: usize, within: Duration) {
        let deadline = Instant::now() + within;
        while self.presented() < n {
            assert!(Instant::now() < deadline, "only {} refreshes reached the provider", self.presented());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn connection_id(&self) -> String {
        let list = self.app.get("/v1/connections?limit=1").await;
        assert_eq!(list.status, StatusCode::OK, "{}", list.text);
        list.json()["data"][0]["id"].as_str().expect("id").to_owned()
    }

    /// I6: while the database is away, a caller gets a 503 with `Retry-After` within the request
    /// deadline (3 s here), not a hang.
    async fn callers_get_a_bounded_503(&self, connection: &str) {
        let started = Instant::now();
        let res = self
            .app
            .call(Method::POST, &format!("/v1/connections/{connection}/access-token"), Some(&self.app.key), None)
            .await;
        let took = started.elapsed();
        assert_eq!(res.status, StatusCode::SERVICE_UNAVAILABLE, "{}", res.text);
        assert!(
            ["unavailable", "request_timeout"].contains(&res.json()["code"].as_str().unwrap_or_default()),
            "{}",
            res.text
        );
        assert!(res.headers.get("retry-after").is_some(), "a 503 says when to retry");
        assert!(took < Duration::from_secs(5), "the caller waited {took:?}");
    }

    /// I8, I1, I2: after the fault, without restarting anything, every grant ends refreshed
    /// exactly once, holding the refresh token the provider considers current; the API answers.
    async fn recovers_with_nothing_lost(&self, connection: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let res = self
                .app
                .call(Method::POST, &format!("/v1/connections/{connection}/access-token"), Some(&self.app.key), None)
                .await;
            if res.status == StatusCode::OK {
                break;
            }
            assert!(Instant::now() < deadline, "the API never recovered: {} {}", res.status, res.text);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let store = self.app.store().tenant(self.app.tenant_id);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let p =
                self.provider.lock().expect("provider").families.iter().map(|f| f.current.clone()).collect::<Vec<_>>();
            let mut behind = Vec::new();
            for (key, current) in self.keys.iter().zip(&p) {
                let stored = store.token_set(key).await.ok().flatten();
                let stored = stored.as_ref().and_then(|s| s.refresh_token.as_ref()).map(|r| r.expose().to_owned());
                if stored.as_deref() != Some(current.as_str()) || current.ends_with("-0") {
                    behind.push(format!("{}: stored {stored:?}, provider's {current}", key.user_id));
                }
            }
            if behind.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "grants without their refreshed token: {behind:?}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        {
            let p = self.provider.lock().expect("provider");
            let twice: Vec<usize> = (0..GRANTS).filter(|&i| p.families[i].presentations != 1).collect();
            assert!(twice.is_empty(), "refreshed other than once: {twice:?}");
            assert_eq!(p.reuse, 0, "no spent refresh token presented again");
            assert_eq!(p.families.iter().filter(|f| f.revoked).count(), 0, "no family revoked");
        }
        let listed = self.app.get("/v1/connections?status=connected&limit=100").await.json();
        assert_eq!(listed["data"].as_array().map(Vec::len), Some(GRANTS), "every grant connected");
    }
}

/// FLT-03: Postgres frozen for about 8 s in the middle of a refresh burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_postgres_loses_nothing() {
    let pg = OwnPostgres::start();
    let mut b = burst(&pg).await;
    let connection = b.connection_id().await;
    b.wait_for_presentations(10, Duration::from_secs(30)).await;

    let frozen = pg.pause();
    b.callers_get_a_bounded_503(&connection).await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    OwnPostgres::resume(&frozen);

    b.recovers_with_nothing_lost(&connection).await;
    b.worker_saw_the_fault();
    assert!(b.worker.0.try_wait().expect("worker").is_none(), "the worker process is still running");
}

/// FLT-04: Postgres crashes (immediate shutdown) in the middle of a refresh burst and comes back
/// on the same port 3 s later. A write acknowledged just before the crash is still there (I3).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_and_restarted_postgres_loses_nothing() {
    let mut pg = OwnPostgres::start();
    let mut b = burst(&pg).await;
    let connection = b.connection_id().await;
    b.wait_for_presentations(10, Duration::from_secs(30)).await;

    let acked = b.app.create_agent("acknowledged-before-the-crash").await;
    let ticket = b
        .app
        .post("/v1/session-tickets", &serde_json::json!({"user_id": "u", "agent_ids": [acked]}))
        .await
        .json()["ticket"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    pg.crash();
    b.callers_get_a_bounded_503(&connection).await;
    // A ticket whose tenant cannot be looked up gets a 503 to retry, not a verdict on the ticket
    // (it read 401 invalid_ticket, telling the caller to mint a new one).
    let runtime =
        b.app.call(Method::GET, &format!("/v1/runtime/agents/{acked}/mcp-servers"), Some(&ticket), None).await;
    assert_eq!(runtime.status, StatusCode::SERVICE_UNAVAILABLE, "{}", runtime.text);
    tokio::time::sleep(Duration::from_secs(2)).await;
    pg.restart();

    b.recovers_with_nothing_lost(&connection).await;
    let agent = b.app.get(&format!("/v1/agents/{acked}")).await;
    assert_eq!(agent.status, StatusCode::OK, "an acknowledged write survived the crash: {}", agent.text);
    b.worker_saw_the_fault();
    assert!(b.worker.0.try_wait().expect("worker").is_none(), "the worker process is still running");
}
