//! Signing a user in with a tenant's OpenID Connect provider: its metadata (found and checked
//! like any authorization server's, plus `jwks_uri`), the code exchange (no `resource`: the ID
//! token is for Switchboard itself), and the ID token's verification — signature against the
//! provider's JWKS, `iss`, `aud`/`azp`, `exp`, `nonce` (OpenID Connect Core §3.1.3.7).
//!
//! Signatures: RS256/RS384/RS512, PS256 and ES256/ES384 (what providers sign ID tokens with;
//! RS256 is the one every provider must offer). `none` and the HMAC algorithms are refused: a
//! token signed with the client secret proves nothing a third party can check.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::{Map, Value};
use url::Url;

use crate::http::{Fetcher, headers};
use crate::oauth::{ClientAuth, TokenError, Tokens};
use crate::result::Step;
use crate::urls::as_metadata_candidates;

/// What Switchboard needs of a provider's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderMetadata {
    pub issuer: String,
    pub authorization_endpoint: Url,
    pub token_endpoint: Url,
    pub jwks_uri: Url,
    pub iss_parameter_supported: bool,
    pub token_endpoint_auth_methods: Vec<String>,
}

/// Finds and checks `issuer`'s metadata: the first candidate URL (RFC 8414, then OpenID
/// discovery, in the MCP spec's order) that answers JSON; its `issuer` must be the one asked for,
/// exactly; it must offer the code flow, S256 if it lists PKCE methods at all, and a JWKS. The
/// error says what is wrong for a person fixing the settings.
pub async fn provider_metadata(fetcher: &Fetcher, issuer: &Url) -> Result<ProviderMetadata, String> {
    let asked = issuer.as_str().trim_end_matches('/');
    let mut tried = Vec::new();
    for url in as_metadata_candidates(issuer) {
        let fetched = match fetcher.get(&url, headers(&[("accept", "application/json")])).await {
            Ok(f) if f.status.is_success() => f,
            Ok(f) => {
                tried.push(format!("{url} answered {}", f.status.as_u16()));
                continue;
            }
            Err(e) => {
                tried.push(format!("{url}: {e}"));
                continue;
            }
        };
        let Some(json) = fetched.json().filter(Value::is_object) else {
            tried.push(format!("{url} did not answer a JSON object"));
            continue;
        };
        let text = |k: &str| json.get(k).and_then(Value::as_str).map(str::to_owned);
        let list = |k: &str| -> Option<Vec<String>> {
            json.get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        };
        let found = text("issuer").unwrap_or_default();
        if found.trim_end_matches('/') != asked {
            return Err(format!(
                "{url} names the issuer `{found}`, not `{}`: use exactly the issuer the provider states",
                issuer.as_str()
            ));
        }
        let endpoint = |k: &str| -> Result<Url, String> {
            let raw = text(k).ok_or_else(|| format!("the provider's metadata has no {k}"))?;
            let u = Url::parse(&raw).map_err(|_| format!("the provider's {k} is not a URL"))?;
            fetcher.check_url(&u).map_err(|e| format!("the provider's {k} cannot be used: {e}"))?;
            Ok(u)
        };
        if let Some(types) = list("response_types_supported")
            && !types.iter().any(|t| t == "code")
        {
            return Err("the provider does not offer the authorization code flow (response_types_supported)".into());
        }
        if let Some(methods) = list("code_challenge_methods_supported")
            && !methods.iter().any(|m| m == "S256")
        {
            return Err("the provider lists PKCE methods without S256 (code_challenge_methods_supported)".into());
        }
        return Ok(ProviderMetadata {
            issuer: found,
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            jwks_uri: endpoint("jwks_uri")?,
            iss_parameter_supported: json
                .get("authorization_response_iss_parameter_supported")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            token_endpoint_auth_methods: list("token_endpoint_auth_methods_supported").unwrap_or_default(),
        });
    }
    Err(format!("no OpenID Connect metadata found for {}: {}", issuer.as_str(), tried.join("; ")))
}

/// Exchanges a sign-in code at the provider's token endpoint (PKCE, no `resource`).
pub async fn exchange_sign_in_code(
    fetcher: &Fetcher,
    token_url: &Url,
    auth: &ClientAuth<'_>,
    advertised: &[String],
    code: &str,
    verifier: &str,
    redirect_uri: &str,
) -> Result<Tokens, TokenError> {
    let pairs = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
    ];
    let mut steps: Vec<Step> = Vec::new();
    crate::oauth::token_request(fetcher, token_url, &pairs, auth, advertised, &mut steps).await
}

/// The provider's signing keys (its JWKS document's `keys`).
pub async fn fetch_jwks(fetcher: &Fetcher, jwks_uri: &Url) -> Result<Vec<Value>, String> {
    let f = fetcher
        .get(jwks_uri, headers(&[("accept", "application/json")]))
        .await
        .map_err(|e| format!("the provider's JWKS could not be fetched: {e}"))?;
    if !f.status.is_success() {
        return Err(format!("the provider's JWKS answered {}", f.status.as_u16()));
    }
    f.json()
        .and_then(|j| j.get("keys").and_then(Value::as_array).cloned())
        .ok_or_else(|| "the provider's JWKS has no keys".to_owned())
}

/// What an ID token must say.
#[derive(Clone, Debug)]
pub struct Expected<'a> {
    pub issuer: &'a str,
    pub client_id: &'a str,
    pub nonce: &'a str,
    pub now: SystemTime,
}

/// Why an ID token was refused. Never carries the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdTokenError {
    #[error("the ID token is malformed")]
    Malformed,
    #[error("the ID token is signed with `{0}`, which is not accepted")]
    Algorithm(String),
    /// No key of the JWKS matches: the caller may fetch the JWKS again once (keys rotate).
    #[error("no key of the provider's JWKS matches the ID token")]
    UnknownKey,
    #[error("the ID token's signature is not valid")]
    Signature,
    #[error("the ID token was issued by `{0}`, not by the configured provider")]
    Issuer(String),
    #[error("the ID token is not meant for this client (aud/azp)")]
    Audience,
    #[error("the ID token has expired")]
    Expired,
    #[error("the ID token's nonce does not match the sign-in request")]
    Nonce,
}

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::URL_SAFE_NO_PAD;
/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY: Duration = Duration::from_secs(120);

/// Verifies an ID token against `keys` (a JWKS's `keys`) and `expected`; returns its claims.
pub fn verify_id_token(
    token: &str,
    keys: &[Value],
    expected: &Expected<'_>,
) -> Result<Map<String, Value>, IdTokenError> {
    let mut parts = token.split('.');
    let (Some(h), Some(p), Some(s), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return Err(IdTokenError::Malformed);
    };
    let decode_json = |part: &str| -> Result<Map<String, Value>, IdTokenError> {
        let bytes = B64.decode(part).map_err(|_| IdTokenError::Malformed)?;
        match serde_json::from_slice(&bytes) {
            Ok(Value::Object(m)) => Ok(m),
            _ => Err(IdTokenError::Malformed),
        }
    };
    let header = decode_json(h)?;
    let claims = decode_json(p)?;
    let signature = B64.decode(s).map_err(|_| IdTokenError::Malformed)?;
    let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
    let kid = header.get("kid").and_then(Value::as_str);
    let signed = token.get(..h.len() + 1 + p.len()).ok_or(IdTokenError::Malformed)?.as_bytes();
    verify_signature(alg, kid, keys, signed, &signature)?;

    let iss = claims.get("iss").and_then(Value::as_str).unwrap_or("");
    if iss != expected.issuer {
        return Err(IdTokenError::Issuer(iss.chars().take(200).collect()));
    }
    let audiences: Vec<&str> = match claims.get("aud") {
        Some(Value::String(a)) => vec![a.as_str()],
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let azp = claims.get("azp").and_then(Value::as_str);
    if !audiences.contains(&expected.client_id) || (audiences.len() > 1 && azp != Some(expected.client_id)) {
        return Err(IdTokenError::Audience);
    }
    if azp.is_some_and(|a| a != expected.client_id) {
        return Err(IdTokenError::Audience);
    }
    let now = expected.now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let exp = claims.get("exp").and_then(Value::as_u64).ok_or(IdTokenError::Malformed)?;
    if Duration::from_secs(exp) + LEEWAY <= now {
        return Err(IdTokenError::Expired);
    }
    if claims.get("iat").and_then(Value::as_u64).is_some_and(|iat| Duration::from_secs(iat) > now + LEEWAY) {
        return Err(IdTokenError::Malformed);
    }
    if claims.get("nonce").and_then(Value::as_str) != Some(expected.nonce) {
        return Err(IdTokenError::Nonce);
    }
    Ok(claims)
}

fn verify_signature(
    alg: &str,
    kid: Option<&str>,
    keys: &[Value],
    signed: &[u8],
    signature: &[u8],
) -> Result<(), IdTokenError> {
    use ring::signature as sig;
    let (kty, rsa, ec): (
        &str,
        Option<&'static sig::RsaParameters>,
        Option<(&'static sig::EcdsaVerificationAlgorithm, &str)>,
    ) = match alg {
        "RS256" => ("RSA", Some(&sig::RSA_PKCS1_2048_8192_SHA256), None),
        "RS384" => ("RSA", Some(&sig::RSA_PKCS1_2048_8192_SHA384), None),
        "RS512" => ("RSA", Some(&sig::RSA_PKCS1_2048_8192_SHA512), None),
        "PS256" => ("RSA", Some(&sig::RSA_PSS_2048_8192_SHA256), None),
        "ES256" => ("EC", None, Some((&sig::ECDSA_P256_SHA256_FIXED, "P-256"))),
        "ES384" => ("EC", None, Some((&sig::ECDSA_P384_SHA384_FIXED, "P-384"))),
        other => return Err(IdTokenError::Algorithm(other.chars().take(16).collect())),
    };
    let candidates: Vec<&Value> = keys
        .iter()
        .filter(|k| k.get("kty").and_then(Value::as_str) == Some(kty))
        .filter(|k| k.get("use").and_then(Value::as_str).is_none_or(|u| u == "sig"))
        .filter(|k| k.get("alg").and_then(Value::as_str).is_none_or(|a| a == alg))
        .filter(|k| kid.is_none() || k.get("kid").and_then(Value::as_str) == kid)
        .collect();
    // Without a kid, only an unambiguous key is used.
    let key = match (kid, candidates.as_slice()) {
        (_, [one]) => *one,
        (Some(_), [first, ..]) => *first,
        _ => return Err(IdTokenError::UnknownKey),
    };
    let field =
        |k: &str| key.get(k).and_then(Value::as_str).and_then(|v| B64.decode(v).ok()).ok_or(IdTokenError::UnknownKey);
    if let Some(params) = rsa {
        let (n, e) = (field("n")?, field("e")?);
        return sig::RsaPublicKeyComponents { n: &n, e: &e }
            .verify(params, signed, signature)
            .map_err(|_| IdTokenError::Signature);
    }
    let Some((algorithm, curve)) = ec else { return Err(IdTokenError::Algorithm(alg.to_owned())) };
    if key.get("crv").and_then(Value::as_str) != Some(curve) {
        return Err(IdTokenError::UnknownKey);
    }
    let (x, y) = (field("x")?, field("y")?);
    let mut point = Vec::with_capacity(1 + x.len() + y.len());
    point.push(4u8);
    point.extend_from_slice(&x);
    point.extend_from_slice(&y);
    sig::UnparsedPublicKey::new(algorithm, point).verify(signed, signature).map_err(|_| IdTokenError::Signature)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    use serde_json::json;

    struct Signer {
        key: EcdsaKeyPair,
        jwk: Value,
    }

    fn signer(kid: &str) -> Signer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let public = key.public_key().as_ref();
        let jwk = json!({"kty": "EC", "crv": "P-256", "kid": kid, "use": "sig",
            "x": B64.encode(&public[1..33]), "y": B64.encode(&public[33..65])});
        Signer { key, jwk }
    }

    fn sign(s: &Signer, header: &Value, claims: &Value) -> String {
        let input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
        let sig = s.key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
        format!("{input}.{}", B64.encode(sig.as_ref()))
    }

    fn claims(now: u64) -> Value {
        json!({"iss": "https://idp.example.com", "aud": "sb", "sub": "alice", "nonce": "n-1", "iat": now, "exp": now + 300})
    }

    #[test]
    fn an_id_token_is_checked_for_signature_issuer_audience_expiry_and_nonce() {
        let s = signer("k1");
        let keys = vec![s.jwk.clone()];
        let now = SystemTime::now();
        let secs = now.duration_since(UNIX_EPOCH).unwrap().as_secs();
        let expected = Expected { issuer: "https://idp.example.com", client_id: "sb", nonce: "n-1", now };
        let header = json!({"alg": "ES256", "kid": "k1"});
        let good = sign(&s, &header, &claims(secs));
        assert_eq!(verify_id_token(&good, &keys, &expected).unwrap()["sub"], "alice");

        let with = |patch: Value| {
            let mut c = claims(secs);
            for (k, v) in patch.as_object().unwrap() {
                c[k] = v.clone();
            }
            verify_id_token(&sign(&s, &header, &c), &keys, &expected)
        };
        assert_eq!(
            with(json!({"iss": "https://evil.example.com"})),
            Err(IdTokenError::Issuer("https://evil.example.com".into()))
        );
        assert_eq!(with(json!({"nonce": "other"})), Err(IdTokenError::Nonce));
        assert_eq!(with(json!({"nonce": null})), Err(IdTokenError::Nonce));
        assert_eq!(with(json!({"aud": "someone-else"})), Err(IdTokenError::Audience));
        assert_eq!(with(json!({"aud": ["sb", "other"]})), Err(IdTokenError::Audience), "several audiences need azp");
        assert!(with(json!({"aud": ["sb", "other"], "azp": "sb"})).is_ok());
        assert_eq!(with(json!({"exp": secs - 600})), Err(IdTokenError::Expired));

        // Another key signed it, or the payload was changed after signing.
        let other = signer("k1");
        assert_eq!(
            verify_id_token(&sign(&other, &header, &claims(secs)), &keys, &expected),
            Err(IdTokenError::Signature)
        );
        let mut parts: Vec<&str> = good.split('.').collect();
        let forged = B64.encode(
            json!({"iss": "https://idp.example.com", "aud": "sb", "sub": "mallory", "nonce": "n-1", "exp": secs + 300})
                .to_string(),
        );
        parts[1] = &forged;
        assert_eq!(verify_id_token(&parts.join("."), &keys, &expected), Err(IdTokenError::Signature));
        // Unsigned and HMAC tokens are refused before any key is looked at; an unknown kid is
        // reported so the caller can fetch the JWKS again.
        assert_eq!(
            verify_id_token(&sign(&s, &json!({"alg": "none"}), &claims(secs)), &keys, &expected),
            Err(IdTokenError::Algorithm("none".into()))
        );
        assert_eq!(
            verify_id_token(&sign(&s, &json!({"alg": "HS256"}), &claims(secs)), &keys, &expected),
            Err(IdTokenError::Algorithm("HS256".into()))
        );
        assert_eq!(
            verify_id_token(&sign(&s, &json!({"alg": "ES256", "kid": "k2"}), &claims(secs)), &keys, &expected),
            Err(IdTokenError::UnknownKey)
        );
        assert_eq!(verify_id_token("a.b", &keys, &expected), Err(IdTokenError::Malformed));
    }
}
