//! Slugs: lowercase ASCII letters, digits and single dashes, 1–63 characters.

use crate::FieldError;

pub const MAX_LEN: usize = 63;

/// Derives a slug from a display name: "Linear (prod)" → "linear-prod". Returns `None` when the
/// name has no ASCII letter or digit to build one from.
#[must_use]
pub fn derive(name: &str) -> Option<String> {
    let mut out = String::new();
    let mut dash = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if dash && !out.is_empty() {
                out.push('-');
            }
            dash = false;
            out.push(c.to_ascii_lowercase());
        } else {
            dash = true;
        }
        if out.len() >= MAX_LEN {
            break;
        }
    }
    let out = out.trim_end_matches('-').to_owned();
    (!out.is_empty()).then_some(out)
}

/// Checks a slug a caller chose.
pub fn check(field: &str, slug: &str) -> Result<(), FieldError> {
    let ok = !slug.is_empty()
        && slug.len() <= MAX_LEN
        && slug.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !slug.starts_with('-')
        && !slug.ends_with('-')
        && !slug.contains("--");
    if ok {
        Ok(())
    } else {
        Err(FieldError::new(field, "invalid", format!("`{slug}` is not a valid slug"))
            .with_hint("use 1-63 lowercase letters, digits and single dashes, e.g. `linear-prod`"))
    }
}

/// The `n`th alternative of a taken slug: `linear`, `linear-2`, `linear-3`, ….
#[must_use]
pub fn numbered(base: &str, n: u32) -> String {
    if n <= 1 {
        return base.to_owned();
    }
    let suffix = format!("-{n}");
    let room = MAX_LEN.saturating_sub(suffix.len());
    let kept: String = base.chars().take(room).collect();
    format!("{}{suffix}", kept.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derives_readable_slugs() {
        assert_eq!(derive("Linear (prod)").as_deref(), Some("linear-prod"));
        assert_eq!(derive("  GitHub  MCP ").as_deref(), Some("github-mcp"));
        assert_eq!(derive("日本"), None);
        assert_eq!(derive(&"a".repeat(100)).map(|s| s.len()), Some(MAX_LEN));
    }

    #[test]
    fn checks_slugs() {
        assert!(check("slug", "linear-prod").is_ok());
        for bad in ["", "Linear", "a--b", "-a", "a-", "a_b", &"a".repeat(64)] {
            assert!(check("slug", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers_alternatives_within_the_length_limit() {
        assert_eq!(numbered("linear", 1), "linear");
        assert_eq!(numbered("linear", 3), "linear-3");
        assert_eq!(numbered(&"a".repeat(63), 12).len(), 63);
    }
}
