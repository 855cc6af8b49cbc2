use clap::{CommandFactory, FromArgMatches};
use ferrodup::cli::{selection_options, Cli};
use ferrodup::config::Config;

fn main() {
    let parsed = Cli::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, selection_options(&m))));
    let (cli, select) = match parsed {
        Ok(c) => c,
        Err(e) => {
            // duplicity 3.2.1 reports argparse's errors as its own command-line errors.
            let code = if e.use_stderr() {
                ferrodup::error::Code::UserError as i32
            } else {
                0
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    match Config::from_cli(cli, select).and_then(ferrodup::app::run) {
        Ok(outcome) => {
            if let Some(m) = outcome.message() {
                ferrodup::log::fatal(outcome.exit_code(), &m);
            }
            std::process::exit(outcome.exit_code())
        }
        Err(e) => {
            ferrodup::log::fatal(e.exit_code(), &e.to_string());
            std::process::exit(e.exit_code());
        }
    }
}
