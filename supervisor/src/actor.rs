//! The supervisor as a ractor actor, with one linked child actor per running
//! service process ([`crate::child_actor`]).
//!
//! Everything that happens reaches the supervisor actor as a message or a
//! supervision event, and is handled one at a time by the logic in
//! [`crate::supervisor`]: bus events (a service connected or became
//! ready), `oictl` commands, signals, timer ticks (readiness timeouts,
//! heartbeats, stop deadlines), config polls, and the termination of a child
//! actor, which carries its process's exit status.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use nix::sys::signal::Signal;
use oi_kernel::broker::BusEvent;
use ractor::{Actor, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot};
use tracing::{error, warn};

use crate::child_actor::{ChildActor, ChildArgs, ChildProcess};
use crate::requirements::SecretLookup;
use crate::supervisor::{Command, Outcome, Setup, Supervisor};
use crate::{orphans, process};

pub enum SupMsg {
    Tick,
    /// Kill and reap what services left behind ([`crate::orphans`]).
    Sweep,
    PollConfig,
    WatchdogPing,
    Bus(BusEvent),
    Command(Command),
    Terminate(&'static str),
    Reload,
    /// The vault's secret names, for services that wait on one.
    SecretNames(Result<std::collections::BTreeSet<String>, String>),
}

pub struct SupervisorActor;

pub struct SupState {
    tree: Supervisor,
    /// Child actors, to name the process of one that failed.
    actors: HashMap<ActorId, (String, u32)>,
    done: Option<oneshot::Sender<Outcome>>,
    secrets: SecretLookup,
    /// A secret-name lookup is under way.
    looking_up: bool,
}

/// How often openintentd looks for processes services left behind; also
/// right after any service exits.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

impl SupervisorActor {
    /// Kills what services left behind. A sweep that killed something is
    /// followed shortly by another, for the children of what it killed.
    fn sweep(myself: &ActorRef<SupMsg>, st: &SupState) {
        let mut services: HashSet<u32> = st.actors.values().map(|(_, pid)| *pid).collect();
        services.extend(st.tree.service_pids());
        if orphans::sweep(&services).killed > 0 {
            myself.send_after(Duration::from_millis(20), || SupMsg::Sweep);
        }
    }

    /// Lets the tree move forward after a message: hands new processes to
    /// child actors, handles processes that could not start, and stops the
    /// actor with the outcome when the tree is done.
    async fn settle(myself: &ActorRef<SupMsg>, st: &mut SupState) {
        loop {
            let outcome = st.tree.advance();
            st.tree.publish_wanted();
            for (name, pid, process) in std::mem::take(&mut st.tree.to_link) {
                let args = ChildArgs {
                    name: name.clone(),
                    pid,
                    process,
                };
                match Actor::spawn_linked(None, ChildActor, args, myself.get_cell()).await {
                    Ok((child, _)) => {
                        st.actors.insert(child.get_id(), (name, pid));
                    }
                    Err(e) => {
                        // Without its actor nobody waits for the process.
                        let _ = process::signal_group(pid, Signal::SIGKILL);
                        st.tree
                            .spawn_failures
                            .push((name, format!("child actor did not start: {e}")));
                    }
                }
            }
            if let Some(outcome) = outcome {
                st.tree.stopping();
                if let Some(done) = st.done.take() {
                    let _ = done.send(outcome);
                }
                myself.stop(None);
                return;
            }
            if st.tree.spawn_failures.is_empty() {
                return;
            }
            for (name, error) in std::mem::take(&mut st.tree.spawn_failures) {
                st.tree.on_spawn_failed(&name, &error);
            }
        }
    }
}

impl Actor for SupervisorActor {
    type Msg = SupMsg;
    type State = SupState;
    type Arguments = (Setup, oneshot::Sender<Outcome>);

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        (setup, done): Self::Arguments,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut tree = Supervisor::new(setup);
        tree.started();
        myself.send_interval(tree.tick_interval(), || SupMsg::Tick);
        myself.send_interval(tree.poll_interval(), || SupMsg::PollConfig);
        myself.send_interval(SWEEP_EVERY, || SupMsg::Sweep);
        if let Some(every) = tree.watchdog_interval() {
            myself.send_interval(every, || SupMsg::WatchdogPing);
        }
        Ok(SupState {
            secrets: SecretLookup::new(tree.bus_socket()),
            looking_up: false,
            tree,
            actors: HashMap::new(),
            done: Some(done),
        })
    }

    async fn post_start(
        &self,
        myself: ActorRef<Self::Msg>,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        Self::settle(&myself, st).await;
        Ok(())
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            SupMsg::Tick => st.tree.on_tick(),
            SupMsg::Sweep => Self::sweep(&myself, st),
            SupMsg::PollConfig => {
                st.tree.poll_config();
                if !st.looking_up && st.tree.wants_secret_names() {
                    st.looking_up = true;
                    let lookup = st.secrets.clone();
                    let me = myself.clone();
                    tokio::spawn(async move {
                        let _ = me.send_message(SupMsg::SecretNames(lookup.names().await));
                    });
                }
            }
            SupMsg::SecretNames(r) => {
                st.looking_up = false;
                match r {
                    Ok(names) => st.tree.on_secret_names(names),
                    Err(e) => warn!(error = %e, "cannot list the vault's secrets"),
                }
            }
            SupMsg::WatchdogPing => st.tree.watchdog_ping(),
            SupMsg::Bus(ev) => st.tree.on_bus_event(ev),
            SupMsg::Command(cmd) => st.tree.on_command(cmd),
            SupMsg::Terminate(why) => st.tree.begin_shutdown(why),
            SupMsg::Reload => st.tree.reload("SIGHUP"),
        }
        Self::settle(&myself, st).await;
        Ok(())
    }

    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        evt: SupervisionEvent,
        st: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match evt {
            SupervisionEvent::ActorTerminated(cell, Some(mut final_state), _) => {
                st.actors.remove(&cell.get_id());
                // What the service was running is now ours: end it.
                myself.send_after(Duration::from_millis(1), || SupMsg::Sweep);
                match final_state.take::<ChildProcess>() {
                    Ok(ChildProcess {
                        name,
                        pid,
                        exit: Some(Ok(status)),
                    }) => st.tree.on_exit(&name, pid, status),
                    Ok(ChildProcess { name, exit, .. }) => {
                        let why = match exit {
                            Some(Err(e)) => e,
                            _ => "child actor stopped before its process exited".into(),
                        };
                        st.tree.on_spawn_failed(&name, &why);
                    }
                    Err(_) => warn!("a child actor ended with an unexpected state"),
                }
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                if let Some((name, pid)) = st.actors.remove(&cell.get_id()) {
                    error!(service = %name, pid, error = %err, "child actor failed");
                    let _ = process::signal_group(pid, Signal::SIGKILL);
                    st.tree
                        .on_spawn_failed(&name, &format!("child actor failed: {err}"));
                }
            }
            _ => {}
        }
        Self::settle(&myself, st).await;
        Ok(())
    }
}

/// Runs the supervision tree until shutdown or escalation.
pub async fn run(
    setup: Setup,
    mut bus_events: mpsc::UnboundedReceiver<BusEvent>,
    mut commands: mpsc::UnboundedReceiver<Command>,
) -> Outcome {
    let (done_tx, done_rx) = oneshot::channel();
    let (sup, handle) = match Actor::spawn(None, SupervisorActor, (setup, done_tx)).await {
        Ok(x) => x,
        Err(e) => return Outcome::Escalated(format!("the supervisor actor did not start: {e}")),
    };
    // Feed the outside world into the actor's mailbox.
    let feeders = [
        tokio::spawn({
            let sup = sup.clone();
            async move {
                while let Some(ev) = bus_events.recv().await {
                    if sup.send_message(SupMsg::Bus(ev)).is_err() {
                        return;
                    }
                }
            }
        }),
        tokio::spawn({
            let sup = sup.clone();
            async move {
                while let Some(cmd) = commands.recv().await {
                    if sup.send_message(SupMsg::Command(cmd)).is_err() {
                        return;
                    }
                }
            }
        }),
        tokio::spawn({
            let sup = sup.clone();
            async move {
                let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
                    signal(SignalKind::terminate()),
                    signal(SignalKind::interrupt()),
                    signal(SignalKind::hangup()),
                ) else {
                    error!("cannot install signal handlers");
                    return;
                };
                loop {
                    let msg = tokio::select! {
                        _ = term.recv() => SupMsg::Terminate("SIGTERM"),
                        _ = int.recv() => SupMsg::Terminate("SIGINT"),
                        _ = hup.recv() => SupMsg::Reload,
                    };
                    if sup.send_message(msg).is_err() {
                        return;
                    }
                }
            }
        }),
    ];
    let _ = handle.await;
    for f in feeders {
        f.abort();
    }
    done_rx.await.unwrap_or_else(|_| {
        Outcome::Escalated("the supervisor actor stopped without an outcome".into())
    })
}
