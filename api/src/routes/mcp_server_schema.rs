//! The JSON Schema of `config.auth` and `config.headers` on create, written out as the validators
//! in `domain::mcp_server::validation` apply them: one shape per auth `type` (a field another type
//! takes may be sent as `null`, nothing else), the confidential client's `client_id` and
//! `client_secret` together or not at all, header names as RFC 9110 tokens. Kept beside the
//! route so that a change to either is seen with the other; the committed `openapi.json` (its
//! drift test) shows what these produce.

use serde_json::{Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::Schema;

/// Every field but `type`.
const FIELDS: [&str; 8] =
    ["auth_token", "client_id", "client_secret", "auth_url", "token_url", "register_url", "scopes", "resource"];

fn url() -> Value {
    json!({"type": "string", "maxLength": 2048,
        "pattern": "^https://([A-Za-z0-9-]+\\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"})
}

fn field(name: &str) -> Value {
    match name {
        "auth_token" | "client_secret" => {
            json!({"type": "string", "minLength": 1, "maxLength": 8192, "writeOnly": true})
        }
        "client_id" => json!({"type": "string", "minLength": 1, "maxLength": 512, "pattern": "^[^\\x00]*$"}),
        "scopes" => json!({"type": "array", "maxItems": 100, "uniqueItems": true,
            "items": {"type": "string", "pattern": "^[\\x21\\x23-\\x5b\\x5d-\\x7e]{1,256}$"}}),
        // RFC 8707: an absolute URI; http is allowed (it names, it is not fetched).
        "resource" => json!({"type": "string", "maxLength": 2048,
            "pattern": "^https?://([A-Za-z0-9-]+\\.)+[A-Za-z][A-Za-z0-9-]*(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?(/([A-Za-z0-9._~!$&'()+,;=:@/-]|%[0-9A-Fa-f]{2})*)?(\\?([A-Za-z0-9._~!$&'()+,;=:@/?-]|%[0-9A-Fa-f]{2})*)?$"}),
        _ => url(),
    }
}

/// One shape: `kind`, the fields it takes (`required` ones may not be null), every other field null.
fn shape(kind: &str, takes: &[&str], required: &[&str], null_only: &[&str]) -> Value {
    let mut props = serde_json::Map::new();
    props.insert("type".into(), json!({"type": "string", "enum": [kind]}));
    for f in FIELDS {
        let schema = if takes.contains(&f) && !null_only.contains(&f) {
            if required.contains(&f) { field(f) } else { json!({"oneOf": [field(f), {"type": "null"}]}) }
        } else {
            json!({"type": "null"})
        };
        props.insert(f.into(), schema);
    }
    let mut req = vec!["type"];
    req.extend_from_slice(required);
    json!({"type": "object", "title": kind, "properties": props, "required": req, "additionalProperties": false})
}

/// `config.auth` on create.
pub fn auth() -> impl Into<RefOr<Schema>> {
    const CODE: [&str; 6] = ["client_id", "auth_url", "token_url", "register_url", "scopes", "resource"];
    let confidential: Vec<&str> = CODE.iter().copied().chain(["client_secret"]).collect();
    let doc = json!({"description": "Which fields apply depends on `type`; a field of another type may be sent as null. Secrets are write-only.",
        "oneOf": [
        shape("none", &[], &[], &[]),
        shape("token", &["auth_token"], &["auth_token"], &[]),
        shape("oauth_client_credentials", &["client_id", "client_secret", "token_url", "scopes", "resource"], &["client_id", "client_secret"], &[]),
        shape("oauth_authorization_code_public_pkce", &CODE, &[], &[]),
        // Confidential: a client given by hand (id and secret), or none (Switchboard registers one).
        shape("oauth_authorization_code_confidential_pkce", &confidential, &["client_id", "client_secret"], &[]),
        shape("oauth_authorization_code_confidential_pkce", &confidential, &[], &["client_id", "client_secret"]),
    ]});
    to_schema(doc)
}

/// `config.headers`: up to 32 extra, non-secret headers. The names Switchboard sets itself
/// (`Authorization`, `Host`, `Content-Type`, `Accept`, `Mcp-Session-Id`, …) are refused too; the
/// description says so, since OpenAPI's `propertyNames` cannot say "not these" here.
pub fn headers() -> impl Into<RefOr<Schema>> {
    use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, Type};
    let value = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[\\t\\x20-\\x7e]{0,4096}$"));
    let name = ObjectBuilder::new().schema_type(Type::String).pattern(Some("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,128}$"));
    RefOr::T(Schema::Object(
        ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::SchemaType::from_iter([Type::Object, Type::Null]))
            .description(Some(
                "Extra, non-secret headers sent with every request; not Authorization, Host, Content-Length, Content-Type, Accept, Connection, Transfer-Encoding, Mcp-Session-Id, Mcp-Protocol-Version or Cookie, which Switchboard sets itself",
            ))
            .max_properties(Some(32))
            .property_names(Some(name))
            .additional_properties(Some(AdditionalProperties::RefOr(RefOr::T(Schema::Object(value.build())))))
            .build(),
    ))
}

fn to_schema(doc: Value) -> RefOr<Schema> {
    serde_json::from_value::<Schema>(doc).map_or_else(|_| RefOr::T(Schema::default()), RefOr::T)
}
