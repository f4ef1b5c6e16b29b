//! The `switchboard` binary: the command line lives in `switchboard_api::cli`.

fn main() -> std::process::ExitCode {
    switchboard_api::cli::main()
}
