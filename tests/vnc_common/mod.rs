//! A small RFB (VNC) 3.8 client for the integration tests: handshake with
//! no authentication or VNC authentication, a local copy of the screen kept
//! up to date from Raw, CopyRect and ZRLE rectangles and the desktop-size
//! pseudo-encodings, key (plain and QEMU extended) and pointer events. Also
//! the test guest's display pattern, so that tests compare pixel for pixel.

// Each test crate uses the part it needs.
#![allow(dead_code)]

use std::fmt;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use des::Des;
use des::cipher::{BlockEncrypt, KeyInit, generic_array::GenericArray};
use flate2::{Decompress, FlushDecompress};

/// Encoding numbers for [`VncClient::set_encodings`].
pub mod encoding {
    pub const RAW: i32 = 0;
    pub const COPY_RECT: i32 = 1;
    pub const ZRLE: i32 = 16;
    pub const DESKTOP_SIZE: i32 = -223;
    pub const QEMU_EXT_KEY: i32 = -258;
    pub const EXT_DESKTOP_SIZE: i32 = -308;

    /// Everything the tests' client understands, in its order of preference.
    pub const ALL: [i32; 6] = [
        ZRLE,
        COPY_RECT,
        RAW,
        EXT_DESKTOP_SIZE,
        DESKTOP_SIZE,
        QEMU_EXT_KEY,
    ];
}

/// Largest screen the client accepts (pixels), so that a server cannot make
/// it allocate without bound.
const MAX_PIXELS: usize = 16 << 20;
/// Largest string (desktop name, failure reason) the client reads.
const MAX_STRING: usize = 64 << 10;
/// Largest compressed ZRLE rectangle the client reads.
const MAX_ZRLE: usize = 64 << 20;
/// How long the rest of a message may take once its first byte arrived.
const MESSAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection to the server: TCP or a Unix socket.
pub enum Transport {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl From<TcpStream> for Transport {
    fn from(s: TcpStream) -> Self {
        Transport::Tcp(s)
    }
}

impl From<UnixStream> for Transport {
    fn from(s: UnixStream) -> Self {
        Transport::Unix(s)
    }
}

impl Transport {
    fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.set_read_timeout(t),
            Transport::Unix(s) => s.set_read_timeout(t),
        }
    }
}

impl Read for Transport {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.read(buf),
            Transport::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Transport {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Tcp(s) => s.write(buf),
            Transport::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.flush(),
            Transport::Unix(s) => s.flush(),
        }
    }
}

/// The transport, counting what it received.
struct Counted {
    inner: Transport,
    received: u64,
}

impl Read for Counted {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.received += n as u64;
        Ok(n)
    }
}

/// Why a connection could not be set up.
#[derive(Debug)]
pub enum VncError {
    Io(io::Error),
    /// The server broke the protocol or offered nothing the client speaks.
    Protocol(String),
    /// The server refused the connection or the password; its reason.
    Refused(String),
}

impl fmt::Display for VncError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VncError::Io(e) => write!(f, "i/o: {e}"),
            VncError::Protocol(m) => write!(f, "protocol: {m}"),
            VncError::Refused(m) => write!(f, "refused: {m}"),
        }
    }
}

impl std::error::Error for VncError {}

impl From<io::Error> for VncError {
    fn from(e: io::Error) -> Self {
        VncError::Io(e)
    }
}

impl From<VncError> for io::Error {
    fn from(e: VncError) -> Self {
        match e {
            VncError::Io(e) => e,
            other => io::Error::other(other.to_string()),
        }
    }
}

fn bad(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

/// One rectangle of a framebuffer update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u16,
    pub y: u16,
    pub w: u16,
    pub h: u16,
    pub encoding: i32,
}

/// What one framebuffer update carried.
#[derive(Debug, Default)]
pub struct Update {
    pub rects: Vec<Rect>,
    /// A DesktopSize or ExtendedDesktopSize rectangle changed the size.
    pub resized: bool,
    /// The server announced QEMU extended key events.
    pub qemu_ext_key: bool,
}

pub struct VncClient {
    reader: BufReader<Counted>,
    width: u32,
    height: u32,
    /// 0x00RRGGBB, row-major.
    frame: Vec<u32>,
    name: String,
    /// ZRLE's zlib stream lasts as long as the connection.
    zlib: Decompress,
    qemu_ext_key: bool,
}

/// The VNC authentication response: the challenge encrypted with DES (ECB),
/// the key being the password's first 8 bytes (zero padded), each byte's bits
/// in reverse order.
fn vnc_auth_response(password: &[u8], challenge: &[u8; 16]) -> [u8; 16] {
    let mut key = [0u8; 8];
    for (k, p) in key.iter_mut().zip(password) {
        *k = p.reverse_bits();
    }
    let cipher = Des::new(GenericArray::from_slice(&key));
    let mut out = *challenge;
    for block in out.chunks_exact_mut(8) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    out
}

impl VncClient {
    /// Connects over TCP without a password.
    pub fn connect_tcp(addr: impl ToSocketAddrs) -> io::Result<Self> {
        let s = TcpStream::connect(addr)?;
        s.set_nodelay(true)?;
        Ok(Self::connect_with(s, None)?)
    }

    /// Connects to a Unix socket without a password.
    pub fn connect_unix(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::connect_with(UnixStream::connect(path)?, None)?)
    }

    /// The RFB 3.8 handshake on `stream`: security None, or VNC
    /// authentication with `password`; asks for 32-bit 0x00RRGGBB pixels.
    pub fn connect_with(
        stream: impl Into<Transport>,
        password: Option<&str>,
    ) -> Result<Self, VncError> {
        let stream = stream.into();
        stream.set_read_timeout(Some(MESSAGE_TIMEOUT))?;
        let mut c = VncClient {
            reader: BufReader::with_capacity(
                1 << 16,
                Counted {
                    inner: stream,
                    received: 0,
                },
            ),
            width: 0,
            height: 0,
            frame: Vec::new(),
            name: String::new(),
            zlib: Decompress::new(true),
            qemu_ext_key: false,
        };
        let mut version = [0u8; 12];
        c.reader.read_exact(&mut version)?;
        if &version[..4] != b"RFB " || version[11] != b'\n' {
            return Err(VncError::Protocol(format!(
                "not an RFB server: {:?}",
                String::from_utf8_lossy(&version)
            )));
        }
        if version[4..11] < b"003.008"[..] {
            return Err(VncError::Protocol(format!(
                "server speaks {}, want 3.8",
                String::from_utf8_lossy(&version[4..11])
            )));
        }
        c.send(b"RFB 003.008\n")?;
        let n = c.u8()?;
        if n == 0 {
            let reason = c.string()?;
            return Err(VncError::Refused(reason));
        }
        let mut types = vec![0u8; usize::from(n)];
        c.reader.read_exact(&mut types)?;
        let wanted = if password.is_some() { 2 } else { 1 };
        if !types.contains(&wanted) {
            return Err(VncError::Protocol(format!(
                "server offers security types {types:?}, want {wanted}"
            )));
        }
        c.send(&[wanted])?;
        if let Some(pw) = password {
            let mut challenge = [0u8; 16];
            c.reader.read_exact(&mut challenge)?;
            c.send(&vnc_auth_response(pw.as_bytes(), &challenge))?;
        }
        if c.u32()? != 0 {
            let reason = c.string()?;
            return Err(VncError::Refused(reason));
        }
        c.send(&[1])?; // ClientInit: shared
        let w = u32::from(c.u16()?);
        let h = u32::from(c.u16()?);
        let mut server_format = [0u8; 16];
        c.reader.read_exact(&mut server_format)?;
        c.name = c.string()?;
        c.resize(w, h)?;
        // SetPixelFormat: 32 bits, depth 24, little endian, true colour,
        // 255 levels each, red at bit 16, green at 8, blue at 0.
        c.send(&[
            0, 0, 0, 0, 32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 16, 8, 0, 0, 0, 0,
        ])?;
        Ok(c)
    }

    pub fn size(&self) -> (u32, u32) {
        (self.width, self.height)
    }

    /// The desktop name of ServerInit.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The local copy of the screen, 0x00RRGGBB, row-major.
    pub fn frame(&self) -> &[u32] {
        &self.frame
    }

    /// Bytes received from the server so far.
    pub fn bytes_received(&self) -> u64 {
        self.reader.get_ref().received
    }

    /// Whether the server has announced QEMU extended key events.
    pub fn has_qemu_ext_key(&self) -> bool {
        self.qemu_ext_key
    }

    pub fn set_encodings(&mut self, encodings: &[i32]) -> io::Result<()> {
        let n = u16::try_from(encodings.len()).map_err(|_| bad("too many encodings"))?;
        let mut m = vec![2, 0];
        m.extend_from_slice(&n.to_be_bytes());
        for e in encodings {
            m.extend_from_slice(&e.to_be_bytes());
        }
        self.send(&m)
    }

    /// FramebufferUpdateRequest for the whole screen.
    pub fn request_update(&mut self, incremental: bool) -> io::Result<()> {
        let (w, h) = (self.width as u16, self.height as u16);
        let mut m = vec![3, u8::from(incremental), 0, 0, 0, 0];
        m.extend_from_slice(&w.to_be_bytes());
        m.extend_from_slice(&h.to_be_bytes());
        self.send(&m)
    }

    /// KeyEvent with an X keysym.
    pub fn key(&mut self, keysym: u32, down: bool) -> io::Result<()> {
        let mut m = vec![4, u8::from(down), 0, 0];
        m.extend_from_slice(&keysym.to_be_bytes());
        self.send(&m)
    }

    /// QEMU extended key event: keysym and QEMU key number (XT scan code,
    /// 0xe0 prefix as bit 7 of a second byte: 0xe01d is 0x9d).
    pub fn qemu_key(&mut self, keysym: u32, qnum: u32, down: bool) -> io::Result<()> {
        let mut m = vec![255, 0, 0, u8::from(down)];
        m.extend_from_slice(&keysym.to_be_bytes());
        m.extend_from_slice(&qnum.to_be_bytes());
        self.send(&m)
    }

    /// PointerEvent; `buttons` bit 0 left, 1 middle, 2 right, 3/4 wheel.
    pub fn pointer(&mut self, x: u16, y: u16, buttons: u8) -> io::Result<()> {
        let mut m = vec![5, buttons];
        m.extend_from_slice(&x.to_be_bytes());
        m.extend_from_slice(&y.to_be_bytes());
        self.send(&m)
    }

    /// Reads server messages until a framebuffer update has been applied.
    /// `timeout` bounds the wait for each message to start; an error means
    /// nothing arrived in time (the connection stays usable) or the server
    /// broke the protocol (it does not).
    pub fn read_update(&mut self, timeout: Duration) -> io::Result<Update> {
        let end = Instant::now() + timeout;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(io::Error::new(io::ErrorKind::TimedOut, "no update"));
            }
            self.reader.get_ref().inner.set_read_timeout(Some(left))?;
            let got = self.reader.fill_buf().map(|b| b.len());
            self.reader
                .get_ref()
                .inner
                .set_read_timeout(Some(MESSAGE_TIMEOUT))?;
            match got {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(io::Error::new(io::ErrorKind::TimedOut, "no update"));
                }
                Err(e) => return Err(e),
            }
            match self.u8()? {
                0 => return self.framebuffer_update(),
                1 => {
                    // SetColourMapEntries: padding, first, count, 6 bytes each
                    self.skip(3)?;
                    let n = self.u16()?;
                    self.skip(6 * u64::from(n))?;
                }
                2 => {} // Bell
                3 => {
                    // ServerCutText
                    self.skip(3)?;
                    let n = self.u32()?;
                    self.skip(u64::from(n))?;
                }
                t => return Err(bad(format!("unknown server message {t}"))),
            }
        }
    }

    /// Requests incremental updates and applies them until `done` holds for
    /// the client or `timeout` passes; returns whether it held.
    pub fn update_until(
        &mut self,
        timeout: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) -> io::Result<bool> {
        let end = Instant::now() + timeout;
        self.request_update(true)?;
        while !done(self) {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            match self.read_update(left) {
                Ok(_) => self.request_update(true)?,
                Err(e) if e.kind() == io::ErrorKind::TimedOut => return Ok(done(self)),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn framebuffer_update(&mut self) -> io::Result<Update> {
        self.skip(1)?;
        let n = self.u16()?;
        let mut up = Update::default();
        for _ in 0..n {
            let r = Rect {
                x: self.u16()?,
                y: self.u16()?,
                w: self.u16()?,
                h: self.u16()?,
                encoding: self.u32()? as i32,
            };
            match r.encoding {
                encoding::RAW => self.raw_rect(&r)?,
                encoding::COPY_RECT => self.copy_rect(&r)?,
                encoding::ZRLE => self.zrle_rect(&r)?,
                encoding::DESKTOP_SIZE => {
                    self.resize(r.w.into(), r.h.into())?;
                    up.resized = true;
                }
                encoding::EXT_DESKTOP_SIZE => {
                    let screens = self.u8()?;
                    self.skip(3 + 16 * u64::from(screens))?;
                    // x: reason, y: status; a non-zero status answers a
                    // request of the client's and changes nothing
                    if r.y == 0 {
                        self.resize(r.w.into(), r.h.into())?;
                        up.resized = true;
                    }
                }
                encoding::QEMU_EXT_KEY => {
                    self.qemu_ext_key = true;
                    up.qemu_ext_key = true;
                }
                e => return Err(bad(format!("rectangle with encoding {e}, not asked for"))),
            }
            up.rects.push(r);
        }
        Ok(up)
    }

    fn resize(&mut self, w: u32, h: u32) -> io::Result<()> {
        let pixels = w as usize * h as usize;
        if pixels > MAX_PIXELS {
            return Err(bad(format!("screen {w}x{h} too large")));
        }
        self.width = w;
        self.height = h;
        self.frame = vec![0; pixels];
        Ok(())
    }

    fn check_rect(&self, x: u16, y: u16, w: u16, h: u16) -> io::Result<()> {
        if u32::from(x) + u32::from(w) > self.width || u32::from(y) + u32::from(h) > self.height {
            return Err(bad(format!(
                "rectangle {w}x{h}+{x}+{y} outside the {}x{} screen",
                self.width, self.height
            )));
        }
        Ok(())
    }

    fn raw_rect(&mut self, r: &Rect) -> io::Result<()> {
        self.check_rect(r.x, r.y, r.w, r.h)?;
        let mut row = vec![0u8; usize::from(r.w) * 4];
        let fw = self.width as usize;
        for j in 0..usize::from(r.h) {
            self.reader.read_exact(&mut row)?;
            let start = (usize::from(r.y) + j) * fw + usize::from(r.x);
            for (dst, px) in self.frame[start..start + usize::from(r.w)]
                .iter_mut()
                .zip(row.chunks_exact(4))
            {
                *dst = u32::from_le_bytes([px[0], px[1], px[2], 0]);
            }
        }
        Ok(())
    }

    fn copy_rect(&mut self, r: &Rect) -> io::Result<()> {
        let (sx, sy) = (self.u16()?, self.u16()?);
        self.check_rect(r.x, r.y, r.w, r.h)?;
        self.check_rect(sx, sy, r.w, r.h)?;
        let fw = self.width as usize;
        let w = usize::from(r.w);
        let mut tmp = Vec::with_capacity(w * usize::from(r.h));
        for j in 0..usize::from(r.h) {
            let s = (usize::from(sy) + j) * fw + usize::from(sx);
            tmp.extend_from_slice(&self.frame[s..s + w]);
        }
        for (j, src) in tmp.chunks_exact(w.max(1)).enumerate() {
            let d = (usize::from(r.y) + j) * fw + usize::from(r.x);
            self.frame[d..d + w].copy_from_slice(src);
        }
        Ok(())
    }

    fn zrle_rect(&mut self, r: &Rect) -> io::Result<()> {
        self.check_rect(r.x, r.y, r.w, r.h)?;
        let len = self.u32()? as usize;
        if len > MAX_ZRLE {
            return Err(bad(format!("ZRLE rectangle of {len} bytes")));
        }
        let mut data = vec![0u8; len];
        self.reader.read_exact(&mut data)?;
        // Worst case: raw tiles, 3 bytes a pixel plus a byte a tile.
        let limit = usize::from(r.w) * usize::from(r.h) * 3 + 4096;
        let plain = inflate(&mut self.zlib, &data, limit)?;
        let width = self.width as usize;
        decode_zrle(&plain, &mut self.frame, width, r)
    }

    fn send(&mut self, b: &[u8]) -> io::Result<()> {
        self.reader.get_mut().inner.write_all(b)
    }

    fn u8(&mut self) -> io::Result<u8> {
        let mut b = [0u8; 1];
        self.reader.read_exact(&mut b)?;
        Ok(b[0])
    }

    fn u16(&mut self) -> io::Result<u16> {
        let mut b = [0u8; 2];
        self.reader.read_exact(&mut b)?;
        Ok(u16::from_be_bytes(b))
    }

    fn u32(&mut self) -> io::Result<u32> {
        let mut b = [0u8; 4];
        self.reader.read_exact(&mut b)?;
        Ok(u32::from_be_bytes(b))
    }

    /// A u32 length and that many bytes of text.
    fn string(&mut self) -> io::Result<String> {
        let n = self.u32()? as usize;
        if n > MAX_STRING {
            return Err(bad(format!("string of {n} bytes")));
        }
        let mut b = vec![0u8; n];
        self.reader.read_exact(&mut b)?;
        Ok(String::from_utf8_lossy(&b).into_owned())
    }

    fn skip(&mut self, n: u64) -> io::Result<()> {
        let got = io::copy(&mut (&mut self.reader).take(n), &mut io::sink())?;
        if got < n {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }
}

/// Inflates all of `data` with the connection's zlib stream; more than
/// `limit` bytes out is an error.
fn inflate(z: &mut Decompress, data: &[u8], limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(limit.min(1 << 20));
    let mut used = 0usize;
    loop {
        if out.len() == out.capacity() {
            if out.len() >= limit {
                return Err(bad("ZRLE rectangle inflates beyond its size"));
            }
            out.reserve((limit - out.len()).min(1 << 20));
        }
        let (in0, out0) = (z.total_in(), out.len());
        z.decompress_vec(&data[used..], &mut out, FlushDecompress::Sync)
            .map_err(|e| bad(format!("ZRLE inflate: {e}")))?;
        used += (z.total_in() - in0) as usize;
        let stalled = z.total_in() == in0 && out.len() == out0;
        if used >= data.len() && out.len() < out.capacity() {
            return Ok(out);
        }
        if stalled {
            return Err(bad("ZRLE inflate makes no progress"));
        }
    }
}

/// Reads the decompressed ZRLE data of one rectangle.
struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn u8(&mut self) -> io::Result<u8> {
        let b = *self
            .data
            .get(self.pos)
            .ok_or_else(|| bad("ZRLE data ends early"))?;
        self.pos += 1;
        Ok(b)
    }

    /// A compressed pixel: the low three bytes of the 32-bit pixel.
    fn cpixel(&mut self) -> io::Result<u32> {
        let b = self
            .data
            .get(self.pos..self.pos + 3)
            .ok_or_else(|| bad("ZRLE data ends early"))?;
        self.pos += 3;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], 0]))
    }

    /// Run length: bytes of 255 summed up to the first other byte, plus one.
    fn run(&mut self, left: usize) -> io::Result<usize> {
        let mut n = 1usize;
        loop {
            let b = self.u8()?;
            n += usize::from(b);
            if n > left {
                return Err(bad("ZRLE run beyond its tile"));
            }
            if b != 255 {
                return Ok(n);
            }
        }
    }
}

/// Decodes the 64x64 tiles of rectangle `r` (inside the frame, checked by
/// the caller) into `frame` of width `fw`.
fn decode_zrle(data: &[u8], frame: &mut [u32], fw: usize, r: &Rect) -> io::Result<()> {
    let mut c = Cursor { data, pos: 0 };
    let (rx, ry, rw, rh) = (
        usize::from(r.x),
        usize::from(r.y),
        usize::from(r.w),
        usize::from(r.h),
    );
    let mut tile = Vec::with_capacity(64 * 64);
    for ty in (0..rh).step_by(64) {
        for tx in (0..rw).step_by(64) {
            let (tw, th) = ((rw - tx).min(64), (rh - ty).min(64));
            let n = tw * th;
            tile.clear();
            let sub = c.u8()?;
            match sub {
                0 => {
                    for _ in 0..n {
                        tile.push(c.cpixel()?);
                    }
                }
                1 => {
                    let p = c.cpixel()?;
                    tile.resize(n, p);
                }
                2..=16 => {
                    let palette = (0..sub)
                        .map(|_| c.cpixel())
                        .collect::<io::Result<Vec<_>>>()?;
                    let bits = match sub {
                        2 => 1,
                        3..=4 => 2,
                        _ => 4,
                    };
                    for _ in 0..th {
                        let (mut byte, mut have) = (0u8, 0);
                        for _ in 0..tw {
                            if have == 0 {
                                byte = c.u8()?;
                                have = 8;
                            }
                            have -= bits;
                            let i = usize::from(byte >> have) & ((1 << bits) - 1);
                            let p = palette.get(i).ok_or_else(|| bad("ZRLE palette index"))?;
                            tile.push(*p);
                        }
                    }
                }
                128 => {
                    while tile.len() < n {
                        let p = c.cpixel()?;
                        let run = c.run(n - tile.len())?;
                        tile.resize(tile.len() + run, p);
                    }
                }
                130..=255 => {
                    let palette = (0..sub - 128)
                        .map(|_| c.cpixel())
                        .collect::<io::Result<Vec<_>>>()?;
                    while tile.len() < n {
                        let b = c.u8()?;
                        let p = *palette
                            .get(usize::from(b & 0x7f))
                            .ok_or_else(|| bad("ZRLE palette index"))?;
                        let run = if b & 0x80 != 0 {
                            c.run(n - tile.len())?
                        } else {
                            1
                        };
                        tile.resize(tile.len() + run, p);
                    }
                }
                s => return Err(bad(format!("ZRLE subencoding {s}"))),
            }
            for (j, row) in tile.chunks_exact(tw).enumerate() {
                let d = (ry + ty + j) * fw + rx + tx;
                frame
                    .get_mut(d..d + tw)
                    .ok_or_else(|| bad("ZRLE tile outside the screen"))?
                    .copy_from_slice(row);
            }
        }
    }
    Ok(())
}

/// The test guest's display pattern (compat-tests/guest/testos/README.md,
/// Display) for a `w`x`h` mode, shifted left by `shift` columns (the
/// `display-loop` frame number; 0 for the `display` check):
/// pixel(x, y) = R << 16 | G << 8 | B of column (x + shift) mod w, where
/// R = floor(x * 255 / (w - 1)), G = floor(y * 255 / (h - 1)) (0 for a
/// single column or row), B = 0xff if bit 5 of x and of y differ, else 0.
pub fn testos_pattern_shifted(w: u32, h: u32, shift: u32) -> Vec<u32> {
    let (w, h) = (w as usize, h as usize);
    let ramp = |i: usize, n: usize| if n > 1 { (i * 255 / (n - 1)) as u32 } else { 0 };
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        for x in 0..w {
            let sx = (x + shift as usize) % w;
            let b = if ((sx >> 5) ^ (y >> 5)) & 1 == 1 {
                0xff
            } else {
                0
            };
            out.push(ramp(sx, w) << 16 | ramp(y, h) << 8 | b);
        }
    }
    out
}

/// The pattern the `display` check draws.
pub fn testos_pattern(w: u32, h: u32) -> Vec<u32> {
    testos_pattern_shifted(w, h, 0)
}

/// The checksum the guest prints: c = c * 31 + pixel over the frame in
/// row-major order, modulo 2^32.
pub fn testos_checksum(frame: &[u32]) -> u32 {
    frame
        .iter()
        .fold(0u32, |c, &p| c.wrapping_mul(31).wrapping_add(p))
}

/// The first pixel where `a` and `b` differ, as (index, a, b).
pub fn first_difference(a: &[u32], b: &[u32]) -> Option<(usize, u32, u32)> {
    if a.len() != b.len() {
        return Some((a.len().min(b.len()), 0, 0));
    }
    a.iter()
        .zip(b)
        .enumerate()
        .find(|(_, (x, y))| x != y)
        .map(|(i, (x, y))| (i, *x, *y))
}

/// The first whole line of a serial log (its newline written: the guest
/// prints a character at a time) from line `from` on that starts with
/// `prefix`.
pub fn whole_line<'a>(log: &'a str, from: usize, prefix: &str) -> Option<&'a str> {
    log.split_inclusive('\n')
        .skip(from)
        .filter_map(|l| l.strip_suffix('\n'))
        .find(|l| l.starts_with(prefix))
}

/// The checksum of a `PASS display ...` or `PASS gpu ...` line.
pub fn checksum_of(line: &str) -> u32 {
    let hex = line
        .split_whitespace()
        .find_map(|w| w.strip_prefix("checksum=0x"))
        .unwrap_or_else(|| panic!("no checksum in {line:?}"));
    u32::from_str_radix(hex, 16).expect("checksum")
}

/// Updates the client until it shows the test guest's pattern for `w`x`h`;
/// panics with the first differing pixel otherwise.
pub fn expect_pattern(c: &mut VncClient, w: u32, h: u32) {
    let want = testos_pattern(w, h);
    let ok = c
        .update_until(Duration::from_secs(30), |c| {
            c.size() == (w, h) && c.frame() == want.as_slice()
        })
        .expect("VNC updates");
    if !ok {
        let diff = first_difference(c.frame(), &want);
        panic!(
            "client shows {:?}, want {w}x{h} with the pattern; first difference (index, got, want): {diff:x?}",
            c.size()
        );
    }
}

/// Width, height and 0x00RRGGBB pixels of a binary PPM (a screendump).
pub fn parse_ppm(data: &[u8]) -> (u32, u32, Vec<u32>) {
    let mut fields = Vec::new();
    let mut pos = 0;
    while fields.len() < 4 {
        while data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        let start = pos;
        while !data[pos].is_ascii_whitespace() {
            pos += 1;
        }
        fields.push(String::from_utf8_lossy(&data[start..pos]).to_string());
    }
    pos += 1;
    assert_eq!(fields[0], "P6");
    assert_eq!(fields[3], "255");
    let w: u32 = fields[1].parse().unwrap();
    let h: u32 = fields[2].parse().unwrap();
    let pixels = data[pos..]
        .chunks_exact(3)
        .map(|p| u32::from(p[0]) << 16 | u32::from(p[1]) << 8 | u32::from(p[2]))
        .collect::<Vec<_>>();
    assert_eq!(pixels.len(), (w * h) as usize);
    (w, h, pixels)
}

#[cfg(test)]
mod vnc_common_tests {
    use super::*;
    use flate2::{Compress, Compression, FlushCompress};

    #[test]
    fn auth_response_reverses_key_bits_and_encrypts_with_des() {
        // The DES test key 133457799BBCDFF1 comes out of these password bytes
        // once each byte's bits are reversed; FIPS's vector then applies.
        let password = [0xc8, 0x2c, 0xea, 0x9e, 0xd9, 0x3d, 0xfb, 0x8f];
        let plain = [0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef];
        let mut challenge = [0u8; 16];
        challenge[..8].copy_from_slice(&plain);
        challenge[8..].copy_from_slice(&plain);
        let r = vnc_auth_response(&password, &challenge);
        let want = [0x85, 0xe8, 0x13, 0x54, 0x0f, 0x0a, 0xb4, 0x05];
        assert_eq!(r[..8], want);
        assert_eq!(r[8..], want);
        // Bytes past the eighth do not count.
        let mut longer = password.to_vec();
        longer.push(b'x');
        assert_eq!(vnc_auth_response(&longer, &challenge), r);
    }

    #[test]
    fn pattern_matches_the_guests_checksum_and_formula() {
        let p = testos_pattern(640, 480);
        // what the guest printed: PASS display 640x480x32 ... checksum=0x84d28000
        assert_eq!(testos_checksum(&p), 0x84d2_8000);
        assert_eq!(testos_checksum(&testos_pattern(800, 600)), 0x19df_8000);
        assert_eq!(testos_checksum(&testos_pattern(1024, 768)), 0x99e0_0000);
        assert_eq!(p[0], 0);
        assert_eq!(p[32], 0x0c_00ff); // R = floor(32 * 255 / 639) = 12, odd 32-block
        assert_eq!(p[639], 0xff_00ff); // block 19 of columns, block 0 of rows
        assert_eq!(p[479 * 640], 0x00_ff00); // block 0 of columns, block 14 of rows
        let shifted = testos_pattern_shifted(640, 480, 1);
        assert_eq!(shifted[0], p[1]);
        assert_eq!(shifted[639], p[0]);
        assert_eq!(testos_pattern(1, 1), vec![0]);
    }

    fn zlib_sync(z: &mut Compress, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len() + 1024);
        z.compress_vec(data, &mut out, FlushCompress::Sync).unwrap();
        out
    }

    fn cp(p: u32) -> [u8; 3] {
        let b = p.to_le_bytes();
        [b[0], b[1], b[2]]
    }

    #[test]
    fn zrle_tiles_decode_through_one_zlib_stream() {
        // A 70x2 rectangle: two tiles, 64x2 and 6x2.
        let r = Rect {
            x: 1,
            y: 1,
            w: 70,
            h: 2,
            encoding: encoding::ZRLE,
        };
        let (a, b) = (0x11_2233, 0xaa_bbcc);
        let mut plain = vec![128]; // tile 1: plain RLE, 100 of a, 28 of b
        plain.extend(cp(a));
        plain.push(99);
        plain.extend(cp(b));
        plain.push(27);
        plain.push(2); // tile 2: 2-colour palette, 1 bit an index, rows padded
        plain.extend(cp(a));
        plain.extend(cp(b));
        plain.extend([0b1010_1000, 0b0101_0100]);
        let mut z = Compress::new(Compression::default(), true);
        let first = zlib_sync(&mut z, &plain);
        let fw = 72;
        let mut frame = vec![0u32; fw * 3];
        let mut d = Decompress::new(true);
        let out = inflate(&mut d, &first, 70 * 2 * 3 + 4096).unwrap();
        decode_zrle(&out, &mut frame, fw, &r).unwrap();
        let row1 = &frame[fw + 1..fw + 71];
        assert!(row1[..64].iter().all(|&p| p == a));
        assert_eq!(row1[64..], [b, a, b, a, b, a]);
        let row2 = &frame[2 * fw + 1..2 * fw + 71];
        assert!(row2[..36].iter().all(|&p| p == a));
        assert!(row2[36..64].iter().all(|&p| p == b));
        assert_eq!(row2[64..], [a, b, a, b, a, b]);
        assert_eq!(frame[0], 0);

        // The same stream goes on: a palette-RLE tile (subencoding 130).
        let r2 = Rect { w: 3, h: 1, ..r };
        let mut plain2 = vec![130];
        plain2.extend(cp(b));
        plain2.extend(cp(a));
        plain2.extend([0x81, 1, 0]); // a twice (run of 2), then b once
        let second = zlib_sync(&mut z, &plain2);
        let out2 = inflate(&mut d, &second, 4096).unwrap();
        decode_zrle(&out2, &mut frame, fw, &r2).unwrap();
        assert_eq!(frame[fw + 1..fw + 4], [a, a, b]);
    }

    /// A server end for the client: version, security None, ServerInit for
    /// a 4x2 screen, then `then`.
    fn fake_server(then: Vec<u8>) -> UnixStream {
        let (client, mut server) = UnixStream::pair().unwrap();
        std::thread::spawn(move || {
            let mut m = b"RFB 003.008\n".to_vec();
            m.extend([1, 1]); // one security type: None
            m.extend(0u32.to_be_bytes()); // SecurityResult OK
            m.extend([0, 4, 0, 2]); // 4x2
            m.extend([0u8; 16]);
            m.extend(4u32.to_be_bytes());
            m.extend(b"fake");
            m.extend(then);
            server.write_all(&m).unwrap();
            // keep the socket open while the client reads
            let mut sink = Vec::new();
            let _ = server.read_to_end(&mut sink);
        });
        client
    }

    fn rect_header(x: u16, y: u16, w: u16, h: u16, enc: i32) -> Vec<u8> {
        [x, y, w, h]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .chain(enc.to_be_bytes())
            .collect()
    }

    #[test]
    fn raw_copy_rect_and_desktop_size_apply_to_the_frame() {
        let mut m = vec![0, 0, 0, 2]; // FramebufferUpdate, 2 rectangles
        m.extend(rect_header(0, 0, 2, 1, encoding::RAW));
        m.extend([0x33, 0x22, 0x11, 0xee, 0x66, 0x55, 0x44, 0xee]); // B G R x
        m.extend(rect_header(2, 1, 2, 1, encoding::COPY_RECT));
        m.extend([0, 0, 0, 0]); // from (0, 0)
        m.push(2); // Bell, skipped
        m.extend([0, 0, 0, 2]);
        m.extend(rect_header(0, 0, 0, 0, encoding::QEMU_EXT_KEY));
        m.extend(rect_header(0, 0, 3, 3, encoding::EXT_DESKTOP_SIZE));
        m.extend([1, 0, 0, 0]);
        m.extend([0u8; 16]);
        m.extend([0, 0, 0, 1]); // outside the new 3x3 screen: an error
        m.extend(rect_header(2, 2, 2, 1, encoding::RAW));
        let mut c = VncClient::connect_with(fake_server(m), None).unwrap();
        assert_eq!((c.size(), c.name()), ((4, 2), "fake"));
        let up = c.read_update(Duration::from_secs(5)).unwrap();
        assert_eq!(up.rects.len(), 2);
        assert_eq!(
            c.frame(),
            [0x112233, 0x445566, 0, 0, 0, 0, 0x112233, 0x445566]
        );
        let up = c.read_update(Duration::from_secs(5)).unwrap();
        assert!(up.resized && up.qemu_ext_key && c.has_qemu_ext_key());
        assert_eq!(c.size(), (3, 3));
        assert_eq!(c.frame(), [0; 9]);
        assert!(c.read_update(Duration::from_secs(5)).is_err());
    }

    #[test]
    fn refusal_carries_the_servers_reason_and_silence_times_out() {
        let (client, mut server) = UnixStream::pair().unwrap();
        let mut m = b"RFB 003.008\n".to_vec();
        m.extend([1, 2]); // VNC authentication only
        m.extend([7u8; 16]);
        m.extend(1u32.to_be_bytes());
        m.extend(22u32.to_be_bytes());
        m.extend(b"Authentication failed.");
        server.write_all(&m).unwrap();
        match VncClient::connect_with(client, Some("pw")) {
            Err(VncError::Refused(r)) => assert_eq!(r, "Authentication failed."),
            other => panic!("{:?}", other.err()),
        }
        let mut c = VncClient::connect_with(fake_server(Vec::new()), None).unwrap();
        let t = Instant::now();
        let e = c.read_update(Duration::from_millis(200)).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(t.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn zrle_rejects_runs_and_indices_out_of_range() {
        let r = Rect {
            x: 0,
            y: 0,
            w: 2,
            h: 1,
            encoding: encoding::ZRLE,
        };
        let mut frame = vec![0u32; 2];
        let mut long_run = vec![128];
        long_run.extend(cp(1));
        long_run.push(5); // 6 pixels into a tile of 2
        assert!(decode_zrle(&long_run, &mut frame, 2, &r).is_err());
        let mut bad_index = vec![130];
        bad_index.extend(cp(1));
        bad_index.extend(cp(2));
        bad_index.push(5);
        assert!(decode_zrle(&bad_index, &mut frame, 2, &r).is_err());
        assert!(decode_zrle(&[0, 1, 2], &mut frame, 2, &r).is_err());
        assert!(decode_zrle(&[17], &mut frame, 2, &r).is_err());
    }
}
