//! Rendering: every built-in event, plan overrides, strictness, escaping, the override warning.

use backout_model::plan::Event;
use backout_notify::{Link, Notice, TemplateErrorKind, check_template, render};
use serde_json::json;

use crate::common::full_notice;

/// The `completed` override of examples/checkout.yaml.
const CHECKOUT_COMPLETED: &str = "checkout rolled back from {{ release.version }} to {{ release.rollback_to }} in {{ run.duration }}";

#[test]
fn every_built_in_event_renders() {
    for event in Event::ALL {
        let message =
            render(&full_notice(event), None).unwrap_or_else(|e| panic!("{}: {e}", event.as_str()));
        assert!(!message.subject.is_empty(), "{}", event.as_str());
        assert!(!message.subject.contains('\n'), "{}", event.as_str());
        assert!(
            message.text.contains("checkout 2.4.0"),
            "{}: {}",
            event.as_str(),
            message.text
        );
        assert!(
            message
                .html
                .contains(&format!("<title>{}</title>", message.subject)),
            "{}",
            event.as_str()
        );
        insta::assert_snapshot!(
            event.as_str(),
            format!("Subject: {}\n\n{}", message.subject, message.text)
        );
    }
}

#[test]
fn every_built_in_event_renders_from_a_bare_notice() {
    for event in Event::ALL {
        let notice = Notice::new(event, "e-1", "2026-11-03T14:05:09Z", "something happened");
        let message = render(&notice, None).unwrap_or_else(|e| panic!("{}: {e}", event.as_str()));
        for text in [&message.subject, &message.text] {
            assert!(!text.contains("none"), "{}: {text}", event.as_str());
            assert!(!text.contains("undefined"), "{}: {text}", event.as_str());
            assert!(!text.contains("  ."), "{}: {text}", event.as_str());
        }
        assert!(
            message.text.to_lowercase().contains("the service"),
            "{}: {}",
            event.as_str(),
            message.text
        );
    }
}

#[test]
fn rollback_required_names_criteria_deciders_and_the_command() {
    let message = render(&full_notice(Event::RollbackRequired), None).expect("renders");
    let text = &message.text;
    assert!(
        text.contains("- error-rate: 0.031 {route=\"/pay\"} (threshold > 0.02)"),
        "{text}"
    );
    assert!(
        !text.contains("p99-latency"),
        "only tripped criteria are listed: {text}"
    );
    assert!(text.contains("Who may decide: alice, sre-leads."), "{text}");
    assert!(
        text.contains("backout decide rel-42 approve --reason \"<why>\""),
        "{text}"
    );
    assert!(
        text.contains("backout decide rel-42 deny --reason \"<why>\""),
        "{text}"
    );
    assert!(
        text.contains("https://backout.example.com/releases/rel-42"),
        "{text}"
    );
}

#[test]
fn the_checkout_override_replaces_the_body() {
    let mut notice = full_notice(Event::Completed);
    notice.links.clear();
    let message = render(&notice, Some(CHECKOUT_COMPLETED)).expect("renders");
    assert_eq!(
        message.text,
        "checkout rolled back from 2.4.0 to 2.3.9 in 4m 12s\n"
    );
    assert_eq!(
        message.subject,
        "Backout procedure finished: checkout 2.4.0 in production"
    );
    assert!(
        message
            .html
            .contains("<p>checkout rolled back from 2.4.0 to 2.3.9 in 4m 12s</p>"),
        "{}",
        message.html
    );
    check_template(CHECKOUT_COMPLETED).expect("the example passes the check");
}

#[test]
fn an_override_printing_something_the_notice_lacks_is_an_error() {
    let mut notice = full_notice(Event::Completed);
    notice.run = None;
    let error = render(&notice, Some(CHECKOUT_COMPLETED)).expect_err("no run");
    assert_eq!(error.kind, TemplateErrorKind::Undefined);
    assert_eq!(error.line, Some(1));
    assert_eq!(
        error.to_string(),
        "undefined variable on line 1: `run` is undefined"
    );

    let error = render(&full_notice(Event::Completed), Some("{{ release.colour }}"))
        .expect_err("no such field");
    assert_eq!(error.kind, TemplateErrorKind::Undefined);
    assert!(error.detail.contains("release.colour"), "{}", error.detail);
}

#[test]
fn an_override_may_test_for_missing_parts() {
    let mut notice = full_notice(Event::Completed);
    notice.run = None;
    let message = render(
        &notice,
        Some("done{% if run %} in {{ run.duration }}{% endif %}{% if release.rollback_to is defined %}, now on {{ release.rollback_to }}{% endif %}"),
    )
    .expect("renders");
    assert!(
        message.text.starts_with("done, now on 2.3.9\n"),
        "{}",
        message.text
    );
}

#[test]
fn check_template_reports_syntax_errors_with_their_line() {
    let error = check_template("first line\n{{ release.version }\n").expect_err("broken");
    assert_eq!(error.kind, TemplateErrorKind::Syntax);
    assert_eq!(error.line, Some(2));
    assert!(
        error.to_string().starts_with("syntax error on line 2: "),
        "{error}"
    );
}

#[test]
fn check_template_reports_names_that_are_not_notice_fields() {
    let error = check_template("{{ relase.version }}").expect_err("a typo");
    assert_eq!(error.kind, TemplateErrorKind::Undefined);
    assert!(
        error
            .detail
            .starts_with("`relase` is not a field of a notice"),
        "{}",
        error.detail
    );
    check_template(
        "{% for c in verdict.criteria %}{{ c|criterion }} {{ loop.index }}{% endfor %} {{ deciders|join(', ') }} {% set x = summary %}{{ x|upper }} {{ range(3)|list }}",
    )
    .expect("fields, locals, loop and globals are fine");
}

#[test]
fn a_runaway_override_stops() {
    let error = render(
        &full_notice(Event::Completed),
        Some("{% for a in range(1000) %}{% for b in range(1000) %}{{ a }}{% endfor %}{% endfor %}"),
    )
    .expect_err("too much work");
    assert_eq!(error.kind, TemplateErrorKind::Render);
}

#[test]
fn an_override_that_renders_nothing_is_an_error() {
    let error = render(
        &full_notice(Event::Completed),
        Some("{% if false %}x{% endif %}  "),
    )
    .expect_err("empty");
    assert!(error.detail.contains("empty"), "{}", error.detail);
}

#[test]
fn an_overridden_window_is_loud_even_under_an_override() {
    let mut notice = full_notice(Event::Decision);
    notice.decision = Some(json!({
        "actor": "bob", "decision": "approve", "reason": "payments failing",
        "override_window": true,
    }));
    for template in [None, Some("approved by {{ decision.actor }}")] {
        let message = render(&notice, template).expect("renders");
        assert!(
            message
                .subject
                .starts_with("[WINDOW OVERRIDDEN] Rollback approved"),
            "{}",
            message.subject
        );
        assert!(
            message.text.starts_with(
                "WINDOW OVERRIDDEN: the rollback window had closed; bob overrode it to act anyway.\n\n"
            ),
            "{}",
            message.text
        );
        assert!(
            message.html.contains("background: #b00020"),
            "{}",
            message.html
        );
        assert!(
            message
                .html
                .contains("WINDOW OVERRIDDEN: the rollback window had closed; bob overrode it"),
            "{}",
            message.html
        );
    }

    // A release whose window is marked overridden is just as loud.
    let mut notice = full_notice(Event::Started);
    notice
        .release
        .as_mut()
        .and_then(|r| r.window.as_mut())
        .expect("a window")
        .overridden = true;
    let message = render(&notice, None).expect("renders");
    assert!(
        message.subject.starts_with("[WINDOW OVERRIDDEN] "),
        "{}",
        message.subject
    );
}

#[test]
fn html_escapes_everything_and_keeps_only_web_links() {
    let mut notice = full_notice(Event::RollbackRequired);
    notice.verdict.as_mut().expect("a verdict")["requested"] =
        json!({ "by": "<b>mallory</b>", "reason": "\"><img src=x onerror=alert(1)>" });
    notice.links.push(Link {
        label: "<i>evil</i>".into(),
        url: "javascript:alert(1)".into(),
    });
    notice.links.push(Link {
        label: "dash & board".into(),
        url: "https://grafana.example.com/d/abc?from=now-1h&to=now".into(),
    });
    let html = render(&notice, None).expect("renders").html;
    assert!(!html.contains("<b>"), "{html}");
    assert!(!html.contains("<img"), "{html}");
    assert!(!html.contains("javascript:"), "{html}");
    assert!(!html.contains("<i>"), "{html}");
    assert!(html.contains("&lt;b&gt;mallory&lt;&#x2f;b&gt;"), "{html}");
    assert!(
        html.contains("<a href=\"https:&#x2f;&#x2f;grafana.example.com&#x2f;d&#x2f;abc?from=now-1h&amp;to=now\">dash &amp; board</a>"),
        "{html}"
    );
    insta::assert_snapshot!(
        "rollback_required_html",
        render(&full_notice(Event::RollbackRequired), None)
            .expect("renders")
            .html
    );
}
