//! `switchboard admin`: tenants, API keys, grants and issuances from the command line (the first
//! tenant of a fresh install, an operator's repairs).

use clap::Subcommand;
use switchboard_domain::store::Store;
use switchboard_domain::tenant::Actor;

use super::common::explain;

#[derive(Subcommand, Debug)]
pub(super) enum AdminCommand {
    /// Tenants.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// Tenant API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Consent grants (connections).
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Token issuance records.
    Issuance {
        #[command(subcommand)]
        command: IssuanceCommand,
    },
    /// "Only some tenants fail": every tenant's server at one endpoint side by side, with the
    /// fields where a tenant differs from the others marked `*`.
    Compare {
        /// The MCP endpoint (`config.endpoint`).
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum GrantCommand {
    /// List a tenant's grants, optionally of one user.
    List {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        user: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum IssuanceCommand {
    /// List a tenant's issuance records (newest first), optionally of one server.
    List {
        #[arg(long)]
        tenant: uuid::Uuid,
        #[arg(long)]
        server: Option<uuid::Uuid>,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum TenantCommand {
    /// Create a tenant and print its first API key (shown once).
    Create {
        /// Display name.
        name: String,
        /// Slug; derived from the name when omitted.
        #[arg(long)]
        slug: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// List tenants.
    List {
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand, Debug)]
pub(super) enum ApiKeyCommand {
    /// Create an API key for a tenant and print it (shown once).
    Create {
        /// Tenant id.
        #[arg(long)]
        tenant: uuid::Uuid,
        /// A label for the key.
        #[arg(long)]
        name: Option<String>,
        #[arg(long)]
        json: bool,
    },
}

pub(super) async fn admin(command: AdminCommand, store: &Store) -> anyhow::Result<()> {
    match command {
        AdminCommand::Tenant { command: TenantCommand::Create { name, slug, json } } => {
            let spec = switchboard_domain::tenant::validate_create(&serde_json::json!({"name": name, "slug": slug}))
                .map_err(explain)?;
            let (tenant, key) = store.admin().create_tenant(&Actor::Admin, spec).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": tenant.id, "name": tenant.name, "slug": tenant.slug, "created_at": tenant.created_at,
                        "api_key": key.plaintext.expose(), "api_key_id": key.key.id, "api_key_prefix": key.key.prefix})
                );
            } else {
                println!(
                    "tenant   {} ({})\nid       {}\napi key  {}\n\nThe API key is shown once; store it now.",
                    tenant.name,
                    tenant.slug,
                    tenant.id,
                    key.plaintext.expose()
                );
            }
        }
        AdminCommand::Tenant { command: TenantCommand::List { json } } => {
            let mut cursor: Option<String> = None;
            let mut all = Vec::new();
            loop {
                let page = store
                    .admin()
                    .list_tenants(switchboard_domain::page::PageRequest::parse(Some("100"), cursor.as_deref())?)
                    .await?;
                all.extend(page.data);
                match page.next_cursor {
                    Some(c) => cursor = Some(c),
                    None => break,
                }
            }
            if json {
                let rows: Vec<_> = all
                    .iter()
                    .map(
                        |t| serde_json::json!({"id": t.id, "name": t.name, "slug": t.slug, "created_at": t.created_at}),
                    )
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for t in &all {
                    println!("{}  {:<24} {}", t.id, t.slug, t.name);
                }
            }
        }
        AdminCommand::Grant { command: GrantCommand::List { tenant, user, json } } => {
            let filter = switchboard_domain::store::ConnectionFilter { user_id: user, ..Default::default() };
            let page = store
                .tenant(tenant.into())
                .list_connections(switchboard_domain::page::PageRequest::parse(Some("100"), None)?, &filter)
                .await?;
            let rows: Vec<_> = page
                .data
                .iter()
                .map(|c| serde_json::json!({"id": c.id, "user_id": c.key.user_id, "agent_id": c.key.agent_id, "mcp_server_id": c.key.mcp_server_id,
                    "status": c.status.as_str(), "scopes": c.scopes, "connected_at": c.connected_at, "expires_at": c.expires_at}))
                .collect();
            if json {
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for c in &page.data {
                    println!(
                        "{}  {:<14} user {}  agent {}  server {}",
                        c.id,
                        c.status.as_str(),
                        c.key.user_id,
                        c.key.agent_id,
                        c.key.mcp_server_id
                    );
                }
            }
        }
        AdminCommand::Issuance { command: IssuanceCommand::List { tenant, server, json } } => {
            let filter = switchboard_domain::store::ConnectionFilter {
                mcp_server_id: server.map(Into::into),
                ..Default::default()
            };
            let page = store
                .tenant(tenant.into())
                .list_issuances(switchboard_domain::page::PageRequest::parse(Some("100"), None)?, &filter)
                .await?;
            if json {
                let rows: Vec<_> = page
                    .data
                    .iter()
                    .map(|i| serde_json::json!({"id": i.id, "outcome": i.outcome, "user_id": i.key.user_id, "agent_id": i.key.agent_id,
                        "mcp_server_id": i.key.mcp_server_id, "scopes": i.scopes, "reason": i.reason, "created_at": i.created_at}))
                    .collect();
                println!("{}", serde_json::Value::Array(rows));
            } else {
                for i in &page.data {
                    println!(
                        "{}  {:<8} user {}  server {}  {}",
                        i.created_at.format("%Y-%m-%d %H:%M:%S"),
                        i.outcome,
                        i.key.user_id,
                        i.key.mcp_server_id,
                        i.reason.as_deref().unwrap_or("")
                    );
                }
            }
        }
        AdminCommand::Compare { endpoint, json } => {
            let since = switchboard_domain::clock::now() - chrono::Duration::days(1);
            let rows = store.admin().compare_endpoint(&endpoint, since).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"endpoint": switchboard_domain::store::normalize_endpoint(&endpoint), "data": rows})
                );
            } else {
                print!("{}", compare_table(&endpoint, &rows));
            }
        }
        AdminCommand::ApiKey { command: ApiKeyCommand::Create { tenant, name, json } } => {
            let key = store.admin().create_api_key(&Actor::Admin, tenant.into(), name).await?;
            if json {
                println!(
                    "{}",
                    serde_json::json!({"id": key.key.id, "tenant_id": key.key.tenant_id, "name": key.key.name, "prefix": key.key.prefix,
                        "api_key": key.plaintext.expose(), "created_at": key.key.created_at})
                );
            } else {
                println!(
                    "api key  {}\nid       {}\n\nThe API key is shown once; store it now.",
                    key.plaintext.expose(),
                    key.key.id
                );
            }
        }
    }
    Ok(())
}

/// The comparison as a table: one column per tenant, one line per field, `*` where a tenant
/// differs from most.
fn compare_table(endpoint: &str, rows: &[switchboard_domain::compare::CompareRow]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    if rows.is_empty() {
        let _ = writeln!(out, "no tenant has a server at {endpoint}");
        return out;
    }
    const FIELDS: [&str; 10] = [
        "server",
        "auth_type",
        "issuer",
        "registration_method",
        "client_id_prefix",
        "token_endpoint_auth_method",
        "scopes",
        "resource",
        "grants_by_status",
        "failure_codes",
    ];
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let map = |m: &std::collections::BTreeMap<String, u64>| {
        if m.is_empty() {
            "-".to_owned()
        } else {
            m.iter().map(|(k, v)| format!("{k}:{v}")).collect::<Vec<_>>().join(" ")
        }
    };
    // One column per tenant: its values in FIELDS order, `*` where it differs, and its width.
    let columns: Vec<(&str, Vec<String>, usize)> = rows
        .iter()
        .map(|r| {
            let values = [
                r.mcp_server_slug.clone(),
                r.auth_type.clone(),
                opt(&r.issuer),
                opt(&r.registration_method),
                opt(&r.client_id_prefix),
                opt(&r.token_endpoint_auth_method),
                if r.scopes.is_empty() { "-".into() } else { r.scopes.join(" ") },
                opt(&r.resource),
                map(&r.grants_by_status),
                map(&r.failure_codes),
            ];
            let marked: Vec<String> = FIELDS
                .iter()
                .zip(values)
                .map(|(name, v)| if r.differs.iter().any(|d| d == name) { format!("{v}*") } else { v })
                .collect();
            let width = marked.iter().map(|v| v.chars().count()).chain([r.tenant_slug.len()]).max().unwrap_or(0) + 2;
            (r.tenant_slug.as_str(), marked, width)
        })
        .collect();
    let _ = writeln!(out, "{endpoint}: {} tenants\n", rows.len());
    let _ = write!(out, "{:<28}", "");
    for (slug, _, w) in &columns {
        let _ = write!(out, "{slug:<w$}");
    }
    let _ = writeln!(out);
    for (i, name) in FIELDS.iter().enumerate() {
        let _ = write!(out, "{name:<28}");
        for (_, values, w) in &columns {
            let _ = write!(out, "{:<w$}", values.get(i).map_or("", String::as_str));
        }
        let _ = writeln!(out);
    }
    let odd: Vec<String> = rows
        .iter()
        .filter(|r| !r.differs.is_empty())
        .map(|r| format!("{} ({})", r.tenant_slug, r.differs.join(", ")))
        .collect();
    let _ = writeln!(
        out,
        "\n{}",
        if odd.is_empty() {
            "every tenant is configured alike".to_owned()
        } else {
            format!("differs: {}", odd.join("; "))
        }
    );
    out
}
