//! Health from real traffic: what calls through the gateway and runtime checks did, kept as
//! counters per minute bucket — never a row per call — and summed over the last hour and day.
//!
//! Each process accumulates its own minutes ([`MinuteCounts`], keyed by [`BucketKey`]) and writes
//! them whole, under its own instance id, so that no two processes ever write the same row and a
//! rewrite is idempotent; a report adds every instance's rows. Latency is a fixed histogram
//! ([`LATENCY_BOUNDS_MS`]): quantiles are read as the upper bound of the bucket they fall in.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, DurationRound, Utc};
use serde::{Deserialize, Serialize};

use crate::{McpServerId, TenantId};

/// Upper bounds of the latency buckets, in milliseconds; one more bucket holds everything above.
pub const LATENCY_BOUNDS_MS: [u64; 13] = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000];
/// Buckets in a histogram: one per bound and the overflow.
pub const BUCKETS: usize = LATENCY_BOUNDS_MS.len() + 1;
/// The largest bound: what the overflow bucket reads as.
const LAST_BOUND: u64 = 10_000;

/// The outcome of a call that succeeded. Failures are counted under their finding code; the
/// client's own mistakes under `client_error`, calls it abandoned under `cancelled`.
pub const OK: &str = "ok";

/// Where the traffic came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A request through `/mcp/{tenant}/{agent}/{server}`.
    Gateway,
    /// `POST /v1/runtime/agents/{agent}/mcp-servers/{server}/check`.
    Check,
}

impl Source {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Check => "check",
        }
    }

    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gateway" => Some(Self::Gateway),
            "check" => Some(Self::Check),
            _ => None,
        }
    }
}

/// One minute of one server's traffic of one source and outcome.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BucketKey {
    pub tenant_id: TenantId,
    pub mcp_server_id: McpServerId,
    /// The start of the minute.
    pub minute: DateTime<Utc>,
    pub source: Source,
    /// `ok` or a finding code.
    pub outcome: String,
}

/// The start of the minute `at` falls in.
#[must_use]
pub fn minute_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::minutes(1)).unwrap_or(at)
}

/// What one bucket counted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MinuteCounts {
    pub calls: u64,
    pub latency_ms_sum: u64,
    pub histogram: [u64; BUCKETS],
    /// The last call counted, and what it said (failures only; never a secret).
    pub last_at: Option<DateTime<Utc>>,
    pub last_detail: Option<String>,
}

impl MinuteCounts {
    /// Counts one call.
    pub fn add(&mut self, latency_ms: u64, at: DateTime<Utc>, detail: Option<&str>) {
        self.calls += 1;
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(latency_ms);
        let i = LATENCY_BOUNDS_MS.iter().position(|&b| latency_ms <= b).unwrap_or(BUCKETS - 1);
        if let Some(slot) = self.histogram.get_mut(i) {
            *slot += 1;
        }
        if self.last_at.is_none_or(|t| t <= at) {
            self.last_at = Some(at);
            if let Some(d) = detail {
                self.last_detail = Some(d.chars().take(300).collect());
            }
        }
    }

    /// Adds another bucket's counts (another instance's, or another minute's).
    pub fn merge(&mut self, other: &Self) {
        self.calls += other.calls;
        self.latency_ms_sum = self.latency_ms_sum.saturating_add(other.latency_ms_sum);
        for (a, b) in self.histogram.iter_mut().zip(other.histogram.iter()) {
            *a += b;
        }
        if other.last_at > self.last_at {
            self.last_at = other.last_at;
            self.last_detail.clone_from(&other.last_detail);
        }
    }

    /// The latency under which a fraction `q` of the calls fell, as the bucket's upper bound
    /// (`None` with no calls; the overflow bucket reads as its lower bound).
    #[must_use]
    pub fn quantile_ms(&self, q: f64) -> Option<u64> {
        if self.calls == 0 {
            return None;
        }
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "a rank among at most u64 calls"
        )]
        let rank = ((self.calls as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.histogram.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BOUNDS_MS.get(i).copied().unwrap_or(LAST_BOUND));
            }
        }
        None
    }
}

/// A stored bucket row as the store reads it back.
#[derive(Clone, Debug)]
pub struct StoredBucket {
    pub key: BucketKey,
    pub counts: MinuteCounts,
}

/// A window of traffic: calls by outcome, latency quantiles, timeouts.
#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Window {
    pub calls: u64,
    /// Calls by outcome: `ok` or a finding code.
    pub outcomes: BTreeMap<String, u64>,
    /// Share of calls that failed (0 to 1; 0 with no calls): those that ended with a finding code
    /// other than the caller's own refusals (see [`is_failure`]).
    pub error_rate: f64,
    /// Upper bound of the latency bucket of the median call, in milliseconds.
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
    pub timeouts: u64,
    /// The same, by source (`gateway`, `check`).
    pub by_source: BTreeMap<String, SourceWindow>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SourceWindow {
    pub calls: u64,
    pub outcomes: BTreeMap<String, u64>,
    pub p50_ms: Option<u64>,
    pub p95_ms: Option<u64>,
}

/// A recent failure, as its minute bucket remembers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RecentFailure {
    pub code: String,
    pub source: Source,
    pub at: DateTime<Utc>,
    /// Failures of this code in that minute.
    pub count: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A server's health over the last hour and day.
#[derive(Clone, Debug, PartialEq, Serialize, utoipa::ToSchema)]
pub struct HealthReport {
    #[schema(value_type = uuid::Uuid)]
    pub mcp_server_id: McpServerId,
    pub generated_at: DateTime<Utc>,
    pub last_hour: Window,
    pub last_day: Window,
    /// The last calls that ended with a finding code (newest first, at most 20), one per minute
    /// and code.
    pub last_failures: Vec<RecentFailure>,
}

/// Whether an outcome is a failure of the server or its configuration: a finding code, except
/// the caller's own refusals (a ticket that does not cover the call, a tool the agent may not
/// use, a cap, a user yet to connect). `ok`, `client_error` and `cancelled` are not failures.
#[must_use]
pub fn is_failure(outcome: &str) -> bool {
    use crate::finding::FindingCode as C;
    C::parse(outcome)
        .is_some_and(|c| !matches!(c, C::TicketScope | C::ToolNotAllowed | C::ArgumentLimit | C::NotConnected))
}

/// Sums `buckets` into a report for `server` as of `now`.
#[must_use]
pub fn report(server: McpServerId, buckets: &[StoredBucket], now: DateTime<Utc>) -> HealthReport {
    let hour_ago = now - Duration::hours(1);
    let day_ago = now - Duration::days(1);
    let window = |since: DateTime<Utc>| {
        let mut total = MinuteCounts::default();
        let mut by_source: BTreeMap<Source, (MinuteCounts, BTreeMap<String, u64>)> = BTreeMap::new();
        let mut outcomes: BTreeMap<String, u64> = BTreeMap::new();
        for b in buckets.iter().filter(|b| b.key.minute + Duration::minutes(1) > since) {
            total.merge(&b.counts);
            *outcomes.entry(b.key.outcome.clone()).or_default() += b.counts.calls;
            let s = by_source.entry(b.key.source).or_default();
            s.0.merge(&b.counts);
            *s.1.entry(b.key.outcome.clone()).or_default() += b.counts.calls;
        }
        let failed: u64 = outcomes.iter().filter(|(o, _)| is_failure(o)).map(|(_, n)| n).sum();
        #[expect(clippy::cast_precision_loss, reason = "a rate")]
        let error_rate = if total.calls == 0 { 0.0 } else { failed as f64 / total.calls as f64 };
        Window {
            calls: total.calls,
            timeouts: outcomes.get("upstream_timeout").copied().unwrap_or(0),
            outcomes,
            error_rate,
            p50_ms: total.quantile_ms(0.5),
            p95_ms: total.quantile_ms(0.95),
            by_source: by_source
                .into_iter()
                .map(|(s, (c, o))| {
                    let w = SourceWindow {
                        calls: c.calls,
                        outcomes: o,
                        p50_ms: c.quantile_ms(0.5),
                        p95_ms: c.quantile_ms(0.95),
                    };
                    (s.as_str().to_owned(), w)
                })
                .collect(),
        }
    };
    let mut failures: BTreeMap<(DateTime<Utc>, Source, String), MinuteCounts> = BTreeMap::new();
    let coded = |o: &str| crate::finding::FindingCode::parse(o).is_some();
    for b in buckets.iter().filter(|b| coded(&b.key.outcome) && b.key.minute + Duration::minutes(1) > day_ago) {
        failures.entry((b.key.minute, b.key.source, b.key.outcome.clone())).or_default().merge(&b.counts);
    }
    let mut last_failures: Vec<RecentFailure> = failures
        .into_iter()
        .map(|((minute, source, code), c)| RecentFailure {
            code,
            source,
            at: c.last_at.unwrap_or(minute),
            count: c.calls,
            detail: c.last_detail,
        })
        .collect();
    last_failures.sort_by_key(|f| std::cmp::Reverse(f.at));
    last_failures.truncate(20);
    HealthReport {
        mcp_server_id: server,
        generated_at: now,
        last_hour: window(hour_ago),
        last_day: window(day_ago),
        last_failures,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_read_the_bucket_bounds() {
        let mut c = MinuteCounts::default();
        let at = crate::clock::now();
        for ms in [0, 1, 3, 3, 3, 8, 40, 40, 90, 20_000] {
            c.add(ms, at, None);
        }
        assert_eq!(c.calls, 10);
        assert_eq!(c.quantile_ms(0.5), Some(5));
        assert_eq!(c.quantile_ms(0.95), Some(10_000));
        assert_eq!(MinuteCounts::default().quantile_ms(0.5), None);
    }

    #[test]
    fn a_report_counts_the_hour_and_the_day_apart() {
        let now = crate::clock::now();
        let server = McpServerId::new();
        let bucket = |ago: Duration, outcome: &str, calls: u64| {
            let mut counts = MinuteCounts::default();
            for _ in 0..calls {
                counts.add(30, now - ago, Some("why"));
            }
            StoredBucket {
                key: BucketKey {
                    tenant_id: TenantId::new(),
                    mcp_server_id: server,
                    minute: minute_of(now - ago),
                    source: Source::Gateway,
                    outcome: outcome.into(),
                },
                counts,
            }
        };
        let r = report(
            server,
            &[
                bucket(Duration::minutes(5), OK, 8),
                bucket(Duration::minutes(5), "upstream_timeout", 2),
                bucket(Duration::hours(3), "upstream_unavailable", 4),
            ],
            now,
        );
        assert_eq!(r.last_hour.calls, 10);
        assert_eq!(r.last_hour.timeouts, 2);
        assert!((r.last_hour.error_rate - 0.2).abs() < 1e-9);
        assert_eq!(r.last_day.calls, 14);
        assert_eq!(r.last_failures.len(), 2);
        assert_eq!(r.last_failures[0].code, "upstream_timeout");
        assert_eq!(r.last_hour.p50_ms, Some(50));
    }
}
