//! Per-device counters for `query-stats`.

use std::sync::atomic::{AtomicU64, Ordering};

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
    /// The counters of the device in `slot`, for `query-stats`.
    pub fn counters(&self, slot: u8) -> crate::vmm::protocol::BlockCounters {
        crate::vmm::protocol::BlockCounters {
            slot,
            reads: self.reads.get(),
            writes: self.writes.get(),
            read_bytes: self.read_bytes.get(),
            write_bytes: self.write_bytes.get(),
            flushes: self.flushes.get(),
            errors: self.errors.get(),
            read_time_ns: self.read_ns.get(),
            write_time_ns: self.write_ns.get(),
            flush_time_ns: self.flush_ns.get(),
        }
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
    /// The counters of the NIC in `slot`, for `query-stats`.
    pub fn counters(&self, slot: u8) -> crate::vmm::protocol::NetCounters {
        crate::vmm::protocol::NetCounters {
            slot,
            rx_packets: self.rx_packets.get(),
            rx_bytes: self.rx_bytes.get(),
            rx_drops: self.rx_drops.get(),
            tx_packets: self.tx_packets.get(),
            tx_bytes: self.tx_bytes.get(),
            tx_drops: self.tx_drops.get(),
        }
    }
}
