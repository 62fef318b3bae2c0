//! What requires a rollback: a critical alert in Alertmanager trips `payments-alert`, and a
//! degraded exporter trips `error-rate` with its value and threshold, all of it journaled.

use std::time::{Duration, Instant, SystemTime};

use crate::env::{LONG_HOLD, Monitoring, VERDICT_WITHIN};
use crate::monitoring;
use crate::watch::{kinds, line_of, measured, measurements, reason_in, secs, verdicts};

/// A critical `CheckoutPaymentsFailing` alert in Alertmanager trips `payments-alert`
/// (`trips_after: 1`): the watch exits 3. The alert is resolved afterwards.
pub fn an_alert_requires_a_rollback(env: &Monitoring) {
    let plan = env.plan("alert.yaml", LONG_HOLD);
    let release = env.start_release(&plan, &[]);
    let mut watch = env.watch(&release);
    watch.wait_until("a passing payments-alert", VERDICT_WITHIN, |lines| {
        measured(lines, "passing", "payments-alert") >= 1
    });
    let labels = [
        ("alertname", "CheckoutPaymentsFailing"),
        ("severity", "critical"),
        ("service", "checkout"),
    ];
    let fired = SystemTime::now();
    let posted = Instant::now();
    monitoring::post_alert(
        &env.alertmanager,
        &labels,
        fired,
        fired + Duration::from_secs(600),
    );
    let done = watch.finish(VERDICT_WITHIN);
    done.assert_code(3, "watch while the alert fires");
    let verdict_at = done
        .first("verdict: rollback_required")
        .expect("a rollback_required verdict line");
    eprintln!(
        "rollback_required {} after the alert was posted (exit after {})",
        secs(verdict_at - posted),
        secs(done.exited_at - posted)
    );
    let out = done.stdout();
    let tripped = line_of(&out, "TRIPPED", "payments-alert")
        .unwrap_or_else(|| panic!("payments-alert not TRIPPED:\n{out}"));
    assert!(
        reason_in(tripped, "payments-alert").starts_with(
            "alert CheckoutPaymentsFailing firing: {alertname=\"CheckoutPaymentsFailing\", \
             service=\"checkout\", severity=\"critical\"}"
        ),
        "{tripped}"
    );
    assert!(
        out.contains("verdict: rollback_required (payments-alert)"),
        "{out}"
    );

    let status = env.status(&release);
    assert_eq!(status["verdict"], "rollback_required", "{status:#}");
    let events = env.journal(&release);
    assert_eq!(
        verdicts(&events),
        ["healthy", "rollback_required"],
        "{:?}",
        kinds(&events)
    );

    // Resolve the alert, and wait until Alertmanager no longer lists it as active.
    monitoring::post_alert(&env.alertmanager, &labels, fired, SystemTime::now());
    let started = Instant::now();
    let path = format!(
        "/api/v2/alerts?active=true&filter={}",
        monitoring::url_encode("alertname=\"CheckoutPaymentsFailing\"")
    );
    loop {
        let answer = env.alertmanager.get(&path);
        if matches!(&answer, Ok((200, body)) if body.trim() == "[]") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the alert is still active: {answer:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The exporter degrades (5xx from 0.1/s to 1000/s next to 100/s OK) after two healthy rounds:
/// `error-rate` (`> 0.02`, `trips_after: 2`) trips, the watch exits 3 showing the value and
/// the threshold, `status` and `check` show why, and the journal has every measurement and the
/// verdict with its evidence.
pub fn a_degraded_exporter_requires_a_rollback(env: &Monitoring) {
    let plan = env.plan("degrade.yaml", LONG_HOLD);
    let release = env.start_release(&plan, &[]);
    let mut watch = env.watch(&release);
    watch.wait_until("two healthy rounds", VERDICT_WITHIN, |lines| {
        measured(lines, "passing", "error-rate") >= 2
    });
    env.traffic.set_degraded(true);
    let degraded = Instant::now();
    let done = watch.finish(VERDICT_WITHIN);
    done.assert_code(3, "watch of a degraded release");
    let verdict_at = done
        .first("verdict: rollback_required")
        .expect("a rollback_required verdict line");
    eprintln!(
        "rollback_required {} after the exporter degraded (exit after {})",
        secs(verdict_at - degraded),
        secs(done.exited_at - degraded)
    );
    assert!(done.exited_at - degraded < VERDICT_WITHIN);

    let out = done.stdout();
    assert!(out.contains("verdict: healthy"), "{out}");
    assert!(
        out.contains("verdict: rollback_required (error-rate)"),
        "{out}"
    );
    let failing = line_of(&out, "failing", "error-rate")
        .unwrap_or_else(|| panic!("error-rate failed once before it tripped:\n{out}"));
    assert!(failing.contains("(1 failing in a row)"), "{failing}");
    let tripped = line_of(&out, "TRIPPED", "error-rate")
        .unwrap_or_else(|| panic!("error-rate not TRIPPED:\n{out}"));
    let reason = reason_in(tripped, "error-rate");
    let (value, rest) = reason.split_once(' ').expect("value, then the condition");
    let value: f64 = value
        .parse()
        .unwrap_or_else(|_| panic!("a value first: {tripped}"));
    assert!(value > 0.02 && value < 1.0, "{tripped}");
    assert!(
        rest.starts_with("is above 0.02 (2 failing in a row)"),
        "{tripped}"
    );
    eprintln!("watch showed: {tripped}");
    for criterion in ["p99-latency", "health", "payments-alert"] {
        assert!(
            line_of(&out, "passing", criterion).is_some(),
            "{criterion} still passing:\n{out}"
        );
    }

    // Status: the verdict and why, as the journal has it.
    let status = env.status(&release);
    assert_eq!(status["verdict"], "rollback_required", "{status:#}");
    assert_eq!(status["window_closed"], false, "{status:#}");
    let criteria = status["criteria"].as_array().expect("criteria");
    let state = |id: &str| {
        criteria
            .iter()
            .find(|c| c["id"] == id)
            .unwrap_or_else(|| panic!("{id} in {status:#}"))["state"]
            .clone()
    };
    let error_rate = state("error-rate");
    assert_eq!(error_rate["status"], "tripped", "{error_rate:#}");
    assert!(
        error_rate["consecutive_failures"].as_u64() >= Some(2),
        "{error_rate:#}"
    );
    let last_reason = error_rate["last_reason"].as_str().unwrap_or_default();
    assert!(last_reason.ends_with(" is above 0.02"), "{last_reason:?}");
    let p99 = state("p99-latency");
    assert_eq!(p99["status"], "passing", "{p99:#}");
    let latency: f64 = p99["last_reason"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .unwrap_or_else(|| panic!("p99 as a number: {p99:#}"));
    assert!(
        (0.05..=0.1).contains(&latency),
        "p99 about 0.1 s: {latency}"
    );
    for id in ["health", "payments-alert"] {
        assert_eq!(state(id)["status"], "passing", "{status:#}");
    }
    let human = env.backout(&["status", &release]).stdout();
    assert!(
        line_of(&human, "TRIPPED", "error-rate").is_some()
            && human.contains("verdict: rollback_required (error-rate)"),
        "{human}"
    );

    // Check measures once more: a tripped criterion stays tripped.
    // Check of a tripped release.
    let out = env.backout(&["check", &release]).code(3);
    let text = out.stdout();
    let line = line_of(&text, "TRIPPED", "error-rate")
        .unwrap_or_else(|| panic!("check shows error-rate TRIPPED:\n{text}"));
    assert!(
        reason_in(line, "error-rate").contains(" is above 0.02 ("),
        "{line}"
    );
    assert!(
        text.contains("verdict: rollback_required (error-rate)"),
        "{text}"
    );

    // The journal: every measurement, and the verdict with its evidence.
    let events = env.journal(&release);
    // The first failing measurement (1 of trips_after 2) is `degrading`, never `healthy`.
    assert_eq!(
        verdicts(&events),
        ["healthy", "degrading", "rollback_required"],
        "{:?}",
        kinds(&events)
    );
    let error_rate = measurements(&events, "error-rate");
    let classes: Vec<&str> = error_rate
        .iter()
        .filter_map(|e| e.payload["class"].as_str())
        .collect();
    assert!(
        classes.starts_with(&["passing", "passing"]) && classes.ends_with(&["failing", "failing"]),
        "{classes:?}"
    );
    let verdict = events
        .iter()
        .find(|e| e.kind == "verdict" && e.payload["verdict"] == "rollback_required")
        .expect("the verdict event");
    let evidence = &verdict.payload["evidence"]["criteria"];
    assert_eq!(evidence[0]["criterion"], "error-rate", "{evidence:#}");
    assert_eq!(evidence[0]["status"], "tripped", "{evidence:#}");
    assert!(
        evidence[0]["reason"]
            .as_str()
            .is_some_and(|r| r.ends_with(" is above 0.02")),
        "{evidence:#}"
    );
    for criterion in ["p99-latency", "health", "payments-alert"] {
        assert!(
            !measurements(&events, criterion).is_empty(),
            "{criterion} measured"
        );
    }
    env.traffic.set_degraded(false);
}
