//! IMAP SEARCH criteria from a tool's filters. Every value the model gives
//! is quoted or sent as a literal, never spliced in as syntax, and dates
//! are checked before they become `1-Dec-2026`.

/// The filters of `email_list_inbox` and `email_search`.
#[derive(Debug, Default, Clone)]
pub struct Filters {
    pub unread: bool,
    pub from: Option<String>,
    pub to: Option<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    /// `YYYY-MM-DD`.
    pub since: Option<String>,
    pub before: Option<String>,
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2026-12-01` as IMAP's `1-Dec-2026`.
pub fn imap_date(field: &str, d: &str) -> Result<String, String> {
    let bad = || format!("{field} '{d}' is not a date like 2026-12-01");
    let mut it = d.trim().splitn(3, '-');
    let (Some(y), Some(m), Some(day)) = (it.next(), it.next(), it.next()) else {
        return Err(bad());
    };
    let (y, m, day): (u32, usize, u32) = (
        y.parse().map_err(|_| bad())?,
        m.parse().map_err(|_| bad())?,
        day.parse().map_err(|_| bad())?,
    );
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let days = [
        31,
        if leap { 29 } else { 28 },
        31,
        30,
        31,
        30,
        31,
        31,
        30,
        31,
        30,
        31,
    ];
    if !(1900..=9999).contains(&y) || !(1..=12).contains(&m) || day == 0 || day > days[m - 1] {
        return Err(bad());
    }
    Ok(format!("{day}-{}-{y}", MONTHS[m - 1]))
}

/// One string argument: quoted when it is plain ASCII; a non-synchronizing
/// literal (LITERAL+) or a UTF-8 quoted string otherwise.
fn astring(field: &str, v: &str, literal_plus: bool) -> Result<(String, bool), String> {
    if v.contains(['\r', '\n', '\0']) {
        return Err(format!("{field} may not hold line breaks"));
    }
    if v.trim().is_empty() {
        return Err(format!("{field} is empty"));
    }
    let utf8 = !v.is_ascii();
    if utf8 && literal_plus {
        return Ok((format!("{{{}+}}\r\n{v}", v.len()), true));
    }
    Ok((
        format!("\"{}\"", v.replace('\\', "\\\\").replace('"', "\\\"")),
        utf8,
    ))
}

/// The SEARCH criteria (after `UID SEARCH`), `CHARSET UTF-8` first when a
/// value needs it.
pub fn criteria(f: &Filters, literal_plus: bool) -> Result<String, String> {
    let mut keys: Vec<String> = Vec::new();
    let mut utf8 = false;
    if f.unread {
        keys.push("UNSEEN".into());
    }
    for (key, field, v) in [
        ("FROM", "from", &f.from),
        ("TO", "to", &f.to),
        ("SUBJECT", "subject", &f.subject),
        ("TEXT", "text", &f.text),
    ] {
        if let Some(v) = v {
            let (s, u) = astring(field, v, literal_plus)?;
            utf8 |= u;
            keys.push(format!("{key} {s}"));
        }
    }
    for (key, field, v) in [
        ("SINCE", "since", &f.since),
        ("BEFORE", "before", &f.before),
    ] {
        if let Some(v) = v {
            keys.push(format!("{key} {}", imap_date(field, v)?));
        }
    }
    if keys.is_empty() {
        keys.push("ALL".into());
    }
    let q = keys.join(" ");
    Ok(if utf8 {
        format!("CHARSET UTF-8 {q}")
    } else {
        q
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_checked_and_written_as_imap_wants() {
        assert_eq!(imap_date("since", "2026-12-01").unwrap(), "1-Dec-2026");
        assert_eq!(imap_date("since", "2024-02-29").unwrap(), "29-Feb-2024");
        for bad in [
            "2025-02-29",
            "2026-13-01",
            "01.12.2026",
            "2026-12",
            "yesterday",
            "2026-12-00",
        ] {
            let e = imap_date("since", bad).unwrap_err();
            assert!(e.contains(bad), "{e}");
        }
    }

    #[test]
    fn values_are_quoted_never_spliced() {
        let f = Filters {
            unread: true,
            from: Some("bob\" OR ALL \"x".into()),
            subject: Some("a\\b".into()),
            since: Some("2026-11-30".into()),
            ..Filters::default()
        };
        assert_eq!(
            criteria(&f, true).unwrap(),
            "UNSEEN FROM \"bob\\\" OR ALL \\\"x\" SUBJECT \"a\\\\b\" SINCE 30-Nov-2026"
        );
        let crlf = Filters {
            text: Some("x\r\nA1 DELETE INBOX".into()),
            ..Filters::default()
        };
        assert!(criteria(&crlf, true).unwrap_err().contains("line breaks"));
        assert_eq!(criteria(&Filters::default(), true).unwrap(), "ALL");
    }

    #[test]
    fn non_ascii_goes_as_a_literal_or_utf8() {
        let f = Filters {
            subject: Some("Grüße".into()),
            ..Filters::default()
        };
        assert_eq!(
            criteria(&f, true).unwrap(),
            "CHARSET UTF-8 SUBJECT {7+}\r\nGrüße"
        );
        assert_eq!(
            criteria(&f, false).unwrap(),
            "CHARSET UTF-8 SUBJECT \"Grüße\""
        );
    }
}
