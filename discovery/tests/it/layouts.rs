//! Every metadata layout of the conformance suite, plus the ways metadata goes wrong.

use serde_json::json;
use switchboard_discovery::{Discoverer, DiscoveryResult, Fetcher, Limits, NetworkPolicy};
use url::Url;

use crate::fake::{Fake, Route};

const PRM_PATH: &str = "/.well-known/oauth-protected-resource/mcp";
const PRM_ROOT: &str = "/.well-known/oauth-protected-resource";
const AS_ROOT: &str = "/.well-known/oauth-authorization-server";
const OIDC_ROOT: &str = "/.well-known/openid-configuration";

pub fn discoverer() -> Discoverer {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let policy = NetworkPolicy { allow_private_networks: true, allow: vec![] };
    Discoverer::new(Fetcher::new(policy, Limits::default()).expect("fetcher"))
}

pub fn as_metadata(issuer: &str) -> serde_json::Value {
    json!({
        "issuer": issuer,
        "authorization_endpoint": format!("{issuer}/authorize"),
        "token_endpoint": format!("{issuer}/token"),
        "registration_endpoint": format!("{issuer}/register"),
        "code_challenge_methods_supported": ["S256"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": ["openid", "offline_access"],
    })
}

fn challenge(rs: &Fake, header: &str) {
    rs.route("POST", "/mcp", Route::json(401, json!({"error": "unauthorized"})).header("www-authenticate", header));
}

fn prm(rs: &Fake, path: &str, resource: &str, issuer: &str) {
    rs.route("GET", path, Route::json(200, json!({"resource": resource, "authorization_servers": [issuer], "scopes_supported": ["mcp:read", "mcp:write"]})));
}

async fn run(rs: &Fake) -> DiscoveryResult {
    discoverer().discover(&Url::parse(&format!("{}/mcp", rs.base)).expect("url")).await
}

fn trap(server: &Fake, path: &str) {
    server.route("GET", path, Route::json(200, json!({"trap": "this URL must not be requested"})));
}

#[tokio::test]
async fn header_prm_and_root_issuer() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, &format!(r#"Bearer resource_metadata="{}{PRM_PATH}", scope="mcp:read""#, rs.base));
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    trap(&rs, PRM_ROOT);
    auth.route("GET", AS_ROOT, Route::json(200, as_metadata(&auth.base)));
    let r = run(&rs).await;
    assert_eq!(
        r.message,
        format!("OAuth authorization code with PKCE through {}; it supports dynamic client registration", auth.base)
    );
    assert!(r.requires_auth);
    assert_eq!(r.recommended_auth_mode.as_deref(), Some("oauth_authorization_code_public_pkce"));
    assert!(r.authorization_code_usable);
    assert_eq!(r.issuer.as_deref(), Some(auth.base.as_str()));
    assert_eq!(r.auth_url, Some(format!("{}/authorize", auth.base)));
    assert_eq!(r.token_url, Some(format!("{}/token", auth.base)));
    assert_eq!(r.register_url, Some(format!("{}/register", auth.base)));
    assert_eq!(r.resource, Some(format!("{}/mcp", rs.base)));
    assert_eq!(r.scopes, ["mcp:read"]);
    assert_eq!(r.scopes_source, "challenge");
    assert_eq!(r.resource_metadata_url, Some(format!("{}{PRM_PATH}", rs.base)));
    assert_eq!(r.authorization_servers, std::slice::from_ref(&auth.base));
    assert_eq!(r.code_challenge_methods_supported, ["S256"]);
    assert_eq!(r.spec_version.as_deref(), Some("2025-11-25"));
    assert_eq!(rs.hits(PRM_ROOT), 0, "the root PRM is a trap when the header names one");
    assert_eq!(rs.hits(PRM_PATH), 1, "the speculative fetch is reused, not repeated");
    // probe ‖ PRM, then both AS candidates at once: four requests, two round trips.
    assert_eq!(r.steps.len(), 4, "{:#?}", r.steps);
    assert!(r.steps.iter().all(|s| s.ms < 5_000));
}

#[tokio::test]
async fn path_prm_and_oidc_only_issuer() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    trap(&rs, PRM_ROOT);
    auth.route("GET", OIDC_ROOT, Route::json(200, as_metadata(&auth.base)));
    let r = run(&rs).await;
    assert_eq!(r.issuer.as_deref(), Some(auth.base.as_str()), "{}", r.message);
    assert_eq!(r.scopes, ["mcp:read", "mcp:write"]);
    assert_eq!(r.scopes_source, "resource_metadata");
    assert_eq!(rs.hits(PRM_ROOT), 0);
    assert_eq!(auth.hits(AS_ROOT), 1);
    assert_eq!(auth.hits(OIDC_ROOT), 1);
}

#[tokio::test]
async fn root_prm_and_issuer_with_a_path() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, r#"Bearer realm="mcp""#);
    let issuer = format!("{}/tenant1", auth.base);
    prm(&rs, PRM_ROOT, &rs.base, &issuer);
    trap(&auth, AS_ROOT);
    auth.route("GET", "/.well-known/oauth-authorization-server/tenant1", Route::json(200, as_metadata(&issuer)));
    let r = run(&rs).await;
    assert_eq!(r.issuer.as_deref(), Some(issuer.as_str()), "{}", r.message);
    assert_eq!(r.resource.as_deref(), Some(rs.base.as_str()));
    assert!(r.warnings.iter().any(|w| w.contains("prefix")), "{:?}", r.warnings);
    assert_eq!(rs.hits(PRM_PATH), 1);
    assert_eq!(rs.hits(PRM_ROOT), 1);
    assert_eq!(auth.hits(AS_ROOT), 0, "never the root AS metadata for an issuer with a path");
}

#[tokio::test]
async fn custom_prm_location_and_oidc_path_appending() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, &format!(r#"Bearer resource_metadata="{}/custom/metadata/location""#, rs.base));
    let issuer = format!("{}/tenant1", auth.base);
    prm(&rs, "/custom/metadata/location", &format!("{}/mcp", rs.base), &issuer);
    trap(&rs, PRM_ROOT);
    trap(&auth, AS_ROOT);
    auth.route("GET", "/tenant1/.well-known/openid-configuration", Route::json(200, as_metadata(&issuer)));
    let r = run(&rs).await;
    assert_eq!(r.issuer.as_deref(), Some(issuer.as_str()), "{}", r.message);
    assert_eq!(r.resource_metadata_url, Some(format!("{}/custom/metadata/location", rs.base)));
    assert_eq!(rs.hits(PRM_ROOT), 0);
    assert_eq!(auth.hits(AS_ROOT), 0);
    assert_eq!(auth.hits("/.well-known/oauth-authorization-server/tenant1"), 1);
    assert_eq!(auth.hits("/.well-known/openid-configuration/tenant1"), 1);
}

#[tokio::test]
async fn mismatched_resource_is_not_used() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, &format!(r#"Bearer resource_metadata="{}{PRM_PATH}""#, rs.base));
    prm(&rs, PRM_PATH, "https://evil.example.com/mcp", &auth.base);
    auth.route("GET", AS_ROOT, Route::json(200, as_metadata(&auth.base)));
    let r = run(&rs).await;
    assert!(r.message.contains("https://evil.example.com/mcp") && r.message.contains("not used"), "{}", r.message);
    assert_eq!(r.auth_url, None);
    assert_eq!(r.recommended_auth_mode, None);
    assert_eq!(auth.total_hits(), 0, "no authorization server is contacted for a foreign resource");
}

#[tokio::test]
async fn mismatched_issuer_is_not_used() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    auth.route("GET", AS_ROOT, Route::json(200, as_metadata("https://attacker.example.com")));
    let r = run(&rs).await;
    assert!(r.message.contains("https://attacker.example.com"), "{}", r.message);
    assert_eq!(r.token_url, None);
    assert_eq!(r.issuer, None);
}

#[tokio::test]
async fn missing_pkce_makes_the_code_flow_unusable() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    let mut meta = as_metadata(&auth.base);
    meta.as_object_mut().expect("object").remove("code_challenge_methods_supported");
    auth.route("GET", AS_ROOT, Route::json(200, meta));
    let r = run(&rs).await;
    assert!(!r.authorization_code_usable);
    assert_eq!(r.recommended_auth_mode, None);
    assert!(r.warnings.iter().any(|w| w.contains("code_challenge_methods_supported")), "{:?}", r.warnings);
}

#[tokio::test]
async fn confidential_and_client_credentials_recommendations() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    let mut meta = as_metadata(&auth.base);
    meta["token_endpoint_auth_methods_supported"] = json!(["client_secret_basic"]);
    auth.route("GET", AS_ROOT, Route::json(200, meta.clone()));
    assert_eq!(run(&rs).await.recommended_auth_mode.as_deref(), Some("oauth_authorization_code_confidential_pkce"));

    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    meta["issuer"] = json!(auth.base);
    meta["token_endpoint"] = json!(format!("{}/token", auth.base));
    meta["grant_types_supported"] = json!(["client_credentials"]);
    auth.route("GET", AS_ROOT, Route::json(200, meta));
    assert_eq!(run(&rs).await.recommended_auth_mode.as_deref(), Some("oauth_client_credentials"));
}

#[tokio::test]
async fn legacy_servers_without_protected_resource_metadata() {
    let rs = Fake::start();
    challenge(&rs, "Bearer");
    rs.route("GET", AS_ROOT, Route::json(200, as_metadata(&rs.base)));
    let r = run(&rs).await;
    assert_eq!(r.spec_version.as_deref(), Some("2025-03-26"), "{}", r.message);
    assert_eq!(r.auth_url, Some(format!("{}/authorize", rs.base)));
    assert_eq!(r.resource, Some(format!("{}/mcp", rs.base)));

    // A Bearer challenge and no metadata at all: the 2025-03-26 default endpoints.
    let defaults = Fake::start();
    challenge(&defaults, r#"Bearer realm="api""#);
    let r = run(&defaults).await;
    assert_eq!(r.spec_version.as_deref(), Some("2025-03-26"));
    assert_eq!(r.auth_url, Some(format!("{}/authorize", defaults.base)));
    assert_eq!(r.token_url, Some(format!("{}/token", defaults.base)));
    assert_eq!(r.register_url, Some(format!("{}/register", defaults.base)));
    assert_eq!(r.recommended_auth_mode.as_deref(), Some("oauth_authorization_code_public_pkce"));
    assert!(r.warnings.iter().any(|w| w.contains("unverified")), "{:?}", r.warnings);

    // Another scheme (an API key behind Basic): a static credential is the likely answer, and
    // defaults are suggested, not assumed.
    let basic = Fake::start();
    challenge(&basic, r#"Basic realm="api""#);
    let r = run(&basic).await;
    assert_eq!(r.recommended_auth_mode.as_deref(), Some("token"));
    assert!(r.message.contains("/authorize"), "{}", r.message);
    assert_eq!(r.auth_url, None);
}

#[tokio::test]
async fn open_servers_and_unreachable_ones() {
    let rs = Fake::start();
    rs.route("POST", "/mcp", Route::json(200, json!({"jsonrpc": "2.0", "id": 1, "result": {}})));
    let r = run(&rs).await;
    assert!(!r.requires_auth);
    assert_eq!(r.recommended_auth_mode.as_deref(), Some("none"));

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let r = discoverer().discover(&Url::parse(&format!("http://127.0.0.1:{closed}/mcp")).expect("url")).await;
    assert!(r.message.contains("could not be reached"), "{}", r.message);
    assert_eq!(r.steps[0].error.as_deref(), Some("the connection failed"));

    let wrong = Fake::start();
    let r = run(&wrong).await;
    assert!(r.message.contains("404"), "{}", r.message);
}

#[tokio::test]
async fn dangerous_urls_in_metadata_are_ignored() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    let mut meta = as_metadata(&auth.base);
    meta["authorization_endpoint"] = json!("javascript:alert(document.cookie)");
    meta["registration_endpoint"] = json!("file:///etc/passwd");
    auth.route("GET", AS_ROOT, Route::json(200, meta));
    let r = run(&rs).await;
    assert_eq!(r.auth_url, None);
    assert_eq!(r.register_url, None);
    assert!(!r.authorization_code_usable);
    assert!(r.warnings.iter().any(|w| w.contains("javascript:")), "{:?}", r.warnings);
}

#[tokio::test]
async fn metadata_is_cached_and_probes_are_not() {
    let (rs, auth) = (Fake::start(), Fake::start());
    challenge(&rs, "Bearer");
    prm(&rs, PRM_PATH, &format!("{}/mcp", rs.base), &auth.base);
    auth.route("GET", AS_ROOT, Route::json(200, as_metadata(&auth.base)));
    let d = discoverer();
    let endpoint = Url::parse(&format!("{}/mcp", rs.base)).expect("url");
    let first = d.discover(&endpoint).await;
    let second = d.discover(&endpoint).await;
    assert_eq!(first.token_url, second.token_url);
    assert_eq!(rs.hits("/mcp"), 2);
    assert_eq!(rs.hits(PRM_PATH), 1);
    assert_eq!(auth.hits(AS_ROOT), 1);
    assert!(second.steps.iter().filter(|s| s.method == "GET").all(|s| s.learned.ends_with("(cached)")));
}
