//! The command line as a contract: exit codes, messages for files that cannot be plans, output
//! formats, the content hash, colour, and the `init`, `schema` and `render` commands.
//!
//! `files` (what is not a plan, several files, output formats), `hash` (the content hash and
//! colour), `commands` (`schema`, `init`, `render`, help and usage errors).

#[path = "../support/mod.rs"]
mod support;

mod commands;
mod files;
mod hash;

use std::path::{Path, PathBuf};

use support::{Cli, cli};

pub fn fixture(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fixtures/plans")
        .join(path)
        .canonicalize()
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

pub fn valid_fixtures() -> Vec<PathBuf> {
    let dir = fixture("valid");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("fixtures/plans/valid exists")
        .map(|e| e.expect("readable entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty());
    paths
}

/// `backout` in a fresh temporary directory, without colour.
pub fn backout(dir: &Path) -> Cli {
    cli().current_dir(dir)
}

pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary directory")
}
