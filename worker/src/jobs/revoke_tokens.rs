//! `revoke_tokens`: RFC 7009 revocation of a disconnected grant's refresh token, then its access
//! token, at the provider's revocation endpoint; the sealed tokens go with the job's payload once
//! it ends.

use base64::Engine as _;
use switchboard_discovery::Fetcher;
use switchboard_discovery::oauth::{self, TokenError};
use switchboard_domain::DomainError;
use switchboard_domain::clock::Reading;
use switchboard_domain::connection::GrantKey;
use switchboard_domain::job::RevokeTokens;
use switchboard_domain::store::{ClaimedJob, JobEnd, Store};
use url::Url;

use super::retry::retry_at;
use crate::client_auth::ClientCredentials;

pub(super) async fn run(
    store: &Store,
    fetcher: &Fetcher,
    job: &ClaimedJob,
    spec: &RevokeTokens,
    clock: &Reading,
) -> Result<JobEnd, DomainError> {
    let store = store.tenant(job.tenant_id);
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.decode(s).ok();
    let Some(sealed) = b64(&spec.sealed) else {
        return Ok(JobEnd::Dead { error: "the job's sealed tokens are not base64".into() });
    };
    let key = GrantKey {
        tenant_id: job.tenant_id,
        user_id: spec.user_id.clone(),
        agent_id: spec.agent_id,
        mcp_server_id: spec.mcp_server_id,
    };
    let tokens = store.open_token_set(&key, &sealed)?;
    // What revoking needs was snapshotted when the grant was revoked (its server may be gone by
    // now); jobs queued before that snapshot existed read the server instead.
    let (url, creds) = if let Some(client_id) = &spec.client_id {
        let secret = match spec.client_secret.as_deref().and_then(b64) {
            Some(sealed) => Some(store.open_job_secret(job.id, &sealed)?),
            None => None,
        };
        let creds = ClientCredentials::from_parts(
            client_id.clone().unwrap_or_default(),
            secret,
            spec.auth_method(),
            spec.token_endpoint_auth_methods_supported.clone(),
        );
        (spec.revocation_url.clone(), creds)
    } else {
        let Ok(server) = store.get_mcp_server(key.mcp_server_id).await else {
            return Ok(JobEnd::Dead { error: "the server was deleted before its tokens could be revoked".into() });
        };
        (server.facts().revocation_url.clone(), ClientCredentials::of(&store, &server).await?)
    };
    let Some(url) = url.and_then(|u| Url::parse(&u).ok()) else {
        // The provider offers no revocation: purging the tokens here is all there is to do.
        return Ok(JobEnd::Done);
    };
    let mut steps = Vec::new();
    let pending = [("refresh_token", tokens.refresh_token.as_ref()), ("access_token", Some(&tokens.access_token))];
    for (hint, token) in pending {
        let Some(token) = token else { continue };
        let answer =
            oauth::revoke(fetcher, &url, &creds.auth(), creds.advertised(), token.expose(), hint, &mut steps).await;
        match answer {
            Ok(_) => {}
            // RFC 7009 §2.2.1: this provider cannot revoke this kind of token; move on.
            Err(TokenError::Refused(code)) if code == "unsupported_token_type" => {}
            Err(TokenError::Transient { message, retry_after }) => {
                return Ok(JobEnd::Retry { at: retry_at(clock, job.attempts, retry_after), error: message });
            }
            Err(e) => return Ok(JobEnd::Dead { error: e.to_string() }),
        }
    }
    Ok(JobEnd::Done)
}
