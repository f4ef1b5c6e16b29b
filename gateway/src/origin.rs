//! The spec's DNS-rebinding defence for the gateway's routes: which `Origin` and `Host` a
//! request may carry.

use actix_web::HttpRequest;
use url::Url;

use crate::Inner;
use crate::answer::header;
use crate::inbound::Refusal;

impl Inner {
    /// The spec's DNS-rebinding defence: an `Origin`, when present, must be the gateway's own (or
    /// configured); on a loopback public URL the `Host` must be loopback too.
    pub(crate) fn check_origin(&self, req: &HttpRequest) -> Result<(), Refusal> {
        let loopback = self.loopback;
        if let Some(origin) = header(req, "origin")
            && !origin_allowed(self.public.as_ref(), loopback, &self.config.allowed_origins, origin)
        {
            return Err(Refusal::Origin);
        }
        if loopback && let Some(host) = header(req, "host") {
            let name = host
                .rsplit_once(':')
                .map_or(host, |(h, p)| if p.bytes().all(|b| b.is_ascii_digit()) { h } else { host });
            if !is_loopback_host(name.trim_start_matches('[').trim_end_matches(']')) {
                return Err(Refusal::Origin);
            }
        }
        Ok(())
    }
}

pub(crate) fn is_loopback_host(h: &str) -> bool {
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.eq_ignore_ascii_case("localhost") || h.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a request's `Origin` may use the gateway: the public URL's own origin, a configured
/// one, or — when the public URL is loopback (a local gateway) — any loopback origin, whatever
/// its port or spelling (`localhost`, `127.0.0.1`, `[::1]`), which is the spec's rule for local
/// servers. A DNS-rebinding page carries its own host name as its origin and is refused.
fn origin_allowed(public: Option<&Url>, loopback: bool, allowed: &[String], origin: &str) -> bool {
    let origin = origin.trim_end_matches('/');
    let local = || {
        Url::parse(origin)
            .ok()
            .filter(|u| matches!(u.scheme(), "http" | "https"))
            .is_some_and(|u| u.host_str().is_some_and(is_loopback_host))
    };
    public.is_some_and(|u| u.origin().ascii_serialization() == origin)
        || allowed.iter().any(|o| o.trim_end_matches('/') == origin)
        || (loopback && local())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_local_gateway_serves_loopback_origins_and_a_public_one_only_its_own() {
        let local = Url::parse("http://127.0.0.1:8080").ok();
        for origin in ["http://127.0.0.1:8080", "http://127.0.0.1:39239", "http://localhost:8080", "http://[::1]:3000"]
        {
            assert!(origin_allowed(local.as_ref(), true, &[], origin), "{origin}");
        }
        for origin in
            ["http://evil.example.com", "http://127.0.0.1.evil.example.com", "null", "file://", "http://10.0.0.1"]
        {
            assert!(!origin_allowed(local.as_ref(), true, &[], origin), "{origin}");
        }
        let public = Url::parse("https://gw.example.com").ok();
        let allowed = ["https://app.example.com".to_owned()];
        assert!(origin_allowed(public.as_ref(), false, &allowed, "https://gw.example.com"));
        assert!(origin_allowed(public.as_ref(), false, &allowed, "https://app.example.com/"));
        assert!(!origin_allowed(public.as_ref(), false, &allowed, "http://localhost:3000"));
    }
}
