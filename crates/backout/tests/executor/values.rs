//! What reaches a step and what is kept of it: outputs of earlier steps and the release as
//! environment variables, secrets resolved for the step but redacted from everything stored or
//! shown, and `exec` arguments passed without a shell.

use crate::support::Sandbox;

#[test]
fn outputs_reach_later_steps_as_environment_variables() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: read-rev
      run: "echo 'rev-42; touch pwned'"
      outputs: { rev: stdout }
    - id: use-rev
      needs: [read-rev]
      run: 'test "$BACKOUT_OUTPUT_READ_REV_REV" = "rev-42; touch pwned" && touch "${WORK}/used"'
"#,
    );
    sandbox.break_glass(&plan).run().code(0);
    assert!(
        sandbox.exists("used"),
        "the output did not arrive as BACKOUT_OUTPUT_READ_REV_REV"
    );
    assert!(!sandbox.exists("pwned"), "an output became code");
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(
        status.step("read-rev")["outputs"]["rev"],
        "rev-42; touch pwned"
    );
}

#[test]
fn steps_see_the_release_and_the_run_id() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: env
      run: 'env | grep "^BACKOUT_" | sort > "${WORK}/env"'
"#,
    );
    sandbox.break_glass(&plan).run().code(0);
    let run = sandbox.only_run();
    let env = sandbox.read("env");
    for line in [
        "BACKOUT_RELEASE_VERSION=2.0.0",
        "BACKOUT_ROLLBACK_TO=1.9.0",
        &format!("BACKOUT_RUN_ID={run}"),
        "BACKOUT_STEP_ID=env",
    ] {
        assert!(env.lines().any(|l| l == line), "missing {line} in:\n{env}");
    }
}

#[test]
fn secrets_are_resolved_for_the_step_and_redacted_from_what_is_kept() {
    let secret = "hunter2-very-secret";
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: call
      env: { TOKEN: "${MY_SECRET}" }
      run: 'echo "token=$TOKEN"; echo "err $TOKEN" >&2; printf %s "$TOKEN" > "${WORK}/token"'
"#,
    );
    // The secret never reaches the terminal.
    sandbox
        .break_glass(&plan)
        .env("MY_SECRET", secret)
        .run()
        .code(0)
        .stdout_lacks(secret)
        .stderr_lacks(secret);
    assert_eq!(
        sandbox.read("token"),
        secret,
        "the step should get the real value"
    );

    let run = sandbox.only_run();
    let status = sandbox.status(&run);
    let step = status.step("call");
    assert_eq!(step["stdout"], "token=${MY_SECRET}\n");
    assert_eq!(step["stderr"], "err ${MY_SECRET}\n");
    sandbox.backout(&["report", &run]).stdout_lacks(secret);
    assert!(!status.0.to_string().contains(secret));
    // Nothing in the store's files (database, WAL) holds it either.
    for entry in std::fs::read_dir(sandbox.path()).expect("list sandbox") {
        let path = entry.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        if name.starts_with("backout.db") {
            let bytes = std::fs::read(&path).expect("read store file");
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{name} contains the secret"
            );
        }
    }
}

#[test]
fn exec_steps_pass_their_arguments_without_a_shell() {
    let sandbox = Sandbox::new();
    let plan = sandbox.plan(
        "plan.yaml",
        r#"procedure:
  steps:
    - id: args
      exec: ["printf", "<%s>", "two words", "$HOME", "; touch pwned", "`id`"]
"#,
    );
    sandbox.break_glass(&plan).run().code(0);
    let status = sandbox.status(&sandbox.only_run());
    assert_eq!(
        status.step("args")["stdout"],
        "<two words><$HOME><; touch pwned><`id`>"
    );
    assert!(!sandbox.exists("pwned"));
}
