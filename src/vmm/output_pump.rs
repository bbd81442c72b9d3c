//! Moves guest console output off the vCPU thread.
//!
//! A 16550 hands over one byte per port write, and the UART model flushes
//! its sink after each one, so writing straight to the backend costs one
//! host syscall per byte inside the vCPU's exit handler (about 0.1 ms here).
//! The pump instead appends to a buffer and wakes a writer thread only when
//! that thread is idle; the writer sends whatever has gathered in one
//! `write`. Output order is kept, and [`PumpHandle::drain`] writes out the
//! rest before the VMM exits.

use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;

/// Output beyond this much unwritten data is dropped, as a console nobody
/// reads must never make the VMM's memory grow.
const MAX_PENDING: usize = 1 << 20;

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    writer_idle: bool,
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The `Write` end the UART writes into.
pub struct OutputPump(Arc<Shared>);

/// Owner of the writer thread.
pub struct PumpHandle {
    shared: Arc<Shared>,
    name: String,
    /// The backend, until the writer thread takes it.
    sink: Option<Box<dyn Write + Send>>,
    thread: Option<JoinHandle<()>>,
}

/// A pump for `sink` whose writer thread is not started yet (a VMM starts
/// its threads once it is confined); output gathers until
/// [`PumpHandle::start`].
pub fn new(name: &str, sink: Box<dyn Write + Send>) -> (OutputPump, PumpHandle) {
    let shared = Arc::new(Shared::default());
    (
        OutputPump(shared.clone()),
        PumpHandle {
            shared,
            name: name.to_string(),
            sink: Some(sink),
            thread: None,
        },
    )
}

fn write_out(theirs: &Shared, mut sink: Box<dyn Write + Send>) {
    // Process signals (SIGTERM, SIGINT, SIGHUP) belong to the main
    // thread's signalfd; a helper thread must never take them.
    let _ = nix::sys::signal::SigSet::all().thread_block();
    let mut batch = Vec::new();
    loop {
        let last = {
            let mut st = theirs.lock();
            while st.pending.is_empty() && !st.closed {
                st.writer_idle = true;
                st = theirs.wake.wait(st).unwrap_or_else(|p| p.into_inner());
            }
            st.writer_idle = false;
            std::mem::swap(&mut batch, &mut st.pending);
            st.closed
        };
        // Backends report their own errors (a lossy pty, a client
        // gone); nothing here can do better than carry on.
        let _ = sink.write_all(&batch);
        let _ = sink.flush();
        batch.clear();
        // Output written after the drain began is not waited for:
        // a guest still printing must not hold up the exit.
        if last {
            return;
        }
    }
}

impl Write for OutputPump {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut st = self.0.lock();
        let room = MAX_PENDING.saturating_sub(st.pending.len());
        st.pending.extend_from_slice(&buf[..buf.len().min(room)]);
        if st.writer_idle {
            st.writer_idle = false;
            self.0.wake.notify_one();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl PumpHandle {
    /// Starts the writer thread (once).
    pub fn start(&mut self) -> io::Result<()> {
        let Some(sink) = self.sink.take() else {
            return Ok(());
        };
        let theirs = self.shared.clone();
        let thread = crate::vmm::sandbox::spawn(
            crate::vmm::sandbox::ThreadKind::SerialOut,
            &self.name,
            Some(64 * 1024),
            move || write_out(&theirs, sink),
        )?;
        self.thread = Some(thread);
        Ok(())
    }

    /// Writes out everything pending and stops the writer thread (or,
    /// if it never started, writes it out here).
    pub fn drain(&mut self) {
        self.shared.lock().closed = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if let Some(mut sink) = self.sink.take() {
            let pending = std::mem::take(&mut self.shared.lock().pending);
            let _ = sink.write_all(&pending);
            let _ = sink.flush();
        }
    }
}

impl Drop for PumpHandle {
    fn drop(&mut self) {
        self.drain();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Collect(Arc<Mutex<Vec<u8>>>);

    impl Write for Collect {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn keeps_order_and_drains_everything() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (mut pump, mut handle) = new("test-pump", Box::new(Collect(seen.clone())));
        handle.start().unwrap();
        let mut want = Vec::new();
        for i in 0..20_000u32 {
            let b = (i % 251) as u8;
            pump.write_all(&[b]).unwrap();
            want.push(b);
        }
        handle.drain();
        assert_eq!(*seen.lock().unwrap(), want);
    }

    #[test]
    fn bounds_unwritten_output() {
        struct Stuck;
        impl Write for Stuck {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                std::thread::sleep(std::time::Duration::from_millis(50));
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let (mut pump, mut handle) = new("test-pump", Box::new(Stuck));
        handle.start().unwrap();
        let chunk = vec![0u8; 64 * 1024];
        for _ in 0..64 {
            pump.write_all(&chunk).unwrap();
        }
        assert!(pump.0.lock().pending.len() <= MAX_PENDING);
        handle.drain();
    }
}
