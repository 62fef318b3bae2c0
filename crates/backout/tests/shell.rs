//! The shell around backout: completion scripts that bash really loads and completes with, the
//! man page, every environment variable backout reads named in `--help`, and `--color` with
//! NO_COLOR and CLICOLOR_FORCE decided in one place.

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the repository root")
}

/// `backout` with no colour variables of the test's own environment leaking in.
fn backout() -> Command {
    let mut cmd = Command::cargo_bin("backout").expect("the backout binary is built");
    for var in ["NO_COLOR", "CLICOLOR", "CLICOLOR_FORCE", "BACKOUT_SERVER"] {
        cmd.env_remove(var);
    }
    cmd
}

fn stdout(output: &Output) -> String {
    String::from_utf8(output.stdout.clone()).expect("UTF-8 output")
}

#[test]
fn bash_completion_loads_and_completes_subcommands_and_values() {
    let output = backout()
        .args(["completions", "bash"])
        .output()
        .expect("runs");
    assert!(output.status.success());
    let script = stdout(&output);
    for word in ["lint", "decide", "serve", "completions", "man", "--color"] {
        assert!(script.contains(word), "the script knows `{word}`");
    }
    // Bash itself sources the script and completes with it.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("backout.bash");
    std::fs::write(&path, &script).expect("write the script");
    let complete = |words: &str, cword: usize, current: &str, previous: &str| -> String {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={cword}; _backout backout '{current}' '{previous}'; echo \"${{COMPREPLY[@]}}\"",
            path.display()
        );
        let out = std::process::Command::new("bash")
            .args(["--norc", "-c", &program])
            .output()
            .expect("bash runs");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    assert_eq!(complete("backout li", 1, "li", "backout"), "lint");
    let shells = complete("backout completions ''", 2, "", "completions");
    for shell in ["bash", "zsh", "fish", "powershell"] {
        assert!(shells.split(' ').any(|s| s == shell), "{shells}");
    }
    let colors = complete("backout --color ''", 2, "", "--color");
    assert_eq!(colors, "auto always never");
}

#[test]
fn every_shell_gets_a_script_naming_backout() {
    for shell in ["zsh", "fish", "powershell"] {
        let output = backout()
            .args(["completions", shell])
            .output()
            .expect("runs");
        assert!(output.status.success(), "{shell}");
        let script = stdout(&output);
        assert!(script.contains("backout"), "{shell}");
        assert!(script.contains("rehearse"), "{shell}");
    }
    let output = backout()
        .args(["completions", "tcsh"])
        .output()
        .expect("runs");
    assert_eq!(
        output.status.code(),
        Some(2),
        "an unknown shell is a usage error"
    );
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(
        error.contains("bash") && error.contains("powershell"),
        "{error}"
    );
}

#[test]
fn man_renders_a_section_one_page() {
    let output = backout().arg("man").output().expect("runs");
    assert!(output.status.success());
    let page = stdout(&output);
    assert!(page.contains(".TH backout 1"), "{page}");
    assert!(page.contains(".SH NAME"));
    assert!(page.contains(".SH SUBCOMMANDS"));
    assert!(
        page.contains("BACKOUT_SERVER"),
        "the environment is in the page"
    );
    // man(1) itself formats it, when it is installed.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("backout.1");
    std::fs::write(&path, &page).expect("write the page");
    if let Ok(formatted) = std::process::Command::new("man")
        .args(["-l", "-P", "cat"])
        .arg(&path)
        .env("MANWIDTH", "100")
        .output()
        && formatted.status.success()
    {
        let text = String::from_utf8_lossy(&formatted.stdout);
        assert!(text.contains("backout"), "{text}");
        assert!(text.contains("completions"), "{text}");
    }
}

/// Every `BACKOUT_*` variable the code reads is named in the top-level `--help`. The
/// variables backout *sets* for the steps and channels it runs are not read and are skipped.
#[test]
fn help_names_every_environment_variable_backout_reads() {
    const SET_FOR_CHILDREN: &[&str] = &[
        "BACKOUT_SERVICE",
        "BACKOUT_ROLLBACK_TO",
        "BACKOUT_RELEASE_VERSION",
        "BACKOUT_ENVIRONMENT",
        "BACKOUT_STEP_ID",
        "BACKOUT_RUN_ID",
        "BACKOUT_EVENT",
        "BACKOUT_EVENT_ID",
        "BACKOUT_ATTEMPT",
        "BACKOUT_OUTPUT_",
        // Read only by the PostgreSQL test support.
        "BACKOUT_TEST_POSTGRES_URL",
    ];
    let output = backout().arg("--help").output().expect("runs");
    assert!(output.status.success());
    let help = stdout(&output);
    let mut read = std::collections::BTreeSet::new();
    let mut stack = vec![repo().join("crates")];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).expect("readable") {
            let path = entry.expect("entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                if name != "tests" && name != "target" {
                    stack.push(path);
                }
            } else if name.ends_with(".rs") {
                let text = std::fs::read_to_string(&path).expect("UTF-8 source");
                let code = text.split("#[cfg(test)]").next().unwrap_or("");
                for (at, _) in code.match_indices("\"BACKOUT_") {
                    let var: String = code[at + 1..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    if !SET_FOR_CHILDREN.iter().any(|s| var.starts_with(s)) {
                        read.insert(var);
                    }
                }
            }
        }
    }
    for expected in [
        "BACKOUT_SERVER",
        "BACKOUT_TOKEN",
        "BACKOUT_PUBLIC_URL",
        "BACKOUT_LOG",
    ] {
        assert!(
            read.contains(expected),
            "the scan finds {expected}: {read:?}"
        );
    }
    let missing: Vec<&String> = read.iter().filter(|v| !help.contains(v.as_str())).collect();
    assert!(missing.is_empty(), "not in --help: {missing:?}");
    for var in ["NO_COLOR", "CLICOLOR_FORCE"] {
        assert!(help.contains(var), "{var}");
    }
}

fn lint_invalid(args: &[&str], env: &[(&str, &str)]) -> Vec<u8> {
    let plan = repo().join("fixtures/plans/invalid/44-channel-with-two-kinds.yaml");
    let mut cmd = backout();
    cmd.args(args).arg("lint").arg(&plan);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let output = cmd.output().expect("runs");
    assert_eq!(output.status.code(), Some(2), "an invalid plan");
    output.stdout
}

#[test]
fn color_flag_and_variables_decide_in_one_place() {
    let coloured = |out: &[u8]| out.contains(&0x1b);
    // Into a pipe: no colour by default, colour when asked.
    assert!(!coloured(&lint_invalid(&[], &[])));
    assert!(coloured(&lint_invalid(&["--color", "always"], &[])));
    assert!(coloured(&lint_invalid(&[], &[("CLICOLOR_FORCE", "1")])));
    // NO_COLOR wins over CLICOLOR_FORCE; the flag wins over both.
    assert!(!coloured(&lint_invalid(
        &[],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]
    )));
    assert!(coloured(&lint_invalid(
        &["--color", "always"],
        &[("NO_COLOR", "1")]
    )));
    assert!(!coloured(&lint_invalid(
        &["--color", "never"],
        &[("CLICOLOR_FORCE", "1")]
    )));
    // The flag is global: after the subcommand too.
    let plan = repo().join("fixtures/plans/invalid/44-channel-with-two-kinds.yaml");
    let output = backout()
        .arg("lint")
        .arg(&plan)
        .args(["--color", "always"])
        .output()
        .expect("runs");
    assert!(coloured(&output.stdout));
    let output = backout()
        .args(["--color", "sometimes", "lint"])
        .arg(&plan)
        .output()
        .expect("runs");
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("auto"));
}
