//! `switchboard-bench tickets`: the cost of verifying a session ticket at each delegation depth
//! — what the gateway does on a ticket it has not seen (signatures, the size and shape checks,
//! the authority facts) and on every call of an attenuated one (every block's checks with the
//! call's arguments). Each measure is the median of `runs` repetitions; one JSON line per depth.

use std::time::{Duration, Instant, SystemTime};

use switchboard_domain::ticket::delegation::{self, Cap, Narrowing};
use switchboard_domain::ticket::{self, SigningKey, TicketClaims, TicketRequest};
use switchboard_domain::{AgentId, TenantId};

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    v.get(v.len() / 2).map_or(0.0, |d| d.as_secs_f64() * 1e6)
}

pub(crate) fn run(runs: usize, max_depth: usize) -> anyhow::Result<()> {
    let key = SigningKey::generate();
    let agent = AgentId::new();
    let claims = TicketClaims {
        user_id: "user-1".into(),
        agents: vec![agent],
        expires_at: SystemTime::now() + Duration::from_secs(3600),
        subject: Some("orchestrator".into()),
        max_delegation_depth: 8,
        audience: None,
    };
    let (root, _) = ticket::mint(TenantId::new(), &key, &claims)?;
    let pk = key.public_hex();
    let args = serde_json::json!({"query": "select 1", "max_rows": 50});
    let args = args.as_object().cloned().unwrap_or_default();
    let mut current = root;
    for depth in 0..=max_depth {
        if depth > 0 {
            // Each hop: the one tool, a shorter life, a tighter cap.
            let narrowing = Narrowing {
                tools: Some(vec!["db_query".into()]),
                expires_at: Some(SystemTime::now() + Duration::from_secs(3000 - 60 * depth as u64)),
                caps: vec![Cap {
                    tool: "db_query".into(),
                    argument: "max_rows".into(),
                    max: 1000 - 100 * depth as i64,
                    default: false,
                }],
                ..Narrowing::default()
            };
            current =
                delegation::narrow(&current, &pk, &narrowing, SystemTime::now()).map_err(|e| anyhow::anyhow!("{e}"))?.0;
        }
        let request = TicketRequest {
            server: Some("0193c0de-0000-7000-8000-000000000001"),
            server_slug: Some("db-v1"),
            tool: Some("db_query"),
            arguments: Some(&args),
            ..TicketRequest::new(agent, "call")
        };
        let (mut open, mut decide, mut both) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..runs {
            let t0 = Instant::now();
            let (token, _) = ticket::open(&current, &pk)?;
            ticket::authority(&token)?;
            let t1 = Instant::now();
            ticket::authorize(&token, &request, SystemTime::now())?;
            let t2 = Instant::now();
            open.push(t1 - t0);
            decide.push(t2 - t1);
            both.push(t2 - t0);
        }
        println!(
            "{}",
            serde_json::json!({
                "depth": depth, "ticket_chars": current.len(), "runs": runs,
                "open_us": median(open), "authorize_us": median(decide), "verify_us": median(both),
            })
        );
    }
    Ok(())
}
