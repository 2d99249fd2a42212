//! Waking devices when a save's head moves: one `LISTEN awf_save_head` connection for the
//! whole server, and a watch channel per save that someone is waiting on.
//!
//! A waiter subscribes *before* it reads the save, so a move between its read and its wait
//! still wakes it (the watch remembers the version it saw). A waiter holds no database
//! connection while it waits; their number is capped (503 past the cap). When the listening
//! connection drops, it reconnects with a backoff and then wakes every waiter, since moves in
//! between were not heard.

use crate::error::AppError;
use axum::http::StatusCode;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The watch channels of the saves being waited on, by head key.
#[derive(Clone)]
pub struct Heads {
    inner: Arc<Inner>,
}

/// Most waiters one device may have at once (one per save it plays, and some slack).
pub const MAX_WAITERS_PER_DEVICE: usize = 8;

/// A waiter's re-reads are rate-limited by a token bucket: a flood of notifications (any role
/// may `NOTIFY`) costs at most one read per waiter per this interval after a burst of
/// [`READ_BURST`], while a genuine move after a quiet spell is read at once.
const READ_INTERVAL: Duration = Duration::from_millis(50);
const READ_BURST: f64 = 3.0;

struct Inner {
    saves: Mutex<HashMap<String, watch::Sender<u64>>>,
    devices: Mutex<HashMap<String, usize>>,
    waiters: AtomicUsize,
    max_waiters: usize,
    database: tokio_postgres::Config,
    listening: Once,
}

impl Heads {
    /// No waiters yet; at most `max_waiters` at once; listens on `database` once started.
    pub fn new(max_waiters: usize, database: tokio_postgres::Config) -> Self {
        Heads {
            inner: Arc::new(Inner {
                saves: Mutex::new(HashMap::new()),
                devices: Mutex::new(HashMap::new()),
                waiters: AtomicUsize::new(0),
                max_waiters,
                database,
                listening: Once::new(),
            }),
        }
    }

    /// Starts the listening connection (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(&self) {
        self.inner
            .listening
            .call_once(|| spawn_listener(self.clone(), self.inner.database.clone()));
    }

    /// How many long polls and event streams are waiting now.
    pub fn waiters(&self) -> usize {
        self.inner.waiters.load(Ordering::Relaxed)
    }

    /// Starts waiting on `save_id`'s head for `device`; 503 when the server already has its
    /// most waiters, or the device [`MAX_WAITERS_PER_DEVICE`].
    pub fn subscribe(&self, save_id: &str, device: &str) -> Result<Subscription, AppError> {
        {
            let mut devices = self.inner.devices.lock().unwrap_or_else(|p| p.into_inner());
            let mine = devices.entry(device.to_owned()).or_insert(0);
            if *mine >= MAX_WAITERS_PER_DEVICE {
                return Err(busy(format!(
                    "this device has {MAX_WAITERS_PER_DEVICE} long polls or event streams open already"
                )));
            }
            let n = self.inner.waiters.fetch_add(1, Ordering::AcqRel);
            if n >= self.inner.max_waiters {
                self.inner.waiters.fetch_sub(1, Ordering::AcqRel);
                if *mine == 0 {
                    devices.remove(device);
                }
                return Err(busy(
                    "too many devices are waiting for sync; retry later or without wait".into(),
                ));
            }
            *mine += 1;
        }
        self.start();
        let key = awf_core::signal::head_key(save_id);
        let rx = self
            .lock()
            .entry(key.clone())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe();
        Ok(Subscription {
            heads: self.clone(),
            key,
            device: device.to_owned(),
            rx,
            tokens: READ_BURST,
            refilled: Instant::now(),
        })
    }

    /// A notification arrived: wakes the waiters of that key (if any).
    pub fn wake(&self, key: &str) {
        if let Some(tx) = self.lock().get(key) {
            tx.send_modify(|v| *v += 1);
        }
    }

    /// Wakes every waiter (after the listener reconnected, when moves may have been missed).
    pub fn wake_all(&self) {
        for tx in self.lock().values() {
            tx.send_modify(|v| *v += 1);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.inner.saves.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn busy(message: String) -> AppError {
    AppError::new(StatusCode::SERVICE_UNAVAILABLE, "53300", message)
}

/// One waiter on one save's head.
pub struct Subscription {
    heads: Heads,
    key: String,
    device: String,
    rx: watch::Receiver<u64>,
    /// Re-reads allowed now, and when the bucket was last topped up.
    tokens: f64,
    refilled: Instant,
}

impl Subscription {
    /// Marks every move so far as seen; call just before reading the save.
    pub fn seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits until the head moves after the last [`Subscription::seen`] (true) or `deadline`
    /// passes (false); when the waiter has used its burst of re-reads, also until the next
    /// re-read is allowed.
    pub async fn moved(&mut self, deadline: Instant) -> bool {
        let moved = matches!(
            tokio::time::timeout_at(deadline, self.rx.changed()).await,
            Ok(Ok(()))
        );
        if moved {
            let now = Instant::now();
            let earned =
                now.duration_since(self.refilled).as_secs_f64() / READ_INTERVAL.as_secs_f64();
            self.tokens = (self.tokens + earned).min(READ_BURST);
            self.refilled = now;
            if self.tokens < 1.0 {
                let wait = READ_INTERVAL.mul_f64(1.0 - self.tokens);
                tokio::time::sleep_until((now + wait).min(deadline)).await;
                self.tokens = 1.0;
                self.refilled = Instant::now();
            }
            self.tokens -= 1.0;
        }
        moved
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.heads.inner.waiters.fetch_sub(1, Ordering::AcqRel);
        {
            let mut devices = self
                .heads
                .inner
                .devices
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if let Some(n) = devices.get_mut(&self.device) {
                *n -= 1;
                if *n == 0 {
                    devices.remove(&self.device);
                }
            }
        }
        let mut saves = self.heads.lock();
        // This receiver is still counted until the struct's fields drop.
        if saves
            .get(&self.key)
            .is_some_and(|tx| tx.receiver_count() <= 1)
        {
            saves.remove(&self.key);
        }
    }
}

/// Keeps one connection listening on the head channel for as long as the server runs,
/// reconnecting (1 s, doubling to 30 s) when it drops.
fn spawn_listener(heads: Heads, config: tokio_postgres::Config) {
    tokio::spawn(async move {
        let mut backoff = Duration::from_secs(1);
        loop {
            match listen(&heads, &config).await {
                Ok(()) => backoff = Duration::from_secs(1),
                Err(e) => tracing::warn!(error = %e, "sync notification listener failed"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    });
}

/// One listening connection, until it ends.
async fn listen(
    heads: &Heads,
    config: &tokio_postgres::Config,
) -> Result<(), tokio_postgres::Error> {
    use futures_util::StreamExt;
    use tokio_postgres::AsyncMessage;
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    let woken = heads.clone();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        let mut result = Ok(());
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => woken.wake(n.payload()),
                Ok(_) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let _ = done_tx.send(result);
    });
    client
        .batch_execute(&format!("LISTEN {}", awf_core::signal::HEAD_CHANNEL))
        .await?;
    tracing::info!("listening for save head notifications");
    heads.wake_all();
    let result = done_rx.await.unwrap_or(Ok(()));
    drop(client);
    result
}
