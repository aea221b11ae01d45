//! Each running child process is represented by a ractor actor linked to
//! the supervisor actor. The actor owns the OS process: it waits for it and
//! stops when the process exits, carrying the exit status in its final
//! state, which the supervisor receives as `ActorTerminated`.

use std::process::ExitStatus;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::process::Child;

/// The actor for one child process.
pub struct ChildActor;

pub struct ChildArgs {
    pub name: String,
    pub pid: u32,
    pub process: Child,
}

/// The actor's state; handed to the supervisor when the actor stops.
pub struct ChildProcess {
    pub name: String,
    pub pid: u32,
    /// The exit status, or the error that kept us from learning it.
    pub exit: Option<Result<ExitStatus, String>>,
}

pub enum ChildMsg {
    Exited(Result<ExitStatus, String>),
}

impl Actor for ChildActor {
    type Msg = ChildMsg;
    type State = ChildProcess;
    type Arguments = ChildArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: ChildArgs,
    ) -> Result<Self::State, ActorProcessingErr> {
        let mut process = args.process;
        tokio::spawn(async move {
            let exit = process
                .wait()
                .await
                .map_err(|e| format!("wait failed: {e}"));
            let _ = myself.send_message(ChildMsg::Exited(exit));
        });
        Ok(ChildProcess {
            name: args.name,
            pid: args.pid,
            exit: None,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: Self::Msg,
        state: &mut Self::State,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            ChildMsg::Exited(exit) => {
                state.exit = Some(exit);
                myself.stop(None);
            }
        }
        Ok(())
    }
}
