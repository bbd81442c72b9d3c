//! Key codes: the code sets libvirt's `virDomainSendKey` accepts, X11
//! keysyms from VNC clients, and the PS/2 scan codes the guest sees, all
//! translated through Linux input event codes (`KEY_*`).

/// The code sets of `virDomainSendKey` (libvirt's `virKeycodeSet`), in
/// libvirt's numbering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codeset {
    Linux = 0,
    Xt = 1,
    Atset1 = 2,
    Atset2 = 3,
    Atset3 = 4,
    Osx = 5,
    XtKbd = 6,
    Usb = 7,
    Win32 = 8,
    Qnum = 9,
}

/// A Linux key code for `code` of `set`.
pub fn to_linux(_set: Codeset, _code: u32) -> Option<u16> {
    None
}

/// The code of `set` for a Linux key code.
pub fn from_linux(_set: Codeset, _linux: u16) -> Option<u32> {
    None
}

/// The key (and whether Shift is part of it on a US layout) that types
/// an X11 keysym, as a VNC client's plain key event sends it.
pub fn linux_from_keysym(_keysym: u32) -> Option<(u16, bool)> {
    None
}

/// The code of the key named `name` in `set` (`KEY_A` in linux), as
/// virsh's `send-key` reads key names.
pub fn code_by_name(_set: Codeset, _name: &str) -> Option<u32> {
    None
}

/// libvirt's names of the code sets, in its numbering.
const NAMES: [(&str, Codeset); 10] = [
    ("linux", Codeset::Linux),
    ("xt", Codeset::Xt),
    ("atset1", Codeset::Atset1),
    ("atset2", Codeset::Atset2),
    ("atset3", Codeset::Atset3),
    ("os_x", Codeset::Osx),
    ("xt_kbd", Codeset::XtKbd),
    ("usb", Codeset::Usb),
    ("win32", Codeset::Win32),
    ("qnum", Codeset::Qnum),
];

impl TryFrom<u32> for Codeset {
    type Error = ();
    fn try_from(v: u32) -> Result<Self, ()> {
        NAMES.get(v as usize).map(|(_, c)| *c).ok_or(())
    }
}

impl std::str::FromStr for Codeset {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        NAMES
            .iter()
            .find(|(n, _)| *n == s)
            .map(|(_, c)| *c)
            .ok_or(())
    }
}

impl std::fmt::Display for Codeset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = NAMES
            .iter()
            .find(|(_, c)| c == self)
            .map_or("?", |(n, _)| n);
        f.write_str(name)
    }
}
