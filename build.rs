//! Records the git commit the binary is built from (`STSYN_COMMIT`: the short hash, with
//! `-dirty` when tracked files differ from it, or `unknown` outside a git checkout), so that a
//! results directory names the exact code that made it.

use std::process::Command;

/// Runs git without optional locks, so that `git status` does not rewrite `.git/index` (which
/// would make the next cargo command rebuild the crate for nothing).
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").arg("--no-optional-locks").args(args).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn main() {
    let commit = match git(&["rev-parse", "--short=12", "HEAD"]) {
        Some(hash) if !hash.is_empty() => {
            let dirty = git(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
            if dirty { format!("{hash}-dirty") } else { hash }
        }
        _ => "unknown".to_string(),
    };
    println!("cargo:rustc-env=STSYN_COMMIT={commit}");
    // rebuild when HEAD moves or the index changes (a commit, a checkout, an edit staged)
    for path in [".git/HEAD", ".git/index"] {
        println!("cargo:rerun-if-changed={path}");
    }
    if let Some(head) =
        std::fs::read_to_string(".git/HEAD").ok().and_then(|h| h.strip_prefix("ref: ").map(str::to_string))
    {
        println!("cargo:rerun-if-changed=.git/{}", head.trim());
    }
}
