//! A client's byte stream: a TCP or Unix socket, optionally carrying
//! WebSocket frames, with deadlines on reads and a count of bytes sent.

use super::websocket::{self, Control, Decoder};
use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long one blocking socket read may wait before the caller looks
/// at its deadline again.
const READ_SLICE: Duration = Duration::from_millis(250);
/// A client that takes longer than this to take our data is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);

pub enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    pub fn try_clone(&self) -> io::Result<Socket> {
        Ok(match self {
            Socket::Tcp(s) => Socket::Tcp(s.try_clone()?),
            Socket::Unix(s) => Socket::Unix(s.try_clone()?),
        })
    }

    /// Ends the connection; a thread blocked reading it wakes up.
    pub fn shutdown(&self) {
        let _ = match self {
            Socket::Tcp(s) => s.shutdown(Shutdown::Both),
            Socket::Unix(s) => s.shutdown(Shutdown::Both),
        };
    }

    /// Who is on the other end, for logs.
    pub fn peer(&self) -> String {
        match self {
            Socket::Tcp(s) => s
                .peer_addr()
                .map_or_else(|_| "tcp client".into(), |a| a.to_string()),
            Socket::Unix(_) => "unix socket client".into(),
        }
    }

    fn set_read_timeout(&self, t: Duration) -> io::Result<()> {
        let t = Some(t.max(Duration::from_millis(1)));
        match self {
            Socket::Tcp(s) => s.set_read_timeout(t),
            Socket::Unix(s) => s.set_read_timeout(t),
        }
    }

    fn prepare(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => {
                s.set_nonblocking(false)?;
                s.set_nodelay(true)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
            }
            Socket::Unix(s) => {
                s.set_nonblocking(false)?;
                s.set_write_timeout(Some(WRITE_TIMEOUT))
            }
        }
    }

    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.read(buf),
            Socket::Unix(s) => s.read(buf),
        }
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.write_all(buf),
            Socket::Unix(s) => s.write_all(buf),
        }
    }
}

/// Byte counters a connection adds to: its own and the server's total.
#[derive(Clone, Default)]
pub struct Counters {
    pub client: Arc<AtomicU64>,
    pub total: Arc<AtomicU64>,
}

pub struct Conn {
    sock: Socket,
    /// Received stream bytes (WebSocket payload, when framed) not yet consumed.
    input: Vec<u8>,
    pos: usize,
    ws: Option<Decoder>,
    counters: Counters,
    frame: Vec<u8>,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)
}

pub fn deadline_error() -> io::Error {
    io::Error::new(ErrorKind::TimedOut, "client too slow")
}

impl Conn {
    pub fn new(sock: Socket, counters: Counters) -> io::Result<Conn> {
        sock.prepare()?;
        Ok(Conn {
            sock,
            input: Vec::new(),
            pos: 0,
            ws: None,
            counters,
            frame: Vec::new(),
        })
    }

    fn available(&self) -> usize {
        self.input.len() - self.pos
    }

    /// One socket read of at most `timeout`: Ok(false) when nothing came.
    fn fill(&mut self, timeout: Duration) -> io::Result<bool> {
        if self.pos == self.input.len() {
            self.input.clear();
            self.pos = 0;
        } else if self.pos > 65536 {
            self.input.drain(..self.pos);
            self.pos = 0;
        }
        let mut buf = [0u8; 16384];
        self.sock.set_read_timeout(timeout)?;
        let n = loop {
            match self.sock.read(&mut buf) {
                Ok(0) => {
                    return Err(io::Error::new(
                        ErrorKind::UnexpectedEof,
                        "client closed the connection",
                    ));
                }
                Ok(n) => break n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if timed_out(&e) => return Ok(false),
                Err(e) => return Err(e),
            }
        };
        let Some(ws) = &mut self.ws else {
            self.input.extend_from_slice(&buf[..n]);
            return Ok(true);
        };
        let mut controls = Vec::new();
        ws.feed(&buf[..n], &mut self.input, &mut controls)
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        for c in controls {
            match c {
                Control::Ping(payload) => self.write_frame(websocket::OP_PONG, &payload)?,
                Control::Close(payload) => {
                    let _ = self.write_frame(websocket::OP_CLOSE, payload.get(..2).unwrap_or(&[]));
                    return Err(io::Error::new(ErrorKind::UnexpectedEof, "websocket closed"));
                }
            }
        }
        Ok(true)
    }

    /// Waits up to `timeout` for stream bytes; true when some are ready.
    pub fn wait_readable(&mut self, timeout: Duration) -> io::Result<bool> {
        let end = Instant::now() + timeout;
        while self.available() == 0 {
            let left = end.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(false);
            }
            self.fill(left.min(READ_SLICE))?;
        }
        Ok(true)
    }

    fn wait_for(&mut self, n: usize, deadline: Instant) -> io::Result<()> {
        while self.available() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(deadline_error());
            }
            self.fill(left.min(READ_SLICE))?;
        }
        Ok(())
    }

    pub fn read_exact(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<()> {
        self.wait_for(buf.len(), deadline)?;
        buf.copy_from_slice(&self.input[self.pos..self.pos + buf.len()]);
        self.pos += buf.len();
        Ok(())
    }

    pub fn read_array<const N: usize>(&mut self, deadline: Instant) -> io::Result<[u8; N]> {
        let mut buf = [0u8; N];
        self.read_exact(&mut buf, deadline)?;
        Ok(buf)
    }

    /// Reads and drops `n` bytes without holding them all.
    pub fn skip(&mut self, mut n: usize, deadline: Instant) -> io::Result<()> {
        while n > 0 {
            let step = n.min(16384);
            self.wait_for(step, deadline)?;
            self.pos += step;
            n -= step;
        }
        Ok(())
    }

    /// Reads an HTTP request head up to its blank line and switches the
    /// connection to WebSocket framing; the head is returned without the
    /// blank line.
    pub fn read_http_head(&mut self, deadline: Instant) -> io::Result<String> {
        loop {
            let pending = &self.input[self.pos..];
            if let Some(end) = pending.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8_lossy(&pending[..end]).into_owned();
                self.pos += end + 4;
                return Ok(head);
            }
            if pending.len() > websocket::MAX_REQUEST {
                return Err(io::Error::new(
                    ErrorKind::InvalidData,
                    "HTTP request too long",
                ));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(deadline_error());
            }
            self.fill(left.min(READ_SLICE))?;
        }
    }

    /// From now on the stream is carried in WebSocket frames. Bytes the
    /// client sent right after its request are decoded as frames.
    pub fn start_websocket(&mut self) -> io::Result<()> {
        let early = self.input.split_off(self.pos);
        self.input.clear();
        self.pos = 0;
        let mut ws = Decoder::default();
        let mut controls = Vec::new();
        ws.feed(&early, &mut self.input, &mut controls)
            .map_err(|e| io::Error::new(ErrorKind::InvalidData, e))?;
        self.ws = Some(ws);
        Ok(())
    }

    /// Sends bytes outside any framing (the HTTP handshake).
    pub fn write_plain(&mut self, data: &[u8]) -> io::Result<()> {
        self.sock.write_all(data)?;
        self.count(data.len());
        Ok(())
    }

    fn write_frame(&mut self, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mut frame = std::mem::take(&mut self.frame);
        frame.clear();
        websocket::frame_header(opcode, payload.len(), &mut frame);
        let result = self
            .sock
            .write_all(&frame)
            .and_then(|()| self.sock.write_all(payload));
        self.count(frame.len() + payload.len());
        self.frame = frame;
        result
    }

    /// Sends stream bytes (as one binary message on a WebSocket).
    pub fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        if self.ws.is_some() {
            return self.write_frame(2, data);
        }
        self.sock.write_all(data)?;
        self.count(data.len());
        Ok(())
    }

    fn count(&self, n: usize) {
        self.counters.client.fetch_add(n as u64, Ordering::Relaxed);
        self.counters.total.fetch_add(n as u64, Ordering::Relaxed);
    }
}
