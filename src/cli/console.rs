//! `console`: attaches the terminal to the guest's serial console through
//! oxvirt's `org.oxvirt.Console.OpenConsole`, which passes the console's
//! pty as a unix fd. Ctrl-] detaches; the terminal mode is restored on
//! every way out (detach, guest gone, signal, error).

use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use nix::sys::termios::{self, SetArg, Termios};

use super::bus::{Bus, CONSOLE};
use super::domain::lookup;
use super::error::{CliError, Result};

/// Ctrl-]
const ESCAPE: u8 = 0x1d;

/// Puts a terminal in raw mode and restores the saved mode when dropped.
struct RawMode<'a> {
    fd: BorrowedFd<'a>,
    saved: Termios,
}

impl<'a> RawMode<'a> {
    fn enter(fd: BorrowedFd<'a>) -> Option<RawMode<'a>> {
        let saved = termios::tcgetattr(fd).ok()?;
        let mut raw = saved.clone();
        termios::cfmakeraw(&mut raw);
        termios::tcsetattr(fd, SetArg::TCSAFLUSH, &raw).ok()?;
        Some(RawMode { fd, saved })
    }
}

impl Drop for RawMode<'_> {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(self.fd, SetArg::TCSAFLUSH, &self.saved);
    }
}

/// Blocks the terminating signals while attached and delivers them
/// through a signalfd, so they end the session cleanly.
struct Signals {
    mask: SigSet,
    fd: SignalFd,
}

impl Signals {
    fn block() -> Option<Signals> {
        let mut mask = SigSet::empty();
        for s in [
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGHUP,
            Signal::SIGQUIT,
        ] {
            mask.add(s);
        }
        mask.thread_block().ok()?;
        let fd = SignalFd::new(&mask).ok()?;
        Some(Signals { mask, fd })
    }
}

impl Drop for Signals {
    fn drop(&mut self) {
        let _ = self.mask.thread_unblock();
    }
}

/// Opens the console of `name`; returns the domain's name and the fd.
fn open(
    bus: &Bus,
    name: &str,
    devname: Option<&str>,
    force: bool,
    safe: bool,
) -> Result<(String, OwnedFd)> {
    let d = lookup(bus, name)?;
    if d.id(bus)?.is_none() {
        return Err(CliError::ctx("The domain is not running"));
    }
    let mut flags = 0u32;
    if force {
        flags |= 1;
    }
    if safe {
        flags |= 2;
    }
    let fd: zbus::zvariant::OwnedFd = bus.call(
        &d.path,
        CONSOLE,
        "OpenConsole",
        &(devname.unwrap_or(""), flags),
    )?;
    Ok((d.name, fd.into()))
}

pub fn console(
    bus: &Bus,
    name: &str,
    devname: Option<&str>,
    force: bool,
    safe: bool,
) -> Result<()> {
    let (dom, fd) = open(bus, name, devname, force, safe)?;
    attach(&dom, fd)
}

/// Shuttles bytes between the terminal and the console fd until Ctrl-],
/// the console closes, or a terminating signal arrives.
pub fn attach(dom: &str, fd: OwnedFd) -> Result<()> {
    sayln!("Connected to domain '{dom}'");
    sayln!("Escape character is ^] (Ctrl + ])");
    let _ = std::io::stdout().flush();
    let stdin = std::io::stdin();
    let stdin_fd = stdin.as_fd();
    let signals = Signals::block();
    let raw = RawMode::enter(stdin_fd);
    let mut console = std::fs::File::from(fd);
    let mut out = std::io::stdout();
    let mut buf = [0u8; 4096];
    let mut stdin_open = true;
    let result = loop {
        let mut fds = vec![PollFd::new(console.as_fd(), PollFlags::POLLIN)];
        if stdin_open {
            fds.push(PollFd::new(stdin_fd, PollFlags::POLLIN));
        }
        let sig_index = fds.len();
        if let Some(s) = &signals {
            fds.push(PollFd::new(s.fd.as_fd(), PollFlags::POLLIN));
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => break Err(CliError::msg(format!("poll: {e}"))),
        }
        let ready = |i: usize| {
            fds.get(i)
                .and_then(|f| f.revents())
                .unwrap_or(PollFlags::empty())
        };
        let con = ready(0);
        let inp = if stdin_open {
            ready(1)
        } else {
            PollFlags::empty()
        };
        let sig = if signals.is_some() {
            ready(sig_index)
        } else {
            PollFlags::empty()
        };
        drop(fds);
        if !sig.is_empty() {
            break Ok(());
        }
        if con.contains(PollFlags::POLLIN) {
            match console.read(&mut buf) {
                Ok(0) | Err(_) => break Ok(()),
                Ok(n) => {
                    if out.write_all(&buf[..n]).and_then(|_| out.flush()).is_err() {
                        break Ok(());
                    }
                }
            }
        } else if !con.is_empty() {
            // Hang-up or error: the guest's console is gone.
            break Ok(());
        }
        if !inp.is_empty() {
            match (&stdin).read(&mut buf) {
                Ok(0) | Err(_) => stdin_open = false,
                Ok(n) => {
                    let data = &buf[..n];
                    let (send, leave) = match data.iter().position(|b| *b == ESCAPE) {
                        Some(p) => (&data[..p], true),
                        None => (data, false),
                    };
                    if !send.is_empty() && console.write_all(send).is_err() {
                        break Ok(());
                    }
                    if leave {
                        break Ok(());
                    }
                }
            }
        }
    };
    drop(raw);
    drop(signals);
    sayln!();
    result
}
