//! The one HTTP client Switchboard calls out with, guarded against SSRF.
//!
//! - Host names are resolved once, by [`GuardedResolver`]; every resolved address is checked
//!   against the [`NetworkPolicy`] and the connection can only go to the checked addresses, because
//!   they are what the resolver hands to the connector. One forbidden address refuses the name
//!   (a rebinding name that mixes public and private answers gets nothing).
//! - IP-literal hosts never reach a resolver, so they are checked before the request is sent.
//! - Proxy environment variables are ignored; redirects are followed by hand, at most
//!   [`Limits::max_redirects`], for GET only, each hop checked like the first; POSTs (which may carry
//!   credentials) follow none.
//! - Connect and total timeouts, and a response-size cap enforced while the body streams in.
//! - Errors are coarse ("blocked by network policy", "timed out"): they are shown to tenants and
//!   must not echo internal addresses or bodies.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::{HeaderMap, HeaderValue, LOCATION};
use reqwest::{Method, StatusCode};
use url::{Host, Url};

use crate::policy::NetworkPolicy;

/// Resolves host names to addresses. The system resolver in production; a recording fake in tests.
pub trait Lookup: Send + Sync + 'static {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>>;
}

/// The operating system's resolver.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup(&self, host: &str) -> Pin<Box<dyn Future<Output = std::io::Result<Vec<IpAddr>>> + Send>> {
        let host = host.to_owned();
        Box::pin(async move { Ok(tokio::net::lookup_host((host.as_str(), 0)).await?.map(|a| a.ip()).collect()) })
    }
}

/// The error a refused name resolves to; found again in reqwest's error chain.
#[derive(Debug)]
struct Refused;

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("blocked by network policy")
    }
}

impl std::error::Error for Refused {}

/// reqwest's resolver: looks up, checks every address, hands over only checked ones.
struct GuardedResolver {
    lookup: Arc<dyn Lookup>,
    policy: Arc<NetworkPolicy>,
}

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let lookup = self.lookup.clone();
        let policy = self.policy.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs = lookup.lookup(&host).await?;
            if addrs.is_empty() {
                return Err("no address".into());
            }
            if addrs.iter().any(|ip| !policy.permits(&host, *ip)) {
                tracing::warn!(host = %host, "outbound call refused by the network policy");
                return Err(Box::new(Refused) as Box<dyn std::error::Error + Send + Sync>);
            }
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0)));
            Ok(addrs)
        })
    }
}

/// Timeouts and caps of outbound calls.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub connect_timeout: Duration,
    pub total_timeout: Duration,
    pub max_body_bytes: usize,
    pub max_redirects: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(3),
            total_timeout: Duration::from_secs(10),
            max_body_bytes: 1024 * 1024,
            max_redirects: 3,
        }
    }
}

/// Why an outbound call failed, in words fit for a tenant.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FetchError {
    #[error("blocked by network policy")]
    Blocked,
    #[error("the URL must use https")]
    InsecureUrl,
    #[error("the URL is not an absolute http(s) URL")]
    BadUrl,
    #[error("timed out")]
    Timeout,
    #[error("the host name could not be resolved")]
    Dns,
    #[error("the connection failed")]
    Connect,
    #[error("the response is larger than {0} bytes")]
    TooLarge(usize),
    #[error("more than {0} redirects")]
    TooManyRedirects(usize),
    #[error("the server answered with a redirect, which is not followed for this request")]
    RedirectNotFollowed,
    #[error("the request failed")]
    Other,
}

/// A response read in full (within the size cap).
#[derive(Clone, Debug)]
pub struct Fetched {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub url: Url,
}

impl Fetched {
    /// The body as JSON, if it is.
    #[must_use]
    pub fn json(&self) -> Option<serde_json::Value> {
        serde_json::from_slice(&self.body).ok()
    }
}

/// The guarded client. Cheap to clone.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    /// The same guard without a total timeout, for responses that stream for as long as the
    /// exchange lasts (an MCP server's SSE); its callers bound the wait for the headers.
    streaming: reqwest::Client,
    policy: Arc<NetworkPolicy>,
    limits: Limits,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher").field("policy", &self.policy).field("limits", &self.limits).finish_non_exhaustive()
    }
}

impl Fetcher {
    /// The caps and deadlines of this fetcher's calls.
    #[must_use]
    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn new(policy: NetworkPolicy, limits: Limits) -> Result<Self, FetchError> {
        Self::with_lookup(policy, limits, Arc::new(SystemLookup))
    }

    /// A client resolving through `lookup` (tests use a recording fake).
    pub fn with_lookup(policy: NetworkPolicy, limits: Limits, lookup: Arc<dyn Lookup>) -> Result<Self, FetchError> {
        let policy = Arc::new(policy);
        let builder = || {
            reqwest::Client::builder()
                .no_proxy()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(limits.connect_timeout)
                .dns_resolver(Arc::new(GuardedResolver { lookup: lookup.clone(), policy: policy.clone() }))
                .user_agent(concat!("Switchboard/", env!("CARGO_PKG_VERSION")))
        };
        let client = builder().timeout(limits.total_timeout).build().map_err(|_| FetchError::Other)?;
        let streaming = builder()
            .tcp_nodelay(true)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(256)
            .build()
            .map_err(|_| FetchError::Other)?;
        Ok(Self { client, streaming, policy, limits })
    }

    #[must_use]
    pub fn policy(&self) -> &NetworkPolicy {
        &self.policy
    }

    /// Checks a URL before any request: scheme, userinfo, and IP-literal hosts.
    pub fn check_url(&self, url: &Url) -> Result<(), FetchError> {
        let host = url.host().ok_or(FetchError::BadUrl)?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err(FetchError::BadUrl);
        }
        match url.scheme() {
            "https" => {}
            "http" if self.policy.permits_plain_http(&host) => {}
            "http" => return Err(FetchError::InsecureUrl),
            _ => return Err(FetchError::BadUrl),
        }
        let literal = match host {
            Host::Ipv4(ip) => Some(IpAddr::V4(ip)),
            Host::Ipv6(ip) => Some(IpAddr::V6(ip)),
            Host::Domain(_) => None,
        };
        if let Some(ip) = literal
            && !self.policy.permits(&ip.to_string(), ip)
        {
            tracing::warn!("outbound call to an IP literal refused by the network policy");
            return Err(FetchError::Blocked);
        }
        Ok(())
    }

    /// GET, following at most `max_redirects` redirects, each checked.
    pub async fn get(&self, url: &Url, headers: HeaderMap) -> Result<Fetched, FetchError> {
        let mut current = url.clone();
        for _ in 0..=self.limits.max_redirects {
            let fetched = self.send(Method::GET, &current, headers.clone(), None).await?;
            if !fetched.status.is_redirection() {
                return Ok(fetched);
            }
            let location = fetched.headers.get(LOCATION).and_then(|l| l.to_str().ok()).ok_or(FetchError::Other)?;
            current = current.join(location).map_err(|_| FetchError::BadUrl)?;
        }
        Err(FetchError::TooManyRedirects(self.limits.max_redirects))
    }

    /// One GET whose redirect, if any, is returned rather than followed (a headless authorization
    /// request reads the `code` from `Location`).
    pub async fn get_once(&self, url: &Url, headers: HeaderMap) -> Result<Fetched, FetchError> {
        self.send(Method::GET, url, headers, None).await
    }

    /// POST a body; redirects are not followed (the body may carry credentials).
    pub async fn post(&self, url: &Url, headers: HeaderMap, body: Vec<u8>) -> Result<Fetched, FetchError> {
        let fetched = self.send(Method::POST, url, headers, Some(body)).await?;
        if fetched.status.is_redirection() {
            return Err(FetchError::RedirectNotFollowed);
        }
        Ok(fetched)
    }

    /// Sends a request and returns the response as soon as its headers arrived (within
    /// `headers_within`), its body left to stream: the MCP gateway's upstream call. The URL is
    /// checked like every other; redirects are not followed (the request carries credentials).
    pub async fn stream(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Option<bytes::Bytes>,
        headers_within: Duration,
    ) -> Result<reqwest::Response, FetchError> {
        self.check_url(url)?;
        let mut req = self.streaming.request(method, url.clone()).headers(headers);
        if let Some(b) = body {
            req = req.body(b);
        }
        let res = tokio::time::timeout(headers_within, req.send())
            .await
            .map_err(|_| FetchError::Timeout)?
            .map_err(classify)?;
        if res.status().is_redirection() {
            return Err(FetchError::RedirectNotFollowed);
        }
        Ok(res)
    }

    async fn send(
        &self,
        method: Method,
        url: &Url,
        headers: HeaderMap,
        body: Option<Vec<u8>>,
    ) -> Result<Fetched, FetchError> {
        self.check_url(url)?;
        let deadline = self.limits.total_timeout;
        let work = async {
            let mut req = self.client.request(method, url.clone()).headers(headers);
            if let Some(b) = body {
                req = req.body(b);
            }
            let mut res = req.send().await.map_err(classify)?;
            if res.content_length().is_some_and(|n| n > self.limits.max_body_bytes as u64) {
                return Err(FetchError::TooLarge(self.limits.max_body_bytes));
            }
            let status = res.status();
            let headers = res.headers().clone();
            let mut body = Vec::new();
            while let Some(chunk) = res.chunk().await.map_err(classify)? {
                if body.len() + chunk.len() > self.limits.max_body_bytes {
                    return Err(FetchError::TooLarge(self.limits.max_body_bytes));
                }
                body.extend_from_slice(&chunk);
            }
            Ok(Fetched { status, headers, body, url: url.clone() })
        };
        // reqwest's own timeout covers the request; this one also bounds a body that trickles.
        tokio::time::timeout(deadline, work).await.map_err(|_| FetchError::Timeout)?
    }
}

fn classify(err: reqwest::Error) -> FetchError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if e.downcast_ref::<Refused>().is_some() {
            return FetchError::Blocked;
        }
        source = e.source();
    }
    if err.is_timeout() {
        FetchError::Timeout
    } else if err.is_connect() {
        // A failed lookup surfaces as a connect error; tell it apart by its words.
        if format!("{err:?}").contains("dns error") || format!("{err:?}").contains("no address") {
            FetchError::Dns
        } else {
            FetchError::Connect
        }
    } else {
        FetchError::Other
    }
}

impl Fetched {
    /// The `Retry-After` the server sent, in seconds, capped at an hour (see [`retry_after`]).
    #[must_use]
    pub fn retry_after(&self) -> Option<u64> {
        let v = self.headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
        retry_after(v, std::time::SystemTime::now())
    }
}

/// A `Retry-After` value (RFC 9110 §10.2.3) in seconds from `now`, capped at an hour: delay
/// seconds, or an HTTP date (a date in the past is 0). Anything else is no advice at all.
#[must_use]
pub fn retry_after(value: &str, now: std::time::SystemTime) -> Option<u64> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(secs.min(3600));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).map_or(0, |d| d.as_secs().min(3600)))
}

/// Header map helper: `[("accept", "application/json")]`.
#[must_use]
pub fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in pairs {
        if let Ok(v) = HeaderValue::from_str(v) {
            map.insert(*k, v);
        }
    }
    map
}

/// Milliseconds since `start`, for step reports.
#[must_use]
pub fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod retry_after_tests {
    use std::time::{Duration, SystemTime};

    use proptest::prelude::*;

    use super::retry_after;

    #[test]
    fn seconds_and_dates_are_read() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(retry_after("120", now), Some(120));
        assert_eq!(retry_after(" 99999 ", now), Some(3600));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now), Some(0));
        assert_eq!(retry_after("Sun, 06 Nov 1994 08:59:37 GMT", now), Some(600));
        assert_eq!(retry_after("-5", now), None);
        assert_eq!(retry_after("soon", now), None);
    }

    proptest! {
        #[test]
        fn any_value_is_bounded_advice_or_none(v in "\\PC{0,40}", digits in "[0-9]{1,30}", secs in any::<u64>()) {
            let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs % (1 << 40));
            for v in [v, digits] {
                prop_assert!(retry_after(&v, now).is_none_or(|s| s <= 3600));
            }
        }
    }
}
