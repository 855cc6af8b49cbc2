use clap::FromArgMatches;
use ferrodup::cli::{selection_options, Cli};
use ferrodup::config::Config;
use ferrodup::error::Code;
use std::io::Write;

/// Prints `bytes` on standard output and ends the process (status 0, or 23 when the output
/// cannot be written).
fn print_and_exit(bytes: &[u8]) -> ! {
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            ferrodup::log::fatal(Code::UserError as i32, &format!("standard output: {e}"));
            std::process::exit(Code::UserError as i32);
        }
    }
    std::process::exit(0)
}

/// A command-line error of clap's as one line: its message, then its tip or the possible
/// values, and where the help is (not the usage block clap prints).
fn one_line(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("bad command line");
    let mut parts = vec![first.trim_start_matches("error: ").to_string()];
    for l in lines {
        if let Some(tip) = l.strip_prefix("tip: ") {
            parts.push(tip.to_string());
        } else if l.starts_with("[possible values") {
            parts.push(l.trim_matches(['[', ']']).to_string());
        }
    }
    parts.push("see ferrodup --help".to_string());
    parts.join("; ")
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(req) = ferrodup::help::request(&args) {
        match ferrodup::help::render(&req) {
            Ok(text) => print_and_exit(text.as_bytes()),
            Err(e) => {
                ferrodup::log::fatal(Code::UserError as i32, &e);
                std::process::exit(Code::UserError as i32);
            }
        }
    }
    let parsed = ferrodup::help::command()
        .try_get_matches()
        .and_then(|m| Cli::from_arg_matches(&m).map(|c| (c, selection_options(&m))));
    let (cli, select) = match parsed {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            std::process::exit(0);
        }
        Err(e) => {
            // duplicity 3.2.1 reports argparse's errors as its own command-line errors.
            ferrodup::log::fatal(Code::UserError as i32, &one_line(&e));
            std::process::exit(Code::UserError as i32);
        }
    };
    if cli.help {
        print_and_exit(
            ferrodup::help::command()
                .render_long_help()
                .to_string()
                .as_bytes(),
        );
    }
    if cli.man_page {
        match ferrodup::help::man_page() {
            Ok(page) => print_and_exit(&page),
            Err(e) => {
                ferrodup::log::fatal(Code::UserError as i32, &format!("man page: {e}"));
                std::process::exit(Code::UserError as i32);
            }
        }
    }
    if let Some(shell) = cli.completion {
        print_and_exit(&ferrodup::help::completion(shell));
    }
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
