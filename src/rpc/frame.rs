//! Message framing: a 4-byte big-endian length that counts itself, a
//! 24-byte header, then the XDR payload.

use tokio::io::{AsyncRead, AsyncReadExt};

use super::xdr::{Reader, XResult, Xdr};

/// libvirt's main program.
pub const PROGRAM_REMOTE: u32 = 0x2000_8086;
/// QEMU-specific calls (monitor commands); not served.
pub const PROGRAM_QEMU: u32 = 0x2000_8087;
/// Keepalive pings.
pub const PROGRAM_KEEPALIVE: u32 = 0x6b65_6570;
/// Every program's version.
pub const PROTOCOL_VERSION: u32 = 1;

pub const KEEPALIVE_PING: i32 = 1;
pub const KEEPALIVE_PONG: i32 = 2;

/// Header size, without the length word.
pub const HEADER_LEN: usize = 24;
/// Largest message, without the length word.
pub const MESSAGE_MAX: usize = 32 * 1024 * 1024;
/// Largest stream data packet payload libvirt sends.
pub const STREAM_CHUNK_MAX: usize = 262_120;

/// Message types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MsgType {
    Call = 0,
    Reply = 1,
    Message = 2,
    Stream = 3,
    CallWithFds = 4,
    ReplyWithFds = 5,
    StreamHole = 6,
}

impl MsgType {
    pub fn from_u32(v: u32) -> Option<Self> {
        Some(match v {
            0 => MsgType::Call,
            1 => MsgType::Reply,
            2 => MsgType::Message,
            3 => MsgType::Stream,
            4 => MsgType::CallWithFds,
            5 => MsgType::ReplyWithFds,
            6 => MsgType::StreamHole,
            _ => return None,
        })
    }
}

/// Message status.
pub const STATUS_OK: u32 = 0;
pub const STATUS_ERROR: u32 = 1;
pub const STATUS_CONTINUE: u32 = 2;

/// The 24-byte header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub prog: u32,
    pub vers: u32,
    pub proc_: i32,
    pub mtype: u32,
    pub serial: u32,
    pub status: u32,
}

impl Header {
    /// A keepalive message (`KEEPALIVE_PING` or `KEEPALIVE_PONG`).
    pub fn keepalive(proc_: i32) -> Header {
        Header {
            prog: PROGRAM_KEEPALIVE,
            vers: PROTOCOL_VERSION,
            proc_,
            mtype: MsgType::Message as u32,
            serial: 0,
            status: STATUS_OK,
        }
    }

    /// A header answering `call` with `mtype` and `status`.
    pub fn answer(call: &Header, mtype: MsgType, status: u32) -> Header {
        Header {
            prog: call.prog,
            vers: call.vers,
            proc_: call.proc_,
            mtype: mtype as u32,
            serial: call.serial,
            status,
        }
    }
}

impl Xdr for Header {
    fn encode(&self, w: &mut Vec<u8>) {
        self.prog.encode(w);
        self.vers.encode(w);
        self.proc_.encode(w);
        self.mtype.encode(w);
        self.serial.encode(w);
        self.status.encode(w);
    }
    fn decode(r: &mut Reader<'_>) -> XResult<Self> {
        Ok(Header {
            prog: u32::decode(r)?,
            vers: u32::decode(r)?,
            proc_: i32::decode(r)?,
            mtype: u32::decode(r)?,
            serial: u32::decode(r)?,
            status: u32::decode(r)?,
        })
    }
}

/// A whole message on the wire: length word, header, payload.
pub fn encode(h: &Header, payload: &[u8]) -> Vec<u8> {
    let len = 4 + HEADER_LEN + payload.len();
    let mut w = Vec::with_capacity(len);
    (len as u32).encode(&mut w);
    h.encode(&mut w);
    w.extend_from_slice(payload);
    w
}

/// Why a connection's byte stream was rejected.
#[derive(Debug)]
pub enum FrameError {
    Io(std::io::Error),
    /// Length word below the header size or above the maximum.
    BadLength(u32),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::BadLength(n) => write!(f, "invalid message length {n}"),
        }
    }
}

/// Checks a length word (which counts itself).
pub fn check_length(len: u32) -> Result<usize, FrameError> {
    let n = len as usize;
    if !(4 + HEADER_LEN..=4 + MESSAGE_MAX).contains(&n) {
        return Err(FrameError::BadLength(len));
    }
    Ok(n - 4)
}

/// Reads one message; `Ok(None)` on a clean end of stream between messages.
pub async fn read_message<R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<Option<(Header, Vec<u8>)>, FrameError> {
    let mut lenb = [0u8; 4];
    match r.read_exact(&mut lenb).await {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(FrameError::Io(e)),
    }
    let body_len = check_length(u32::from_be_bytes(lenb))?;
    let mut body = vec![0u8; body_len];
    r.read_exact(&mut body).await.map_err(FrameError::Io)?;
    let (h, payload) = split(&body).ok_or(FrameError::BadLength(body_len as u32 + 4))?;
    Ok(Some((h, payload.to_vec())))
}

/// Splits a message body (after the length word) into header and payload.
pub fn split(body: &[u8]) -> Option<(Header, &[u8])> {
    let mut r = Reader::new(body);
    let h = Header::decode(&mut r).ok()?;
    Some((h, body.get(HEADER_LEN..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_list_call_from_the_reference() {
        let bytes: Vec<u8> = [0x1cu32, 0x2000_8086, 1, 0x42, 0, 0, 0]
            .iter()
            .flat_map(|w| w.to_be_bytes())
            .collect();
        let (h, p) = split(&bytes[4..]).unwrap();
        assert_eq!(h.prog, PROGRAM_REMOTE);
        assert_eq!(h.proc_, 66);
        assert_eq!(h.mtype, MsgType::Call as u32);
        assert!(p.is_empty());
        assert_eq!(encode(&h, &[]), bytes);
    }

    #[test]
    fn lengths_are_checked() {
        assert!(check_length(0).is_err());
        assert!(check_length(27).is_err());
        assert_eq!(check_length(28).unwrap(), 24);
        assert!(check_length((4 + MESSAGE_MAX) as u32).is_ok());
        assert!(check_length((5 + MESSAGE_MAX) as u32).is_err());
        assert!(check_length(u32::MAX).is_err());
    }

    #[tokio::test]
    async fn reader_handles_eof_truncation_and_bad_lengths() {
        let mut empty: &[u8] = &[];
        assert!(read_message(&mut empty).await.unwrap().is_none());
        let mut trunc: &[u8] = &[0, 0, 0, 40, 1, 2];
        assert!(read_message(&mut trunc).await.is_err());
        let mut small: &[u8] = &[0, 0, 0, 8, 1, 2, 3, 4];
        assert!(matches!(
            read_message(&mut small).await,
            Err(FrameError::BadLength(8))
        ));
        let h = Header {
            prog: PROGRAM_KEEPALIVE,
            vers: 1,
            proc_: KEEPALIVE_PING,
            mtype: MsgType::Message as u32,
            serial: 0,
            status: STATUS_OK,
        };
        let msg = encode(&h, &[1, 2, 3, 4]);
        let mut two: Vec<u8> = msg.clone();
        two.extend_from_slice(&msg);
        let mut s: &[u8] = &two;
        for _ in 0..2 {
            let (h2, p) = read_message(&mut s).await.unwrap().unwrap();
            assert_eq!(h2, h);
            assert_eq!(p, [1, 2, 3, 4]);
        }
        assert!(read_message(&mut s).await.unwrap().is_none());
    }

    #[test]
    fn msg_types() {
        for v in 0..7 {
            assert_eq!(MsgType::from_u32(v).unwrap() as u32, v);
        }
        assert!(MsgType::from_u32(7).is_none());
    }
}
