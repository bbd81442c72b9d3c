//! Per-device counters for `query-stats`.

use std::sync::atomic::{AtomicU64, Ordering};

use serde_json::{Value, json};

/// A monotonically increasing counter.
#[derive(Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Default)]
pub struct BlkStats {
    pub reads: Counter,
    pub writes: Counter,
    pub read_bytes: Counter,
    pub write_bytes: Counter,
    pub flushes: Counter,
    pub errors: Counter,
    /// Nanoseconds spent serving reads, writes and flushes.
    pub read_ns: Counter,
    pub write_ns: Counter,
    pub flush_ns: Counter,
}

impl BlkStats {
    pub fn json(&self) -> Value {
        json!({
            "reads": self.reads.get(), "writes": self.writes.get(),
            "read-bytes": self.read_bytes.get(), "write-bytes": self.write_bytes.get(),
            "flushes": self.flushes.get(), "errors": self.errors.get(),
            "read-time-ns": self.read_ns.get(), "write-time-ns": self.write_ns.get(),
            "flush-time-ns": self.flush_ns.get(),
        })
    }
}

#[derive(Default)]
pub struct NetStats {
    pub rx_packets: Counter,
    pub rx_bytes: Counter,
    pub rx_drops: Counter,
    pub tx_packets: Counter,
    pub tx_bytes: Counter,
    pub tx_drops: Counter,
}

impl NetStats {
    pub fn json(&self) -> Value {
        json!({
            "rx-packets": self.rx_packets.get(), "rx-bytes": self.rx_bytes.get(),
            "rx-drops": self.rx_drops.get(), "tx-packets": self.tx_packets.get(),
            "tx-bytes": self.tx_bytes.get(), "tx-drops": self.tx_drops.get(),
        })
    }
}
