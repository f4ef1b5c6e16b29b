//! What a ticket may look like before any of its Datalog runs. Biscuit's run limits are checked
//! between evaluation steps, not inside one: a single check joining many facts can run for
//! seconds before the time limit is looked at. So the holder's blocks are held to a shape whose
//! cost is small by construction — checks only (no rules, few facts), few checks, few queries per
//! check, few predicates per query — and the ticket to a size and a depth. A ticket outside them
//! is `ticket_too_complex`, whatever it would have allowed.
//!
//! The shape is measured on the blocks as they are encoded (their protobuf), never on printed
//! Datalog: Biscuit prints strings without escaping them, so a printed block can be made to read
//! as something else. For the same reason a holder's strings may not contain quotes, backslashes
//! or control characters — with them ruled out, a block's printed source is exactly its content,
//! which is what `delegation::grants` reads.

use biscuit_auth::Biscuit;
use biscuit_auth::format::schema;
use prost::Message as _;

/// The longest ticket accepted, in characters (a depth-5 ticket with caps is about 3,300).
pub const MAX_TICKET_CHARS: usize = 8 * 1024;
/// The most attenuation blocks any ticket may carry, whatever its own `max_delegation_depth`.
pub const MAX_DEPTH: usize = 8;
/// Per attenuation block.
pub const MAX_FACTS: usize = 8;
pub const MAX_CHECKS: usize = 16;
/// Per check: the queries joined by `or`, and the predicates of each.
pub const MAX_QUERIES: usize = 8;
pub const MAX_PREDICATES: usize = 4;
/// Per request: the top-level arguments of a `tools/call` offered to the checks as
/// `argument(name, value)` facts (all names are in `arguments({names})`).
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
    if depth == 0 {
        return Ok(());
    }
    let unreadable = || "its blocks cannot be read".to_owned();
    let bytes = token.to_vec().map_err(|_| unreadable())?;
    let encoded = schema::Biscuit::decode(bytes.as_slice()).map_err(|_| unreadable())?;
    let authority = schema::Block::decode(encoded.authority.block.as_slice()).map_err(|_| unreadable())?;
    // The symbols blocks share (a third-party block has its own table).
    let mut shared = authority.symbols;
    for (i, signed) in encoded.blocks.iter().enumerate() {
        let block = schema::Block::decode(signed.block.as_slice()).map_err(|_| unreadable())?;
        let own;
        let table = if signed.external_signature.is_some() {
            own = block.symbols.clone();
            &own
        } else {
            shared.extend(block.symbols.iter().cloned());
            &shared
        };
        block_shape(&block, table).map_err(|why| format!("block {} {why}", i + 1))?;
    }
    Ok(())
}

/// Symbol ids of a Biscuit v3 block: defaults below this offset, the tables' own from it.
const SYMBOL_OFFSET: u64 = 1024;

fn block_shape(block: &schema::Block, symbols: &[String]) -> Result<(), String> {
    let is_argument = |p: &schema::Predicate| {
        p.name
            .checked_sub(SYMBOL_OFFSET)
            .and_then(|i| usize::try_from(i).ok())
            .and_then(|i| symbols.get(i))
            .is_some_and(|n| n == "argument")
    };
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
        // The one fact family a caller can make large: one `argument` per query, so no query
        // joins arguments with each other.
        if check.queries.iter().any(|q| q.body.iter().filter(|p| is_argument(p)).count() > 1) {
            return Err("has a query joining several argument(..) predicates; one per query is accepted".to_owned());
        }
    }
    if block.symbols.iter().any(|s| s.chars().any(|c| c == '"' || c == '\\' || c.is_control())) {
        return Err("has a string with a quote, a backslash or a control character".to_owned());
    }
    Ok(())
}
