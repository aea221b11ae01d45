//! The supervisor's control plane on the bus (destination `kernel`): the
//! methods `oictl` calls. Each request becomes a [`Command`] for the event
//! loop; the answer is archived back.

use std::sync::Arc;

use oi_ipc_schema::control::{LogLines, LogsRequest, ServiceName, methods};
use oi_ipc_schema::frame::Kind;
use oi_ipc_schema::{ErrorCode, decode_payload, encode_payload};
use oi_kernel::broker::{Caller, KernelFuture, KernelHandler, KernelReply};
use tokio::sync::{mpsc, oneshot};

use crate::supervisor::Command;

pub struct Control {
    commands: mpsc::UnboundedSender<Command>,
}

impl Control {
    pub fn new(commands: mpsc::UnboundedSender<Command>) -> Arc<Self> {
        Arc::new(Control { commands })
    }
}

type Fail = (ErrorCode, String);

fn gone() -> Fail {
    (
        ErrorCode::Unavailable,
        "the supervisor is shutting down".into(),
    )
}

fn encode<T>(value: &T) -> Result<KernelReply, Fail>
where
    T: oi_ipc_schema::Encode,
{
    encode_payload(value)
        .map(KernelReply::Once)
        .map_err(|e| (ErrorCode::Internal, e.to_string()))
}

impl KernelHandler for Control {
    fn handle(&self, caller: Caller, method: String, payload: Vec<u8>) -> KernelFuture {
        let commands = self.commands.clone();
        Box::pin(async move {
            let name_arg = || -> Result<String, Fail> {
                decode_payload::<ServiceName>(&payload, Kind::Request, 0)
                    .map(|n| n.name)
                    .map_err(|e| (ErrorCode::BadRequest, format!("{method}: {e}")))
            };
            // Changing what runs is the user's: no service (and so no
            // agent) restarts, stops, starts or shuts anything down.
            let changes = matches!(
                method.as_str(),
                methods::RESTART | methods::STOP | methods::START | methods::SHUTDOWN
            );
            if let (true, Some(service)) = (changes, &caller.service) {
                return Err((
                    ErrorCode::Denied,
                    format!(
                        "{method}: only the user's own client may do this, not service '{service}'"
                    ),
                ));
            }
            match method.as_str() {
                methods::SHUTDOWN => {
                    let (tx, rx) = oneshot::channel();
                    commands.send(Command::Shutdown(tx)).map_err(|_| gone())?;
                    rx.await.map_err(|_| gone())?;
                    Ok(KernelReply::Once(Vec::new()))
                }
                methods::STATUS => {
                    let (tx, rx) = oneshot::channel();
                    commands.send(Command::Status(tx)).map_err(|_| gone())?;
                    encode(&rx.await.map_err(|_| gone())?)
                }
                methods::START => {
                    let (tx, rx) = oneshot::channel();
                    commands
                        .send(Command::Start(name_arg()?, tx))
                        .map_err(|_| gone())?;
                    let note = rx
                        .await
                        .map_err(|_| gone())?
                        .map_err(|e| (ErrorCode::BadRequest, e))?;
                    // Why it will not run yet, as UTF-8 text; empty when it will.
                    Ok(KernelReply::Once(note.unwrap_or_default().into_bytes()))
                }
                methods::RESTART | methods::STOP => {
                    let name = name_arg()?;
                    let (tx, rx) = oneshot::channel();
                    let cmd = match method.as_str() {
                        methods::RESTART => Command::Restart(name, tx),
                        _ => Command::Stop(name, tx),
                    };
                    commands.send(cmd).map_err(|_| gone())?;
                    rx.await
                        .map_err(|_| gone())?
                        .map_err(|e| (ErrorCode::BadRequest, e))?;
                    Ok(KernelReply::Once(Vec::new()))
                }
                methods::LOGS => {
                    let req: LogsRequest = decode_payload(&payload, Kind::Request, 0)
                        .map_err(|e| (ErrorCode::BadRequest, format!("{method}: {e}")))?;
                    let (tx, rx) = oneshot::channel();
                    commands
                        .send(Command::Logs(req.name, tx))
                        .map_err(|_| gone())?;
                    let logs = rx
                        .await
                        .map_err(|_| gone())?
                        .map_err(|e| (ErrorCode::BadRequest, e))?;
                    let tail = LogLines {
                        lines: logs.tail(req.lines as usize),
                    };
                    if !req.follow {
                        return encode(&tail);
                    }
                    // Subscribe before sending the tail so no line falls
                    // between the two.
                    let mut follow = logs.subscribe();
                    let (out, rx) = mpsc::channel(64);
                    tokio::spawn(async move {
                        let Ok(first) = encode_payload(&tail) else {
                            return;
                        };
                        if out.send(first).await.is_err() {
                            return;
                        }
                        loop {
                            let line = match follow.recv().await {
                                Ok(line) => line,
                                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                                    format!("[oictl: {n} lines skipped]")
                                }
                                Err(_) => return,
                            };
                            let Ok(chunk) = encode_payload(&LogLines { lines: vec![line] }) else {
                                return;
                            };
                            if out.send(chunk).await.is_err() {
                                return;
                            }
                        }
                    });
                    Ok(KernelReply::Stream(rx))
                }
                other => Err((
                    ErrorCode::BadRequest,
                    format!("the kernel has no method '{other}'"),
                )),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(service: Option<&str>) -> Caller {
        Caller {
            conn_id: 1,
            service: service.map(String::from),
            pid: 1,
            uid: 0,
        }
    }

    #[tokio::test]
    async fn only_the_user_changes_what_runs() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let control = Control::new(tx);
        for method in [
            methods::SHUTDOWN,
            methods::STOP,
            methods::RESTART,
            methods::START,
        ] {
            let e = match control
                .handle(caller(Some("agent")), method.to_string(), Vec::new())
                .await
            {
                Err(e) => e,
                Ok(_) => panic!("{method} from a service was accepted"),
            };
            assert_eq!(e.0, ErrorCode::Denied, "{method}");
            assert!(e.1.contains("not service 'agent'"), "{}", e.1);
        }
        assert!(rx.try_recv().is_err(), "nothing reached the supervisor");
        // The user's shutdown reaches it.
        let h = tokio::spawn({
            let control = control.clone();
            async move {
                control
                    .handle(caller(None), methods::SHUTDOWN.into(), Vec::new())
                    .await
                    .is_ok()
            }
        });
        match rx.recv().await {
            Some(Command::Shutdown(ack)) => ack.send(()).unwrap(),
            _ => panic!("no shutdown command"),
        }
        assert!(h.await.unwrap());
    }
}
