//! Watching a process through a pidfd, and reaping it when it is ours.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

/// A pidfd registered with the tokio reactor.
pub struct PidFd {
    fd: AsyncFd<OwnedFd>,
    pid: i32,
}

/// How a process ended, when it was our child and could be reaped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
    /// Not our child (re-attached after a daemon restart): no status.
    Unknown,
}

impl PidFd {
    /// Opens a pidfd for `pid`; fails if the process does not exist.
    pub fn open(pid: i32) -> io::Result<Self> {
        // SAFETY: pidfd_open takes a pid and flags and returns a new fd or -1.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        let raw = i32::try_from(raw).map_err(|_| io::Error::other("pidfd out of range"))?;
        // SAFETY: `raw` is a freshly opened fd that nothing else owns.
        let owned = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the fd is owned by the AsyncFd for as long as it is
        // registered; nothing else closes or duplicates it.
        let fd =
            unsafe { AsyncFd::register(owned) }.map_err(|e| io::Error::other(e.to_string()))?;
        Ok(PidFd { fd, pid })
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the process has exited, reaped or not (a zombie still
    /// answers `kill(pid, 0)`; its pidfd is readable).
    pub fn has_exited(&self) -> bool {
        let mut p = libc::pollfd {
            fd: self.fd.get_ref().as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, no wait.
        unsafe { libc::poll(&mut p, 1, 0) > 0 }
    }

    /// Sends `sig` through the pidfd (no pid-reuse race).
    pub fn kill(&self, sig: i32) -> io::Result<()> {
        // SAFETY: pidfd_send_signal with a valid pidfd, no siginfo, no flags.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_pidfd_send_signal,
                self.fd.get_ref().as_raw_fd(),
                sig,
                std::ptr::null::<libc::siginfo_t>(),
                0,
            )
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Waits until the process has exited, then reaps it if it is our child.
    pub async fn wait(&self) -> ExitStatus {
        loop {
            match self.fd.readable().await {
                Ok(mut guard) => {
                    guard.retain_ready();
                    break;
                }
                Err(e) => {
                    tracing::warn!(pid = self.pid, "pidfd wait failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                    if !alive(self.pid) {
                        break;
                    }
                }
            }
        }
        self.reap()
    }

    fn reap(&self) -> ExitStatus {
        let mut status = 0;
        // SAFETY: waitpid on a specific pid with WNOHANG; status is a valid out pointer.
        let rc = unsafe { libc::waitpid(self.pid, &mut status, libc::WNOHANG) };
        if rc == self.pid {
            if libc::WIFEXITED(status) {
                ExitStatus::Code(libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                ExitStatus::Signal(libc::WTERMSIG(status))
            } else {
                ExitStatus::Unknown
            }
        } else {
            ExitStatus::Unknown
        }
    }
}

/// Whether `pid` is a running process (not a zombie) whose command line
/// (its arguments, NUL-split) satisfies `is_it`: a pid recorded for a
/// helper such as dnsmasq or passt, checked not to be recycled.
pub fn running_as(pid: i32, is_it: impl Fn(&[&[u8]]) -> bool) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    let zombie = stat
        .rsplit_once(')')
        .is_none_or(|(_, rest)| rest.trim_start().starts_with('Z'));
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    !zombie && is_it(&args)
}

/// Whether a process with this pid exists.
pub fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence and permission.
    pid > 0 && unsafe { libc::kill(pid, 0) } == 0
}
