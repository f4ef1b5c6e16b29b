//! Strategies for the property tests of the parsers of outside input: JSON documents shaped like
//! what providers send (the keys they use, any types and any Unicode under them) and raw bytes.

use proptest::prelude::*;
use serde_json::Value;

/// Keys that metadata, token, registration and error documents use, and arbitrary ones.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "access_token",
            "refresh_token",
            "token_type",
            "expires_in",
            "scope",
            "error",
            "error_description",
            "client_id",
            "client_secret",
            "redirect_uris",
            "token_endpoint_auth_method",
            "registration_client_uri",
            "registration_access_token",
            "issuer",
            "authorization_endpoint",
            "token_endpoint",
            "registration_endpoint",
            "revocation_endpoint",
            "code_challenge_methods_supported",
            "token_endpoint_auth_methods_supported",
            "resource",
            "authorization_servers",
            "scopes_supported",
            "jsonrpc",
            "id",
            "result",
            "tools",
            "name",
        ])
        .prop_map(str::to_owned),
        "\\PC{0,12}",
    ]
}

/// Any JSON value, nested a few levels, with provider-shaped keys.
pub(crate) fn json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        "\\PC{0,40}".prop_map(Value::from),
        "(https?|javascript|data|file)://[a-z0-9.:@/%-]{0,30}".prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..10).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// A response body: a JSON document, or bytes that may not be JSON or UTF-8 at all.
pub(crate) fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![json().prop_map(|v| v.to_string().into_bytes()), prop::collection::vec(any::<u8>(), 0..512)]
}
