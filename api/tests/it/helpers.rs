//! `TestApp::spawn()`: a fresh database (a SQLite file, or a new Postgres database when
//! `SWITCHBOARD_TEST_DATABASE_URL` is set), Redis with a random prefix when
//! `SWITCHBOARD_TEST_REDIS_URL` is set, a random tenant with a key, a bound port, then the server.

use std::sync::{Arc, Mutex, OnceLock};

use reqwest::{Method, StatusCode};
use sea_orm::{ConnectionTrait, Database, Statement};
use serde_json::Value;
use switchboard_api::config::Settings;
use switchboard_api::state::AppState;
use switchboard_domain::TenantId;
use switchboard_domain::crypto::{Envelope, Secret};
use switchboard_domain::store::{Store, StoreOptions};
use switchboard_domain::tenant::{Actor, TenantSpec};

/// Every log line of this test process, captured at TRACE level for the secret sweeps.
pub fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter("trace")
            .with_ansi(false)
            .with_writer(move || LogWriter(writer.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

pub enum Db {
    Sqlite { dir: tempfile::TempDir },
    Postgres { url: String },
}

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    /// The tenant API key of a fresh random tenant.
    pub key: String,
    pub tenant_id: TenantId,
    pub admin_token: String,
    pub state: AppState,
    pub db: Db,
    /// What another process needs to open the same store (e.g. `switchboard worker`).
    pub database_url: String,
    pub master_key: String,
}

/// A second instance of a [`TestApp`] (see [`TestApp::sibling`]).
pub struct Sibling {
    pub base: String,
}

#[derive(Default)]
pub struct Options {
    pub allow_private_networks: bool,
    pub redis_url: Option<String>,
    /// A Postgres server of the test's own (`postgres://…/postgres`) to create the database on,
    /// instead of the suite's.
    pub postgres_admin_url: Option<String>,
    pub request_timeout: Option<std::time::Duration>,
}

fn random_hex() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// A database of its own for one test: (url, handle that keeps it alive).
pub async fn fresh_database() -> (String, Db) {
    fresh_database_on(None).await
}

/// A database of its own, on `admin_url`'s server when given, else as [`fresh_database`].
pub async fn fresh_database_on(admin_url: Option<String>) -> (String, Db) {
    match admin_url.or_else(|| std::env::var("SWITCHBOARD_TEST_DATABASE_URL").ok().filter(|u| !u.is_empty())) {
        Some(admin_url) => {
            let name = format!("sb_test_{}", &random_hex()[..16]);
            let admin = Database::connect(admin_url.as_str())
                .await
                .expect("SWITCHBOARD_TEST_DATABASE_URL must reach a Postgres server");
            admin
                .execute(Statement::from_string(admin.get_database_backend(), format!("CREATE DATABASE {name}")))
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&admin_url).expect("SWITCHBOARD_TEST_DATABASE_URL is a URL");
            url.set_path(&format!("/{name}"));
            (url.to_string(), Db::Postgres { url: url.to_string() })
        }
        None => {
            let dir = tempfile::tempdir().expect("temp dir");
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("switchboard.db").display());
            (url, Db::Sqlite { dir })
        }
    }
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(Options::default()).await
    }

    pub async fn spawn_with(options: Options) -> Self {
        captured_logs();
        let _ = rustls::crypto::ring::default_provider().install_default();
        let (database_url, db) = fresh_database_on(options.postgres_admin_url.clone()).await;
        let master_key = Envelope::generate_base64().expect("key");
        let envelope = Envelope::from_base64(&master_key).expect("envelope");
        let store = switchboard_api::bootstrap::open_store(&database_url, envelope, &StoreOptions::default())
            .await
            .expect("open store");
        switchboard_api::bootstrap::migrate(&store).await.expect("migrate");
        let (tenant, key) = store
            .admin()
            .create_tenant(&Actor::System, TenantSpec { name: format!("test {}", random_hex()), slug: None })
            .await
            .expect("tenant");
        let admin_token = format!("admin-{}", random_hex());
        let data_dir = match &db {
            Db::Sqlite { dir } => dir.path().to_path_buf(),
            Db::Postgres { .. } => std::env::temp_dir(),
        };
        // Bound first, so that the public URL (redirect URIs, CIMD) is this app's real address:
        // a browser in a test follows it back here.
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut settings = Settings::for_data_dir(&data_dir);
        settings.public_url = base.clone();
        settings.database_url = database_url.clone();
        settings.admin_token = Some(Secret::new(admin_token.clone()));
        settings.allow_private_networks = options.allow_private_networks;
        if let Some(t) = options.request_timeout {
            settings.request_timeout = t;
        }
        settings.redis_prefix = format!("sbtest:{}", random_hex());
        settings.redis_url =
            options.redis_url.or_else(|| std::env::var("SWITCHBOARD_TEST_REDIS_URL").ok().filter(|u| !u.is_empty()));
        let redis = settings
            .redis_url
            .as_deref()
            .map(|u| switchboard_api::redis::RedisHandle::new(u, &settings.redis_prefix).expect("redis url"));
        let state = AppState::new(store, settings, redis).expect("state");
        let server = switchboard_api::app::serve(state.clone(), listener, 1).expect("serve");
        tokio::spawn(server);
        let database_url = state.settings.database_url.clone();
        Self {
            database_url,
            master_key,
            base,
            client: reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().expect("client"),
            key: key.plaintext.expose().to_owned(),
            tenant_id: tenant.id,
            admin_token,
            state,
            db,
        }
    }

    /// Another instance of this app — a second `switchboard serve` behind the same load
    /// balancer: the same database, master key, settings and Redis, its own process state
    /// (caches, gateway views) and port.
    pub async fn sibling(&self) -> Sibling {
        let envelope = Envelope::from_base64(&self.master_key).expect("envelope");
        let store = switchboard_api::bootstrap::open_store(&self.database_url, envelope, &StoreOptions::default())
            .await
            .expect("open store");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let settings = (*self.state.settings).clone();
        let redis = settings
            .redis_url
            .as_deref()
            .map(|u| switchboard_api::redis::RedisHandle::new(u, &settings.redis_prefix).expect("redis url"));
        let state = AppState::new(store, settings, redis).expect("state");
        tokio::spawn(switchboard_api::app::serve(state, listener, 1).expect("serve"));
        Sibling { base }
    }

    /// The background worker, built by the app's own runtime (as `serve` builds its in-process
    /// one): it shares the app's refresher and wake-ups.
    pub fn worker(&self) -> switchboard_worker::Worker {
        self.state.runtime.worker()
    }

    /// A worker of the same runtime configuration whose outbound calls have `limits` (and may
    /// reach the loopback peers).
    pub fn worker_with(&self, limits: switchboard_discovery::Limits) -> switchboard_worker::Worker {
        let mut config = self.state.runtime.config().clone();
        config.limits = limits;
        config.network.allow_private_networks = true;
        switchboard_worker::runtime::Runtime::new(self.store().clone(), config).expect("runtime").worker()
    }

    /// Runs the jobs that are due until a pass finds none (jobs retried later stay queued).
    pub async fn drain_jobs(&self) -> usize {
        let worker = self.worker();
        let mut ran = 0;
        loop {
            let n = worker.jobs().tick(100).await.expect("a job pass");
            if n == 0 {
                return ran;
            }
            ran += n;
        }
    }

    pub fn store(&self) -> &Store {
        &self.state.store
    }

    /// Another tenant in the same deployment: (id, key).
    pub async fn other_tenant(&self) -> (TenantId, String) {
        let (t, k) = self
            .store()
            .admin()
            .create_tenant(&Actor::System, TenantSpec { name: format!("other {}", random_hex()), slug: None })
            .await
            .expect("tenant");
        (t.id, k.plaintext.expose().to_owned())
    }

    /// A request with `key` as bearer (None: no credentials) and an optional JSON body.
    pub async fn call(&self, method: Method, path: &str, key: Option<&str>, body: Option<&Value>) -> Response {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Response::from(req.send().await.expect("request"), &self.base).await
    }

    pub async fn get(&self, path: &str) -> Response {
        self.call(Method::GET, path, Some(&self.key), None).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Response {
        self.call(Method::POST, path, Some(&self.key), Some(body)).await
    }

    pub async fn patch(&self, path: &str, body: &Value) -> Response {
        self.call(Method::PATCH, path, Some(&self.key), Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Option<&Value>) -> Response {
        self.call(Method::PUT, path, Some(&self.key), body).await
    }

    pub async fn delete(&self, path: &str) -> Response {
        self.call(Method::DELETE, path, Some(&self.key), None).await
    }

    pub async fn admin(&self, method: Method, path: &str, body: Option<&Value>) -> Response {
        self.call(method, path, Some(&self.admin_token.clone()), body).await
    }

    /// Creates a server with `auth: {type: none}` and returns its id.
    pub async fn create_server(&self, name: &str) -> String {
        let res = self.post("/v1/mcp-servers", &serde_json::json!({"name": name, "config": {"endpoint": "https://mcp.example.com/mcp", "auth": {"type": "none"}}})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        res.id()
    }

    pub async fn create_agent(&self, name: &str) -> String {
        let res = self.post("/v1/agents", &serde_json::json!({"name": name})).await;
        assert_eq!(res.status, StatusCode::CREATED, "{}", res.text);
        res.id()
    }

    /// Every stored byte, as text a canary can be searched in: the SQLite files themselves, or
    /// every row of every table on Postgres (bytea shown as hex).
    pub async fn dump_database(&self) -> String {
        match &self.db {
            Db::Sqlite { dir } => {
                let mut out = Vec::new();
                for entry in std::fs::read_dir(dir.path()).expect("read dir").flatten() {
                    if entry.file_name().to_string_lossy().starts_with("switchboard.db") {
                        out.extend(std::fs::read(entry.path()).expect("read db file"));
                    }
                }
                String::from_utf8_lossy(&out).into_owned()
            }
            Db::Postgres { url } => {
                let db = Database::connect(url.as_str()).await.expect("connect");
                let backend = db.get_database_backend();
                let tables = db
                    .query_all(Statement::from_string(
                        backend,
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'",
                    ))
                    .await
                    .expect("tables");
                let mut out = String::new();
                for t in tables {
                    let name: String = t.try_get("", "table_name").expect("name");
                    let rows = db
                        .query_all(Statement::from_string(
                            backend,
                            format!("SELECT row_to_json(t)::text AS j FROM \"{name}\" t"),
                        ))
                        .await
                        .expect("rows");
                    for r in rows {
                        out.push_str(&r.try_get::<String>("", "j").expect("json"));
                        out.push('\n');
                    }
                }
                out
            }
        }
    }
}

pub struct Response {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
}

impl Response {
    async fn from(res: reqwest::Response, _base: &str) -> Self {
        let status = res.status();
        let headers = res.headers().clone();
        let text = res.text().await.expect("body");
        Self { status, headers, text }
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text))
    }

    pub fn id(&self) -> String {
        self.json()["id"].as_str().expect("id").to_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem+json error with this status and code, and returns its body.
    #[track_caller]
    pub fn problem(&self, status: StatusCode, code: &str) -> Value {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(self.header("content-type"), Some("application/problem+json"), "{}", self.text);
        let body = self.json();
        assert_eq!(body["code"], code, "{}", self.text);
        assert_eq!(body["status"], status.as_u16());
        body
    }

    /// The field errors of a 422 as (field, code).
    #[track_caller]
    pub fn field_errors(&self) -> Vec<(String, String)> {
        let body = self.problem(StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        body["errors"]
            .as_array()
            .expect("errors")
            .iter()
            .map(|e| {
                (e["field"].as_str().unwrap_or_default().to_owned(), e["code"].as_str().unwrap_or_default().to_owned())
            })
            .collect()
    }
}
