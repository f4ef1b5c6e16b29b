//! What the authority block of a ticket grants — the block Switchboard signs with the tenant's
//! key, which no holder can change: the user, the agents, the expiry, the subject, the delegation
//! depth, and the one URL an OAuth access token is for.

use std::time::SystemTime;

use biscuit_auth::{AuthorizerBuilder, Biscuit};

use super::{DEFAULT_MAX_DELEGATION_DEPTH, TicketError, limits, shape};

/// What the authority block (Switchboard's own, signed with the tenant's key) grants.
#[derive(Clone, Debug)]
pub struct Authority {
    pub user: String,
    pub agents: Vec<String>,
    /// The minted expiry; `None` for tickets minted before it was recorded as a fact.
    pub expires_at: Option<SystemTime>,
    /// Who holds it (the user for tickets minted without a subject, or before subjects).
    pub subject: String,
    /// The attenuation blocks it carries, counted.
    pub depth: usize,
    /// How many it may carry.
    pub max_depth: usize,
    /// The one gateway URL it is good for, when minted with one (see [`TicketClaims::audience`]).
    pub audience: Option<String>,
}

/// Reads the authority block's facts. Only the authority block is trusted by these queries: a
/// holder's appended block cannot add an agent.
pub fn authority(token: &Biscuit) -> Result<Authority, TicketError> {
    let mut a = AuthorizerBuilder::new().set_limits(limits()).build(token).map_err(|_| TicketError::Internal)?;
    let users: Vec<(String,)> = a.query("data($u) <- user($u)").map_err(|_| TicketError::Internal)?;
    let agents: Vec<(String,)> = a.query("data($a) <- agent($a)").map_err(|_| TicketError::Internal)?;
    let expires: Vec<(SystemTime,)> = a.query("data($e) <- expires($e)").map_err(|_| TicketError::Internal)?;
    let subjects: Vec<(String,)> = a.query("data($s) <- subject($s)").map_err(|_| TicketError::Internal)?;
    let depths: Vec<(i64,)> = a.query("data($d) <- max_delegation_depth($d)").map_err(|_| TicketError::Internal)?;
    let audiences: Vec<(String,)> = a.query("data($r) <- audience($r)").map_err(|_| TicketError::Internal)?;
    let user = users.into_iter().next().map(|(u,)| u).ok_or(TicketError::Malformed)?;
    let max_depth = depths
        .into_iter()
        .map(|(d,)| usize::try_from(d).unwrap_or(0))
        .min()
        .unwrap_or(DEFAULT_MAX_DELEGATION_DEPTH)
        .min(shape::MAX_DEPTH);
    let depth = token.block_count().saturating_sub(1);
    if depth > max_depth {
        return Err(TicketError::TooDeep { depth, max: max_depth });
    }
    Ok(Authority {
        subject: subjects.into_iter().next().map_or_else(|| user.clone(), |(s,)| s),
        user,
        agents: agents.into_iter().map(|(a,)| a).collect(),
        expires_at: expires.into_iter().map(|(e,)| e).min(),
        depth,
        max_depth,
        audience: audiences.into_iter().next().map(|(r,)| r),
    })
}

/// The user a ticket was minted for (authority block).
pub fn user(token: &Biscuit) -> Result<String, TicketError> {
    let mut authorizer =
        AuthorizerBuilder::new().set_limits(limits()).build(token).map_err(|_| TicketError::Internal)?;
    let users: Vec<(String,)> = authorizer.query("data($u) <- user($u)").map_err(|_| TicketError::Internal)?;
    users.into_iter().next().map(|(u,)| u).ok_or(TicketError::Malformed)
}
