//! What a person pastes into an MCP client to use an agent through the gateway: per client, the
//! file (or command) and its content. Pure text; the API serves it (`GET /v1/agents/{id}/client-setup`).
//!
//! With sign-in (the tenant has an identity provider) a client needs only the URL: it discovers
//! the authorization server from the 401 and signs the user in. Without, the URL takes a session
//! ticket as its bearer token, and the snippets carry a `<SESSION_TICKET>` placeholder.

use serde::Serialize;

/// One client's set-up.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ClientSnippet {
    /// `claude_code`, `claude_desktop`, `cursor`, `vscode`, `windsurf`, `mcp_inspector`.
    pub client: &'static str,
    /// What the person does with `content`.
    pub how: &'static str,
    /// `json` or `shell`.
    pub format: &'static str,
    pub content: String,
}

/// The placeholder for a session ticket in snippets of a tenant without sign-in.
pub const TICKET_PLACEHOLDER: &str = "<SESSION_TICKET>";

fn json_text(v: &serde_json::Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_default()
}

/// The snippets for the MCP server `name` at `url`.
#[must_use]
pub fn snippets(name: &str, url: &str, sign_in: bool) -> Vec<ClientSnippet> {
    use serde_json::json;
    let bearer = format!("Bearer {TICKET_PLACEHOLDER}");
    let headers = |mut v: serde_json::Value, key: &str| {
        if !sign_in && let Some(o) = v.as_object_mut() {
            o.insert(key.to_owned(), json!({"Authorization": bearer}));
        }
        v
    };
    let claude_code = if sign_in {
        format!("claude mcp add --transport http {name} {url}")
    } else {
        format!("claude mcp add --transport http {name} {url} --header \"Authorization: {bearer}\"")
    };
    let remote_args = if sign_in {
        json!(["-y", "mcp-remote", url])
    } else {
        json!(["-y", "mcp-remote", url, "--header", format!("Authorization:{bearer}")])
    };
    vec![
        ClientSnippet { client: "claude_code", how: "run in a terminal", format: "shell", content: claude_code },
        ClientSnippet {
            client: "claude_desktop",
            how: "add to claude_desktop_config.json (Settings → Developer → Edit Config), then restart",
            format: "json",
            content: json_text(&json!({"mcpServers": {name: {"command": "npx", "args": remote_args}}})),
        },
        ClientSnippet {
            client: "cursor",
            how: "add to ~/.cursor/mcp.json (or .cursor/mcp.json in a project)",
            format: "json",
            content: json_text(&json!({"mcpServers": {name: headers(json!({"url": url}), "headers")}})),
        },
        ClientSnippet {
            client: "vscode",
            how: "add to .vscode/mcp.json (or run \"MCP: Add Server\")",
            format: "json",
            content: json_text(&json!({"servers": {name: headers(json!({"type": "http", "url": url}), "headers")}})),
        },
        ClientSnippet {
            client: "windsurf",
            how: "add to ~/.codeium/windsurf/mcp_config.json",
            format: "json",
            content: json_text(&json!({"mcpServers": {name: headers(json!({"serverUrl": url}), "headers")}})),
        },
        ClientSnippet {
            client: "mcp_inspector",
            how: "run it; in its page choose the Streamable HTTP transport, paste the URL, and Connect",
            format: "shell",
            content: format!("npx @modelcontextprotocol/inspector   # URL: {url}"),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snippets_carry_the_url_and_a_ticket_placeholder_only_without_sign_in() {
        let url = "https://sb.example.com/mcp/acme/helper";
        let with = snippets("helper", url, true);
        assert!(with.iter().all(|s| s.content.contains(url)));
        assert!(with.iter().all(|s| !s.content.contains(TICKET_PLACEHOLDER)));
        let without = snippets("helper", url, false);
        for client in ["claude_code", "claude_desktop", "cursor", "vscode", "windsurf"] {
            let s = without.iter().find(|s| s.client == client).unwrap();
            assert!(s.content.contains(TICKET_PLACEHOLDER), "{client}");
        }
        for s in with.iter().chain(&without).filter(|s| s.format == "json") {
            serde_json::from_str::<serde_json::Value>(&s.content).unwrap();
        }
    }
}
