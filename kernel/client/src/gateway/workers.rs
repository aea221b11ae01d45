//! One worker per chat: a chat's messages are handled in order, one at a
//! time, while different chats run in parallel. A worker leaves after
//! `idle` without messages, and a new one starts with the chat's next
//! message.

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::mpsc;

pub struct Workers<C, J> {
    senders: Mutex<HashMap<C, mpsc::UnboundedSender<J>>>,
    idle: Duration,
}

impl<C, J> Workers<C, J> {
    pub fn new(idle: Duration) -> Self {
        Workers {
            senders: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn senders(&self) -> MutexGuard<'_, HashMap<C, mpsc::UnboundedSender<J>>> {
        self.senders.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl<C, J> Workers<C, J>
where
    C: Eq + Hash + Clone + Send + Sync + 'static,
    J: Send + 'static,
{
    /// Queues `job` in `chat`'s worker, starting one (running `handle` for
    /// each of its jobs) when the chat has none.
    pub fn enqueue<H, F>(self: &Arc<Self>, chat: C, job: J, handle: &H)
    where
        H: Fn(C, J) -> F + Clone + Send + Sync + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let mut senders = self.senders();
        let job = match senders.get(&chat) {
            Some(tx) => match tx.send(job) {
                Ok(()) => return,
                // The worker just left: start another.
                Err(mpsc::error::SendError(job)) => job,
            },
            None => job,
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let _ = tx.send(job);
        senders.insert(chat.clone(), tx);
        tokio::spawn(self.clone().work(chat, rx, handle.clone()));
    }

    /// How many chats have a worker now.
    pub fn len(&self) -> usize {
        self.senders().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    async fn work<H, F>(self: Arc<Self>, chat: C, mut rx: mpsc::UnboundedReceiver<J>, handle: H)
    where
        H: Fn(C, J) -> F,
        F: Future<Output = ()>,
    {
        loop {
            let job = match tokio::time::timeout(self.idle, rx.recv()).await {
                Ok(Some(job)) => job,
                Ok(None) => return,
                Err(_) => {
                    // Idle: leave, unless a job arrived just now (checked
                    // under the lock `enqueue` sends under).
                    let mut senders = self.senders();
                    match rx.try_recv() {
                        Ok(job) => job,
                        Err(_) => {
                            senders.remove(&chat);
                            return;
                        }
                    }
                }
            };
            handle(chat.clone(), job).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Log = Arc<Mutex<Vec<(u32, u32)>>>;

    fn recorder(
        log: Log,
    ) -> impl Fn(u32, u32) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>> + Clone {
        move |chat, n| {
            let log = log.clone();
            Box::pin(async move {
                // The first job of chat 1 is slow: chat 2 must not wait
                // for it, and chat 1's next job must.
                if chat == 1 && n == 0 {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                log.lock().unwrap().push((chat, n));
            })
        }
    }

    // On tokio's paused clock: sleeps advance virtual time, so the order
    // checked is the workers', not the machine's speed.
    #[tokio::test(start_paused = true)]
    async fn a_chat_is_served_in_order_and_chats_in_parallel() {
        let log: Log = Arc::default();
        let w = Arc::new(Workers::new(Duration::from_secs(1)));
        let h = recorder(log.clone());
        w.enqueue(1, 0, &h);
        w.enqueue(1, 1, &h);
        w.enqueue(2, 0, &h);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(*log.lock().unwrap(), [(2, 0)], "chat 2 waited for chat 1");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert_eq!(*log.lock().unwrap(), [(2, 0), (1, 0), (1, 1)]);
        assert_eq!(w.len(), 2);
        // Idle workers leave; the next message starts a new one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(w.is_empty());
        w.enqueue(1, 2, &h);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(log.lock().unwrap().last(), Some(&(1, 2)));
    }
}
