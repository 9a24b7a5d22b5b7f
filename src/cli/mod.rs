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
            eprintln!("error: {}", tidy(&err.to_string()));
            err.exit_code()
        }
        None => {
            let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            eprintln!("error: {}", tidy(&chain.join(": ")));
            1
        }
    }
}

/// Longest message printed whole; a longer one (a file's 100 MB header line, say) keeps its
/// start and end.
const MESSAGE_LIMIT: usize = 2000;

/// A message as printed: numbers written out to dozens of digits (1e308 as a plain decimal) in
/// scientific notation, and an over-long message cut in the middle.
pub fn tidy(message: &str) -> String {
    let mut out = String::with_capacity(message.len().min(MESSAGE_LIMIT + 16));
    let mut rest = message;
    while let Some(start) = rest.find(|c: char| c.is_ascii_digit()) {
        out.push_str(&rest[..start]);
        let tail = &rest[start..];
        let end = tail.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(tail.len());
        let number = &tail[..end];
        let digits = number.chars().filter(char::is_ascii_digit).count();
        // not part of a word or path (a run directory named by digits stays as it is)
        let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || "_/.".contains(c));
        let free = !word(out.chars().last()) && !word(tail[end..].chars().next());
        match number.parse::<f64>() {
            Ok(v) if digits > 24 && free => out.push_str(&crate::error::shown(v)),
            _ => out.push_str(number),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    if out.len() <= MESSAGE_LIMIT {
        return out;
    }
    let cut = |at: usize| (0..=at).rev().find(|&i| out.is_char_boundary(i)).unwrap_or(0);
    let (head, tail) = (cut(MESSAGE_LIMIT / 2), cut(out.len() - MESSAGE_LIMIT / 2));
    format!("{} … ({} bytes left out) … {}", &out[..head], tail - head, &out[tail..])
}

#[cfg(test)]
mod tests {
    use super::tidy;

    #[test]
    fn long_numbers_and_long_messages_are_shortened() {
        let big = format!("invalid p = {}: must be in (0, 1]", 1e300);
        assert_eq!(tidy(&big), "invalid p = 1e300: must be in (0, 1]");
        let tiny = format!("max_time = {} is below", 1e-320);
        assert_eq!(tidy(&tiny), "max_time = 1e-320 is below");
        let path = "/tmp/r1234567890123456789012345678/x.csv: 12 fields";
        assert_eq!(tidy(path), path);
        let header = format!("t.csv: expected 'worker,duration', found '{}'", "a".repeat(100_000));
        let short = tidy(&header);
        assert!(short.len() < 2100 && short.starts_with("t.csv: expected") && short.contains("bytes left out"));
    }
}
