//! The token endpoint (authorization code with PKCE S256; refresh with rotation and reuse
//! detection) and revocation (RFC 7009). Clients are public: `client_id` in the body.

use std::time::{Duration, SystemTime};

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::json;
use switchboard_domain::sign_in::Rotation;
use switchboard_domain::store::NewGatewayGrant;
use switchboard_domain::ticket::{self, TicketClaims};
use switchboard_domain::{AgentId, TenantId};
use switchboard_worker::changes::Change;

use super::{ACCESS_LIFE, CODE_PREFIX, Code, Data, REFRESH_LIFE_DAYS, REFRESH_PREFIX, now, oauth_error, random_token};
use crate::Inner;

#[derive(Debug, Default, Deserialize)]
pub(super) struct TokenForm {
    grant_type: Option<String>,
    code: Option<String>,
    redirect_uri: Option<String>,
    code_verifier: Option<String>,
    client_id: Option<String>,
    resource: Option<String>,
    refresh_token: Option<String>,
    token: Option<String>,
}

fn digest(token: &str) -> String {
    switchboard_domain::crypto::hex_digest(token.as_bytes())
}

fn invalid_grant(why: &str) -> HttpResponse {
    oauth_error(StatusCode::BAD_REQUEST, "invalid_grant", why)
}

/// What one token response carries before it is sent.
struct Issued {
    access: String,
    revocation_id: String,
    refresh: String,
}

impl Inner {
    /// A session ticket for (user, agent) bound to `resource`, and a fresh refresh token.
    async fn issue(
        &self,
        tenant: TenantId,
        user: &str,
        agent: AgentId,
        client_id: &str,
        resource: &str,
    ) -> Result<Issued, HttpResponse> {
        let key = self.runtime.store.tenant(tenant).signing_key().await.map_err(|e| super::unavailable(&e))?;
        let claims = TicketClaims {
            user_id: user.to_owned(),
            agents: vec![agent],
            expires_at: SystemTime::now() + Duration::from_secs(ACCESS_LIFE),
            subject: Some(format!("oauth_client:{client_id}")),
            max_delegation_depth: ticket::DEFAULT_MAX_DELEGATION_DEPTH,
            audience: Some(resource.to_owned()),
        };
        let (access, ids) = ticket::mint(tenant, &key, &claims).map_err(|_| {
            oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "the token could not be minted")
        })?;
        let refresh = random_token()
            .map(|r| format!("{REFRESH_PREFIX}{r}"))
            .ok_or_else(|| oauth_error(StatusCode::INTERNAL_SERVER_ERROR, "server_error", "no randomness"))?;
        Ok(Issued { access, revocation_id: ids.into_iter().next().unwrap_or_default(), refresh })
    }
}

fn token_response(issued: &Issued) -> HttpResponse {
    HttpResponse::Ok().insert_header(("cache-control", "no-store")).insert_header(("pragma", "no-cache")).json(json!({
        "access_token": issued.access,
        "token_type": "Bearer",
        "expires_in": ACCESS_LIFE,
        "refresh_token": issued.refresh,
    }))
}

/// `POST /oauth/{tenant}/token`.
pub(super) async fn token(gw: Data, path: web::Path<String>, form: web::Form<TokenForm>) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return oauth_error(StatusCode::NOT_FOUND, "not_found", "no such tenant"),
        Err(r) => return r,
    };
    let tenant = issuer.tenant.id;
    if issuer.idp.is_none() {
        return invalid_grant("this tenant no longer signs users in (no identity provider)");
    }
    let Some(client_id) = form.client_id.as_deref() else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is required (public clients send it in the body)",
        );
    };
    match form.grant_type.as_deref() {
        Some("authorization_code") => exchange_code(inner, tenant, client_id, &form).await,
        Some("refresh_token") => refresh(inner, tenant, client_id, &form).await,
        Some(other) => oauth_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            &format!(
                "grant_type `{}` is not supported; use authorization_code or refresh_token",
                other.chars().take(40).collect::<String>()
            ),
        ),
        None => oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "grant_type is required"),
    }
}

async fn exchange_code(inner: &Inner, tenant: TenantId, client_id: &str, form: &TokenForm) -> HttpResponse {
    let Some(presented) = form.code.as_deref() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code is required");
    };
    let Some(code) = inner.open::<Code>(tenant, "code", CODE_PREFIX, presented) else {
        return invalid_grant("the code is not valid here");
    };
    if code.expires_at <= now() {
        return invalid_grant("the code has expired");
    }
    if code.client_id != client_id {
        return invalid_grant("the code was issued to another client");
    }
    if form.redirect_uri.as_deref() != Some(code.redirect_uri.as_str()) {
        return invalid_grant("redirect_uri differs from the authorization request's");
    }
    let Some(verifier) = form.code_verifier.as_deref().filter(|v| (43..=128).contains(&v.len())) else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "code_verifier is required (PKCE)");
    };
    if switchboard_discovery::oauth::s256_challenge(verifier) != code.challenge {
        return invalid_grant("the code_verifier does not match the code_challenge");
    }
    if form.resource.as_deref().is_some_and(|r| r != code.resource) {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_target",
            "resource differs from the authorization request's",
        );
    }
    let issued = match inner.issue(tenant, &code.user, code.agent, client_id, &code.resource).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let grant = NewGatewayGrant {
        code_hash: &digest(presented),
        client_id,
        user_id: &code.user,
        agent_id: code.agent,
        resource: &code.resource,
        refresh_hash: &digest(&issued.refresh),
        access_revocation_id: &issued.revocation_id,
        refresh_expires_at: switchboard_domain::clock::now() + chrono::TimeDelta::days(REFRESH_LIFE_DAYS),
    };
    match inner.runtime.store.tenant(tenant).start_gateway_grant(&grant).await {
        Ok(Some(_)) => token_response(&issued),
        Ok(None) => {
            // The code was used before: what it gave is revoked (RFC 6749 §4.1.2).
            inner.runtime.changes.publish(Change::Tickets { tenant });
            invalid_grant("the code was used already")
        }
        Err(e) => super::unavailable(&e),
    }
}

async fn refresh(inner: &Inner, tenant: TenantId, client_id: &str, form: &TokenForm) -> HttpResponse {
    let Some(presented) = form.refresh_token.as_deref() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "refresh_token is required");
    };
    let store = inner.runtime.store.tenant(tenant);
    let hash = digest(presented);
    let grant = match store.gateway_grant_of_refresh(&hash).await {
        Ok(Some(g)) => g,
        Ok(None) => return invalid_grant("the refresh token is not valid"),
        Err(e) => return super::unavailable(&e),
    };
    if grant.client_id != client_id {
        return invalid_grant("the refresh token was issued to another client");
    }
    if form.resource.as_deref().is_some_and(|r| r != grant.resource) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_target", "a refresh cannot change the resource");
    }
    let issued = match inner.issue(tenant, &grant.user_id, grant.agent_id, client_id, &grant.resource).await {
        Ok(i) => i,
        Err(r) => return r,
    };
    let expires = switchboard_domain::clock::now() + chrono::TimeDelta::days(REFRESH_LIFE_DAYS);
    match store.rotate_gateway_refresh(grant.id, &hash, &digest(&issued.refresh), &issued.revocation_id, expires).await
    {
        Ok(Rotation::Rotated) => token_response(&issued),
        Ok(Rotation::Invalid) => invalid_grant("the refresh token is not valid"),
        Ok(Rotation::Reused { .. }) => {
            tracing::warn!(tenant.id = %tenant, client_id, user.id = %grant.user_id, "a rotated refresh token was presented again: its family is revoked");
            inner.runtime.changes.publish(Change::Tickets { tenant });
            invalid_grant("the refresh token was used already; every token of this sign-in is revoked")
        }
        Err(e) => super::unavailable(&e),
    }
}

/// `POST /oauth/{tenant}/revoke` (RFC 7009): a refresh token revokes its whole family, an access
/// token itself. The answer is 200 whatever the token was (§2.2), so nothing is learned from it.
pub(super) async fn revoke(gw: Data, path: web::Path<String>, form: web::Form<TokenForm>) -> HttpResponse {
    let inner = &gw.inner;
    let issuer = match inner.issuer(&path).await {
        Ok(Some(i)) => i,
        Ok(None) => return oauth_error(StatusCode::NOT_FOUND, "not_found", "no such tenant"),
        Err(r) => return r,
    };
    let tenant = issuer.tenant.id;
    let Some(token) = form.token.as_deref() else {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "token is required");
    };
    let store = inner.runtime.store.tenant(tenant);
    let done = if token.starts_with("sbt_") {
        match inner.verify(token).await {
            Ok(v) if v.tenant == tenant && v.authority.audience.is_some() => store
                .revoke_tickets(
                    &switchboard_domain::tenant::Actor::User(v.authority.user.clone()),
                    std::slice::from_ref(&v.revocation_id),
                )
                .await
                .map(|()| true),
            _ => Ok(false),
        }
    } else {
        store.revoke_gateway_refresh(&digest(token)).await.map(|ids| !ids.is_empty())
    };
    match done {
        Ok(revoked) => {
            if revoked {
                inner.runtime.changes.publish(Change::Tickets { tenant });
            }
            HttpResponse::Ok().insert_header(("cache-control", "no-store")).finish()
        }
        Err(e) => super::unavailable(&e),
    }
}
