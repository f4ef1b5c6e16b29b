//! `cargo run -p switchboard-openapi`: rewrites `openapi/openapi.json` from the code.

fn main() -> std::process::ExitCode {
    let path = switchboard_openapi::committed_path();
    match std::fs::write(&path, switchboard_openapi::render()) {
        Ok(()) => {
            println!("wrote {}", path.display());
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", path.display());
            std::process::ExitCode::FAILURE
        }
    }
}
