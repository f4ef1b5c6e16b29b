//! Discovery per the MCP authorization spec (2025-06-18, 2025-11-25, 2026-07-28), with fewer
//! round trips than the reference client:
//!
//! 1. the unauthenticated `initialize` probe and the path-inserted protected resource metadata
//!    (PRM) go out together — the only speculative request, and one the spec would make next anyway;
//! 2. the PRM named by `WWW-Authenticate` is used when there is one (and only that one); else the
//!    path-inserted one; else the root one;
//! 3. every authorization-server metadata candidate for the issuer goes out at once, and the
//!    highest-priority success wins (a higher-priority server error stops discovery, as a
//!    sequential client would have stopped);
//! 4. without PRM, the 2025-03-26 fallback: the endpoint's origin is the authorization server.
//!
//! PRM `resource` is accepted when it equals the endpoint or is a same-origin path prefix of it
//! ([`urls::ResourceMatch`]); the authorization server's `issuer` must equal the issuer the
//! metadata URL was built from, exactly. Metadata responses are cached per URL
//! ([`MetadataCache`]); the probe never is.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use crate::http::{FetchError, Fetched, Fetcher, headers, ms_since};
use crate::result::{DiscoveryResult, Step};
use crate::urls::{self, ResourceMatch};
use crate::www_authenticate;

pub use crate::mcp::PROTOCOL_VERSION;
const OK_TTL: Duration = Duration::from_secs(300);
const FAILURE_TTL: Duration = Duration::from_secs(15);
const CACHE_MAX: usize = 1024;

/// A metadata response as cached: status and body, or why there was none.
type CachedFetch = Result<(u16, Vec<u8>), FetchError>;

/// Metadata responses by URL, with a bounded life (failures are kept only briefly).
#[derive(Debug, Default)]
pub struct MetadataCache {
    entries: Mutex<HashMap<String, (Instant, CachedFetch)>>,
}

impl MetadataCache {
    fn get(&self, url: &str) -> Option<CachedFetch> {
        let entries = self.entries.lock().ok()?;
        entries.get(url).filter(|(until, _)| Instant::now() < *until).map(|(_, r)| r.clone())
    }

    fn put(&self, url: &str, value: CachedFetch) {
        let ttl = if matches!(value, Ok((200..=299, _))) { OK_TTL } else { FAILURE_TTL };
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= CACHE_MAX {
                let now = Instant::now();
                entries.retain(|_, (until, _)| *until > now);
                if entries.len() >= CACHE_MAX {
                    entries.clear();
                }
            }
            entries.insert(url.to_owned(), (Instant::now() + ttl, value));
        }
    }

    /// Forgets everything (a `rediscover` wants fresh answers).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.lock() {
            entries.clear();
        }
    }
}

/// Runs discovery. Cheap to share.
#[derive(Debug)]
pub struct Discoverer {
    fetcher: Fetcher,
    cache: MetadataCache,
}

/// A metadata document and the step that fetched it.
struct Doc {
    step: Step,
    status: Option<u16>,
    json: Option<Value>,
    error: Option<FetchError>,
}

impl Doc {
    fn ok_json(&self) -> Option<&Value> {
        match self.status {
            Some(200..=299) => self.json.as_ref().filter(|j| j.is_object()),
            _ => None,
        }
    }
}

struct Probe {
    step: Step,
    status: Option<u16>,
    challenge: Option<www_authenticate::BearerChallenge>,
    error: Option<FetchError>,
}

impl Probe {
    /// A probe from an MCP response: its status and its (joined) `WWW-Authenticate` header.
    fn answered(endpoint: &Url, status: u16, www_authenticate: &str, ms: u64, what: &str) -> Self {
        let mut step = Step {
            method: "POST".into(),
            url: endpoint.to_string(),
            status: Some(status),
            ms,
            error: None,
            learned: what.to_owned(),
        };
        let challenge = if www_authenticate.is_empty() {
            None
        } else {
            match www_authenticate::bearer(www_authenticate) {
                Ok(c) => c,
                Err(e) => {
                    step.learned.push_str(&format!("unreadable WWW-Authenticate header ({e}); "));
                    None
                }
            }
        };
        step.learned.push_str(&match (status, &challenge) {
            (200..=299, _) => "the server answers without credentials".to_owned(),
            (401 | 403, Some(c)) => format!(
                "authorization required; challenge: {}{}",
                c.resource_metadata
                    .as_deref()
                    .map_or("no resource_metadata".to_owned(), |u| format!("resource_metadata {u}")),
                c.scope.as_deref().map_or(String::new(), |s| format!(", scope \"{s}\""))
            ),
            (401 | 403, None) => "authorization required, without a Bearer challenge".to_owned(),
            (s, _) => format!("unexpected status {s} for an MCP initialize request"),
        });
        Self { step, status: Some(status), challenge, error: None }
    }
}

fn str_list(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_owned)).collect())
        .unwrap_or_default()
}

impl Discoverer {
    #[must_use]
    pub fn new(fetcher: Fetcher) -> Self {
        Self { fetcher, cache: MetadataCache::default() }
    }

    #[must_use]
    pub fn fetcher(&self) -> &Fetcher {
        &self.fetcher
    }

    #[must_use]
    pub fn cache(&self) -> &MetadataCache {
        &self.cache
    }

    async fn probe(&self, endpoint: &Url) -> Probe {
        let body = serde_json::json!({
            "jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": PROTOCOL_VERSION, "capabilities": {}, "clientInfo": {"name": "switchboard", "version": env!("CARGO_PKG_VERSION")}}
        });
        let start = Instant::now();
        let h = headers(&[("accept", "application/json, text/event-stream"), ("content-type", "application/json")]);
        let res = self.fetcher.post(endpoint, h, body.to_string().into_bytes()).await;
        let ms = ms_since(start);
        match res {
            Ok(f) => {
                let header = f
                    .headers
                    .get_all("www-authenticate")
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .collect::<Vec<_>>()
                    .join(", ");
                Probe::answered(endpoint, f.status.as_u16(), &header, ms, "")
            }
            Err(e) => Probe {
                step: Step {
                    method: "POST".into(),
                    url: endpoint.to_string(),
                    status: None,
                    ms,
                    error: Some(e.to_string()),
                    learned: "the endpoint could not be reached".into(),
                },
                status: None,
                challenge: None,
                error: Some(e),
            },
        }
    }

    /// GET a metadata document, through the cache.
    async fn metadata(&self, url: &Url, what: &str) -> Doc {
        let key = url.to_string();
        let start = Instant::now();
        let (res, cached) = match self.cache.get(&key) {
            Some(r) => (r, true),
            None => {
                let h = headers(&[("accept", "application/json"), ("mcp-protocol-version", PROTOCOL_VERSION)]);
                let r = self.fetcher.get(url, h).await.map(|f: Fetched| (f.status.as_u16(), f.body));
                self.cache.put(&key, r.clone());
                (r, false)
            }
        };
        let ms = if cached { 0 } else { ms_since(start) };
        let suffix = if cached { " (cached)" } else { "" };
        match res {
            Ok((status, body)) => {
                let json: Option<Value> = serde_json::from_slice(&body).ok();
                let learned = match status {
                    200..=299 if json.as_ref().is_some_and(Value::is_object) => format!("{what} found{suffix}"),
                    200..=299 => format!("{what}: the response is not a JSON object{suffix}"),
                    404 => format!("no {what} here{suffix}"),
                    s => format!("{what}: status {s}{suffix}"),
                };
                Doc {
                    step: Step { method: "GET".into(), url: key, status: Some(status), ms, error: None, learned },
                    status: Some(status),
                    json,
                    error: None,
                }
            }
            Err(e) => Doc {
                step: Step {
                    method: "GET".into(),
                    url: key,
                    status: None,
                    ms,
                    error: Some(e.to_string()),
                    learned: format!("{what} could not be fetched{suffix}"),
                },
                status: None,
                json: None,
                error: Some(e),
            },
        }
    }

    /// Discovers how `endpoint` wants to be authorized. Never fails: what went wrong is in the
    /// result's `message`, `warnings` and `steps`.
    pub async fn discover(&self, endpoint: &Url) -> DiscoveryResult {
        let mut r = DiscoveryResult {
            endpoint: endpoint.to_string(),
            scopes_source: "none".into(),
            ..DiscoveryResult::default()
        };
        if let Err(e) = self.fetcher.check_url(endpoint) {
            r.message = format!("the endpoint cannot be probed: {e}");
            return r;
        }
        let path_prm = urls::prm_path_inserted(endpoint);
        let (probe, speculative) = tokio::join!(self.probe(endpoint), async {
            match &path_prm {
                Some(u) => Some(self.metadata(u, "protected resource metadata").await),
                None => None,
            }
        });
        self.after_probe(r, endpoint, probe, speculative).await
    }

    /// Discovery for a client that already sent an MCP request and was refused: `status` and
    /// `www_authenticate` are that response's (a 401 can come on any request, not only the first).
    /// Skips the probe; the rest is [`Discoverer::discover`]'s.
    pub async fn discover_challenged(&self, endpoint: &Url, status: u16, www_authenticate: &str) -> DiscoveryResult {
        let r = DiscoveryResult {
            endpoint: endpoint.to_string(),
            scopes_source: "none".into(),
            ..DiscoveryResult::default()
        };
        if let Err(e) = self.fetcher.check_url(endpoint) {
            return DiscoveryResult { message: format!("the endpoint cannot be probed: {e}"), ..r };
        }
        let probe = Probe::answered(endpoint, status, www_authenticate, 0, "an MCP request was refused: ");
        self.after_probe(r, endpoint, probe, None).await
    }

    async fn after_probe(
        &self,
        mut r: DiscoveryResult,
        endpoint: &Url,
        probe: Probe,
        speculative: Option<Doc>,
    ) -> DiscoveryResult {
        let path_prm = urls::prm_path_inserted(endpoint);
        r.steps.push(probe.step.clone());
        if let Some(e) = &probe.error {
            if let Some(doc) = speculative {
                r.steps.push(doc.step);
            }
            r.message =
                format!("the MCP endpoint could not be reached ({e}); check the URL and that Switchboard can reach it");
            return r;
        }
        let status = probe.status.unwrap_or_default();
        r.requires_auth = matches!(status, 401 | 403);
        if !r.requires_auth {
            if let Some(doc) = speculative {
                r.steps.push(doc.step);
            }
            if (200..300).contains(&status) {
                r.recommended_auth_mode = Some("none".into());
                r.message = "the server answers MCP requests without credentials; use auth type `none`".into();
            } else {
                r.message = format!(
                    "the endpoint answered {status} to an MCP initialize request; check that config.endpoint is the server's Streamable HTTP URL (often ending in /mcp)"
                );
            }
            return r;
        }
        let challenge = probe.challenge.clone().unwrap_or_default();

        // Protected resource metadata: the header's URL, else the path-inserted one, else the root.
        let mut prm: Option<(Url, Value)> = None;
        let header_url = challenge.resource_metadata.as_deref().map(|u| Url::parse(u).ok());
        match header_url {
            Some(Some(url)) => {
                let doc = match (&path_prm, speculative) {
                    (Some(p), Some(doc)) if *p == url => doc,
                    (_, spec) => {
                        if let Some(d) = spec {
                            r.steps.push(d.step);
                        }
                        self.metadata(&url, "protected resource metadata").await
                    }
                };
                let found = doc.ok_json().cloned();
                r.steps.push(doc.step);
                match found {
                    Some(json) => prm = Some((url, json)),
                    None => r
                        .warnings
                        .push("the resource_metadata URL from WWW-Authenticate did not return metadata".into()),
                }
            }
            Some(None) => r.warnings.push("the WWW-Authenticate resource_metadata is not a URL; ignored".into()),
            None => {
                let speculative = match (speculative, &path_prm) {
                    (Some(doc), _) => Some(doc),
                    (None, Some(url)) => Some(self.metadata(url, "protected resource metadata").await),
                    (None, None) => None,
                };
                if let Some(doc) = speculative {
                    let found = doc.ok_json().cloned();
                    r.steps.push(doc.step);
                    if let (Some(json), Some(url)) = (found, path_prm.clone()) {
                        prm = Some((url, json));
                    }
                }
                if prm.is_none()
                    && let Some(root) = urls::prm_root(endpoint)
                {
                    let doc = self.metadata(&root, "protected resource metadata").await;
                    let found = doc.ok_json().cloned();
                    r.steps.push(doc.step);
                    if let Some(json) = found {
                        prm = Some((root, json));
                    }
                }
            }
        }
        if let Some(scope) = &challenge.scope {
            r.scopes = scope.split_ascii_whitespace().map(str::to_owned).collect();
            r.scopes_source = "challenge".into();
        }

        let issuer = match prm {
            Some((url, json)) => match self.read_prm(&mut r, endpoint, &url, &json) {
                Some(issuer) => issuer,
                None => return r,
            },
            None => return self.legacy(r, endpoint, probe.challenge.is_some()).await,
        };
        if self.authorization_server(&mut r, &issuer, false).await {
            self.conclude(&mut r);
        }
        r
    }

    /// Validates PRM and returns the authorization server to use.
    fn read_prm(&self, r: &mut DiscoveryResult, endpoint: &Url, url: &Url, json: &Value) -> Option<Url> {
        r.resource_metadata_url = Some(url.to_string());
        r.spec_version = Some("2025-11-25".into());
        r.authorization_servers = str_list(json.get("authorization_servers"));
        match json.get("resource").and_then(Value::as_str) {
            Some(res) => match urls::resource_match(res, endpoint) {
                ResourceMatch::Exact => r.resource = Some(res.to_owned()),
                ResourceMatch::SameOriginPrefix => {
                    r.resource = Some(res.to_owned());
                    r.warnings.push(format!("the metadata's resource `{res}` is a prefix of the endpoint, not the endpoint itself (accepted: same origin, path prefix)"));
                }
                ResourceMatch::Mismatch => {
                    r.message = format!(
                        "the protected resource metadata is for `{res}`, not for this endpoint; it is not used (RFC 9728 §3.3). Ask the server's operator to fix its metadata, or configure auth_url and token_url by hand"
                    );
                    return None;
                }
            },
            None => {
                r.resource = Some(urls::canonical_resource(endpoint));
                r.warnings.push("the protected resource metadata has no `resource`; using the endpoint".into());
            }
        }
        if r.scopes_source == "none" {
            let supported = str_list(json.get("scopes_supported"));
            if !supported.is_empty() {
                r.scopes = supported;
                r.scopes_source = "resource_metadata".into();
            }
        }
        let Some(first) = r.authorization_servers.first().cloned() else {
            r.message = "the protected resource metadata lists no authorization_servers; configure auth_url and token_url by hand".into();
            return None;
        };
        if r.authorization_servers.len() > 1 {
            r.warnings.push(format!(
                "{} authorization servers are listed; using the first, {first}",
                r.authorization_servers.len()
            ));
        }
        let issuer = match Url::parse(&first) {
            Ok(u) if self.fetcher.check_url(&u).is_ok() && u.query().is_none() && u.fragment().is_none() => u,
            _ => {
                r.message = format!("the authorization server `{first}` is not a usable https URL");
                return None;
            }
        };
        Some(issuer)
    }

    /// Fetches and validates the authorization server metadata of `issuer`.
    async fn authorization_server(&self, r: &mut DiscoveryResult, issuer: &Url, legacy: bool) -> bool {
        let issuer_str = issuer.as_str().trim_end_matches('/').to_owned();
        let candidates = if legacy {
            urls::as_metadata_candidates(issuer).into_iter().take(1).collect()
        } else {
            urls::as_metadata_candidates(issuer)
        };
        let docs = futures_util::future::join_all(
            candidates.iter().map(|c| self.metadata(c, "authorization server metadata")),
        )
        .await;
        let mut chosen: Option<Value> = None;
        let mut stop = None;
        for doc in docs {
            if chosen.is_none() && stop.is_none() {
                if let Some(json) = doc.ok_json() {
                    chosen = Some(json.clone());
                } else if doc.error.is_some() || doc.status.is_some_and(|s| s >= 500) {
                    stop = Some(doc.step.url.clone());
                }
            }
            r.steps.push(doc.step);
        }
        let Some(meta) = chosen else {
            if legacy {
                return false;
            }
            r.message = match stop {
                Some(url) => format!(
                    "the authorization server metadata at {url} failed; retry later, or configure auth_url and token_url by hand"
                ),
                None => format!(
                    "no authorization server metadata was found for issuer {issuer_str}; configure auth_url and token_url by hand"
                ),
            };
            return false;
        };
        let their_issuer = meta.get("issuer").and_then(Value::as_str).unwrap_or_default();
        if their_issuer.trim_end_matches('/') != issuer_str {
            if legacy {
                r.warnings.push(format!("the metadata's issuer `{their_issuer}` differs from the server's origin (tolerated for 2025-03-26 servers)"));
            } else {
                r.message = format!(
                    "the authorization server metadata names issuer `{their_issuer}`, not `{issuer_str}`; it is not used (RFC 8414 §3.3)"
                );
                return false;
            }
        }
        r.issuer = Some(if their_issuer.is_empty() { issuer_str } else { their_issuer.to_owned() });
        let mut endpoint_url = |key: &str| -> Option<String> {
            let raw = meta.get(key).and_then(Value::as_str)?;
            match Url::parse(raw) {
                Ok(u) if self.fetcher.check_url(&u).is_ok() && u.fragment().is_none() => Some(u.to_string()),
                _ => {
                    r.warnings.push(format!("the metadata's {key} `{raw}` is not a usable https URL; ignored"));
                    None
                }
            }
        };
        let auth_url = endpoint_url("authorization_endpoint");
        let token_url = endpoint_url("token_endpoint");
        let register_url = endpoint_url("registration_endpoint");
        let revocation_url = endpoint_url("revocation_endpoint");
        r.auth_url = auth_url;
        r.token_url = token_url;
        r.register_url = register_url;
        r.revocation_url = revocation_url;
        r.code_challenge_methods_supported = str_list(meta.get("code_challenge_methods_supported"));
        r.token_endpoint_auth_methods_supported = match str_list(meta.get("token_endpoint_auth_methods_supported")) {
            m if m.is_empty() => vec!["client_secret_basic".into()], // RFC 8414 §2 default
            m => m,
        };
        r.grant_types_supported = match str_list(meta.get("grant_types_supported")) {
            g if g.is_empty() => vec!["authorization_code".into(), "implicit".into()], // RFC 8414 §2 default
            g => g,
        };
        r.client_id_metadata_document_supported =
            meta.get("client_id_metadata_document_supported").and_then(Value::as_bool).unwrap_or(false);
        r.authorization_response_iss_parameter_supported =
            meta.get("authorization_response_iss_parameter_supported").and_then(Value::as_bool).unwrap_or(false);
        true
    }

    /// No protected resource metadata: the 2025-03-26 rules, where the endpoint's origin is the
    /// authorization server and, when it has no metadata either (404), `/authorize`, `/token`,
    /// `/register` are the defaults — assumed only when the 401 carried a Bearer challenge; a
    /// server that asks for anything else most likely wants a static credential.
    async fn legacy(&self, mut r: DiscoveryResult, endpoint: &Url, bearer: bool) -> DiscoveryResult {
        let Ok(origin) = Url::parse(&urls::legacy_authorization_base(endpoint)) else { return r };
        if r.resource.is_none() {
            r.resource = Some(urls::canonical_resource(endpoint));
        }
        if self.authorization_server(&mut r, &origin, true).await {
            r.spec_version = Some("2025-03-26".into());
            r.warnings.push("no protected resource metadata (RFC 9728): using the 2025-03-26 rules, where the server's origin is the authorization server".into());
            self.conclude(&mut r);
        } else if bearer && r.steps.last().is_some_and(|s| s.status == Some(404)) {
            let base = origin.as_str().trim_end_matches('/');
            r.spec_version = Some("2025-03-26".into());
            r.issuer = Some(base.to_owned());
            r.auth_url = Some(format!("{base}/authorize"));
            r.token_url = Some(format!("{base}/token"));
            r.register_url = Some(format!("{base}/register"));
            // 2025-03-26 makes PKCE mandatory, so the defaults imply S256.
            r.authorization_code_usable = true;
            r.grant_types_supported = vec!["authorization_code".into(), "refresh_token".into()];
            r.recommended_auth_mode = Some("oauth_authorization_code_public_pkce".into());
            r.warnings.push(format!(
                "no OAuth metadata: assuming the 2025-03-26 default endpoints {base}/authorize, {base}/token and {base}/register (unverified)"
            ));
            r.message = format!(
                "the server follows no published metadata; Switchboard assumes the 2025-03-26 default endpoints under {base}. If the server expects a static credential instead, use auth type `token`"
            );
        } else {
            let base = origin.as_str().trim_end_matches('/');
            r.recommended_auth_mode = Some("token".into());
            r.message = format!(
                "the server requires authorization but publishes no OAuth metadata; use auth type `token` with the credential its operator issued, or, if it follows the 2025-03-26 spec with default endpoints, set auth_url {base}/authorize and token_url {base}/token by hand"
            );
        }
        r
    }

    /// Picks the recommended mode and writes the message.
    fn conclude(&self, r: &mut DiscoveryResult) {
        let s256 = r.code_challenge_methods_supported.iter().any(|m| m == "S256");
        let code_grant = r.grant_types_supported.iter().any(|g| g == "authorization_code");
        let cc_grant = r.grant_types_supported.iter().any(|g| g == "client_credentials");
        r.authorization_code_usable = s256 && code_grant && r.auth_url.is_some() && r.token_url.is_some();
        if !s256 && code_grant {
            r.warnings.push(if r.code_challenge_methods_supported.is_empty() {
                "the authorization server does not list code_challenge_methods_supported, so PKCE support is unknown; the MCP spec forbids the authorization-code flow without PKCE S256".into()
            } else {
                format!("the authorization server supports PKCE {:?} but not S256; the authorization-code flow cannot be used", r.code_challenge_methods_supported)
            });
        }
        let issuer = r.issuer.clone().unwrap_or_default();
        if r.authorization_code_usable {
            let public = r.token_endpoint_auth_methods_supported.iter().any(|m| m == "none");
            r.recommended_auth_mode = Some(
                if public {
                    "oauth_authorization_code_public_pkce"
                } else {
                    "oauth_authorization_code_confidential_pkce"
                }
                .into(),
            );
            let registration = if r.client_id_metadata_document_supported {
                "it accepts Client ID Metadata Documents"
            } else if r.register_url.is_some() {
                "it supports dynamic client registration"
            } else {
                "it offers no client registration: supply client_id (and client_secret) from the provider's console"
            };
            r.message = format!("OAuth authorization code with PKCE through {issuer}; {registration}");
        } else if cc_grant && r.token_url.is_some() {
            r.recommended_auth_mode = Some("oauth_client_credentials".into());
            r.message = format!("{issuer} offers the client credentials grant; supply client_id and client_secret");
        } else {
            r.recommended_auth_mode = None;
            r.message = format!(
                "{issuer} offers no grant Switchboard can use for this server (authorization code with PKCE S256, or client credentials)"
            );
        }
    }
}
