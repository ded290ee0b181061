//! The `scimd` binary; see [`scimd_server::cli`].
#![forbid(unsafe_code)]

fn main() -> std::process::ExitCode {
    scimd_server::cli::main()
}
