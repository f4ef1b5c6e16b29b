//! The OpenAPI document: collected from the route registrations by `utoipa_actix_web`, with the
//! security schemes and the shared problem responses added here once.

use actix_web::App;
use actix_web::dev::{ServiceFactory, ServiceRequest};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi as Spec, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi};
use utoipa_actix_web::AppExt as _;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchboard",
        description = "Control plane connecting AI agents to remote MCP servers. Errors are RFC 9457 problem documents (`application/problem+json`) with a stable `code`.",
        license(name = "Apache-2.0")
    ),
    components(schemas(crate::error::Problem)),
    tags(
        (name = "mcp-servers", description = "The registry of MCP servers"),
        (name = "agents", description = "Agents and the MCP servers attached to them"),
        (name = "admin", description = "Tenants and API keys (platform admin token)"),
        (name = "audit", description = "Who changed what, per tenant"),
        (name = "session-tickets", description = "Biscuit tickets for the runtime plane"),
        (name = "settings", description = "Per-tenant settings"),
        (name = "connections", description = "Consent grants: one per user, agent and server"),
        (name = "runtime", description = "What an end user's agent session sees (session ticket)"),
        (name = "oauth", description = "Documents served to authorization servers"),
        (name = "ops", description = "Health, readiness, metrics")
    ),
    modifiers(&Security)
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, spec: &mut Spec) {
        let components = spec.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("A tenant API key, `sb_…`")).build(),
            ),
        );
        components.add_security_scheme(
            "session_ticket",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("A session ticket, `sbt_…`"))
                    .build(),
            ),
        );
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new().scheme(HttpAuthScheme::Bearer).description(Some("SWITCHBOARD_ADMIN_TOKEN")).build(),
            ),
        );
    }
}

/// Adds the problem responses every operation can return, so no handler has to list them. Runs
/// after the paths were collected from the route registrations.
pub fn add_problem_responses(spec: &mut Spec) {
    {
        let problem = || {
            ResponseBuilder::new()
                .description("A problem document (RFC 9457)")
                .content(
                    "application/problem+json",
                    ContentBuilder::new().schema(Some(utoipa::openapi::Ref::from_schema_name("Problem"))).build(),
                )
                .build()
        };
        for item in spec.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete];
            for op in ops.into_iter().flatten() {
                // The rule `idempotency::key` enforces, stated once for every operation.
                for param in op.parameters.iter_mut().flatten() {
                    if param.name == "Idempotency-Key" {
                        param.schema = Some(RefOr::T(utoipa::openapi::schema::Schema::Object(
                            utoipa::openapi::schema::ObjectBuilder::new()
                                .schema_type(utoipa::openapi::schema::Type::String)
                                .pattern(Some("^[\\x21-\\x7e]{1,255}$"))
                                .build(),
                        )));
                    }
                }
                let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
                let mut add = |code: &str| {
                    op.responses.responses.entry(code.to_owned()).or_insert_with(|| RefOr::T(problem()));
                };
                if secured {
                    add("401");
                    add("403");
                    add("404");
                }
                add("4XX");
                add("5XX");
            }
        }
    }
}

/// Registers every route on `app` and returns it with the OpenAPI document collected from them.
pub fn with_routes<T>(app: App<T>) -> (App<T>, Spec)
where
    T: ServiceFactory<ServiceRequest, Config = (), Error = actix_web::Error, InitError = ()>,
{
    let (app, mut spec) =
        app.into_utoipa_app().openapi(ApiDoc::openapi()).configure(crate::routes::configure).split_for_parts();
    add_problem_responses(&mut spec);
    (app, spec)
}

/// The document as the running server serves it.
#[must_use]
pub fn spec() -> Spec {
    with_routes(actix_web::App::new()).1
}

/// The document as committed in `openapi/openapi.json`.
pub fn spec_json() -> String {
    let mut text = spec().to_pretty_json().unwrap_or_default();
    text.push('\n');
    text
}
