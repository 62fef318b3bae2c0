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

/// Fixture names follow `NN-short-name.yaml` (or `NNN-`, past 99) with unique numbers.
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

/// A plan with `n` steps that are each one B080 warning (not idempotent, no on_failure).
fn plan_with_risky_steps(n: usize) -> String {
    let base = std::fs::read_to_string(fixtures_dir().join("valid/search-flag.yaml"))
        .expect("the reference plan");
    let (head, rest) = base.split_once("procedure:\n").expect("a procedure");
    let tail = &rest[rest.find("\ncontingency:").expect("a contingency section")..];
    let steps: String = (0..n)
        .map(|i| format!("    - id: s{i}\n      run: \"true\"\n      expected: 1s\n"))
        .collect();
    format!("{head}procedure:\n  steps:\n{steps}{tail}")
}

/// Thousands of one warning are unreadable: past the first few, a code's repeats become one
/// line with their line numbers; `--all` shows each; JSON always has them all.
#[test]
fn repeats_of_a_code_are_summarised_unless_all() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("risky.yaml");
    std::fs::write(&path, plan_with_risky_steps(20)).expect("written");
    let file = path.to_str().expect("UTF-8 path");

    let grouped = lint(&[file]);
    assert_eq!(grouped.code, 0, "{}", grouped.stdout);
    assert_eq!(
        grouped.stdout.matches("warning[B080]").count(),
        10,
        "{}",
        grouped.stdout
    );
    // The first ten are shown, the other ten listed by line.
    let summary = grouped
        .stdout
        .lines()
        .find(|l| l.contains("more B080"))
        .unwrap_or_else(|| panic!("no summary line:\n{}", grouped.stdout));
    assert!(
        summary.contains("… and 10 more B080 warnings at lines ")
            && summary.contains("(--all shows each)"),
        "{summary}"
    );
    // 20 B080 and search-flag's unused contingency (B026).
    assert!(
        grouped
            .stdout
            .ends_with(&format!("{file}: ok with 21 warnings\n")),
        "{}",
        grouped.stdout
    );

    let all = lint(&["--all", file]);
    assert_eq!(all.stdout.matches("warning[B080]").count(), 20);
    assert!(!all.stdout.contains("more B080"));

    let json = lint(&["--format", "json", file]);
    let value: Value = serde_json::from_str(&json.stdout).expect("JSON output");
    let b080 = value
        .as_array()
        .expect("an array")
        .iter()
        .filter(|d| d["code"] == "B080")
        .count();
    assert_eq!(b080, 20);
}

/// Few repeats are shown in full: grouping only starts past ten of one code.
#[test]
fn a_few_repeats_are_all_shown() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("risky.yaml");
    std::fs::write(&path, plan_with_risky_steps(10)).expect("written");
    let file = path.to_str().expect("UTF-8 path");
    let out = lint(&[file]);
    assert_eq!(
        out.stdout.matches("warning[B080]").count(),
        10,
        "{}",
        out.stdout
    );
    assert!(!out.stdout.contains("more B080"));
}

/// `--format github`: one workflow command per diagnostic, at the JSON output's line and column,
/// with the exit code of plain lint.
#[test]
fn github_annotations_carry_file_line_and_column() {
    let relative = "fixtures/plans/invalid/100-promql-unbalanced-parenthesis.yaml";
    let out = lint(&["--format", "github", relative]);
    assert_eq!(out.code, 2, "{}", out.stdout);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines.len(), 1, "{}", out.stdout);
    assert!(
        lines[0].starts_with(&format!(
            "::error file={relative},line=23,col=66,title=backout B035::B035: the PromQL query"
        )),
        "{}",
        lines[0]
    );
    assert!(
        lines[0].contains("%0Ahelp: "),
        "help on its own line: {}",
        lines[0]
    );
    let warned = lint(&[
        "--format",
        "github",
        "fixtures/plans/invalid/107-worst-case-over-budget.yaml",
    ]);
    assert_eq!(warned.code, 0);
    assert!(warned.stdout.starts_with(
        "::warning file=fixtures/plans/invalid/107-worst-case-over-budget.yaml,line=77,col=20,"
    ));
}

/// `--format sarif`: a SARIF 2.1.0 log. The published schema cannot be fetched here (no
/// network), so this checks by hand what the schema requires of every object this output
/// has (log: version, runs; run: tool.driver.name; rule: id; result: message.text, a level
/// from its enum, a location with a region whose startLine/startColumn are ≥ 1), plus that
/// each result matches the JSON diagnostic at the same place and its rule by index.
#[test]
fn sarif_log_has_the_structure_sarif_2_1_0_requires() {
    let files = [
        "fixtures/plans/invalid/28-unknown-needs.yaml",
        "fixtures/plans/invalid/107-worst-case-over-budget.yaml",
        "fixtures/plans/valid/cluster-upgrade.yaml",
    ];
    let mut args = vec!["--format", "sarif"];
    args.extend(files);
    let out = lint(&args);
    assert_eq!(out.code, 2, "an error in one file: exit 2 as always");
    let log: Value = serde_json::from_str(&out.stdout).expect("SARIF is JSON");
    assert_eq!(log["version"], "2.1.0");
    assert_eq!(
        log["$schema"],
        "https://json.schemastore.org/sarif-2.1.0.json"
    );
    let runs = log["runs"].as_array().expect("runs is an array");
    assert_eq!(runs.len(), 1);
    let run = &runs[0];
    assert_eq!(run["tool"]["driver"]["name"], "backout");
    assert!(run["tool"]["driver"]["version"].is_string());
    assert!(
        ["utf16CodeUnits", "unicodeCodePoints"]
            .contains(&run["columnKind"].as_str().expect("columnKind"))
    );
    let rules = run["tool"]["driver"]["rules"].as_array().expect("rules");
    for rule in rules {
        let id = rule["id"].as_str().expect("every rule has an id");
        assert!(id.starts_with('B') && id.len() == 4, "{id}");
        assert!(rule["shortDescription"]["text"].is_string());
    }
    let results = run["results"].as_array().expect("results is an array");

    let mut json_args = vec!["--format", "json"];
    json_args.extend(files);
    let json: Value = serde_json::from_str(&lint(&json_args).stdout).expect("JSON output");
    let json = json.as_array().expect("an array");
    assert_eq!(results.len(), json.len());
    assert!(results.len() >= 2);
    for (result, expected) in results.iter().zip(json) {
        assert_eq!(result["ruleId"], expected["code"]);
        let index = result["ruleIndex"].as_u64().expect("ruleIndex") as usize;
        assert_eq!(
            rules[index]["id"], expected["code"],
            "ruleIndex points at its rule"
        );
        let level = result["level"].as_str().expect("level");
        assert!(["none", "note", "warning", "error"].contains(&level));
        assert_eq!(level, expected["severity"].as_str().expect("severity"));
        let text = result["message"]["text"].as_str().expect("message.text");
        assert!(text.starts_with(expected["message"].as_str().expect("message")));
        let locations = result["locations"].as_array().expect("locations");
        assert_eq!(locations.len(), 1);
        let physical = &locations[0]["physicalLocation"];
        assert_eq!(physical["artifactLocation"]["uri"], expected["file"]);
        let region = &physical["region"];
        assert!(region["startLine"].as_u64().expect("startLine") >= 1);
        assert!(region["startColumn"].as_u64().expect("startColumn") >= 1);
        assert_eq!(region["startLine"], expected["line"]);
        assert_eq!(region["startColumn"], expected["column"]);
    }
}
