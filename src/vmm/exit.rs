//! Why the guest stopped, and the process exit status that says so.
//!
//! | status | reason |
//! | ------ | ------ |
//! | 0 | guest powered off (ACPI S5 through the FADT sleep control register) |
//! | 1 | error: bad configuration, missing kernel, KVM refused an operation, ... |
//! | 2 | guest asked for a reboot (ACPI reset register, i8042 0xFE, `reset` command) or triple-faulted (KVM_EXIT_SHUTDOWN: a processor shutdown resets the machine, as on a PC and under QEMU) |
//! | 3 | guest reported a crash (KVM_SYSTEM_EVENT_CRASH) |
//! | 4 | KVM internal error or emulation failure (details on stderr) |
//! | 5 | stopped by the host: `quit` command, SIGTERM, SIGINT or SIGHUP |

use std::sync::Mutex;

use serde::Serialize;
use vmm_sys_util::eventfd::EventFd;

/// The reason reported in the `shutdown` event and encoded in the exit status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ExitReason {
    /// ACPI S5 requested by the guest.
    Poweroff,
    /// Guest or host asked for a reset; the daemon restarts the VMM.
    Reboot,
    /// The guest triple-faulted: the machine resets, as a reboot does.
    TripleFault,
    /// The guest reported a crash (KVM_SYSTEM_EVENT_CRASH).
    Crash,
    /// KVM could not continue running the guest.
    InternalError,
    /// The host stopped the guest (quit command or signal).
    Quit,
}

impl ExitReason {
    /// Process exit status for this reason; see the module table.
    pub fn exit_code(self) -> i32 {
        match self {
            ExitReason::Poweroff => 0,
            ExitReason::Reboot | ExitReason::TripleFault => 2,
            ExitReason::Crash => 3,
            ExitReason::InternalError => 4,
            ExitReason::Quit => 5,
        }
    }

    /// Name used in the `shutdown` event's `reason` field.
    pub fn as_str(self) -> &'static str {
        match self {
            ExitReason::Poweroff => "poweroff",
            ExitReason::Reboot => "reboot",
            ExitReason::TripleFault => "triple-fault",
            ExitReason::Crash => "crash",
            ExitReason::InternalError => "internal-error",
            ExitReason::Quit => "quit",
        }
    }
}

/// Exit status used for every error before or while running the guest.
pub const EXIT_ERROR: i32 = 1;

/// Where devices and vCPUs report that the guest must stop. The first
/// reason wins; the main loop is woken through the eventfd.
pub struct ExitSignal {
    reason: Mutex<Option<ExitReason>>,
    evt: EventFd,
}

impl ExitSignal {
    /// Creates the signal with its eventfd.
    pub fn new() -> std::io::Result<Self> {
        Ok(ExitSignal {
            reason: Mutex::new(None),
            evt: EventFd::new(libc::EFD_NONBLOCK)?,
        })
    }

    /// Records `reason` unless one is already recorded, and wakes the loop.
    pub fn request(&self, reason: ExitReason) {
        let mut r = match self.reason.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        if r.is_none() {
            *r = Some(reason);
        }
        drop(r);
        if let Err(e) = self.evt.write(1) {
            tracing::error!("cannot wake the main loop: {e}");
        }
    }

    /// The recorded reason, if any.
    pub fn reason(&self) -> Option<ExitReason> {
        match self.reason.lock() {
            Ok(g) => *g,
            Err(p) => *p.into_inner(),
        }
    }

    /// The eventfd to poll.
    pub fn eventfd(&self) -> &EventFd {
        &self.evt
    }
}
