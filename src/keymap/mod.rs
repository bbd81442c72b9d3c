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
pub fn to_linux(set: Codeset, code: u32) -> Option<u16> {
    // Minimal: the XT main block equals the Linux codes; keypad Enter.
    match (set, code) {
        (Codeset::Qnum, 1..=0x58) => Some(code as u16),
        (Codeset::Qnum, 0x9c) => Some(96),
        _ => None,
    }
}

/// The code of `set` for a Linux key code.
pub fn from_linux(_set: Codeset, _linux: u16) -> Option<u32> {
    None
}

/// The key (and whether Shift is part of it on a US layout) that types
/// an X11 keysym, as a VNC client's plain key event sends it.
pub fn linux_from_keysym(keysym: u32) -> Option<(u16, bool)> {
    // Minimal: letters, Return and the Shift keys.
    const LETTERS: [u16; 26] = [
        30, 48, 46, 32, 18, 33, 34, 35, 23, 36, 37, 38, 50, 49, 24, 25, 16, 19, 31, 20, 22, 47, 17,
        45, 21, 44,
    ];
    match keysym {
        0x61..=0x7a => Some((LETTERS[(keysym - 0x61) as usize], false)),
        0x41..=0x5a => Some((LETTERS[(keysym - 0x41) as usize], true)),
        0xff0d => Some((28, false)),
        0xffe1 => Some((42, false)),
        0xffe2 => Some((54, false)),
        _ => None,
    }
}
