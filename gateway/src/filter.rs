//! The capability filter of an attachment, applied to what the agent sees: list results keep
//! only the allowed tools, prompts and resources; calls of anything else are refused before the
//! upstream sees them, exactly as something that does not exist is. List cursors are the
//! gateway's own (the upstream's, sealed to the route), so an agent cannot walk another
//! route's pages or forge a position.

use base64::Engine as _;
use serde_json::Value;
use switchboard_domain::agent::Filter;
use switchboard_domain::crypto::{Envelope, SealContext};

use crate::rpc::Era;

const CURSOR_PREFIX: &str = "sbc_";

/// The list methods whose results are filtered, and the list and key each one filters on.
#[must_use]
pub fn list_of(method: &str) -> Option<(&'static str, &'static str)> {
    match method {
        "tools/list" => Some(("tools", "name")),
        "prompts/list" => Some(("prompts", "name")),
        "resources/list" => Some(("resources", "uri")),
        "resources/templates/list" => Some(("resourceTemplates", "uriTemplate")),
        _ => None,
    }
}

/// What a call names, checked against the filter: `Err(message)` is the refusal.
pub fn check_call(filter: &Filter, method: &str, target: Option<&str>) -> Result<(), String> {
    let (list, what) = match method {
        "tools/call" => (filter.tools.as_deref(), "Unknown tool"),
        "prompts/get" => (filter.prompts.as_deref(), "Unknown prompt"),
        "resources/read" | "resources/subscribe" | "resources/unsubscribe" => {
            (filter.resources.as_deref(), "Resource not found")
        }
        _ => return Ok(()),
    };
    let name = target.unwrap_or("");
    if Filter::allows(list, name) { Ok(()) } else { Err(format!("{what}: {name}")) }
}

/// Seals and opens gateway cursors for one route.
pub struct Cursors<'a> {
    pub envelope: &'a Envelope,
    pub context: SealContext<'a>,
}

impl Cursors<'_> {
    fn seal(&self, upstream: &str) -> Option<String> {
        let sealed = self.envelope.seal(&self.context, upstream.as_bytes()).ok()?;
        Some(format!("{CURSOR_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// The upstream cursor inside a gateway cursor; `None` when it is not one of this route's.
    #[must_use]
    pub fn open(&self, cursor: &str) -> Option<String> {
        let b64 = cursor.strip_prefix(CURSOR_PREFIX)?;
        let sealed = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(b64).ok()?;
        String::from_utf8(self.envelope.open(&self.context, &sealed).ok()?).ok()
    }
}

/// Filters a list result in place and swaps its `nextCursor` for a gateway cursor. A filtered
/// list varies by agent, so a modern result is marked `cacheScope: "private"`.
pub fn rewrite_list(method: &str, result: &mut Value, filter: &Filter, cursors: &Cursors<'_>, era: Era) {
    let Some((list, key)) = list_of(method) else { return };
    let allowed = match list {
        "tools" => filter.tools.as_deref(),
        "prompts" => filter.prompts.as_deref(),
        // Templates cannot be matched against exact URIs: with a resource allow-list, none show.
        "resources" | "resourceTemplates" => filter.resources.as_deref(),
        _ => None,
    };
    let mut filtered = false;
    if let Some(items) = result.get_mut(list).and_then(Value::as_array_mut)
        && allowed.is_some()
    {
        let before = items.len();
        if list == "resourceTemplates" {
            items.clear();
        } else {
            items.retain(|item| item.get(key).and_then(Value::as_str).is_some_and(|n| Filter::allows(allowed, n)));
        }
        filtered = items.len() != before || allowed.is_some();
    }
    let next = result.get("nextCursor").and_then(Value::as_str).map(str::to_owned);
    let Some(map) = result.as_object_mut() else { return };
    if let Some(next) = next {
        match cursors.seal(&next) {
            Some(c) => map.insert("nextCursor".into(), Value::String(c)),
            None => map.remove("nextCursor"),
        };
    }
    if filtered && era == Era::Modern && map.contains_key("cacheScope") {
        map.insert("cacheScope".into(), Value::String("private".into()));
    }
}

/// The JSON message of one SSE event (its `data:` lines joined), if it is one.
fn event_json(event: &str) -> Option<Value> {
    let data: Vec<&str> =
        event.lines().filter_map(|l| l.strip_prefix("data:").map(|d| d.strip_prefix(' ').unwrap_or(d))).collect();
    (!data.is_empty()).then(|| serde_json::from_str::<Value>(&data.join("\n")).ok()).flatten()
}

/// The JSON-RPC response to `id` in a body: one JSON object, or the matching event of an SSE
/// stream.
pub fn response_in(body: &[u8], id: &Value) -> Option<Value> {
    let text = std::str::from_utf8(body).ok()?;
    if let Ok(v) = serde_json::from_str::<Value>(text.trim()) {
        return Some(v);
    }
    text.replace("\r\n", "\n").split("\n\n").filter_map(event_json).find(|v| v.get("id") == Some(id))
}

/// Applies `rewrite` to the response to `id` inside an upstream body: one JSON object, or the
/// matching `data:` event of an SSE stream (other events and fields kept as they were).
pub fn rewrite_body(body: &[u8], sse: bool, id: &Value, rewrite: &mut dyn FnMut(&mut Value)) -> Option<Vec<u8>> {
    if !sse {
        let mut v: Value = serde_json::from_slice(body).ok()?;
        if let Some(result) = v.get_mut("result") {
            rewrite(result);
        }
        return serde_json::to_vec(&v).ok();
    }
    let text = std::str::from_utf8(body).ok()?;
    let normalized = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(normalized.len());
    for event in normalized.split_inclusive("\n\n") {
        match event_json(event) {
            Some(mut v) if v.get("id") == Some(id) && v.get("result").is_some() => {
                if let Some(result) = v.get_mut("result") {
                    rewrite(result);
                }
                for line in event.lines().filter(|l| !l.starts_with("data:") && !l.is_empty()) {
                    out.push_str(line);
                    out.push('\n');
                }
                out.push_str("data: ");
                out.push_str(&serde_json::to_string(&v).ok()?);
                out.push_str("\n\n");
            }
            _ => out.push_str(event),
        }
    }
    Some(out.into_bytes())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn cursors(envelope: &Envelope) -> Cursors<'_> {
        Cursors {
            envelope,
            context: SealContext {
                tenant: switchboard_domain::TenantId::new(),
                table: "gateway",
                column: "cursor",
                row: uuid::Uuid::new_v4(),
            },
        }
    }

    #[test]
    fn lists_keep_allowed_names_and_cursors_are_the_gateways() {
        let envelope = Envelope::from_bytes(&[7; 32]).expect("key");
        let c = cursors(&envelope);
        let filter = Filter { tools: Some(vec!["echo".into()]), ..Filter::default() };
        let mut result = json!({"tools": [{"name": "echo"}, {"name": "secret"}], "nextCursor": "upstream-page-2", "cacheScope": "public"});
        rewrite_list("tools/list", &mut result, &filter, &c, Era::Modern);
        assert_eq!(result["tools"], json!([{"name": "echo"}]));
        assert_eq!(result["cacheScope"], "private");
        let next = result["nextCursor"].as_str().expect("cursor");
        // (A two-letter upstream cursor appeared in the sealed one's base64 by chance, one run
        // in a hundred; fifteen letters do not.)
        assert!(next.starts_with("sbc_") && !next.contains("upstream-page-2"));
        assert_eq!(c.open(next).as_deref(), Some("upstream-page-2"));
        // Another route's context does not open it; a forged one does not either.
        assert_eq!(cursors(&envelope).open(next), None);
        assert_eq!(c.open("upstream-page-2"), None);
        // No filter: everything shows.
        let mut all = json!({"tools": [{"name": "a"}, {"name": "b"}]});
        rewrite_list("tools/list", &mut all, &Filter::default(), &c, Era::Legacy);
        assert_eq!(all["tools"].as_array().map(Vec::len), Some(2));
        // `[]` shows nothing.
        let none = Filter { tools: Some(vec![]), ..Filter::default() };
        rewrite_list("tools/list", &mut all, &none, &c, Era::Legacy);
        assert_eq!(all["tools"], json!([]));
    }

    #[test]
    fn calls_of_hidden_names_read_as_unknown() {
        let filter = Filter { tools: Some(vec!["echo".into()]), prompts: Some(vec![]), resources: None };
        assert!(check_call(&filter, "tools/call", Some("echo")).is_ok());
        assert_eq!(check_call(&filter, "tools/call", Some("rm")).err().as_deref(), Some("Unknown tool: rm"));
        assert_eq!(check_call(&filter, "prompts/get", Some("p")).err().as_deref(), Some("Unknown prompt: p"));
        assert!(check_call(&filter, "resources/read", Some("file:///x")).is_ok());
        assert!(check_call(&filter, "tools/list", None).is_ok());
    }

    #[test]
    fn sse_bodies_are_rewritten_event_by_event() {
        let body = b"id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\nid: 2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":7,\"result\":{\"tools\":[{\"name\":\"a\"},{\"name\":\"b\"}]}}\n\n";
        let out = rewrite_body(body, true, &json!(7), &mut |r| {
            if let Some(t) = r["tools"].as_array_mut() {
                t.retain(|t| t["name"] == "a");
            }
        })
        .expect("rewritten");
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with(
            "id: 1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\"}\n\n"
        ));
        assert!(text.contains("id: 2\nevent: message\ndata: "), "{text}");
        assert!(text.contains(r#""tools":[{"name":"a"}]"#) && !text.contains(r#""name":"b""#), "{text}");
    }
}
