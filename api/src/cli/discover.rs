//! `switchboard discover`: discovery of one endpoint, printed (nothing is saved).

use super::common::{explain, network};

pub(super) async fn discover(
    url: &str,
    json: bool,
    allow_private_networks: bool,
    allowlist: &str,
) -> anyhow::Result<()> {
    let policy = switchboard_domain::validate::Policy { allow_private_networks };
    let endpoint = switchboard_domain::mcp_server::validate_endpoint(policy, &serde_json::json!({"endpoint": url}))
        .map_err(explain)?;
    let network = network(allow_private_networks, allowlist)?;
    let fetcher = switchboard_discovery::Fetcher::new(network, switchboard_discovery::Limits::default())
        .map_err(|e| anyhow::anyhow!("cannot build the HTTP client: {e}"))?;
    let result = switchboard_discovery::Discoverer::new(fetcher).discover(&endpoint).await;
    if json {
        println!("{}", serde_json::to_string_pretty(&result)?);
    } else {
        print!("{}", super::report::discovery(&result));
    }
    Ok(())
}
