//! The upstream side of a proxied request: the credential to present (cached per grant), the
//! headers that may cross (an allow-list each way: the client's `Authorization`, cookies and
//! hop-by-hop headers never reach the upstream, and the upstream's challenges never reach the
//! client), and the call itself through the SSRF-guarded client within the deadline.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::{HeaderMap as ClientHeaders, HeaderValue as ClientValue};
use bytes::Bytes;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde_json::json;
use switchboard_discovery::FetchError;
use switchboard_domain::connection::GrantKey;
use switchboard_worker::consent::{Missing, Source, UpstreamCredential};
use url::Url;

use crate::Inner;
use crate::inbound::{Caller, Credential, Refusal};

/// Client request headers that reach the upstream (lowercase); `mcp-param-*` too.
const FORWARDED: &[&str] = &[
    "accept",
    "content-type",
    "mcp-session-id",
    "mcp-protocol-version",
    "last-event-id",
    "mcp-method",
    "mcp-name",
    "traceparent",
    "tracestate",
];

/// Upstream response headers that reach the client.
const RETURNED: &[&str] = &["content-type", "mcp-session-id", "mcp-protocol-version", "cache-control"];

/// Copies the upstream's answer headers that may reach the client (not its session id when the
/// client's session is the gateway's own).
pub(crate) fn copy_headers(res: &reqwest::Response, out: &mut actix_web::HttpResponseBuilder, hide_session: bool) {
    for name in RETURNED {
        if hide_session && *name == "mcp-session-id" {
            continue;
        }
        if let Some(v) = res.headers().get(*name)
            && let Ok(v) = actix_web::http::header::HeaderValue::from_bytes(v.as_bytes())
        {
            out.insert_header((*name, v));
        }
    }
}

/// The headers of the upstream request: the allowed client headers, the server's configured
/// headers, and the credential.
pub(crate) fn request_headers(
    client: &ClientHeaders,
    configured: &std::collections::BTreeMap<String, String>,
    bearer: Option<&str>,
    session: Option<&str>,
) -> HeaderMap {
    let mut out = HeaderMap::with_capacity(12);
    for (name, value) in client {
        let n = name.as_str();
        if (FORWARDED.contains(&n) || n.starts_with("mcp-param-"))
            && n != "mcp-session-id"
            && let (Ok(name), Ok(value)) =
                (HeaderName::from_bytes(n.as_bytes()), HeaderValue::from_bytes(value.as_bytes()))
        {
            out.append(name, value);
        }
    }
    if let Some(s) = session.and_then(|s| HeaderValue::from_str(s).ok()) {
        out.insert("mcp-session-id", s);
    }
    for (k, v) in configured {
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(k.as_bytes()), HeaderValue::from_str(v)) {
            out.insert(name, value);
        }
    }
    if let Some(token) = bearer
        && let Ok(mut value) = HeaderValue::from_str(&format!("Bearer {token}"))
    {
        value.set_sensitive(true);
        out.insert(reqwest::header::AUTHORIZATION, value);
    }
    out
}

/// How long a credential is kept: a user's token until a minute before it expires (five minutes
/// at most), a static token five minutes, a client-credentials token one.
fn keep_for(source: Option<&Source>) -> Duration {
    match source {
        Some(Source::Grant { expires_at: Some(e), .. }) => {
            (*e - switchboard_domain::clock::now() - chrono::TimeDelta::seconds(60))
                .to_std()
                .unwrap_or(Duration::ZERO)
                .min(Duration::from_secs(300))
        }
        Some(Source::ClientCredentials(_)) => Duration::from_secs(60),
        _ => Duration::from_secs(300),
    }
}

impl Inner {
    /// The caller's upstream credential: from the view, or from the lifecycle (which refreshes
    /// a token about to expire). With `refused`, the token the upstream just refused is replaced.
    pub(crate) async fn credential(
        &self,
        caller: &Caller,
        refused: Option<&str>,
    ) -> Result<Result<Arc<Credential>, Missing>, Refusal> {
        let key: &GrantKey = &caller.key;
        if refused.is_none()
            && let Some(c) = self.views.credentials.get(key)
        {
            return Ok(Ok(c));
        }
        let since = self.views.credentials.epoch(key);
        let found = self.runtime.lifecycle.upstream_credential(key, &caller.route.server, refused).await?;
        let credential = match found {
            UpstreamCredential::Anonymous => Credential { bearer: None, source: None },
            UpstreamCredential::Bearer { token, source } => Credential { bearer: Some(token), source: Some(source) },
            UpstreamCredential::Missing(why) => {
                self.views.credentials.remove(key);
                return Ok(Err(why));
            }
        };
        let life = keep_for(credential.source.as_ref());
        let credential = Arc::new(credential);
        if !life.is_zero() {
            self.views.credentials.fill_for(since, key.clone(), credential.clone(), life);
        }
        Ok(Ok(credential))
    }
}

/// Upstream failures; `answer.rs` says how the client sees each.
pub(crate) enum UpstreamError {
    Fetch(FetchError),
    Status(u16),
    Garbage,
    /// A gateway session id this grant's sessions do not include: 404, as the spec says of an
    /// unknown session.
    UnknownSession,
}

/// The client headers of a request the gateway makes on its own (the upstream `initialize` of
/// a gateway session), whatever request prompted it: a GET's `Accept` would not do.
fn own_request_headers(protocol_version: Option<&str>) -> ClientHeaders {
    let mut h = ClientHeaders::new();
    h.insert(actix_web::http::header::ACCEPT, ClientValue::from_static("application/json, text/event-stream"));
    h.insert(actix_web::http::header::CONTENT_TYPE, ClientValue::from_static("application/json"));
    if let Some(v) = protocol_version.and_then(|v| ClientValue::from_str(v).ok()) {
        h.insert(actix_web::http::header::HeaderName::from_static("mcp-protocol-version"), v);
    }
    h
}

impl Inner {
    /// One upstream call with `credential` and the allowed ones of the `client`'s headers; on a
    /// 401 the credential is replaced once (a refresh through the single-flight refresher, or a
    /// new client-credentials token) and the call retried.
    pub(crate) async fn send(
        &self,
        client: &ClientHeaders,
        caller: &Caller,
        mut credential: Arc<Credential>,
        method: reqwest::Method,
        body: Option<Bytes>,
        session: Option<&str>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let url =
            Url::parse(&caller.route.server.config.endpoint).map_err(|_| UpstreamError::Fetch(FetchError::BadUrl))?;
        for attempt in 0..2 {
            let headers =
                request_headers(client, &caller.route.server.config.headers, credential.bearer.as_deref(), session);
            let res = self
                .runtime
                .fetcher
                .stream(method.clone(), &url, headers, body.clone(), self.config.upstream_timeout)
                .await
                .map_err(UpstreamError::Fetch)?;
            let refreshable = matches!(credential.source, Some(Source::Grant { .. } | Source::ClientCredentials(_)));
            if res.status() != reqwest::StatusCode::UNAUTHORIZED || attempt == 1 || !refreshable {
                return Ok(res);
            }
            let refused = credential.bearer.clone().unwrap_or_default();
            match self.credential(caller, Some(&refused)).await {
                Ok(Ok(c)) => credential = c,
                _ => return Ok(res),
            }
        }
        Err(UpstreamError::Garbage)
    }

    /// The upstream session behind a gateway session id: mapped already, or initialized now with
    /// the parameters the client initialized the gateway session with (`None`: the upstream
    /// keeps no sessions).
    pub(crate) async fn upstream_session(
        &self,
        caller: &Caller,
        credential: &Arc<Credential>,
        gateway_session: &str,
    ) -> Result<Option<String>, UpstreamError> {
        if let Some(u) = self.sessions.upstream.get(&gateway_session.to_owned()) {
            return Ok(Some(u));
        }
        let Some(pending) = self.sessions.open(self.runtime.store.envelope(), &caller.key, gateway_session) else {
            return Err(UpstreamError::UnknownSession);
        };
        let headers = own_request_headers(pending.init.get("protocolVersion").and_then(serde_json::Value::as_str));
        let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": pending.init});
        let res = self
            .send(
                &headers,
                caller,
                credential.clone(),
                reqwest::Method::POST,
                Some(Bytes::from(init.to_string())),
                None,
            )
            .await?;
        if !res.status().is_success() {
            return Err(UpstreamError::Status(res.status().as_u16()));
        }
        let upstream = res.headers().get("mcp-session-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
        // Read (and dropped) within the deadline: an answer that streams on must not hold this.
        let _ = tokio::time::timeout(self.config.upstream_timeout, res.bytes()).await;
        if let Some(u) = &upstream {
            let note = Bytes::from_static(br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#);
            let _ = self.send(&headers, caller, credential.clone(), reqwest::Method::POST, Some(note), Some(u)).await;
            self.sessions.upstream.put(gateway_session.to_owned(), u.clone());
            self.sessions.url_capable.put(u.clone(), pending.url);
        }
        Ok(upstream)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allowed_client_headers_cross_and_the_credential_is_the_gateways() {
        let mut client = ClientHeaders::new();
        for (k, v) in [
            ("authorization", "Bearer sbt_the_clients_ticket"),
            ("cookie", "session=1"),
            ("connection", "keep-alive, x-secret"),
            ("keep-alive", "timeout=5"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("te", "trailers"),
            ("proxy-authorization", "Basic eA=="),
            ("x-secret", "1"),
            ("host", "gateway.example"),
            ("mcp-session-id", "sbs_gateway_own"),
            ("accept", "application/json, text/event-stream"),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-param-region", "eu"),
            ("last-event-id", "42"),
        ] {
            client.append(actix_web::http::header::HeaderName::from_static(k), ClientValue::from_static(v));
        }
        let configured = [("X-Extra".to_owned(), "yes".to_owned())].into_iter().collect();
        let out = request_headers(&client, &configured, Some("upstream-token"), Some("upstream-session"));
        let names: std::collections::BTreeSet<_> = out.keys().map(|k| k.as_str().to_owned()).collect();
        let expected: std::collections::BTreeSet<_> = [
            "accept",
            "authorization",
            "last-event-id",
            "mcp-method",
            "mcp-param-region",
            "mcp-protocol-version",
            "mcp-session-id",
            "x-extra",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect();
        assert_eq!(names, expected);
        assert_eq!(out["authorization"], "Bearer upstream-token");
        assert!(out["authorization"].is_sensitive());
        assert_eq!(out["mcp-session-id"], "upstream-session", "the upstream's session, not the gateway's");
        assert_eq!(out.get_all("authorization").iter().count(), 1);
    }
}
