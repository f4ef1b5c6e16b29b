//! `switchboard doctor`: the tenant admin's command. It asks the API (`SWITCHBOARD_URL` +
//! `SWITCHBOARD_API_KEY`, no database) to diagnose a server or one user's connection, and prints
//! the findings as a report — coloured on a terminal, JSON with `--json`. Exit code 0 when all
//! is well (or only `info`), 1 with a warning, 2 with an error, 3 when it could not ask.

use std::fmt::Write as _;
use std::io::IsTerminal as _;

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub(super) enum DoctorCommand {
    /// Diagnose a server: discovery again against its configuration, its provider probed, its
    /// grants and the last hour of traffic read.
    Server {
        /// The server's id or slug.
        server: String,
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Diagnose one user's connection to a server through an agent (and the server with it).
    Connection {
        /// The end user's id (as in the session tickets).
        #[arg(long)]
        user: String,
        /// The agent's id or slug.
        #[arg(long)]
        agent: String,
        /// The server's id or slug.
        #[arg(long)]
        server: String,
        #[command(flatten)]
        api: ApiArgs,
    },
}

#[derive(Args, Debug)]
pub(super) struct ApiArgs {
    /// Switchboard's base URL.
    #[arg(long, env = "SWITCHBOARD_URL", default_value = "http://127.0.0.1:8080")]
    url: String,
    /// A tenant API key (`sb_…`).
    #[arg(long, env = "SWITCHBOARD_API_KEY", hide_env_values = true)]
    api_key: String,
    /// Print the diagnosis as JSON.
    #[arg(long)]
    json: bool,
}

struct Api {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Api {
    fn new(args: &ApiArgs) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Self { http, base: args.url.trim_end_matches('/').to_owned(), key: args.api_key.clone() })
    }

    async fn send(&self, method: reqwest::Method, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
        let mut req = self.http.request(method, format!("{}{path}", self.base)).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let res = req.send().await.with_context(|| format!("cannot reach {}", self.base))?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or(Value::Null);
        if !status.is_success() {
            let detail = body.get("detail").and_then(Value::as_str).unwrap_or("no detail");
            let code = body.get("code").and_then(Value::as_str).unwrap_or("?");
            let hint = body.get("hint").and_then(Value::as_str).map(|h| format!(" ({h})")).unwrap_or_default();
            bail!("{path}: HTTP {status} {code}: {detail}{hint}");
        }
        Ok(body)
    }

    /// The id of the `kind` (`mcp-servers`, `agents`) named by id or slug.
    async fn resolve(&self, kind: &str, name: &str) -> anyhow::Result<String> {
        if uuid::Uuid::parse_str(name).is_ok() {
            return Ok(name.to_owned());
        }
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/{kind}?limit=100&cursor={c}"),
                None => format!("/v1/{kind}?limit=100"),
            };
            let page = self.send(reqwest::Method::GET, &path, None).await?;
            let data = page.get("data").and_then(Value::as_array).cloned().unwrap_or_default();
            if let Some(found) = data.iter().find(|i| i.get("slug").and_then(Value::as_str) == Some(name)) {
                return Ok(found.get("id").and_then(Value::as_str).unwrap_or_default().to_owned());
            }
            match page.get("next_cursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_owned()),
                None => bail!("no {} with id or slug `{name}`", kind.trim_end_matches('s').replace('-', " ")),
            }
        }
    }
}

pub(super) async fn run(command: DoctorCommand) -> std::process::ExitCode {
    match doctor(command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::from(3)
        }
    }
}

async fn doctor(command: DoctorCommand) -> anyhow::Result<std::process::ExitCode> {
    let (api_args, server, target) = match &command {
        DoctorCommand::Server { server, api } => (api, server, None),
        DoctorCommand::Connection { user, agent, server, api } => (api, server, Some((user, agent))),
    };
    let api = Api::new(api_args)?;
    let server_id = api.resolve("mcp-servers", server).await?;
    let body = match target {
        Some((user, agent)) => Some(json!({"user_id": user, "agent_id": api.resolve("agents", agent).await?})),
        None => None,
    };
    let diagnosis =
        api.send(reqwest::Method::POST, &format!("/v1/mcp-servers/{server_id}/diagnose"), body.as_ref()).await?;
    let health = api.send(reqwest::Method::GET, &format!("/v1/mcp-servers/{server_id}/health"), None).await.ok();
    let server_info = api.send(reqwest::Method::GET, &format!("/v1/mcp-servers/{server_id}"), None).await.ok();
    let findings = diagnosis.get("findings").and_then(Value::as_array).cloned().unwrap_or_default();
    if api_args.json {
        println!("{}", json!({"diagnosis": diagnosis, "health": health}));
    } else {
        let colour = std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none();
        let who = target.map(|(u, a)| format!(" · user {u} through agent {a}"));
        print!("{}", report(&diagnosis, server_info.as_ref(), health.as_ref(), who.as_deref(), colour));
    }
    let worst = |s: &str| findings.iter().any(|f| f.get("severity").and_then(Value::as_str) == Some(s));
    Ok(std::process::ExitCode::from(if worst("error") {
        2
    } else if worst("warning") {
        1
    } else {
        0
    }))
}

fn paint(colour: bool, code: &str, text: &str) -> String {
    if colour { format!("\u{1b}[{code}m{text}\u{1b}[0m") } else { text.to_owned() }
}

/// The findings as a person reads them: worst first, each with its evidence and fix.
#[must_use]
pub fn report(
    diagnosis: &Value,
    server: Option<&Value>,
    health: Option<&Value>,
    who: Option<&str>,
    colour: bool,
) -> String {
    let mut out = String::new();
    let s = |v: Option<&Value>, k: &str| v.and_then(|v| v.get(k)).and_then(Value::as_str).unwrap_or("").to_owned();
    let name = s(server, "slug");
    let endpoint = server.and_then(|v| v.pointer("/config/endpoint")).and_then(Value::as_str).unwrap_or("");
    let _ = writeln!(
        out,
        "{} server {} ({}) {endpoint}{}",
        paint(colour, "1", "switchboard doctor ·"),
        if name.is_empty() { "?" } else { &name },
        s(Some(diagnosis), "server_id"),
        who.unwrap_or("")
    );
    let _ = writeln!(out, "checked at {}\n", s(Some(diagnosis), "checked_at"));
    let findings = diagnosis.get("findings").and_then(Value::as_array).cloned().unwrap_or_default();
    if findings.is_empty() {
        let _ = writeln!(out, "{}", paint(colour, "32", "✔ no findings: everything Switchboard can check works"));
    }
    let (mut errors, mut warnings, mut infos) = (0, 0, 0);
    for f in &findings {
        let severity = s(Some(f), "severity");
        let (mark, c, count) = match severity.as_str() {
            "error" => ("✖ error  ", "31", &mut errors),
            "warning" => ("⚠ warning", "33", &mut warnings),
            _ => ("ℹ info   ", "34", &mut infos),
        };
        *count += 1;
        let _ = writeln!(
            out,
            "{} {} — {}",
            paint(colour, c, mark),
            paint(colour, "1", &s(Some(f), "code")),
            s(Some(f), "title")
        );
        let _ = writeln!(out, "           {}", s(Some(f), "detail"));
        if let Some(evidence) = f.get("evidence").and_then(Value::as_object).filter(|e| !e.is_empty()) {
            for (k, v) in evidence {
                let v = match v {
                    Value::String(t) => t.clone(),
                    other => other.to_string(),
                };
                let _ = writeln!(out, "           {} {v}", paint(colour, "2", &format!("{k}:")));
            }
        }
        let _ = writeln!(out, "           {} {}\n", paint(colour, "36", "fix:"), s(Some(f), "fix"));
    }
    if let Some(hour) = health.and_then(|h| h.get("last_hour")) {
        let n = |k: &str| hour.get(k).map(|v| v.to_string()).unwrap_or_else(|| "-".into());
        let rate = hour.get("error_rate").and_then(Value::as_f64).unwrap_or(0.0) * 100.0;
        let _ = writeln!(
            out,
            "traffic, last hour: {} calls, {rate:.1}% failed, p50 {} ms, p95 {} ms, {} timeouts",
            n("calls"),
            n("p50_ms"),
            n("p95_ms"),
            n("timeouts")
        );
    }
    let _ = writeln!(out, "{errors} errors, {warnings} warnings, {infos} info");
    out
}
