//! The server end to end: real sockets, a fake display drawing a known
//! pattern and a fake input sink recording what arrives.

use super::dirty::Rect;
use super::encode::zrle;
use super::pixel_format::PixelFormat;
use super::websocket::{self, tests::client_frame};
use super::*;
use crate::vmm::display::{Buttons, DisplaySource, Frame, InputSink};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

struct Pattern {
    size: Mutex<(u32, u32)>,
    phase: AtomicU32,
}

fn pattern_pixel(x: u32, y: u32, phase: u32) -> u32 {
    if y < 40 {
        0x102030
    } else if x < 100 {
        [0xff0000, 0x00ff00, 0x0000ff][((x / 3 + y / 5 + phase) % 3) as usize]
    } else {
        ((x * 31 + y * 17 + phase) & 0xff) << 16 | ((x ^ y) & 0xff) << 8 | (y & 0xff)
    }
}

fn pattern_frame(w: u32, h: u32, phase: u32) -> Vec<u32> {
    (0..h)
        .flat_map(|y| (0..w).map(move |x| pattern_pixel(x, y, phase)))
        .collect()
}

impl DisplaySource for Pattern {
    fn render(&self, frame: &mut Frame) {
        let (w, h) = *self.size.lock().unwrap();
        frame.resize(w, h);
        frame.pixels = pattern_frame(w, h, self.phase.load(Ordering::SeqCst));
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Key(u16, bool),
    Pointer(u32, u32, u32, u32, Buttons),
}

#[derive(Default)]
struct Recorder(Mutex<Vec<Event>>);

impl InputSink for Recorder {
    fn key(&self, code: u16, down: bool) {
        self.0.lock().unwrap().push(Event::Key(code, down));
    }
    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons) {
        self.0
            .lock()
            .unwrap()
            .push(Event::Pointer(x, y, width, height, buttons));
    }
}

struct Setup {
    server: VncServer,
    addr: SocketAddr,
    source: Arc<Pattern>,
    input: Arc<Recorder>,
}

fn start(password: Option<&str>, share_policy: SharePolicy, websocket: bool) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let source = Arc::new(Pattern {
        size: Mutex::new((320, 200)),
        phase: AtomicU32::new(0),
    });
    let input = Arc::new(Recorder::default());
    let opts = VncOptions {
        password: password.map(String::from),
        share_policy,
        desktop_name: "guest-one".into(),
        layout: None,
    };
    let server = VncServer::start(
        vec![Endpoint {
            listener: Listener::Tcp(listener),
            websocket,
        }],
        opts,
        source.clone(),
        input.clone(),
        super::server::plain_threads(),
    )
    .unwrap();
    Setup {
        server,
        addr,
        source,
        input,
    }
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// A WebSocket client stream: writes become masked binary frames, reads
/// unwrap the server's frames.
struct WsStream {
    tcp: TcpStream,
    payload: Vec<u8>,
}

impl Read for WsStream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.payload.is_empty() {
            let mut h = [0u8; 2];
            self.tcp.read_exact(&mut h)?;
            assert_eq!(h[1] & 0x80, 0, "server frames are unmasked");
            let len = match h[1] & 0x7f {
                126 => {
                    let mut b = [0u8; 2];
                    self.tcp.read_exact(&mut b)?;
                    u16::from_be_bytes(b) as usize
                }
                127 => {
                    let mut b = [0u8; 8];
                    self.tcp.read_exact(&mut b)?;
                    u64::from_be_bytes(b) as usize
                }
                n => n as usize,
            };
            let mut data = vec![0u8; len];
            self.tcp.read_exact(&mut data)?;
            match h[0] & 0x0f {
                2 => self.payload = data,
                8 => return Ok(0),
                op => assert_eq!(op, websocket::OP_PONG),
            }
        }
        let n = buf.len().min(self.payload.len());
        buf[..n].copy_from_slice(&self.payload[..n]);
        self.payload.drain(..n);
        Ok(n)
    }
}

impl Write for WsStream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.tcp
            .write_all(&client_frame(2, buf, [0x12, 0x34, 0x56, 0x78]))?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct Client {
    s: Box<dyn Stream>,
    fb: Frame,
    zlib: flate2::Decompress,
}

/// Rectangles of an update, as (x, y, w, h, encoding).
type Rects = Vec<(u32, u32, u32, u32, i32)>;

impl Client {
    fn tcp(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        Client::over(Box::new(s))
    }

    fn over(s: Box<dyn Stream>) -> Client {
        Client {
            s,
            fb: Frame::default(),
            zlib: flate2::Decompress::new(true),
        }
    }

    fn read_n(&mut self, n: usize) -> Vec<u8> {
        let mut b = vec![0u8; n];
        self.s.read_exact(&mut b).unwrap();
        b
    }
    fn u8(&mut self) -> u8 {
        self.read_n(1)[0]
    }
    fn u16(&mut self) -> u16 {
        u16::from_be_bytes(self.read_n(2).try_into().unwrap())
    }
    fn u32(&mut self) -> u32 {
        u32::from_be_bytes(self.read_n(4).try_into().unwrap())
    }
    fn send(&mut self, b: &[u8]) {
        self.s.write_all(b).unwrap();
    }

    /// Version and security; Err(reason) when the server refused.
    fn security(&mut self, version: &str, password: Option<&str>) -> Result<(), String> {
        assert_eq!(self.read_n(12), b"RFB 003.008\n");
        self.send(version.as_bytes());
        let ty = if version == "RFB 003.003\n" {
            self.u32() as u8
        } else {
            let n = self.u8();
            assert_eq!(n, 1);
            let ty = self.u8();
            self.send(&[ty]);
            ty
        };
        if ty == 2 {
            let challenge: [u8; 16] = self.read_n(16).try_into().unwrap();
            self.send(&auth::response(
                password.expect("server wants a password"),
                &challenge,
            ));
        } else {
            assert_eq!(ty, 1, "security type");
            assert!(password.is_none(), "server offered no authentication");
            if version != "RFB 003.008\n" {
                return Ok(());
            }
        }
        match self.u32() {
            0 => Ok(()),
            _ if version == "RFB 003.008\n" => {
                let len = self.u32() as usize;
                Err(String::from_utf8(self.read_n(len)).unwrap())
            }
            _ => Err(String::new()),
        }
    }

    /// ClientInit and ServerInit; returns the size and name.
    fn init(&mut self, shared: bool) -> (u32, u32, String) {
        self.send(&[shared as u8]);
        let (w, h) = (u32::from(self.u16()), u32::from(self.u16()));
        assert_eq!(self.read_n(16), PixelFormat::SERVER.to_bytes());
        let len = self.u32() as usize;
        let name = String::from_utf8(self.read_n(len)).unwrap();
        self.fb.resize(w, h);
        (w, h, name)
    }

    fn connect(addr: SocketAddr) -> Client {
        let mut c = Client::tcp(addr);
        c.security("RFB 003.008\n", None).unwrap();
        c.init(true);
        c
    }

    fn set_encodings(&mut self, encs: &[i32]) {
        let mut m = vec![2, 0];
        m.extend_from_slice(&(encs.len() as u16).to_be_bytes());
        for e in encs {
            m.extend_from_slice(&e.to_be_bytes());
        }
        self.send(&m);
    }

    fn request(&mut self, incremental: bool) {
        let mut m = vec![3, incremental as u8, 0, 0, 0, 0];
        m.extend_from_slice(&(self.fb.width as u16).to_be_bytes());
        m.extend_from_slice(&(self.fb.height as u16).to_be_bytes());
        self.send(&m);
    }

    /// Reads one FramebufferUpdate into `fb`.
    fn update(&mut self) -> Rects {
        assert_eq!(self.u8(), 0, "message type");
        self.u8();
        let n = self.u16();
        let mut rects = Vec::new();
        for _ in 0..n {
            let (x, y, w, h) = (
                self.u16() as u32,
                self.u16() as u32,
                self.u16() as u32,
                self.u16() as u32,
            );
            let enc = self.u32() as i32;
            rects.push((x, y, w, h, enc));
            match enc {
                0 => {
                    let data = self.read_n((w * h * 4) as usize);
                    for (i, px) in data.chunks(4).enumerate() {
                        let (px_x, px_y) = (x + i as u32 % w, y + i as u32 / w);
                        let v = u32::from_le_bytes(px.try_into().unwrap());
                        self.fb.pixels[(px_y * self.fb.width + px_x) as usize] = v;
                    }
                }
                16 => {
                    let len = self.u32() as usize;
                    let data = self.read_n(len);
                    zrle::tests::decode(&mut self.zlib, &data, Rect { x, y, w, h }, &mut self.fb);
                }
                -223 => self.fb.resize(w, h),
                -308 => {
                    let screens = self.u8() as usize;
                    self.read_n(3 + 16 * screens);
                    if x == 0 {
                        self.fb.resize(w, h);
                    }
                }
                -257 | -258 => {}
                other => panic!("unexpected encoding {other}"),
            }
        }
        rects
    }

    /// Whether the server closed the connection (within the read timeout).
    fn closed(&mut self) -> bool {
        let mut b = [0u8; 1];
        loop {
            match self.s.read(&mut b) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn handshake_38_without_password() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::tcp(t.addr);
    c.security("RFB 003.008\n", None).unwrap();
    assert_eq!(c.init(true), (320, 200, "guest-one".to_string()));
    wait_for("client count", || t.server.client_count() == 1);
    drop(c);
    wait_for("client gone", || t.server.client_count() == 0);
}

#[test]
fn handshake_33_and_37_with_and_without_password() {
    let t = start(None, SharePolicy::default(), false);
    for version in ["RFB 003.003\n", "RFB 003.007\n"] {
        let mut c = Client::tcp(t.addr);
        c.security(version, None).unwrap();
        assert_eq!(c.init(true).0, 320);
    }
    t.server.set_password(Some("hunter2".into()));
    let mut c = Client::tcp(t.addr);
    c.security("RFB 003.003\n", Some("hunter2")).unwrap();
    assert_eq!(c.init(true).1, 200);
}

#[test]
fn vnc_auth_success_and_delayed_failure() {
    let t = start(Some("s3cret-but-long"), SharePolicy::default(), false);
    let mut ok = Client::tcp(t.addr);
    // Only the first eight bytes count.
    ok.security("RFB 003.008\n", Some("s3cret-b")).unwrap();
    ok.init(true);

    let addr = t.addr;
    let failing = std::thread::spawn(move || {
        let started = Instant::now();
        let mut bad = Client::tcp(addr);
        let err = bad.security("RFB 003.008\n", Some("guess")).unwrap_err();
        (err, started.elapsed())
    });
    // While that client waits out its delay, others are served at once.
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    let mut other = Client::tcp(t.addr);
    other
        .security("RFB 003.008\n", Some("s3cret-but-long"))
        .unwrap();
    other.init(true);
    assert!(
        started.elapsed() < Duration::from_millis(700),
        "handshake blocked by the failing client"
    );
    let (err, took) = failing.join().unwrap();
    assert_eq!(err, "Authentication failed");
    assert!(
        took >= Duration::from_millis(950),
        "failure answered after {took:?}"
    );
}

#[test]
fn empty_password_never_logs_in() {
    let t = start(Some(""), SharePolicy::default(), false);
    let mut c = Client::tcp(t.addr);
    assert!(c.security("RFB 003.008\n", Some("")).is_err());
}

#[test]
fn raw_update_is_the_pattern_and_incremental_waits_for_change() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::connect(t.addr);
    c.set_encodings(&[0]);
    c.request(false);
    assert_eq!(c.update(), [(0, 0, 320, 200, 0)]);
    assert_eq!(c.fb.pixels, pattern_frame(320, 200, 0));

    // Nothing changed: an incremental request stays unanswered...
    c.request(true);
    std::thread::sleep(Duration::from_millis(100));
    t.source.phase.store(1, Ordering::SeqCst);
    // ...until the picture changes, and then only changed parts come.
    let rects = c.update();
    assert!(
        rects.iter().all(|r| r.1 + r.3 > 40),
        "the unchanged top band was sent: {rects:?}"
    );
    assert_eq!(c.fb.pixels, pattern_frame(320, 200, 1));
    assert!(t.server.bytes_sent() > 320 * 200 * 4);
}

#[test]
fn zrle_update_decodes_to_the_pattern() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::connect(t.addr);
    c.set_encodings(&[16, 0]);
    c.request(false);
    assert_eq!(c.update(), [(0, 0, 320, 200, 16)]);
    assert_eq!(c.fb.pixels, pattern_frame(320, 200, 0));
    t.source.phase.store(2, Ordering::SeqCst);
    c.request(true);
    c.update();
    assert_eq!(c.fb.pixels, pattern_frame(320, 200, 2));
}

#[test]
fn resize_sends_desktop_size_then_full_frame() {
    for encodings in [[0, -223], [0, -308]] {
        let t = start(None, SharePolicy::default(), false);
        let mut c = Client::connect(t.addr);
        c.set_encodings(&encodings);
        c.request(false);
        c.update();
        *t.source.size.lock().unwrap() = (200, 150);
        c.request(true);
        let rects = c.update();
        assert_eq!(rects.last().unwrap(), &(0, 0, 200, 150, encodings[1]));
        c.request(true);
        assert_eq!(c.update(), [(0, 0, 200, 150, 0)]);
        assert_eq!(c.fb.pixels, pattern_frame(200, 150, 0));
    }
}

#[test]
fn without_resize_support_the_old_size_stays() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::connect(t.addr);
    *t.source.size.lock().unwrap() = (100, 300);
    std::thread::sleep(Duration::from_millis(50)); // past the shared frame's lifetime
    c.request(false);
    assert_eq!(c.update(), [(0, 0, 320, 200, 0)]);
    let want: Vec<u32> = (0..200u32)
        .flat_map(|y| (0..320u32).map(move |x| if x < 100 { pattern_pixel(x, y, 0) } else { 0 }))
        .collect();
    assert_eq!(c.fb.pixels, want);
}

#[test]
fn key_and_pointer_events_reach_the_sink() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::connect(t.addr);
    // 'a' down/up, then 'A' without Shift held: Shift is added around it.
    for (down, keysym) in [(1u8, 0x61u32), (0, 0x61), (1, 0x41), (0, 0x41)] {
        let mut m = vec![4, down, 0, 0];
        m.extend_from_slice(&keysym.to_be_bytes());
        c.send(&m);
    }
    c.send(&[5, 0b101, 0x01, 0x00, 0x00, 0x20]);
    c.send(&[5, 0, 0xff, 0xff, 0xff, 0xff]);
    use Event::*;
    let want = [
        Key(30, true),
        Key(30, false),
        Key(42, true),
        Key(30, true),
        Key(42, false),
        Key(30, false),
        Pointer(256, 32, 320, 200, 0b101),
        Pointer(319, 199, 320, 200, 0),
    ];
    wait_for("events", || t.input.0.lock().unwrap().len() >= want.len());
    assert_eq!(*t.input.0.lock().unwrap(), want);
}

#[test]
fn qemu_extended_key_events() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::connect(t.addr);
    c.set_encodings(&[0, -258, -257]);
    c.request(false);
    let rects = c.update();
    assert!(rects.iter().any(|r| r.4 == -258), "{rects:?}");
    assert!(
        rects.contains(&(1, 0, 320, 200, -257)),
        "absolute pointer: {rects:?}"
    );
    let ext_key = |down: u16, keysym: u32, code: u32| {
        let mut m = vec![255, 0];
        m.extend_from_slice(&down.to_be_bytes());
        m.extend_from_slice(&keysym.to_be_bytes());
        m.extend_from_slice(&code.to_be_bytes());
        m
    };
    c.send(&ext_key(1, 0x61, 0x1e));
    c.send(&ext_key(1, 0xff8d, 0x9c)); // keypad Enter, an E0 key
    c.send(&ext_key(0, 0x61, 0)); // no scan code: the keysym is used
    // A key still down when the client goes is released.
    wait_for("keys", || t.input.0.lock().unwrap().len() == 3);
    drop(c);
    wait_for("release", || t.input.0.lock().unwrap().len() == 4);
    use Event::*;
    assert_eq!(
        *t.input.0.lock().unwrap(),
        [Key(30, true), Key(96, true), Key(30, false), Key(96, false)]
    );
}

#[test]
fn exclusive_client_disconnects_shared_ones() {
    let t = start(None, SharePolicy::AllowExclusive, false);
    let mut shared = Client::connect(t.addr);
    let mut exclusive = Client::tcp(t.addr);
    exclusive.security("RFB 003.008\n", None).unwrap();
    exclusive.init(false);
    assert!(shared.closed());
    // While it is there, shared clients are turned away.
    let mut late = Client::tcp(t.addr);
    late.security("RFB 003.008\n", None).unwrap();
    late.send(&[1]);
    assert!(late.closed());
    exclusive.request(false);
    exclusive.update();
}

#[test]
fn shared_policies_keep_everyone() {
    for policy in [SharePolicy::ForceShared, SharePolicy::Ignore] {
        let t = start(None, policy, false);
        let mut first = Client::connect(t.addr);
        let mut second = Client::tcp(t.addr);
        second.security("RFB 003.008\n", None).unwrap();
        second.init(false);
        let mut third = Client::connect(t.addr);
        for c in [&mut first, &mut second, &mut third] {
            c.request(false);
            c.update();
        }
        assert_eq!(t.server.client_count(), 3);
    }
}

#[test]
fn garbage_and_oversize_cut_text_close_only_that_client() {
    let t = start(None, SharePolicy::default(), false);
    let mut good = Client::connect(t.addr);

    let mut small_cut = Client::connect(t.addr);
    small_cut.send(&[6, 0, 0, 0, 0, 0, 0, 5, b'h', b'e', b'l', b'l', b'o']);
    small_cut.request(false);
    small_cut.update();

    let mut garbage = Client::connect(t.addr);
    garbage.send(&[77, 1, 2, 3]);
    assert!(garbage.closed());

    let mut huge_cut = Client::connect(t.addr);
    huge_cut.send(&[6, 0, 0, 0, 0, 0x20, 0, 0]);
    assert!(huge_cut.closed());

    let mut colour_map = Client::connect(t.addr);
    let mut m = vec![0, 0, 0, 0];
    m.extend_from_slice(
        &PixelFormat {
            true_colour: false,
            ..PixelFormat::SERVER
        }
        .to_bytes(),
    );
    colour_map.send(&m);
    assert!(colour_map.closed());

    let mut not_rfb = Client::tcp(t.addr);
    not_rfb.read_n(12);
    not_rfb.send(b"GET / HTTP/1.1\r\n\r\n");
    assert!(not_rfb.closed());

    good.request(false);
    good.update();
    assert_eq!(good.fb.pixels, pattern_frame(320, 200, 0));
}

#[test]
fn client_pixel_format_16bpp_big_endian() {
    let t = start(None, SharePolicy::default(), false);
    let mut c = Client::connect(t.addr);
    let pf = PixelFormat {
        bits_per_pixel: 16,
        depth: 16,
        big_endian: true,
        true_colour: true,
        red_max: 31,
        green_max: 63,
        blue_max: 31,
        red_shift: 11,
        green_shift: 5,
        blue_shift: 0,
    };
    let mut m = vec![0, 0, 0, 0];
    m.extend_from_slice(&pf.to_bytes());
    c.send(&m);
    c.request(false);
    assert_eq!(c.u8(), 0);
    c.read_n(3);
    assert_eq!(c.read_n(12), [0, 0, 0, 0, 1, 0x40, 0, 200, 0, 0, 0, 0]);
    let data = c.read_n(320 * 200 * 2);
    let mut want = Vec::new();
    for p in pattern_frame(320, 200, 0) {
        pf.put(p, &mut want);
    }
    assert_eq!(data, want);
    // 0x102030 in RGB565 big endian.
    assert_eq!(&data[..2], &[0x11, 0x06]);
}

#[test]
fn websocket_endpoint_carries_rfb() {
    let t = start(None, SharePolicy::default(), true);
    let mut tcp = TcpStream::connect(t.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(
        b"GET /websockify HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Protocol: binary\r\n\r\n",
    )
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        tcp.read_exact(&mut b).unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8(head).unwrap();
    assert!(head.starts_with("HTTP/1.1 101 "), "{head}");
    assert!(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
    // A ping is answered with a pong (skipped by the reader).
    tcp.write_all(&client_frame(9, b"hi", [1, 2, 3, 4]))
        .unwrap();
    let mut c = Client::over(Box::new(WsStream {
        tcp,
        payload: Vec::new(),
    }));
    c.security("RFB 003.008\n", None).unwrap();
    c.init(true);
    c.set_encodings(&[16]);
    c.request(false);
    c.update();
    assert_eq!(c.fb.pixels, pattern_frame(320, 200, 0));
}

#[test]
fn websocket_endpoint_refuses_plain_http() {
    let t = start(None, SharePolicy::default(), true);
    let mut tcp = TcpStream::connect(t.addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "));
}

#[test]
fn unix_socket_endpoint() {
    let dir = std::env::temp_dir().join(format!("oxvirt-vnc-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("vnc.sock");
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    let source = Arc::new(Pattern {
        size: Mutex::new((64, 48)),
        phase: AtomicU32::new(0),
    });
    let setups = Arc::new(AtomicU32::new(0));
    let counted = setups.clone();
    let server = VncServer::start(
        vec![Endpoint {
            listener: Listener::Unix(listener),
            websocket: false,
        }],
        VncOptions::default(),
        source,
        Arc::new(Recorder::default()),
        Arc::new(move |name: &str, body: Box<dyn FnOnce() + Send>| {
            counted.fetch_add(1, Ordering::SeqCst);
            std::thread::Builder::new().name(name.into()).spawn(body)
        }),
    )
    .unwrap();
    let s = UnixStream::connect(&path).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut c = Client::over(Box::new(s));
    c.security("RFB 003.008\n", None).unwrap();
    assert_eq!(c.init(true).0, 64);
    c.request(false);
    c.update();
    assert_eq!(c.fb.pixels, pattern_frame(64, 48, 0));
    // The accept thread and the client thread each came from the spawner.
    assert_eq!(setups.load(Ordering::SeqCst), 2);
    drop(server);
    assert!(c.closed());
    std::fs::remove_dir_all(&dir).unwrap();
}
