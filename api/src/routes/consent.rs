//! `GET /service/mcp/consent/callback`: where the end user's browser lands after the provider's
//! consent page. Server-rendered, no third-party assets, never framed, no referrer.

use actix_web::{HttpResponse, get, web};
use serde::Deserialize;
use switchboard_worker::consent::ConsentOutcome;
use utoipa_actix_web::service_config::ServiceConfig;

use crate::state::AppState;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(consent_callback);
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct CallbackQuery {
    pub code: Option<String>,
    /// The `state` Switchboard put in the authorization URL: the tenant (32 hex digits), then a
    /// random part.
    #[param(required = true, pattern = "^[0-9a-fA-F]{32}[A-Za-z0-9_-]{1,400}$")]
    pub state: Option<String>,
    pub iss: Option<String>,
    pub error: Option<String>,
}

use switchboard_gateway::html_escape as escape;

/// The consent callback (browser). Renders what happened in plain words.
#[utoipa::path(tag = "runtime", params(CallbackQuery), responses((status = 200, content_type = "text/html", body = String), (status = 400, description = "The link is incomplete or not valid (a page), or its query string cannot be read (a problem)", content((String = "text/html"), (crate::error::Problem = "application/problem+json"))), (status = 404, description = "No consent in progress has this state (expired, already used, or never started)", content_type = "text/html", body = String)))]
#[get("/service/mcp/consent/callback")]
#[tracing::instrument(skip_all)]
pub async fn consent_callback(state: web::Data<AppState>, query: web::Query<CallbackQuery>) -> HttpResponse {
    let q = query.into_inner();
    // Its own task: a request cut off by its deadline must not stop the consent between the code
    // exchange and the write (the provider's grant would be live, and its tokens lost).
    let lifecycle = state.runtime.lifecycle.clone();
    let completion = tokio::spawn(async move {
        lifecycle.complete_consent(q.state.as_deref(), q.code.as_deref(), q.iss.as_deref(), q.error.as_deref()).await
    });
    let outcome = completion.await.unwrap_or_else(|e| {
        tracing::error!(error = %e, "a consent completion task failed");
        ConsentOutcome::failed("Something went wrong on our side. Start again from the app.")
    });
    if outcome.connected {
        // Its `connection.connected` event may have a webhook delivery to make.
        state.runtime.wakeups.wake();
    }
    let (title, body) = if outcome.connected {
        let server = escape(outcome.server_name.as_deref().unwrap_or("The server"));
        let agent = escape(outcome.agent_name.as_deref().unwrap_or("your agent"));
        (
            "Connected".to_owned(),
            format!(
                "<p><strong>{server}</strong> is now connected for <strong>{agent}</strong>.</p><p>You can close this window and return to the app.</p>"
            ),
        )
    } else {
        ("Not connected".to_owned(), format!("<p>{}</p>", escape(&outcome.message)))
    };
    // The return URL was matched exactly against the tenant's allow-list when the flow started.
    let (refresh, link) = match outcome.return_url.as_deref() {
        Some(url) => {
            let url = escape(url);
            (
                format!("<meta http-equiv=\"refresh\" content=\"3;url={url}\">"),
                format!("<p><a href=\"{url}\">Return to the app</a></p>"),
            )
        }
        None => (String::new(), String::new()),
    };
    let body = format!("{body}{link}");
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">{refresh}<title>{title}</title>\
         <style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}h1{{font-size:1.4rem}}</style></head>\
         <body><h1>{title}</h1>{body}</body></html>"
    );
    let mut res = if outcome.connected {
        HttpResponse::Ok()
    } else if outcome.unknown {
        HttpResponse::NotFound()
    } else {
        HttpResponse::BadRequest()
    };
    res.content_type("text/html; charset=utf-8")
        .insert_header(("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"))
        .insert_header(("referrer-policy", "no-referrer"))
        .insert_header(("x-content-type-options", "nosniff"))
        .insert_header(("cache-control", "no-store"))
        .body(html)
}
