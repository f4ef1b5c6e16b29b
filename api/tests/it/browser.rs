//! The consent flow in a real browser: headless Chromium driven over WebDriver (chromedriver),
//! signing in on the authorization server's own page (peers.mjs with `LOGIN_PAGE=1`), approving
//! or denying, and landing on Switchboard's callback page. A screenshot of each landing page is
//! saved as a test artifact (`$SWITCHBOARD_TEST_ARTIFACTS`, else cargo's per-target temp dir).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{Options, TestApp};
use crate::peers::Peers;

/// A chromedriver process and one browser session in it.
pub(crate) struct Browser {
    driver: Child,
    base: String,
    session: String,
    http: reqwest::Client,
}

impl Browser {
    pub(crate) async fn start() -> Self {
        let chromedriver = std::env::var("SWITCHBOARD_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        let chromium = std::env::var("SWITCHBOARD_CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        for path in [&chromedriver, &chromium] {
            assert!(
                std::path::Path::new(path).exists(),
                "{path} is missing: the browser test needs Debian's chromium and chromium-driver (scripts/test installs them)"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("port").local_addr().expect("addr").port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = http.get(format!("{base}/status")).send().await.ok();
            if let Some(res) = ready
                && res.json::<Value>().await.is_ok_and(|v| v["value"]["ready"] == true)
            {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start within 20 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let caps = json!({"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                     "--disable-dev-shm-usage", "--window-size=1000,800"]
        }}}});
        let res: Value =
            http.post(format!("{base}/session")).json(&caps).send().await.expect("session").json().await.expect("json");
        let session =
            res["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no browser session: {res}")).to_owned();
        Self { driver, base, session, http }
    }

    async fn cmd(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}/session/{}{path}", self.base, self.session);
        let mut req = self.http.request(method, url);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let res: Value = req.send().await.expect("webdriver").json().await.expect("webdriver json");
        assert!(res["value"].get("error").is_none(), "webdriver {path}: {res}");
        res["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    async fn find(&self, css: &str) -> String {
        let v = self.cmd(Method::POST, "/element", Some(json!({"using": "css selector", "value": css}))).await;
        v.as_object().and_then(|o| o.values().next()).and_then(Value::as_str).expect("element id").to_owned()
    }

    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css).await;
        self.cmd(Method::POST, &format!("/element/{el}/value"), Some(json!({"text": text}))).await;
    }

    pub(crate) async fn click(&self, css: &str) {
        let el = self.find(css).await;
        self.cmd(Method::POST, &format!("/element/{el}/click"), Some(json!({}))).await;
    }

    pub(crate) async fn current_url(&self) -> String {
        self.cmd(Method::GET, "/url", None).await.as_str().unwrap_or_default().to_owned()
    }

    pub(crate) async fn text(&self) -> String {
        let v = self
            .cmd(Method::POST, "/execute/sync", Some(json!({"script": "return document.body.innerText", "args": []})))
            .await;
        v.as_str().unwrap_or_default().to_owned()
    }

    /// Waits (polling, with a deadline) until the browser is on a page whose path starts with `path`.
    pub(crate) async fn wait_for_path(&self, path: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let url = self.current_url().await;
            if url::Url::parse(&url).is_ok_and(|u| u.path().starts_with(path)) {
                return url;
            }
            assert!(
                Instant::now() < deadline,
                "the browser never reached {path}; it is on {url}: {}",
                self.text().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits (polling, with a deadline) until the page's text contains `needle`; returns the text.
    /// A click that submits a form returns before the next page has loaded.
    pub(crate) async fn wait_for_text(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let text = self.text().await;
            if text.contains(needle) {
                return text;
            }
            assert!(Instant::now() < deadline, "the page never said {needle:?}; it says: {text}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a PNG of the page as a test artifact and returns where.
    pub(crate) async fn screenshot(&self, name: &str) -> std::path::PathBuf {
        let b64 = self.cmd(Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().expect("png")).expect("base64");
        assert!(png.starts_with(b"\x89PNG"), "a PNG");
        let dir =
            std::env::var("SWITCHBOARD_TEST_ARTIFACTS").unwrap_or_else(|_| env!("CARGO_TARGET_TMPDIR").to_owned());
        std::fs::create_dir_all(&dir).expect("artifact dir");
        let path = std::path::Path::new(&dir).join(name);
        std::fs::write(&path, png).expect("write screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    pub(crate) async fn quit(mut self) {
        let _ = self.http.delete(format!("{}/session/{}", self.base, self.session)).send().await;
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

#[tokio::test]
async fn a_person_signs_in_and_approves_in_a_real_browser() {
    let peers = Peers::start_with(&[("LOGIN_PAGE", "1")]);
    let app = TestApp::spawn_with(Options { allow_private_networks: true, ..Options::default() }).await;
    let server = app
        .post("/v1/mcp-servers", &json!({"name": "Peer MCP", "config": {"endpoint": peers.mcp_url, "auth": {"type": "oauth_authorization_code_confidential_pkce"}}}))
        .await
        .id();
    let (approver, decliner) = (app.create_agent("Support bot").await, app.create_agent("Sales bot").await);
    for agent in [&approver, &decliner] {
        app.put(&format!("/v1/agents/{agent}/mcp-servers/{server}"), None).await;
    }
    let ticket =
        app.post("/v1/session-tickets", &json!({"user_id": "user-1", "agent_ids": [approver, decliner]})).await.json()
            ["ticket"]
            .as_str()
            .expect("ticket")
            .to_owned();
    let rt = |path: String| {
        let (app, ticket) = (&app, ticket.clone());
        async move { app.call(Method::POST, &path, Some(&ticket), None).await }
    };
    let browser = Browser::start().await;

    // Approve: sign in (a wrong password first), approve, land on Switchboard's page.
    let res = rt(format!("/v1/runtime/agents/{approver}/mcp-servers/{server}/connect")).await;
    browser.goto(res.json()["auth_url"].as_str().expect("auth_url")).await;
    browser.wait_for_path("/interaction/").await;
    browser.wait_for_text("mcp:read").await; // the provider's page names the scope
    browser.type_into("#login", "user-1").await;
    browser.type_into("#password", "wrong").await;
    browser.click("#approve").await;
    browser.wait_for_text("Wrong user or password").await;
    browser.type_into("#login", "user-1").await;
    browser.type_into("#password", "pass").await;
    browser.click("#approve").await;
    browser.wait_for_path("/service/mcp/consent/callback").await;
    browser.wait_for_text("Peer MCP is now connected for Support bot").await;
    let shot = browser.screenshot("consent-approved.png").await;
    assert!(std::fs::metadata(&shot).expect("artifact").len() > 1000);
    let check = rt(format!("/v1/runtime/agents/{approver}/mcp-servers/{server}/check")).await.json();
    assert_eq!(check["ok"], true, "{check:#}");
    assert_eq!(check["tools"], json!(["echo", "whoami"]));

    // Deny: the page says so, nothing is connected, the refusal is audited. The provider would
    // remember the sign-in and the grant, so its cookies go first (as a different person's would).
    browser.goto(&format!("{}/__stats", peers.issuer)).await;
    browser.cmd(Method::DELETE, "/cookie", None).await;
    let res = rt(format!("/v1/runtime/agents/{decliner}/mcp-servers/{server}/connect")).await;
    browser.goto(res.json()["auth_url"].as_str().expect("auth_url")).await;
    browser.wait_for_path("/interaction/").await;
    browser.wait_for_text("Sign in").await;
    browser.type_into("#login", "user-1").await;
    browser.type_into("#password", "pass").await;
    browser.click("#deny").await;
    browser.wait_for_path("/service/mcp/consent/callback").await;
    browser.wait_for_text("You declined access, so nothing was connected").await;
    browser.screenshot("consent-denied.png").await;
    let listed =
        app.call(Method::GET, &format!("/v1/runtime/agents/{decliner}/mcp-servers"), Some(&ticket), None).await.json();
    assert_eq!(listed["data"][0]["connection_status"], "not_connected", "{listed:#}");
    let denied = app.get("/v1/audit-events?action=consent.denied").await.json();
    assert_eq!(denied["data"][0]["data"]["error"], "access_denied");
    assert_eq!(denied["data"][0]["data"]["code"], "consent_failed", "the audit event names its finding");
    assert_eq!(peers.stats().await["token_grants"]["authorization_code"], 1, "one code exchange in all");
    browser.quit().await;
}
