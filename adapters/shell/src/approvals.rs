//! Approvals bound to a person.
//!
//! Under `policy = "approval"` a command off the allow list does not run
//! on anybody's say-so in the call itself: no argument of `shell_execute`
//! approves anything. It becomes a pending approval instead, with an id,
//! the exact command and directory, and the intent that asked. The user
//! runs `oictl approve <id>`, which needs a terminal: it shows the exact
//! command, asks the adapter for a one-time code, and the user types the
//! code back. Only the user's own client may ask for a code or grant one
//! (the broker gives no user rights to anything a service started). The
//! grant is for that command, in that directory, for that intent, once,
//! within a few minutes; the call is then made again and runs. Every step
//! is in the audit log: who approved, how, and for which intent.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use oi_kernel::harness::ServiceError;
use ring::rand::{SecureRandom, SystemRandom};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// How long a request for approval waits for the user.
pub const PENDING_FOR: Duration = Duration::from_secs(15 * 60);
/// How long a code shown to the user stays valid.
pub const CODE_FOR: Duration = Duration::from_secs(120);
/// How long a grant waits for the call to be made again.
pub const GRANT_FOR: Duration = Duration::from_secs(10 * 60);

/// What is to be approved: the exact command, where, for which intent.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Subject {
    pub command: String,
    pub cwd: String,
    pub intent: String,
}

/// A pending approval as shown to the user.
#[derive(Debug, Clone, Serialize)]
pub struct View {
    pub id: String,
    #[serde(flatten)]
    pub subject: Subject,
    /// The programs that need the approval.
    pub programs: Vec<String>,
    pub age_secs: u64,
    pub granted: bool,
}

#[derive(Debug)]
struct Pending {
    subject: Subject,
    programs: Vec<String>,
    created: Instant,
    code: Option<(String, Instant)>,
    /// Who approved, how, and until when the grant holds.
    granted: Option<(String, Instant)>,
}

/// Why an approval step failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ApprovalError {
    #[error(
        "no pending approval '{0}' (it ran, expired or was refused); `oictl approve` lists them"
    )]
    Unknown(String),
    #[error("approval '{0}': ask for a code first (`oictl approve {0}` does)")]
    NoCode(String),
    #[error("approval '{0}': the code has expired; run `oictl approve {0}` again")]
    CodeExpired(String),
    #[error("approval '{0}': wrong code; nothing was approved")]
    WrongCode(String),
    #[error("the system's random source failed")]
    Random,
}

pub struct Approvals {
    pending: Mutex<HashMap<String, Pending>>,
    rng: SystemRandom,
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals {
            pending: Mutex::new(HashMap::new()),
            rng: SystemRandom::new(),
        }
    }
}

impl Approvals {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn expire(map: &mut HashMap<String, Pending>, now: Instant) {
        map.retain(|_, p| match &p.granted {
            Some((_, until)) => *until > now,
            None => now.duration_since(p.created) < PENDING_FOR,
        });
    }

    /// The approval `id`, still waiting for the user.
    fn waiting<'m>(
        map: &'m mut HashMap<String, Pending>,
        id: &str,
        now: Instant,
    ) -> Result<&'m mut Pending, ApprovalError> {
        Self::expire(map, now);
        map.get_mut(id)
            .filter(|p| p.granted.is_none())
            .ok_or_else(|| ApprovalError::Unknown(id.to_string()))
    }

    fn random(&self, bytes: &mut [u8]) -> Result<(), ApprovalError> {
        self.rng.fill(bytes).map_err(|_| ApprovalError::Random)
    }

    /// Files a request for approval (the same subject keeps its id).
    pub fn request(
        &self,
        subject: Subject,
        programs: Vec<String>,
    ) -> Result<String, ApprovalError> {
        let now = Instant::now();
        let mut map = self.lock();
        Self::expire(&mut map, now);
        if let Some((id, _)) = map
            .iter()
            .find(|(_, p)| p.subject == subject && p.granted.is_none())
        {
            return Ok(id.clone());
        }
        let mut b = [0u8; 4];
        self.random(&mut b)?;
        let id: String = b.iter().map(|x| format!("{x:02x}")).collect();
        map.insert(
            id.clone(),
            Pending {
                subject,
                programs,
                created: now,
                code: None,
                granted: None,
            },
        );
        Ok(id)
    }

    fn view(id: &str, p: &Pending, now: Instant) -> View {
        View {
            id: id.to_string(),
            subject: p.subject.clone(),
            programs: p.programs.clone(),
            age_secs: now.duration_since(p.created).as_secs(),
            granted: p.granted.is_some(),
        }
    }

    pub fn list(&self) -> Vec<View> {
        let now = Instant::now();
        let mut map = self.lock();
        Self::expire(&mut map, now);
        let mut v: Vec<View> = map.iter().map(|(id, p)| Self::view(id, p, now)).collect();
        v.sort_by_key(|v| std::cmp::Reverse(v.age_secs));
        v
    }

    /// A fresh one-time code for `id`, to show the user with the command.
    pub fn challenge(&self, id: &str) -> Result<(View, String), ApprovalError> {
        let now = Instant::now();
        let mut b = [0u8; 4];
        self.random(&mut b)?;
        let code = format!("{:06}", u32::from_le_bytes(b) % 1_000_000);
        let mut map = self.lock();
        let p = Self::waiting(&mut map, id, now)?;
        p.code = Some((code.clone(), now + CODE_FOR));
        Ok((Self::view(id, p, now), code))
    }

    /// Grants `id` when `code` is the one last shown. A wrong code spends
    /// it: the user asks for a new one.
    pub fn grant(&self, id: &str, code: &str, who: &str) -> Result<View, ApprovalError> {
        let now = Instant::now();
        let mut map = self.lock();
        let p = Self::waiting(&mut map, id, now)?;
        let Some((expected, until)) = p.code.take() else {
            return Err(ApprovalError::NoCode(id.to_string()));
        };
        if until <= now {
            return Err(ApprovalError::CodeExpired(id.to_string()));
        }
        if !constant_time_eq(expected.as_bytes(), code.trim().as_bytes()) {
            return Err(ApprovalError::WrongCode(id.to_string()));
        }
        p.granted = Some((who.to_string(), now + GRANT_FOR));
        Ok(Self::view(id, p, now))
    }

    /// Refuses `id`.
    pub fn refuse(&self, id: &str) -> Result<Subject, ApprovalError> {
        self.lock()
            .remove(id)
            .map(|p| p.subject)
            .ok_or_else(|| ApprovalError::Unknown(id.to_string()))
    }

    /// Takes the grant for exactly this subject, if there is one: the id
    /// and who approved. It is used up.
    pub fn take_grant(&self, subject: &Subject) -> Option<(String, String)> {
        let now = Instant::now();
        let mut map = self.lock();
        Self::expire(&mut map, now);
        let id = map
            .iter()
            .find(|(_, p)| &p.subject == subject && p.granted.is_some())
            .map(|(id, _)| id.clone())?;
        let p = map.remove(&id)?;
        p.granted.map(|(who, _)| (id, who))
    }
}

/// The bus methods of approvals, for the user's own client only.
pub use oi_ipc_schema::shell::methods;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IdArgs {
    id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantArgs {
    id: String,
    code: String,
    who: String,
}

impl From<ApprovalError> for ServiceError {
    fn from(e: ApprovalError) -> ServiceError {
        match e {
            ApprovalError::Random => ServiceError::internal(e.to_string()),
            _ => ServiceError::bad_request(e.to_string()),
        }
    }
}

impl Approvals {
    /// Answers an approvals method. `caller` must be the user's own client
    /// (empty): no service, and so no agent, can approve.
    pub fn handle(
        &self,
        caller: &str,
        method: &str,
        payload: &[u8],
    ) -> Result<Value, ServiceError> {
        if !caller.is_empty() {
            return Err(ServiceError::denied(format!(
                "{method}: only the user's own client may see or give approvals, not '{caller}'"
            )));
        }
        let parse = |p: &[u8]| -> Result<Value, ServiceError> {
            serde_json::from_slice(if p.is_empty() { b"{}" } else { p })
                .map_err(|e| ServiceError::bad_request(format!("{method}: {e}")))
        };
        let v = parse(payload)?;
        let typed = |v: Value| -> Result<IdArgs, ServiceError> {
            serde_json::from_value(v)
                .map_err(|e| ServiceError::bad_request(format!("{method}: {e}")))
        };
        match method {
            methods::LIST => Ok(json!({"pending": self.list()})),
            methods::CHALLENGE => {
                let (view, code) = self.challenge(&typed(v)?.id)?;
                Ok(json!({"approval": view, "code": code}))
            }
            methods::GRANT => {
                let g: GrantArgs = serde_json::from_value(v)
                    .map_err(|e| ServiceError::bad_request(format!("{method}: {e}")))?;
                Ok(json!({"approval": self.grant(&g.id, &g.code, &g.who)?}))
            }
            methods::REFUSE => Ok(json!({"refused": self.refuse(&typed(v)?.id)?})),
            other => Err(ServiceError::bad_request(format!(
                "the shell adapter has no method '{other}'"
            ))),
        }
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn subject(cmd: &str) -> Subject {
        Subject {
            command: cmd.into(),
            cwd: "/ws".into(),
            intent: "i-1".into(),
        }
    }

    #[test]
    fn a_grant_needs_the_code_shown_and_is_for_that_subject_once() {
        let a = Approvals::default();
        let id = a
            .request(subject("uname -a"), vec!["uname".into()])
            .unwrap();
        assert_eq!(
            a.request(subject("uname -a"), vec![]).unwrap(),
            id,
            "one id per subject"
        );
        assert_eq!(
            a.grant(&id, "000000", "me").err(),
            Some(ApprovalError::NoCode(id.clone()))
        );
        let (view, code) = a.challenge(&id).unwrap();
        assert_eq!(view.subject.command, "uname -a");
        let wrong = if code == "111111" { "222222" } else { "111111" };
        assert_eq!(
            a.grant(&id, wrong, "me").err(),
            Some(ApprovalError::WrongCode(id.clone()))
        );
        // The wrong try spent the code.
        assert_eq!(
            a.grant(&id, &code, "me").err(),
            Some(ApprovalError::NoCode(id.clone()))
        );
        let (_, code) = a.challenge(&id).unwrap();
        assert!(a.grant(&id, &code, "alice on /dev/pts/3").unwrap().granted);
        // Another command, directory or intent does not use it.
        assert_eq!(a.take_grant(&subject("uname -r")), None);
        let mut other = subject("uname -a");
        other.intent = "i-2".into();
        assert_eq!(a.take_grant(&other), None);
        assert_eq!(
            a.take_grant(&subject("uname -a")),
            Some((id.clone(), "alice on /dev/pts/3".into()))
        );
        assert_eq!(a.take_grant(&subject("uname -a")), None, "once");
        assert!(matches!(a.challenge(&id), Err(ApprovalError::Unknown(_))));
    }

    #[test]
    fn refused_and_listed() {
        let a = Approvals::default();
        let id = a.request(subject("id"), vec!["id".into()]).unwrap();
        assert_eq!(a.list().len(), 1);
        assert_eq!(a.refuse(&id).unwrap().command, "id");
        assert!(a.list().is_empty());
    }
}
