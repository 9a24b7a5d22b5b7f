//! The command line. Only this module sees clap: each subcommand's flags are parsed into a raw
//! struct here, validated into the library's checked types, and run. Errors print as one line
//! (`error: ...` with the cause chain) and exit with code 2 for bad input, 1 otherwise.

mod bench_round;
mod model;
mod plot;
mod run;
mod timing;

use clap::{Parser, Subcommand};

/// Command-line interface of `stsyn`.
#[derive(Debug, Parser)]
#[command(
    name = "stsyn",
    version,
    about = "Discrete-event simulator of distributed SGD under stragglers (STSyn and baselines)"
)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

// `allow_negative_numbers`: `-K -1` is a bad value of -K (named in the error), not an unknown
// flag `-1`.
#[derive(Debug, Subcommand)]
enum Command {
    /// Simulate rounds without training and compare with the closed forms.
    #[command(allow_negative_numbers = true)]
    Timing(timing::Args),
    /// Print the closed forms for the same flags as `timing`.
    #[command(allow_negative_numbers = true)]
    Theory(timing::Args),
    /// Print a network spec's layers, shapes, parameters and FLOPs; optionally time an SGD step.
    #[command(allow_negative_numbers = true)]
    Model(model::Args),
    /// Train the algorithms of an experiment file on the simulated cluster.
    #[command(allow_negative_numbers = true)]
    Run(run::Args),
    /// Time whole STSyn training rounds on synthetic data (compare with torch_stsyn_round.py).
    #[command(allow_negative_numbers = true)]
    BenchRound(bench_round::Args),
    /// Draw the figures of a results directory.
    #[command(allow_negative_numbers = true)]
    Plot(plot::Args),
}

/// Parses the process arguments, runs, and returns the exit code.
pub fn main() -> i32 {
    quiet_on_closed_stdout();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print(); // --help, --version
            return 0;
        }
        Err(e) if e.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print(); // `stsyn` alone: the help, as a reminder
            return 2;
        }
        Err(e) => {
            eprintln!("{}", one_line(&e.render().to_string()));
            return 2;
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => report(&e),
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Timing(args) => timing::run_timing(&args),
        Command::Theory(args) => timing::run_theory(&args),
        Command::Model(args) => model::run(args),
        Command::Run(args) => run::run(&args),
        Command::BenchRound(args) => bench_round::run(&args),
        Command::Plot(args) => plot::run(&args),
    }
}

/// clap's message on one line: its first line and the indented list under it (the missing
/// arguments), without the usage and tips that follow.
fn one_line(message: &str) -> String {
    let mut lines = message.lines();
    let mut out = lines.next().unwrap_or("error: bad arguments").trim_end_matches(':').to_string();
    let listed: Vec<&str> = lines.take_while(|l| l.starts_with("  ")).map(str::trim).collect();
    if !listed.is_empty() {
        out += &format!(": {}", listed.join(", "));
    }
    out + " (see --help)"
}

/// `stsyn timing ... | head` closes stdout early; `println!` then panics with "Broken pipe".
/// That is not an error of the program: end quietly with the shell's code for SIGPIPE (141).
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info.payload().downcast_ref::<String>().map(String::as_str).unwrap_or("");
        if message.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

/// Prints `error: <message>` on one line and returns the exit code (2 for bad input, 130 for
/// an interrupt, 1 otherwise). The
/// library's errors already include their cause, so only other errors print their chain.
pub fn report(e: &anyhow::Error) -> i32 {
    match e.downcast_ref::<crate::Error>() {
        Some(err) => {
            eprintln!("error: {err}");
            err.exit_code()
        }
        None => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", chain.join(": "));
            1
        }
    }
}
