//! `awf`: operator commands that map onto the awf_lifecycle SQL API.

mod commands;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = commands::Cli::parse();
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("awf: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
