//! Host side of COM1: where guest output goes and where input comes from.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use super::config::SerialConfig;
use super::error::{Error, Result};

/// The unix-socket backend's current client, shared by writer and loop.
pub type SharedClient = Arc<Mutex<Option<UnixStream>>>;

/// A ready backend.
pub struct SerialBackend {
    /// Guest output sink handed to the UART.
    pub out: Box<dyn Write + Send>,
    /// Input source to poll (stdin, pty master), if any.
    pub input: Option<RawFd>,
    /// Keeps the pty master open.
    pub pty_master: Option<OwnedFd>,
    /// Path of the pty slave.
    pub pty_path: Option<String>,
    /// Listening socket of the unix backend and its path (removed on exit).
    pub listener: Option<(UnixListener, PathBuf)>,
    /// Current client of the unix backend.
    pub client: SharedClient,
}

/// Writes to a non-blocking fd, dropping what does not fit: a console
/// nobody reads must never stall the guest.
struct LossyFd(File);

impl Write for LossyFd {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self.0.write(buf) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(buf.len()),
            Err(e) if e.raw_os_error() == Some(libc::EIO) => Ok(buf.len()),
            r => r,
        }
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct ClientWriter(SharedClient);

impl Write for ClientWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut guard = match self.0.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if let Some(s) = guard.as_mut() {
            match s.write(buf) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => *guard = None,
            }
        }
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on an fd we own with valid flag arguments.
    let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    if unsafe { libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Opens a pseudo-terminal in raw mode; returns the master and the slave path.
pub fn open_pty() -> io::Result<(OwnedFd, String)> {
    // SAFETY: posix_openpt has no memory-safety preconditions.
    let fd = unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is a fresh descriptor we exclusively own.
    let master = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: grantpt/unlockpt take a valid pty master fd.
    if unsafe { libc::grantpt(fd) } < 0 || unsafe { libc::unlockpt(fd) } < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0 as libc::c_char; 128];
    // SAFETY: buf is writable for buf.len() bytes.
    if unsafe { libc::ptsname_r(fd, buf.as_mut_ptr(), buf.len()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: ptsname_r wrote a NUL-terminated string into buf.
    let path = unsafe { std::ffi::CStr::from_ptr(buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();
    // SAFETY: termios is plain data; tcgetattr fills it for a valid fd.
    let mut tio: libc::termios = unsafe { std::mem::zeroed() };
    // SAFETY: valid fd and pointer to a termios.
    if unsafe { libc::tcgetattr(fd, &mut tio) } == 0 {
        // SAFETY: tio is initialised by tcgetattr.
        unsafe { libc::cfmakeraw(&mut tio) };
        // SAFETY: valid fd and termios.
        unsafe { libc::tcsetattr(fd, libc::TCSANOW, &tio) };
    }
    set_nonblocking(fd)?;
    Ok((master, path))
}

impl SerialBackend {
    /// Opens the configured backend.
    pub fn open(cfg: &SerialConfig) -> Result<Self> {
        let client: SharedClient = Arc::new(Mutex::new(None));
        let mut b = SerialBackend {
            out: Box::new(io::sink()),
            input: None,
            pty_master: None,
            pty_path: None,
            listener: None,
            client: client.clone(),
        };
        match cfg {
            SerialConfig::Null => {}
            SerialConfig::File { path } => {
                let f = OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .map_err(|e| Error::Serial(format!("cannot open {}: {e}", path.display())))?;
                b.out = Box::new(f);
            }
            SerialConfig::Stdio => {
                b.out = Box::new(io::stdout());
                b.input = Some(io::stdin().as_raw_fd());
            }
            SerialConfig::Pty | SerialConfig::PtyFd { .. } => {
                let (master, path) = match cfg {
                    SerialConfig::PtyFd { fd, path } => {
                        // SAFETY: the daemon passed this descriptor for the
                        // serial port alone; nothing else in the VMM owns it.
                        let master = unsafe { OwnedFd::from_raw_fd(*fd) };
                        set_nonblocking(master.as_raw_fd())
                            .map_err(|e| Error::Serial(format!("inherited pty: {e}")))?;
                        (master, path.clone())
                    }
                    _ => {
                        open_pty().map_err(|e| Error::Serial(format!("cannot open a pty: {e}")))?
                    }
                };
                let dup = master
                    .try_clone()
                    .map_err(|e| Error::Serial(format!("cannot duplicate the pty: {e}")))?;
                b.out = Box::new(LossyFd(File::from(dup)));
                b.input = Some(master.as_raw_fd());
                b.pty_master = Some(master);
                b.pty_path = Some(path);
            }
            SerialConfig::Unix { path } => {
                if path.exists() {
                    // Only a stale socket may be replaced.
                    let meta = std::fs::symlink_metadata(path).map_err(|e| {
                        Error::Serial(format!("cannot stat {}: {e}", path.display()))
                    })?;
                    use std::os::unix::fs::FileTypeExt;
                    if !meta.file_type().is_socket() || UnixStream::connect(path).is_ok() {
                        return Err(Error::Serial(format!(
                            "{} exists and is not a stale socket",
                            path.display()
                        )));
                    }
                    let _ = std::fs::remove_file(path);
                }
                let l = UnixListener::bind(path).map_err(|e| {
                    Error::Serial(format!("cannot listen on {}: {e}", path.display()))
                })?;
                l.set_nonblocking(true)
                    .map_err(|e| Error::Serial(format!("socket: {e}")))?;
                b.out = Box::new(ClientWriter(client));
                b.listener = Some((l, path.clone()));
            }
        }
        Ok(b)
    }

    /// Accepts a new console client on the unix backend, replacing any
    /// previous one. Returns the client's fd to poll for input.
    pub fn accept(&self) -> Option<RawFd> {
        let (l, _) = self.listener.as_ref()?;
        let (s, _) = l.accept().ok()?;
        s.set_nonblocking(true).ok()?;
        let fd = s.as_raw_fd();
        let mut g = match self.client.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        *g = Some(s);
        Some(fd)
    }

    /// Removes the unix backend's socket file.
    pub fn cleanup(&self) {
        if let Some((_, path)) = &self.listener {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Reads whatever is available from `fd` (non-blocking or ready).
pub fn read_available(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of buf.len() bytes.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}
