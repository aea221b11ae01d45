//! One account while the adapter runs: its credentials (read from the
//! vault by name, access tokens renewed before they expire and after a
//! refusal), its one IMAP session (reused, connected again after a drop,
//! every command under a deadline) and sending over SMTP.

use std::time::{Duration, Instant};

use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls as SmtpTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use oi_kernel::client::BusClient;
use oi_kernel::secrets;
use oi_sandbox::tls::TlsConnector;
use tokio::sync::Mutex;
use tracing::{info, warn};
use zeroize::Zeroizing;

use crate::config::{Account as AccountConfig, Auth, Tls};
use crate::imap::{Imap, ImapError};
use crate::jobs::{self, Done, Job};
use crate::oauth::{self, Token, TokenError};
use crate::tls;

/// What a call on an account can end in.
#[derive(Debug, thiserror::Error)]
pub enum EmailError {
    /// Wrong arguments, an unknown folder or UID.
    #[error("{0}")]
    Bad(String),
    /// Refused by policy.
    #[error("{0}")]
    Denied(String),
    /// A server or credential that does not work as configured.
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Timeout(String),
}

/// A credential for one login.
enum Cred {
    Password(Zeroizing<String>),
    Bearer(Zeroizing<String>),
}

pub struct Account {
    pub name: String,
    pub cfg: AccountConfig,
    limit: Duration,
    skew: Duration,
    tls: TlsConnector,
    ca_pem: Option<Vec<u8>>,
    http: reqwest::Client,
    imap: Mutex<Option<Imap>>,
    token: Mutex<Option<Token>>,
    /// A refresh token the endpoint handed out in place of the vault's.
    rotated: std::sync::Mutex<Option<Zeroizing<String>>>,
}

/// Whether a login failure means the credential was refused.
fn refused_login(e: &async_imap::error::Error) -> bool {
    use async_imap::error::Error as E;
    matches!(e, E::No(_) | E::Bad(_))
}

/// What to do about a server whose CA this machine does not trust.
const CA_FIX: &str = "for a private CA, set the account's ca_file";

impl Account {
    pub fn new(
        name: &str,
        cfg: AccountConfig,
        limit: Duration,
        skew: Duration,
    ) -> Result<Account, String> {
        let roots = tls::extra_roots(&cfg.ca_file)?;
        let ca_pem = if cfg.ca_file.is_empty() {
            None
        } else {
            Some(
                std::fs::read(&cfg.ca_file)
                    .map_err(|e| format!("cannot read the CA file {}: {e}", cfg.ca_file))?,
            )
        };
        Ok(Account {
            name: name.to_string(),
            tls: tls::connector(roots)?,
            ca_pem,
            http: oauth::client(limit)?,
            cfg,
            limit,
            skew,
            imap: Mutex::new(None),
            token: Mutex::new(None),
            rotated: std::sync::Mutex::new(None),
        })
    }

    fn unavailable(&self, what: impl std::fmt::Display) -> EmailError {
        EmailError::Unavailable(format!("account '{}': {what}", self.name))
    }

    async fn secret(&self, bus: &BusClient, name: &str) -> Result<Zeroizing<String>, EmailError> {
        match secrets::read_text(bus, name, self.limit).await {
            Ok(v) if !v.is_empty() => Ok(v),
            Ok(_) => Err(self.unavailable(format!(
                "the vault secret {name} is empty; set it with `oictl vault set {name}`"
            ))),
            Err(e) => Err(self.unavailable(format!(
                "cannot read the vault secret {name} ({e}); set it with `oictl vault set {name}`, and let [vault.policy] email read it"
            ))),
        }
    }

    /// The password, or an access token (renewed first when it is about
    /// to expire, or when `renew` says the server refused it).
    async fn credential(&self, bus: &BusClient, renew: bool) -> Result<Cred, EmailError> {
        let o = match &self.cfg.auth {
            Auth::Password { password_secret } => {
                return Ok(Cred::Password(self.secret(bus, password_secret).await?));
            }
            Auth::Oauth2(o) => o,
        };
        let mut slot = self.token.lock().await;
        if !renew
            && let Some(t) = slot.as_ref()
            && Instant::now() < t.renew_at
        {
            return Ok(Cred::Bearer(t.access.clone()));
        }
        let rotated = self
            .rotated
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let refresh = match rotated {
            Some(r) => r,
            None => self.secret(bus, &o.refresh_token_secret).await?,
        };
        let client_secret = if o.client_secret_secret.is_empty() {
            Zeroizing::new(String::new())
        } else {
            self.secret(bus, &o.client_secret_secret).await?
        };
        let t = oauth::refresh(
            &self.http,
            &o.token_url,
            &o.client_id,
            &client_secret,
            &refresh,
            self.skew,
        )
        .await
        .map_err(|e| match e {
            TokenError::Refused { .. } => self.unavailable(format!(
                "{e}: the refresh token no longer works; run `oictl email login {}` to log in again",
                self.name
            )),
            TokenError::Failed(_) => self.unavailable(format!("cannot renew the access token: {e}")),
        })?;
        info!(account = %self.name, "access token renewed");
        if let Some(r) = &t.rotated {
            // Kept for this run; `oictl email login` stores a new one for good.
            warn!(account = %self.name, "the token endpoint rotated the refresh token; using the new one until the adapter restarts");
            *self.rotated.lock().unwrap_or_else(|p| p.into_inner()) = Some(r.clone());
        }
        let access = t.access.clone();
        *slot = Some(t);
        Ok(Cred::Bearer(access))
    }

    async fn forget_token(&self) {
        *self.token.lock().await = None;
    }

    /// A new logged-in session: an OAuth2 token the server refuses is
    /// renewed and the login tried once more.
    async fn connect(&self, bus: &BusClient) -> Result<Imap, EmailError> {
        let s = &self.cfg.imap;
        let oauth = matches!(self.cfg.auth, Auth::Oauth2(_));
        for attempt in 0..2 {
            let (conn, greeted) = tls::imap(&s.host, s.port, s.tls, &self.tls, self.limit)
                .await
                .map_err(|e| {
                    self.unavailable(tls::explain(
                        format!("IMAP {}:{}: {e}", s.host, s.port),
                        CA_FIX,
                    ))
                })?;
            let mut client = async_imap::Client::new(conn);
            if !greeted {
                // async-imap waits for the greeting only when told to; an
                // AUTHENTICATE sent before it hangs until the server gives up.
                match tokio::time::timeout(self.limit, client.read_response()).await {
                    Ok(Ok(Some(_))) => {}
                    Ok(Ok(None)) => {
                        return Err(self.unavailable(format!(
                            "IMAP {}:{} closed the connection before greeting",
                            s.host, s.port
                        )));
                    }
                    Ok(Err(e)) => {
                        return Err(self.unavailable(format!("IMAP {}:{}: {e}", s.host, s.port)));
                    }
                    Err(_) => {
                        return Err(
                            self.timeout(format!("IMAP {}:{} sent no greeting", s.host, s.port))
                        );
                    }
                }
            }
            let cred = self.credential(bus, attempt == 1).await?;
            let user = self.cfg.username.as_str();
            let login = async {
                match &cred {
                    Cred::Password(p) => client.login(user, p.as_str()).await,
                    Cred::Bearer(t) => client.authenticate("XOAUTH2", XOAuth2::new(user, t)).await,
                }
            };
            let session = match tokio::time::timeout(self.limit, login).await {
                Err(_) => return Err(self.timeout("the IMAP login got no answer".into())),
                Ok(Ok(session)) => session,
                Ok(Err((e, _))) if refused_login(&e) && oauth && attempt == 0 => {
                    info!(account = %self.name, "the IMAP server refused the access token; renewing it");
                    self.forget_token().await;
                    continue;
                }
                Ok(Err((e, _))) if refused_login(&e) => {
                    let what = match &self.cfg.auth {
                        Auth::Password { password_secret } => format!(
                            "check the password in the vault secret {password_secret} (`oictl vault set {password_secret}`)"
                        ),
                        Auth::Oauth2(_) => format!(
                            "a freshly renewed access token was refused too; run `oictl email login {}`",
                            self.name
                        ),
                    };
                    return Err(self.unavailable(format!(
                        "the IMAP server refused the login of {user}: {}; {what}",
                        ImapError::from(e)
                    )));
                }
                Ok(Err((e, _))) => return Err(self.unavailable(format!("IMAP login: {e}"))),
            };
            let imap = tokio::time::timeout(self.limit, Imap::new(session))
                .await
                .map_err(|_| self.timeout("CAPABILITY got no answer".into()))?
                .map_err(|e| self.unavailable(e))?;
            info!(account = %self.name, host = %s.host, "IMAP session open");
            return Ok(imap);
        }
        Err(self.unavailable("the IMAP login failed twice"))
    }

    fn timeout(&self, what: String) -> EmailError {
        EmailError::Timeout(format!(
            "account '{}': {what} (limit {} s, [email] timeout_secs)",
            self.name,
            self.limit.as_secs()
        ))
    }

    /// Runs `job` on the account's session. A reused session that turns out
    /// dead is replaced and `job` run once more; a new one that breaks is an
    /// error, and the next call connects again.
    pub async fn with_imap(&self, bus: &BusClient, job: &Job<'_>) -> Result<Done, EmailError> {
        let mut slot = self.imap.lock().await;
        let mut broke: Option<String> = None;
        loop {
            let reused = slot.is_some();
            if slot.is_none() {
                let fresh = self.connect(bus).await.map_err(|e| match (&broke, e) {
                    (Some(b), EmailError::Unavailable(m) | EmailError::Timeout(m)) => {
                        self.unavailable(format!(
                            "the connection to the IMAP server broke ({b}), and connecting again failed: {}",
                            m.trim_start_matches(&format!("account '{}': ", self.name))
                        ))
                    }
                    (_, e) => e,
                })?;
                *slot = Some(fresh);
            }
            let Some(imap) = slot.as_mut() else {
                return Err(self.unavailable("no IMAP session"));
            };
            let r = tokio::time::timeout(self.limit, jobs::exec(imap, job)).await;
            // Untagged news the commands did not ask for is not kept.
            while imap.session.unsolicited_responses.try_recv().is_ok() {}
            match r {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(ImapError::Connection(e))) => {
                    *slot = None;
                    if reused && broke.is_none() {
                        info!(account = %self.name, "the IMAP session was dead ({e}); connecting again");
                        broke = Some(e);
                        continue;
                    }
                    return Err(self.unavailable(format!(
                        "the connection to the IMAP server broke ({e}); the next call connects again"
                    )));
                }
                Ok(Err(ImapError::Server(e))) => {
                    return Err(self.unavailable(format!("the IMAP server refused: {e}")));
                }
                Ok(Err(ImapError::Invalid(e))) => return Err(EmailError::Bad(e)),
                Err(_) => {
                    // The session is mid-command: it cannot be reused.
                    *slot = None;
                    return Err(self.timeout("the IMAP server did not answer".into()));
                }
            }
        }
    }

    fn smtp(&self, cred: &Cred) -> Result<AsyncSmtpTransport<Tokio1Executor>, EmailError> {
        let s = &self.cfg.smtp;
        let params = || {
            let mut b = TlsParameters::builder(s.host.clone());
            if let Some(pem) = &self.ca_pem {
                let c = Certificate::from_pem(pem).map_err(|e| {
                    self.unavailable(format!("the CA file {}: {e}", self.cfg.ca_file))
                })?;
                b = b.add_root_certificate(c);
            }
            b.build_rustls()
                .map_err(|e| self.unavailable(format!("SMTP TLS: {e}")))
        };
        let tls = match s.tls {
            Tls::None => SmtpTls::None,
            Tls::Implicit => SmtpTls::Wrapper(params()?),
            Tls::Starttls => SmtpTls::Required(params()?),
        };
        let (secret, mechanisms) = match cred {
            Cred::Password(p) => (p.to_string(), vec![Mechanism::Plain, Mechanism::Login]),
            Cred::Bearer(t) => (t.to_string(), vec![Mechanism::Xoauth2]),
        };
        Ok(
            AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(s.host.clone())
                .port(s.port)
                .tls(tls)
                .credentials(Credentials::new(self.cfg.username.clone(), secret))
                .authentication(mechanisms)
                .timeout(Some(self.limit))
                .build(),
        )
    }

    /// Sends `message` over SMTP; an access token refused with 535 is
    /// renewed and the message sent once more.
    pub async fn send(&self, bus: &BusClient, message: &lettre::Message) -> Result<(), EmailError> {
        let oauth = matches!(self.cfg.auth, Auth::Oauth2(_));
        let s = &self.cfg.smtp;
        for attempt in 0..2 {
            let cred = self.credential(bus, attempt == 1).await?;
            let t = self.smtp(&cred)?;
            let sent =
                tokio::time::timeout(self.limit + Duration::from_secs(1), t.send(message.clone()))
                    .await;
            let e = match sent {
                Ok(Ok(_)) => return Ok(()),
                Ok(Err(e)) => e,
                Err(_) => {
                    return Err(self.timeout(format!("SMTP {}:{} did not answer", s.host, s.port)));
                }
            };
            let code = e.status().map(|c| c.to_string());
            if code.as_deref() == Some("535") && oauth && attempt == 0 {
                info!(account = %self.name, "the SMTP server refused the access token; renewing it");
                self.forget_token().await;
                continue;
            }
            let chain = oi_sandbox::netguard::error_chain(&e);
            return Err(match code.as_deref() {
                Some("535") => self.unavailable(format!(
                    "the SMTP server refused the login of {} ({chain}); {}",
                    self.cfg.username,
                    match &self.cfg.auth {
                        Auth::Password { password_secret } =>
                            format!("check the password in the vault secret {password_secret}"),
                        Auth::Oauth2(_) => format!("run `oictl email login {}`", self.name),
                    }
                )),
                Some(c) if c.starts_with('5') => EmailError::Bad(format!(
                    "account '{}': the SMTP server refused the message: {chain}",
                    self.name
                )),
                _ => self.unavailable(tls::explain(
                    format!("SMTP {}:{}: {chain}", s.host, s.port),
                    CA_FIX,
                )),
            });
        }
        Err(self.unavailable("the SMTP login failed twice"))
    }
}

/// The XOAUTH2 SASL exchange: the token first, then an empty answer to
/// the server's error challenge so that it says NO.
struct XOAuth2 {
    first: Option<Zeroizing<String>>,
}

impl XOAuth2 {
    fn new(user: &str, token: &str) -> XOAuth2 {
        XOAuth2 {
            first: Some(oauth::xoauth2(user, token)),
        }
    }
}

impl async_imap::Authenticator for XOAuth2 {
    type Response = Zeroizing<String>;
    fn process(&mut self, _challenge: &[u8]) -> Zeroizing<String> {
        self.first.take().unwrap_or_default()
    }
}
