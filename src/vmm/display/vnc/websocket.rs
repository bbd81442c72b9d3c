//! WebSocket (RFC 6455) transport for browser clients such as noVNC: the
//! HTTP Upgrade handshake and the framing of the RFB byte stream into
//! binary messages.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;

/// The GUID RFC 6455 appends to the client's key.
const ACCEPT_GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The largest handshake request accepted.
pub const MAX_REQUEST: usize = 8192;

/// What a valid Upgrade request asked for.
#[derive(Debug, PartialEq, Eq)]
pub struct Upgrade {
    pub key: String,
    /// The client offered the `binary` subprotocol (noVNC does).
    pub binary_protocol: bool,
}

/// The Sec-WebSocket-Accept value for a Sec-WebSocket-Key.
pub fn accept_key(key: &str) -> String {
    let mut sha = sha1_smol::Sha1::new();
    sha.update(key.as_bytes());
    sha.update(ACCEPT_GUID.as_bytes());
    BASE64.encode(sha.digest().bytes())
}

/// Parses the HTTP request head (without the final blank line).
pub fn parse_upgrade(request: &str) -> Result<Upgrade, &'static str> {
    let mut lines = request.split("\r\n");
    let start = lines.next().unwrap_or("");
    let mut words = start.split(' ');
    if words.next() != Some("GET") || !words.nth(1).is_some_and(|v| v.starts_with("HTTP/1.")) {
        return Err("not an HTTP/1.x GET request");
    }
    let (mut key, mut upgrade, mut binary) = (None, false, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade = value.eq_ignore_ascii_case("websocket"),
            "sec-websocket-key" => key = Some(value.to_string()),
            "sec-websocket-protocol" => binary = value.split(',').any(|p| p.trim() == "binary"),
            _ => {}
        }
    }
    if !upgrade {
        return Err("no 'Upgrade: websocket' header");
    }
    let key = key
        .filter(|k| !k.is_empty())
        .ok_or("no Sec-WebSocket-Key header")?;
    Ok(Upgrade {
        key,
        binary_protocol: binary,
    })
}

/// The 101 response completing the handshake.
pub fn upgrade_response(up: &Upgrade) -> String {
    let protocol = if up.binary_protocol {
        "Sec-WebSocket-Protocol: binary\r\n"
    } else {
        ""
    };
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n{protocol}\r\n",
        accept_key(&up.key)
    )
}

pub const BAD_REQUEST: &str =
    "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";

const OP_CONTINUATION: u8 = 0;
const OP_TEXT: u8 = 1;
const OP_BINARY: u8 = 2;
pub const OP_CLOSE: u8 = 8;
const OP_PING: u8 = 9;
pub const OP_PONG: u8 = 10;

/// The header of an unmasked server frame carrying `len` bytes.
pub fn frame_header(opcode: u8, len: usize, out: &mut Vec<u8>) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&short.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A control frame the connection has to act on.
#[derive(Debug, PartialEq, Eq)]
pub enum Control {
    Ping(Vec<u8>),
    Close(Vec<u8>),
}

#[derive(Debug)]
enum State {
    Header,
    Payload {
        opcode: u8,
        remaining: u64,
        mask: [u8; 4],
        pos: usize,
    },
}

/// Decodes client frames incrementally, so a frame of any length passes
/// through without being held in memory whole.
#[derive(Debug)]
pub struct Decoder {
    state: State,
    header: Vec<u8>,
    control: Vec<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            state: State::Header,
            header: Vec::with_capacity(14),
            control: Vec::new(),
        }
    }
}

impl Decoder {
    /// Feeds bytes from the socket: message payload is appended to `data`,
    /// complete control frames to `controls`.
    pub fn feed(
        &mut self,
        mut input: &[u8],
        data: &mut Vec<u8>,
        controls: &mut Vec<Control>,
    ) -> Result<(), &'static str> {
        while !input.is_empty() {
            match &mut self.state {
                State::Header => {
                    let need = self.header_len();
                    let take = need.saturating_sub(self.header.len()).min(input.len());
                    self.header.extend_from_slice(&input[..take]);
                    input = &input[take..];
                    if self.header.get(1).is_some_and(|b| b & 0x80 == 0) {
                        return Err("unmasked client websocket frame");
                    }
                    if self.header.len() == self.header_len() {
                        self.start_payload(controls)?;
                    }
                }
                State::Payload {
                    opcode,
                    remaining,
                    mask,
                    pos,
                } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(input.len());
                    let sink = if *opcode >= OP_CLOSE {
                        &mut self.control
                    } else {
                        &mut *data
                    };
                    for &b in &input[..take] {
                        sink.push(b ^ mask[*pos % 4]);
                        *pos += 1;
                    }
                    input = &input[take..];
                    *remaining -= take as u64;
                    if *remaining == 0 {
                        let op = *opcode;
                        self.state = State::Header;
                        self.finish_control(op, controls);
                    }
                }
            }
        }
        Ok(())
    }

    /// Bytes of the header being read, as far as its first two bytes tell.
    fn header_len(&self) -> usize {
        match self.header.get(1).map(|b| b & 0x7f) {
            None => 2,
            Some(126) => 2 + 2 + 4,
            Some(127) => 2 + 8 + 4,
            Some(_) => 2 + 4,
        }
    }

    fn start_payload(&mut self, controls: &mut Vec<Control>) -> Result<(), &'static str> {
        let h = std::mem::take(&mut self.header);
        let (b0, b1) = (h[0], h[1]);
        if b0 & 0x70 != 0 {
            return Err("reserved websocket bits set");
        }
        let opcode = b0 & 0x0f;
        let (len, rest) = match b1 & 0x7f {
            126 => (u64::from(u16::from_be_bytes([h[2], h[3]])), &h[4..]),
            127 => (
                u64::from_be_bytes([h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]]),
                &h[10..],
            ),
            n => (u64::from(n), &h[2..]),
        };
        let mask = [rest[0], rest[1], rest[2], rest[3]];
        match opcode {
            OP_CONTINUATION | OP_BINARY => {}
            OP_TEXT => return Err("text websocket frames are not supported"),
            OP_CLOSE | OP_PING | OP_PONG => {
                if len > 125 || b0 & 0x80 == 0 {
                    return Err("malformed websocket control frame");
                }
            }
            _ => return Err("unknown websocket opcode"),
        }
        self.header = h;
        self.header.clear();
        self.control.clear();
        self.state = State::Payload {
            opcode,
            remaining: len,
            mask,
            pos: 0,
        };
        if len == 0 {
            self.state = State::Header;
            self.finish_control(opcode, controls);
        }
        Ok(())
    }

    fn finish_control(&mut self, opcode: u8, controls: &mut Vec<Control>) {
        match opcode {
            OP_PING => controls.push(Control::Ping(std::mem::take(&mut self.control))),
            OP_CLOSE => controls.push(Control::Close(std::mem::take(&mut self.control))),
            _ => {}
        }
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A masked client frame, as a browser sends it.
    pub fn client_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut out = Vec::new();
        frame_header(opcode, payload.len(), &mut out);
        out[1] |= 0x80;
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    #[test]
    fn accept_key_matches_rfc_example() {
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn parses_a_novnc_request() {
        let req = "GET /websockify HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                   Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Protocol: binary, base64\r\n";
        let up = parse_upgrade(req).unwrap();
        assert!(up.binary_protocol);
        let resp = upgrade_response(&up);
        assert!(resp.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
        assert!(resp.contains("Sec-WebSocket-Protocol: binary\r\n"));
        assert!(resp.ends_with("\r\n\r\n"));
        assert!(parse_upgrade("GET / HTTP/1.1\r\nHost: x\r\n").is_err());
        assert!(
            parse_upgrade("POST / HTTP/1.1\r\nUpgrade: websocket\r\nSec-WebSocket-Key: a\r\n")
                .is_err()
        );
    }

    #[test]
    fn decodes_frames_split_anywhere() {
        let big: Vec<u8> = (0..70000u32).map(|i| i as u8).collect();
        let mut wire = client_frame(OP_BINARY, b"hello", [1, 2, 3, 4]);
        wire.extend(client_frame(OP_PING, b"pp", [9, 9, 9, 9]));
        wire.extend(client_frame(OP_BINARY, &big, [5, 6, 7, 8]));
        wire.extend(client_frame(OP_BINARY, &[], [0; 4]));
        wire.extend(client_frame(OP_CLOSE, &[3, 232], [1, 1, 1, 1]));
        for chunk in [1, 3, 7, 1000, wire.len()] {
            let mut d = Decoder::default();
            let (mut data, mut controls) = (Vec::new(), Vec::new());
            for piece in wire.chunks(chunk) {
                d.feed(piece, &mut data, &mut controls).unwrap();
            }
            assert_eq!(&data[..5], b"hello");
            assert_eq!(&data[5..], &big[..]);
            assert_eq!(
                controls,
                [Control::Ping(b"pp".to_vec()), Control::Close(vec![3, 232])]
            );
        }
    }

    #[test]
    fn rejects_unmasked_and_text_frames() {
        let mut unmasked = Vec::new();
        frame_header(OP_BINARY, 1, &mut unmasked);
        unmasked.push(0);
        let mut d = Decoder::default();
        assert!(d.feed(&unmasked, &mut Vec::new(), &mut Vec::new()).is_err());
        let mut d = Decoder::default();
        assert!(
            d.feed(
                &client_frame(OP_TEXT, b"x", [0; 4]),
                &mut Vec::new(),
                &mut Vec::new()
            )
            .is_err()
        );
    }
}
