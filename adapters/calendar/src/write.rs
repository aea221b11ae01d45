//! Writing events: the fields a tool sets are rendered as a VEVENT with
//! `icalendar` (escaping, folding, TZID parameters), read back with
//! calcard, and either stored as a new object or transplanted into the
//! stored one, so an update keeps every property it did not touch (other
//! attendees' state, X- properties, overrides of single occurrences).
//! calcard adds the VTIMEZONE of every TZID used (RFC 5545 §3.6.5).

use calcard::icalendar::{
    ICalendar, ICalendarComponentType, ICalendarEntry, ICalendarProperty, ICalendarValue,
};
use chrono::{DateTime, TimeDelta, Utc};
use icalendar::{Alarm, Calendar, CalendarDateTime, Component, DatePerhapsTime, EventLike};

use crate::ical;
use crate::when::When;

pub const PRODID: &str = "-//OpenIntentOS//calendar adapter//EN";

/// What a create sets, or what an update changes (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Fields {
    pub title: Option<String>,
    pub start: Option<When>,
    pub end: Option<When>,
    pub duration_minutes: Option<i64>,
    pub location: Option<String>,
    pub description: Option<String>,
    pub attendees: Option<Vec<String>>,
    /// An RRULE value (`FREQ=WEEKLY;BYDAY=MO`); "" removes it.
    pub rrule: Option<String>,
    /// Minutes before the start.
    pub reminders: Option<Vec<i64>>,
}

fn when(w: When) -> DatePerhapsTime {
    match w {
        When::Date(d) => DatePerhapsTime::Date(d),
        When::Local(n, z) => DatePerhapsTime::DateTime(CalendarDateTime::WithTimezone {
            date_time: n,
            tzid: z.name().to_string(),
        }),
    }
}

/// One VEVENT holding `f`.
fn render(uid: &str, f: &Fields, now: DateTime<Utc>) -> Result<ICalendar, String> {
    let mut e = icalendar::Event::new();
    e.uid(uid).timestamp(now).last_modified(now);
    if let Some(t) = &f.title {
        e.summary(t);
    }
    if let Some(s) = f.start {
        e.starts(when(s));
    }
    if let Some(end) = f.end {
        if f.start.is_some_and(|s| s.is_date() != end.is_date()) {
            return Err("start and end must both be dates or both be times".into());
        }
        e.ends(when(end));
    }
    if let Some(m) = f.duration_minutes {
        if m <= 0 {
            return Err(format!("duration_minutes must be at least 1, not {m}"));
        }
        e.add_property("DURATION", format!("PT{m}M"));
    }
    if let Some(l) = &f.location {
        e.location(l);
    }
    if let Some(d) = &f.description {
        e.description(d);
    }
    for a in f.attendees.iter().flatten() {
        let a = a.trim();
        if !a.contains('@') || a.contains(char::is_whitespace) {
            return Err(format!("attendees: '{a}' is not an email address"));
        }
        e.add_multi_property("ATTENDEE", &format!("mailto:{a}"));
    }
    if let Some(r) = f.rrule.as_deref().filter(|r| !r.trim().is_empty()) {
        let r = r.trim().trim_start_matches("RRULE:");
        if r.contains(['\r', '\n']) {
            return Err("rrule: one rule on one line".into());
        }
        e.add_property("RRULE", r);
    }
    for m in f.reminders.iter().flatten() {
        if *m < 0 {
            return Err(format!(
                "reminders: {m} is before nothing; give minutes before the start"
            ));
        }
        e.alarm(Alarm::display(
            f.title.as_deref().unwrap_or("Reminder"),
            -TimeDelta::minutes(*m),
        ));
    }
    let text = Calendar::new().push(e.done()).done().to_string();
    let mut cals = ical::parse(&text)?;
    let mut cal = cals.swap_remove(0);
    for e in cal.components.iter_mut().flat_map(|c| c.entries.iter_mut()) {
        if e.name == ICalendarProperty::Prodid {
            e.values = vec![ICalendarValue::Text(PRODID.into())];
        }
    }
    // An RRULE calcard cannot read comes back as text, not a rule.
    if let Some(r) = f.rrule.as_deref().filter(|r| !r.trim().is_empty()) {
        let ok = cal.components.iter().any(|c| {
            c.property(&ICalendarProperty::Rrule)
                .and_then(|e| e.values.first())
                .is_some_and(|v| matches!(v, ICalendarValue::RecurrenceRule(_)))
        });
        if !ok {
            return Err(format!(
                "rrule: '{r}' is not an RFC 5545 rule (like FREQ=WEEKLY;BYDAY=MO,WE)"
            ));
        }
    }
    Ok(cal)
}

/// A new object holding one event.
pub fn create(uid: &str, f: &Fields, now: DateTime<Utc>) -> Result<String, String> {
    if f.title.as_deref().is_none_or(|t| t.trim().is_empty()) {
        return Err("title is missing".into());
    }
    let Some(start) = f.start else {
        return Err("start is missing".into());
    };
    let mut f = f.clone();
    if f.end.is_none() && f.duration_minutes.is_none() {
        match start {
            // A day, when nothing says how long.
            When::Date(d) => f.end = d.succ_opt().map(When::Date),
            When::Local(..) => f.duration_minutes = Some(60),
        }
    }
    let mut cal = render(uid, &f, now)?;
    cal.add_missing_timezones();
    check(&cal, uid)?;
    Ok(cal.to_string())
}

/// The object after an expansion check: an end before the start and the
/// like are refused before they are stored.
fn check(cal: &ICalendar, uid: &str) -> Result<(), String> {
    let x = cal.expand_dates(chrono_tz::Tz::UTC, 1);
    if let Some(e) = x.errors.first() {
        return Err(format!("the event {uid} would not be valid: {}", e.error));
    }
    for ev in &x.events {
        let (s, e) = ev.timestamps();
        if e < s {
            return Err("end is before start".into());
        }
    }
    Ok(())
}

fn is_master(c: &calcard::icalendar::ICalendarComponent, uid: &str) -> bool {
    c.component_type == ICalendarComponentType::VEvent
        && c.uid() == Some(uid)
        && !c.has_property(&ICalendarProperty::RecurrenceId)
}

/// `old` with the fields of `f` replaced in the series' main event; the
/// SEQUENCE goes up by one.
pub fn update(old: &str, uid: &str, f: &Fields, now: DateTime<Utc>) -> Result<String, String> {
    let mut cal = ical::parse(old)?.swap_remove(0);
    let Some(mi) = cal.components.iter().position(|c| is_master(c, uid)) else {
        return Err(format!("the stored object has no event {uid}"));
    };
    // A new start alone keeps the event's length.
    let mut f = f.clone();
    if f.start.is_some() && f.end.is_none() && f.duration_minutes.is_none() {
        let x = cal.expand_dates(chrono_tz::Tz::UTC, 1);
        if let Some(ev) = x.events.iter().find(|e| e.comp_id == mi as u32) {
            let (s, e) = ev.timestamps();
            match f.start {
                Some(When::Date(d)) => {
                    let days = ((e - s) / 86_400).max(1) as u64;
                    f.end = d.checked_add_days(chrono::Days::new(days)).map(When::Date);
                }
                _ => f.duration_minutes = Some(((e - s) / 60).max(1)),
            }
        }
    }
    let f = &f;
    let new = render(uid, f, now)?;
    let Some(ne) = new
        .components
        .iter()
        .find(|c| c.component_type == ICalendarComponentType::VEvent)
    else {
        return Err("the rendered event is missing".into());
    };
    use ICalendarProperty as P;
    let mut replace = vec![P::Dtstamp, P::LastModified];
    let mut set = |cond: bool, props: &[P]| {
        if cond {
            replace.extend_from_slice(props);
        }
    };
    set(f.title.is_some(), &[P::Summary]);
    set(f.start.is_some(), &[P::Dtstart]);
    set(
        f.end.is_some() || f.duration_minutes.is_some(),
        &[P::Dtend, P::Duration],
    );
    set(f.location.is_some(), &[P::Location]);
    set(f.description.is_some(), &[P::Description]);
    set(f.attendees.is_some(), &[P::Attendee]);
    set(f.rrule.is_some(), &[P::Rrule]);
    let seq = cal.components[mi]
        .property(&P::Sequence)
        .and_then(|e| e.values.first())
        .and_then(|v| v.as_integer())
        .unwrap_or(0);
    replace.push(P::Sequence);
    let incoming: Vec<ICalendarEntry> = ne
        .entries
        .iter()
        .filter(|e| replace.contains(&e.name))
        .cloned()
        .collect();
    let m = &mut cal.components[mi];
    m.entries.retain(|e| !replace.contains(&e.name));
    m.entries.extend(incoming);
    m.entries
        .push(ICalendarEntry::new(P::Sequence).with_value(ICalendarValue::Integer(seq + 1)));
    if f.reminders.is_some() {
        let alarms: Vec<u32> = cal.components[mi]
            .component_ids
            .iter()
            .copied()
            .filter(|id| {
                cal.components
                    .get(*id as usize)
                    .is_some_and(|c| c.component_type == ICalendarComponentType::VAlarm)
            })
            .collect();
        cal.components[mi]
            .component_ids
            .retain(|id| !alarms.contains(id));
        for id in &ne.component_ids {
            if let Some(a) = new.components.get(*id as usize) {
                let nid = cal.components.len() as u32;
                cal.components.push(a.clone());
                cal.components[mi].component_ids.push(nid);
            }
        }
    }
    cal.add_missing_timezones();
    check(&cal, uid)?;
    Ok(cal.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::when;
    use chrono_tz::Europe::Berlin;

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn created() -> String {
        create(
            "ev-1",
            &Fields {
                title: Some("Planning, Q1; \"big\" one".into()),
                start: Some(when::parse("start", "2026-12-07T09:00", Berlin).unwrap()),
                duration_minutes: Some(90),
                location: Some("Room 4".into()),
                attendees: Some(vec!["bob@corp.example".into()]),
                rrule: Some("FREQ=WEEKLY;COUNT=3".into()),
                reminders: Some(vec![15]),
                ..Fields::default()
            },
            now(),
        )
        .unwrap()
    }

    #[test]
    fn a_created_event_reads_back_with_its_zone_and_a_vtimezone() {
        let text = created();
        assert!(
            text.contains("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin"),
            "{text}"
        );
        assert!(
            text.contains("DTSTART;TZID=Europe/Berlin:20261207T090000"),
            "{text}"
        );
        assert!(text.contains("BEGIN:VALARM"), "{text}");
        assert!(text.contains(&format!("PRODID:{PRODID}")), "{text}");
        let cal = &ical::parse(&text).unwrap()[0];
        let o = ical::occurrences(
            cal,
            Berlin,
            at("2026-12-01T00:00:00Z"),
            at("2027-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(o.len(), 3);
        assert_eq!(o[0].summary, "Planning, Q1; \"big\" one");
        assert_eq!(
            (o[0].start, o[0].end),
            (at("2026-12-07T08:00:00Z"), at("2026-12-07T09:30:00Z"))
        );
        assert_eq!(o[0].attendees, ["bob@corp.example"]);
        // A day with no end is one day.
        let day = create(
            "d",
            &Fields {
                title: Some("Off".into()),
                start: Some(when::parse("start", "2026-12-24", Berlin).unwrap()),
                ..Fields::default()
            },
            now(),
        )
        .unwrap();
        assert!(
            day.contains("DTSTART;VALUE=DATE:20261224")
                && day.contains("DTEND;VALUE=DATE:20261225"),
            "{day}"
        );
    }

    #[test]
    fn an_update_changes_what_it_names_and_keeps_the_rest() {
        // A property the adapter does not know, which must survive.
        let old = created().replace(
            "LOCATION:Room 4\r\n",
            "LOCATION:Room 4\r\nX-TEAM-COLOUR:teal\r\n",
        );
        let text = update(
            &old,
            "ev-1",
            &Fields {
                title: Some("Planning".into()),
                start: Some(when::parse("start", "2026-12-08T14:00", Berlin).unwrap()),
                ..Fields::default()
            },
            now(),
        )
        .unwrap();
        assert!(text.contains("X-TEAM-COLOUR:teal"), "{text}");
        assert!(text.contains("SEQUENCE:1"), "{text}");
        assert!(text.contains("LOCATION:Room 4"), "{text}");
        assert!(text.contains("BEGIN:VALARM"), "{text}");
        let cal = &ical::parse(&text).unwrap()[0];
        let o = ical::occurrences(
            cal,
            Berlin,
            at("2026-12-01T00:00:00Z"),
            at("2027-01-01T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(o[0].summary, "Planning");
        // The length (DURATION) is kept.
        assert_eq!(
            (o[0].start, o[0].end),
            (at("2026-12-08T13:00:00Z"), at("2026-12-08T14:30:00Z"))
        );
        assert_eq!(o.len(), 3);
        // The rule removed: one occurrence.
        let once = update(
            &text,
            "ev-1",
            &Fields {
                rrule: Some(String::new()),
                reminders: Some(vec![]),
                ..Fields::default()
            },
            now(),
        )
        .unwrap();
        let event = once.split("BEGIN:VEVENT").nth(1).unwrap();
        assert!(
            !event.contains("RRULE") && !event.contains("VALARM") && event.contains("SEQUENCE:2"),
            "{once}"
        );
    }

    #[test]
    fn bad_fields_are_refused_by_name() {
        let f = |f: Fields| create("x", &f, now()).unwrap_err();
        let start = Some(when::parse("start", "2026-12-07T09:00", Berlin).unwrap());
        assert_eq!(
            f(Fields {
                start,
                ..Fields::default()
            }),
            "title is missing"
        );
        let title = Some("t".to_string());
        assert!(
            f(Fields {
                title: title.clone(),
                start,
                rrule: Some("EVERY MONDAY".into()),
                ..Fields::default()
            })
            .contains("rrule: 'EVERY MONDAY' is not")
        );
        assert!(
            f(Fields {
                title: title.clone(),
                start,
                attendees: Some(vec!["bob".into()]),
                ..Fields::default()
            })
            .contains("'bob' is not an email address")
        );
        let end = Some(when::parse("end", "2026-12-07T08:00", Berlin).unwrap());
        assert_eq!(
            f(Fields {
                title,
                start,
                end,
                ..Fields::default()
            }),
            "end is before start"
        );
    }
}
