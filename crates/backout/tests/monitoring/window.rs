//! The window, from both ends: a healthy release turns `success` once every check passed for
//! the hold (and its window closes), and from then on, as after the point of no return and
//! after the window ran out, a rollback is refused quoting the plan's `after_close`.

use std::time::{Duration, Instant, SystemTime};

use backout_store::Event;

use crate::env::{LONG_HOLD, Monitoring, SHORT_HOLD, VERDICT_WITHIN};
use crate::monitoring;
use crate::watch::{after_close, kinds, measured, measurements, secs, verdicts};

/// A healthy release turns `success` once error-rate, p99-latency and health passed for the
/// hold; the window closes with a reason saying so. Returns the release.
pub fn success_after_the_hold(env: &Monitoring) -> String {
    let plan = env.plan("success.yaml", SHORT_HOLD);
    let started = Instant::now();
    let release = env.start_release(&plan, &[]);
    let done = env.watch(&release).finish(VERDICT_WITHIN);
    done.assert_code(0, "watch of a healthy release");
    let took = done.exited_at - started;
    eprintln!(
        "success {} after `backout start` (hold {SHORT_HOLD}, every 1s)",
        secs(took)
    );
    assert!(
        took >= Duration::from_secs(3),
        "success before the hold of {SHORT_HOLD}: {took:?}"
    );
    let out = done.stdout();
    assert!(out.contains("verdict: healthy"), "{out}");
    let verdict = out
        .lines()
        .find(|l| l.contains("verdict: success"))
        .unwrap_or_else(|| panic!("no success verdict:\n{out}"));
    assert!(
        verdict.contains("window closed: success"),
        "the verdict says the window closed: {verdict}"
    );
    for criterion in ["error-rate", "p99-latency", "health", "payments-alert"] {
        let lines: Vec<String> = out.lines().map(str::to_string).collect();
        assert!(
            measured(&lines, "passing", criterion) >= 1,
            "{criterion} was measured passing:\n{out}"
        );
        assert_eq!(
            measured(&lines, "failing", criterion) + measured(&lines, "inconclusive", criterion),
            0,
            "{criterion} never failed nor was inconclusive:\n{out}"
        );
    }

    let status = env.status(&release);
    assert_eq!(status["verdict"], "success", "{status:#}");
    assert_eq!(status["window_closed"], true, "{status:#}");
    assert_eq!(status["state"], "closed", "{status:#}");
    let reason = status["close_reason"].as_str().unwrap_or_default();
    assert!(reason.starts_with("success"), "close_reason: {reason:?}");
    let human = env.backout(&["status", &release]).stdout();
    assert!(
        human.contains("window: closed at") && human.contains(": success: "),
        "{human}"
    );

    let events = env.journal(&release);
    assert_eq!(
        verdicts(&events),
        ["healthy", "success"],
        "{:?}",
        kinds(&events)
    );
    for criterion in ["error-rate", "p99-latency", "health", "payments-alert"] {
        let measured = measurements(&events, criterion);
        assert!(!measured.is_empty(), "no measurement of {criterion}");
        assert!(
            measured.iter().all(|e| e.payload["class"] == "passing"),
            "{criterion}: {:?}",
            measured.iter().map(|e| &e.payload).collect::<Vec<_>>()
        );
    }
    let closed: Vec<&Event> = events
        .iter()
        .filter(|e| e.kind == "window_closed")
        .collect();
    assert_eq!(closed.len(), 1, "{:?}", kinds(&events));
    assert_eq!(closed[0].payload["verdict"], "success");
    assert!(
        closed[0].payload["reason"]
            .as_str()
            .is_some_and(|r| r.starts_with("success")),
        "{}",
        closed[0].payload
    );
    release
}

/// Rollbacks are refused (exit 5, quoting the plan's `after_close`) once the window closed: by
/// success, at the point of no return, and on time; a refused request journals nothing.
pub fn refusals_after_the_window(env: &Monitoring, succeeded: &str) {
    let instead = after_close(&env.reference);

    // Request after success.
    let out = env
        .backout(&["request", succeeded, "--reason", "x"])
        .code(5);
    let message = out.stderr();
    assert!(
        message.contains(&instead) && message.contains("success"),
        "{message}"
    );
    eprintln!("request after success: {}", message.trim());

    // The point of no return.
    let plan = env.plan("no-return.yaml", LONG_HOLD);
    let release = env.start_release(&plan, &[]);
    env.backout(&["checkpoint", &release, "expand-migration"])
        .code(0);
    assert_eq!(env.status(&release)["window_closed"], false);
    let out = env
        .backout(&["checkpoint", &release, "contract-migration"])
        .code(0);
    assert!(
        out.stderr()
            .contains("the rollback window is now closed (point of no return"),
        "{}",
        out.stderr()
    );
    let status = env.status(&release);
    assert_eq!(status["window_closed"], true, "{status:#}");
    assert_eq!(status["verdict"], "closed", "{status:#}");
    // Request after the point of no return.
    let out = env.backout(&["request", &release, "--reason", "x"]).code(5);
    let message = out.stderr();
    assert!(
        message.contains(&instead)
            && message.contains("point of no return: checkpoint `contract-migration` reached"),
        "{message}"
    );
    // Check after the point of no return.
    let out = env.backout(&["check", &release]).code(5);
    assert!(
        out.stdout().contains(
            "verdict: closed; window closed: point of no return: checkpoint \
             `contract-migration` reached"
        ),
        "{}",
        out.stdout()
    );
    let events = env.journal(&release);
    assert_eq!(
        kinds(&events),
        [
            "release_started",
            "checkpoint_reached",
            "window_closed",
            "verdict"
        ],
        "nothing for the refused request, no measurement once closed"
    );
    assert_eq!(verdicts(&events), ["closed"], "journaled by check");
    let closed = events.iter().find(|e| e.kind == "window_closed").unwrap();
    assert_eq!(closed.payload["checkpoint"], "contract-migration");
    assert_eq!(closed.payload["point_of_no_return"], true);

    // The window ran out: deployed five hours ago, `closes_after: 4h`.
    let at = monitoring::rfc3339(SystemTime::now() - Duration::from_secs(5 * 3600));
    let release = env.start_release(&plan, &["--at", &at]);
    // Request after the window ran out.
    let out = env.backout(&["request", &release, "--reason", "x"]).code(5);
    assert!(out.stderr().contains(&instead), "{}", out.stderr());
    // Check after the window ran out.
    let out = env.backout(&["check", &release]).code(5);
    assert!(
        out.stdout()
            .contains("verdict: closed; window closed: closed on time"),
        "{}",
        out.stdout()
    );
    let events = env.journal(&release);
    assert!(
        !kinds(&events).contains(&"rollback_requested")
            && measurements(&events, "health").is_empty(),
        "{:?}",
        kinds(&events)
    );
    assert_eq!(env.status(&release)["state"], "closed");
}
