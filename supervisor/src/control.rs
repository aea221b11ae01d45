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
    fn handle(&self, _caller: Caller, method: String, payload: Vec<u8>) -> KernelFuture {
        let commands = self.commands.clone();
        Box::pin(async move {
            let name_arg = || -> Result<String, Fail> {
                decode_payload::<ServiceName>(&payload, Kind::Request, 0)
                    .map(|n| n.name)
                    .map_err(|e| (ErrorCode::BadRequest, format!("{method}: {e}")))
            };
            match method.as_str() {
                methods::STATUS => {
                    let (tx, rx) = oneshot::channel();
                    commands.send(Command::Status(tx)).map_err(|_| gone())?;
                    encode(&rx.await.map_err(|_| gone())?)
                }
                methods::RESTART | methods::STOP | methods::START => {
                    let name = name_arg()?;
                    let (tx, rx) = oneshot::channel();
                    let cmd = match method.as_str() {
                        methods::RESTART => Command::Restart(name, tx),
                        methods::STOP => Command::Stop(name, tx),
                        _ => Command::Start(name, tx),
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
