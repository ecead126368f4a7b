use std::process::ExitCode;

use clap::Parser;
use corridor::cli::{self, Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Check { config } => cli::check(&config),
        Command::Run { config, upgrade } => corridor::server::run(&config, upgrade),
    }
}
