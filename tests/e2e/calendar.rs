//! The calendar adapter against a real Radicale (htpasswd auth) and, for
//! interoperability, a real Xandikos (`.ci/run` installs both), driven
//! with `oictl tool`.

use serde_json::{Value, json};

use crate::calserver::{PASSWORD, Radicale, USER, Xandikos};
use crate::support::*;

fn start(accounts: &str) -> Daemon {
    let d = Daemon::start(&config_enabling(
        &["vault", "calendar"],
        "",
        &format!(
            "[vault]\nkey_source = \"file\"\n\n[calendar]\ntimezone = \"Europe/Berlin\"\n\n{accounts}"
        ),
    ));
    d.ready_pid("vault");
    d.ready_pid("calendar");
    d
}

fn account(name: &str, url: &str, calendar: &str) -> String {
    format!(
        "[calendar.accounts.{name}]\nurl = \"{url}\"\nusername = \"{USER}\"\npassword_secret = \"caldav-{name}-password\"\ncalendar = \"{calendar}\"\n\n"
    )
}

fn ok(d: &Daemon, name: &str, args: Value) -> Value {
    tool(d, name, args).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn titles(v: &Value) -> Vec<String> {
    v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["title"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn radicale_calendars_are_discovered_and_events_made_read_changed_and_deleted() {
    let r = Radicale::start();
    r.mkcalendar("work", "Work");
    r.mkcalendar("home", "Home");
    let d = start(&account("home", &r.url(), "Work"));
    set_secret(&d, "caldav-home-password", PASSWORD);

    // Discovery: /.well-known/caldav, the principal, the home, the
    // collections with their names.
    let l = ok(&d, "calendar_list", json!({}));
    let mut names: Vec<&str> = l["calendars"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["Home", "Work"], "{l}");
    assert!(
        l["calendars"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "Work" && c["default"] == true),
        "{l}"
    );

    // A weekly 09:00 in Berlin across the end of summer time (25 October).
    let weekly = ok(
        &d,
        "calendar_create_event",
        json!({"title": "Standup", "start": "2026-10-19T09:00", "duration_minutes": 30,
               "rrule": "FREQ=WEEKLY;COUNT=4", "attendees": ["bob@corp.example"], "reminders": [10]}),
    );
    assert_eq!(weekly["created"], true, "{weekly}");
    let uid = weekly["uid"].as_str().unwrap().to_string();
    let day = ok(
        &d,
        "calendar_create_event",
        json!({"title": "Team day", "start": "2026-10-24"}),
    );
    // Stored as written: Radicale has the TZID and its VTIMEZONE.
    let stored = std::fs::read_dir(r.dir.path().join("collections/collection-root/alice/work"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".ics"))
        .map(|e| std::fs::read_to_string(e.path()).unwrap())
        .find(|t| t.contains("Standup"))
        .expect("Radicale stored the event");
    assert!(
        stored.contains("DTSTART;TZID=Europe/Berlin:20261019T090000")
            && stored.contains("BEGIN:VTIMEZONE"),
        "{stored}"
    );

    let ev = ok(
        &d,
        "calendar_events",
        json!({"from": "2026-10-18", "to": "2026-11-15"}),
    );
    assert_eq!(ev["calendar"], "Work");
    assert_eq!(
        titles(&ev),
        ["Standup", "Team day", "Standup", "Standup", "Standup"],
        "{ev}"
    );
    let standups: Vec<&Value> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["title"] == "Standup")
        .collect();
    let utc: Vec<&str> = standups
        .iter()
        .map(|e| e["start_utc"].as_str().unwrap())
        .collect();
    assert_eq!(
        utc,
        [
            "2026-10-19T07:00:00Z",
            "2026-10-26T08:00:00Z",
            "2026-11-02T08:00:00Z",
            "2026-11-09T08:00:00Z"
        ]
    );
    assert!(
        standups
            .iter()
            .all(|e| e["start"].as_str().unwrap().contains("T09:00:00"))
    );
    assert_eq!(standups[0]["attendees"], json!(["bob@corp.example"]));
    let team = &ev["events"][1];
    assert_eq!(
        (team["all_day"].clone(), team["start_date"].clone()),
        (json!(true), json!("2026-10-24"))
    );
    assert!(
        ev["content_trust"]
            .as_str()
            .unwrap()
            .starts_with("untrusted")
    );
    let seen_etag = standups[0]["etag"].as_str().unwrap().to_string();

    // An update changes the title of the whole series.
    let up = ok(
        &d,
        "calendar_update_event",
        json!({"uid": uid, "title": "Daily sync", "etag": seen_etag}),
    );
    assert_eq!(up["updated"], true, "{up}");
    let ev = ok(
        &d,
        "calendar_events",
        json!({"from": "2026-10-18", "to": "2026-11-15"}),
    );
    assert_eq!(
        titles(&ev).iter().filter(|t| *t == "Daily sync").count(),
        4,
        "{ev}"
    );

    // A change from the version read before: the server answers 412 and
    // nothing is overwritten; the error shows the event as it is now.
    let e = tool(
        &d,
        "calendar_update_event",
        json!({"uid": uid, "title": "Stale edit", "etag": seen_etag}),
    )
    .unwrap_err();
    assert!(
        e.contains("calendar account 'home', calendar 'Work'")
            && e.contains("changed on the server since it was read")
            && e.contains("nothing was written")
            && e.contains("Daily sync"),
        "{e}"
    );
    let ev = ok(
        &d,
        "calendar_events",
        json!({"from": "2026-10-18", "to": "2026-11-15"}),
    );
    assert!(!titles(&ev).contains(&"Stale edit".to_string()), "{ev}");

    // Delete, and an unknown calendar named with those there are.
    let del = ok(&d, "calendar_delete_event", json!({"uid": day["uid"]}));
    assert_eq!(del["deleted"], true);
    let ev = ok(
        &d,
        "calendar_events",
        json!({"from": "2026-10-18", "to": "2026-11-15"}),
    );
    assert_eq!(titles(&ev).len(), 4, "{ev}");
    let e = tool(&d, "calendar_events", json!({"calendar": "Holidays"})).unwrap_err();
    assert!(
        e.contains("calendar account 'home' has no calendar 'Holidays' (calendars: "),
        "{e}"
    );
    // The other calendar is empty.
    let h = ok(
        &d,
        "calendar_events",
        json!({"calendar": "Home", "from": "2026-10-18", "to": "2026-11-15"}),
    );
    assert_eq!(h["count"], 0, "{h}");
    // A time the clocks skip is refused before anything is sent.
    let e = tool(
        &d,
        "calendar_create_event",
        json!({"title": "x", "start": "2027-03-28T02:30"}),
    )
    .unwrap_err();
    assert!(e.contains("does not exist in Europe/Berlin"), "{e}");
}

#[test]
fn a_wrong_password_and_a_stopped_server_are_named_and_the_adapter_keeps_serving() {
    let mut r = Radicale::start();
    r.mkcalendar("work", "Work");
    let d = start(&account("home", &r.url(), ""));
    set_secret(&d, "caldav-home-password", "wrong-pw-xyzzy");
    let e = tool(&d, "calendar_list", json!({})).unwrap_err();
    assert!(
        e.contains("calendar account 'home'")
            && e.contains("refused the login of alice")
            && e.contains("vault secret caldav-home-password"),
        "{e}"
    );
    assert!(
        !e.contains("xyzzy") && !d.log_text().contains("xyzzy"),
        "{e}"
    );
    set_secret(&d, "caldav-home-password", PASSWORD);
    ok(&d, "calendar_list", json!({}));
    let pid = d.ready_pid("calendar");

    r.stop();
    let e = tool(&d, "calendar_events", json!({})).unwrap_err();
    assert!(
        e.contains("calendar account 'home', calendar 'Work'")
            && e.contains(&format!("127.0.0.1:{}", r.port)),
        "{e}"
    );
    r.run();
    let ev = ok(&d, "calendar_events", json!({}));
    assert_eq!(ev["count"], 0);
    assert_eq!(d.ready_pid("calendar"), pid, "the adapter was restarted");
}

#[test]
fn xandikos_takes_the_same_events() {
    let x = Xandikos::start();
    let d = start(&account("x", &x.url(), ""));
    set_secret(&d, "caldav-x-password", "unused");
    let l = ok(&d, "calendar_list", json!({}));
    assert!(
        l["calendars"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["events"] == true),
        "{l}"
    );
    ok(
        &d,
        "calendar_create_event",
        json!({"title": "Standup", "start": "2026-10-19T09:00", "duration_minutes": 30, "rrule": "FREQ=WEEKLY;COUNT=4"}),
    );
    let ev = ok(
        &d,
        "calendar_events",
        json!({"from": "2026-10-18", "to": "2026-11-15"}),
    );
    let utc: Vec<&str> = ev["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["start_utc"].as_str().unwrap())
        .collect();
    assert_eq!(
        utc,
        [
            "2026-10-19T07:00:00Z",
            "2026-10-26T08:00:00Z",
            "2026-11-02T08:00:00Z",
            "2026-11-09T08:00:00Z"
        ],
        "{ev}"
    );
}

#[test]
fn through_the_agent_tomorrow_is_read_and_a_free_half_hour_booked() {
    let r = Radicale::start();
    r.mkcalendar("work", "Work");
    let rt = fake_runtime();
    let llm = rt
        .block_on(oi_llm_router::fake::FakeProvider::start())
        .unwrap();
    let d = Daemon::start(&config_enabling(
        &["vault", "calendar", "agent", "llm-router", "memory"],
        "",
        &format!(
            "{}[cascade]\norder = [\"main\"]\n\n[vault]\nkey_source = \"file\"\n\n[calendar]\ntimezone = \"Europe/Berlin\"\n\n{}",
            model("main", "openai", &llm.url("/v1"), "no_key = true"),
            account("home", &r.url(), "")
        ),
    ));
    for s in ["vault", "calendar", "agent", "llm-router"] {
        d.ready_pid(s);
    }
    set_secret(&d, "caldav-home-password", PASSWORD);
    // Friday 4 December 2026: a meeting 14:00-15:00 Berlin.
    ok(
        &d,
        "calendar_create_event",
        json!({"title": "Design review", "start": "2026-12-04T14:00", "end": "2026-12-04T15:00", "location": "Room 2"}),
    );

    let step = |id: &str, name: &str, args: Value| calls(&[(id, name, args)]);
    llm.push([
        step(
            "c1",
            "calendar_events",
            json!({"from": "2026-12-04", "to": "2026-12-04"}),
        ),
        oi_llm_router::fake::openai::says("Tomorrow: Design review, 14:00-15:00 in Room 2."),
    ]);
    let o = d.oictl(&["ask", "--json", "what's on my calendar tomorrow"]);
    assert!(o.status.success(), "{}", out(&o));
    let r1: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(tool_names(&r1), ["calendar_events"]);
    let shown = tool_messages(&llm.requests().last().unwrap().body);
    assert!(
        shown[0].contains("Design review") && shown[0].contains("2026-12-04T14:00:00+01:00"),
        "{}",
        shown[0]
    );

    llm.push([
        step(
            "c2",
            "calendar_free_busy",
            json!({"from": "2026-12-04T12:00", "to": "2026-12-04T17:00", "min_minutes": 30}),
        ),
        step(
            "c3",
            "calendar_create_event",
            json!({"title": "Focus time", "start": "2026-12-04T15:00", "duration_minutes": 30}),
        ),
        oi_llm_router::fake::openai::says("Booked Friday 15:00-15:30."),
    ]);
    let o = d.oictl(&[
        "ask",
        "--json",
        "book 30 minutes on Friday afternoon when I'm free",
    ]);
    assert!(o.status.success(), "{}", out(&o));
    let r2: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(
        tool_names(&r2),
        ["calendar_free_busy", "calendar_create_event"]
    );
    assert!(
        r2["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["error"].is_null()),
        "{r2}"
    );
    let shown = tool_messages(&llm.requests().last().unwrap().body);
    let fb = shown
        .iter()
        .find(|m| m.contains("\"free\""))
        .expect("the free/busy result");
    let fb: Value =
        serde_json::from_str(&fb[fb.find('{').unwrap()..=fb.rfind('}').unwrap()]).unwrap();
    let spans = |k: &str| -> Vec<(String, String)> {
        fb[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| {
                let t = |x: &str| b[x].as_str().unwrap()[11..16].to_string();
                (t("start"), t("end"))
            })
            .collect()
    };
    // Busy 14:00-15:00; free 12:00-14:00 and 15:00-17:00 (work ends at 17).
    let span = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(spans("busy"), [span("14:00", "15:00")]);
    assert_eq!(
        spans("free"),
        [span("12:00", "14:00"), span("15:00", "17:00")]
    );
    let ev = ok(
        &d,
        "calendar_events",
        json!({"from": "2026-12-04", "to": "2026-12-04"}),
    );
    assert_eq!(titles(&ev), ["Design review", "Focus time"], "{ev}");
}
