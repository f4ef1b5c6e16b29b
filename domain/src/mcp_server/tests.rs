use serde_json::json;

use super::*;
use crate::validate::Policy;

const STRICT: Policy = Policy { allow_private_networks: false };

fn fields(err: DomainError) -> Vec<(String, &'static str)> {
    match err {
        DomainError::Invalid(errs) => errs.into_iter().map(|e| (e.field, e.code)).collect(),
        other => panic!("expected a validation error, got {other:?}"),
    }
}

fn stored(spec: McpServerSpec) -> McpServer {
    let secrets = spec.apply_secrets(&AuthSecrets::default());
    McpServer {
        id: McpServerId::new(),
        tenant_id: TenantId::new(),
        name: spec.name,
        slug: spec.slug.unwrap_or_else(|| "s".into()),
        description: spec.description,
        config: spec.config,
        secret_hints: secrets.hints(),
        discovery_result: None,
        created_at: crate::clock::now(),
        updated_at: crate::clock::now(),
    }
}

#[test]
fn accepts_every_auth_type_with_its_fields() {
    let bodies = [
        json!({"type": "none"}),
        json!({"type": "token", "auth_token": "tok_0123456789abcdef"}),
        json!({"type": "oauth_client_credentials", "client_id": "c", "client_secret": "s", "scopes": ["a"]}),
        json!({"type": "oauth_authorization_code_public_pkce"}),
        json!({"type": "oauth_authorization_code_public_pkce", "client_id": "c", "auth_url": "https://as.example.com/authorize",
               "token_url": "https://as.example.com/token", "register_url": "https://as.example.com/register",
               "scopes": ["read", "write"], "resource": "https://mcp.example.com/mcp"}),
        json!({"type": "oauth_authorization_code_confidential_pkce"}),
        json!({"type": "oauth_authorization_code_confidential_pkce", "client_id": "c", "client_secret": "s"}),
    ];
    for auth in bodies {
        let body = json!({"name": "Linear", "config": {"endpoint": "https://mcp.linear.app/mcp", "auth": auth}});
        let spec = validate_create(STRICT, &body).unwrap_or_else(|e| panic!("{auth}: {e}"));
        assert_eq!(spec.config.endpoint, "https://mcp.linear.app/mcp");
    }
}

#[test]
fn names_misplaced_fields_with_a_hint() {
    let err = validate_create(STRICT, &json!({"name": "x", "server_url": "https://a.example/mcp"})).err();
    let DomainError::Invalid(errs) = err.expect("error") else { panic!() };
    let e = errs.iter().find(|e| e.field == "server_url").expect("server_url named");
    assert_eq!(e.code, "unknown_field");
    assert!(e.hint.as_deref().is_some_and(|h| h.contains("config.endpoint")));
    assert!(errs.iter().any(|e| e.field == "config" && e.code == "required"));

    let f = fields(validate_create(STRICT, &json!({"name": "x", "endpoint": "https://a.example/mcp", "config": {"endpoint": "https://a.example/mcp", "auth": {"type": "none"}}})).expect_err("top-level endpoint"));
    assert_eq!(f, vec![("endpoint".into(), "unknown_field")]);
}

#[test]
fn reports_missing_and_wrong_auth_fields() {
    let cases = [
        (json!({"type": "bearer"}), ("config.auth.type", "invalid")),
        (json!({}), ("config.auth.type", "required")),
        (json!({"type": "token"}), ("config.auth.auth_token", "required")),
        (json!({"type": "oauth_client_credentials", "client_secret": "s"}), ("config.auth.client_id", "required")),
        (json!({"type": "oauth_client_credentials", "client_id": "c"}), ("config.auth.client_secret", "required")),
        (
            json!({"type": "oauth_authorization_code_confidential_pkce", "client_id": "c"}),
            ("config.auth.client_secret", "required"),
        ),
        (
            json!({"type": "oauth_authorization_code_public_pkce", "client_secret": "s"}),
            ("config.auth.client_secret", "not_allowed"),
        ),
        (json!({"type": "none", "auth_token": "t"}), ("config.auth.auth_token", "not_allowed")),
        (json!({"type": "none", "tokn": "t"}), ("config.auth.tokn", "unknown_field")),
        (
            json!({"type": "oauth_authorization_code_public_pkce", "scopes": "read write"}),
            ("config.auth.scopes", "invalid_type"),
        ),
        (
            json!({"type": "oauth_authorization_code_public_pkce", "scopes": ["ok", "has space"]}),
            ("config.auth.scopes[1]", "invalid"),
        ),
        (
            json!({"type": "oauth_authorization_code_public_pkce", "token_url": "http://as.example.com/token"}),
            ("config.auth.token_url", "insecure_url"),
        ),
        (
            json!({"type": "oauth_authorization_code_public_pkce", "resource": "https://a.example/mcp#frag"}),
            ("config.auth.resource", "invalid_url"),
        ),
    ];
    for (auth, (field, code)) in cases {
        let body = json!({"name": "x", "config": {"endpoint": "https://a.example/mcp", "auth": auth}});
        let got = fields(validate_create(STRICT, &body).expect_err("should fail"));
        assert!(got.contains(&(field.to_owned(), code)), "{auth}: expected {field}/{code}, got {got:?}");
    }
}

#[test]
fn checks_endpoint_and_headers() {
    let cases = [
        (json!({"endpoint": "mcp.example.com", "auth": {"type": "none"}}), "config.endpoint"),
        (json!({"endpoint": "https://u:p@mcp.example.com/", "auth": {"type": "none"}}), "config.endpoint"),
        (json!({"endpoint": "https://mcp.example.com/#x", "auth": {"type": "none"}}), "config.endpoint"),
        (json!({"endpoint": "http://127.0.0.1/mcp", "auth": {"type": "none"}}), "config.endpoint"),
        (json!({"auth": {"type": "none"}}), "config.endpoint"),
        (
            json!({"endpoint": "https://a.example/", "headers": {"Authorization": "Bearer x"}, "auth": {"type": "none"}}),
            "config.headers.Authorization",
        ),
        (
            json!({"endpoint": "https://a.example/", "headers": {"bad name": "x"}, "auth": {"type": "none"}}),
            "config.headers.bad name",
        ),
        (
            json!({"endpoint": "https://a.example/", "headers": {"X-A": "line\nbreak"}, "auth": {"type": "none"}}),
            "config.headers.X-A",
        ),
        (json!({"endpoint": "https://a.example/"}), "config.auth"),
    ];
    for (config, field) in cases {
        let got = fields(validate_create(STRICT, &json!({"name": "x", "config": config})).expect_err("should fail"));
        assert!(got.iter().any(|(f, _)| f == field), "{config}: expected {field}, got {got:?}");
    }
    let dev = Policy { allow_private_networks: true };
    assert!(
        validate_create(
            dev,
            &json!({"name": "x", "config": {"endpoint": "http://127.0.0.1:9/mcp", "auth": {"type": "none"}}})
        )
        .is_ok()
    );
}

#[test]
fn patch_keeps_omitted_secrets_and_revalidates_the_whole() {
    let create = json!({"name": "CC", "config": {"endpoint": "https://a.example/mcp",
        "auth": {"type": "oauth_client_credentials", "client_id": "c", "client_secret": "secret-value-1234"}}});
    let server = stored(validate_create(STRICT, &create).expect("valid"));

    // Renaming keeps the secret; so does sending back the masked form.
    for patch in
        [json!({"name": "CC2"}), json!({"config": {"auth": {"client_secret": {"set": true, "last4": "1234"}}}})]
    {
        let spec = validate_patch(STRICT, &server, &patch).expect("valid patch");
        assert_eq!(spec.client_secret, SecretChange::Keep);
        assert_eq!(spec.config.auth.client_id.as_deref(), Some("c"));
    }
    // Clearing a required secret is refused, as a create without it would be.
    let got = fields(
        validate_patch(STRICT, &server, &json!({"config": {"auth": {"client_secret": null}}})).expect_err("required"),
    );
    assert_eq!(got, vec![("config.auth.client_secret".into(), "required")]);
    // Changing the type replaces auth whole and drops the old secret.
    let spec = validate_patch(STRICT, &server, &json!({"config": {"auth": {"type": "none"}}})).expect("type change");
    assert_eq!(spec.config.auth.kind, AuthType::None);
    assert!(
        spec.apply_secrets(&AuthSecrets { client_secret: Some(Secret::new("x".into())), auth_token: None }).is_empty()
    );
    // Bad input in a patch is named like in a create.
    let got =
        fields(validate_patch(STRICT, &server, &json!({"server_url": "https://b.example"})).expect_err("unknown"));
    assert_eq!(got, vec![("server_url".into(), "unknown_field")]);
}
