//! User-mode networking (`<interface type='user'>`) through passt, as
//! libvirt 9.0 does with `<backend type='passt'/>`: a passt process per
//! interface, unprivileged, translating the guest's frames to the host's
//! sockets. The driver makes a socket pair, hands one end to passt
//! (`--fd`) and keeps the other for the VMM, so that a guest reboot (a
//! new VMM) keeps the same connection; passt exits when the last copy of
//! the VMM's end closes. It runs as `nobody` (as the daemon's user when
//! that is not root) and puts itself in the background once it is ready:
//! the exit of the process the driver started is the answer (0: serving),
//! and the pid of the one that serves comes back through a pipe passt
//! takes for its PID file.

use std::io::Read;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

use serde::{Deserialize, Serialize};

use crate::error::{Error, ErrorCode, ErrorDomain, Result};

/// Where Debian's `passt` package installs it.
pub const PASST: &str = "/usr/bin/passt";

/// A running passt, as the domain's status file records it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasstRes {
    pub pid: i32,
}

fn fail(detail: impl AsRef<str>) -> Error {
    Error::new(ErrorCode::InternalError, ErrorDomain::Domain, detail)
}

/// Starts passt for a guest interface with MAC `mac`; returns the record
/// and the VMM's end of the connection.
pub fn start(mac: &str) -> Result<(PasstRes, OwnedFd)> {
    if !Path::new(PASST).exists() {
        return Err(Error::new(
            ErrorCode::SystemError,
            ErrorDomain::None,
            format!("Cannot find '{PASST}' in path: No such file or directory"),
        ));
    }
    let (ours, theirs) =
        UnixStream::pair().map_err(|e| fail(format!("cannot make a socket pair: {e}")))?;
    let theirs: OwnedFd = theirs.into();
    let (pid_read, pid_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| fail(format!("cannot make a pipe: {e}")))?;
    // passt opens its PID file after dropping its privileges.
    nix::sys::stat::fchmod(&pid_write, nix::sys::stat::Mode::from_bits_truncate(0o622))
        .map_err(|e| fail(format!("cannot open the pipe to passt: {e}")))?;
    let (fd, pid_fd) = (theirs.as_raw_fd(), pid_write.as_raw_fd());
    let mut cmd = Command::new(PASST);
    // A root daemon has passt drop to nobody; an unprivileged one runs it
    // as itself.
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        let (uid, gid) = nobody();
        cmd.arg("--runas").arg(format!("{uid}:{gid}"));
    }
    cmd.arg("--fd")
        .arg(fd.to_string())
        .arg("--mac-addr")
        .arg(mac)
        .arg("--pid")
        .arg(format!("/proc/self/fd/{pid_fd}"))
        .arg("--quiet")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    // SAFETY: between fork and exec the closure only calls fcntl on fds
    // the child inherited, which is async-signal-safe.
    unsafe {
        cmd.pre_exec(move || {
            for fd in [fd, pid_fd] {
                let flags = libc::fcntl(fd, libc::F_GETFD);
                if flags < 0 || libc::fcntl(fd, libc::F_SETFD, flags & !libc::FD_CLOEXEC) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot run {PASST}: {e}")))?;
    drop(theirs);
    drop(pid_write);
    // The first process exits once passt serves (in the background), or
    // says why it cannot.
    let status = child
        .wait()
        .map_err(|e| fail(format!("cannot wait for {PASST}: {e}")))?;
    if !status.success() {
        let mut why = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut why);
        }
        return Err(fail(format!("passt exited with {status}: {}", why.trim())));
    }
    // The serving process writes its pid once it runs (and may keep the
    // pipe open): one read, when there is something to read.
    let mut buf = [0u8; 32];
    let mut ready = [nix::poll::PollFd::new(
        pid_read.as_fd(),
        nix::poll::PollFlags::POLLIN,
    )];
    let n = match nix::poll::poll(&mut ready, nix::poll::PollTimeout::from(2000u16)) {
        Ok(1..) => nix::unistd::read(&pid_read, &mut buf).unwrap_or(0),
        _ => 0,
    };
    let text = String::from_utf8_lossy(&buf[..n]);
    let pid = text
        .trim()
        .parse::<i32>()
        .map_err(|_| fail(format!("passt gave no pid ('{}')", text.trim())))?;
    Ok((PasstRes { pid }, ours.into()))
}

/// The user passt runs as: `nobody` (65534 where there is none).
fn nobody() -> (u32, u32) {
    // SAFETY: getpwnam returns null or a pointer to a static record,
    // read at once.
    unsafe {
        let pw = libc::getpwnam(c"nobody".as_ptr());
        if pw.is_null() {
            (65534, 65534)
        } else {
            ((*pw).pw_uid, (*pw).pw_gid)
        }
    }
}

/// Whether the recorded passt still runs (and is passt, not a recycled
/// pid or a zombie).
fn alive(r: &PasstRes) -> bool {
    super::pidfd::running_as(r.pid, |args| {
        args.first()
            .is_some_and(|argv0| argv0.windows(5).any(|w| w == b"passt"))
    })
}

/// Stops the recorded passt.
pub fn stop(r: &PasstRes) {
    if alive(r) {
        // SAFETY: a plain signal to a process verified to be passt.
        unsafe { libc::kill(r.pid, libc::SIGTERM) };
    }
}
