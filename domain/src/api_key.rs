//! Tenant API keys: `sb_` followed by 32 random bytes in base64url (43 characters).
//!
//! Only the SHA-256 digest is stored, next to a visible prefix that finds the row. A key has full
//! entropy, so a fast digest is the right tool (a password hash would only slow every request), and
//! the stored digest is compared in constant time.

use base64::Engine as _;
use subtle::ConstantTimeEq as _;

use crate::crypto::{CryptoError, Secret, random_bytes, sha256};

pub const KEY_PREFIX: &str = "sb_";
/// How many leading characters of a key are stored and shown (`sb_` + 9 characters).
pub const VISIBLE_PREFIX_LEN: usize = 12;
const KEY_LEN: usize = KEY_PREFIX.len() + 43;

/// A key as it is created: the one moment its plaintext exists.
#[derive(Debug)]
pub struct GeneratedKey {
    pub plaintext: Secret,
    pub prefix: String,
    pub digest: [u8; 32],
}

/// Makes a new key.
pub fn generate() -> Result<GeneratedKey, CryptoError> {
    let bytes = random_bytes::<32>()?;
    let plaintext = format!("{KEY_PREFIX}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes));
    let prefix = plaintext.get(..VISIBLE_PREFIX_LEN).unwrap_or_default().to_owned();
    let digest = sha256(plaintext.as_bytes());
    Ok(GeneratedKey { plaintext: Secret::new(plaintext), prefix, digest })
}

/// Splits a presented bearer value into (prefix, digest), or `None` when it cannot be a key.
#[must_use]
pub fn parse(presented: &str) -> Option<(&str, [u8; 32])> {
    if presented.len() != KEY_LEN || !presented.starts_with(KEY_PREFIX) || !presented.is_ascii() {
        return None;
    }
    Some((presented.get(..VISIBLE_PREFIX_LEN)?, sha256(presented.as_bytes())))
}

/// Constant-time comparison of two digests.
#[must_use]
pub fn digests_match(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_parse_back_to_their_digest() -> Result<(), CryptoError> {
        let key = generate()?;
        assert_eq!(key.plaintext.expose().len(), KEY_LEN);
        let (prefix, digest) = parse(key.plaintext.expose()).ok_or(CryptoError::Malformed)?;
        assert_eq!(prefix, key.prefix);
        assert!(digests_match(&digest, &key.digest));
        assert!(parse("sb_short").is_none());
        assert!(parse(&key.plaintext.expose().replace("sb_", "xx_")).is_none());
        assert!(!digests_match(&digest, &[0u8; 32]));
        Ok(())
    }
}
