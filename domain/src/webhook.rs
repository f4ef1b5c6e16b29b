//! Event delivery to a tenant's webhook, signed in the Standard Webhooks format
//! (<https://www.standardwebhooks.com>): `webhook-id` (stable across retries, so receivers can
//! deduplicate), `webhook-timestamp` (Unix seconds) and `webhook-signature`
//! (`v1,` + base64 HMAC-SHA256 over `{id}.{timestamp}.{body}`, keyed with the bytes of the
//! `whsec_` secret).

use base64::Engine as _;

use crate::crypto::{CryptoError, random_bytes};

/// The prefix of a webhook signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// A new signing secret: `whsec_` + base64 of 32 random bytes.
pub fn generate_secret() -> Result<String, CryptoError> {
    Ok(format!("{SECRET_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(random_bytes::<32>()?)))
}

/// The `webhook-signature` header value for one delivery, or `None` for a malformed secret.
#[must_use]
pub fn sign(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key =
        base64::engine::general_purpose::STANDARD.decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret)).ok()?;
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
    let mut ctx = ring::hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(ctx.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signs_the_standard_webhooks_example() {
        // The example of the Standard Webhooks specification.
        assert_eq!(
            sign(
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1_614_265_330,
                br#"{"test": 2432232314}"#
            )
            .as_deref(),
            Some("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=")
        );
    }

    #[test]
    fn secrets_are_prefixed_random_keys() {
        let (a, b) = (generate_secret().expect("secret"), generate_secret().expect("secret"));
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 44);
        assert_ne!(a, b);
        assert!(sign(&a, "msg_1", 1, b"{}").is_some());
        assert!(sign("whsec_not base64!", "msg_1", 1, b"{}").is_none());
    }
}
