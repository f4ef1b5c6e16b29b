//! Delegation: narrowing a ticket offline, reading what a ticket still grants, and explaining a
//! decision. The library behind `switchboard ticket` and `POST /v1/session-tickets/attenuate`;
//! any Biscuit implementation can do the same with the Datalog [`Narrowing::datalog`] writes.
//!
//! Each kind of narrowing is one check (README, "Delegation"):
//!
//! ```text
//! tools       check if operation($o), $o != "call" or requested_tool($t), {"db_query"}.contains($t)
//! servers     check if requested_server($s), {"linear-v1"}.contains($s)
//! agents      check if requested_agent($a), {"<agent id or slug>"}.contains($a)
//! operations  check if operation($o), {"list", "call"}.contains($o)
//! life        check if time($t), $t <= 2026-12-06T12:00:00Z
//! cap         check if operation($o), $o != "call" or requested_tool($t), $t != "db_query"
//!               or requested_tool("db_query"), argument("max_rows", $v), $v.type() == "integer", $v <= 100
//! (default)     … or requested_tool("db_query"), arguments($n), !$n.contains("max_rows")
//! ```
//!
//! A cap refuses a call whose argument is over it at any hop, and a call that leaves the
//! argument out unless the cap says `default`. Depth is never written: the verifier counts
//! blocks.

use std::collections::{BTreeMap, BTreeSet};
use std::time::SystemTime;

use biscuit_auth::Biscuit;
use biscuit_auth::builder::BlockBuilder;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;

use super::{Authority, TicketError, TicketRequest};

/// An argument cap: `tool.argument <= max`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct Cap {
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\"\\\\\\x00-\\x1f\\x7f]+$")]
    pub tool: String,
    #[schema(min_length = 1, max_length = 256, pattern = "^[^\"\\\\\\x00-\\x1f\\x7f]+$")]
    pub argument: String,
    pub max: i64,
    /// Whether a call may leave the argument out (the tool's own default then applies).
    #[serde(default)]
    pub default: bool,
}

impl Cap {
    /// `tool.argument=max`, or `tool.argument=max,default` (`<=` also reads as `=`).
    pub fn parse(text: &str) -> Result<Self, String> {
        let usage = || format!("`{text}`: a cap reads `tool.argument=max` (add `,default` to allow leaving it out)");
        let (body, default) = match text.strip_suffix(",default") {
            Some(b) => (b, true),
            None => (text, false),
        };
        let (target, max) = body.split_once("<=").or_else(|| body.split_once('=')).ok_or_else(usage)?;
        // The argument is after the last dot: tool names may have dots, argument names do not.
        let (tool, argument) = target.trim().rsplit_once('.').ok_or_else(usage)?;
        let max = max.trim().parse::<i64>().map_err(|_| usage())?;
        if tool.is_empty() || argument.is_empty() {
            return Err(usage());
        }
        Ok(Self { tool: tool.to_owned(), argument: argument.to_owned(), max, default })
    }

    fn datalog(&self) -> String {
        let (t, a) = (quote(&self.tool), quote(&self.argument));
        let mut check = format!(
            "check if operation($o), $o != \"call\" or requested_tool($t), $t != {t} or requested_tool({t}), argument({a}, $v), $v.type() == \"integer\", $v <= {}",
            self.max
        );
        if self.default {
            check.push_str(&format!(" or requested_tool({t}), arguments($n), !$n.contains({a})"));
        }
        check
    }
}

/// What a holder takes away from a ticket in one block. `None` keeps what the ticket had.
#[derive(Clone, Debug, Default)]
pub struct Narrowing {
    pub tools: Option<Vec<String>>,
    pub servers: Option<Vec<String>>,
    pub agents: Option<Vec<String>>,
    pub operations: Option<Vec<String>>,
    pub expires_at: Option<SystemTime>,
    pub caps: Vec<Cap>,
}

/// A string as a Datalog literal.
fn quote(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

fn set(items: &[String]) -> String {
    format!("{{{}}}", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "))
}

fn rfc3339(t: SystemTime) -> String {
    DateTime::<Utc>::from(t).to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Narrowing {
    /// The block's Datalog, one check per narrowing.
    #[must_use]
    pub fn datalog(&self) -> String {
        let mut checks = Vec::new();
        if let Some(tools) = &self.tools {
            checks.push(format!(
                "check if operation($o), $o != \"call\" or requested_tool($t), {}.contains($t)",
                set(tools)
            ));
        }
        if let Some(servers) = &self.servers {
            checks.push(format!("check if requested_server($s), {}.contains($s)", set(servers)));
        }
        if let Some(agents) = &self.agents {
            checks.push(format!("check if requested_agent($a), {}.contains($a)", set(agents)));
        }
        if let Some(ops) = &self.operations {
            checks.push(format!("check if operation($o), {}.contains($o)", set(ops)));
        }
        if let Some(at) = self.expires_at {
            checks.push(format!("check if time($t), $t <= {}", rfc3339(at)));
        }
        checks.extend(self.caps.iter().map(Cap::datalog));
        checks.iter().map(|c| format!("{c};\n")).collect()
    }

    fn is_empty(&self) -> bool {
        self.datalog().is_empty()
    }
}

/// What one block narrows, as far as it reads as the vocabulary's checks; anything else it
/// holds is kept verbatim in `other_checks` (and enforced all the same).
#[derive(Clone, Debug, Default, Serialize, utoipa::ToSchema)]
pub struct BlockGrants {
    pub block: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub servers: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub agents: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub operations: Option<BTreeSet<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub caps: Vec<Cap>,
    /// Set when the block was signed by a third party's key (hex), not the holder's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external_key: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub other_checks: Vec<String>,
}

/// What a ticket grants after every block: the intersection of what each allows.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct Grants {
    pub user: String,
    pub subject: String,
    /// The agents the authority block names (ids).
    pub agents: Vec<String>,
    /// Narrowed by agent id or slug; `None`: every agent above.
    pub agent_filter: Option<BTreeSet<String>>,
    /// `None`: every tool the agent's attachments allow.
    pub tools: Option<BTreeSet<String>>,
    /// By id or slug; `None`: every server attached to the agents.
    pub servers: Option<BTreeSet<String>>,
    pub operations: Option<BTreeSet<String>>,
    pub expires_at: Option<DateTime<Utc>>,
    /// The tightest cap on each `tool.argument` (and whether it may be left out).
    pub caps: Vec<Cap>,
    pub depth: usize,
    pub max_delegation_depth: usize,
    pub blocks: Vec<BlockGrants>,
}

fn intersect(acc: &mut Option<BTreeSet<String>>, with: Option<&BTreeSet<String>>) {
    if let Some(w) = with {
        *acc = Some(match acc.take() {
            Some(a) => a.intersection(w).cloned().collect(),
            None => w.clone(),
        });
    }
}

/// Reads every block of an opened ticket.
pub fn grants(token: &Biscuit, authority: &Authority) -> Result<Grants, TicketError> {
    let mut g = Grants {
        user: authority.user.clone(),
        subject: authority.subject.clone(),
        agents: authority.agents.clone(),
        agent_filter: None,
        tools: None,
        servers: None,
        operations: None,
        expires_at: authority.expires_at.map(DateTime::<Utc>::from),
        caps: Vec::new(),
        depth: authority.depth,
        max_delegation_depth: authority.max_depth,
        blocks: Vec::new(),
    };
    let mut caps: BTreeMap<(String, String), Cap> = BTreeMap::new();
    let external = token.external_public_keys();
    for i in 1..token.block_count() {
        let source = token.print_block_source(i).map_err(|_| TicketError::Malformed)?;
        let mut b = read_block(i, &source)?;
        b.external_key = external.get(i).cloned().flatten().map(|k| k.to_bytes_hex());
        intersect(&mut g.tools, b.tools.as_ref());
        intersect(&mut g.servers, b.servers.as_ref());
        intersect(&mut g.agent_filter, b.agents.as_ref());
        intersect(&mut g.operations, b.operations.as_ref());
        if let Some(e) = b.expires_at {
            g.expires_at = Some(g.expires_at.map_or(e, |x| x.min(e)));
        }
        for cap in &b.caps {
            let key = (cap.tool.clone(), cap.argument.clone());
            let tighter = match caps.get(&key) {
                Some(c) => Cap { max: c.max.min(cap.max), default: c.default && cap.default, ..c.clone() },
                None => cap.clone(),
            };
            caps.insert(key, tighter);
        }
        g.blocks.push(b);
    }
    g.caps = caps.into_values().collect();
    Ok(g)
}

/// One block's checks, read as the vocabulary where they match it.
fn read_block(index: usize, source: &str) -> Result<BlockGrants, TicketError> {
    let parsed = BlockBuilder::new().code(source).map_err(|_| TicketError::Malformed)?;
    let mut b = BlockGrants { block: index, ..BlockGrants::default() };
    for check in &parsed.checks {
        let text = check.to_string();
        let body = text.strip_prefix("check if ").unwrap_or(&text);
        // Read as the vocabulary only when the check is exactly what `Narrowing` writes for what
        // was read: a check that merely contains a narrowing's words is shown verbatim.
        let canonical = |n: &Narrowing| n.datalog().trim_end().trim_end_matches(';') == text;
        let list = |v: &BTreeSet<String>| Some(v.iter().cloned().collect::<Vec<_>>());
        if let Some(items) = set_after(body, "requested_tool($t), ", ".contains($t)")
            .filter(|i| canonical(&Narrowing { tools: list(i), ..Narrowing::default() }))
        {
            b.tools = Some(items);
        } else if let Some(items) = set_after(body, "requested_server($s), ", ".contains($s)")
            .filter(|i| canonical(&Narrowing { servers: list(i), ..Narrowing::default() }))
        {
            b.servers = Some(items);
        } else if let Some(items) = set_after(body, "requested_agent($a), ", ".contains($a)")
            .filter(|i| canonical(&Narrowing { agents: list(i), ..Narrowing::default() }))
        {
            b.agents = Some(items);
        } else if let Some(items) = set_after(body, "operation($o), ", ".contains($o)")
            .filter(|i| canonical(&Narrowing { operations: list(i), ..Narrowing::default() }))
        {
            b.operations = Some(items);
        } else if let Some(at) = body
            .strip_prefix("time($t), $t <= ")
            .and_then(|d| DateTime::parse_from_rfc3339(d).ok())
            .filter(|at| canonical(&Narrowing { expires_at: Some((*at).into()), ..Narrowing::default() }))
        {
            b.expires_at = Some(at.with_timezone(&Utc));
        } else if let Some(cap) =
            read_cap(body).filter(|c| canonical(&Narrowing { caps: vec![c.clone()], ..Narrowing::default() }))
        {
            b.caps.push(cap);
        } else {
            b.other_checks.push(text);
        }
    }
    if !parsed.facts.is_empty() {
        b.other_checks.extend(parsed.facts.iter().map(|f| format!("{f} (a fact: no check can trust it)")));
    }
    Ok(b)
}

/// The set literal between `prefix` and `suffix` when the query is exactly that.
fn set_after(body: &str, prefix: &str, suffix: &str) -> Option<BTreeSet<String>> {
    let start = body.find(prefix)? + prefix.len();
    let rest = body.get(start..)?;
    let inner = rest.strip_suffix(suffix)?.strip_prefix('{')?.strip_suffix('}')?;
    let items: Result<BTreeSet<String>, _> =
        serde_json::from_str::<Vec<String>>(&format!("[{inner}]")).map(|v| v.into_iter().collect());
    items.ok()
}

/// A cap check as [`Cap::datalog`] writes it.
fn read_cap(body: &str) -> Option<Cap> {
    let tool = quoted_after(body, "requested_tool($t), $t != ")?;
    let argument = quoted_after(body, "argument(")?;
    let max = body.split("$v <= ").nth(1)?.split(|c: char| !(c.is_ascii_digit() || c == '-')).next()?.parse().ok()?;
    let default = body.contains("arguments($n)");
    Some(Cap { tool, argument, max, default })
}

/// The string literal that starts right after `prefix`.
fn quoted_after(body: &str, prefix: &str) -> Option<String> {
    let rest = body.get(body.find(prefix)? + prefix.len()..)?;
    let mut de = serde_json::Deserializer::from_str(rest).into_iter::<String>();
    de.next()?.ok()
}

/// The message of a failed cap check (`rule`), with the call's `arguments`.
pub(super) fn describe_cap_failure(
    rule: &str,
    arguments: Option<&serde_json::Map<String, serde_json::Value>>,
) -> String {
    let body = rule.strip_prefix("check if ").unwrap_or(rule);
    match read_cap(body) {
        Some(cap) => match arguments.and_then(|a| a.get(&cap.argument)) {
            None => format!(
                "argument `{}` of `{}` is required: the session ticket caps it at {} and does not allow leaving it out",
                cap.argument, cap.tool, cap.max
            ),
            // Only a number is shown: a string argument's value may be anything, a secret too,
            // and this message reaches the client and the audit trail.
            Some(v) => {
                let is = if v.is_number() { format!("is {v}") } else { "is not an integer".to_owned() };
                format!(
                    "argument `{}` of `{}` {is}: the session ticket caps it at {} (an integer)",
                    cap.argument, cap.tool, cap.max
                )
            }
        },
        None => format!("the call's arguments do not pass the session ticket's check `{rule}`"),
    }
}

/// Why a narrowing cannot be appended: it could only mislead whoever receives it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NarrowError {
    #[error(transparent)]
    Ticket(#[from] TicketError),
    #[error("{0}")]
    Widens(String),
    #[error("nothing to narrow: give tools, servers, agents, operations, a shorter life or a cap")]
    Empty,
    #[error("{0}")]
    Invalid(String),
}

/// Refuses a narrowing that asks for more than `parent` grants.
pub fn check_narrowing(parent: &Grants, n: &Narrowing, now: SystemTime) -> Result<(), NarrowError> {
    if n.is_empty() {
        return Err(NarrowError::Empty);
    }
    let names = [&n.tools, &n.servers, &n.agents, &n.operations]
        .into_iter()
        .flatten()
        .flatten()
        .chain(n.caps.iter().flat_map(|c| [&c.tool, &c.argument]));
    if let Some(bad) = names
        .into_iter()
        .find(|x| x.is_empty() || x.chars().count() > 256 || x.chars().any(|c| c == '"' || c == '\\' || c.is_control()))
    {
        return Err(NarrowError::Invalid(format!(
            "`{}` is not a name a block can carry: 1 to 256 characters, no quotes, backslashes or control characters",
            bad.escape_debug()
        )));
    }
    if parent.depth + 1 > parent.max_delegation_depth {
        return Err(NarrowError::Widens(format!(
            "the ticket is attenuated {} times already and its max_delegation_depth is {}: it cannot be narrowed again",
            parent.depth, parent.max_delegation_depth
        )));
    }
    let beyond = |what: &str, asked: &Option<Vec<String>>, has: &Option<BTreeSet<String>>| -> Result<(), NarrowError> {
        if let (Some(asked), Some(has)) = (asked, has)
            && let Some(x) = asked.iter().find(|x| !has.contains(*x))
        {
            return Err(NarrowError::Widens(format!(
                "the ticket does not grant {what} `{x}` (it grants {}): a block cannot add it",
                has.iter().map(String::as_str).collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(())
    };
    beyond("tool", &n.tools, &parent.tools)?;
    beyond("server", &n.servers, &parent.servers)?;
    beyond("operation", &n.operations, &parent.operations)?;
    if let Some(at) = n.expires_at {
        let at = DateTime::<Utc>::from(at);
        if at <= DateTime::<Utc>::from(now) {
            return Err(NarrowError::Widens("the life asked for has already ended".into()));
        }
        if let Some(parent_end) = parent.expires_at
            && at > parent_end
        {
            return Err(NarrowError::Widens(format!(
                "the ticket ends at {}: a block cannot make it last longer",
                parent_end.to_rfc3339_opts(SecondsFormat::Secs, true)
            )));
        }
    }
    for cap in &n.caps {
        if let Some(p) = parent.caps.iter().find(|p| p.tool == cap.tool && p.argument == cap.argument)
            && cap.max > p.max
        {
            {
                return Err(NarrowError::Widens(format!(
                    "`{}.{}` is capped at {} already: a cap of {} would not raise it",
                    cap.tool, cap.argument, p.max, cap.max
                )));
            }
        }
        if parent.tools.as_ref().is_some_and(|t| !t.contains(&cap.tool)) {
            return Err(NarrowError::Widens(format!(
                "the ticket does not grant tool `{}`: a cap on it means nothing",
                cap.tool
            )));
        }
    }
    Ok(())
}

/// A decision explained: which check of which block refused it.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct FailedCheck {
    /// 0 is the authority block; `None`: the verifier's own policy (the agent is not granted).
    pub block: Option<usize>,
    pub check: usize,
    pub rule: String,
}

/// The verifier's decision on `request`, with every check that failed.
pub fn explain(
    token: &Biscuit,
    request: &TicketRequest<'_>,
    now: SystemTime,
) -> (Result<(), TicketError>, Vec<FailedCheck>) {
    let mut authorizer = match super::authorizer(token, request, now) {
        Ok(a) => a,
        Err(e) => return (Err(e), vec![]),
    };
    match authorizer.authorize() {
        Ok(_) => (Ok(()), vec![]),
        Err(e) => {
            use biscuit_auth::error::{FailedCheck as F, Logic, Token};
            let failed = match &e {
                Token::FailedLogic(Logic::Unauthorized { checks, .. } | Logic::NoMatchingPolicy { checks }) => {
                    let mut out: Vec<FailedCheck> = checks
                        .iter()
                        .map(|c| match c {
                            F::Block(b) => FailedCheck {
                                block: usize::try_from(b.block_id).ok(),
                                check: usize::try_from(b.check_id).unwrap_or(0),
                                rule: b.rule.clone(),
                            },
                            F::Authorizer(a) => FailedCheck {
                                block: None,
                                check: usize::try_from(a.check_id).unwrap_or(0),
                                rule: a.rule.clone(),
                            },
                        })
                        .collect();
                    if matches!(&e, Token::FailedLogic(Logic::NoMatchingPolicy { .. })) {
                        out.push(FailedCheck {
                            block: None,
                            check: 0,
                            rule: "allow if agent($a), requested_agent($a)".into(),
                        });
                    }
                    out
                }
                _ => vec![],
            };
            (Err(super::classify(&e, request)), failed)
        }
    }
}

/// Opens `ticket` with the tenant's public key and reads what it grants.
pub fn inspect(ticket: &str, public_hex: &str) -> Result<Grants, TicketError> {
    let (token, _) = super::open(ticket, public_hex)?;
    let authority = super::authority(&token)?;
    grants(&token, &authority)
}

/// Appends `narrowing` to `ticket` (offline: the public key checks what is narrowed), refusing
/// a block that asks for more than the ticket grants. Returns the new ticket and its grants.
pub fn narrow(
    ticket: &str,
    public_hex: &str,
    narrowing: &Narrowing,
    now: SystemTime,
) -> Result<(String, Grants), NarrowError> {
    let parent = inspect(ticket, public_hex)?;
    check_narrowing(&parent, narrowing, now)?;
    let narrowed = super::attenuate(ticket, public_hex, &narrowing.datalog())?;
    let grants = inspect(&narrowed, public_hex)?;
    Ok((narrowed, grants))
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::super::{SigningKey, TicketClaims, authority, authorize, mint, open};
    use super::*;
    use crate::{AgentId, TenantId};

    struct Fixture {
        key: SigningKey,
        agent: AgentId,
        root: String,
    }

    fn fixture(max_depth: usize) -> Fixture {
        let key = SigningKey::generate();
        let agent = AgentId::new();
        let claims = TicketClaims {
            user_id: "user-1".into(),
            agents: vec![agent],
            expires_at: SystemTime::now() + Duration::from_secs(3600),
            subject: Some("orchestrator".into()),
            max_delegation_depth: max_depth,
            audience: None,
        };
        let (root, _) = mint(TenantId::new(), &key, &claims).expect("mint");
        Fixture { key, agent, root }
    }

    impl Fixture {
        fn narrow(&self, ticket: &str, n: &Narrowing) -> Result<(String, Grants), NarrowError> {
            narrow(ticket, &self.key.public_hex(), n, SystemTime::now())
        }

        fn call(&self, ticket: &str, tool: &str, args: serde_json::Value) -> Result<String, TicketError> {
            let (token, _) = open(ticket, &self.key.public_hex())?;
            authority(&token)?;
            let args = args.as_object().cloned();
            let request = TicketRequest {
                server: Some("srv-id"),
                server_slug: Some("db-v1"),
                tool: Some(tool),
                arguments: args.as_ref(),
                ..TicketRequest::new(self.agent, "call")
            };
            authorize(&token, &request, SystemTime::now())
        }
    }

    fn tools(t: &[&str]) -> Narrowing {
        Narrowing { tools: Some(t.iter().map(|s| (*s).to_owned()).collect()), ..Narrowing::default() }
    }

    fn cap(text: &str) -> Narrowing {
        Narrowing { caps: vec![Cap::parse(text).expect("cap")], ..Narrowing::default() }
    }

    #[test]
    fn each_hop_only_takes_away_and_depth_is_counted_by_the_verifier() {
        let f = fixture(3);
        let in_30 = SystemTime::now() + Duration::from_secs(1800);
        let (a, g) =
            f.narrow(&f.root, &Narrowing { expires_at: Some(in_30), ..tools(&["db_query"]) }).expect("worker A");
        assert_eq!((g.depth, g.subject.as_str()), (1, "orchestrator"));
        assert_eq!(g.tools, Some(["db_query".to_owned()].into()));
        let (b, g) = f
            .narrow(
                &a,
                &Narrowing { expires_at: Some(SystemTime::now() + Duration::from_secs(900)), ..Narrowing::default() },
            )
            .expect("worker B");
        assert_eq!(g.depth, 2);
        assert!(g.expires_at.is_some_and(|e| e < DateTime::<Utc>::from(in_30)));
        assert_eq!(f.call(&b, "db_query", json!({})).as_deref(), Ok("user-1"));
        assert_eq!(f.call(&b, "drop_table", json!({})), Err(TicketError::Scope));
        // Lists and other operations are not calls: a tools narrowing leaves them be.
        let (token, _) = open(&b, &f.key.public_hex()).expect("open");
        assert!(authorize(&token, &TicketRequest::new(f.agent, "list"), SystemTime::now()).is_ok());

        // Widening is refused before a block is written.
        let err = |r: Result<(String, Grants), NarrowError>| r.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err(f.narrow(&b, &tools(&["drop_table"]))).contains("does not grant tool `drop_table`"));
        let later =
            Narrowing { expires_at: Some(SystemTime::now() + Duration::from_secs(7200)), ..Narrowing::default() };
        assert!(err(f.narrow(&b, &later)).contains("cannot make it last longer"));
        assert!(matches!(f.narrow(&b, &Narrowing::default()), Err(NarrowError::Empty)));

        // Depth 3 is the limit; a fourth block (appended by hand, past the library's refusal) is
        // refused by the verifier, whatever the block says.
        let (c, _) = f.narrow(&b, &tools(&["db_query"])).expect("depth 3");
        assert!(err(f.narrow(&c, &tools(&["db_query"]))).contains("max_delegation_depth is 3"));
        let d = super::super::attenuate(&c, &f.key.public_hex(), "check if time($t), $t <= 2100-01-01T00:00:00Z")
            .expect("append");
        assert_eq!(f.call(&d, "db_query", json!({})), Err(TicketError::TooDeep { depth: 4, max: 3 }));
    }

    #[test]
    fn a_ticket_narrowed_to_two_tools_calls_both() {
        let f = fixture(3);
        let (t, _) = f.narrow(&f.root, &tools(&["search", "db_query"])).expect("two tools");
        assert!(f.call(&t, "search", json!({})).is_ok());
        assert!(f.call(&t, "db_query", json!({})).is_ok());
        assert_eq!(f.call(&t, "rm", json!({})), Err(TicketError::Scope));
    }

    #[test]
    fn caps_are_checked_against_the_real_arguments_at_every_hop() {
        let f = fixture(3);
        let (a, _) = f.narrow(&f.root, &cap("db_query.max_rows=1000")).expect("cap 1000");
        let (b, g) = f.narrow(&a, &cap("db_query.max_rows=100")).expect("cap 100");
        assert_eq!(
            g.caps,
            vec![Cap { tool: "db_query".into(), argument: "max_rows".into(), max: 100, default: false }]
        );
        assert!(f.call(&b, "db_query", json!({"max_rows": 50})).is_ok());
        assert!(f.call(&b, "db_query", json!({"max_rows": 100.0})).is_ok(), "a whole float is an integer");
        for over in
            [json!({"max_rows": 250}), json!({"max_rows": 101}), json!({"max_rows": "50"}), json!({"max_rows": 50.5})]
        {
            let e = f.call(&b, "db_query", over.clone());
            assert!(
                matches!(&e, Err(TicketError::Argument(m)) if m.contains("max_rows") && m.contains("100")),
                "{over}: {e:?}"
            );
        }
        let missing = f.call(&b, "db_query", json!({"query": "select 1"}));
        assert!(matches!(&missing, Err(TicketError::Argument(m)) if m.contains("is required")), "{missing:?}");
        // Other tools are not concerned by the cap.
        assert!(f.call(&b, "search", json!({})).is_ok());
        // A cap that would raise the parent's is refused.
        assert!(f.narrow(&b, &cap("db_query.max_rows=500")).is_err());
        // `default`: leaving it out is allowed, exceeding it is not.
        let (d, _) = f.narrow(&f.root, &cap("db_query.max_rows=100,default")).expect("default cap");
        assert!(f.call(&d, "db_query", json!({"query": "select 1"})).is_ok());
        assert!(matches!(f.call(&d, "db_query", json!({"max_rows": 250})), Err(TicketError::Argument(_))));
    }

    #[test]
    fn a_holders_own_facts_never_satisfy_a_check() {
        let f = fixture(3);
        let pk = f.key.public_hex();
        let (capped, _) = f.narrow(&f.root, &cap("db_query.max_rows=100")).expect("cap");
        // A later block claims the argument, the operation and another agent.
        let forged = super::super::attenuate(
            &capped,
            &pk,
            r#"argument("max_rows", 1); operation("list"); agent("someone"); delegation_depth(0);"#,
        )
        .expect("append");
        let e = f.call(&forged, "db_query", json!({"max_rows": 5000}));
        assert!(matches!(e, Err(TicketError::Argument(_))), "{e:?}");
        // A block with rules is too complex to run at all.
        let rules = super::super::attenuate(&f.root, &pk, r#"argument("max_rows", 1) <- time($t);"#).expect("append");
        assert!(matches!(open(&rules, &pk), Err(TicketError::TooComplex(_))));
    }

    #[test]
    fn whole_floats_are_integers_in_requests() {
        let agent = AgentId::new().to_string();
        let mint = super::super::validate_mint(
            &json!({"user_id": "u", "agent_ids": [agent], "max_delegation_depth": 5.0, "expires_in": 600.0}),
        )
        .expect("5.0 is a whole number");
        assert_eq!(mint.max_delegation_depth, 5);
        assert!(
            super::super::validate_mint(&json!({"user_id": "u", "agent_ids": [agent], "max_delegation_depth": 2.5}))
                .is_err()
        );
        let (_, n) = super::super::validate_attenuate(
            &json!({"ticket": "sbt_x", "expires_in": 60.0, "caps": [{"tool": "t", "argument": "a", "max": 100.0}]}),
            SystemTime::now(),
        )
        .expect("whole floats");
        assert_eq!(n.caps[0].max, 100);
        assert!(n.expires_at.is_some());
    }

    #[test]
    fn caps_parse_and_read_back() {
        assert_eq!(
            Cap::parse("db.max_rows<=5").map(|c| (c.tool, c.argument, c.max, c.default)),
            Ok(("db".into(), "max_rows".into(), 5, false))
        );
        assert!(Cap::parse("db.max_rows=5,default").is_ok_and(|c| c.default));
        for bad in ["db=5", "db.x=five", ".x=1", "db.=1"] {
            assert!(Cap::parse(bad).is_err(), "{bad}");
        }
        let c = Cap::parse("db_query.max_rows=100,default").expect("cap");
        let text = c.datalog();
        assert_eq!(read_cap(text.strip_prefix("check if ").unwrap_or(&text)), Some(c));
    }

    #[test]
    fn a_refusal_names_the_failing_check_of_its_block() {
        let f = fixture(3);
        let (t, _) = f.narrow(&f.root, &tools(&["search"])).expect("narrow");
        let (token, _) = open(&t, &f.key.public_hex()).expect("open");
        let request = TicketRequest { tool: Some("rm"), ..TicketRequest::new(f.agent, "call") };
        let (decision, failed) = explain(&token, &request, SystemTime::now());
        assert_eq!(decision, Err(TicketError::Scope));
        assert_eq!(failed.len(), 1);
        assert_eq!((failed[0].block, failed[0].check), (Some(1), 0));
        assert!(failed[0].rule.contains("requested_tool"), "{}", failed[0].rule);
    }
}
