//! Credentials → contexts. Handlers learn who is calling only through these extractors:
//! [`TenantContext`] from a tenant API key, [`AdminContext`] from the platform admin token.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest, web};
use subtle::ConstantTimeEq as _;
use switchboard_domain::crypto::sha256;
use switchboard_domain::{TenantId, api_key};

pub use crate::credentials::TenantContext;
use crate::error::ApiError;
use crate::state::AppState;

/// A caller authenticated with `SWITCHBOARD_ADMIN_TOKEN`.
#[derive(Clone, Copy, Debug)]
pub struct AdminContext;

fn bearer(req: &HttpRequest) -> Option<&str> {
    let value = req.headers().get(actix_web::http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

fn state(req: &HttpRequest) -> Result<web::Data<AppState>, ApiError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| switchboard_domain::DomainError::internal("app state missing").into())
}

fn is_admin_token(state: &AppState, presented: &str) -> bool {
    state
        .settings
        .admin_token
        .as_ref()
        .is_some_and(|t| bool::from(sha256(t.expose().as_bytes()).ct_eq(&sha256(presented.as_bytes()))))
}

impl FromRequest for TenantContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let state = state(req);
        let presented = bearer(req).map(str::to_owned);
        Box::pin(async move {
            let state = state?;
            let presented = presented.ok_or(ApiError::Unauthorized("this route needs a tenant API key"))?;
            let Some((_, digest)) = api_key::parse(&presented) else {
                if is_admin_token(&state, &presented) {
                    return Err(ApiError::WrongCredential {
                        detail: "the admin token cannot call tenant routes",
                        hint: "use a tenant API key (sb_…); create one with POST /v1/admin/tenants/{id}/api-keys",
                    });
                }
                return Err(ApiError::Unauthorized("the API key is not valid"));
            };
            if let Some(ctx) = state.keys.api_keys.get(&digest) {
                return Ok(ctx);
            }
            let key = state
                .store
                .authenticate_api_key(&presented)
                .await?
                .ok_or(ApiError::Unauthorized("the API key is not valid"))?;
            let ctx = TenantContext { tenant_id: key.tenant_id, api_key_id: key.id };
            state.keys.api_keys.put(digest, ctx);
            tracing::Span::current().record("tenant.id", tracing::field::display(ctx.tenant_id));
            Ok(ctx)
        })
    }
}

impl FromRequest for AdminContext {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        std::future::ready((|| {
            let state = state(req)?;
            if state.settings.admin_token.is_none() {
                return Err(ApiError::AdminDisabled);
            }
            let presented = bearer(req).ok_or(ApiError::Unauthorized("this route needs the platform admin token"))?;
            if is_admin_token(&state, presented) {
                return Ok(Self);
            }
            if api_key::parse(presented).is_some() {
                return Err(ApiError::WrongCredential {
                    detail: "a tenant API key cannot call admin routes",
                    hint: "use the platform admin token (SWITCHBOARD_ADMIN_TOKEN)",
                });
            }
            Err(ApiError::Unauthorized("the admin token is not valid"))
        })())
    }
}

/// A runtime-plane caller: a verified, unrevoked session ticket. What it may do is decided per
/// request by [`TicketContext::authorize`].
#[derive(Clone)]
pub struct TicketContext {
    pub tenant_id: TenantId,
    ticket: std::sync::Arc<switchboard_gateway::inbound::VerifiedTicket>,
}

impl std::fmt::Debug for TicketContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketContext").field("tenant_id", &self.tenant_id).finish_non_exhaustive()
    }
}

impl TicketContext {
    /// The ticket's tenant's view of `store` (see [`TenantContext::store`]).
    #[must_use]
    pub fn store<'a>(&self, store: &'a switchboard_domain::store::Store) -> switchboard_domain::store::TenantStore<'a> {
        store.tenant(self.tenant_id)
    }

    /// Checks the request against the ticket and every block appended to it; returns the user.
    pub fn authorize(
        &self,
        request: &switchboard_domain::ticket::TicketRequest<'_>,
    ) -> Result<String, switchboard_domain::ticket::TicketError> {
        switchboard_domain::ticket::authorize(&self.ticket.token, request, std::time::SystemTime::now())
    }

    /// [`Self::authorize`], with a refusal for scope explained as a `ticket_scope` finding
    /// (which check of which block failed, what the ticket covers).
    pub fn authorize_explained(
        &self,
        request: &switchboard_domain::ticket::TicketRequest<'_>,
    ) -> Result<String, ApiError> {
        use switchboard_domain::ticket::{TicketError, scope_finding};
        match self.authorize(request) {
            Err(TicketError::Scope) => Err(ApiError::TicketScope(Box::new(scope_finding(
                &self.ticket.token,
                &self.ticket.authority,
                request,
                std::time::SystemTime::now(),
            )))),
            other => Ok(other?),
        }
    }

    /// The ticket's user (its authority block's).
    pub fn user(&self) -> Result<String, ApiError> {
        Ok(self.ticket.authority.user.clone())
    }

    /// Whether the holder narrowed the ticket (see [`switchboard_domain::ticket::attenuated`]).
    #[must_use]
    pub fn attenuated(&self) -> bool {
        switchboard_domain::ticket::attenuated(&self.ticket.token)
    }

    /// The agent-level check of a request spanning several servers; see
    /// [`switchboard_gateway::inbound::VerifiedTicket::authorize_agent`].
    pub fn authorize_agent(
        &self,
        agent: switchboard_domain::AgentId,
        agent_slug: Option<&str>,
        operation: &str,
    ) -> Result<(), ApiError> {
        Ok(self.ticket.authorize_agent(agent, agent_slug, operation)?)
    }
}

impl FromRequest for TicketContext {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        use switchboard_domain::ticket::TicketError;
        let state = state(req);
        let presented = bearer(req).map(str::to_owned);
        Box::pin(async move {
            let state = state?;
            let presented = presented.ok_or(ApiError::Unauthorized("this route needs a session ticket"))?;
            if api_key::parse(&presented).is_some() {
                return Err(ApiError::WrongCredential {
                    detail: "an API key cannot call runtime routes",
                    hint: "mint a session ticket with POST /v1/session-tickets and send it instead",
                });
            }
            // The gateway's views verify it: the signature once per ticket with the tenant's cached
            // key, the revocation once, both dropped by a change (a revocation, anywhere) at once.
            // A database that does not answer is a 503 to retry, not a verdict on the ticket.
            use switchboard_gateway::inbound::Refusal;
            let verified = state.gateway.verify_ticket(&presented).await.map_err(|r| match r {
                Refusal::Ticket(e) => ApiError::from(e),
                Refusal::Unavailable => {
                    ApiError::from(switchboard_domain::DomainError::Unavailable("the database is unreachable".into()))
                }
                _ => ApiError::from(TicketError::BadSignature),
            })?;
            // An OAuth access token is good for its one gateway URL, never for the runtime plane.
            if verified.authority.audience.is_some() {
                return Err(ApiError::WrongCredential {
                    detail: "an OAuth access token for a gateway URL cannot call runtime routes",
                    hint: "runtime routes take a session ticket minted with POST /v1/session-tickets",
                });
            }
            let tenant_id = verified.tenant;
            tracing::Span::current().record("tenant.id", tracing::field::display(tenant_id));
            Ok(Self { tenant_id, ticket: verified })
        })
    }
}
