//! `identity-cache`: inspect, diagnose and repair the persistent token caches of the Azure
//! SDKs, built on `identity_cache_persistence`.
//!
//! Each subcommand is its own module; [`exit::Code`] is the one list of exit codes, shown
//! in `--help`; every output is either text for people or, with `--json`, one JSON
//! document on stdout. No output ever contains a secret: cache contents are read through
//! an allow-list of non-secret fields ([`summary`]).

mod clear;
mod cli;
mod context;
mod doctor;
mod exit;
mod findings;
mod inventory;
mod kernel_keyring;
mod keyring;
mod output;
mod show;
mod summary;
mod time;
mod unlock;

use clap::Parser as _;

use cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let context = context::Context::from_global(&cli.global);
    let json = cli.global.json;
    let result = match context {
        Err(failure) => Err(failure),
        Ok(context) => match &cli.command {
            Command::Doctor(args) => doctor::run(&context, args, json),
            Command::List => inventory::run(&context, json),
            Command::Show { name } => show::run(&context, name, json),
            Command::Clear(args) => clear::run(&context, args, json),
            Command::Unlock { name } => unlock::run(&context, name, json),
        },
    };
    let code = match result {
        Ok(code) => code,
        Err(failure) => {
            output::failure(&failure, json);
            failure.code
        }
    };
    std::process::exit(i32::from(code.value()));
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_well_formed() {
        use clap::CommandFactory as _;
        super::Cli::command().debug_assert();
    }

    #[test]
    fn every_exit_code_is_documented_once() {
        let help = super::exit::HELP;
        for code in super::exit::Code::ALL {
            let line = format!("  {:>2}  ", code.value());
            assert_eq!(help.matches(&line).count(), 1, "{code:?} in {help}");
        }
    }
}
