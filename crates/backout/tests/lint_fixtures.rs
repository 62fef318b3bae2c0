//! `backout lint` over every plan under `fixtures/plans`, driving the built binary.
//!
//! Each invalid fixture declares, in its leading `# expect: CODE LINE:COL` comments, exactly the
//! diagnostics it must produce (notes aside). The human output of each is an `insta` snapshot, so
//! reviewers see what users read (caret, message, help) change in the diff. Valid fixtures must
//! lint with nothing but the `ok` line.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use assert_cmd::Command;
use serde_json::Value;

/// The repository root, absolute, so the tests do not depend on the working directory.
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root exists")
}

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/plans")
}

/// The `.yaml` files of `fixtures/plans/<kind>`, sorted by name.
fn fixtures(kind: &str) -> Vec<PathBuf> {
    let dir = fixtures_dir().join(kind);
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.expect("readable directory entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "yaml"))
        .collect();
    paths.sort();
    paths
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .expect("fixture names are UTF-8")
        .to_string()
}

/// `backout` run from the repository root, without colour.
fn backout() -> Command {
    let mut cmd = Command::cargo_bin("backout").expect("the backout binary is built");
    cmd.current_dir(repo_root())
        .env("NO_COLOR", "1")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("FORCE_COLOR");
    cmd
}

/// What a lint run printed and how it exited.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn lint(args: &[&str]) -> Run {
    let output = backout()
        .arg("lint")
        .args(args)
        .output()
        .expect("backout runs");
    Run {
        code: output
            .status
            .code()
            .expect("backout exited normally, not by a signal"),
        stdout: String::from_utf8(output.stdout).expect("stdout is UTF-8"),
        stderr: String::from_utf8(output.stderr).expect("stderr is UTF-8"),
    }
}

/// A diagnostic reduced to what fixtures declare.
type Expect = (String, usize, usize);

/// The `# expect: B021 12:15` lines at the top of a fixture.
fn declared(source: &str, name: &str) -> Vec<Expect> {
    source
        .lines()
        .take_while(|line| line.starts_with('#'))
        .filter_map(|line| line.strip_prefix("# expect:"))
        .map(|rest| {
            let parse = || -> Option<Expect> {
                let mut words = rest.split_whitespace();
                let code = words.next()?;
                let (line, column) = words.next()?.split_once(':')?;
                if words.next().is_some() || !code.starts_with('B') {
                    return None;
                }
                Some((code.to_string(), line.parse().ok()?, column.parse().ok()?))
            };
            parse().unwrap_or_else(|| panic!("{name}: malformed expect line `{rest}`"))
        })
        .collect()
}

/// The (code, line, column) of every non-note diagnostic in `--format json` output, sorted, and
/// whether any of them is an error.
fn reported(json: &str, file: &str, name: &str) -> (Vec<Expect>, bool) {
    let value: Value = serde_json::from_str(json)
        .unwrap_or_else(|e| panic!("{name}: --format json is not JSON ({e}):\n{json}"));
    let items = value
        .as_array()
        .unwrap_or_else(|| panic!("{name}: --format json is not an array"));
    let mut found = Vec::new();
    let mut any_error = false;
    for item in items {
        let field = |key: &str| {
            item.get(key)
                .unwrap_or_else(|| panic!("{name}: diagnostic without `{key}`: {item}"))
        };
        assert_eq!(field("file").as_str(), Some(file), "{name}: file of {item}");
        let severity = field("severity").as_str().expect("severity is a string");
        assert!(
            ["error", "warning", "note"].contains(&severity),
            "{name}: severity {severity}"
        );
        let message = field("message").as_str().expect("message is a string");
        assert!(!message.is_empty(), "{name}: empty message in {item}");
        if severity == "note" {
            continue;
        }
        any_error |= severity == "error";
        let code = field("code")
            .as_str()
            .expect("code is a string")
            .to_string();
        let line = field("line").as_u64().expect("line is a number");
        let column = field("column").as_u64().expect("column is a number");
        found.push((
            code,
            usize::try_from(line).expect("line fits"),
            usize::try_from(column).expect("column fits"),
        ));
    }
    found.sort();
    (found, any_error)
}

/// Lints one invalid fixture every way and returns the problems found, if any.
fn check_invalid(path: &Path) -> Vec<String> {
    let name = file_stem(path);
    let relative = format!("fixtures/plans/invalid/{name}.yaml");
    let source = std::fs::read_to_string(path).expect("readable fixture");
    let mut problems = Vec::new();

    let mut expected = declared(&source, &name);
    expected.sort();
    if expected.is_empty() {
        problems.push(format!("{name}: declares no `# expect:` lines"));
    }

    let json = lint(&["--format", "json", &relative]);
    let (found, has_error) = reported(&json.stdout, &relative, &name);
    if found != expected {
        problems.push(format!(
            "{name}: diagnostics differ from the `# expect:` lines\n  declared: {expected:?}\n  reported: {found:?}"
        ));
    }
    let want_code = if has_error { 2 } else { 0 };
    if json.code != want_code {
        problems.push(format!(
            "{name}: --format json exited {} instead of {want_code}",
            json.code
        ));
    }

    let human = lint(&[&relative]);
    let want_human = if has_error { 2 } else { 0 };
    if human.code != want_human {
        problems.push(format!(
            "{name}: exited {} instead of {want_human}",
            human.code
        ));
    }
    if !human.stderr.is_empty() {
        problems.push(format!("{name}: unexpected stderr:\n{}", human.stderr));
    }
    if human.stdout.contains('\u{1b}') {
        problems.push(format!("{name}: colour escapes despite NO_COLOR"));
    }
    for (code, line, column) in &expected {
        let header = format!("[{code}]");
        let location = format!("{relative}:{line}:{column}");
        if !human.stdout.contains(&header) || !human.stdout.contains(&location) {
            problems.push(format!("{name}: human output lacks {header} at {location}"));
        }
    }
    insta::with_settings!({
        description => format!("backout lint {relative}"),
        omit_expression => true,
    }, {
        insta::assert_snapshot!(name.clone(), human.stdout);
    });

    if !has_error {
        let denied = lint(&["--deny-warnings", &relative]);
        if denied.code != 2 {
            problems.push(format!(
                "{name}: --deny-warnings exited {} instead of 2",
                denied.code
            ));
        }
    }
    problems
}

/// Every invalid fixture: exact diagnostics, exit codes, and a snapshot of the human output.
/// All fixtures are checked before failing, so one run shows every difference.
#[test]
fn invalid_fixtures_report_exactly_their_declared_diagnostics() {
    let paths = fixtures("invalid");
    assert!(
        paths.len() >= 45,
        "expected at least 45 invalid fixtures, found {}",
        paths.len()
    );
    let mut problems = Vec::new();
    let mut warning_only = 0;
    for path in &paths {
        let name = file_stem(path);
        let outcome = std::panic::catch_unwind(|| check_invalid(path));
        match outcome {
            Ok(found) => problems.extend(found),
            Err(_) => problems.push(format!("{name}: snapshot or assertion failed (see above)")),
        }
        let source = std::fs::read_to_string(path).expect("readable fixture");
        if declared(&source, &name)
            .iter()
            .all(|(code, _, _)| ["B026", "B044", "B080"].contains(&code.as_str()))
        {
            warning_only += 1;
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
    assert!(
        warning_only >= 3,
        "the warning-only exit path needs fixtures"
    );
}

/// Fixture names follow `NN-short-name.yaml` (or `NNN-`) with unique numbers.
#[test]
fn invalid_fixtures_are_numbered_once() {
    let mut numbers = BTreeSet::new();
    for path in fixtures("invalid") {
        let name = file_stem(&path);
        let (number, rest) = name
            .split_once('-')
            .unwrap_or_else(|| panic!("{name}: expected NN-short-name"));
        assert!(
            (2..=3).contains(&number.len()) && number.bytes().all(|b| b.is_ascii_digit()),
            "{name}: expected a two- or three-digit number"
        );
        assert!(
            !rest.is_empty()
                && rest
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
            "{name}: expected a short kebab-case name"
        );
        assert!(
            numbers.insert(number.to_string()),
            "{name}: number used twice"
        );
    }
}

/// Every snapshot belongs to a fixture that still exists (renamed fixtures leave none behind).
#[test]
fn no_orphan_snapshots() {
    let names: BTreeSet<String> = fixtures("invalid").iter().map(|p| file_stem(p)).collect();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return;
    };
    for entry in entries {
        let file = entry.expect("readable entry").file_name();
        let file = file.to_string_lossy();
        if let Some(name) = file
            .strip_prefix("lint_fixtures__")
            .and_then(|f| f.strip_suffix(".snap"))
        {
            assert!(
                names.contains(name),
                "snapshot {file} has no fixture fixtures/plans/invalid/{name}.yaml"
            );
        }
    }
}

/// The warnings a reference plan knowingly carries: the worst case of checkout (its 25m
/// `restore-db` branch) and of search-flag (its redeploy branch) exceed their expected_duration.
/// The reference plans are shared with other tools (`../shared/examples`), so they say the
/// truth through a warning rather than being rewritten.
const REFERENCE_WARNINGS: &[(&str, &[&str])] =
    &[("checkout", &["B039"]), ("search-flag", &["B039"])];

/// The reference plans lint without errors: exit 0, and no diagnostics but the warnings listed
/// in [`REFERENCE_WARNINGS`], in both formats.
#[test]
fn valid_fixtures_lint_clean() {
    let paths = fixtures("valid");
    assert!(
        paths.len() >= 3,
        "expected the reference plans, found {}",
        paths.len()
    );
    for path in paths {
        let stem = file_stem(&path);
        let relative = format!("fixtures/plans/valid/{stem}.yaml");
        let allowed: &[&str] = REFERENCE_WARNINGS
            .iter()
            .find(|(name, _)| *name == stem)
            .map_or(&[], |(_, codes)| codes);
        let human = lint(&[&relative]);
        assert_eq!(
            human.code, 0,
            "{relative}:\n{}{}",
            human.stdout, human.stderr
        );
        let status = match allowed.len() {
            0 => "ok".to_string(),
            1 => "ok with 1 warning".to_string(),
            n => format!("ok with {n} warnings"),
        };
        assert!(
            human.stdout.ends_with(&format!("{relative}: {status}\n")),
            "{relative}:\n{}",
            human.stdout
        );
        assert_eq!(human.stderr, "");
        let json = lint(&["--format", "json", &relative]);
        assert_eq!(json.code, 0, "{relative}: {}", json.stdout);
        let value: Value = serde_json::from_str(&json.stdout).expect("JSON output");
        let codes: Vec<&str> = value
            .as_array()
            .expect("an array")
            .iter()
            .map(|d| {
                assert_eq!(d["severity"], "warning", "{relative}: {d}");
                d["code"].as_str().expect("a code")
            })
            .collect();
        assert_eq!(codes, allowed, "{relative}");
    }
}

/// Paths are taken as given, relative to the working directory or absolute, whatever the cwd.
#[test]
fn plan_paths_work_from_any_working_directory() {
    let absolute = fixtures_dir()
        .join("valid/cluster-upgrade.yaml")
        .canonicalize()
        .expect("cluster-upgrade.yaml exists");
    let elsewhere = tempfile::tempdir().expect("a temporary directory");
    let output = Command::cargo_bin("backout")
        .expect("the backout binary is built")
        .current_dir(elsewhere.path())
        .env("NO_COLOR", "1")
        .arg("lint")
        .arg(&absolute)
        .output()
        .expect("backout runs");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("{}: ok\n", absolute.display())
    );

    // The same file, relative to another directory of the repository.
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let output = Command::cargo_bin("backout")
        .expect("the backout binary is built")
        .current_dir(crate_dir)
        .env("NO_COLOR", "1")
        .args(["lint", "../../fixtures/plans/valid/cluster-upgrade.yaml"])
        .output()
        .expect("backout runs");
    assert_eq!(output.status.code(), Some(0), "{output:?}");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "../../fixtures/plans/valid/cluster-upgrade.yaml: ok\n"
    );

    // An invalid plan's locations name the path as given.
    let invalid = fixtures_dir()
        .join("invalid/28-unknown-needs.yaml")
        .canonicalize()
        .expect("fixture exists");
    let output = Command::cargo_bin("backout")
        .expect("the backout binary is built")
        .current_dir(elsewhere.path())
        .env("NO_COLOR", "1")
        .arg("lint")
        .arg(&invalid)
        .output()
        .expect("backout runs");
    assert_eq!(output.status.code(), Some(2));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains(&format!("{}:", invalid.display())),
        "{stdout}"
    );
}
