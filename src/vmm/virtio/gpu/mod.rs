//! virtio-gpu, 2D only (virtio 1.2 §5.7): a control queue and a cursor
//! queue, one scanout, resources kept as host copies of guest images,
//! EDID on request. The scanout is shown through [`GpuDisplay`], a
//! [`DisplaySource`] for the VNC server and screenshots.
//!
//! - `protocol.rs`: the wire format (numbers from `virtio_bindings`).
//! - `commands.rs`: one request's bytes to its response's bytes.
//! - `resources.rs`: resources, backing pages, the memory bound, the
//!   scanout and its conversion to `0x00RRGGBB`.
//! - `edid.rs`: the EDID block of the preferred mode.

pub mod commands;
pub mod edid;
pub mod protocol;
pub mod resources;

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use virtio_bindings::virtio_ids::VIRTIO_ID_GPU;
use virtio_queue::QueueT;

use super::worker::{Handler, Poll, WorkQueue, Worker};
use super::{Activation, Interrupt, VirtioDevice, feature};
use crate::vmm::config::GpuConfig;
use crate::vmm::display::{DisplaySource, Frame};
use crate::vmm::memory::GuestMemory;
use commands::Negotiated;
use resources::GpuState;

/// Queue size of both queues.
const QUEUE_SIZE: u16 = 256;
const CONTROLQ: u64 = 0;
const CURSORQ: u64 = 1;
/// `virtio_gpu_config`: events_read, events_clear, num_scanouts,
/// num_capsets.
const CONFIG_LEN: usize = 16;
const EVENTS_CLEAR: u64 = 4;

/// What the device, its worker and its display handle share.
struct Shared {
    state: Mutex<GpuState>,
    events: AtomicU32,
}

impl Shared {
    fn state(&self) -> MutexGuard<'_, GpuState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The virtio-gpu device.
pub struct Gpu {
    shared: Arc<Shared>,
    edid: bool,
    worker: Option<Worker>,
}

impl Gpu {
    pub fn new(cfg: &GpuConfig) -> Self {
        let limit = cfg.max_hostmem_mib.saturating_mul(1 << 20);
        Gpu {
            shared: Arc::new(Shared {
                state: Mutex::new(GpuState::new(limit, (cfg.xres, cfg.yres))),
                events: AtomicU32::new(0),
            }),
            edid: cfg.edid,
            worker: None,
        }
    }

    /// The scanout, for the VNC server and screenshots.
    pub fn display(&self) -> Arc<dyn DisplaySource> {
        Arc::new(GpuDisplay {
            shared: self.shared.clone(),
        })
    }
}

/// Shows the scanout's resource; black 640x480 while there is none.
pub struct GpuDisplay {
    shared: Arc<Shared>,
}

impl DisplaySource for GpuDisplay {
    fn render(&self, frame: &mut Frame) {
        self.shared.state().render(frame);
    }
}

struct GpuWorker {
    mem: GuestMemory,
    control: WorkQueue,
    cursor: WorkQueue,
    irq: Arc<Interrupt>,
    shared: Arc<Shared>,
    neg: Negotiated,
}

impl GpuWorker {
    fn control(&mut self) {
        let (mem, shared, neg) = (&self.mem, &self.shared, self.neg);
        self.control.process(mem, &self.irq, |chain| {
            let Ok(mut r) = chain.clone().reader(mem) else {
                return 0;
            };
            let mut req = vec![0u8; r.available_bytes().min(commands::MAX_REQUEST)];
            if r.read_exact(&mut req).is_err() {
                req.clear();
            }
            let resp = commands::control(&mut shared.state(), mem, &req, neg);
            let Ok(mut w) = chain.writer(mem) else {
                return 0;
            };
            let n = resp.len().min(w.available_bytes());
            match w.write_all(&resp[..n]) {
                Ok(()) => n as u32,
                Err(_) => 0,
            }
        });
    }

    fn cursor(&mut self) {
        let (mem, shared) = (&self.mem, &self.shared);
        self.cursor.process(mem, &self.irq, |chain| {
            if let Ok(mut r) = chain.reader(mem) {
                let mut req = [0u8; 64];
                let n = r.available_bytes().min(req.len());
                if r.read_exact(&mut req[..n]).is_ok() {
                    commands::cursor(&mut shared.state(), &req[..n]);
                }
            }
            0
        });
    }
}

impl Handler for GpuWorker {
    fn register(&mut self, poll: &Poll) -> std::io::Result<()> {
        poll.add(self.control.event.as_raw_fd(), CONTROLQ)?;
        poll.add(self.cursor.event.as_raw_fd(), CURSORQ)
    }

    fn event(&mut self, token: u64, _poll: &Poll) {
        let q = if token == CONTROLQ {
            &self.control
        } else {
            &self.cursor
        };
        q.ack();
        if !q.queue.ready() {
            return;
        }
        if token == CONTROLQ {
            self.control();
        } else {
            self.cursor();
        }
    }
}

impl VirtioDevice for Gpu {
    fn device_type(&self) -> u32 {
        VIRTIO_ID_GPU
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE, QUEUE_SIZE]
    }

    fn features(&self) -> u64 {
        if self.edid {
            feature(protocol::F_EDID)
        } else {
            0
        }
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let mut image = [0u8; CONFIG_LEN];
        let events = self.shared.events.load(Ordering::Acquire);
        image[0..4].copy_from_slice(&events.to_le_bytes());
        image[8..12].copy_from_slice(&1u32.to_le_bytes());
        super::read_config_bytes(&image, offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        if offset == EVENTS_CLEAR && data.len() == 4 {
            let mut raw = [0u8; 4];
            raw.copy_from_slice(data);
            let clear = u32::from_le_bytes(raw);
            self.shared.events.fetch_and(!clear, Ordering::AcqRel);
        }
    }

    fn activate(&mut self, act: Activation) -> Result<(), String> {
        let mut queues = act.queues.into_iter();
        let (cq, cev) = queues.next().ok_or("no control queue")?;
        let (uq, uev) = queues.next().ok_or("no cursor queue")?;
        let w = GpuWorker {
            mem: act.mem,
            control: WorkQueue::new(0, cq, cev),
            cursor: WorkQueue::new(1, uq, uev),
            irq: act.interrupt,
            shared: self.shared.clone(),
            neg: Negotiated {
                edid: act.features & feature(protocol::F_EDID) != 0,
            },
        };
        self.worker = Some(
            Worker::spawn(crate::vmm::sandbox::ThreadKind::Gpu, "virtio-gpu", w)
                .map_err(|e| e.to_string())?,
        );
        Ok(())
    }

    fn quiesce(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
    }
    fn save_state(&self) -> serde_json::Value {
        serde_json::to_value(self.shared.state().saved()).unwrap_or_default()
    }
    fn restore_state(
        &mut self,
        state: &serde_json::Value,
        mem: &GuestMemory,
    ) -> Result<(), String> {
        let saved: resources::GpuSaved =
            serde_json::from_value(state.clone()).map_err(|e| format!("virtio-gpu state: {e}"))?;
        self.shared.state().restore(&saved, mem)
    }
    fn reset(&mut self) {
        if let Some(mut w) = self.worker.take() {
            w.stop();
        }
        self.shared.state().clear();
        self.shared.events.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> GpuConfig {
        GpuConfig {
            pci_slot: None,
            xres: 800,
            yres: 600,
            max_hostmem_mib: 1,
            edid: true,
        }
    }

    #[test]
    fn config_space_has_one_scanout_and_no_capsets() {
        let mut g = Gpu::new(&config());
        assert_eq!(g.device_type(), 16);
        assert_eq!(g.queue_max_sizes().len(), 2);
        assert_eq!(g.features(), 1 << protocol::F_EDID);
        let mut b = [0xffu8; 16];
        g.read_config(0, &mut b);
        assert_eq!(b, [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0]);
        // events_clear clears events_read bits.
        g.shared
            .events
            .store(protocol::EVENT_DISPLAY, Ordering::Release);
        let mut w = [0u8; 4];
        g.read_config(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), protocol::EVENT_DISPLAY);
        g.write_config(EVENTS_CLEAR, &protocol::EVENT_DISPLAY.to_le_bytes());
        g.read_config(0, &mut w);
        assert_eq!(u32::from_le_bytes(w), 0);
        let mut past = [0xffu8; 4];
        g.read_config(16, &mut past);
        assert_eq!(past, [0; 4]);
        let plain = Gpu::new(&GpuConfig {
            edid: false,
            ..config()
        });
        assert_eq!(plain.features(), 0);
    }

    /// Requests through the control queue: a header and body split over
    /// two readable descriptors, a response buffer too short for the
    /// display information (filled as far as it goes), and the used
    /// lengths in the used ring.
    #[test]
    fn the_worker_serves_chains_from_the_control_queue() {
        use crate::vmm::virtio::fuzz::{USED, blk_queue, guest};
        use crate::vmm::virtio::interrupt::{IntxLine, IntxLines};
        use crate::vmm::virtio::test_ring::{NEXT, WRITE, desc, publish};
        use vm_memory::{Bytes, GuestAddress};
        use vmm_sys_util::eventfd::EventFd;

        let mem = guest();
        let hdr = |kind: u32| {
            let mut h = [0u8; protocol::HDR_LEN];
            h[0..4].copy_from_slice(&kind.to_le_bytes());
            h
        };
        // Chain 0: CREATE_2D, header and body in separate descriptors.
        mem.write_slice(&hdr(protocol::CMD_RESOURCE_CREATE_2D), GuestAddress(0x8000))
            .unwrap();
        let body: Vec<u8> = [1u32, protocol::FORMAT_B8G8R8X8, 16, 16]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        mem.write_slice(&body, GuestAddress(0x8100)).unwrap();
        desc(&mem, 0, 0x8000, 24, NEXT, 1);
        desc(&mem, 1, 0x8100, 16, NEXT, 2);
        desc(&mem, 2, 0x9000, 24, WRITE, 0);
        // Chain 1: GET_DISPLAY_INFO into 40 bytes.
        mem.write_slice(&hdr(protocol::CMD_GET_DISPLAY_INFO), GuestAddress(0x8200))
            .unwrap();
        mem.write_slice(&[0xaa; 48], GuestAddress(0xa000)).unwrap();
        desc(&mem, 3, 0x8200, 24, NEXT, 4);
        desc(&mem, 4, 0xa000, 40, WRITE, 0);
        publish(&mem, &[0, 3]);

        let g = Gpu::new(&config());
        let lines = Arc::new(IntxLines::new(None));
        let irq = Arc::new(Interrupt::new(
            IntxLine {
                lines: lines.clone(),
                gsi: 20,
                slot: 3,
            },
            Vec::new(),
        ));
        let mut w = GpuWorker {
            mem: mem.clone(),
            control: WorkQueue::new(0, blk_queue(&mem), EventFd::new(0).unwrap()),
            cursor: WorkQueue::new(1, blk_queue(&mem), EventFd::new(0).unwrap()),
            irq,
            shared: g.shared.clone(),
            neg: Negotiated::default(),
        };
        w.control();
        let used_len = |i: u64| mem.read_obj::<u32>(GuestAddress(USED + 8 + 8 * i)).unwrap();
        assert_eq!(mem.read_obj::<u16>(GuestAddress(USED + 2)).unwrap(), 2);
        assert_eq!(used_len(0), 24);
        assert_eq!(used_len(1), 40);
        let r: u32 = mem.read_obj(GuestAddress(0x9000)).unwrap();
        assert_eq!(r, protocol::RESP_OK_NODATA);
        let r: u32 = mem.read_obj(GuestAddress(0xa000)).unwrap();
        assert_eq!(r, protocol::RESP_OK_DISPLAY_INFO);
        let width: u32 = mem.read_obj(GuestAddress(0xa000 + 24 + 8)).unwrap();
        assert_eq!(width, 800);
        let after: [u8; 8] = mem.read_obj(GuestAddress(0xa000 + 40)).unwrap();
        assert_eq!(after, [0xaa; 8], "nothing written past the buffer");
        assert_eq!(g.shared.state().used, 16 * 16 * 4);
        assert!(lines.level(20), "the driver was interrupted");
    }

    #[test]
    fn reset_drops_resources_and_the_display_goes_black() {
        let mut g = Gpu::new(&config());
        let display = g.display();
        {
            let mut s = g.shared.state();
            s.create_2d(1, protocol::FORMAT_B8G8R8X8, 4, 4).unwrap();
            s.set_scanout(
                0,
                1,
                protocol::Rect {
                    x: 0,
                    y: 0,
                    width: 4,
                    height: 4,
                },
            )
            .unwrap();
            assert_eq!(s.limit, 1 << 20);
            assert_eq!(s.preferred, (800, 600));
        }
        let mut f = Frame::default();
        display.render(&mut f);
        assert_eq!((f.width, f.height), (4, 4));
        g.reset();
        display.render(&mut f);
        assert_eq!((f.width, f.height), (640, 480));
        assert_eq!(g.shared.state().used, 0);
    }
}
