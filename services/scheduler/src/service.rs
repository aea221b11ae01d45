//! The scheduler around its core: the one timer loop, the runs (intents
//! through `oi-client`, like any interface) and the deliveries (each
//! gateway's typed `deliver`). The core decides; this carries it out and
//! reports back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use oi_client::intent::Intent;
use oi_ipc_schema::ErrorCode;
use oi_ipc_schema::agent::AgentEvent;
use oi_ipc_schema::gateway::{self, Delivery};
use oi_kernel::client::{BusClient, BusError, CallOptions};
use oi_kernel::harness::ServiceError;
use tokio::sync::{Notify, oneshot};
use tracing::{Instrument, info, info_span, warn};

use crate::core::{Action, Core, CoreError, Delivered, Outcome, RunOrder, Why};
use crate::jump::Watch;
use crate::timer::{self, Rang, Timer};

/// How long one delivery attempt may take.
const DELIVERY_DEADLINE: Duration = Duration::from_secs(20);

/// Work for the core's thread.
type Work = Box<dyn FnOnce(&mut Core) + Send>;

pub struct Shared {
    /// The core lives on a thread of its own (it writes SQLite with
    /// `synchronous=FULL`, which must not stall the async threads); work
    /// reaches it in order over this channel.
    core: std::sync::mpsc::Sender<Work>,
    client: BusClient,
    /// Re-arms the timer after a change.
    changed: Notify,
    /// The cancel handle of each run going, by run id.
    runs: Mutex<HashMap<i64, oneshot::Sender<String>>>,
}

impl Shared {
    pub fn new(core: Core, client: BusClient) -> Result<Arc<Shared>, ServiceError> {
        let (tx, rx) = std::sync::mpsc::channel::<Work>();
        std::thread::Builder::new()
            .name("scheduler-core".into())
            .spawn(move || {
                let mut core = core;
                while let Ok(work) = rx.recv() {
                    work(&mut core);
                }
            })
            .map_err(|e| ServiceError::internal(format!("cannot start the core's thread: {e}")))?;
        Ok(Arc::new(Shared {
            core: tx,
            client,
            changed: Notify::new(),
            runs: Mutex::new(HashMap::new()),
        }))
    }

    /// Runs `f` on the core's thread and waits for its result.
    pub async fn core<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Core) -> T + Send + 'static,
    ) -> Result<T, ServiceError> {
        let gone = || ServiceError::internal("the scheduler's core thread stopped");
        let (tx, rx) = oneshot::channel();
        self.core
            .send(Box::new(move |c: &mut Core| {
                let _ = tx.send(f(c));
            }))
            .map_err(|_| gone())?;
        rx.await.map_err(|_| gone())
    }

    /// Something changed: the timer is armed again.
    pub fn rearm(&self) {
        self.changed.notify_one();
    }

    /// Carries out what the core decided.
    pub fn perform(self: &Arc<Self>, actions: Vec<Action>) {
        for a in actions {
            match a {
                Action::Start(order) => self.start(order),
                Action::Cancel { run, reason } => {
                    let tx = self.runs().remove(&run);
                    if let Some(tx) = tx {
                        let _ = tx.send(reason);
                    }
                }
                Action::Deliver(d) => {
                    let sh = self.clone();
                    tokio::spawn(async move {
                        let result = deliver(&sh.client, &d.target, &d.text).await;
                        match &result {
                            Delivered::Yes => {
                                info!(target = %d.target, run = d.run, "answer delivered")
                            }
                            Delivered::NotYet(e) => {
                                info!(target = %d.target, run = d.run, "not delivered yet: {e}")
                            }
                            Delivered::Never(e) => {
                                warn!(target = %d.target, run = d.run, "cannot be delivered: {e}")
                            }
                        }
                        let now = timer::now();
                        match sh.core(move |c| c.delivered(d.id, &result, now)).await {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => warn!("cannot record a delivery: {e}"),
                            Err(e) => warn!("{}", e.message),
                        }
                        sh.rearm();
                    });
                }
            }
        }
    }

    fn runs(&self) -> std::sync::MutexGuard<'_, HashMap<i64, oneshot::Sender<String>>> {
        self.runs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(self: &Arc<Self>, order: RunOrder) {
        let (tx, rx) = oneshot::channel();
        self.runs().insert(order.run, tx);
        let sh = self.clone();
        let span = info_span!("run", job = order.job, run = order.run, intent = %order.request.id);
        tokio::spawn(
            async move {
                info!("run started");
                let t0 = Instant::now();
                let outcome = tokio::select! {
                    o = run(&sh.client, &order, t0) => o,
                    reason = rx => Outcome::cancelled(
                        reason.unwrap_or_else(|_| "the scheduler stopped it".into()),
                        t0.elapsed().as_millis() as i64,
                    ),
                };
                sh.runs().remove(&order.run);
                info!(status = outcome.status.as_str(), reason = %outcome.reason, "run ended");
                let (job, run, now) = (order.job, order.run, timer::now());
                match sh.core(move |c| c.finished(job, run, &outcome, now)).await {
                    Ok(Ok(actions)) => sh.perform(actions),
                    Ok(Err(e)) => warn!("cannot record the run's end: {e}"),
                    Err(e) => warn!("{}", e.message),
                }
                sh.rearm();
            }
            .instrument(span),
        );
    }
}

/// One run: the intent to its `Done`, within the job's timeout.
async fn run(client: &BusClient, order: &RunOrder, t0: Instant) -> Outcome {
    let ms = |t0: Instant| t0.elapsed().as_millis() as i64;
    let mut intent = match Intent::start(client, &order.request, order.timeout) {
        Ok(i) => i,
        Err(e) => return Outcome::failed(format!("cannot start the intent: {e}"), ms(t0)),
    };
    let end = async {
        while let Some(step) = intent.next().await {
            match step {
                Ok(AgentEvent::Done(r)) => return Outcome::from_result(&r, ms(t0)),
                Ok(_) => {}
                Err(e) => return Outcome::failed(e, ms(t0)),
            }
        }
        Outcome::failed(oi_client::intent::NO_ANSWER, ms(t0))
    };
    match tokio::time::timeout(order.timeout, end).await {
        Ok(o) => o,
        Err(_) => Outcome::failed(
            format!(
                "it did not finish within its {} s limit (the job's timeout_secs, or [scheduler] run_timeout_secs)",
                order.timeout.as_secs()
            ),
            ms(t0),
        ),
    }
}

/// One attempt to hand `text` to the gateway of `target`.
async fn deliver(client: &BusClient, target: &str, text: &str) -> Delivered {
    let (call, chat) = match gateway::target(target) {
        Ok(t) => t,
        Err(e) => return Delivered::Never(e),
    };
    let d = Delivery {
        chat: chat.to_string(),
        text: text.to_string(),
    };
    match client
        .call(call, &d, CallOptions::deadline(DELIVERY_DEADLINE))
        .await
    {
        Ok(()) => Delivered::Yes,
        Err(BusError::Remote {
            code: ErrorCode::Denied | ErrorCode::BadRequest,
            message,
        }) => Delivered::Never(message),
        Err(e) => Delivered::NotYet(oi_client::intent::in_words(e)),
    }
}

/// The timer loop: wakes at the earliest due time (or a change, or a clock
/// that is set), compares wall and monotonic time to tell a jump, and
/// lets the core decide.
pub async fn timer_loop(sh: Arc<Shared>) {
    let mut timer = match Timer::new() {
        Ok(t) => t,
        Err(e) => {
            warn!("cannot create the timer: {e}; the scheduler cannot run jobs");
            return;
        }
    };
    let mut watch = Watch::new(timer::now(), Instant::now());
    let mut why = Why::Start;
    loop {
        let now = timer::now();
        match sh.core(move |c| c.wake(now, why)).await {
            Ok(actions) => sh.perform(actions),
            Err(e) => warn!("{}", e.message),
        }
        let next = match sh.core(|c| c.next_wake()).await {
            Ok(n) => n,
            Err(e) => {
                warn!("{}", e.message);
                None
            }
        };
        let rang = tokio::select! {
            r = timer.until(next) => r,
            () = sh.changed.notified() => Ok(Rang::Due),
        };
        why = match rang {
            Ok(Rang::Due) => Why::Timer,
            Ok(Rang::ClockSet) => {
                info!("the wall clock was set; the timer is armed again");
                Why::Timer
            }
            Err(e) => {
                warn!("the timer failed: {e}; retrying in 1 s");
                tokio::time::sleep(Duration::from_secs(1)).await;
                Why::Timer
            }
        };
        if let Some(skew) = watch.jump(timer::now(), Instant::now()) {
            info!(skew_ms = skew.as_millis() as i64, "the wall clock jumped");
            why = Why::ClockJump(skew);
        }
    }
}

/// A core error as the bus reply.
pub fn bus_error(e: CoreError) -> ServiceError {
    if e.is_bad_request() {
        ServiceError::bad_request(e.to_string())
    } else {
        ServiceError::internal(e.to_string())
    }
}
