//! The `stsyn` binary: parse the command line, run, print the error chain, set the exit code.

fn main() {
    std::process::exit(stsyn::cli::main());
}
