//! The gateway's Prometheus metrics: proxied requests by route (agent and server slugs), MCP
//! method and outcome, and their latency. Methods outside the spec's set are counted as `other`,
//! so a client cannot grow the label space.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub agent: String,
    pub server: String,
    pub method: &'static str,
    pub outcome: &'static str,
}

#[derive(Clone)]
pub struct GatewayMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram, fn() -> Histogram>,
}

fn histogram() -> Histogram {
    Histogram::new([0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0])
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        Self { requests: Family::default(), latency: Family::new_with_constructor(histogram) }
    }
}

/// The method as a label: one of the spec's, or `other`.
#[must_use]
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: &[&str] = &[
        "initialize",
        "ping",
        "tools/list",
        "tools/call",
        "prompts/list",
        "prompts/get",
        "resources/list",
        "resources/templates/list",
        "resources/read",
        "resources/subscribe",
        "resources/unsubscribe",
        "completion/complete",
        "logging/setLevel",
        "server/discover",
        "subscriptions/listen",
        "notifications/initialized",
        "notifications/cancelled",
        "notifications/progress",
        "notifications/roots/list_changed",
    ];
    KNOWN.iter().find(|k| **k == method).copied().unwrap_or(if method.starts_with("notifications/") {
        "notifications/other"
    } else if method.is_empty() {
        "response"
    } else {
        "other"
    })
}

impl GatewayMetrics {
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gateway_requests",
            "MCP requests through the gateway, by route, method and outcome",
            self.requests.clone(),
        );
        registry.register(
            "gateway_request_duration_seconds",
            "Latency of MCP requests through the gateway, to the response head",
            self.latency.clone(),
        );
    }

    pub fn observe(&self, labels: RequestLabels, seconds: f64) {
        self.latency.get_or_create(&labels).observe(seconds);
        self.requests.get_or_create(&labels).inc();
    }
}
