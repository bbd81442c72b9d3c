//! The frame counter of a USB 1.1/2.0 host controller: it advances with
//! time while the controller runs (UHCI's FRNUM every millisecond,
//! EHCI's FRINDEX every 125 us microframe) and stands still while it is
//! halted. It is computed from the clock when read, so nothing has to
//! wake up to count; the controller's worker processes the frames that
//! went by since it last ran.

use std::time::{Duration, Instant};

/// A counter's value and whether it runs, as a state image keeps it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FrameClockState {
    pub count: u64,
    pub running: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct FrameClock {
    tick: Duration,
    /// While running: when the count was `base`.
    started: Option<Instant>,
    base: u64,
}

impl FrameClock {
    /// A stopped counter at 0 advancing by one every `tick`.
    pub fn new(tick: Duration) -> FrameClock {
        FrameClock {
            tick,
            started: None,
            base: 0,
        }
    }

    /// The count at `now`.
    pub fn at(&self, now: Instant) -> u64 {
        match self.started {
            Some(t) => {
                let ticks =
                    now.saturating_duration_since(t).as_nanos() / self.tick.as_nanos().max(1);
                self.base
                    .saturating_add(u64::try_from(ticks).unwrap_or(u64::MAX))
            }
            None => self.base,
        }
    }

    pub fn running(&self) -> bool {
        self.started.is_some()
    }

    pub fn state(&self, now: Instant) -> FrameClockState {
        FrameClockState {
            count: self.at(now),
            running: self.running(),
        }
    }

    /// Continues from a saved count (running from `now` if it ran).
    pub fn restore(&mut self, s: FrameClockState, now: Instant) {
        self.base = s.count;
        self.started = s.running.then_some(now);
    }

    pub fn start(&mut self, now: Instant) {
        if self.started.is_none() {
            self.started = Some(now);
        }
    }

    pub fn stop(&mut self, now: Instant) {
        self.base = self.at(now);
        self.started = None;
    }

    /// The driver sets the count (it continues from there if running).
    pub fn set(&mut self, value: u64, now: Instant) {
        self.base = value;
        if self.started.is_some() {
            self.started = Some(now);
        }
    }

    /// When the count reaches `count` (now if it has), while running.
    pub fn when(&self, count: u64, now: Instant) -> Option<Duration> {
        let started = self.started?;
        let ticks = u32::try_from(count.saturating_sub(self.base)).unwrap_or(u32::MAX);
        let due = started + self.tick.saturating_mul(ticks);
        Some(due.saturating_duration_since(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_while_running_only() {
        let t0 = Instant::now();
        let ms = |n| t0 + Duration::from_millis(n);
        let mut c = FrameClock::new(Duration::from_millis(1));
        assert_eq!(c.at(ms(5)), 0);
        c.start(ms(5));
        assert_eq!(c.at(ms(17)), 12);
        c.stop(ms(17));
        assert_eq!(c.at(ms(100)), 12);
        c.set(1000, ms(100));
        c.start(ms(100));
        assert_eq!(c.at(ms(103)), 1003);
        assert_eq!(c.when(1010, ms(103)), Some(Duration::from_millis(7)));
        assert_eq!(c.when(10, ms(103)), Some(Duration::ZERO));
    }
}
