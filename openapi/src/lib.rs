//! Renders Switchboard's OpenAPI document, collected from the API's route registrations, into
//! `openapi/openapi.json`. The committed file is what clients and reviewers read; the test below
//! fails when it no longer matches the code (run `cargo run -p switchboard-openapi` to refresh it).

use std::path::PathBuf;

/// Where the committed document lives.
#[must_use]
pub fn committed_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openapi.json")
}

/// The README, whose error table is generated too.
#[must_use]
pub fn readme_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../README.md")
}

/// The document the code describes now.
#[must_use]
pub fn render() -> String {
    switchboard_api::openapi::spec_json()
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_openapi_json_matches_the_code() {
        let committed = std::fs::read_to_string(super::committed_path()).unwrap_or_default();
        let current = super::render();
        assert!(
            committed == current,
            "openapi/openapi.json is out of date with the routes; run `cargo run -p switchboard-openapi` and commit the result"
        );
    }
}
