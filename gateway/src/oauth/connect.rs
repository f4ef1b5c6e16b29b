//! `GET /oauth/{tenant}/connect?request=sbx_…`: a gateway connect link, for a tenant that signs
//! its users in. The MCP spec requires that whoever opens a connect link is the user it was made
//! for; otherwise an attacker's link, opened by a victim, would link the victim's account to the
//! attacker's agent. The tenant's app could vouch for its signed-in user (`…/confirm`); here the
//! browser's own sign-in does: signed in as the link's user, the provider's consent starts at
//! once; not signed in, the user signs in first and comes back; signed in as someone else, the
//! link is refused.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Deserialize;
use switchboard_worker::consent::ConnectOutcome;

use super::flow::to_identity_provider;
use super::{Data, PENDING_LIFE, Pending, now, page, random_token};
use crate::connect::{self, RequestError};

#[derive(Debug, Deserialize)]
pub(super) struct ConnectQuery {
    request: String,
}

pub(super) async fn connect(
    gw: Data,
    req: HttpRequest,
    path: web::Path<String>,
    q: web::Query<ConnectQuery>,
) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return page(StatusCode::NOT_FOUND, "Link not valid", "there is no such organisation"),
        Err(r) => return r,
    };
    let request = match connect::open(inner.runtime.store.envelope(), &q.request) {
        Ok(r) if r.tenant == issuer.tenant.id => r,
        Ok(_) | Err(RequestError::Invalid) => {
            return page(StatusCode::BAD_REQUEST, "Link not valid", &RequestError::Invalid.to_string());
        }
        Err(e) => return page(StatusCode::BAD_REQUEST, "Link expired", &e.to_string()),
    };
    let Some(idp) = issuer.idp.clone() else {
        return page(
            StatusCode::OK,
            "Connect from your app",
            "This link connects a service for your agent. For your safety it only works from the app you use the agent in: go back to it and confirm there.",
        );
    };
    match inner.signed_in(&req, issuer.tenant.id, &idp) {
        Some(s) if s.user == request.user => {}
        Some(_) => {
            tracing::warn!(tenant.id = %issuer.tenant.id, "a connect link opened by another signed-in user was refused");
            return page(
                StatusCode::FORBIDDEN,
                "This link is not yours",
                "This connect link was made for another user. Ask your agent again from your own account.",
            );
        }
        None => {
            let (Some(nonce), Some(browser), Ok(seed)) =
                (random_token(), random_token(), switchboard_domain::crypto::random_bytes::<32>())
            else {
                return page(StatusCode::INTERNAL_SERVER_ERROR, "Sign-in failed", "no randomness");
            };
            let (verifier, _) = switchboard_discovery::oauth::pkce_pair(seed);
            let pending = Pending {
                client_id: String::new(),
                client_name: String::new(),
                redirect_uri: String::new(),
                state: None,
                challenge: String::new(),
                resource: String::new(),
                agent: request.agent,
                agent_name: String::new(),
                server_name: String::new(),
                nonce,
                verifier,
                browser,
                user: None,
                expires_at: now() + PENDING_LIFE,
                connect: Some(q.request.clone()),
            };
            return to_identity_provider(inner, &path, &issuer, &idp, &pending);
        }
    }
    match inner.runtime.lifecycle.connect(request.key(), None).await {
        Ok(ConnectOutcome::PendingConsent { auth_url, .. }) => HttpResponse::Found()
            .insert_header(("location", auth_url))
            .insert_header(("cache-control", "no-store"))
            .finish(),
        Ok(ConnectOutcome::Connected) => {
            page(StatusCode::OK, "Connected", "This service is connected. Go back to your MCP client and try again.")
        }
        Err(e) => {
            tracing::warn!(tenant.id = %issuer.tenant.id, error = %switchboard_domain::error::chain(&e), "connect from a link failed");
            page(
                StatusCode::BAD_GATEWAY,
                "Could not connect",
                "the connection could not be started; try again from your MCP client",
            )
        }
    }
}
