use backout_model::plan::Event;
use backout_notify::{Notice, render};
#[test]
fn show() {
    for event in Event::ALL {
        let notice = Notice::new(event, "e-1", "2026-11-03T14:05:09Z", "something happened");
        let m = render(&notice, None).unwrap();
        println!("===== {}\nSubject: {}\n\n{}", event.as_str(), m.subject, m.text);
    }
}
