//! `backout run` on a terminal shows progress bars (a bar per running step against its
//! `expected`, an overall bar with the time left), run in a real tmux pane and read back with
//! `capture-pane`; the plain lines stay, and the bars are gone when the run ends. Needs
//! `/usr/bin/tmux` (`apt-get install tmux`): fails loudly without it. Into a pipe, the same
//! run prints only the plain lines (the other end-to-end tests read them).

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use support::{Sandbox, assert_code, stderr, wait_until};

const BODY: &str = r#"procedure:
  steps:
    - id: wait-for-go
      expected: 30s
      run: 'while [ ! -e "${WORK}/go" ]; do sleep 0.05; done'
    - id: after
      needs: [wait-for-go]
      expected: 1s
      run: 'true'
"#;

fn tmux(socket: &Path, args: &[&str]) -> std::process::Output {
    Command::new("tmux")
        .arg("-S")
        .arg(socket)
        .args(args)
        .output()
        .expect("tmux runs (apt-get install tmux)")
}

fn pane(socket: &Path) -> String {
    String::from_utf8_lossy(&tmux(socket, &["capture-pane", "-p", "-t", "run"]).stdout).into_owned()
}

#[test]
fn run_shows_bars_in_a_terminal_and_plain_lines_in_a_pipe() {
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", BODY);
    let socket = sandbox.file("tmux.sock");
    let bin = assert_cmd::cargo::cargo_bin("backout");
    let script = format!(
        "cd '{}' && BACKOUT_DATABASE_URL='{}' WORK='{}' BACKOUT_DELIVERY_GRACE=0s '{}' run --break-glass --reason test plan.yaml; echo EXIT=$?; sleep 60",
        sandbox.path().display(),
        sandbox.database_url(),
        sandbox.path().display(),
        bin.display()
    );
    let out = tmux(
        &socket,
        &[
            "new-session",
            "-d",
            "-s",
            "run",
            "-x",
            "150",
            "-y",
            "30",
            &script,
        ],
    );
    assert!(out.status.success(), "tmux new-session: {out:?}");
    let cleanup = scopeguard(&socket);

    // While the first step runs: its bar against 30s and the overall bar.
    wait_until(Duration::from_secs(20), "the bars in the pane", || {
        let text = pane(&socket);
        text.contains("/ expected 30s") && text.contains("0/2 steps")
    });
    let during = pane(&socket);
    assert!(
        during.contains("▶ wait-for-go (expected 30s)"),
        "the plain line stays above the bars:\n{during}"
    );
    sandbox.write("go", "");
    wait_until(Duration::from_secs(20), "the run's end in the pane", || {
        pane(&socket).contains("EXIT=0")
    });
    let after = pane(&socket);
    assert!(after.contains("✓ wait-for-go"), "{after}");
    assert!(after.contains("✓ after"), "{after}");
    assert!(
        !after.contains("/ expected") && !after.contains(" steps "),
        "the bars are cleared at the end:\n{after}"
    );
    drop(cleanup);

    // Into a pipe: the lines only, no bar and no cursor movement.
    let sandbox = Sandbox::new();
    sandbox.plan("plan.yaml", &BODY.replace("30s", "2s"));
    sandbox.write("go", "");
    let out = sandbox.run(&["run", "--break-glass", "--reason", "test", "plan.yaml"]);
    assert_code(&out, 0, "run into a pipe");
    let err = stderr(&out);
    assert!(!err.contains('\u{1b}'), "no escape sequences:\n{err}");
    assert!(!err.contains("/ expected"), "no bars:\n{err}");
    assert!(err.contains("▶ wait-for-go (expected 2s)"), "{err}");
}

/// Kills the tmux server when the test ends, passing or not.
struct Guard<'a>(&'a Path);

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        let _ = tmux(self.0, &["kill-server"]);
    }
}

fn scopeguard(socket: &Path) -> Guard<'_> {
    Guard(socket)
}
