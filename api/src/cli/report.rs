//! The human reports of `switchboard discover` and `switchboard client`.

use std::fmt::Write as _;

use switchboard_discovery::client::Report;
use switchboard_discovery::{DiscoveryResult, Step};

/// One line per HTTP request: method, URL, status, milliseconds, what it taught.
fn steps(out: &mut String, steps: &[Step]) {
    let width = steps.iter().map(|s| s.url.len()).max().unwrap_or(0).min(80);
    for s in steps {
        let status = s.status.map_or_else(|| "---".to_owned(), |c| c.to_string());
        let _ = writeln!(out, "  {:<4} {:<width$}  {status:>3}  {:>5} ms  {}", s.method, s.url, s.ms, s.learned);
        if let Some(e) = &s.error {
            let _ = writeln!(out, "  {:<4} {:<width$}  error: {e}", "", "");
        }
    }
}

/// Renders a `switchboard client` run: the requests, then what worked or why it stopped.
#[must_use]
pub fn client(r: &Report, endpoint: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "MCP client session with {endpoint}\n");
    steps(&mut out, &r.steps);
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out);
    let rows: Vec<(&str, String)> = vec![
        ("server", opt(&r.server_name)),
        ("protocol", opt(&r.protocol_version)),
        ("issuer", opt(&r.issuer)),
        ("client", opt(&r.client_registration)),
        ("scopes", if r.scopes.is_empty() { "-".into() } else { r.scopes.join(" ") }),
        ("authorizations", r.authorizations.to_string()),
        ("tools", if r.tools.is_empty() { "-".into() } else { r.tools.join(", ") }),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<15} {v}");
    }
    if let Some(result) = &r.call_result {
        let _ = writeln!(out, "  {:<15} {}", "call result", result);
    }
    let _ = writeln!(
        out,
        "\n{}",
        match &r.error {
            None => "OK: the server works with these settings".to_owned(),
            Some(e) => format!("FAILED: {e}"),
        }
    );
    out
}

/// Renders a discovery result for a terminal: each request, the findings, the conclusion and
/// what to do next.
#[must_use]
pub fn discovery(r: &DiscoveryResult) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "Discovery of {}\n", r.endpoint);
    steps(&mut out, &r.steps);
    let yes_no = |b: bool| if b { "yes" } else { "no" };
    let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "-".into());
    let _ = writeln!(out, "\nFindings");
    let rows: Vec<(&str, String)> = vec![
        ("requires auth", yes_no(r.requires_auth).into()),
        ("recommended auth", opt(&r.recommended_auth_mode)),
        ("spec version", opt(&r.spec_version)),
        ("resource metadata", opt(&r.resource_metadata_url)),
        ("issuer", opt(&r.issuer)),
        ("auth_url", opt(&r.auth_url)),
        ("token_url", opt(&r.token_url)),
        ("register_url", opt(&r.register_url)),
        ("resource", opt(&r.resource)),
        (
            "scopes",
            if r.scopes.is_empty() { "-".into() } else { format!("{} (from {})", r.scopes.join(" "), r.scopes_source) },
        ),
        (
            "PKCE methods",
            if r.code_challenge_methods_supported.is_empty() {
                "none listed".into()
            } else {
                r.code_challenge_methods_supported.join(", ")
            },
        ),
        ("token auth methods", r.token_endpoint_auth_methods_supported.join(", ")),
        ("client metadata docs", yes_no(r.client_id_metadata_document_supported).into()),
    ];
    for (k, v) in rows {
        let _ = writeln!(out, "  {k:<22}{v}");
    }
    if !r.warnings.is_empty() {
        let _ = writeln!(out, "\nWarnings");
        for w in &r.warnings {
            let _ = writeln!(out, "  - {w}");
        }
    }
    let _ = writeln!(out, "\nConclusion\n  {}", r.message);
    if let Some(mode) = &r.recommended_auth_mode {
        let _ = writeln!(
            out,
            "\nNext\n  register it: POST /v1/mcp-servers with {{\"name\": \"…\", \"config\": {{\"endpoint\": \"{}\", \"auth\": {{\"type\": \"{mode}\"}}}}}}\n  (Switchboard fills the auth fields above and registers a client when it can)",
            r.endpoint
        );
    }
    out
}
