//! One client after the handshake: its messages in, framebuffer updates
//! out, only ever in answer to a request.

use super::conn::{Conn, Counters, Socket};
use super::dirty::{Rect, changed_rects};
use super::encode::{raw, zrle::ZrleEncoder};
use super::frames::RENDER_INTERVAL;
use super::keys::KeyState;
use super::pixel_format::PixelFormat;
use super::protocol::*;
use super::server::Shared;
use super::{handshake, websocket};
use crate::vmm::display::Frame;
use std::io::{self, ErrorKind};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Time for the rest of a message once its first byte came.
const MESSAGE_TIME: Duration = Duration::from_secs(30);
/// How long to wait for a message while no update is asked for.
const IDLE_WAIT: Duration = Duration::from_millis(500);
/// Messages handled in a row before updates get a turn again.
const MESSAGE_BURST: usize = 64;

/// Serves one connection until it ends; errors end up in the log.
pub fn serve(
    shared: &Shared,
    id: u64,
    socket: Socket,
    websocket: bool,
    skip_auth: bool,
    counters: Counters,
) {
    let peer = socket.peer();
    let client = counters.client.clone();
    let mut session = None;
    let result = (|| {
        let mut conn = Conn::new(socket, counters)?;
        if websocket {
            websocket_handshake(&mut conn)?;
        }
        let view = handshake::run(&mut conn, shared, id, skip_auth)?;
        tracing::info!("vnc: client {id} ({peer}) connected");
        session.insert(Session::new(conn, shared, view)).run()
    })();
    if let Some(s) = &mut session {
        s.keys.release_all(shared.input.as_ref());
    }
    let sent = client.load(std::sync::atomic::Ordering::Relaxed);
    match result {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset | ErrorKind::BrokenPipe
            ) =>
        {
            tracing::info!("vnc: client {id} ({peer}) disconnected after {sent} bytes")
        }
        Err(e) => tracing::warn!("vnc: client {id} ({peer}) dropped after {sent} bytes: {e}"),
        Ok(()) => tracing::info!("vnc: client {id} ({peer}) closed at server stop"),
    }
}

fn websocket_handshake(conn: &mut Conn) -> io::Result<()> {
    let head = conn.read_http_head(Instant::now() + MESSAGE_TIME)?;
    match websocket::parse_upgrade(&head) {
        Ok(up) => {
            conn.write_plain(websocket::upgrade_response(&up).as_bytes())?;
            conn.start_websocket()
        }
        Err(why) => {
            let _ = conn.write_plain(websocket::BAD_REQUEST.as_bytes());
            Err(io::Error::new(ErrorKind::InvalidData, why))
        }
    }
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, msg)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Request {
    Incremental,
    Full,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Pseudo {
    ExtKeyEvent,
    PointerAbsolute,
    ExtDesktopSize { reason: u16, status: u16 },
}

/// What the client's SetEncodings said it can take.
#[derive(Default)]
struct Caps {
    zrle: bool,
    desktop_size: bool,
    ext_desktop_size: bool,
}

struct Session<'a> {
    conn: Conn,
    shared: &'a Shared,
    pf: PixelFormat,
    caps: Caps,
    /// Pseudo-rectangles waiting for the next update.
    pseudo: Vec<Pseudo>,
    pending: Option<Request>,
    /// The framebuffer size the client knows.
    view: (u32, u32),
    /// The generation and picture the client has.
    last: Option<(u64, Arc<Frame>)>,
    keys: KeyState,
    zrle: ZrleEncoder,
    out: Vec<u8>,
}

/// `frame` cut or padded (black) to `w` x `h`, for clients that cannot
/// be told about a new size.
fn fit(frame: &Frame, (w, h): (u32, u32)) -> Frame {
    let mut out = Frame::default();
    out.resize(w, h);
    let cw = w.min(frame.width) as usize;
    for y in 0..h.min(frame.height) as usize {
        let src = frame
            .pixels
            .get(y * frame.width as usize..)
            .and_then(|r| r.get(..cw));
        let dst = out
            .pixels
            .get_mut(y * w as usize..)
            .and_then(|r| r.get_mut(..cw));
        if let (Some(src), Some(dst)) = (src, dst) {
            dst.copy_from_slice(src);
        }
    }
    out
}

impl<'a> Session<'a> {
    fn new(conn: Conn, shared: &'a Shared, view: (u32, u32)) -> Session<'a> {
        Session {
            conn,
            shared,
            pf: PixelFormat::SERVER,
            caps: Caps::default(),
            pseudo: Vec::new(),
            pending: None,
            view,
            last: None,
            keys: KeyState::new(shared.layout),
            zrle: ZrleEncoder::default(),
            out: Vec::new(),
        }
    }

    fn run(&mut self) -> io::Result<()> {
        while !self.shared.stopping() {
            let wait = if self.pending.is_some() {
                RENDER_INTERVAL
            } else {
                IDLE_WAIT
            };
            if self.conn.wait_readable(wait)? {
                for _ in 0..MESSAGE_BURST {
                    self.handle_message()?;
                    if !self.conn.wait_readable(Duration::ZERO)? {
                        break;
                    }
                }
            }
            self.send_update_if_due()?;
        }
        Ok(())
    }

    fn read<const N: usize>(&mut self) -> io::Result<[u8; N]> {
        self.conn.read_array::<N>(Instant::now() + MESSAGE_TIME)
    }

    fn handle_message(&mut self) -> io::Result<()> {
        let [kind] = self.read::<1>()?;
        match kind {
            MSG_SET_PIXEL_FORMAT => {
                let m = self.read::<19>()?;
                let mut raw_pf = [0u8; 16];
                raw_pf.copy_from_slice(&m[3..]);
                let pf = PixelFormat::from_bytes(&raw_pf);
                if let Err(why) = pf.check_supported() {
                    tracing::error!("vnc: client asked for an unusable pixel format {pf:?}: {why}");
                    return Err(invalid(why.into()));
                }
                self.pf = pf;
                self.last = None;
            }
            MSG_SET_ENCODINGS => {
                let [_, hi, lo] = self.read::<3>()?;
                self.set_encodings(u16::from_be_bytes([hi, lo]))?;
            }
            MSG_UPDATE_REQUEST => {
                let [incremental, ..] = self.read::<9>()?;
                self.pending = match (self.pending, incremental) {
                    (_, 0) | (Some(Request::Full), _) => Some(Request::Full),
                    _ => Some(Request::Incremental),
                };
            }
            MSG_KEY_EVENT => {
                let [down, _, _, k0, k1, k2, k3] = self.read::<7>()?;
                let keysym = u32::from_be_bytes([k0, k1, k2, k3]);
                self.keys
                    .keysym(self.shared.input.as_ref(), keysym, down != 0);
            }
            MSG_POINTER_EVENT => {
                let [buttons, x0, x1, y0, y1] = self.read::<5>()?;
                let x = u32::from(u16::from_be_bytes([x0, x1])).min(self.view.0.saturating_sub(1));
                let y = u32::from(u16::from_be_bytes([y0, y1])).min(self.view.1.saturating_sub(1));
                self.shared
                    .input
                    .pointer(x, y, self.view.0, self.view.1, buttons);
            }
            MSG_CUT_TEXT => {
                let [_, _, _, l0, l1, l2, l3] = self.read::<7>()?;
                // A negative length is the extended clipboard format.
                let len = i32::from_be_bytes([l0, l1, l2, l3]).unsigned_abs() as usize;
                if len > MAX_CUT_TEXT {
                    return Err(invalid(format!("cut text of {len} bytes")));
                }
                self.conn.skip(len, Instant::now() + MESSAGE_TIME)?;
            }
            MSG_SET_DESKTOP_SIZE => {
                let [_, _, _, _, _, screens, _] = self.read::<7>()?;
                self.conn
                    .skip(usize::from(screens) * 16, Instant::now() + MESSAGE_TIME)?;
                // The guest decides its mode; say no.
                self.pseudo.push(Pseudo::ExtDesktopSize {
                    reason: EDS_REASON_CLIENT,
                    status: EDS_STATUS_PROHIBITED,
                });
            }
            MSG_QEMU => {
                let [sub] = self.read::<1>()?;
                if sub != QEMU_EXT_KEY_EVENT {
                    return Err(invalid(format!("unknown QEMU message {sub}")));
                }
                let [_, down, k0, k1, k2, k3, c0, c1, c2, c3] = self.read::<10>()?;
                let keysym = u32::from_be_bytes([k0, k1, k2, k3]);
                let code = u32::from_be_bytes([c0, c1, c2, c3]);
                self.keys
                    .qnum(self.shared.input.as_ref(), keysym, code, down != 0);
            }
            other => return Err(invalid(format!("unknown message type {other}"))),
        }
        Ok(())
    }

    fn set_encodings(&mut self, count: u16) -> io::Result<()> {
        self.caps = Caps::default();
        let mut preferred = None;
        for _ in 0..count {
            let enc = i32::from_be_bytes(self.read::<4>()?);
            match enc {
                ENC_RAW | ENC_ZRLE if preferred.is_none() => preferred = Some(enc),
                ENC_DESKTOP_SIZE => self.caps.desktop_size = true,
                ENC_EXT_DESKTOP_SIZE => {
                    self.caps.ext_desktop_size = true;
                    self.queue(Pseudo::ExtDesktopSize {
                        reason: EDS_REASON_SERVER,
                        status: EDS_STATUS_OK,
                    });
                }
                ENC_EXT_KEY_EVENT => self.queue(Pseudo::ExtKeyEvent),
                ENC_POINTER_TYPE_CHANGE => self.queue(Pseudo::PointerAbsolute),
                _ => {}
            }
        }
        self.caps.zrle = preferred == Some(ENC_ZRLE);
        Ok(())
    }

    fn queue(&mut self, p: Pseudo) {
        if !self.pseudo.contains(&p) {
            self.pseudo.push(p);
        }
    }

    fn send_update_if_due(&mut self) -> io::Result<()> {
        let Some(request) = self.pending else {
            return Ok(());
        };
        let (generation, frame) = self.shared.frames.latest();
        let size = (frame.width.min(0xffff), frame.height.min(0xffff));
        let (vw, vh) = self.view;
        self.out.clear();
        self.out
            .extend_from_slice(&[SERVER_FRAMEBUFFER_UPDATE, 0, 0, 0]);
        let mut rects = 0u16;
        for p in std::mem::take(&mut self.pseudo) {
            match p {
                Pseudo::ExtKeyEvent => rect_header(&mut self.out, 0, 0, vw, vh, ENC_EXT_KEY_EVENT),
                Pseudo::PointerAbsolute => {
                    rect_header(&mut self.out, 1, 0, vw, vh, ENC_POINTER_TYPE_CHANGE)
                }
                Pseudo::ExtDesktopSize { reason, status } => {
                    ext_desktop_size(&mut self.out, reason, status, vw, vh)
                }
            }
            rects += 1;
        }

        if size != self.view && (self.caps.desktop_size || self.caps.ext_desktop_size) {
            // The size change goes last in its update; the client's next
            // request gets the whole new picture.
            self.view = size;
            if self.caps.ext_desktop_size {
                ext_desktop_size(
                    &mut self.out,
                    EDS_REASON_SERVER,
                    EDS_STATUS_OK,
                    size.0,
                    size.1,
                );
            } else {
                rect_header(&mut self.out, 0, 0, size.0, size.1, ENC_DESKTOP_SIZE);
            }
            self.last = None;
            return self.flush_update(rects + 1);
        }

        let view_frame = if (frame.width, frame.height) == self.view {
            frame
        } else {
            Arc::new(fit(&frame, self.view))
        };
        let changed = match (&self.last, request) {
            (Some((g, _)), Request::Incremental) if *g == generation => Vec::new(),
            (Some((_, old)), Request::Incremental) => changed_rects(old, &view_frame),
            _ => vec![Rect::whole(&view_frame)],
        };
        self.last = Some((generation, view_frame.clone()));
        for r in changed.into_iter().filter(|r| r.w > 0 && r.h > 0) {
            let encoding = if self.caps.zrle { ENC_ZRLE } else { ENC_RAW };
            rect_header(&mut self.out, r.x, r.y, r.w, r.h, encoding);
            if self.caps.zrle {
                self.zrle.encode(&view_frame, r, &self.pf, &mut self.out)?;
            } else {
                raw::encode(&view_frame, r, &self.pf, &mut self.out);
            }
            rects = rects.saturating_add(1);
        }
        if rects == 0 && request == Request::Incremental {
            return Ok(()); // Nothing new: keep the request for later.
        }
        self.flush_update(rects)
    }

    fn flush_update(&mut self, rects: u16) -> io::Result<()> {
        self.out[2..4].copy_from_slice(&rects.to_be_bytes());
        self.pending = None;
        self.conn.write_all(&self.out)
    }
}
