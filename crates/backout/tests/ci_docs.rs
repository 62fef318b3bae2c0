//! `docs/ci.md` as a pipeline would run it: the commands of its GitHub Actions job (`run:`) and
//! of its GitLab CI job (`script:`) are read from the document and run by `bash` with the built
//! `backout` first on `PATH`, `BACKOUT_SERVER`/`BACKOUT_TOKEN` pointing at a real `backout
//! serve` and no local store: they fail on a broken plan (with annotations at its lines) and on
//! an untested one, and pass once the plan was rehearsed (evidence the server holds).

mod support;

use std::path::Path;
use std::process::{Command, Output};

use support::server::{Server, token};
use support::{Sandbox, stderr, stdout};

const DOC: &str = include_str!("../../../docs/ci.md");

const BODY: &str = r#"procedure:
  steps:
    - { id: downgrade, run: "true", expected: 1s }
testing: { rehearse_in: staging, max_age: 30d }
"#;

/// The first fenced block after `heading`.
fn block(heading: &str) -> &'static str {
    let from = DOC
        .find(heading)
        .unwrap_or_else(|| panic!("docs/ci.md has no {heading:?}"));
    let rest = &DOC[from..];
    let start = rest.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let end = rest[start..].find("```").expect("the block ends");
    &rest[start..start + end]
}

/// The GitHub job's `run:` commands.
fn github_commands() -> Vec<String> {
    block("## GitHub Actions")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("run: "))
        .map(str::to_string)
        .collect()
}

/// The GitLab job's `before_script:` and `script:` items.
fn gitlab_commands() -> Vec<String> {
    let mut out = Vec::new();
    let mut in_script = false;
    for line in block("## GitLab CI").lines() {
        let trimmed = line.trim();
        if trimmed == "script:" || trimmed == "before_script:" {
            in_script = true;
        } else if let Some(item) = trimmed.strip_prefix("- ").filter(|_| in_script) {
            out.push(item.to_string());
        } else if !trimmed.is_empty() && !trimmed.starts_with('#') {
            in_script = false;
        }
    }
    out
}

/// The commands a test can run: the `backout` ones. The install line is the only other
/// (it installs from a placeholder address); anything else would be a command nobody tests.
fn backout_lines(commands: Vec<String>, job: &str) -> Vec<String> {
    let (install, rest): (Vec<String>, Vec<String>) = commands
        .into_iter()
        .partition(|c| c.starts_with("cargo install "));
    assert_eq!(install.len(), 1, "{job}: one install line");
    assert!(!rest.is_empty(), "{job}: no backout command");
    for c in &rest {
        assert!(
            c.starts_with("backout "),
            "{job}: `{c}` is not a backout command"
        );
    }
    rest
}

/// Runs `command` as a CI job's shell would, in `dir`, against `server` with `token` and with
/// no local store to fall back on (HOME is empty).
fn job(dir: &Path, home: &Path, server: &str, token: &str, command: &str) -> Output {
    let bin = assert_cmd::cargo::cargo_bin("backout");
    let path = format!(
        "{}:{}",
        bin.parent().expect("the binary's directory").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new("bash")
        .args(["-eo", "pipefail", "-c", command])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path)
        .env("HOME", home)
        .env("XDG_DATA_HOME", home.join("data"))
        .env("BACKOUT_SERVER", server)
        .env("BACKOUT_TOKEN", token)
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs")
}

#[test]
fn the_documented_ci_jobs_fail_on_a_broken_or_untested_plan_and_pass_on_a_rehearsed_one() {
    let sandbox = Sandbox::new();
    let server = Server::start(&sandbox);
    let ci = token(&sandbox, "ci@example.com", "viewer");
    let checkout = tempfile::tempdir().expect("a checkout directory");
    let home = tempfile::tempdir().expect("an empty home");
    let jobs = [
        ("GitHub Actions", backout_lines(github_commands(), "GitHub")),
        ("GitLab CI", backout_lines(gitlab_commands(), "GitLab")),
    ];
    let run_all = |what: &str, expect: i32| -> Vec<Output> {
        let mut outs = Vec::new();
        for (name, commands) in &jobs {
            let mut failed = None;
            for command in commands {
                let out = job(checkout.path(), home.path(), &server.base, &ci, command);
                if !out.status.success() {
                    failed = Some(out);
                    break;
                }
                outs.push(out);
            }
            let code = failed.as_ref().map_or(0, |o| o.status.code().unwrap_or(-1));
            assert_eq!(
                code,
                expect,
                "{name} on {what}:\n{}\n{}",
                failed.as_ref().map(stdout).unwrap_or_default(),
                failed.as_ref().map(stderr).unwrap_or_default()
            );
            outs.extend(failed);
        }
        outs
    };

    // A broken plan: a step needs one that does not exist.
    let broken = support::plan(&BODY.replace(
        "{ id: downgrade, run: \"true\"",
        "{ id: downgrade, needs: [nowhere], run: \"true\"",
    ));
    std::fs::write(checkout.path().join("backout.yaml"), &broken).expect("write");
    let line = broken
        .lines()
        .position(|l| l.contains("nowhere"))
        .expect("the broken line")
        + 1;
    let outs = run_all("a broken plan", 2);
    let github = stdout(&outs[0]);
    assert!(
        github.contains(&format!("::error file=backout.yaml,line={line},")),
        "an annotation at line {line}:\n{github}"
    );
    assert!(
        stdout(&outs[1]).contains(&format!("backout.yaml:{line}:")),
        "the GitLab log names the line:\n{}",
        stdout(&outs[1])
    );

    // A valid plan nobody rehearsed: the server has no evidence of it.
    let good = support::plan(BODY);
    std::fs::write(checkout.path().join("backout.yaml"), &good).expect("write");
    let testing = good
        .lines()
        .position(|l| l.starts_with("testing:"))
        .expect("the testing line")
        + 1;
    let outs = run_all("an untested plan", 2);
    let github = stdout(&outs[0]);
    assert!(
        github.contains(&format!("::error file=backout.yaml,line={testing},"))
            && github.contains("B084"),
        "B084 at the testing line {testing}:\n{github}"
    );
    assert!(stdout(&outs[1]).contains("B084"), "{}", stdout(&outs[1]));

    // Rehearsed (the evidence is in the server's store, not in the job's): both jobs pass.
    std::fs::write(sandbox.file("backout.yaml"), &good).expect("write");
    support::assert_code(&sandbox.run(&["rehearse", "backout.yaml"]), 0, "rehearse");
    run_all("a rehearsed plan", 0);
}
