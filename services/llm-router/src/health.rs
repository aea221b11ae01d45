//! Per-deployment health (cooldowns, probes, counters) and per-credential
//! blocks (auth and billing failures), on an injectable clock.
//!
//! Selection always takes the highest-priority deployment that is not
//! cooling, so the primary is restored by itself; when a cooldown ends,
//! exactly one request probes the deployment before others use it again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::classify::{Action, Class};
use crate::deployments::NO_CREDENTIAL;

/// The time source; tests advance a [`ManualClock`].
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Instant;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug)]
pub struct ManualClock {
    base: Instant,
    offset: Mutex<Duration>,
}

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock {
            base: Instant::now(),
            offset: Mutex::new(Duration::ZERO),
        }
    }
}

impl ManualClock {
    pub fn advance(&self, d: Duration) {
        if let Ok(mut o) = self.offset.lock() {
            *o += d;
        }
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.base + self.offset.lock().map(|o| *o).unwrap_or_default()
    }
}

/// Cooldown settings.
#[derive(Debug, Clone, Copy)]
pub struct CooldownPolicy {
    pub base: Duration,
    pub max: Duration,
    pub auth: Duration,
}

impl CooldownPolicy {
    /// The cooldown after the `strikes`-th failure in a row: the base
    /// doubling up to the maximum, or the provider's hint when larger.
    pub fn transient(&self, strikes: u32, hint: Option<Duration>) -> Duration {
        let factor = 1u32 << strikes.saturating_sub(1).min(16);
        let escalated = self.base.saturating_mul(factor).min(self.max);
        escalated.max(hint.unwrap_or_default())
    }
}

#[derive(Debug, Default, Clone)]
struct DeploymentState {
    cooling_until: Option<Instant>,
    strikes: u32,
    probing: bool,
    last_error: String,
    /// The last attempt found nothing listening (connection refused or no
    /// route): until one succeeds, it is unreachable, not available.
    unreachable: bool,
    successes: u64,
    failures: u64,
}

#[derive(Debug, Default, Clone)]
struct CredentialState {
    blocked_until: Option<Instant>,
}

/// Why a deployment cannot be used now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unusable {
    /// Cooling (itself or its credential) until then.
    CoolingUntil(Instant),
    /// Its cooldown is over and another request is probing it.
    Probing,
}

/// A claim to use a deployment. A probe claim that is dropped without an
/// outcome (the caller cancelled) is released without any penalty.
#[must_use]
pub struct Claim {
    health: Health,
    deployment: String,
    probe: bool,
    settled: bool,
}

impl Claim {
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            self.health.with(|s| {
                if let Some(d) = s.deployments.get_mut(&self.deployment) {
                    d.probing = false;
                }
            });
        }
    }
}

#[derive(Default)]
struct State {
    deployments: HashMap<String, DeploymentState>,
    credentials: HashMap<String, CredentialState>,
}

/// Shared health table.
#[derive(Clone)]
pub struct Health {
    state: Arc<Mutex<State>>,
    clock: Arc<dyn Clock>,
    policy: CooldownPolicy,
}

/// A snapshot for `oictl models`.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub cooling_until: Option<SystemTime>,
    pub last_error: String,
    pub unreachable: bool,
    pub successes: u64,
    pub failures: u64,
}

impl Health {
    pub fn new(clock: Arc<dyn Clock>, policy: CooldownPolicy) -> Health {
        Health {
            state: Arc::new(Mutex::new(State::default())),
            clock,
            policy,
        }
    }

    pub fn now(&self) -> Instant {
        self.clock.now()
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let mut guard = match self.state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }

    /// Ends the cooldowns of `deployment` (all when `None`) and of every
    /// credential, as `oictl models reset` asks; counters stay. Returns how
    /// many deployments were cooling.
    pub fn reset(&self, deployment: Option<&str>) -> usize {
        let now = self.clock.now();
        self.with(|s| {
            let mut ended = 0;
            for (name, d) in s.deployments.iter_mut() {
                if deployment.is_some_and(|want| want != name) {
                    continue;
                }
                if d.cooling_until.is_some_and(|t| t > now) {
                    ended += 1;
                }
                d.cooling_until = None;
                d.strikes = 0;
            }
            if deployment.is_none() {
                s.credentials.clear();
            }
            ended
        })
    }

    /// Claims `deployment` (with credential `cred`) if it is usable now.
    pub fn try_claim(&self, deployment: &str, cred: &str) -> Result<Claim, Unusable> {
        let now = self.clock.now();
        let probe = self.with(|s| {
            if let Some(until) = s
                .credentials
                .get(cred)
                .and_then(|c| c.blocked_until)
                .filter(|u| *u > now)
            {
                return Err(Unusable::CoolingUntil(until));
            }
            let d = s.deployments.entry(deployment.to_string()).or_default();
            match d.cooling_until {
                Some(until) if until > now => Err(Unusable::CoolingUntil(until)),
                Some(_) if d.probing => Err(Unusable::Probing),
                Some(_) => {
                    d.probing = true;
                    Ok(true)
                }
                None => Ok(false),
            }
        })?;
        Ok(Claim {
            health: self.clone(),
            deployment: deployment.to_string(),
            probe,
            settled: false,
        })
    }

    /// The attempt worked: the deployment is healthy again.
    pub fn success(&self, mut claim: Claim) {
        claim.settled = true;
        self.with(|s| {
            let d = s.deployments.entry(claim.deployment.clone()).or_default();
            d.cooling_until = None;
            d.strikes = 0;
            d.probing = false;
            d.unreachable = false;
            d.successes += 1;
        });
    }

    /// The attempt failed with `class`; returns the cooldown applied.
    pub fn failure(
        &self,
        mut claim: Claim,
        cred: &str,
        class: Class,
        hint: Option<Duration>,
        message: &str,
        failover_on_content_policy: bool,
    ) -> Duration {
        claim.settled = true;
        let now = self.clock.now();
        let policy = self.policy;
        self.with(|s| {
            let d = s.deployments.entry(claim.deployment.clone()).or_default();
            d.probing = false;
            d.failures += 1;
            d.last_error = format!("{}: {}", class.as_str(), message);
            d.unreachable = class == Class::Connect;
            let cooldown = match class.action(failover_on_content_policy) {
                Action::FailOver => {
                    d.strikes += 1;
                    policy.transient(d.strikes, hint)
                }
                Action::FailOverLong => policy.auth.max(hint.unwrap_or_default()),
                _ => Duration::ZERO,
            };
            if cooldown.is_zero() {
                // Not the deployment's fault: a pending probe ends well.
                return cooldown;
            }
            let until = now + cooldown;
            if class.is_credential() && cred != NO_CREDENTIAL {
                let c = s.credentials.entry(cred.to_string()).or_default();
                c.blocked_until = Some(c.blocked_until.map_or(until, |u| u.max(until)));
            }
            let d = s.deployments.entry(claim.deployment.clone()).or_default();
            d.cooling_until = Some(until);
            cooldown
        })
    }

    pub fn snapshot(&self, deployment: &str, cred: &str) -> Snapshot {
        let now = self.clock.now();
        let wall = SystemTime::now();
        self.with(|s| {
            let d = s.deployments.get(deployment).cloned().unwrap_or_default();
            let cred_until = s.credentials.get(cred).and_then(|c| c.blocked_until);
            let until = [d.cooling_until, cred_until]
                .into_iter()
                .flatten()
                .filter(|u| *u > now)
                .max();
            Snapshot {
                cooling_until: until.map(|u| wall + (u - now)),
                last_error: d.last_error,
                unreachable: d.unreachable,
                successes: d.successes,
                failures: d.failures,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health() -> (Arc<ManualClock>, Health) {
        let clock = Arc::new(ManualClock::default());
        let h = Health::new(
            clock.clone(),
            CooldownPolicy {
                base: Duration::from_secs(120),
                max: Duration::from_secs(3600),
                auth: Duration::from_secs(3600),
            },
        );
        (clock, h)
    }

    #[test]
    fn cooldown_escalates_resets_and_honours_larger_hints() {
        let p = CooldownPolicy {
            base: Duration::from_secs(120),
            max: Duration::from_secs(600),
            auth: Duration::from_secs(3600),
        };
        assert_eq!(p.transient(1, None), Duration::from_secs(120));
        assert_eq!(p.transient(2, None), Duration::from_secs(240));
        assert_eq!(p.transient(3, None), Duration::from_secs(480));
        assert_eq!(p.transient(4, None), Duration::from_secs(600));
        assert_eq!(p.transient(40, None), Duration::from_secs(600));
        assert_eq!(
            p.transient(1, Some(Duration::from_secs(5))),
            Duration::from_secs(120)
        );
        assert_eq!(
            p.transient(1, Some(Duration::from_secs(900))),
            Duration::from_secs(900)
        );
    }

    #[test]
    fn keyless_deployments_share_no_credential() {
        let (_clock, h) = health();
        let c = h.try_claim("one", NO_CREDENTIAL).unwrap();
        h.failure(c, NO_CREDENTIAL, Class::Auth, None, "401", false);
        assert!(matches!(
            h.try_claim("one", NO_CREDENTIAL),
            Err(Unusable::CoolingUntil(_))
        ));
        assert!(h.try_claim("two", NO_CREDENTIAL).is_ok());
        // A real key is shared: its other deployments stop too.
        let c = h.try_claim("a", "env:KEY").unwrap();
        h.failure(c, "env:KEY", Class::Auth, None, "401", false);
        assert!(h.try_claim("b", "env:KEY").is_err());
    }

    #[test]
    fn nothing_listening_is_unreachable_until_an_attempt_succeeds() {
        let (clock, h) = health();
        let c = h.try_claim("local", "none").unwrap();
        h.failure(c, "none", Class::Connect, None, "connection refused", false);
        assert!(h.snapshot("local", "none").unreachable);
        // Still unreachable once the cooldown is over: nothing answered.
        clock.advance(Duration::from_secs(121));
        assert!(h.snapshot("local", "none").unreachable);
        let probe = h.try_claim("local", "none").unwrap();
        h.success(probe);
        assert!(!h.snapshot("local", "none").unreachable);
        // Another kind of failure is not "unreachable".
        let c = h.try_claim("local", "none").unwrap();
        h.failure(c, "none", Class::Server, None, "500", false);
        assert!(!h.snapshot("local", "none").unreachable);
    }

    #[test]
    fn exactly_one_probe_after_cooldown_then_healthy() {
        let (clock, h) = health();
        let c = h.try_claim("a", "k").unwrap();
        assert!(!c.is_probe());
        let cd = h.failure(c, "k", Class::RateLimited, None, "429", false);
        assert_eq!(cd, Duration::from_secs(120));
        assert!(matches!(
            h.try_claim("a", "k"),
            Err(Unusable::CoolingUntil(_))
        ));
        clock.advance(Duration::from_secs(121));
        let probe = h.try_claim("a", "k").unwrap();
        assert!(probe.is_probe());
        assert!(matches!(h.try_claim("a", "k"), Err(Unusable::Probing)));
        h.success(probe);
        let c = h.try_claim("a", "k").unwrap();
        assert!(!c.is_probe());
        drop(c);
        assert!(h.try_claim("a", "k").is_ok());
    }

    #[test]
    fn a_reset_ends_cooldowns_now() {
        let (_clock, h) = health();
        for (d, cred) in [("a", "k"), ("b", "k2")] {
            let c = h.try_claim(d, cred).unwrap();
            h.failure(c, cred, Class::Server, None, "500", false);
        }
        let c = h.try_claim("c", "k3").unwrap();
        h.failure(c, "k3", Class::Auth, None, "401", false);
        assert!(h.try_claim("a", "k").is_err() && h.try_claim("b", "k2").is_err());
        // One alias: only it.
        assert_eq!(h.reset(Some("a")), 1);
        assert!(h.try_claim("a", "k").is_ok());
        assert!(h.try_claim("b", "k2").is_err());
        // All: the rest, credentials included.
        assert_eq!(h.reset(None), 2);
        assert!(h.try_claim("b", "k2").is_ok() && h.try_claim("c", "k3").is_ok());
        assert_eq!(h.reset(None), 0, "nothing was cooling");
    }

    #[test]
    fn a_failed_probe_escalates() {
        let (clock, h) = health();
        let c = h.try_claim("a", "k").unwrap();
        h.failure(c, "k", Class::Server, None, "500", false);
        clock.advance(Duration::from_secs(121));
        let probe = h.try_claim("a", "k").unwrap();
        assert_eq!(
            h.failure(probe, "k", Class::Server, None, "500", false),
            Duration::from_secs(240)
        );
    }

    #[test]
    fn a_dropped_probe_is_released_without_penalty() {
        let (clock, h) = health();
        let c = h.try_claim("a", "k").unwrap();
        h.failure(c, "k", Class::Overloaded, None, "529", false);
        clock.advance(Duration::from_secs(121));
        let probe = h.try_claim("a", "k").unwrap();
        drop(probe); // the caller cancelled
        let again = h.try_claim("a", "k").unwrap();
        assert!(again.is_probe(), "the next request probes instead");
    }

    #[test]
    fn auth_failures_block_every_deployment_of_the_credential() {
        let (_clock, h) = health();
        let c = h.try_claim("nvidia", "env:NVIDIA_API_KEY").unwrap();
        let cd = h.failure(c, "env:NVIDIA_API_KEY", Class::Auth, None, "401", false);
        assert_eq!(cd, Duration::from_secs(3600));
        assert!(h.try_claim("nvidia-kimi", "env:NVIDIA_API_KEY").is_err());
        assert!(h.try_claim("groq", "env:GROQ_API_KEY").is_ok());
    }

    #[test]
    fn bad_requests_and_overflows_do_not_cool_down() {
        let (_clock, h) = health();
        for class in [
            Class::BadRequest,
            Class::ContextOverflow,
            Class::ToolUseFailed,
        ] {
            let c = h.try_claim("a", "k").unwrap();
            assert_eq!(h.failure(c, "k", class, None, "x", false), Duration::ZERO);
        }
        assert!(h.try_claim("a", "k").is_ok());
    }
}
