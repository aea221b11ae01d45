//! Reading iCalendar objects (calcard) and expanding their recurrences
//! within a range, here rather than with CalDAV's `<C:expand>`: Radicale
//! 3.9 expands a weekly 09:00 Europe/Berlin event to 07:00Z after the
//! October DST change (the offset of the first occurrence kept), where
//! 08:00Z is right. calcard applies TZID and VTIMEZONE (or the IANA zone
//! of that name), EXDATE and RECURRENCE-ID overrides.

use calcard::icalendar::{
    ICalendar, ICalendarComponent, ICalendarParameterName, ICalendarProperty, ICalendarValue,
};
use calcard::{Entry, Parser};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde_json::{Value, json};

/// At most this many occurrences of one recurring event are walked from
/// its start (a daily event for 50 years), so an endless rule ends.
pub const MAX_OCCURRENCES: usize = 20_000;

/// One occurrence of an event within a range.
#[derive(Debug, Clone, PartialEq)]
pub struct Occurrence {
    pub uid: String,
    pub summary: String,
    pub location: String,
    pub description: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub all_day: bool,
    /// The RRULE of the series, if the event recurs.
    pub rrule: Option<String>,
    /// The zone the event was written in (TZID of DTSTART).
    pub tzid: Option<String>,
    pub attendees: Vec<String>,
}

impl Occurrence {
    /// What the model sees: each time in the user's zone and in UTC.
    pub fn to_json(&self, zone: Tz) -> Value {
        let local = |t: DateTime<Utc>| t.with_timezone(&zone);
        let mut v = json!({
            "uid": self.uid,
            "title": self.summary,
            "all_day": self.all_day,
            "recurring": self.rrule.is_some(),
        });
        if self.all_day {
            // All-day dates are the dates they were written with; the end
            // is exclusive in iCalendar, the last day is shown inclusive.
            let last = self.end - chrono::TimeDelta::days(1);
            v["start_date"] = json!(local(self.start).format("%Y-%m-%d").to_string());
            v["end_date"] = json!(local(last.max(self.start)).format("%Y-%m-%d").to_string());
        } else {
            v["start"] = json!(local(self.start).to_rfc3339());
            v["end"] = json!(local(self.end).to_rfc3339());
            v["start_utc"] = json!(self.start.format("%Y-%m-%dT%H:%M:%SZ").to_string());
            v["end_utc"] = json!(self.end.format("%Y-%m-%dT%H:%M:%SZ").to_string());
        }
        for (k, s) in [
            ("location", &self.location),
            ("description", &self.description),
        ] {
            if !s.is_empty() {
                v[k] = json!(s);
            }
        }
        if let Some(r) = &self.rrule {
            v["rrule"] = json!(r);
        }
        if let Some(t) = &self.tzid {
            v["event_zone"] = json!(t);
        }
        if !self.attendees.is_empty() {
            v["attendees"] = json!(self.attendees);
        }
        v
    }
}

/// The calendars of one iCalendar text (a CalDAV object holds one).
pub fn parse(text: &str) -> Result<Vec<ICalendar>, String> {
    let mut p = Parser::new(text);
    let mut out = Vec::new();
    loop {
        match p.entry() {
            Entry::ICalendar(c) => out.push(c),
            Entry::Eof => break,
            Entry::InvalidLine(l) => return Err(format!("not iCalendar: the line {l:?}")),
            Entry::VCard(_) => return Err("a vCard where an iCalendar object was expected".into()),
            other => return Err(format!("malformed iCalendar: {other:?}")),
        }
    }
    if out.is_empty() {
        return Err("no VCALENDAR in the object".into());
    }
    Ok(out)
}

fn text(c: &ICalendarComponent, p: ICalendarProperty) -> String {
    c.property(&p)
        .and_then(|e| e.values.first())
        .and_then(ICalendarValue::as_text)
        .unwrap_or_default()
        .to_string()
}

/// Whether DTSTART is a DATE (an all-day event).
fn is_date(c: &ICalendarComponent) -> bool {
    c.property(&ICalendarProperty::Dtstart).is_some_and(|e| {
        e.parameter(&ICalendarParameterName::Value)
            .and_then(|v| v.as_text())
            .is_some_and(|v| v.eq_ignore_ascii_case("DATE"))
            || e.values
                .first()
                .and_then(|v| v.as_partial_date_time())
                .is_some_and(|d| d.hour.is_none())
    })
}

/// The occurrences of the events of `cal` that overlap `[from, to)`.
/// Floating times and all-day dates are read in `zone`.
pub fn occurrences(
    cal: &ICalendar,
    zone: Tz,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Occurrence>, String> {
    let expanded = cal.expand_dates(zone, MAX_OCCURRENCES);
    if let Some(e) = expanded.errors.first() {
        let uid = cal
            .component_by_id(e.comp_id)
            .map(|c| text(c, ICalendarProperty::Uid))
            .unwrap_or_default();
        return Err(format!("the event {uid:?} cannot be read: {}", e.error));
    }
    let mut out = Vec::new();
    for ev in &expanded.events {
        let Some(c) = cal.component_by_id(ev.comp_id) else {
            continue;
        };
        if !c.component_type.is_event() {
            continue;
        }
        let (s, e) = ev.timestamps();
        let (Some(start), Some(end)) = (
            Utc.timestamp_opt(s, 0).single(),
            Utc.timestamp_opt(e, 0).single(),
        ) else {
            continue;
        };
        // An event of no length is at its instant.
        let overlaps = start < to && (end > from || (end == start && start >= from));
        if !overlaps {
            continue;
        }
        let master = cal.components.iter().find(|m| {
            m.is_recurrent() && text(m, ICalendarProperty::Uid) == text(c, ICalendarProperty::Uid)
        });
        let rrule = master
            .or(Some(c).filter(|c| c.is_recurrent()))
            .and_then(|m| m.property(&ICalendarProperty::Rrule))
            .and_then(|e| e.values.first())
            .and_then(|v| match v {
                ICalendarValue::RecurrenceRule(r) => Some(r.to_string()),
                _ => None,
            });
        let tzid = c
            .property(&ICalendarProperty::Dtstart)
            .and_then(|e| e.parameter(&ICalendarParameterName::Tzid))
            .and_then(|v| v.as_text())
            .map(String::from);
        out.push(Occurrence {
            uid: text(c, ICalendarProperty::Uid),
            summary: text(c, ICalendarProperty::Summary),
            location: text(c, ICalendarProperty::Location),
            description: text(c, ICalendarProperty::Description),
            start,
            end,
            all_day: is_date(c),
            rrule,
            tzid,
            attendees: c
                .properties(&ICalendarProperty::Attendee)
                .filter_map(|e| e.values.first().and_then(ICalendarValue::as_text))
                .map(|a| calcard::icalendar::utils::strip_mailto_scheme(a).to_string())
                .collect(),
        });
    }
    out.sort_by(|a, b| (a.start, &a.uid).cmp(&(b.start, &b.uid)));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    const WEEKLY: &str = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:weekly\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;TZID=Europe/Berlin:20261019T090000\r\nDTEND;TZID=Europe/Berlin:20261019T100000\r\nRRULE:FREQ=WEEKLY;COUNT=4\r\nSUMMARY:Standup\r\nATTENDEE;CN=Bob:mailto:bob@corp.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";

    #[test]
    fn a_weekly_berlin_event_keeps_its_wall_time_across_the_dst_change() {
        let cal = &parse(WEEKLY).unwrap()[0];
        let o = occurrences(
            cal,
            chrono_tz::Europe::Berlin,
            utc("2026-10-01T00:00:00Z"),
            utc("2026-12-01T00:00:00Z"),
        )
        .unwrap();
        let starts: Vec<String> = o.iter().map(|o| o.start.to_rfc3339()).collect();
        // CEST (+2) for the first, CET (+1) after 25 October.
        assert_eq!(
            starts,
            [
                "2026-10-19T07:00:00+00:00",
                "2026-10-26T08:00:00+00:00",
                "2026-11-02T08:00:00+00:00",
                "2026-11-09T08:00:00+00:00"
            ]
        );
        assert_eq!(o[1].rrule.as_deref(), Some("FREQ=WEEKLY;COUNT=4"));
        assert_eq!(o[1].attendees, ["bob@corp.example"]);
        let j = o[1].to_json(chrono_tz::Europe::Berlin);
        assert_eq!(j["start"], "2026-10-26T09:00:00+01:00");
        assert_eq!(j["start_utc"], "2026-10-26T08:00:00Z");
        assert_eq!(j["event_zone"], "Europe/Berlin");
        // Only what overlaps the range.
        let o = occurrences(
            cal,
            chrono_tz::Europe::Berlin,
            utc("2026-10-26T08:30:00Z"),
            utc("2026-11-02T08:00:00Z"),
        )
        .unwrap();
        assert_eq!(o.len(), 1);
    }

    #[test]
    fn an_all_day_event_and_a_floating_time_are_read_in_the_users_zone() {
        let ics = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//t//EN\r\nBEGIN:VEVENT\r\nUID:day\r\nDTSTAMP:20261201T000000Z\r\nDTSTART;VALUE=DATE:20261224\r\nDTEND;VALUE=DATE:20261225\r\nSUMMARY:Holiday\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:floating\r\nDTSTAMP:20261201T000000Z\r\nDTSTART:20261223T150000\r\nDURATION:PT30M\r\nSUMMARY:Call\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n";
        let cal = &parse(ics).unwrap()[0];
        let ny = chrono_tz::America::New_York;
        let o = occurrences(
            cal,
            ny,
            utc("2026-12-20T00:00:00Z"),
            utc("2026-12-31T00:00:00Z"),
        )
        .unwrap();
        assert_eq!(o.len(), 2);
        let call = o.iter().find(|o| o.uid == "floating").unwrap();
        // 15:00 in New York, never 15:00 UTC.
        assert_eq!(call.start, utc("2026-12-23T20:00:00Z"));
        assert_eq!(call.end, utc("2026-12-23T20:30:00Z"));
        let day = o.iter().find(|o| o.uid == "day").unwrap();
        assert!(day.all_day);
        let j = day.to_json(ny);
        assert_eq!(
            (j["start_date"].as_str(), j["end_date"].as_str()),
            (Some("2026-12-24"), Some("2026-12-24"))
        );
        assert!(j.get("start_utc").is_none());
    }

    #[test]
    fn what_is_not_icalendar_is_said() {
        assert!(parse("").unwrap_err().contains("no VCALENDAR"));
        assert!(parse("<html>nope</html>").is_err());
    }
}
