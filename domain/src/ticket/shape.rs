//! What a ticket may look like before any of its Datalog runs. Biscuit's run limits are checked
//! between evaluation steps, not inside one: a single check joining many facts can run for
//! seconds before the time limit is looked at. So the holder's blocks are held to a shape whose
//! cost is small by construction — checks only (no rules, few facts), few checks, few queries per
//! check, few predicates per query — and the ticket to a size and a depth. A ticket outside them
//! is `ticket_too_complex`, whatever it would have allowed.

use biscuit_auth::Biscuit;
use biscuit_auth::builder::BlockBuilder;

/// The longest ticket accepted, in characters (a depth-5 ticket with caps is about 2,100).
pub const MAX_TICKET_CHARS: usize = 8 * 1024;
/// The most attenuation blocks any ticket may carry, whatever its own `max_delegation_depth`.
pub const MAX_DEPTH: usize = 8;
/// Per attenuation block.
pub const MAX_FACTS: usize = 8;
pub const MAX_CHECKS: usize = 16;
/// Per check: the queries joined by `or`, and the predicates of each.
pub const MAX_QUERIES: usize = 8;
pub const MAX_PREDICATES: usize = 4;
/// Per request: the top-level arguments of a `tools/call` offered to the checks.
pub const MAX_ARGUMENTS: usize = 32;

/// Why a ticket is too complex to evaluate, in words for the holder.
pub(super) fn check(ticket_chars: usize, token: &Biscuit) -> Result<(), String> {
    if ticket_chars > MAX_TICKET_CHARS {
        return Err(format!("the ticket is {ticket_chars} characters long; at most {MAX_TICKET_CHARS} are accepted"));
    }
    let depth = token.block_count().saturating_sub(1);
    if depth > MAX_DEPTH {
        return Err(format!("the ticket carries {depth} attenuation blocks; at most {MAX_DEPTH} are accepted"));
    }
    for i in 1..token.block_count() {
        let source = token.print_block_source(i).map_err(|_| format!("block {i} cannot be read"))?;
        let block = BlockBuilder::new().code(&source).map_err(|_| format!("block {i} cannot be read"))?;
        block_shape(&block).map_err(|why| format!("block {i} {why}"))?;
    }
    Ok(())
}

fn block_shape(block: &BlockBuilder) -> Result<(), String> {
    if !block.rules.is_empty() {
        return Err("has rules; attenuation blocks may only add checks".to_owned());
    }
    if block.facts.len() > MAX_FACTS {
        return Err(format!("has {} facts; at most {MAX_FACTS} are accepted", block.facts.len()));
    }
    if block.checks.len() > MAX_CHECKS {
        return Err(format!("has {} checks; at most {MAX_CHECKS} are accepted", block.checks.len()));
    }
    for check in &block.checks {
        if check.queries.len() > MAX_QUERIES {
            return Err(format!(
                "has a check of {} alternatives; at most {MAX_QUERIES} are accepted",
                check.queries.len()
            ));
        }
        if let Some(q) = check.queries.iter().find(|q| q.body.len() > MAX_PREDICATES) {
            return Err(format!(
                "has a query joining {} predicates; at most {MAX_PREDICATES} are accepted",
                q.body.len()
            ));
        }
    }
    Ok(())
}
