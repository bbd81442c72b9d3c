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

impl TryFrom<u32> for Codeset {
    type Error = ();
    fn try_from(v: u32) -> Result<Self, ()> {
        Err(drop(v))
    }
}

impl std::fmt::Display for Codeset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self:?}")
    }
}
