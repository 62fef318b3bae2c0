//! Command deliveries with real `sh` processes.

use std::time::{Duration, Instant};

use backout_model::plan::Event;
use backout_notify::{Deliverer, DeliveryConfig, DeliveryError, Receipt, Target, render};

use crate::common::full_notice;

async fn run(
    command: &str,
    dir: Option<&std::path::Path>,
    timeout: Duration,
) -> Result<Receipt, DeliveryError> {
    let deliverer = Deliverer::new(DeliveryConfig {
        timeout,
        ..DeliveryConfig::default()
    })
    .expect("the default configuration works");
    let notice = full_notice(Event::Failed);
    let message = render(&notice, None).expect("built-in templates render");
    let target = Target::Command {
        command: command.to_owned(),
        dir: dir.map(|d| d.to_path_buf()),
    };
    deliverer.deliver(&target, &notice, &message).await
}

#[tokio::test]
async fn the_notice_arrives_on_stdin_with_the_event_in_the_environment() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let receipt = run(
        r#"cat > stdin.json && printf '%s %s' "$BACKOUT_EVENT" "$BACKOUT_EVENT_ID" > env.txt"#,
        Some(dir.path()),
        Duration::from_secs(10),
    )
    .await
    .expect("exit 0 is delivered");
    assert_eq!(receipt.detail, "exit 0");

    let stdin: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("stdin.json")).expect("written"))
            .expect("JSON on stdin");
    assert_eq!(
        stdin,
        serde_json::to_value(full_notice(Event::Failed)).expect("a notice serializes")
    );
    let env = std::fs::read_to_string(dir.path().join("env.txt")).expect("written");
    assert_eq!(env, "failed rel-42.17");
}

#[tokio::test]
async fn a_failing_command_is_retried_with_its_first_error_line() {
    let error = run(
        "echo 'pager service unreachable' >&2; echo second line >&2; exit 3",
        None,
        Duration::from_secs(10),
    )
    .await
    .expect_err("exit 3 is not delivered");
    assert!(error.retryable);
    assert_eq!(
        error.message,
        "the command failed (exit 3): pager service unreachable"
    );
}

#[tokio::test]
async fn a_command_that_reads_nothing_still_counts() {
    run("exit 0", None, Duration::from_secs(10))
        .await
        .expect("exit 0 is delivered without reading stdin");
}

#[tokio::test]
async fn at_the_deadline_the_whole_process_group_is_killed() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let started = Instant::now();
    let error = run(
        "sleep 60 & echo $! > bg.pid; sleep 60",
        Some(dir.path()),
        Duration::from_millis(500),
    )
    .await
    .expect_err("a command past its deadline is not delivered");
    assert!(error.retryable);
    assert!(
        error.message.contains("did not finish"),
        "{}",
        error.message
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );

    // The background `sleep` was in the group: it is gone (or a zombie waiting for its reaper).
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).expect("the pid was written");
    let pid = pid.trim();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|s| {
                s.rsplit_once(')')
                    .map(|(_, rest)| rest.trim().chars().next())
            })
            .flatten();
        if matches!(state, None | Some('Z')) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "background sleep {pid} still runs"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test]
async fn background_jobs_are_killed_and_reaped_when_we_are_their_subreaper() {
    // As the executor does: orphans of the command's group become our children.
    let _ = rustix::process::set_child_subreaper(Some(rustix::process::getpid()));
    let dir = tempfile::tempdir().expect("a temporary directory");
    run(
        "sleep 60 & echo $! > bg.pid",
        Some(dir.path()),
        Duration::from_secs(10),
    )
    .await
    .expect("exit 0 is delivered");
    let pid = std::fs::read_to_string(dir.path().join("bg.pid")).expect("the pid was written");
    // Neither running nor a zombie: gone.
    assert!(
        !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
        "background sleep {} is left over",
        pid.trim()
    );
}
