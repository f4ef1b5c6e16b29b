//! `switchboard client <URL>`: the tenant admin's "does this server work at all" tool, and the
//! command the MCP conformance suite drives (through `scripts/conformance-client`).
//!
//! The engine is [`switchboard_discovery::client`]; this module maps flags to its options and
//! supplies the interactive authorizer: the authorization URL is printed, and the browser's
//! redirect is received on a loopback port (RFC 8252 §7.3), one request per authorization.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use switchboard_discovery::client::{self, Authorizer, Grant, McpClient, Options, PreRegistered};
use switchboard_discovery::{Fetcher, Limits, NetworkPolicy};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use url::Url;

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum GrantArg {
    AuthorizationCode,
    ClientCredentials,
}

/// Flags of `switchboard client`.
#[derive(Args, Debug)]
pub struct ClientArgs {
    /// The MCP server's Streamable HTTP URL.
    pub url: String,
    /// How to obtain a token.
    #[arg(long, value_enum, default_value = "authorization-code")]
    pub grant: GrantArg,
    /// A pre-registered client id (skips CIMD and dynamic registration).
    #[arg(long)]
    pub client_id: Option<String>,
    /// The pre-registered client's secret.
    #[arg(long, env = "SWITCHBOARD_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// The URL of a Client ID Metadata Document this client is known by, used as `client_id` when
    /// the authorization server supports CIMD.
    #[arg(long)]
    pub client_metadata_url: Option<String>,
    /// Scopes to request (space-separated) instead of the server's challenge or metadata.
    #[arg(long)]
    pub scope: Option<String>,
    /// Call this tool after tools/list.
    #[arg(long, value_name = "TOOL")]
    pub call: Option<String>,
    /// The tool's arguments, as a JSON object.
    #[arg(long, value_name = "JSON", default_value = "{}")]
    pub args: String,
    /// No browser: request the authorization URL and follow its redirects until one comes back to
    /// the redirect URI, then read the code from it (for authorization servers that approve without
    /// a sign-in page, such as test servers).
    #[arg(long)]
    pub headless: bool,
    /// The redirect URI to register and send (default: the loopback listener, or
    /// http://127.0.0.1/callback when headless).
    #[arg(long)]
    pub redirect_uri: Option<String>,
    /// The loopback port that receives the browser's redirect (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub callback_port: u16,
    /// How long to wait for the browser, in seconds.
    #[arg(long, default_value_t = 300)]
    pub wait: u64,
    /// Authorizations allowed in one run, step-ups included.
    #[arg(long, default_value_t = 3)]
    pub max_authorizations: usize,
    /// Allow loopback and private addresses, and http:// on them (development and tests only).
    #[arg(long, env = "SWITCHBOARD_ALLOW_PRIVATE_NETWORKS", default_value_t = false, action = clap::ArgAction::SetTrue)]
    pub allow_private_network: bool,
    /// Comma-separated CIDRs and host names outbound calls may reach despite the policy.
    #[arg(long, env = "SWITCHBOARD_OUTBOUND_ALLOWLIST", default_value = "")]
    pub outbound_allowlist: String,
    /// The MCP protocol version to speak (2026-07-28 and later: stateless, no initialize).
    #[arg(long, default_value = switchboard_discovery::discover::PROTOCOL_VERSION)]
    pub protocol_version: String,
    /// Print every request even when the run succeeds.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Runs the client; the exit code is 0 when every call succeeded.
pub async fn run(args: ClientArgs) -> anyhow::Result<ExitCode> {
    let endpoint = Url::parse(&args.url).with_context(|| format!("{} is not a URL", args.url))?;
    let arguments: serde_json::Value = serde_json::from_str(&args.args).context("--args must be a JSON object")?;
    anyhow::ensure!(arguments.is_object(), "--args must be a JSON object");
    let network = NetworkPolicy { allow_private_networks: args.allow_private_network, allow: vec![] }
        .with_allowlist(&args.outbound_allowlist)
        .map_err(|e| anyhow::anyhow!("--outbound-allowlist: {e}"))?;
    let fetcher =
        Fetcher::new(network, Limits::default()).map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
    let grant = match args.grant {
        GrantArg::AuthorizationCode => Grant::AuthorizationCode,
        GrantArg::ClientCredentials => Grant::ClientCredentials,
    };
    let (authorize, redirect_uri): (Authorizer, String) = if args.headless || grant == Grant::ClientCredentials {
        let redirect = args.redirect_uri.clone().unwrap_or_else(|| "http://127.0.0.1/callback".into());
        (client::headless(fetcher.clone(), redirect.clone()), redirect)
    } else {
        let listener = TcpListener::bind(("127.0.0.1", args.callback_port))
            .await
            .with_context(|| format!("cannot listen on 127.0.0.1:{}", args.callback_port))?;
        let port = listener.local_addr()?.port();
        let redirect = args.redirect_uri.clone().unwrap_or_else(|| format!("http://127.0.0.1:{port}/callback"));
        (loopback(Arc::new(listener), Duration::from_secs(args.wait)), redirect)
    };
    let opts = Options {
        endpoint: endpoint.clone(),
        grant,
        pre_registered: args
            .client_id
            .clone()
            .map(|id| PreRegistered { client_id: id, client_secret: args.client_secret.clone() }),
        client_metadata_url: args.client_metadata_url.clone(),
        redirect_uri,
        client_name: "Switchboard CLI".into(),
        scopes: args.scope.as_deref().map(|s| s.split_ascii_whitespace().map(str::to_owned).collect()),
        call: args.call.clone().map(|name| (name, arguments)),
        max_authorizations: args.max_authorizations.max(1),
        protocol_version: args.protocol_version.clone(),
    };
    let progress = Box::new(|line: &str| eprintln!("switchboard client: {line}"));
    let outcome = McpClient::new(opts, fetcher, authorize, progress).run().await;
    let (report, code) = match outcome {
        Ok(r) => (r, ExitCode::SUCCESS),
        Err(r) => (r, ExitCode::FAILURE),
    };
    if args.verbose || report.error.is_some() {
        print!("{}", super::report::client(&report, endpoint.as_str()));
    } else {
        println!(
            "OK: {} answered with {} tools ({} authorization{}){}",
            report.server_name.as_deref().unwrap_or("the server"),
            report.tools.len(),
            report.authorizations,
            if report.authorizations == 1 { "" } else { "s" },
            report.call_result.as_ref().map_or(String::new(), |r| format!("\ncall result: {r}"))
        );
    }
    Ok(code)
}

/// The interactive authorizer: print the URL, then take the first `/callback` request on the
/// loopback listener (other requests, such as a browser's favicon, get a 404).
fn loopback(listener: Arc<TcpListener>, wait: Duration) -> Authorizer {
    Arc::new(move |url: Url| {
        let listener = listener.clone();
        Box::pin(async move {
            eprintln!("\nOpen this URL in a browser and approve the access:\n\n  {url}\n");
            let base = Url::parse("http://127.0.0.1/").map_err(|e| e.to_string())?;
            tokio::time::timeout(wait, async {
                loop {
                    let (mut socket, _) = listener.accept().await.map_err(|e| e.to_string())?;
                    let mut buf = vec![0u8; 8192];
                    let n = socket.read(&mut buf).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
                    let target = head.lines().next().and_then(|l| l.split(' ').nth(1)).unwrap_or("/");
                    let Ok(back) = base.join(target) else { continue };
                    if back.path() != "/callback" {
                        let _ = socket.write_all(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                        continue;
                    }
                    let page = "<!doctype html><title>Switchboard</title><p>The authorization response reached the command line. You can close this tab.";
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ncontent-length: {}\r\nreferrer-policy: no-referrer\r\nconnection: close\r\n\r\n{page}",
                        page.len()
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    return Ok(back);
                }
            })
            .await
            .map_err(|_| format!("no browser came back within {} s", wait.as_secs()))?
        })
    })
}
