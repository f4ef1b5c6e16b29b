//! `cargo run -p switchboard-openapi`: rewrites `openapi/openapi.json` and the README's error
//! table from the code.

fn main() -> std::process::ExitCode {
    let path = switchboard_openapi::committed_path();
    if let Err(e) = std::fs::write(&path, switchboard_openapi::render()) {
        eprintln!("error: cannot write {}: {e}", path.display());
        return std::process::ExitCode::FAILURE;
    }
    println!("wrote {}", path.display());
    let readme = switchboard_openapi::readme_path();
    let text = std::fs::read_to_string(&readme).unwrap_or_default();
    let Some(updated) = switchboard_api::error::spec::with_readme_table(&text) else {
        eprintln!("error: {} has no error-table markers", readme.display());
        return std::process::ExitCode::FAILURE;
    };
    let Some(updated) = switchboard_domain::finding::with_readme_table(&updated) else {
        eprintln!("error: {} has no findings-table markers", readme.display());
        return std::process::ExitCode::FAILURE;
    };
    if let Err(e) = std::fs::write(&readme, updated) {
        eprintln!("error: cannot write {}: {e}", readme.display());
        return std::process::ExitCode::FAILURE;
    }
    println!("wrote the error and findings tables of {}", readme.display());
    std::process::ExitCode::SUCCESS
}
