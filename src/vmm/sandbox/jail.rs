//! Leaving the host's view behind: a private mount namespace whose root
//! is an empty tmpfs, an unprivileged identity, no capabilities, and
//! `no_new_privs`. Runs on the main thread while it is the only thread
//! (`unshare(CLONE_NEWNS)` and the id changes need that).

use std::io;
use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid, chdir, pivot_root, setgroups, setresgid, setresuid};

use crate::vmm::config::Identity;

fn err(what: impl std::fmt::Display) -> impl FnOnce(nix::Error) -> io::Error {
    move |e| io::Error::new(io::Error::from(e).kind(), format!("{what}: {e}"))
}

/// Moves the process into its own mount namespace whose root is a fresh,
/// read-only tmpfs mounted on `root` (an existing, empty directory),
/// holding only the directories in `binds`, mounted at their own paths.
pub fn enter(root: &Path, binds: &[PathBuf]) -> io::Result<()> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(err("unshare(CLONE_NEWNS)"))?;
    // Nothing mounted from here on may reach the host's namespace.
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(err("making mounts private"))?;
    let hardened = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    mount(
        Some("oxvirt-vmm"),
        root,
        Some("tmpfs"),
        hardened,
        Some("size=64k,nr_inodes=64,mode=0755"),
    )
    .map_err(err(format!("mounting the jail on {}", root.display())))?;
    for dir in binds {
        let rel = dir.strip_prefix("/").unwrap_or(dir);
        let target = root.join(rel);
        std::fs::create_dir_all(&target)?;
        mount(
            Some(dir.as_path()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None::<&str>,
        )
        .map_err(err(format!("binding {} into the jail", dir.display())))?;
        mount(
            None::<&str>,
            &target,
            None::<&str>,
            MsFlags::MS_REMOUNT | MsFlags::MS_BIND | hardened,
            None::<&str>,
        )
        .map_err(err(format!("hardening {}", target.display())))?;
    }
    // pivot_root(".", ".") stacks the old root under the new one; the
    // detach then drops every host mount from this namespace.
    chdir(root).map_err(err("chdir to the jail"))?;
    pivot_root(".", ".").map_err(err("pivot_root"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(err("detaching the host's mounts"))?;
    chdir("/").map_err(err("chdir /"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | hardened,
        None::<&str>,
    )
    .map_err(err("making the jail read-only"))?;
    Ok(())
}

/// Takes the identity (if any), then gives up every capability and the
/// means of gaining privileges through exec.
pub fn drop_privileges(user: Option<&Identity>) -> io::Result<()> {
    // The bounding set can only shrink while CAP_SETPCAP is held.
    for cap in 0..=63 {
        // SAFETY: PR_CAPBSET_DROP takes an integer; unknown capability
        // numbers fail with EINVAL, which ends the loop.
        if unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) } != 0 {
            break;
        }
    }
    // SAFETY: PR_CAP_AMBIENT_CLEAR_ALL takes no pointers.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    if let Some(id) = user {
        let groups: Vec<Gid> = id.groups.iter().map(|&g| Gid::from_raw(g)).collect();
        setgroups(&groups).map_err(err("setgroups"))?;
        let gid = Gid::from_raw(id.gid);
        setresgid(gid, gid, gid).map_err(err("setresgid"))?;
        let uid = Uid::from_raw(id.uid);
        setresuid(uid, uid, uid).map_err(err("setresuid"))?;
    }
    clear_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(err("PR_SET_NO_NEW_PRIVS"))?;
    Ok(())
}

/// Empties the effective, permitted and inheritable sets (a change of
/// uid away from 0 already did; a VMM left as root needs it done).
fn clear_capabilities() -> io::Result<()> {
    #[repr(C)]
    struct Header {
        version: u32,
        pid: i32,
    }
    #[repr(C)]
    #[derive(Default, Clone, Copy)]
    struct Data {
        effective: u32,
        permitted: u32,
        inheritable: u32,
    }
    const LINUX_CAPABILITY_VERSION_3: u32 = 0x2008_0522;
    let mut header = Header {
        version: LINUX_CAPABILITY_VERSION_3,
        pid: 0,
    };
    let data = [Data::default(); 2];
    // SAFETY: capset reads a version-3 header and two data structs, both
    // live for the call.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &raw mut header, data.as_ptr()) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        return Err(io::Error::new(e.kind(), format!("capset: {e}")));
    }
    Ok(())
}
