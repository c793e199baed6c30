//! Retargeting conditions (the push retargeting article: Occurred, Last event, Count, Count
//! since; targets a message of this or another journey, a journey, a channel, a label), in
//! `if` and in `where`, evaluated by the engine over a contact's history.

use journey::compile::ir::{CondIr, EntryIr, Program, StepKindIr};
use journey::compile::{self};
use journey::domain::Channel;
use journey::engine::cond::{ContactView, Subject};
use journey::engine::step::entry_event_matches;
use journey::engine::{Contact, Event, Millis, MESSAGE_BOUNCED, MESSAGE_SENT};
use journey::lang::{self, diagnostic, Loaded};
use serde_json::json;

const H: Millis = 3_600_000;
const D: Millis = 24 * H;
const NOW: Millis = 1_780_000_000_000;

/// The journeys the conditions look at: a newsletter (label "newsletter") with an email
/// and an SMS, a push campaign (label "push"), and the journey whose `if` is tested.
const JOURNEYS: &str = r#"
journey news {
  label "newsletter"
  entry api
  policy none
  send email issue { subject "This week" text "{{ link('shop') }}" link shop "https://x.example/s" link blog "https://x.example/b" }
  send sms flash { text "Flash sale" }
}
journey app {
  label "push"
  entry api
  policy none
  send push alert { title "Hi" body "News" }
}
"#;

fn compile_src(src: &str) -> Program {
    let mut loaded = Loaded::default();
    lang::add_source(&mut loaded, "test.journey", src.to_string());
    let c = compile::compile(&loaded);
    match c.program {
        Some(p) => p,
        None => panic!(
            "does not compile:\n{}",
            diagnostic::render_human(&loaded.sources, &c.diagnostics, false)
        ),
    }
}

/// The condition of `if COND` in a journey `t` that has its own email `welcome`.
fn cond(text: &str) -> (Program, CondIr) {
    let src = format!(
        "{JOURNEYS}\njourney t {{\n  entry api\n  policy none\n  send email welcome {{ subject \"W\" text \"{{{{ link('profile') }}}}\" link profile \"https://x.example/p\" }}\n  if {text} {{ set contact.yes = true }}\n}}\n"
    );
    let p = compile_src(&src);
    let c = p.journeys["t"]
        .steps
        .iter()
        .find_map(|s| match &s.kind {
            StepKindIr::Branch { arms, .. } => Some(arms[0].0.clone()),
            _ => None,
        })
        .expect("an if step");
    (p, c)
}

fn sent(journey: &str, message: &str, channel: Channel, at: Millis, id: &str) -> Event {
    Event {
        contact: "c".into(),
        kind: MESSAGE_SENT.into(),
        at,
        journey: Some(journey.into()),
        message: Some(message.into()),
        channel: Some(channel),
        message_id: Some(id.into()),
        properties: serde_json::Map::from_iter([(
            "label".to_string(),
            json!(match journey {
                "news" => "newsletter",
                "app" => "push",
                _ => "",
            }),
        )]),
        ..Event::default()
    }
}

/// An engagement as tracking reports it: journey, message, link; no channel, no label.
fn engaged(kind: &str, journey: &str, message: &str, link: Option<&str>, at: Millis) -> Event {
    Event {
        contact: "c".into(),
        kind: kind.into(),
        at,
        journey: Some(journey.into()),
        message: Some(message.into()),
        link: link.map(String::from),
        ..Event::default()
    }
}

fn holds(text: &str, history: &[Event]) -> bool {
    let (p, c) = cond(text);
    let contact = Contact {
        id: "c".into(),
        profile: Default::default(),
    };
    let mut events = history.to_vec();
    events.sort_by_key(|e| e.at);
    let view = ContactView {
        contact: &contact,
        events: &events,
        program: &p,
        now: NOW,
    };
    view.eval(&c, Subject::default())
}

fn check(text: &str, history: &[Event], expected: bool) {
    assert_eq!(
        holds(text, history),
        expected,
        "`{text}` over {:#?}",
        history
            .iter()
            .map(|e| format!(
                "{} {}.{} at now{:+}h",
                e.kind,
                e.journey.as_deref().unwrap_or("-"),
                e.message.as_deref().unwrap_or("-"),
                (e.at - NOW) / H
            ))
            .collect::<Vec<_>>()
    );
}

#[test]
fn occurred_on_this_journeys_message_and_link() {
    let opened = engaged("opened", "t", "welcome", None, NOW - H);
    let clicked = engaged("clicked", "t", "welcome", Some("profile"), NOW - H);
    check("opened welcome", std::slice::from_ref(&opened), true);
    check("opened welcome", &[], false);
    check("not opened welcome", &[], true);
    check("not opened welcome", std::slice::from_ref(&opened), false);
    check(
        "clicked welcome.profile",
        std::slice::from_ref(&clicked),
        true,
    );
    check("clicked welcome", std::slice::from_ref(&clicked), true);
    // A message of the same name in another journey is another message.
    check(
        "opened welcome",
        &[engaged("opened", "news", "welcome", None, NOW - H)],
        false,
    );
    // In the future (not yet happened at `now`): not counted.
    check(
        "opened welcome",
        &[engaged("opened", "t", "welcome", None, NOW + H)],
        false,
    );
}

#[test]
fn occurred_on_another_journeys_message_and_link() {
    let click_shop = engaged("clicked", "news", "issue", Some("shop"), NOW - 2 * D);
    check(
        "clicked news.issue",
        std::slice::from_ref(&click_shop),
        true,
    );
    check(
        "clicked news.issue.shop",
        std::slice::from_ref(&click_shop),
        true,
    );
    check(
        "clicked news.issue.blog",
        std::slice::from_ref(&click_shop),
        false,
    );
    check(
        "not clicked news.issue",
        std::slice::from_ref(&click_shop),
        false,
    );
    check(
        "clicked news.issue in last 1d",
        std::slice::from_ref(&click_shop),
        false,
    );
    check("clicked news.issue in last 3d", &[click_shop], true);
}

#[test]
fn occurred_on_a_journey_a_channel_a_label() {
    let push_open = engaged("opened", "app", "alert", None, NOW - H);
    check("opened journey app", std::slice::from_ref(&push_open), true);
    check(
        "opened journey news",
        std::slice::from_ref(&push_open),
        false,
    );
    // The channel and the label come from the program: tracking reports neither.
    check(
        "opened channel push",
        std::slice::from_ref(&push_open),
        true,
    );
    check(
        "opened channel email",
        std::slice::from_ref(&push_open),
        false,
    );
    check(
        "opened label \"push\"",
        std::slice::from_ref(&push_open),
        true,
    );
    check("opened label \"newsletter\"", &[push_open], false);
    let sms_click = engaged("clicked", "news", "flash", None, NOW - H);
    check(
        "clicked channel sms in last 15d",
        std::slice::from_ref(&sms_click),
        true,
    );
    check(
        "clicked channel email",
        std::slice::from_ref(&sms_click),
        false,
    );
    check("clicked label \"newsletter\"", &[sms_click], true);
}

#[test]
fn received_counts_each_delivery_once_and_not_a_bounce() {
    let s1 = sent("news", "issue", Channel::Email, NOW - 3 * D, "1:issue");
    // The provider's delivery report for the same message.
    let r1 = Event {
        kind: "received".into(),
        message_id: Some("1:issue".into()),
        ..engaged("received", "news", "issue", None, NOW - 3 * D + H)
    };
    let s2 = sent("news", "issue", Channel::Email, NOW - D, "1:issue:2");
    check(
        "count received news.issue == 1",
        &[s1.clone(), r1.clone()],
        true,
    );
    check(
        "count received news.issue == 2",
        &[s1.clone(), r1, s2.clone()],
        true,
    );
    check("received channel email", std::slice::from_ref(&s1), true);
    check(
        "received label \"newsletter\"",
        std::slice::from_ref(&s1),
        true,
    );
    check("received journey app", std::slice::from_ref(&s1), false);
    // A bounce at delivery is recorded instead of `message.sent`: not received, bounced.
    let bounce = Event {
        kind: MESSAGE_BOUNCED.into(),
        ..sent("news", "issue", Channel::Email, NOW - H, "2:issue")
    };
    check("received news.issue", std::slice::from_ref(&bounce), false);
    check("bounced news.issue", std::slice::from_ref(&bounce), true);
    check("bounced channel email", &[bounce], true);
    // A bounce the provider reports later.
    check(
        "bounced news.issue",
        &[s2, engaged("bounced", "news", "issue", None, NOW - H)],
        true,
    );
}

#[test]
fn last_event() {
    let at = |h: Millis| engaged("opened", "app", "alert", None, NOW - h * H);
    check("last opened channel push < 15d ago", &[at(24)], true);
    check("last opened channel push < 15d ago", &[at(16 * 24)], false);
    // The last one counts, not any.
    check(
        "last opened channel push < 15d ago",
        &[at(16 * 24), at(2)],
        true,
    );
    check(
        "last opened channel push >= 15d ago",
        &[at(16 * 24), at(2)],
        false,
    );
    check("last opened channel push >= 15d ago", &[at(16 * 24)], true);
    // Never: false, whatever the comparison.
    check("last opened channel push < 15d ago", &[], false);
    check("last opened channel push > 15d ago", &[], false);
    check("last opened app.alert < 3h ago", &[at(2)], true);
    check("last opened journey app < 1h ago", &[at(2)], false);
    check("last opened label \"push\" <= 2h ago", &[at(2)], true);
}

#[test]
fn count_and_count_since() {
    let opens: Vec<Event> = [1, 3, 30]
        .iter()
        .map(|h| engaged("opened", "app", "alert", None, NOW - h * H))
        .collect();
    check("count opened app.alert >= 3", &opens, true);
    check("count opened app.alert == 3", &opens, true);
    check("count opened journey app > 3", &opens, false);
    check("count opened channel push >= 2 in last 5h", &opens, true);
    check("count opened channel push >= 3 in last 5h", &opens, false);
    check("count opened label \"push\" == 2 in last 5h", &opens, true);
    check("count opened label \"push\" < 1 in last 30m", &opens, true);
    let clicks: Vec<Event> = [1, 2, 4]
        .iter()
        .map(|h| engaged("clicked", "news", "issue", Some("shop"), NOW - h * H))
        .collect();
    // The article's example: 2 clicks within the last 5 hours.
    check(
        "count clicked label \"newsletter\" >= 2 in last 5h",
        &clicks,
        true,
    );
    check(
        "count clicked news.issue.shop >= 3 in last 3h",
        &clicks,
        false,
    );
    check("count clicked news.issue.blog >= 1", &clicks, false);
}

#[test]
fn combined_with_and_or_not() {
    let h = [
        engaged("opened", "app", "alert", None, NOW - H),
        engaged("clicked", "news", "issue", Some("shop"), NOW - H),
    ];
    check("opened journey app and clicked news.issue.shop", &h, true);
    check("opened journey app and not clicked news.issue", &h, false);
    check("not (opened journey app or clicked channel sms)", &h, false);
}

#[test]
fn in_where_of_an_entry_event() {
    let src = format!(
        "{JOURNEYS}\njourney t {{\n  entry event \"visit\" where clicked channel sms in last 15d and count opened label \"push\" >= 1\n  policy none\n  send email m {{ subject \"x\" text \"y\" }}\n}}\n"
    );
    let p = compile_src(&src);
    let j = &p.journeys["t"];
    assert!(matches!(j.entries[0], EntryIr::Event(_)));
    let contact = Contact {
        id: "c".into(),
        profile: Default::default(),
    };
    let visit = Event {
        contact: "c".into(),
        kind: "visit".into(),
        at: NOW,
        ..Event::default()
    };
    let run = |history: Vec<Event>| {
        let view = ContactView {
            contact: &contact,
            events: &history,
            program: &p,
            now: NOW,
        };
        entry_event_matches(j, &visit, &view)
    };
    assert!(run(vec![
        engaged("clicked", "news", "flash", None, NOW - D),
        engaged("opened", "app", "alert", None, NOW - D),
    ]));
    assert!(!run(vec![engaged(
        "clicked",
        "news",
        "flash",
        None,
        NOW - D
    )]));
    assert!(!run(vec![
        engaged("clicked", "news", "flash", None, NOW - 16 * D),
        engaged("opened", "app", "alert", None, NOW - D),
    ]));
}

#[test]
fn verbs_a_channel_cannot_report_are_compile_errors() {
    for (text, why) in [
        ("opened news.flash", "SMS"),
        ("clicked app.alert", "push"),
        ("count opened news.flash >= 1", "SMS"),
        ("last clicked app.alert < 1d ago", "push"),
    ] {
        let src = format!(
            "{JOURNEYS}\njourney t {{\n  entry api\n  policy none\n  if {text} {{ set contact.x = 1 }}\n}}\n"
        );
        let mut loaded = Loaded::default();
        lang::add_source(&mut loaded, "test.journey", src);
        let c = compile::compile(&loaded);
        assert!(c.program.is_none(), "`{text}` compiled");
        let text_out = diagnostic::render_human(&loaded.sources, &c.diagnostics, false);
        assert!(
            text_out.to_lowercase().contains(&why.to_lowercase()),
            "`{text}`: {text_out}"
        );
    }
}

#[test]
fn opens_are_implied_by_clicks_once_per_message() {
    // Images off: clicks, no open recorded. The clicks imply one open.
    let clicks: Vec<Event> = [1, 2, 4]
        .iter()
        .map(|h| engaged("clicked", "news", "issue", Some("shop"), NOW - h * H))
        .collect();
    check("opened news.issue", &clicks, true);
    check("not opened news.issue", &clicks, false);
    check("count opened news.issue == 1", &clicks, true);
    check("opened channel email in last 3h", &clicks, true);
    check("count opened news.issue == 1 in last 90m", &clicks, true);
    check("opened app.alert", &clicks, false);
    // An open of its own: the clicks add nothing.
    let mut both = clicks.clone();
    both.push(engaged("opened", "news", "issue", None, NOW - 5 * H));
    check("count opened news.issue == 1", &both, true);
    both.push(engaged("opened", "news", "issue", None, NOW - 6 * H));
    check("count opened news.issue == 2", &both, true);
}

#[test]
fn received_waits_for_the_report_when_the_provider_sends_one() {
    let mut accepted = sent("news", "flash", Channel::Sms, NOW - 2 * H, "1:flash");
    accepted
        .properties
        .insert("awaits_report".into(), json!(true));
    check(
        "received news.flash",
        std::slice::from_ref(&accepted),
        false,
    );
    check(
        "count received news.flash == 0",
        std::slice::from_ref(&accepted),
        true,
    );
    let mut report = engaged("received", "news", "flash", None, NOW - H);
    report.message_id = Some("1:flash".into());
    let both = [accepted, report];
    check("received news.flash", &both, true);
    check("count received news.flash == 1", &both, true);
    // A provider without reports: sent is received.
    let plain = sent("news", "issue", Channel::Email, NOW - H, "2:issue");
    check("received news.issue", &[plain], true);
}
