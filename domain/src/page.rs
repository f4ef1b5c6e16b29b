//! Cursor pagination. The cursor is the id of the last item returned: ids are UUIDv7, so "after
//! this id" is "created after this item", and a page query is one indexed range scan.

use uuid::Uuid;

use crate::DomainError;

pub const DEFAULT_LIMIT: u64 = 20;
pub const MAX_LIMIT: u64 = 100;

/// A validated page request.
#[derive(Clone, Copy, Debug)]
pub struct PageRequest {
    pub limit: u64,
    pub after: Option<Uuid>,
}

impl PageRequest {
    /// Checks `limit` (1..=100, default 20) and decodes `cursor`.
    pub fn parse(limit: Option<&str>, cursor: Option<&str>) -> Result<Self, DomainError> {
        let limit = match limit {
            None => DEFAULT_LIMIT,
            Some(raw) => raw.parse::<u64>().map_err(|_| {
                DomainError::invalid(
                    "limit",
                    "invalid",
                    format!("limit must be a whole number between 1 and {MAX_LIMIT}, got `{raw}`"),
                )
            })?,
        };
        if !(1..=MAX_LIMIT).contains(&limit) {
            return Err(DomainError::invalid(
                "limit",
                "out_of_range",
                format!("limit must be between 1 and {MAX_LIMIT}, got {limit}"),
            ));
        }
        let after = match cursor {
            None => None,
            Some(c) => Some(Uuid::parse_str(c).map_err(|_| {
                DomainError::invalid(
                    "cursor",
                    "invalid",
                    "cursor is not one this API returned; pass the `next_cursor` of the previous page",
                )
            })?),
        };
        Ok(Self { limit, after })
    }
}

/// One page of results.
#[derive(Clone, Debug)]
pub struct Page<T> {
    pub data: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Builds a page from `limit + 1` fetched rows: the extra row only tells that more exist.
    pub fn from_overfetch(mut rows: Vec<T>, limit: u64, id_of: impl Fn(&T) -> Uuid) -> Self {
        let more = rows.len() as u64 > limit;
        rows.truncate(usize::try_from(limit).unwrap_or(usize::MAX));
        let next_cursor = if more { rows.last().map(|r| id_of(r).to_string()) } else { None };
        Self { data: rows, next_cursor }
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> Page<U> {
        Page { data: self.data.into_iter().map(f).collect(), next_cursor: self.next_cursor }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any `limit` and `cursor` a caller sends is a page request within bounds or an
        /// `invalid` error naming the field — never a panic.
        #[test]
        fn any_limit_and_cursor_are_bounded_or_refused(limit in proptest::option::of("\\PC{0,24}|[0-9]{1,25}"), cursor in proptest::option::of("\\PC{0,40}")) {
            match PageRequest::parse(limit.as_deref(), cursor.as_deref()) {
                Ok(p) => prop_assert!((1..=MAX_LIMIT).contains(&p.limit)),
                Err(DomainError::Invalid(errors)) => {
                    prop_assert!(errors.iter().all(|e| e.field == "limit" || e.field == "cursor"));
                }
                Err(other) => prop_assert!(false, "unexpected {other:?}"),
            }
        }
    }
}
