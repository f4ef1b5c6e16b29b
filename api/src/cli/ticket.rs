//! `switchboard ticket`: delegation offline — no database, no network. `attenuate` appends one
//! narrowing block, `inspect` prints what a ticket grants after every block, `verify` gives the
//! gateway's decision on a request and names the check that refused it. Every subcommand needs
//! the tenant's public key (`GET /v1/session-tickets/public-key`), which is not a secret.

use std::time::{Duration, SystemTime};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use switchboard_domain::AgentId;
use switchboard_domain::ticket::delegation::{self, Cap, Grants, Narrowing};
use switchboard_domain::ticket::{self, TicketError, TicketRequest};

#[derive(Subcommand, Debug)]
pub(super) enum TicketCommand {
    /// Narrow a ticket by one block: fewer tools, servers, agents or operations, a shorter life,
    /// argument caps. Prints the new ticket (stdout) and what it grants (stderr).
    Attenuate(AttenuateArgs),
    /// Print what a ticket grants after every block: tools, servers, expiry, caps, depth, subject.
    Inspect(KeyArgs),
    /// The gateway's decision on one request, with the check that refused it. Exit code 0 when
    /// allowed, 1 when refused.
    Verify(VerifyArgs),
}

#[derive(Args, Debug)]
pub(super) struct KeyArgs {
    /// The ticket (`sbt_…`); `-` reads it from standard input.
    #[arg(long, env = "SWITCHBOARD_TICKET", hide_env_values = true)]
    ticket: String,
    /// The tenant's public key, hex (GET /v1/session-tickets/public-key).
    #[arg(long, env = "SWITCHBOARD_TICKET_PUBLIC_KEY")]
    public_key: String,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Args, Debug)]
pub(super) struct AttenuateArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Only these tools may be called (comma-separated).
    #[arg(long, value_delimiter = ',')]
    tools: Option<Vec<String>>,
    /// Only these servers (ids or slugs, comma-separated).
    #[arg(long, value_delimiter = ',')]
    servers: Option<Vec<String>>,
    /// Only these agents (ids or slugs, comma-separated).
    #[arg(long, value_delimiter = ',')]
    agents: Option<Vec<String>>,
    /// Only these operations (list, call, connect, disconnect, check; comma-separated).
    #[arg(long, value_delimiter = ',')]
    operations: Option<Vec<String>>,
    /// A shorter life: `90s`, `30m`, `2h` or seconds.
    #[arg(long)]
    ttl: Option<String>,
    /// An argument cap, `tool.argument=max` (`,default` lets a call leave it out); repeatable.
    #[arg(long = "cap")]
    caps: Vec<String>,
}

#[derive(Args, Debug)]
pub(super) struct VerifyArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The agent the request is for (its id; a slug too with --agent-slug).
    #[arg(long)]
    agent: String,
    #[arg(long)]
    agent_slug: Option<String>,
    /// The server (id), and its slug.
    #[arg(long)]
    server: Option<String>,
    #[arg(long)]
    server_slug: Option<String>,
    /// The tool called (implies --operation call).
    #[arg(long)]
    tool: Option<String>,
    /// The call's arguments, a JSON object.
    #[arg(long)]
    args: Option<String>,
    /// `list`, `call`, `connect`, …
    #[arg(long)]
    operation: Option<String>,
}

fn read_ticket(t: &str) -> anyhow::Result<String> {
    if t == "-" {
        let mut s = String::new();
        std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).context("reading the ticket from stdin")?;
        return Ok(s.trim().to_owned());
    }
    Ok(t.trim().to_owned())
}

fn parse_ttl(text: &str) -> anyhow::Result<Duration> {
    let t = text.trim();
    let (n, unit) = t.find(|c: char| !c.is_ascii_digit()).map_or((t, ""), |i| t.split_at(i));
    let n: u64 = n.parse().with_context(|| format!("--ttl `{text}`: say 90s, 30m or 2h"))?;
    let secs = match unit {
        "" | "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => bail!("--ttl `{text}`: say 90s, 30m or 2h"),
    };
    match secs.filter(|s| *s <= ticket::MAX_LIFETIME.as_secs()) {
        Some(s) => Ok(Duration::from_secs(s)),
        None => bail!(
            "--ttl `{text}` is longer than any ticket lives ({} h at most)",
            ticket::MAX_LIFETIME.as_secs() / 3600
        ),
    }
}

fn check_key(public_key: &str) -> anyhow::Result<()> {
    let ok = public_key.len() == 64 && public_key.bytes().all(|b| b.is_ascii_hexdigit());
    if !ok {
        bail!(
            "--public-key must be the tenant's Ed25519 public key, 64 hex digits (GET /v1/session-tickets/public-key)"
        );
    }
    Ok(())
}

/// Runs a `ticket` subcommand; the exit code is `verify`'s decision (0 allowed, 1 refused), and
/// 2 for an error.
pub(super) fn run(command: TicketCommand) -> anyhow::Result<std::process::ExitCode> {
    let key = match &command {
        TicketCommand::Attenuate(a) => &a.key,
        TicketCommand::Inspect(k) => k,
        TicketCommand::Verify(v) => &v.key,
    };
    check_key(&key.public_key)?;
    match command {
        TicketCommand::Attenuate(a) => {
            let now = SystemTime::now();
            let caps =
                a.caps.iter().map(|c| Cap::parse(c).map_err(anyhow::Error::msg)).collect::<Result<Vec<_>, _>>()?;
            let expires_at = match a.ttl.as_deref().map(parse_ttl).transpose()? {
                Some(d) => Some(now.checked_add(d).context("--ttl is too long")?),
                None => None,
            };
            let narrowing = Narrowing {
                tools: a.tools,
                servers: a.servers,
                agents: a.agents,
                operations: a.operations,
                expires_at,
                caps,
            };
            let (narrowed, grants) =
                delegation::narrow(&read_ticket(&a.key.ticket)?, &a.key.public_key, &narrowing, now)?;
            println!("{narrowed}");
            if a.key.json {
                eprintln!("{}", serde_json::to_string_pretty(&grants)?);
            } else {
                eprint!("{}", report(&grants));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        TicketCommand::Inspect(k) => {
            let grants = delegation::inspect(&read_ticket(&k.ticket)?, &k.public_key)?;
            if k.json {
                println!("{}", serde_json::to_string_pretty(&grants)?);
            } else {
                print!("{}", report(&grants));
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        TicketCommand::Verify(v) => verify(v),
    }
}

fn verify(v: VerifyArgs) -> anyhow::Result<std::process::ExitCode> {
    let agent = v.agent.parse::<uuid::Uuid>().map(AgentId).context("--agent must be the agent's id")?;
    if v.args.is_some() && v.tool.is_none() {
        bail!("--args are a tool call's: give --tool too");
    }
    let args: Option<serde_json::Map<String, serde_json::Value>> = match &v.args {
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .ok()
                .and_then(|a| a.as_object().cloned())
                .context("--args must be a JSON object")?,
        ),
        None => None,
    };
    let operation = v.operation.as_deref().unwrap_or(if v.tool.is_some() { "call" } else { "list" });
    let empty = serde_json::Map::new();
    let request = TicketRequest {
        agent,
        agent_slug: v.agent_slug.as_deref(),
        server: v.server.as_deref(),
        server_slug: v.server_slug.as_deref(),
        tool: v.tool.as_deref(),
        operation,
        arguments: v.tool.as_ref().map(|_| args.as_ref().unwrap_or(&empty)),
    };
    let presented = read_ticket(&v.key.ticket)?;
    let (token, _) = match ticket::open(&presented, &v.key.public_key) {
        Ok(t) => t,
        // Not a verdict on the request: the ticket itself cannot be used (exit code 2).
        Err(e @ (TicketError::Malformed | TicketError::BadSignature | TicketError::Internal)) => {
            bail!("the ticket cannot be opened with this public key: {e}")
        }
        Err(e) => return refused(&v, &e, &[], None),
    };
    let authority = match ticket::authority(&token) {
        Ok(a) => a,
        Err(e) => return refused(&v, &e, &[], None),
    };
    let (decision, failed) = delegation::explain(&token, &request, SystemTime::now());
    match decision {
        Ok(()) => {
            if v.key.json {
                let body = serde_json::json!({"allowed": true, "delegation_depth": authority.depth});
                println!("{}", serde_json::to_string_pretty(&body)?);
            } else {
                println!("allowed (delegation depth {})", authority.depth);
            }
            Ok(std::process::ExitCode::SUCCESS)
        }
        Err(e) => refused(&v, &e, &failed, Some(authority.depth)),
    }
}

/// Prints a refusal and the checks behind it; exit code 1.
fn refused(
    v: &VerifyArgs,
    e: &TicketError,
    failed: &[delegation::FailedCheck],
    depth: Option<usize>,
) -> anyhow::Result<std::process::ExitCode> {
    if v.key.json {
        let body = serde_json::json!({
            "allowed": false,
            "error": e.to_string(),
            "failed_checks": failed,
            "delegation_depth": depth,
        });
        println!("{}", serde_json::to_string_pretty(&body)?);
    } else {
        println!("refused: {e}");
        for f in failed {
            match f.block {
                Some(0) => println!("  the authority block's check {}: {}", f.check, f.rule),
                Some(b) => println!("  block {b}, check {}: {}", f.check, f.rule),
                None => println!("  the verifier's policy: {}", f.rule),
            }
        }
    }
    Ok(std::process::ExitCode::from(1))
}

fn list(set: Option<&std::collections::BTreeSet<String>>, all: &str) -> String {
    set.map_or_else(
        || all.to_owned(),
        |s| if s.is_empty() { "none".to_owned() } else { s.iter().cloned().collect::<Vec<_>>().join(", ") },
    )
}

/// The grants as text.
fn report(g: &Grants) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<12} {v}\n"));
    line("user", g.user.clone());
    line("subject", g.subject.clone());
    line("agents", if g.agent_filter.is_some() { list(g.agent_filter.as_ref(), "") } else { g.agents.join(", ") });
    line("servers", list(g.servers.as_ref(), "every server attached to the agents"));
    line("tools", list(g.tools.as_ref(), "every tool the attachments allow"));
    line("operations", list(g.operations.as_ref(), "all"));
    line("expires", g.expires_at.map_or_else(|| "-".to_owned(), |e| e.to_rfc3339()));
    line(
        "caps",
        if g.caps.is_empty() {
            "none".to_owned()
        } else {
            g.caps
                .iter()
                .map(|c| {
                    format!(
                        "{}.{} <= {}{}",
                        c.tool,
                        c.argument,
                        c.max,
                        if c.default { " (may be left out)" } else { "" }
                    )
                })
                .collect::<Vec<_>>()
                .join(", ")
        },
    );
    line("depth", format!("{} of {}", g.depth, g.max_delegation_depth));
    for b in &g.blocks {
        for other in &b.other_checks {
            line(&format!("block {}", b.block), other.clone());
        }
    }
    out
}
