//! `awf`: operator commands that map onto the awf_lifecycle SQL API, one SQL call each.

/// The command line (clap definitions).
mod cli;
/// Running each command.
mod commands;
/// Failures and exit codes.
mod errors;
/// Tables, JSON and spinners.
mod output;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("awf: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
