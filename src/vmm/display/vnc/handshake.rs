//! The RFB handshake: protocol version, security (None or VNC
//! Authentication), ClientInit with the share policy, ServerInit.

use super::auth;
use super::conn::Conn;
use super::pixel_format::PixelFormat;
use super::protocol::{SECURITY_NONE, SECURITY_VNC_AUTH, parse_version};
use super::server::Shared;
use std::io::{self, ErrorKind};
use std::time::{Duration, Instant};

/// Time for a handshake step the client's software answers by itself.
const STEP_TIME: Duration = Duration::from_secs(30);
/// Time for the VNC Authentication response: clients often ask their
/// user for the password only after the challenge came.
const PASSWORD_TIME: Duration = Duration::from_secs(300);

fn refused(why: &str) -> io::Error {
    io::Error::new(ErrorKind::PermissionDenied, why.to_string())
}

fn reason(text: &str) -> Vec<u8> {
    let mut out = (text.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(text.as_bytes());
    out
}

/// Runs the handshake up to and including ServerInit; returns the
/// framebuffer size announced. A client the host handed over with
/// `skip_auth` gets no password question.
pub fn run(conn: &mut Conn, shared: &Shared, id: u64, skip_auth: bool) -> io::Result<(u32, u32)> {
    conn.write_all(b"RFB 003.008\n")?;
    let version = conn.read_array::<12>(Instant::now() + STEP_TIME)?;
    let minor = parse_version(&version)
        .ok_or_else(|| io::Error::new(ErrorKind::InvalidData, "not an RFB 3.x client"))?;
    let password = if skip_auth { None } else { shared.password() };
    let security = if password.is_some() {
        SECURITY_VNC_AUTH
    } else {
        SECURITY_NONE
    };
    if minor == 3 {
        conn.write_all(&u32::from(security).to_be_bytes())?;
    } else {
        conn.write_all(&[1, security])?;
        let [choice] = conn.read_array::<1>(Instant::now() + STEP_TIME)?;
        if choice != security {
            if minor == 8 {
                let mut msg = 1u32.to_be_bytes().to_vec();
                msg.extend(reason("security type not offered"));
                conn.write_all(&msg)?;
            }
            return Err(refused("client chose a security type not offered"));
        }
    }
    match password {
        Some(password) => vnc_auth(conn, shared, minor, &password)?,
        None if minor == 8 => conn.write_all(&0u32.to_be_bytes())?,
        None => {}
    }

    let [shared_flag] = conn.read_array::<1>(Instant::now() + STEP_TIME)?;
    if !shared.join(id, shared_flag != 0) {
        return Err(refused("an exclusive client is connected"));
    }

    let (_, frame) = shared.frames.latest();
    let (w, h) = (frame.width.min(0xffff), frame.height.min(0xffff));
    let mut init = Vec::with_capacity(24 + shared.desktop_name.len());
    init.extend_from_slice(&(w as u16).to_be_bytes());
    init.extend_from_slice(&(h as u16).to_be_bytes());
    init.extend_from_slice(&PixelFormat::SERVER.to_bytes());
    init.extend(reason(&shared.desktop_name));
    conn.write_all(&init)?;
    Ok((w, h))
}

fn vnc_auth(conn: &mut Conn, shared: &Shared, minor: u8, password: &str) -> io::Result<()> {
    let Some(challenge) = auth::challenge() else {
        if minor == 8 {
            let mut msg = 1u32.to_be_bytes().to_vec();
            msg.extend(reason("server error"));
            conn.write_all(&msg)?;
        }
        return Err(io::Error::other("no random bytes for a VNC challenge"));
    };
    conn.write_all(&challenge)?;
    let answer = conn.read_array::<{ auth::CHALLENGE_LEN }>(Instant::now() + PASSWORD_TIME)?;
    if auth::verify(password, &challenge, &answer) {
        shared.failures.succeeded();
        return conn.write_all(&0u32.to_be_bytes());
    }
    // Only this client's thread waits; the growing delay slows guessing.
    std::thread::sleep(shared.failures.failed());
    let mut msg = 1u32.to_be_bytes().to_vec();
    if minor == 8 {
        msg.extend(reason("Authentication failed"));
    }
    conn.write_all(&msg)?;
    Err(refused("wrong VNC password"))
}
