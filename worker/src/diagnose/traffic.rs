//! What real traffic and the server's grants say: failures of the last hour by code, and grants
//! that need their users.

use serde_json::json;
use switchboard_domain::finding::{Finding, FindingCode as C, Severity};
use switchboard_domain::health::{HealthReport, OK};
use switchboard_domain::mcp_server::McpServer;
use switchboard_domain::{DomainError, TenantId};

use crate::runtime::Runtime;

/// The server's grants that need attention: those waiting for a new consent, and the errors
/// they recorded in the last day.
pub async fn grants(runtime: &Runtime, tenant: TenantId, server: &McpServer) -> Result<Vec<Finding>, DomainError> {
    let since = switchboard_domain::clock::now() - chrono::Duration::days(1);
    let (by_status, errors) = runtime.store.tenant(tenant).grant_summary(server.id, since).await?;
    let mut out = Vec::new();
    let total: u64 = by_status.values().sum();
    let reauth = by_status.get("needs_reauth").copied().unwrap_or(0);
    if reauth > 0 {
        out.push(
            Finding::new(C::NeedsReauth, format!("{reauth} of {total} grants need their users to consent again"))
                .severity(if reauth == total { Severity::Error } else { Severity::Warning })
                .with("grants_needing_reauth", reauth)
                .with("grants", total)
                .with("grants_by_status", json!(by_status)),
        );
    }
    let count = |code: &str| errors.get(code).copied().unwrap_or(0);
    let scope = count("insufficient_scope");
    if scope > 0 {
        out.push(
            Finding::new(
                C::InsufficientScope,
                format!("{scope} grants were refused by the MCP server for lack of scope in the last day"),
            )
            .severity(Severity::Warning)
            .with("grants", scope),
        );
    }
    let failing = count("refresh_failed");
    if failing > 0 {
        out.push(
            Finding::new(
                C::RefreshFailing,
                format!("refreshing failed for {failing} grants in the last day; Switchboard retries"),
            )
            .with("grants", failing),
        );
    }
    let exchange = count("token_exchange_failed") + count("authorization_failed");
    if exchange > 0 {
        out.push(
            Finding::new(C::ConsentFailed, format!("{exchange} consents failed at the provider in the last day"))
                .with("grants", exchange)
                .with("last_errors", json!(errors)),
        );
    }
    Ok(out)
}

/// Adds the last hour's failures by code: as figures on a finding of the same code already
/// made, or as a finding of their own (intermittent: the probes found nothing).
pub fn merge_recent(findings: &mut Vec<Finding>, report: &HealthReport) {
    let hour = &report.last_hour;
    for (outcome, &count) in &hour.outcomes {
        if outcome == OK || count == 0 {
            continue;
        }
        let Some(code) = C::parse(outcome) else { continue };
        let last = report.last_failures.iter().find(|f| &f.code == outcome);
        let figures = json!({
            "failures": count,
            "calls": hour.calls,
            "error_rate": hour.error_rate,
            "p50_ms": hour.p50_ms,
            "p95_ms": hour.p95_ms,
            "last_at": last.map(|l| l.at.to_rfc3339()),
            "last_detail": last.and_then(|l| l.detail.clone()),
        });
        if let Some(f) = findings.iter_mut().find(|f| f.code == code) {
            f.evidence.insert("last_hour".into(), figures);
            continue;
        }
        let severity = match code {
            C::NotConnected => Severity::Info,
            _ => Severity::Warning,
        };
        let detail = format!("{count} of {} calls in the last hour ended with `{outcome}`", hour.calls);
        let f = Finding::new(code, detail).severity(severity).with("last_hour", figures);
        findings.push(f);
    }
}
