//! `[calendar]`: the CalDAV accounts (server, user, the vault name of the
//! password, a default calendar), the user's zone and working hours.

use std::collections::BTreeMap;

use chrono::{NaiveTime, Weekday};
use chrono_tz::Tz;
use oi_kernel::config::{
    Config, Invalid, Section, SectionRule, at_least_one, http_url, pick_account,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The server: its root (discovery starts at `/.well-known/caldav`) or
    /// a calendar home or principal URL.
    pub url: String,
    pub username: String,
    /// The vault secret holding the password (an app password for iCloud
    /// or Nextcloud).
    pub password_secret: String,
    /// The calendar a tool uses when none is named: its display name or
    /// the last part of its URL ("" for the first one found).
    #[serde(default)]
    pub calendar: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CalendarConfig {
    /// The user's IANA zone ("" for the host's): times without a zone are
    /// read in it, and every time is shown in it and in UTC.
    pub timezone: String,
    /// Working hours for `calendar_free_busy`, "HH:MM" in `timezone`.
    pub work_start: String,
    pub work_end: String,
    /// Working days, "mon" ... "sun".
    pub work_days: Vec<String>,
    /// A request's limit.
    pub timeout_secs: u64,
    /// Occurrences one `calendar_events` returns at most.
    pub max_events: u64,
    /// The longest range a query may span, in days.
    pub max_range_days: u64,
    pub accounts: BTreeMap<String, Account>,
}

impl Default for CalendarConfig {
    fn default() -> Self {
        CalendarConfig {
            timezone: String::new(),
            work_start: "09:00".into(),
            work_end: "17:00".into(),
            work_days: ["mon", "tue", "wed", "thu", "fri"]
                .map(String::from)
                .to_vec(),
            timeout_secs: 30,
            max_events: 500,
            max_range_days: 366,
            accounts: BTreeMap::new(),
        }
    }
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<CalendarConfig>()];

/// The host's zone by its IANA name: `TZ`, `/etc/timezone`, or where
/// `/etc/localtime` points; UTC when none says.
pub fn host_zone() -> Tz {
    let from_env = std::env::var("TZ")
        .ok()
        .map(|z| z.trim_start_matches(':').to_string());
    let from_file = || {
        std::fs::read_to_string("/etc/timezone")
            .ok()
            .map(|s| s.trim().to_string())
    };
    let from_link = || {
        let t = std::fs::read_link("/etc/localtime").ok()?;
        let s = t.to_str()?;
        Some(s.split_once("zoneinfo/")?.1.to_string())
    };
    [from_env, from_file(), from_link()]
        .into_iter()
        .flatten()
        .find_map(|z| z.parse().ok())
        .unwrap_or(Tz::UTC)
}

fn weekday(s: &str) -> Option<Weekday> {
    s.trim().parse().ok()
}

fn hhmm(s: &str) -> Option<NaiveTime> {
    NaiveTime::parse_from_str(s.trim(), "%H:%M").ok()
}

impl CalendarConfig {
    /// The user's zone (checked by `validate`).
    pub fn zone(&self) -> Tz {
        if self.timezone.trim().is_empty() {
            host_zone()
        } else {
            self.timezone.trim().parse().unwrap_or(Tz::UTC)
        }
    }

    /// Working hours and days (checked by `validate`).
    pub fn working(&self) -> (NaiveTime, NaiveTime, Vec<Weekday>) {
        (
            hhmm(&self.work_start).unwrap_or(NaiveTime::MIN),
            hhmm(&self.work_end).unwrap_or(NaiveTime::MIN),
            self.work_days.iter().filter_map(|d| weekday(d)).collect(),
        )
    }

    /// The account `name`, or the first one when `name` is `None`.
    pub fn account(&self, name: Option<&str>) -> Result<(&str, &Account), String> {
        pick_account(&self.accounts, name, "calendar")
    }
}

impl oi_kernel::accounts::WithAccounts for CalendarConfig {
    type Account = Account;
    fn accounts(&self) -> &BTreeMap<String, Account> {
        &self.accounts
    }
    fn same_shared(&self, other: &Self) -> bool {
        self.timeout_secs == other.timeout_secs
    }
}

impl Section for CalendarConfig {
    const NAME: &'static str = "calendar";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("calendar.timeout_secs", self.timeout_secs),
            ("calendar.max_events", self.max_events),
            ("calendar.max_range_days", self.max_range_days),
        ])?;
        let tz = self.timezone.trim();
        if !tz.is_empty() && tz.parse::<Tz>().is_err() {
            return Err(Invalid::new(
                "calendar.timezone",
                format!("calendar.timezone '{tz}' is not an IANA zone (like Europe/Berlin)"),
            ));
        }
        let (Some(start), Some(end)) = (hhmm(&self.work_start), hhmm(&self.work_end)) else {
            return Err(Invalid::new(
                "calendar.work_start",
                format!(
                    "calendar.work_start and work_end are \"HH:MM\" ('{}', '{}')",
                    self.work_start, self.work_end
                ),
            ));
        };
        if start >= end {
            return Err(Invalid::new(
                "calendar.work_end",
                "calendar.work_end must be after work_start",
            ));
        }
        if let Some(d) = self.work_days.iter().find(|d| weekday(d).is_none()) {
            return Err(Invalid::new(
                "calendar.work_days",
                format!("calendar.work_days: '{d}' is not a day (mon, tue, ... sun)"),
            ));
        }
        for (name, a) in &self.accounts {
            let at = format!("calendar.accounts.{name}");
            for (key, v) in [
                ("url", &a.url),
                ("username", &a.username),
                ("password_secret", &a.password_secret),
            ] {
                if v.trim().is_empty() {
                    return Err(Invalid::new(
                        format!("{at}.{key}"),
                        format!("{at}.{key} is missing"),
                    ));
                }
            }
            let local = ["http://127.0.0.1", "http://localhost", "http://[::1]"]
                .iter()
                .any(|p| a.url.starts_with(p));
            if !http_url(&a.url) || (a.url.starts_with("http://") && !local) {
                return Err(Invalid::new(
                    format!("{at}.url"),
                    format!(
                        "{at}.url '{}' must start with https:// (http:// only to this machine: the password goes with every request)",
                        a.url
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(t: &str) -> Result<CalendarConfig, String> {
        Config::parse_checked(Some(t), Path::new("c.toml"), Some(SECTIONS))
            .map_err(|e| e.to_string())?
            .section()
            .map_err(|e| e.to_string())
    }

    #[test]
    fn accounts_zone_and_hours_are_checked_where_they_are() {
        let c = parse(
            "[calendar]\ntimezone = \"Europe/Berlin\"\n[calendar.accounts.home]\nurl = \"https://cal.example.com/\"\nusername = \"me\"\npassword_secret = \"calendar-home-password\"\n",
        )
        .unwrap();
        assert_eq!(c.zone(), chrono_tz::Europe::Berlin);
        assert_eq!(c.account(None).unwrap().0, "home");
        assert!(
            c.account(Some("work"))
                .unwrap_err()
                .contains("accounts: home")
        );
        let (s, e, days) = c.working();
        assert_eq!(
            (s.to_string(), e.to_string(), days.len()),
            ("09:00:00".into(), "17:00:00".into(), 5)
        );

        for (bad, says) in [
            (
                "[calendar]\ntimezone = \"Mars/Olympus\"\n",
                "not an IANA zone",
            ),
            ("[calendar]\nwork_start = \"18:00\"\n", "after work_start"),
            (
                "[calendar]\nwork_days = [\"mon\", \"funday\"]\n",
                "'funday' is not a day",
            ),
            (
                "[calendar.accounts.a]\nurl = \"http://cal.example.com/\"\nusername = \"u\"\npassword_secret = \"p\"\n",
                "must start with https://",
            ),
            (
                "[calendar.accounts.a]\nurl = \"https://cal.example.com/\"\nusername = \"u\"\npassword_secret = \"\"\n",
                "calendar.accounts.a.password_secret is missing",
            ),
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
        // Plain http is allowed to this machine only.
        parse("[calendar.accounts.a]\nurl = \"http://127.0.0.1:5232/\"\nusername = \"u\"\npassword_secret = \"p\"\n").unwrap();
    }
}
