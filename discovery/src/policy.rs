//! The network policy of every outbound call: which addresses Switchboard may connect to.
//!
//! Tenants control the URLs Switchboard fetches (their MCP endpoints, and whatever metadata those
//! endpoints point at), so by default only public unicast addresses are reachable. Loopback,
//! private, link-local, CGNAT, unique-local, multicast, documentation and reserved ranges are
//! refused unless the operator sets `SWITCHBOARD_ALLOW_PRIVATE_NETWORKS=true` (development and
//! tests). Cloud metadata addresses stay refused even then; only the operator's allow-list — CIDRs
//! and host names from the deployment's configuration, never from a tenant — opens them.
//!
//! IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible,
//! NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by the IPv4 address they carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// An operator allow-list entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AllowEntry {
    /// `10.20.0.0/16`, `fd00::/8`, or a single address.
    Cidr { addr: IpAddr, prefix: u8 },
    /// `mcp.internal.example` (exact, case-insensitive).
    Host(String),
}

impl AllowEntry {
    /// Parses `10.0.0.0/8`, `192.168.1.5`, `fd00::/8` or a host name.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("empty allow-list entry".into());
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (text, None),
        };
        match addr.parse::<IpAddr>() {
            Ok(ip) => {
                let max = if ip.is_ipv4() { 32 } else { 128 };
                let prefix = match prefix {
                    Some(p) => p
                        .parse::<u8>()
                        .ok()
                        .filter(|p| *p <= max)
                        .ok_or_else(|| format!("`{text}`: bad prefix length"))?,
                    None => max,
                };
                Ok(Self::Cidr { addr: ip, prefix })
            }
            Err(_) if prefix.is_none() && text.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.') => {
                Ok(Self::Host(text.to_ascii_lowercase()))
            }
            Err(_) => Err(format!("`{text}` is neither a CIDR nor a host name")),
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let Self::Cidr { addr, prefix } = self else { return false };
        match (addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => prefix_eq(&net.octets(), &ip.octets(), *prefix),
            (IpAddr::V6(net), IpAddr::V6(ip)) => prefix_eq(&net.octets(), &ip.octets(), *prefix),
            (IpAddr::V4(net), IpAddr::V6(ip)) => {
                embedded_v4(ip).is_some_and(|v4| prefix_eq(&net.octets(), &v4.octets(), *prefix))
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => false,
        }
    }
}

fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let full = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a.get(..full).is_none() || a.get(..full) != b.get(..full) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(full), b.get(full)) {
        (Some(x), Some(y)) => (x & mask) == (y & mask),
        _ => false,
    }
}

/// The IPv4 address an IPv6 address carries, for the forms that route to IPv4.
#[must_use]
pub fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let o = ip.octets();
    let seg = ip.segments();
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    // IPv4-compatible ::a.b.c.d (deprecated, but still routed by some stacks); not :: or ::1.
    if seg[..6].iter().all(|s| *s == 0) && !(seg[6] == 0 && seg[7] <= 1) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // NAT64 well-known prefix 64:ff9b::/96.
    if seg[0] == 0x64 && seg[1] == 0xff9b && seg[2..6].iter().all(|s| *s == 0) {
        return Some(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    // 6to4 2002:AABB:CCDD::/48.
    if seg[0] == 0x2002 {
        return Some(Ipv4Addr::new(o[2], o[3], o[4], o[5]));
    }
    None
}

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// Cloud instance metadata: refused even with private networks allowed.
    Metadata,
    /// Loopback, private, link-local, CGNAT, ULA: allowed only with private networks allowed.
    Private,
    /// Unspecified, multicast, broadcast, documentation, benchmarking, reserved: never useful.
    Reserved,
}

/// Classifies an address; `None` means public unicast.
#[must_use]
pub fn classify(ip: IpAddr) -> Option<Refusal> {
    match ip {
        IpAddr::V4(v4) => classify_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => classify_v4(v4),
            None => classify_v6(v6),
        },
    }
}

fn classify_v4(ip: Ipv4Addr) -> Option<Refusal> {
    let [a, b, c, _] = ip.octets();
    if ip == Ipv4Addr::new(169, 254, 169, 254)
        || ip == Ipv4Addr::new(100, 100, 100, 200)
        || ip == Ipv4Addr::new(192, 0, 0, 192)
    {
        return Some(Refusal::Metadata); // AWS/GCP/Azure, Alibaba, Oracle
    }
    if ip.is_loopback() || ip.is_private() || ip.is_link_local() || (a == 100 && (64..128).contains(&b)) {
        return Some(Refusal::Private);
    }
    let reserved = a == 0
        || ip.is_multicast()
        || a >= 240
        || (a == 192 && b == 0 && c == 0)
        || (a == 192 && b == 0 && c == 2)
        || (a == 198 && (b == 18 || b == 19))
        || (a == 198 && b == 51 && c == 100)
        || (a == 203 && b == 0 && c == 113)
        || (a == 192 && b == 88 && c == 99);
    reserved.then_some(Refusal::Reserved)
}

fn classify_v6(ip: Ipv6Addr) -> Option<Refusal> {
    let seg = ip.segments();
    if ip == Ipv6Addr::new(0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254) {
        return Some(Refusal::Metadata); // AWS IMDS over IPv6
    }
    if ip.is_loopback() || (seg[0] & 0xfe00) == 0xfc00 || (seg[0] & 0xffc0) == 0xfe80 || (seg[0] & 0xffc0) == 0xfec0 {
        return Some(Refusal::Private);
    }
    let reserved = ip.is_unspecified()
        || ip.is_multicast()
        || (seg[0] == 0x2001 && seg[1] == 0x0db8)
        || (seg[0] == 0x0100 && seg[1..4].iter().all(|s| *s == 0))
        || (seg[0] == 0x2001 && seg[1] < 0x0200) // IETF protocol assignments (Teredo 2001::/32 among them)
        || seg[0] == 0x3fff;
    reserved.then_some(Refusal::Reserved)
}

/// The deployment's outbound policy.
#[derive(Clone, Debug, Default)]
pub struct NetworkPolicy {
    pub allow_private_networks: bool,
    pub allow: Vec<AllowEntry>,
}

impl NetworkPolicy {
    /// Parses a comma-separated allow-list (`SWITCHBOARD_OUTBOUND_ALLOWLIST`).
    pub fn with_allowlist(mut self, list: &str) -> Result<Self, String> {
        for entry in list.split(',').filter(|e| !e.trim().is_empty()) {
            self.allow.push(AllowEntry::parse(entry)?);
        }
        Ok(self)
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allow
            .iter()
            .any(|e| matches!(e, AllowEntry::Host(h) if h.eq_ignore_ascii_case(host.trim_end_matches('.'))))
    }

    /// May Switchboard connect to `ip`, reached through `host`?
    #[must_use]
    pub fn permits(&self, host: &str, ip: IpAddr) -> bool {
        if self.host_allowed(host) || self.allow.iter().any(|e| e.contains(ip)) {
            return true;
        }
        match classify(ip) {
            None => true,
            Some(Refusal::Private) => self.allow_private_networks,
            Some(Refusal::Metadata | Refusal::Reserved) => false,
        }
    }

    /// May a URL use plain http? Only for loopback hosts, only with private networks allowed
    /// (development and tests), or for hosts the operator allow-listed.
    #[must_use]
    pub fn permits_plain_http(&self, host: &url::Host<&str>) -> bool {
        let loopback = match host {
            url::Host::Domain(d) => {
                d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
            }
            url::Host::Ipv4(ip) => ip.is_loopback(),
            url::Host::Ipv6(ip) => ip.is_loopback(),
        };
        (loopback && self.allow_private_networks) || matches!(host, url::Host::Domain(d) if self.host_allowed(d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn refuses_every_non_public_range() {
        let strict = NetworkPolicy::default();
        for bad in [
            "127.0.0.1",
            "127.255.255.254",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "169.254.169.254",
            "169.254.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "224.0.0.1",
            "239.255.255.250",
            "255.255.255.255",
            "240.0.0.1",
            "192.0.2.1",
            "198.18.0.1",
            "198.51.100.1",
            "203.0.113.1",
            "100.100.100.200",
            "::1",
            "::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::ffff:169.254.169.254",
            "::127.0.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2002:7f00:0001::1",
            "2002:a9fe:a9fe::1",
            "fd00:ec2::254",
            "100::1",
        ] {
            assert!(!strict.permits("h", ip(bad)), "{bad} must be refused");
        }
        for good in [
            "1.1.1.1",
            "8.8.8.8",
            "93.184.216.34",
            "2606:4700:4700::1111",
            "::ffff:8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
        ] {
            assert!(strict.permits("h", ip(good)), "{good} must be allowed");
        }
    }

    #[test]
    fn private_switch_opens_private_ranges_but_not_metadata() {
        let dev = NetworkPolicy { allow_private_networks: true, allow: vec![] };
        for ok in ["127.0.0.1", "::1", "10.1.2.3", "::ffff:127.0.0.1", "fd12::1"] {
            assert!(dev.permits("h", ip(ok)), "{ok}");
        }
        for still_bad in ["169.254.169.254", "::ffff:169.254.169.254", "fd00:ec2::254", "0.0.0.0", "224.0.0.1"] {
            assert!(!dev.permits("h", ip(still_bad)), "{still_bad}");
        }
    }

    #[test]
    fn operator_allowlist() {
        let p =
            NetworkPolicy::default().with_allowlist("10.20.0.0/16, mcp.internal.example, fd00::/8").expect("parses");
        assert!(p.permits("x", ip("10.20.3.4")));
        assert!(!p.permits("x", ip("10.21.0.1")));
        assert!(p.permits("x", ip("::ffff:10.20.0.9")));
        assert!(p.permits("MCP.internal.example.", ip("192.168.0.10")));
        assert!(p.permits("x", ip("fd12::1")));
        assert!(!p.permits("other.example", ip("192.168.0.10")));
        assert!(NetworkPolicy::default().with_allowlist("10.0.0.0/33").is_err());
        assert!(NetworkPolicy::default().with_allowlist("not a host!").is_err());
    }
}
