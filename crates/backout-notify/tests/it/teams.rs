//! Microsoft Teams deliveries: the documented incoming-webhook shape, a `message` with one
//! Adaptive Card attachment, against a real HTTP server in the test.

use std::time::Duration;

use backout_model::plan::Event;
use backout_notify::{Deliverer, DeliveryConfig, Link, Target, render};

use crate::common::{Answer, HttpSink, full_notice, install_crypto};

#[tokio::test]
async fn posts_an_adaptive_card_with_facts_and_link_buttons() {
    install_crypto();
    let receiver = HttpSink::start(Answer {
        body: "1",
        ..Answer::status(200)
    });
    let mut notice = full_notice(Event::RollbackRequired);
    if let Some(release) = notice.release.as_mut() {
        release.change_ticket = Some("CHG0031415".into());
    }
    notice.links = vec![
        Link {
            label: "Decide".into(),
            url: "https://backout.example.com/ui/releases/rel-42#decide-form".into(),
        },
        Link {
            label: "Release".into(),
            url: "https://backout.example.com/ui/releases/rel-42".into(),
        },
    ];
    let message = render(&notice, None).expect("built-in templates render");
    let deliverer = Deliverer::new(DeliveryConfig {
        timeout: Duration::from_secs(10),
        ..DeliveryConfig::default()
    })
    .expect("builds");
    let receipt = deliverer
        .deliver(&Target::Teams(receiver.url.clone()), &notice, &message)
        .await
        .expect("delivered");
    assert_eq!(receipt.detail, "HTTP 200");

    let body = receiver.requests()[0].json();
    assert_eq!(body["type"], "message");
    let attachments = body["attachments"].as_array().expect("attachments");
    assert_eq!(attachments.len(), 1);
    assert_eq!(
        attachments[0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let card = &attachments[0]["content"];
    assert_eq!(card["type"], "AdaptiveCard");
    assert_eq!(
        card["$schema"],
        "http://adaptivecards.io/schemas/adaptive-card.json"
    );
    assert_eq!(card["version"], "1.4");
    let blocks = card["body"].as_array().expect("a body");
    assert_eq!(blocks[0]["type"], "TextBlock");
    assert_eq!(blocks[0]["text"], message.subject.as_str());
    let text = blocks
        .iter()
        .filter(|b| b["type"] == "TextBlock")
        .map(|b| b["text"].as_str().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(text.contains("Change ticket: CHG0031415"), "{text}");
    assert!(
        !text.contains("Links:"),
        "links are buttons, not text: {text}"
    );
    let facts = blocks
        .iter()
        .find(|b| b["type"] == "FactSet")
        .expect("a fact set")["facts"]
        .as_array()
        .expect("facts")
        .iter()
        .map(|f| {
            (
                f["title"].as_str().unwrap().to_owned(),
                f["value"].as_str().unwrap().to_owned(),
            )
        })
        .collect::<Vec<_>>();
    for (title, value) in [
        ("Service", "checkout"),
        ("Version", "2.4.0"),
        ("Rollback to", "2.3.9"),
        ("Environment", "production"),
        ("Change ticket", "CHG0031415"),
        ("Run", "run-7"),
        ("Event", "rollback_required"),
    ] {
        assert!(
            facts.contains(&(title.to_owned(), value.to_owned())),
            "{title}: {facts:?}"
        );
    }
    let actions = card["actions"].as_array().expect("link buttons");
    assert_eq!(actions.len(), 2);
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    assert_eq!(actions[0]["title"], "Decide");
    assert_eq!(
        actions[0]["url"],
        "https://backout.example.com/ui/releases/rel-42#decide-form"
    );
}
