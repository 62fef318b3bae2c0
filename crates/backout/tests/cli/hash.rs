//! The content hash (formatting and key order do not change it, values do) and colour (none
//! with NO_COLOR, on a terminal or not).

use std::path::Path;

use serde_json::Value;

use crate::{backout, fixture, tempdir, valid_fixtures};

// ---------------------------------------------------------------- content hash

fn hash_of(dir: &Path, plan: &Path) -> String {
    let output = backout(dir)
        .args(["lint", "--hash"])
        .arg(plan)
        .run()
        .code(0);
    let stdout = output.stdout();
    let line = stdout
        .lines()
        .find(|l| l.ends_with(&format!("  {}", plan.display())))
        .unwrap_or_else(|| panic!("no hash line in {stdout}"));
    let hash = line.split_whitespace().next().expect("a hash").to_string();
    assert_eq!(hash.len(), 64, "{hash}");
    assert!(
        hash.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()),
        "{hash}"
    );
    hash
}

/// The same plan, written differently: no comments, top-level sections in reverse order, nested
/// lines indented two more spaces, and a plain string quoted.
fn reformatted(source: &str) -> String {
    let lines: Vec<&str> = source
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    let mut sections: Vec<Vec<String>> = Vec::new();
    for line in lines {
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        let extra = if indent == 0 { 0 } else { 2 };
        let line = format!("{}{}", " ".repeat(indent + extra), line.trim_start());
        if indent == 0 {
            sections.push(vec![line]);
        } else {
            sections
                .last_mut()
                .expect("a section before indented lines")
                .push(line);
        }
    }
    sections.reverse();
    let mut out = String::new();
    for section in sections {
        out.push_str(&section.join("\n"));
        out.push_str("\n\n");
    }
    out.replace("environment: production", "environment: \"production\"")
}

#[test]
fn hash_ignores_formatting_and_order_but_not_values() {
    let dir = tempdir();
    let original = fixture("valid/search-flag.yaml");
    let source = std::fs::read_to_string(&original).expect("readable");
    let copy = reformatted(&source);
    assert_ne!(copy, source);
    let copy_path = dir.path().join("reformatted.yaml");
    std::fs::write(&copy_path, &copy).expect("write");
    let changed_path = dir.path().join("changed.yaml");
    assert!(source.contains("max_age: 90d"));
    std::fs::write(
        &changed_path,
        source.replace("max_age: 90d", "max_age: 60d"),
    )
    .expect("write");

    let hash = hash_of(dir.path(), &original);
    assert_eq!(
        hash,
        hash_of(dir.path(), &copy_path),
        "reformatted copy:\n{copy}"
    );
    assert_ne!(hash, hash_of(dir.path(), &changed_path));

    // --format json --hash carries the same hash.
    let output = backout(dir.path())
        .args(["lint", "--hash", "--format", "json"])
        .arg(&original)
        .run()
        .code(0);
    let value = output.json();
    assert_eq!(value["files"][0]["hash"], hash.as_str(), "{value:#}");
    // search-flag's only diagnostic is its worst case over expected_duration (B039).
    let codes: Vec<&Value> = value["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .map(|d| &d["code"])
        .collect();
    assert_eq!(codes, [&Value::from("B039")], "{value:#}");
}

#[test]
fn every_valid_fixture_has_a_distinct_hash() {
    let dir = tempdir();
    let hashes: std::collections::BTreeSet<String> = valid_fixtures()
        .iter()
        .map(|p| hash_of(dir.path(), p))
        .collect();
    assert_eq!(hashes.len(), valid_fixtures().len());
}

// ---------------------------------------------------------------- colour

#[test]
fn no_color_means_no_escape_bytes() {
    let dir = tempdir();
    let bad = fixture("invalid/28-unknown-needs.yaml");
    let lint = backout(dir.path()).arg("lint").arg(&bad).run();
    let lint = lint.output();
    assert!(!lint.stdout.contains(&0x1b) && !lint.stderr.contains(&0x1b));
    let render = backout(dir.path()).arg("render").arg(&bad).run();
    let render = render.output();
    assert!(!render.stdout.contains(&0x1b) && !render.stderr.contains(&0x1b));
}

/// On a terminal backout colours its output, except with NO_COLOR. Uses util-linux `script`
/// for a pseudo-terminal; skipped where it is not installed.
#[test]
fn no_color_is_honoured_on_a_terminal() {
    let script = Path::new("/usr/bin/script");
    if !script.exists() {
        eprintln!("skipped: /usr/bin/script is not available");
        return;
    }
    let bin = assert_cmd::cargo::cargo_bin("backout");
    let bad = fixture("invalid/28-unknown-needs.yaml");
    let line = format!("'{}' lint '{}'", bin.display(), bad.display());
    let run = |no_color: bool| {
        let mut cmd = std::process::Command::new(script);
        cmd.args(["-qec", &line, "/dev/null"])
            .env_remove("NO_COLOR")
            .env("TERM", "xterm");
        if no_color {
            cmd.env("NO_COLOR", "1");
        }
        cmd.output().expect("script runs")
    };
    let coloured = run(false);
    assert_eq!(coloured.status.code(), Some(2));
    assert!(
        coloured.stdout.contains(&0x1b),
        "a terminal gets colour without NO_COLOR"
    );
    let plain = run(true);
    assert_eq!(plain.status.code(), Some(2));
    let text = String::from_utf8_lossy(&plain.stdout);
    assert!(text.contains("B021"), "{text}");
    assert!(
        !plain.stdout.contains(&0x1b),
        "NO_COLOR output has escape bytes:\n{text}"
    );
}
