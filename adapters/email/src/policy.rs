//! Whom `email_send` may write to. Sending is the side effect a prompt
//! injection in a received message would reach for, so by default only
//! the account's own address and the listed addresses and domains pass.

use crate::config::SendTo;

/// An address reduced to what is compared: the part inside `<>` when
/// there is one, lower-cased.
pub fn bare(address: &str) -> String {
    let a = address.trim();
    let a = match (a.rfind('<'), a.rfind('>')) {
        (Some(l), Some(r)) if l < r => &a[l + 1..r],
        _ => a,
    };
    a.trim().to_ascii_lowercase()
}

/// Whether `address` looks like one mailbox (`local@domain`).
pub fn well_formed(address: &str) -> bool {
    let a = bare(address);
    match a.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !a.contains(|c: char| c.is_whitespace() || matches!(c, ',' | ';' | '<' | '>'))
                && !domain.contains('@')
        }
        None => false,
    }
}

/// The recipients `send_to` refuses, or the reason sending is off.
pub fn refused(
    send_to: SendTo,
    own: &str,
    allowed: &[String],
    recipients: &[String],
) -> Result<(), String> {
    let bad: Vec<&String> = recipients.iter().filter(|r| !well_formed(r)).collect();
    if !bad.is_empty() {
        return Err(format!(
            "not an email address: {}",
            bad.iter()
                .map(|r| format!("'{r}'"))
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    match send_to {
        SendTo::Any => Ok(()),
        SendTo::None => Err("sending is off ([email] send_to = \"none\")".into()),
        SendTo::Allowlist => {
            let own = bare(own);
            let passes = |r: &String| {
                let r = bare(r);
                let domain = r.rsplit_once('@').map(|(_, d)| d).unwrap_or("");
                r == own
                    || allowed.iter().any(|a| {
                        let a = a.trim().to_ascii_lowercase();
                        if a.contains('@') && !a.starts_with('@') {
                            a == r
                        } else {
                            a.trim_start_matches('@') == domain
                        }
                    })
            };
            let strangers: Vec<String> = recipients
                .iter()
                .filter(|r| !passes(r))
                .map(|r| bare(r))
                .collect();
            if strangers.is_empty() {
                Ok(())
            } else {
                Err(format!(
                    "not allowed to send to {} ([email] send_to = \"allowlist\" lets through only {own} and allowed_recipients; add the address or its domain there)",
                    strangers.join(", ")
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_allowlist_passes_own_listed_addresses_and_domains_only() {
        let allowed = v(&["boss@corp.example", "team.example", "@partner.example"]);
        let ok = |r: &[&str]| refused(SendTo::Allowlist, "Me@Home.example", &allowed, &v(r));
        assert!(ok(&["me@home.example"]).is_ok());
        assert!(ok(&["Alice <ALICE@team.example>", "boss@corp.example"]).is_ok());
        assert!(ok(&["x@partner.example"]).is_ok());
        let e = ok(&["boss@corp.example", "Eve <eve@evil.example>"]).unwrap_err();
        assert!(e.contains("not allowed to send to eve@evil.example"), "{e}");
        assert!(!e.contains("boss@"), "{e}");
        // A listed address is not its domain; a subdomain is not the domain.
        assert!(ok(&["other@corp.example"]).is_err());
        assert!(ok(&["a@sub.team.example"]).is_err());
        assert!(ok(&["a@team.example.evil"]).is_err());
    }

    #[test]
    fn any_and_none_and_malformed() {
        assert!(refused(SendTo::Any, "me@x.example", &[], &v(&["a@b.example"])).is_ok());
        let e = refused(SendTo::None, "me@x.example", &[], &v(&["me@x.example"])).unwrap_err();
        assert!(e.contains("sending is off"), "{e}");
        for bad in [
            "bob",
            "a@b",
            "a@b.example, c@d.example",
            "@b.example",
            "a@@b.example",
        ] {
            let e = refused(SendTo::Any, "me@x.example", &[], &v(&[bad])).unwrap_err();
            assert!(e.contains("not an email address"), "{bad}: {e}");
        }
    }
}
