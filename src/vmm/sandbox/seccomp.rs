//! Syscall allow-lists, one per kind of VMM thread.
//!
//! Each list is what that thread does once the guest runs (found by
//! tracing every device under the test guest), plus what any thread of
//! a Rust program needs to allocate, block, be signalled and exit. A
//! thread installs its own filter when it starts; it inherits the filter
//! of the thread that created it too, and the kernel applies both, so the
//! thread launcher (which creates every thread after lock-down) allows
//! the union of all lists. Anything else kills the process with SIGSYS.

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};
use vmm_sys_util::{ioctl_io_nr, ioctl_ior_nr, ioctl_iow_nr, ioctl_iowr_nr};

/// The kinds of thread a VMM runs, each with its own allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum ThreadKind {
    /// The main thread: control socket, signals, serial input, stats.
    Control,
    /// Creates every thread once the VMM is locked down.
    Launcher,
    /// Runs KVM_RUN and the device emulation reached from guest exits.
    Vcpu,
    /// Writes a serial port's output to its backend.
    SerialOut,
    /// A virtio-blk queue worker.
    BlockQueue,
    /// A virtio-blk helper doing parallel reads and writes.
    BlockIo,
    /// A virtio-net worker (tap or stream backend).
    Net,
    /// The virtio-vsock worker (unix sockets on the host side).
    Vsock,
    /// A virtio-console worker.
    Console,
    /// The virtio-rng worker.
    Rng,
    /// The virtio-balloon worker.
    Balloon,
    /// The virtio-gpu worker.
    Gpu,
    /// A virtio-input worker.
    Input,
    /// The frame worker of USB 1.1/2.0 host controllers (UHCI, EHCI):
    /// walks their schedules in guest memory, raises their INTx lines.
    UsbHost,
    /// The VNC server: accepting clients on the listening sockets the
    /// daemon passed, serving each, rendering the screen.
    Vnc,
}

impl ThreadKind {
    /// Every kind, for building and checking all filters.
    pub const ALL: [ThreadKind; 15] = [
        ThreadKind::Control,
        ThreadKind::Launcher,
        ThreadKind::Vcpu,
        ThreadKind::SerialOut,
        ThreadKind::BlockQueue,
        ThreadKind::BlockIo,
        ThreadKind::Net,
        ThreadKind::Vsock,
        ThreadKind::Console,
        ThreadKind::Rng,
        ThreadKind::Balloon,
        ThreadKind::Gpu,
        ThreadKind::Input,
        ThreadKind::UsbHost,
        ThreadKind::Vnc,
    ];
}

// KVM ioctls made after start (numbers from <linux/kvm.h>).
const KVMIO: u32 = 0xAE;
ioctl_io_nr!(KVM_RUN, KVMIO, 0x80);
ioctl_iow_nr!(KVM_IRQ_LINE, KVMIO, 0x61, kvm_bindings::kvm_irq_level);
ioctl_iow_nr!(
    KVM_SET_GSI_ROUTING,
    KVMIO,
    0x6a,
    kvm_bindings::kvm_irq_routing
);
ioctl_iow_nr!(KVM_IRQFD, KVMIO, 0x76, kvm_bindings::kvm_irqfd);
ioctl_iow_nr!(
    KVM_SET_USER_MEMORY_REGION,
    KVMIO,
    0x46,
    kvm_bindings::kvm_userspace_memory_region
);
ioctl_iow_nr!(KVM_IOEVENTFD, KVMIO, 0x79, kvm_bindings::kvm_ioeventfd);
ioctl_iow_nr!(KVM_SET_CLOCK, KVMIO, 0x7b, kvm_bindings::kvm_clock_data);
ioctl_ior_nr!(KVM_GET_REGS, KVMIO, 0x81, kvm_bindings::kvm_regs);
ioctl_iow_nr!(KVM_SET_REGS, KVMIO, 0x82, kvm_bindings::kvm_regs);
ioctl_ior_nr!(KVM_GET_SREGS, KVMIO, 0x83, kvm_bindings::kvm_sregs);
ioctl_iow_nr!(KVM_SET_SREGS, KVMIO, 0x84, kvm_bindings::kvm_sregs);
ioctl_ior_nr!(KVM_GET_FPU, KVMIO, 0x8c, kvm_bindings::kvm_fpu);
ioctl_iow_nr!(KVM_SET_FPU, KVMIO, 0x8d, kvm_bindings::kvm_fpu);
ioctl_iowr_nr!(KVM_TRANSLATE, KVMIO, 0x85, kvm_bindings::kvm_translation);
ioctl_ior_nr!(
    KVM_GET_VCPU_EVENTS,
    KVMIO,
    0x9f,
    kvm_bindings::kvm_vcpu_events
);
ioctl_iow_nr!(
    KVM_SET_VCPU_EVENTS,
    KVMIO,
    0xa0,
    kvm_bindings::kvm_vcpu_events
);
ioctl_ior_nr!(KVM_GET_CLOCK, KVMIO, 0x7c, kvm_bindings::kvm_clock_data);
// Reading a guest's state for `save`.
ioctl_iowr_nr!(KVM_GET_IRQCHIP, KVMIO, 0x62, kvm_bindings::kvm_irqchip);
ioctl_ior_nr!(KVM_GET_PIT2, KVMIO, 0x9f, kvm_bindings::kvm_pit_state2);
ioctl_iowr_nr!(KVM_GET_MSRS, KVMIO, 0x88, kvm_bindings::kvm_msrs);
ioctl_ior_nr!(KVM_GET_LAPIC, KVMIO, 0x8e, kvm_bindings::kvm_lapic_state);
ioctl_ior_nr!(KVM_GET_MP_STATE, KVMIO, 0x98, kvm_bindings::kvm_mp_state);
ioctl_ior_nr!(KVM_GET_DEBUGREGS, KVMIO, 0xa1, kvm_bindings::kvm_debugregs);
ioctl_ior_nr!(KVM_GET_XSAVE, KVMIO, 0xa4, kvm_bindings::kvm_xsave);
ioctl_ior_nr!(KVM_GET_XCRS, KVMIO, 0xa6, kvm_bindings::kvm_xcrs);

/// The rules of one filter being built: syscall number to conditions,
/// where an empty list allows the call whatever its arguments.
#[derive(Default)]
struct Allow(BTreeMap<i64, Vec<SeccompRule>>);

fn cond(arg: u8, op: SeccompCmpOp, value: u64) -> SeccompCondition {
    // Only fails for an argument index above 5, which none here is.
    SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value).expect("valid condition")
}

fn rule(conds: Vec<SeccompCondition>) -> SeccompRule {
    SeccompRule::new(conds).expect("non-empty rule")
}

impl Allow {
    /// Allows each call whatever its arguments.
    fn calls(&mut self, nrs: &[libc::c_long]) -> &mut Self {
        for &nr in nrs {
            self.0.insert(nr, Vec::new());
        }
        self
    }

    /// Allows `nr` when `r` matches (unless it is already unconditional).
    fn call_if(&mut self, nr: libc::c_long, r: SeccompRule) -> &mut Self {
        match self.0.get_mut(&nr) {
            Some(rules) if rules.is_empty() => {}
            Some(rules) => rules.push(r),
            None => {
                self.0.insert(nr, vec![r]);
            }
        }
        self
    }

    /// Allows `ioctl` with each of these request numbers.
    fn ioctls(&mut self, requests: &[u64]) -> &mut Self {
        for &req in requests {
            self.call_if(libc::SYS_ioctl, rule(vec![cond(1, SeccompCmpOp::Eq, req)]));
        }
        self
    }

    /// What every thread needs: memory without execute permission,
    /// futexes, time, signal masks and returns, writing to its log and
    /// eventfds, closing, exiting, and abort().
    fn base(&mut self) -> &mut Self {
        let no_exec = || {
            rule(vec![cond(
                2,
                SeccompCmpOp::MaskedEq(libc::PROT_EXEC as u64),
                0,
            )])
        };
        self.call_if(libc::SYS_mmap, no_exec())
            .call_if(libc::SYS_mprotect, no_exec())
            .calls(&[
                libc::SYS_brk,
                libc::SYS_munmap,
                libc::SYS_mremap,
                libc::SYS_madvise,
                libc::SYS_futex,
                libc::SYS_sched_yield,
                libc::SYS_clock_gettime,
                libc::SYS_clock_nanosleep,
                libc::SYS_nanosleep,
                libc::SYS_rt_sigprocmask,
                libc::SYS_rt_sigreturn,
                libc::SYS_sigaltstack,
                libc::SYS_restart_syscall,
                libc::SYS_getrandom,
                libc::SYS_write,
                libc::SYS_close,
                // Descriptor flags (and std's check that a closed fd was open).
                libc::SYS_fcntl,
                libc::SYS_gettid,
                libc::SYS_getpid,
                libc::SYS_tgkill,
                libc::SYS_exit,
                libc::SYS_exit_group,
            ])
    }

    /// A device worker's event loop on its epoll set and eventfds.
    fn worker(&mut self) -> &mut Self {
        self.base()
            .calls(&[
                libc::SYS_epoll_wait,
                libc::SYS_epoll_pwait,
                libc::SYS_epoll_ctl,
                libc::SYS_read,
            ])
            .ioctls(&[KVM_IRQ_LINE()])
    }

    /// Resetting or stopping devices, which the main thread does at exit
    /// and a vCPU on the guest's request: joining workers, closing
    /// connections, detaching tap queues.
    fn device_reset(&mut self) -> &mut Self {
        self.calls(&[libc::SYS_shutdown])
            .ioctls(&[libc::TUNSETQUEUE, libc::TUNSETOFFLOAD])
    }

    /// The stream sockets of consoles and vsock: accepting, moving bytes.
    fn stream_sockets(&mut self) -> &mut Self {
        self.calls(&[
            libc::SYS_accept4,
            libc::SYS_recvfrom,
            libc::SYS_sendto,
            libc::SYS_readv,
            libc::SYS_writev,
            libc::SYS_shutdown,
            libc::SYS_fcntl,
        ])
        .ioctls(&[libc::FIONBIO])
    }

    fn kind(&mut self, kind: ThreadKind) -> &mut Self {
        match kind {
            ThreadKind::Control => self
                .base()
                .device_reset()
                .calls(&[
                    libc::SYS_epoll_wait,
                    libc::SYS_epoll_pwait,
                    libc::SYS_epoll_ctl,
                    libc::SYS_read,
                    libc::SYS_pread64,
                    libc::SYS_accept4,
                    libc::SYS_recvfrom,
                    // Requests with descriptors (a CD-ROM image), which
                    // are then inspected and sized.
                    libc::SYS_recvmsg,
                    libc::SYS_fstat,
                    libc::SYS_statx,
                    libc::SYS_newfstatat,
                    libc::SYS_lseek,
                    libc::SYS_sendto,
                    libc::SYS_fcntl,
                    libc::SYS_geteuid,
                    // Devices started again after `save` (as a vCPU
                    // starts them): worker epoll sets and eventfds.
                    libc::SYS_epoll_create1,
                    libc::SYS_eventfd2,
                    // `disk-reopen`: the old image flushed (qcow2 metadata
                    // written out) and synced, the new chain opened.
                    libc::SYS_pwrite64,
                    libc::SYS_fsync,
                    libc::SYS_fdatasync,
                    libc::SYS_fstatfs,
                    libc::SYS_preadv,
                    libc::SYS_pwritev,
                    // An internal snapshot grows the image.
                    libc::SYS_ftruncate,
                    // A save looks whether its job was aborted.
                    libc::SYS_poll,
                    libc::SYS_ppoll,
                ])
                // Control clients are checked by their credentials, and
                // replies to them have a send timeout.
                .call_if(
                    libc::SYS_getsockopt,
                    rule(vec![
                        cond(1, SeccompCmpOp::Eq, libc::SOL_SOCKET as u64),
                        cond(2, SeccompCmpOp::Eq, libc::SO_PEERCRED as u64),
                    ]),
                )
                // A NIC's `stream` backend plugged in is checked to be one.
                .call_if(
                    libc::SYS_getsockopt,
                    rule(vec![
                        cond(1, SeccompCmpOp::Eq, libc::SOL_SOCKET as u64),
                        cond(2, SeccompCmpOp::Eq, libc::SO_TYPE as u64),
                    ]),
                )
                .call_if(
                    libc::SYS_setsockopt,
                    rule(vec![
                        cond(1, SeccompCmpOp::Eq, libc::SOL_SOCKET as u64),
                        cond(2, SeccompCmpOp::Eq, libc::SO_SNDTIMEO as u64),
                    ]),
                )
                // KVM_IRQ_LINE: a balloon's config change on INTx.
                // KVM_SET_USER_MEMORY_REGION: the machine is torn down on
                // this thread, and the display adapter takes its video
                // memory's slot out of the guest before freeing it.
                // KVM_GET_IRQCHIP, KVM_GET_PIT2, KVM_SET_GSI_ROUTING: `save`
                // reads the in-kernel devices; devices started again after
                // it route their MSI-X vectors.
                .ioctls(&[
                    libc::FIONBIO,
                    KVM_GET_CLOCK(),
                    KVM_SET_CLOCK(),
                    KVM_IRQ_LINE(),
                    KVM_SET_USER_MEMORY_REGION(),
                    KVM_GET_IRQCHIP(),
                    KVM_GET_PIT2(),
                    KVM_SET_GSI_ROUTING(),
                    // BLKGETSIZE64: `disk-reopen` onto a block device.
                    0x8008_1272,
                    // `device-add` and the end of an unplug: a function's
                    // irqfds and notify ioeventfds come and go, and a
                    // NIC's tap descriptors are set up.
                    KVM_IRQFD(),
                    KVM_IOEVENTFD(),
                    libc::TUNGETIFF,
                    libc::TUNSETVNETHDRSZ,
                ]),
            ThreadKind::Launcher => {
                for other in ThreadKind::ALL {
                    if other != ThreadKind::Launcher {
                        self.kind(other);
                    }
                }
                let pr = |op: libc::c_int| rule(vec![cond(0, SeccompCmpOp::Eq, op as u64)]);
                let seccomp_filter = libc::SECCOMP_SET_MODE_FILTER as u64;
                self.calls(&[
                    libc::SYS_clone3,
                    libc::SYS_set_robust_list,
                    libc::SYS_rseq,
                    libc::SYS_sched_getaffinity,
                ])
                // glibc falls back to clone() without clone3; threads only.
                .call_if(
                    libc::SYS_clone,
                    rule(vec![cond(
                        0,
                        SeccompCmpOp::MaskedEq(libc::CLONE_THREAD as u64),
                        libc::CLONE_THREAD as u64,
                    )]),
                )
                .call_if(libc::SYS_prctl, pr(libc::PR_SET_NAME))
                .call_if(libc::SYS_prctl, pr(libc::PR_SET_NO_NEW_PRIVS))
                .call_if(
                    libc::SYS_seccomp,
                    rule(vec![cond(0, SeccompCmpOp::Eq, seccomp_filter)]),
                )
            }
            ThreadKind::Vcpu => self
                .base()
                .device_reset()
                // Device activation: worker epoll sets, eventfds, file
                // handles duplicated for helpers, tap queue setup.
                .calls(&[
                    libc::SYS_read,
                    libc::SYS_epoll_create1,
                    libc::SYS_epoll_ctl,
                    libc::SYS_eventfd2,
                    libc::SYS_fcntl,
                ])
                .ioctls(&[
                    KVM_RUN(),
                    KVM_IRQ_LINE(),
                    KVM_IRQFD(),
                    KVM_IOEVENTFD(),
                    KVM_SET_GSI_ROUTING(),
                    // The display adapter's video memory follows its BAR
                    // wherever the guest's firmware or driver puts it.
                    KVM_SET_USER_MEMORY_REGION(),
                    // Errors name RIP; instructions KVM could not emulate
                    // are finished on the vCPU's state (cpu/finish.rs).
                    KVM_GET_REGS(),
                    KVM_SET_REGS(),
                    KVM_GET_SREGS(),
                    KVM_SET_SREGS(),
                    KVM_GET_FPU(),
                    KVM_SET_FPU(),
                    KVM_TRANSLATE(),
                    KVM_GET_VCPU_EVENTS(),
                    KVM_SET_VCPU_EVENTS(),
                    // A parked vCPU reads its own state for `save`.
                    KVM_GET_MSRS(),
                    KVM_GET_LAPIC(),
                    KVM_GET_MP_STATE(),
                    KVM_GET_DEBUGREGS(),
                    KVM_GET_XSAVE(),
                    KVM_GET_XCRS(),
                ]),
            ThreadKind::SerialOut => self.base().calls(&[libc::SYS_sendto, libc::SYS_writev]),
            ThreadKind::BlockQueue => self.worker().calls(&[
                libc::SYS_pread64,
                libc::SYS_pwrite64,
                libc::SYS_preadv,
                libc::SYS_pwritev,
                libc::SYS_fsync,
                libc::SYS_fdatasync,
                libc::SYS_fallocate,
                libc::SYS_ftruncate,
                libc::SYS_fstat,
                libc::SYS_lseek,
            ]),
            ThreadKind::BlockIo => self.base().calls(&[
                libc::SYS_pread64,
                libc::SYS_pwrite64,
                libc::SYS_preadv,
                libc::SYS_pwritev,
            ]),
            ThreadKind::Net => self
                .worker()
                .calls(&[
                    libc::SYS_readv,
                    libc::SYS_writev,
                    libc::SYS_recvfrom,
                    libc::SYS_sendto,
                    libc::SYS_recvmsg,
                    libc::SYS_sendmsg,
                ])
                .ioctls(&[libc::TUNSETQUEUE]),
            ThreadKind::Vsock => self
                .worker()
                .stream_sockets()
                .calls(&[libc::SYS_connect])
                .call_if(
                    libc::SYS_socket,
                    rule(vec![cond(0, SeccompCmpOp::Eq, libc::AF_UNIX as u64)]),
                ),
            ThreadKind::Console => self.worker().stream_sockets(),
            ThreadKind::Rng => self.worker(),
            ThreadKind::Balloon => self.worker(),
            ThreadKind::Gpu => self.worker(),
            ThreadKind::Input => self.worker(),
            ThreadKind::UsbHost => self.worker(),
            // Input events reach the i8042 and USB devices from here, so
            // their interrupt lines too.
            ThreadKind::Vnc => self
                .stream_sockets()
                .base()
                .calls(&[
                    libc::SYS_read,
                    libc::SYS_poll,
                    libc::SYS_ppoll,
                    libc::SYS_getsockname,
                    libc::SYS_getpeername,
                ])
                .call_if(
                    libc::SYS_setsockopt,
                    rule(vec![cond(1, SeccompCmpOp::Eq, libc::IPPROTO_TCP as u64)]),
                )
                .call_if(
                    libc::SYS_setsockopt,
                    rule(vec![cond(1, SeccompCmpOp::Eq, libc::SOL_SOCKET as u64)]),
                )
                .ioctls(&[KVM_IRQ_LINE()]),
        }
    }
}

/// The compiled filter of `kind`.
pub fn filter(kind: ThreadKind) -> Result<BpfProgram, seccompiler::Error> {
    let mut allow = Allow::default();
    allow.kind(kind);
    let f = SeccompFilter::new(
        allow.0,
        SeccompAction::KillProcess,
        SeccompAction::Allow,
        TargetArch::x86_64,
    )?;
    Ok(f.try_into()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_filter_compiles() {
        for k in ThreadKind::ALL {
            let p = filter(k).unwrap();
            assert!(!p.is_empty(), "{k:?}");
        }
    }

    #[test]
    fn the_launcher_allows_what_any_thread_does() {
        let mut launcher = Allow::default();
        launcher.kind(ThreadKind::Launcher);
        for k in ThreadKind::ALL {
            let mut one = Allow::default();
            one.kind(k);
            for nr in one.0.keys() {
                assert!(launcher.0.contains_key(nr), "{k:?}: syscall {nr}");
            }
        }
    }

    #[test]
    fn a_vcpu_cannot_create_threads_or_sockets() {
        let mut v = Allow::default();
        v.kind(ThreadKind::Vcpu);
        for nr in [
            libc::SYS_clone3,
            libc::SYS_socket,
            libc::SYS_openat,
            libc::SYS_execve,
        ] {
            assert!(!v.0.contains_key(&nr), "{nr}");
        }
    }
}
