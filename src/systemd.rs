//! The two service-manager protocols oxvirtd speaks, without libsystemd:
//! readiness notification (`sd_notify`: datagrams to `$NOTIFY_SOCKET`) and
//! socket activation (`$LISTEN_PID`, `$LISTEN_FDS`, `$LISTEN_FDNAMES`,
//! descriptors from 3 on). Both are no-ops when the variables are unset,
//! so the daemon behaves the same under any other supervisor.

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixDatagram;

/// The first descriptor passed by the service manager.
const LISTEN_FDS_START: i32 = 3;

/// Sends `state` (e.g. `READY=1\nSTATUS=...`) to the service manager.
/// Returns whether a manager was there to receive it.
pub fn notify(state: &str) -> bool {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return false;
    };
    let Ok(sock) = UnixDatagram::unbound() else {
        return false;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|a| sock.send_to_addr(state.as_bytes(), &a))
    } else {
        sock.send_to(state.as_bytes(), &path)
    };
    match sent {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!("cannot notify the service manager: {e}");
            false
        }
    }
}

/// A descriptor handed over by the service manager, with its
/// `FileDescriptorName=` (or `unknown`).
#[derive(Debug)]
pub struct PassedFd {
    pub fd: OwnedFd,
    pub name: String,
}

/// Takes the descriptors passed for socket activation, if they are meant
/// for this process, marks them close-on-exec (VMM children must not
/// inherit them) and removes the variables from the environment. Call
/// once, early, before other threads start.
pub fn take_listen_fds() -> Vec<PassedFd> {
    let pid_ok = std::env::var("LISTEN_PID")
        .ok()
        .and_then(|p| p.trim().parse::<u32>().ok())
        == Some(std::process::id());
    let count = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|n| n.trim().parse::<i32>().ok())
        .unwrap_or(0);
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    // SAFETY: called at start-up while the process is single-threaded.
    unsafe {
        std::env::remove_var("LISTEN_PID");
        std::env::remove_var("LISTEN_FDS");
        std::env::remove_var("LISTEN_FDNAMES");
    }
    if !pid_ok || count <= 0 {
        return Vec::new();
    }
    let mut names = names.split(':');
    (0..count)
        .map(|i| {
            let raw = LISTEN_FDS_START + i;
            // SAFETY: F_SETFD on a descriptor number; harmless if not open.
            unsafe { libc::fcntl(raw, libc::F_SETFD, libc::FD_CLOEXEC) };
            PassedFd {
                // SAFETY: the service manager passed this descriptor to
                // us and nothing else in the process owns it.
                fd: unsafe { OwnedFd::from_raw_fd(raw) },
                name: names
                    .next()
                    .filter(|n| !n.is_empty())
                    .unwrap_or("unknown")
                    .to_string(),
            }
        })
        .collect()
}

/// Picks the read-write and read-only RPC listeners out of the passed
/// descriptors: by name (`libvirt-sock`, `libvirt-sock-ro`, as the
/// shipped socket units name them), else by order.
pub fn rpc_sockets(
    fds: Vec<PassedFd>,
) -> (
    Option<std::os::unix::net::UnixListener>,
    Option<std::os::unix::net::UnixListener>,
) {
    let mut rw = None;
    let mut ro = None;
    let mut unnamed = Vec::new();
    for p in fds {
        match p.name.as_str() {
            "libvirt-sock" => rw = Some(p.fd),
            "libvirt-sock-ro" => ro = Some(p.fd),
            _ => unnamed.push(p.fd),
        }
    }
    let mut unnamed = unnamed.into_iter();
    if rw.is_none() {
        rw = unnamed.next();
    }
    if ro.is_none() {
        ro = unnamed.next();
    }
    for extra in unnamed {
        tracing::warn!("ignoring an unexpected descriptor from the service manager: {extra:?}");
    }
    (
        rw.map(std::os::unix::net::UnixListener::from),
        ro.map(std::os::unix::net::UnixListener::from),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_reaches_a_datagram_socket() {
        let dir = std::env::temp_dir().join(format!("oxvirt-notify-{}", std::process::id()));
        let _ = std::fs::create_dir_all(&dir);
        let path = dir.join("notify");
        let _ = std::fs::remove_file(&path);
        let rx = UnixDatagram::bind(&path).unwrap();
        // SAFETY: this test is the only user of NOTIFY_SOCKET.
        unsafe { std::env::set_var("NOTIFY_SOCKET", &path) };
        assert!(notify("READY=1\nSTATUS=test"));
        unsafe { std::env::remove_var("NOTIFY_SOCKET") };
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=test");
        assert!(!notify("READY=1"));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
