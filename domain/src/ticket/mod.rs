//! Session tickets: Biscuit tokens that let an end user's agent session reach the runtime plane
//! and the MCP gateway.
//!
//! A ticket is `sbt_<tenant id, 32 hex>_<biscuit, base64url>`, signed with the tenant's Ed25519
//! key. The vocabulary is a public contract (README, "Delegation"):
//!
//! - **Minted facts** (the authority block): `user(u)`, one `agent(id)` per agent the session may
//!   act for, `subject(s)` (who holds it; the user unless minted otherwise), `issuer(tenant id)`,
//!   `expires(date)` with `check if time($t), $t <= <expiry>`, and `max_delegation_depth(n)`.
//! - **Request facts**, supplied by the verifier for every decision: `time`, `operation` (`call`
//!   for a `tools/call`, `read` for `prompts/get` and `resources/read`, `list`, `connect`,
//!   `disconnect`, `check`), `requested_agent` (id and slug),
//!   `requested_server` (id and slug), `requested_tool`, `delegation_depth(n)` (the attenuation
//!   blocks, counted — never a number a holder writes), and for a `tools/call` one
//!   `argument(name, value)` per top-level integer, string or boolean argument with
//!   `arguments({names})`.
//!
//! A holder narrows a ticket offline by appending a block of checks (see [`delegation`]); every
//! check of every block must pass, and a block's checks see only the authority block, the
//! verifier's facts and their own block, so a block can only take away. Before any Datalog runs a
//! ticket is held to a size, a depth and a block shape ([`shape`]).
//!
//! Expiry is a 401; anything else the ticket does not allow is a 403 `ticket_scope`, or a
//! JSON-RPC invalid-params error for an argument cap.

mod authority;
pub mod delegation;
mod explained;
mod requests;
pub mod shape;

pub use authority::{Authority, authority, user};
pub use explained::scope_finding;
pub use requests::{MintRequest, validate_attenuate, validate_mint};

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use biscuit_auth::builder::{self, date, fact, string};
use biscuit_auth::{
    Algorithm, AuthorizerBuilder, AuthorizerLimits, Biscuit, BiscuitBuilder, KeyPair, PrivateKey, PublicKey,
};

use crate::{AgentId, TenantId};

const PREFIX: &str = "sbt_";
/// `sbt_` + 32 hex digits + `_`.
const HEADER_LEN: usize = PREFIX.len() + 32 + 1;

/// Bounds on evaluating a ticket's Datalog. Biscuit's default time budget (1 ms) is too tight for
/// a loaded machine: running out would read as "out of scope". Facts and iterations stay at the
/// library's defaults, which bound what a hostile holder can append.
fn limits() -> AuthorizerLimits {
    AuthorizerLimits { max_time: Duration::from_millis(50), ..AuthorizerLimits::default() }
}

/// Longest life a ticket can be minted with.
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What a ticket says when it is minted.
#[derive(Clone, Debug)]
pub struct TicketClaims {
    pub user_id: String,
    pub agents: Vec<AgentId>,
    pub expires_at: SystemTime,
    /// Who holds the ticket (an orchestrator, a service); the user when `None`.
    pub subject: Option<String>,
    /// How many times holders may attenuate it.
    pub max_delegation_depth: usize,
    /// The one gateway URL it is good for (an OAuth access token's RFC 8707 resource); any
    /// route when `None`. A ticket with an audience is refused everywhere else, the runtime
    /// plane included.
    pub audience: Option<String>,
}

/// The delegation depth a ticket is minted with when the request names none.
pub const DEFAULT_MAX_DELEGATION_DEPTH: usize = 3;

/// A request on the runtime plane, as the authorizer sees it.
#[derive(Clone, Debug)]
pub struct TicketRequest<'a> {
    pub agent: AgentId,
    /// The agent's slug, offered beside its id.
    pub agent_slug: Option<&'a str>,
    /// The server's id.
    pub server: Option<&'a str>,
    /// The server's slug, offered beside its id.
    pub server_slug: Option<&'a str>,
    pub tool: Option<&'a str>,
    /// `call` (a tool), `read` (a prompt or a resource), `list`, `connect`, `disconnect`, `check`.
    pub operation: &'a str,
    /// A `tools/call`'s arguments.
    pub arguments: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

impl<'a> TicketRequest<'a> {
    /// A request for `operation` through `agent`, about nothing more specific.
    #[must_use]
    pub fn new(agent: AgentId, operation: &'a str) -> Self {
        Self { agent, agent_slug: None, server: None, server_slug: None, tool: None, operation, arguments: None }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("the session ticket is malformed")]
    Malformed,
    #[error("the session ticket's signature is not valid for this tenant")]
    BadSignature,
    #[error("the session ticket has expired")]
    Expired,
    #[error("the session ticket has been revoked")]
    Revoked,
    /// The ticket is valid but does not cover this agent, server, tool or operation.
    #[error("the session ticket's scope does not include this request")]
    Scope,
    /// A call's argument is over a cap a block set, or missing where a cap requires it.
    #[error("{0}")]
    Argument(String),
    /// More attenuation blocks than the ticket's own `max_delegation_depth`.
    #[error("the session ticket is attenuated {depth} times; its max_delegation_depth is {max}")]
    TooDeep { depth: usize, max: usize },
    /// Too large, too deep or too costly to evaluate (see [`shape`]), or its evaluation hit the
    /// run limits.
    #[error("the session ticket is too complex to evaluate: {0}")]
    TooComplex(String),
    #[error("the session ticket could not be processed")]
    Internal,
}

/// A tenant's signing key.
pub struct SigningKey(KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("public", &self.public_hex()).finish_non_exhaustive()
    }
}

impl SigningKey {
    #[must_use]
    pub fn generate() -> Self {
        Self(KeyPair::new_with_algorithm(Algorithm::Ed25519))
    }

    /// The private key's bytes, to be sealed at rest.
    #[must_use]
    pub fn private_bytes(&self) -> Vec<u8> {
        self.0.private().to_bytes().to_vec()
    }

    pub fn from_private_bytes(bytes: &[u8]) -> Result<Self, TicketError> {
        let private = PrivateKey::from_bytes(bytes, Algorithm::Ed25519).map_err(|_| TicketError::Internal)?;
        Ok(Self(KeyPair::from(&private)))
    }

    /// The public key, hex: what verifiers (and attenuating holders) need.
    #[must_use]
    pub fn public_hex(&self) -> String {
        self.0.public().to_bytes_hex()
    }
}

/// The tenant a ticket names, read before its signature can be checked (the key is per tenant).
pub fn tenant_of(ticket: &str) -> Result<TenantId, TicketError> {
    let header = ticket.get(..HEADER_LEN).ok_or(TicketError::Malformed)?;
    let hex = header.strip_prefix(PREFIX).and_then(|h| h.strip_suffix('_')).ok_or(TicketError::Malformed)?;
    uuid::Uuid::try_parse(hex).map(TenantId).map_err(|_| TicketError::Malformed)
}

/// URL-safe base64, padding optional, non-canonical trailing bits refused.
const TICKET_BASE64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::URL_SAFE,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

fn biscuit_part(ticket: &str) -> Result<&str, TicketError> {
    ticket.get(HEADER_LEN..).filter(|b| !b.is_empty()).ok_or(TicketError::Malformed)
}

/// Mints a ticket: (ticket, revocation ids in hex).
pub fn mint(tenant: TenantId, key: &SigningKey, claims: &TicketClaims) -> Result<(String, Vec<String>), TicketError> {
    // `expires` repeats the expiry check as a fact, so a verifier can read an unattenuated
    // ticket's grant without running Datalog per request (see [`authority`]).
    let depth = i64::try_from(claims.max_delegation_depth.min(shape::MAX_DEPTH)).unwrap_or(0);
    let mut b = BiscuitBuilder::new()
        .fact(fact("user", &[string(&claims.user_id)]))
        .and_then(|b| b.fact(fact("expires", &[date(&claims.expires_at)])))
        .and_then(|b| b.fact(fact("subject", &[string(claims.subject.as_deref().unwrap_or(&claims.user_id))])))
        .and_then(|b| b.fact(fact("issuer", &[string(&tenant.0.to_string())])))
        .and_then(|b| b.fact(fact("max_delegation_depth", &[builder::int(depth)])))
        .map_err(|_| TicketError::Internal)?;
    for agent in &claims.agents {
        b = b.fact(fact("agent", &[string(&agent.to_string())])).map_err(|_| TicketError::Internal)?;
    }
    if let Some(audience) = &claims.audience {
        b = b.fact(fact("audience", &[string(audience)])).map_err(|_| TicketError::Internal)?;
    }
    let params = std::iter::once(("exp".to_owned(), date(&claims.expires_at))).collect();
    b = b
        .code_with_params("check if time($t), $t <= {exp}", params, Default::default())
        .map_err(|_| TicketError::Internal)?;
    let token = b.build(&key.0).map_err(|_| TicketError::Internal)?;
    let encoded = token.to_base64().map_err(|_| TicketError::Internal)?;
    Ok((format!("{PREFIX}{}_{encoded}", tenant.0.simple()), revocation_ids(&token)))
}

fn revocation_ids(token: &Biscuit) -> Vec<String> {
    token.revocation_identifiers().iter().map(|id| crate::crypto::hex(id)).collect()
}

/// Checks the signature with the tenant's public key; returns the token and its revocation ids
/// (one per block: revoking a ticket revokes every ticket attenuated from it).
pub fn open(ticket: &str, public_hex: &str) -> Result<(Biscuit, Vec<String>), TicketError> {
    let public = PublicKey::from_bytes_hex(public_hex, Algorithm::Ed25519).map_err(|_| TicketError::Internal)?;
    // Decoded here, strictly, rather than by the Biscuit library's lenient decoder: a character
    // whose only change is in base64's unused trailing bits must not make a different string
    // that opens as the same ticket. Padding may be there or not (third-party attenuators differ).
    if ticket.len() > shape::MAX_TICKET_CHARS {
        return Err(TicketError::TooComplex(format!(
            "the ticket is {} characters long; at most {} are accepted",
            ticket.len(),
            shape::MAX_TICKET_CHARS
        )));
    }
    let bytes = TICKET_BASE64.decode(biscuit_part(ticket)?).map_err(|_| TicketError::Malformed)?;
    let token = Biscuit::from(&bytes, public).map_err(|e| match e {
        biscuit_auth::error::Token::Format(biscuit_auth::error::Format::Signature(_)) => TicketError::BadSignature,
        _ => TicketError::Malformed,
    })?;
    shape::check(ticket.len(), &token).map_err(TicketError::TooComplex)?;
    let ids = revocation_ids(&token);
    Ok((token, ids))
}

/// Authorizes `request` with an opened ticket; returns the ticket's user.
pub fn authorize(token: &Biscuit, request: &TicketRequest<'_>, now: SystemTime) -> Result<String, TicketError> {
    let mut authorizer = authorizer(token, request, now)?;
    match authorizer.authorize() {
        Ok(_) => {}
        Err(e) => return Err(classify(&e, request)),
    }
    let users: Vec<(String,)> = authorizer.query("data($u) <- user($u)").map_err(|_| TicketError::Internal)?;
    users.into_iter().next().map(|(u,)| u).ok_or(TicketError::Malformed)
}

/// The agent-level check of a request that spans several servers (a list): it fails only when
/// the ticket expired or does not cover the agent or the operation. Checks about a server or a
/// tool cannot be satisfied without one and are left to the per-server checks.
pub fn authorize_agent(
    token: &Biscuit,
    agent: AgentId,
    agent_slug: Option<&str>,
    operation: &str,
    now: SystemTime,
) -> Result<(), TicketError> {
    let request = TicketRequest { agent_slug, ..TicketRequest::new(agent, operation) };
    match authorizer(token, &request, now)?.authorize() {
        Ok(_) => Ok(()),
        Err(e) => match classify(&e, &request) {
            TicketError::Scope if only_mentions(&e, &["requested_server(", "requested_tool("]) => Ok(()),
            other => Err(other),
        },
    }
}

/// Whether the holder attenuated the ticket. Switchboard mints only the authority block (user,
/// agents, expiry), so only appended blocks can narrow servers or tools: for a ticket with none, a
/// request the agent-level check allows is allowed for every server of that agent, and per-server
/// evaluation can be skipped.
#[must_use]
pub fn attenuated(token: &Biscuit) -> bool {
    token.block_count() > 1
}

fn authorizer(
    token: &Biscuit,
    request: &TicketRequest<'_>,
    now: SystemTime,
) -> Result<biscuit_auth::Authorizer, TicketError> {
    let internal = |_| TicketError::Internal;
    let depth = i64::try_from(token.block_count().saturating_sub(1)).unwrap_or(i64::MAX);
    let mut a = AuthorizerBuilder::new()
        .fact(fact("time", &[date(&now)]))
        .map_err(internal)?
        .fact(fact("requested_agent", &[string(&request.agent.to_string())]))
        .map_err(internal)?
        .fact(fact("operation", &[string(request.operation)]))
        .map_err(internal)?
        .fact(fact("delegation_depth", &[builder::int(depth)]))
        .map_err(internal)?;
    if let Some(slug) = request.agent_slug {
        a = a.fact(fact("requested_agent", &[string(slug)])).map_err(internal)?;
    }
    for s in [request.server, request.server_slug].into_iter().flatten() {
        a = a.fact(fact("requested_server", &[string(s)])).map_err(internal)?;
    }
    if let Some(t) = request.tool {
        a = a.fact(fact("requested_tool", &[string(t)])).map_err(internal)?;
    }
    if let Some(args) = request.arguments {
        // Every name is in the set (a `default` cap must not be fooled by many arguments); the
        // values of the first ones only are facts, so a cap on one left out reads as missing.
        let names = args.keys().map(|n| string(n)).collect();
        a = a.fact(fact("arguments", &[builder::set(names)])).map_err(internal)?;
        for (name, value) in args.iter().take(shape::MAX_ARGUMENTS) {
            if let Some(term) = argument_term(value) {
                a = a.fact(fact("argument", &[string(name), term])).map_err(internal)?;
            }
        }
    }
    a.policy("allow if agent($a), requested_agent($a)")
        .map_err(internal)?
        .set_limits(limits())
        .build(token)
        .map_err(|e| classify(&e, request))
}

/// An argument as the checks see it: integers (a whole number written as a float too),
/// strings and booleans; anything else is not offered, so a cap on it reads as missing.
fn argument_term(value: &serde_json::Value) -> Option<builder::Term> {
    use serde_json::Value as V;
    match value {
        V::Bool(b) => Some(builder::boolean(*b)),
        V::String(s) => Some(string(s)),
        V::Number(n) => n.as_i64().map(builder::int).or_else(|| {
            n.as_f64().filter(|f| f.fract() == 0.0 && (-9.0e15..=9.0e15).contains(f)).map(|f| builder::int(f as i64))
        }),
        _ => None,
    }
}

fn failed_rules(e: &biscuit_auth::error::Token) -> Option<(bool, Vec<&str>)> {
    use biscuit_auth::error::{FailedCheck, Logic, Token};
    let Token::FailedLogic(logic) = e else { return None };
    let (policy_matched, checks) = match logic {
        Logic::Unauthorized { checks, .. } => (true, checks.as_slice()),
        Logic::NoMatchingPolicy { checks } => (false, checks.as_slice()),
        _ => return None,
    };
    let rules = checks
        .iter()
        .map(|c| match c {
            FailedCheck::Block(b) => b.rule.as_str(),
            FailedCheck::Authorizer(a) => a.rule.as_str(),
        })
        .collect();
    Some((policy_matched, rules))
}

/// A failed `time` check is an expiry, whoever added it; a failed argument cap names the cap;
/// anything else is out of scope. Hitting the run limits is the ticket's complexity, and a type
/// error in a holder's check (comparing a string with a number) refuses like a failed check.
fn classify(e: &biscuit_auth::error::Token, request: &TicketRequest<'_>) -> TicketError {
    use biscuit_auth::error::Token;
    match (e, failed_rules(e)) {
        (_, Some((_, rules))) if rules.iter().any(|r| r.contains("time(")) => TicketError::Expired,
        (_, Some((_, rules))) => match rules.iter().find(|r| r.contains("argument(")) {
            Some(rule) => TicketError::Argument(delegation::describe_cap_failure(rule, request.arguments)),
            None => TicketError::Scope,
        },
        (Token::RunLimit(limit), _) => TicketError::TooComplex(format!("its evaluation hit a run limit ({limit})")),
        (Token::Execution(_), _) => TicketError::Scope,
        // Anything else is not the holder's doing.
        _ => TicketError::Internal,
    }
}

/// The agent matched (the allow policy did) and every failed check is about one of `facts`.
fn only_mentions(e: &biscuit_auth::error::Token, facts: &[&str]) -> bool {
    match failed_rules(e) {
        Some((true, rules)) => {
            !rules.is_empty()
                && rules.iter().all(|r| facts.iter().any(|f| r.contains(f)) && !r.contains("requested_agent("))
        }
        _ => false,
    }
}

/// Appends a block of checks, as a holder would to attenuate a ticket (used by tests and docs).
pub fn attenuate(ticket: &str, public_hex: &str, checks: &str) -> Result<String, TicketError> {
    let (token, _) = open(ticket, public_hex)?;
    let block = builder::BlockBuilder::new().code(checks).map_err(|_| TicketError::Malformed)?;
    let attenuated = token.append(block).map_err(|_| TicketError::Internal)?;
    let encoded = attenuated.to_base64().map_err(|_| TicketError::Internal)?;
    Ok(format!("{}{encoded}", ticket.get(..HEADER_LEN).ok_or(TicketError::Malformed)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(super) fn setup() -> (TenantId, SigningKey, AgentId, AgentId, String) {
        let tenant = TenantId::new();
        let key = SigningKey::generate();
        let (a1, a2) = (AgentId::new(), AgentId::new());
        let claims = TicketClaims {
            user_id: "user-42".into(),
            agents: vec![a1, a2],
            expires_at: SystemTime::now() + Duration::from_secs(600),
            subject: None,
            max_delegation_depth: DEFAULT_MAX_DELEGATION_DEPTH,
            audience: None,
        };
        let (ticket, ids) = mint(tenant, &key, &claims).expect("mint");
        assert_eq!(ids.len(), 1);
        (tenant, key, a1, a2, ticket)
    }

    fn req(agent: AgentId) -> TicketRequest<'static> {
        TicketRequest { server: Some("srv-1"), ..TicketRequest::new(agent, "connect") }
    }

    fn check(ticket: &str, key: &SigningKey, r: &TicketRequest<'_>) -> Result<String, TicketError> {
        let (token, _) = open(ticket, &key.public_hex())?;
        authorize(&token, r, SystemTime::now())
    }

    #[test]
    fn the_authority_block_is_read_without_trusting_appended_blocks() {
        let (_, key, a1, a2, ticket) = setup();
        let (token, _) = open(&ticket, &key.public_hex()).expect("open");
        let auth = authority(&token).expect("authority");
        assert_eq!(auth.user, "user-42");
        assert_eq!(auth.agents.len(), 2);
        assert!(auth.agents.contains(&a1.to_string()) && auth.agents.contains(&a2.to_string()));
        assert!(auth.expires_at.is_some_and(|e| e > SystemTime::now()));
        let forged = attenuate(&ticket, &key.public_hex(), r#"agent("someone-else"); user("admin");"#).expect("append");
        let (token, _) = open(&forged, &key.public_hex()).expect("open");
        let auth = authority(&token).expect("authority");
        assert_eq!((auth.user.as_str(), auth.agents.len()), ("user-42", 2));
    }

    #[test]
    fn a_ticket_names_its_tenant_and_user() {
        let (tenant, key, a1, a2, ticket) = setup();
        assert_eq!(tenant_of(&ticket), Ok(tenant));
        assert_eq!(check(&ticket, &key, &req(a1)).as_deref(), Ok("user-42"));
        assert_eq!(check(&ticket, &key, &req(a2)).as_deref(), Ok("user-42"));
        assert_eq!(check(&ticket, &key, &req(AgentId::new())), Err(TicketError::Scope));
        // Another tenant's key does not open it; a damaged ticket is malformed.
        assert_eq!(open(&ticket, &SigningKey::generate().public_hex()).err(), Some(TicketError::BadSignature));
        assert_eq!(tenant_of("sbt_nothex_x"), Err(TicketError::Malformed));
        let mut damaged = ticket.clone();
        damaged.truncate(ticket.len() - 10);
        assert!(open(&damaged, &key.public_hex()).is_err());
    }

    #[test]
    fn holders_attenuate_without_switchboard() {
        let (_, key, a1, a2, ticket) = setup();
        let pk = key.public_hex();
        let fewer_agents =
            attenuate(&ticket, &pk, &format!(r#"check if requested_agent($a), {{"{a1}"}}.contains($a)"#))
                .expect("attenuate");
        assert!(check(&fewer_agents, &key, &req(a1)).is_ok());
        assert_eq!(check(&fewer_agents, &key, &req(a2)), Err(TicketError::Scope));

        let fewer_servers =
            attenuate(&ticket, &pk, r#"check if requested_server($s), {"srv-2"}.contains($s)"#).expect("attenuate");
        assert_eq!(check(&fewer_servers, &key, &req(a1)), Err(TicketError::Scope));

        let tools = attenuate(
            &ticket,
            &pk,
            r#"check if operation("call"), requested_tool($t), {"search"}.contains($t) or operation($o), $o != "call""#,
        )
        .expect("attenuate");
        assert!(check(&tools, &key, &req(a1)).is_ok());
        let call = |tool| TicketRequest { server: Some("srv-1"), tool: Some(tool), ..TicketRequest::new(a1, "call") };
        assert!(check(&tools, &key, &call("search")).is_ok());
        assert_eq!(check(&tools, &key, &call("delete_everything")), Err(TicketError::Scope));

        let expired = attenuate(&ticket, &pk, "check if time($t), $t <= 2020-01-01T00:00:00Z").expect("attenuate");
        assert_eq!(check(&expired, &key, &req(a1)), Err(TicketError::Expired));
        // An attenuated ticket gains a revocation id per block; the first is the original's.
        let (_, ids) = open(&fewer_agents, &pk).expect("open");
        let (_, original) = open(&ticket, &pk).expect("open");
        assert_eq!(ids.len(), 2);
        assert_eq!(ids[0], original[0]);
    }

    #[test]
    fn expiry_is_checked() {
        let tenant = TenantId::new();
        let key = SigningKey::generate();
        let agent = AgentId::new();
        let claims = TicketClaims {
            user_id: "u".into(),
            agents: vec![agent],
            expires_at: SystemTime::now() - Duration::from_secs(1),
            subject: None,
            max_delegation_depth: DEFAULT_MAX_DELEGATION_DEPTH,
            audience: None,
        };
        let (ticket, _) = mint(tenant, &key, &claims).expect("mint");
        assert_eq!(check(&ticket, &key, &req(agent)), Err(TicketError::Expired));
    }

    #[test]
    fn keys_round_trip_through_their_bytes() {
        let key = SigningKey::generate();
        let again = SigningKey::from_private_bytes(&key.private_bytes()).expect("key");
        assert_eq!(key.public_hex(), again.public_hex());
        assert!(!format!("{key:?}").contains(&crate::crypto::hex(&key.private_bytes())));
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::tests::setup;
    use super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Whatever a caller presents as a ticket is refused as malformed or unsigned — never
        /// a panic, never accepted.
        #[test]
        fn any_presented_ticket_is_refused_cleanly(text in "\\PC{0,200}", prefixed in "sbt_[0-9a-f]{32}_\\PC{0,100}") {
            let key = SigningKey::generate();
            for t in [text, prefixed] {
                let _ = tenant_of(&t);
                prop_assert!(open(&t, &key.public_hex()).is_err());
                let _ = attenuate(&t, &key.public_hex(), "check if time($t), $t <= 2100-01-01T00:00:00Z");
            }
        }

        /// A real ticket damaged anywhere (a character changed, or cut short) does not open — or,
        /// where the change falls on protobuf framing that Biscuit's signatures do not cover (an
        /// unknown field number around a key, seen at one byte of the proof), opens as exactly the
        /// same ticket: the same blocks and revocation ids. Damage never yields another grant.
        #[test]
        fn damaged_tickets_do_not_open(at in any::<prop::sample::Index>(), with in any::<char>(), cut in any::<prop::sample::Index>()) {
            let (_, key, _, _, ticket) = setup();
            let chars: Vec<char> = ticket.chars().collect();
            let i = at.index(chars.len());
            let mut changed = chars.clone();
            if changed.get(i) != Some(&with) && i >= HEADER_LEN {
                if let Some(c) = changed.get_mut(i) {
                    *c = with;
                }
                let changed: String = changed.into_iter().collect();
                if let Ok((opened, ids)) = open(&changed, &key.public_hex()) {
                    let (original, original_ids) = open(&ticket, &key.public_hex()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                    prop_assert_eq!(ids, original_ids, "{}", changed);
                    prop_assert_eq!(opened.print(), original.print(), "{}", changed);
                }
            }
            // (Base64 padding is optional to the decoder: cutting only `=` changes nothing.)
            let short: String = chars.iter().take(cut.index(chars.len())).collect();
            if short.len() < ticket.trim_end_matches('=').len() {
                prop_assert!(open(&short, &key.public_hex()).is_err(), "{short}");
            }
        }
    }
}
