//! The `trunkline` binary: parse the command line, set up tracing, run. Nothing else lives here.

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = trunkline::cli::Cli::parse();
    trunkline::cli::init_tracing();
    match trunkline::cli::run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
