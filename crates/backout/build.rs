//! Puts the git commit into `--version` (`BACKOUT_COMMIT`): `git rev-parse --short HEAD` when
//! the source is a git checkout and git is installed, else a `BACKOUT_COMMIT` given to the build
//! (distribution builds from a tarball), else "unknown". Never fails the build.

use std::path::PathBuf;
use std::process::Command;

fn git(args: &[&str]) -> Option<String> {
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR")?);
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_string();
    (!text.is_empty()).then_some(text)
}

fn main() {
    println!("cargo:rerun-if-env-changed=BACKOUT_COMMIT");
    let given = std::env::var("BACKOUT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty());
    let commit = given.or_else(|| {
        // Rebuild when HEAD moves: HEAD itself, the branch it names, and packed refs.
        for path in ["HEAD", "packed-refs"] {
            if let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", path]) {
                println!("cargo:rerun-if-changed={p}");
            }
        }
        if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"])
            && let Some(p) = git(&["rev-parse", "--path-format=absolute", "--git-path", &branch])
        {
            println!("cargo:rerun-if-changed={p}");
        }
        git(&["rev-parse", "--short=9", "HEAD"])
    });
    let commit = commit.unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=BACKOUT_COMMIT={commit}");
}
