use super::*;

#[test]
fn iss_follows_the_rfc_9207_table() {
    let rec = "https://as.example.com";
    assert_eq!(check_iss(rec, true, Some(rec)), Ok(()));
    assert_eq!(check_iss(rec, true, None), Err(IssError::Missing));
    assert_eq!(check_iss(rec, false, Some("https://evil.example.com")), Err(IssError::Mismatch));
    assert_eq!(check_iss(rec, false, None), Ok(()));
    // No normalization: a trailing slash, a case change or a default port is another issuer.
    for variant in ["https://as.example.com/", "https://AS.example.com", "https://as.example.com:443"] {
        assert_eq!(check_iss(rec, true, Some(variant)), Err(IssError::Mismatch), "{variant}");
    }
}

#[test]
fn pkce_challenges_are_s256() {
    // Vector computed independently (Python: urlsafe_b64encode(sha256(v)).rstrip("=")).
    assert_eq!(
        s256_challenge("dBjftJeZ4CVP-mJ92K9qWyhsxW5yTcXPS5MtM0H9OWc"),
        "4LJT_lw8-oaTrlRawghSHRlTmHSYc0RpT5noKKqCD7Q"
    );
    let (v, c) = pkce_pair([7u8; 32]);
    assert_eq!(v.len(), 43);
    assert_eq!(c, s256_challenge(&v));
}

#[test]
fn authorize_urls_carry_every_parameter() {
    let auth = Url::parse("https://as.example.com/authorize?tenant=x").expect("url");
    let url = authorize_url(&AuthorizeRequest {
        auth_url: &auth,
        client_id: "cid",
        redirect_uri: "https://sb.example.com/service/mcp/consent/callback",
        scopes: &["read".into(), "write".into()],
        state: "st",
        code_challenge: "ch",
        resource: "https://mcp.example.com/mcp",
    });
    let q: std::collections::HashMap<_, _> = url.query_pairs().into_owned().collect();
    for (k, v) in [
        ("tenant", "x"),
        ("response_type", "code"),
        ("client_id", "cid"),
        ("state", "st"),
        ("code_challenge", "ch"),
        ("code_challenge_method", "S256"),
        ("resource", "https://mcp.example.com/mcp"),
        ("scope", "read write"),
    ] {
        assert_eq!(q.get(k).map(String::as_str), Some(v), "{k}");
    }
}

#[test]
fn basic_also_sends_the_client_id_in_the_body() {
    let (body, h) =
        with_client_auth(&[("grant_type", "refresh_token")], &ClientAuth::Basic { client_id: "a b", secret: "s" });
    assert_eq!(body, "grant_type=refresh_token&client_id=a+b");
    assert!(h.get("authorization").is_some_and(|v| v.is_sensitive()));
    let (body, h) = with_client_auth(&[], &ClientAuth::Post { client_id: "a", secret: "s" });
    assert_eq!(body, "client_id=a&client_secret=s");
    assert!(h.get("authorization").is_none());
}

#[test]
fn methods_are_chosen_from_the_registration_then_the_metadata() {
    let list = |m: &[&str]| m.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
    use AuthMethod::{ClientSecretBasic as Basic, ClientSecretPost as Post};
    assert_eq!(AuthMethod::choose(None, false, &list(&["client_secret_basic"])), AuthMethod::None);
    assert_eq!(AuthMethod::choose(None, true, &[]), Basic, "RFC 8414's default");
    assert_eq!(AuthMethod::choose(None, true, &list(&["none", "client_secret_post"])), Post);
    assert_eq!(
        AuthMethod::choose(None, true, &list(&["client_secret_post", "client_secret_basic"])),
        Post,
        "the provider's order"
    );
    assert_eq!(AuthMethod::choose(None, true, &list(&["client_secret_basic", "client_secret_post"])), Basic);
    assert_eq!(AuthMethod::choose(None, true, &list(&["private_key_jwt"])), Basic);
    assert_eq!(AuthMethod::choose(Some("client_secret_post"), true, &list(&["client_secret_basic"])), Post);
    assert_eq!(AuthMethod::choose(Some("private_key_jwt"), true, &list(&["client_secret_basic"])), Basic);
    assert_eq!(Basic.fallback(&list(&["client_secret_basic", "client_secret_post"])), Some(Post));
    assert_eq!(Post.fallback(&[]), Some(Basic), "nothing advertised: one more try is cheap");
    assert_eq!(Basic.fallback(&list(&["client_secret_basic"])), None);
    assert_eq!(AuthMethod::None.fallback(&[]), None);
    for m in [Basic, Post, AuthMethod::None] {
        assert_eq!(AuthMethod::parse(m.as_str()), Some(m));
    }
}

#[test]
fn token_responses_are_validated() {
    assert!(validate(&serde_json::json!({"access_token": "a", "token_type": "Bearer", "expires_in": 3600})).is_ok());
    assert!(validate(&serde_json::json!({"token_type": "Bearer"})).is_err());
    assert!(validate(&serde_json::json!({"access_token": "a", "token_type": "mac"})).is_err());
    assert!(validate(&serde_json::json!({"access_token": "a", "expires_in": -5})).is_err());
    assert!(validate(&serde_json::json!({"access_token": "x".repeat(20_000)})).is_err());
    assert_eq!(
        validate(&serde_json::json!({"access_token": "a", "expires_in": "60"})).map(|t| t.expires_in),
        Ok(Some(60))
    );
}

mod properties {
    use proptest::prelude::*;

    use super::super::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(512))]

        /// Whatever a token endpoint answers, reading it never panics; what is accepted is
        /// bounded, and an error code shown to a person is short and plain.
        #[test]
        fn token_responses_are_read_safely(body in crate::arbitrary::body()) {
            let json: Value = serde_json::from_slice(&body).unwrap_or_default();
            let code = error_code(&json);
            prop_assert!(code.len() < 64 && code.chars().all(|c| c.is_ascii_lowercase() || c == '_' || c == ' '));
            if let Ok(t) = validate(&json) {
                prop_assert!(!t.access_token.is_empty() && t.access_token.len() <= 16 * 1024);
                prop_assert!(t.expires_in.is_none_or(|e| e <= 10 * 365 * 24 * 3600));
            }
        }

        /// Client credentials of any Unicode go into a body and a Basic header that parse back.
        #[test]
        fn any_client_credentials_make_a_valid_request(id in "\\PC{1,40}", secret in "\\PC{1,40}") {
            for auth in [ClientAuth::Basic { client_id: &id, secret: &secret }, ClientAuth::Post { client_id: &id, secret: &secret }] {
                let (body, h) = with_client_auth(&[("grant_type", "refresh_token")], &auth);
                let form: Vec<(String, String)> = url::form_urlencoded::parse(body.as_bytes()).into_owned().collect();
                prop_assert!(form.contains(&("client_id".to_owned(), id.clone())));
                if matches!(auth, ClientAuth::Basic { .. }) {
                    prop_assert!(h.get("authorization").is_some());
                }
            }
        }
    }
}

/// A provider's `expires_in` beyond any real lifetime is refused where it is read: it once
/// reached `Instant + Duration` in the client-credentials cache and panicked there.
#[test]
fn an_expires_in_beyond_ten_years_is_refused_where_it_is_parsed() {
    for huge in [serde_json::json!(18_446_744_073_709_551_615u64), serde_json::json!("18446744073709551615")] {
        assert!(validate(&serde_json::json!({"access_token": "a", "expires_in": huge})).is_err());
    }
}

#[test]
fn a_grant_the_client_may_not_use_is_unauthorized_client_in_every_dialect() {
    let oidc_provider = serde_json::json!({"error": "invalid_request", "error_description": "requested grant type is not allowed for this client"});
    assert_eq!(refusal_code(&oidc_provider), "unauthorized_client");
    assert_eq!(refusal_code(&serde_json::json!({"error": "unauthorized_client"})), "unauthorized_client");
    let other = serde_json::json!({"error": "invalid_request", "error_description": "missing code_verifier"});
    assert_eq!(refusal_code(&other), "invalid_request");
}
