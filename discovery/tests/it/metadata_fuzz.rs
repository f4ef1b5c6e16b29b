//! Metadata documents are outside input: protected resource metadata and authorization server
//! metadata mutated at random (any key replaced by any JSON, any Unicode, dangerous schemes,
//! bodies that are not JSON at all) never panic discovery, and what it keeps stays safe to use.

use proptest::prelude::*;
use proptest::strategy::ValueTree as _;
use proptest::test_runner::TestRunner;
use serde_json::{Value, json};
use url::Url;

use crate::fake::{Fake, Route};
use crate::layouts::{as_metadata, discoverer};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,30}".prop_map(Value::from),
        "(https?|javascript|data|file|ftp)://[a-z0-9.:@/%#?-]{0,30}".prop_map(Value::from),
        "http://127\\.0\\.0\\.1:[0-9]{1,5}/[a-z/]{0,10}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 24, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Array),
            prop::collection::btree_map("\\PC{0,8}", inner, 0..5).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A document: the valid one with some keys replaced by anything, or anything at all.
fn mutated(valid: Value) -> impl Strategy<Value = Vec<u8>> {
    let keys: Vec<String> = valid.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default();
    let edits = prop::collection::vec((prop::sample::select(keys), any_json()), 1..4);
    prop_oneof![
        4 => edits.prop_map(move |edits| {
            let mut doc = valid.clone();
            if let Some(o) = doc.as_object_mut() {
                for (k, v) in edits {
                    o.insert(k, v);
                }
            }
            doc.to_string().into_bytes()
        }),
        1 => any_json().prop_map(|v| v.to_string().into_bytes()),
        1 => prop::collection::vec(any::<u8>(), 0..300),
    ]
}

fn safe(url: Option<&String>) -> bool {
    url.is_none_or(|u| Url::parse(u).is_ok_and(|u| matches!(u.scheme(), "https" | "http")))
}

#[tokio::test]
async fn mutated_metadata_never_panics_and_keeps_only_safe_urls() {
    let (rs, auth) = (Fake::start(), Fake::start());
    let prm_path = "/.well-known/oauth-protected-resource/mcp";
    rs.route(
        "POST",
        "/mcp",
        Route::json(401, json!({}))
            .header("www-authenticate", &format!(r#"Bearer resource_metadata="{}{prm_path}""#, rs.base)),
    );
    let prm = json!({"resource": format!("{}/mcp", rs.base), "authorization_servers": [auth.base], "scopes_supported": ["mcp:read"]});
    let docs = (mutated(prm.clone()), mutated(as_metadata(&auth.base)), any::<bool>());
    let mut runner = TestRunner::deterministic();
    let endpoint = Url::parse(&format!("{}/mcp", rs.base)).expect("url");
    let mut usable = 0;
    for case in 0..200 {
        let (prm_doc, as_doc, mutate_prm) = docs.new_tree(&mut runner).expect("case").current();
        let prm_body = if mutate_prm { prm_doc } else { prm.to_string().into_bytes() };
        let mut prm_route = Route::json(200, json!({}));
        prm_route.body = prm_body.clone();
        rs.route("GET", prm_path, prm_route);
        let mut as_route = Route::json(200, json!({}));
        as_route.body = as_doc.clone();
        auth.route("GET", "/.well-known/oauth-authorization-server", as_route.clone());
        auth.route("GET", "/.well-known/openid-configuration", as_route);
        let r = discoverer().discover(&endpoint).await;
        let shown = || {
            format!("case {case}: PRM {}\nAS {}", String::from_utf8_lossy(&prm_body), String::from_utf8_lossy(&as_doc))
        };
        for url in [&r.auth_url, &r.token_url, &r.register_url, &r.revocation_url, &r.resource_metadata_url] {
            assert!(safe(url.as_ref()), "unsafe URL kept: {url:?}\n{}", shown());
        }
        assert!(!r.message.is_empty(), "{}", shown());
        assert!(serde_json::to_string(&r).is_ok());
        usable += usize::from(r.authorization_code_usable);
    }
    // The mutations leave many documents intact enough to use: the fuzz reaches past parsing.
    assert!(usable >= 20, "only {usable} of 200 cases reached a usable authorization server");
}
