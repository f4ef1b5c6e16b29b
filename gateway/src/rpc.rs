//! What the gateway reads of a JSON-RPC message, and the errors it answers with itself.
//!
//! The gateway does not re-serialize what it forwards: it reads the few fields its decisions
//! need (method, id, the tool/prompt/resource named, the cursor, the client's capabilities and
//! protocol version) and passes the bytes on, rewritten only where it must be (a gateway cursor
//! swapped for the upstream's).

use serde_json::{Value, json};

/// The protocol eras a request can belong to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Era {
    /// 2025-06-18 and 2025-11-25 (and older): `initialize`, sessions, GET streams.
    Legacy,
    /// 2026-07-28: stateless requests carrying their version and capabilities in `_meta`.
    Modern,
}

pub const MODERN_VERSION: &str = "2026-07-28";
const META_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
const META_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";

/// A parsed client message.
#[derive(Debug)]
pub struct Message {
    pub value: Value,
    pub method: Option<String>,
    /// Present on requests (and responses); absent on notifications.
    pub id: Option<Value>,
}

/// Why a body is not one JSON-RPC message.
#[derive(Debug, PartialEq, Eq)]
pub enum BadMessage {
    NotJson,
    Batch,
    NotAnObject,
}

impl Message {
    pub fn parse(body: &[u8]) -> Result<Self, BadMessage> {
        let value: Value = serde_json::from_slice(body).map_err(|_| BadMessage::NotJson)?;
        match &value {
            Value::Array(_) => return Err(BadMessage::Batch),
            Value::Object(_) => {}
            _ => return Err(BadMessage::NotAnObject),
        }
        let method = value.get("method").and_then(Value::as_str).map(str::to_owned);
        let id = value.get("id").filter(|v| !v.is_null()).cloned();
        Ok(Self { value, method, id })
    }

    #[must_use]
    pub fn method(&self) -> &str {
        self.method.as_deref().unwrap_or("")
    }

    #[must_use]
    pub fn is_request(&self) -> bool {
        self.method.is_some() && self.id.is_some()
    }

    #[must_use]
    pub fn params(&self) -> Option<&Value> {
        self.value.get("params")
    }

    /// `params.name` (tools/call, prompts/get) or `params.uri` (resources/read).
    #[must_use]
    pub fn target(&self) -> Option<&str> {
        let p = self.params()?;
        p.get("name").or_else(|| p.get("uri")).and_then(Value::as_str)
    }

    /// The era of this request: modern when `_meta` names 2026-07-28 (or the header does and
    /// this is no `initialize`).
    #[must_use]
    pub fn era(&self, header_version: Option<&str>) -> Era {
        let meta = self.params().and_then(|p| p.get("_meta")).and_then(|m| m.get(META_VERSION));
        match meta.and_then(Value::as_str) {
            Some(v) if v >= MODERN_VERSION => Era::Modern,
            Some(_) => Era::Legacy,
            None if self.method() != "initialize" && header_version.is_some_and(|v| v >= MODERN_VERSION) => Era::Modern,
            None => Era::Legacy,
        }
    }

    /// The client's capabilities: `initialize`'s, or the modern request's `_meta`.
    #[must_use]
    pub fn capabilities(&self) -> Option<&Value> {
        let p = self.params()?;
        p.get("capabilities").or_else(|| p.get("_meta").and_then(|m| m.get(META_CAPABILITIES)))
    }

    /// `params.cursor`, for list methods.
    #[must_use]
    pub fn cursor(&self) -> Option<&str> {
        self.params()?.get("cursor")?.as_str()
    }
}

/// Whether `capabilities` declare URL-mode elicitation.
#[must_use]
pub fn supports_url_elicitation(capabilities: Option<&Value>) -> bool {
    capabilities.and_then(|c| c.get("elicitation")).and_then(|e| e.get("url")).is_some_and(Value::is_object)
}

/// JSON-RPC error codes the gateway answers with itself. Standard codes where the spec has one;
/// the gateway's own outside the reserved range (−32768…−32000), as the 2026-07-28 spec asks.
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    /// `-32002`: resource not found, ≤2025-11-25 only.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// 2025-11-25's URL elicitation required.
    pub const URL_ELICITATION_REQUIRED: i64 = -32042;
    /// The upstream did not answer within the deadline, or could not be reached.
    pub const UPSTREAM_UNAVAILABLE: i64 = -31000;
    /// The user must connect the server first (clients that cannot open a URL elicitation).
    pub const CONNECT_REQUIRED: i64 = -31001;
    /// The upstream answered something that is not MCP.
    pub const UPSTREAM_INVALID: i64 = -31002;
}

/// A JSON-RPC error response to `id`.
#[must_use]
pub fn error(id: Option<&Value>, code: i64, message: &str, data: Option<Value>) -> Value {
    let mut error = json!({"code": code, "message": message});
    if let (Some(d), Some(map)) = (data, error.as_object_mut()) {
        map.insert("data".into(), d);
    }
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "error": error})
}

/// A JSON-RPC result response to `id`.
#[must_use]
pub fn result(id: Option<&Value>, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.cloned().unwrap_or(Value::Null), "result": result})
}

/// A JSON-RPC error the gateway answers itself, naming its finding code in `error.data.code`
/// (the catalogue in the README says what each means and what fixes it).
#[must_use]
pub fn finding_error(
    id: Option<&Value>,
    code: i64,
    message: &str,
    finding: switchboard_domain::finding::FindingCode,
) -> Value {
    error(id, code, message, Some(json!({"code": finding})))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_read_for_what_decisions_need() {
        let m = Message::parse(br#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"echo"}}"#)
            .expect("parse");
        assert_eq!((m.method(), m.target(), m.is_request()), ("tools/call", Some("echo"), true));
        assert_eq!(m.era(None), Era::Legacy);
        assert_eq!(m.era(Some("2026-07-28")), Era::Modern);
        let init = Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"capabilities":{"elicitation":{"url":{}}}}}"#,
        )
        .expect("parse");
        assert_eq!(init.era(Some("2026-07-28")), Era::Legacy, "initialize is legacy whatever the header");
        assert!(supports_url_elicitation(init.capabilities()));
        let modern = Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{"form":{}}}}}}"#,
        )
        .expect("parse");
        assert_eq!(modern.era(None), Era::Modern);
        assert!(!supports_url_elicitation(modern.capabilities()));
        assert_eq!(Message::parse(b"[{}]").err(), Some(BadMessage::Batch));
        assert_eq!(Message::parse(b"{").err(), Some(BadMessage::NotJson));
        let note = Message::parse(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).expect("parse");
        assert!(!note.is_request());
    }
}
