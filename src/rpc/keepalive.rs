//! libvirt's keepalive protocol, server side. A client that asks whether
//! the server supports keepalive (`virConnectSupportsFeature` with
//! `VIR_DRV_FEATURE_PROGRAM_KEEPALIVE`) is pinged after
//! `keepalive_interval` seconds without a message from it, again every
//! interval, and dropped when `keepalive_count` pings went unanswered.
//! Any message from the client counts as an answer.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

use super::conn::Conn;
use super::frame::{self, Header};

/// One connection's keepalive state.
pub struct Keepalive {
    born: Instant,
    /// When the client last sent anything, in ms after `born`.
    last_received_ms: AtomicU64,
    started: AtomicBool,
    /// Told when the client is found dead.
    dead: Notify,
}

impl Default for Keepalive {
    fn default() -> Self {
        Keepalive {
            born: Instant::now(),
            last_received_ms: AtomicU64::new(0),
            started: AtomicBool::new(false),
            dead: Notify::new(),
        }
    }
}

impl Keepalive {
    /// Notes a message from the client.
    pub fn received(&self) {
        let ms = self.born.elapsed().as_millis();
        self.last_received_ms
            .store(u64::try_from(ms).unwrap_or(u64::MAX), Ordering::SeqCst);
    }

    fn last_received(&self) -> Instant {
        self.born + Duration::from_millis(self.last_received_ms.load(Ordering::SeqCst))
    }

    /// Resolves once the client is found dead.
    pub async fn expired(&self) {
        self.dead.notified().await;
    }
}

/// Starts pinging `conn`'s client, once, if the daemon's settings have
/// keepalive on. The task ends with the connection (its teardown aborts
/// it) or when it finds the client dead.
pub fn start(conn: &Arc<Conn>) {
    let limits = conn.shared.limits;
    let Ok(secs) = u64::try_from(limits.keepalive_interval) else {
        return;
    };
    if secs == 0 || conn.keepalive.started.swap(true, Ordering::SeqCst) {
        return;
    }
    let interval = Duration::from_secs(secs);
    let task = tokio::spawn(watch(conn.clone(), interval, limits.keepalive_count));
    conn.keep_task(task.abort_handle());
}

async fn watch(conn: Arc<Conn>, interval: Duration, count: u32) {
    let ka = &conn.keepalive;
    let mut seen = ka.last_received();
    let mut interval_start = seen;
    let mut pings_left = count;
    loop {
        tokio::time::sleep_until(interval_start + interval).await;
        let last = ka.last_received();
        if last != seen {
            // The client spoke: it is alive; count again from then.
            seen = last;
            interval_start = last;
            pings_left = count;
            continue;
        }
        if pings_left == 0 {
            tracing::debug!(count, ?interval, "no answer to keepalive pings");
            ka.dead.notify_one();
            return;
        }
        pings_left -= 1;
        interval_start = Instant::now();
        conn.send_msg(Header::keepalive(frame::KEEPALIVE_PING), &[])
            .await;
    }
}
