//! `[email]`: the accounts (servers, user, how they log in: a password or
//! OAuth2, both as vault secret names), the recipient policy and limits.

use std::collections::BTreeMap;

use oi_kernel::config::{
    Config, Invalid, Section, SectionRule, at_least_one, http_url, pick_account,
};
use serde::{Deserialize, Serialize};

oi_kernel::vocabulary! {
    /// How a connection is encrypted.
    Tls default Implicit {
        /// TLS from the first byte (IMAP 993, SMTP 465).
        Implicit = "implicit",
        /// Plain text, then STARTTLS before anything else (IMAP 143, SMTP 587).
        Starttls = "starttls",
        /// No encryption: only to this machine (127.0.0.1, ::1, localhost).
        None = "none",
    }
}

oi_kernel::vocabulary! {
    /// Whom `email_send` may write to.
    SendTo default Allowlist {
        /// The account's own address and `allowed_recipients`.
        Allowlist = "allowlist",
        Any = "any",
        /// Sending is off.
        None = "none",
    }
}

/// One server: where it is and how the connection is encrypted.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    pub host: String,
    pub port: u16,
    #[serde(default)]
    pub tls: Tls,
}

/// How an account logs in; every credential is a vault secret's name.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "lowercase", deny_unknown_fields)]
pub enum Auth {
    /// LOGIN / AUTH PLAIN with the password in `password_secret`.
    Password { password_secret: String },
    /// XOAUTH2 with access tokens from `token_url`, refreshed with the
    /// refresh token in `refresh_token_secret` (which `oictl email login`
    /// stores through `authorize_url`).
    Oauth2(OAuth2),
}

impl Default for Auth {
    fn default() -> Self {
        Auth::Password {
            password_secret: String::new(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2 {
    pub token_url: String,
    /// Where `oictl email login` sends the browser.
    #[serde(default)]
    pub authorize_url: String,
    pub client_id: String,
    /// The client secret's vault name; "" for a public client (PKCE only).
    #[serde(default)]
    pub client_secret_secret: String,
    pub refresh_token_secret: String,
    #[serde(default)]
    pub scopes: Vec<String>,
    /// More query parameters for the authorization request (Google wants
    /// `access_type = "offline"` and `prompt = "consent"` to hand out a
    /// refresh token).
    #[serde(default)]
    pub authorize_params: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Account {
    /// The address mail is sent from; the username when it holds an @.
    #[serde(default)]
    pub address: String,
    pub username: String,
    pub imap: Server,
    pub smtp: Server,
    pub auth: Auth,
    /// A PEM file of CA certificates trusted beside the system's (a
    /// company or home server with its own CA).
    #[serde(default)]
    pub ca_file: String,
    /// Whether a sent message is also saved to the Sent folder (turn off
    /// for Gmail, which saves it itself).
    #[serde(default = "yes")]
    pub save_sent: bool,
}

fn yes() -> bool {
    true
}

impl Account {
    /// The address mail goes out from.
    pub fn from_address(&self) -> &str {
        if self.address.is_empty() {
            &self.username
        } else {
            &self.address
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EmailConfig {
    pub send_to: SendTo,
    /// Addresses (`bob@example.com`) and domains (`example.com`) that
    /// `send_to = "allowlist"` lets through beside the account's own.
    pub allowed_recipients: Vec<String>,
    /// A server command's limit.
    pub timeout_secs: u64,
    /// Characters of a message's body `email_read` returns at most.
    pub max_body_chars: u64,
    pub snippet_chars: u64,
    /// Messages one listing or search returns at most.
    pub max_list: u64,
    /// Seconds before an access token's expiry at which it is renewed.
    pub refresh_skew_secs: u64,
    pub accounts: BTreeMap<String, Account>,
}

/// The sections this crate owns, for the service table.
pub const SECTIONS: &[SectionRule] = &[SectionRule::of::<EmailConfig>()];

/// Whether `host` is this machine, where plain text may go.
pub fn local(host: &str) -> bool {
    matches!(host, "127.0.0.1" | "::1" | "[::1]" | "localhost")
}

impl oi_kernel::accounts::WithAccounts for EmailConfig {
    type Account = Account;
    fn accounts(&self) -> &BTreeMap<String, Account> {
        &self.accounts
    }
    fn same_shared(&self, other: &Self) -> bool {
        self.timeout_secs == other.timeout_secs && self.refresh_skew_secs == other.refresh_skew_secs
    }
}

impl EmailConfig {
    /// The account `name`, or the first one when `name` is `None`.
    pub fn account(&self, name: Option<&str>) -> Result<(&str, &Account), String> {
        pick_account(&self.accounts, name, "email")
    }
}

fn check_server(at: &str, s: &Server) -> Result<(), Invalid> {
    if s.host.trim().is_empty() {
        return Err(Invalid::new(
            format!("{at}.host"),
            format!("{at}.host is missing"),
        ));
    }
    if s.port == 0 {
        return Err(Invalid::new(
            format!("{at}.port"),
            format!("{at}.port must be at least 1"),
        ));
    }
    if s.tls == Tls::None && !local(&s.host) {
        return Err(Invalid::new(
            format!("{at}.tls"),
            format!(
                "{at}.tls = \"none\" sends the password in plain text; it is allowed only to this machine (127.0.0.1), not to {}: use \"implicit\" or \"starttls\"",
                s.host
            ),
        ));
    }
    Ok(())
}

fn need(at: String, v: &str) -> Result<(), Invalid> {
    if v.trim().is_empty() {
        return Err(Invalid::new(at.clone(), format!("{at} is missing")));
    }
    Ok(())
}

impl Section for EmailConfig {
    const NAME: &'static str = "email";
    fn validate(&self, _config: &Config) -> Result<(), Invalid> {
        at_least_one(&[
            ("email.timeout_secs", self.timeout_secs),
            ("email.max_body_chars", self.max_body_chars),
            ("email.snippet_chars", self.snippet_chars),
            ("email.max_list", self.max_list),
        ])?;
        for r in &self.allowed_recipients {
            let r = r.trim().trim_start_matches('@');
            if r.is_empty() || r.contains(char::is_whitespace) || !r.contains('.') {
                return Err(Invalid::new(
                    "email.allowed_recipients",
                    format!(
                        "email.allowed_recipients: '{r}' is neither an address (bob@example.com) nor a domain (example.com)"
                    ),
                ));
            }
        }
        for (name, a) in &self.accounts {
            let at = format!("email.accounts.{name}");
            need(format!("{at}.username"), &a.username)?;
            if !a.from_address().contains('@') {
                return Err(Invalid::new(
                    format!("{at}.address"),
                    format!(
                        "{at}.address is missing: the username '{}' is not an address to send from",
                        a.username
                    ),
                ));
            }
            check_server(&format!("{at}.imap"), &a.imap)?;
            check_server(&format!("{at}.smtp"), &a.smtp)?;
            match &a.auth {
                Auth::Password { password_secret } => {
                    need(format!("{at}.auth.password_secret"), password_secret)?
                }
                Auth::Oauth2(o) => {
                    need(format!("{at}.auth.client_id"), &o.client_id)?;
                    need(
                        format!("{at}.auth.refresh_token_secret"),
                        &o.refresh_token_secret,
                    )?;
                    for (key, url, required) in [
                        ("token_url", &o.token_url, true),
                        ("authorize_url", &o.authorize_url, false),
                    ] {
                        if (required || !url.is_empty()) && !http_url(url) {
                            return Err(Invalid::new(
                                format!("{at}.auth.{key}"),
                                format!(
                                    "{at}.auth.{key} '{url}' must start with https:// (or http:// to this machine)"
                                ),
                            ));
                        }
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn parse(t: &str) -> Result<Config, oi_kernel::config::ConfigError> {
        Config::parse_checked(Some(t), Path::new("c.toml"), Some(SECTIONS))
    }

    const WORK: &str = r#"
[email.accounts.work]
username = "me@example.com"
imap = { host = "imap.example.com", port = 993 }
smtp = { host = "smtp.example.com", port = 587, tls = "starttls" }
auth = { method = "password", password_secret = "email-work-password" }
"#;

    #[test]
    fn an_account_parses_with_defaults_and_the_first_is_the_default() {
        let c: EmailConfig = parse(WORK).unwrap().section().unwrap();
        assert_eq!(c.send_to, SendTo::Allowlist);
        let (name, a) = c.account(None).unwrap();
        assert_eq!(name, "work");
        assert_eq!(a.imap.tls, Tls::Implicit);
        assert_eq!(a.smtp.tls, Tls::Starttls);
        assert!(a.save_sent);
        assert_eq!(a.from_address(), "me@example.com");
        let e = c.account(Some("home")).unwrap_err();
        assert!(
            e.contains("no email account 'home' (accounts: work)"),
            "{e}"
        );
        let none: EmailConfig = parse("").unwrap().section().unwrap();
        assert!(none.account(None).unwrap_err().contains("[email.accounts"));
    }

    #[test]
    fn oauth2_accounts_parse() {
        let t = r#"
[email.accounts.gmail]
username = "me@gmail.com"
save_sent = false
imap = { host = "imap.gmail.com", port = 993 }
smtp = { host = "smtp.gmail.com", port = 465 }
[email.accounts.gmail.auth]
method = "oauth2"
token_url = "https://oauth2.googleapis.com/token"
authorize_url = "https://accounts.google.com/o/oauth2/v2/auth"
client_id = "abc.apps.googleusercontent.com"
client_secret_secret = "email-gmail-client-secret"
refresh_token_secret = "email-gmail-refresh-token"
scopes = ["https://mail.google.com/"]
authorize_params = { access_type = "offline", prompt = "consent" }
"#;
        let c: EmailConfig = parse(t).unwrap().section().unwrap();
        let Auth::Oauth2(o) = &c.accounts["gmail"].auth else {
            panic!("not oauth2")
        };
        assert_eq!(o.scopes, ["https://mail.google.com/"]);
        assert_eq!(o.authorize_params["prompt"], "consent");
    }

    #[test]
    fn bad_accounts_are_refused_at_their_place() {
        let e = parse(&WORK.replace("port = 993", "port = 993, tls = \"none\"")).unwrap_err();
        assert!(e.message.contains("allowed only to this machine"), "{e}");
        assert_eq!(e.location.map(|l| l.0), Some(4), "{e}");
        let local = WORK.replace(
            "imap.example.com\", port = 993",
            "127.0.0.1\", port = 143, tls = \"none\"",
        );
        assert!(parse(&local).is_ok());
        let e = parse(&WORK.replace("password_secret", "secret")).unwrap_err();
        assert!(e.message.contains("unknown field `secret`"), "{e}");
        let e = parse(&WORK.replace("\"password\"", "\"kerberos\"")).unwrap_err();
        assert!(e.message.contains("kerberos"), "{e}");
        let e = parse(&WORK.replace("me@example.com", "me")).unwrap_err();
        assert!(e.message.contains("address is missing"), "{e}");
        let e = parse("[email]\nallowed_recipients = [\"bob\"]\n").unwrap_err();
        assert!(e.message.contains("'bob' is neither"), "{e}");
        let e = parse("[email]\nsend_to = \"everyone\"\n").unwrap_err();
        assert!(e.message.contains("everyone"), "{e}");
    }
}
