//! The upstream side of a proxied request: the credential to present (cached per grant), the
//! headers that may cross (an allow-list each way: the client's `Authorization`, cookies and
//! hop-by-hop headers never reach the upstream, and the upstream's challenges never reach the
//! client), and the call itself through the SSRF-guarded client within the deadline.

use std::sync::Arc;
use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use switchboard_domain::connection::GrantKey;
use switchboard_worker::consent::{Missing, Source, UpstreamCredential};

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
pub(crate) const RETURNED: &[&str] = &["content-type", "mcp-session-id", "mcp-protocol-version", "cache-control"];

/// The headers of the upstream request: the allowed client headers, the server's configured
/// headers, and the credential.
pub(crate) fn request_headers(
    client: &actix_web::http::header::HeaderMap,
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

impl crate::Inner {
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
            self.views.credentials.put_for(key.clone(), credential.clone(), life);
        }
        Ok(Ok(credential))
    }
}
