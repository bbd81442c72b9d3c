//! Key codes: the code sets libvirt's `virDomainSendKey` accepts, X11
//! keysyms from VNC clients, and the PS/2 scan codes the guest sees, all
//! translated through Linux input event codes (`KEY_*`).
//!
//! The tables come from libvirt's keycodemapdb ([`tables`], generated).
//! Like libvirt, `xt` is AT set 1 (0xE0-prefixed keys as 0xE0xx), `xt_kbd`
//! is AT set 1 with the prefix as 0x100 | xx and `qnum` with it as
//! 0x80 | xx.

mod layouts;
mod tables;

use std::fmt;
use std::str::FromStr;

use tables::{KEYS, KEYSYMS, Key};

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

impl Codeset {
    /// Every set, in libvirt's order.
    pub const ALL: [Codeset; 10] = [
        Codeset::Linux,
        Codeset::Xt,
        Codeset::Atset1,
        Codeset::Atset2,
        Codeset::Atset3,
        Codeset::Osx,
        Codeset::XtKbd,
        Codeset::Usb,
        Codeset::Win32,
        Codeset::Qnum,
    ];

    /// libvirt's name of the set.
    pub fn as_str(self) -> &'static str {
        match self {
            Codeset::Linux => "linux",
            Codeset::Xt => "xt",
            Codeset::Atset1 => "atset1",
            Codeset::Atset2 => "atset2",
            Codeset::Atset3 => "atset3",
            Codeset::Osx => "os_x",
            Codeset::XtKbd => "xt_kbd",
            Codeset::Usb => "usb",
            Codeset::Win32 => "win32",
            Codeset::Qnum => "qnum",
        }
    }
}

impl fmt::Display for Codeset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code set name libvirt does not know.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown codeset: '{0}'")]
pub struct UnknownCodeset(pub String);

impl FromStr for Codeset {
    type Err = UnknownCodeset;

    /// libvirt's names, and `rfb`, the old name of `qnum` virsh accepts.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "rfb" {
            return Ok(Codeset::Qnum);
        }
        Codeset::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .ok_or_else(|| UnknownCodeset(s.to_string()))
    }
}

impl TryFrom<u32> for Codeset {
    type Error = u32;

    /// The set of libvirt's number, or the number back if there is none.
    fn try_from(n: u32) -> Result<Self, u32> {
        Codeset::ALL.into_iter().find(|&c| c as u32 == n).ok_or(n)
    }
}

/// AT set 1 code with the 0xE0 prefix re-encoded as `prefix_bit | xx`
/// (xt_kbd: 0x100, qnum: 0x80).
fn at1_reencoded(at1: u16, prefix_bit: u16) -> u16 {
    if at1 > 0x7f {
        prefix_bit | (at1 & 0x7f)
    } else {
        at1
    }
}

/// The key's code in `set`.
fn code_of(key: &Key, set: Codeset) -> Option<u32> {
    let code = match set {
        Codeset::Linux => Some(key.linux),
        Codeset::Xt | Codeset::Atset1 => key.atset1,
        Codeset::Atset2 => key.atset2,
        Codeset::Atset3 => key.atset3,
        Codeset::Osx => key.osx,
        Codeset::XtKbd => key.atset1.map(|c| at1_reencoded(c, 0x100)),
        Codeset::Usb => key.usb,
        Codeset::Win32 => key.win32,
        Codeset::Qnum => key.atset1.map(|c| at1_reencoded(c, 0x80)),
    };
    code.map(u32::from)
}

fn key_of(linux: u16) -> Option<&'static Key> {
    KEYS.binary_search_by_key(&linux, |k| k.linux)
        .ok()
        .and_then(|i| KEYS.get(i))
}

/// A Linux key code for `code` of `set`.
///
/// Where several keys share a code, the first in Linux order wins as in
/// libvirt's `virKeycodeValueTranslate`, except that keys the database
/// leaves unnamed only come last (AT set 1 0x54 is KEY_SYSRQ, not the
/// unnamed key 84 that shares it).
pub fn to_linux(set: Codeset, code: u32) -> Option<u16> {
    let mut unnamed = None;
    for key in KEYS {
        if code_of(key, set) == Some(code) {
            if key.name.is_some() {
                return Some(key.linux);
            }
            unnamed = unnamed.or(Some(key.linux));
        }
    }
    unnamed
}

/// The code of `set` for a Linux key code.
pub fn from_linux(set: Codeset, linux: u16) -> Option<u32> {
    key_of(linux).and_then(|k| code_of(k, set))
}

/// The code of `set` for a key name, as virsh's `send-key` accepts them:
/// `KEY_*` for linux, the OS-X names for os_x, `VK_*` for win32. The other
/// sets have no names.
pub fn code_by_name(set: Codeset, name: &str) -> Option<u32> {
    let name_of = |k: &Key| match set {
        Codeset::Linux => k.name,
        Codeset::Osx => k.osx_name,
        Codeset::Win32 => k.win32_name,
        _ => None,
    };
    KEYS.iter()
        .find(|k| name_of(k) == Some(name))
        .and_then(|k| code_of(k, set))
}

/// The Linux name (`KEY_*`) of a Linux key code.
pub fn linux_name(linux: u16) -> Option<&'static str> {
    key_of(linux).and_then(|k| k.name)
}

/// Characters a US keyboard types with Shift held.
const US_SHIFTED: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ!@#$%^&*()_+{}|:\"<>?~";

/// X11 keysyms the database does not list, with the key that types them
/// on a US keyboard and whether Shift is part of it.
const EXTRA_KEYSYMS: &[(u32, u16, bool)] = &[
    (0xfe03, 100, false), // ISO_Level3_Shift: AltGr is the right Alt key
    (0xfe20, 15, true),   // ISO_Left_Tab: Shift+Tab
    (0xff61, 99, false),  // Print: the Print Screen/SysRq key
    (0xff67, 127, false), // Menu: KEY_COMPOSE
    (0xff6b, 119, false), // Break: the Pause key
    (0xff80, 57, false),  // KP_Space
    (0xff89, 15, false),  // KP_Tab
    (0xff95, 71, false),  // KP_Home
    (0xff96, 75, false),  // KP_Left
    (0xff97, 72, false),  // KP_Up
    (0xff98, 77, false),  // KP_Right
    (0xff99, 80, false),  // KP_Down
    (0xff9a, 73, false),  // KP_Page_Up
    (0xff9b, 81, false),  // KP_Page_Down
    (0xff9c, 79, false),  // KP_End
    (0xff9d, 76, false),  // KP_Begin
    (0xff9e, 82, false),  // KP_Insert
    (0xff9f, 83, false),  // KP_Delete
    (0xffaa, 55, false),  // KP_Multiply
    (0xffeb, 125, false), // Super_L
    (0xffec, 126, false), // Super_R
    (0xffe6, 58, false),  // Shift_Lock: Caps Lock
];

/// The key (and whether Shift is part of it on a US layout) that types
/// an X11 keysym, as a VNC client's plain key event sends it.
pub fn linux_from_keysym(keysym: u32) -> Option<(u16, bool)> {
    if let Some(&(_, linux, shift)) = EXTRA_KEYSYMS.iter().find(|e| e.0 == keysym) {
        return Some((linux, shift));
    }
    let linux = KEYSYMS
        .binary_search_by_key(&keysym, |e| e.0)
        .ok()
        .and_then(|i| KEYSYMS.get(i))
        .map(|e| e.1)?;
    let shifted = char::from_u32(keysym).is_some_and(|c| US_SHIFTED.contains(c));
    Some((linux, shifted))
}

/// A keyboard layout of `<graphics keymap='NAME'>`: which key, with
/// which modifiers, types a keysym on that layout (the tables QEMU's
/// `-k NAME` reads, generated in [`layouts`]).
#[derive(Clone, Copy, Debug)]
pub struct Layout {
    name: &'static str,
    entries: &'static [(u32, u16)],
}

/// Modifier bits of a [`LayoutKey`] (the generated tables keep them in
/// bits 8-10 of each code, in this order).
pub const MOD_SHIFT: u8 = 1;
pub const MOD_ALTGR: u8 = 2;
pub const MOD_CTRL: u8 = 4;

/// One way of typing a keysym on a [`Layout`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LayoutKey {
    /// The key, as a Linux key code.
    pub linux: u16,
    /// Modifiers held with it ([`MOD_SHIFT`], [`MOD_ALTGR`], [`MOD_CTRL`]).
    pub modifiers: u8,
}

impl Layout {
    /// The layout QEMU names `name` (`de`, `fr-ch`, `en-us`, ...).
    pub fn named(name: &str) -> Option<Layout> {
        layouts::LAYOUTS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|&(name, entries)| Layout { name, entries })
    }

    /// Every layout's name.
    pub fn names() -> impl Iterator<Item = &'static str> {
        layouts::LAYOUTS.iter().map(|(n, _)| *n)
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The keys that type `keysym`, in the layout's order of preference
    /// (a keysym is either the layout's own or common to all).
    pub fn keys(&self, keysym: u32) -> impl Iterator<Item = LayoutKey> + '_ {
        let of = move |table: &'static [(u32, u16)]| {
            let start = table.partition_point(|e| e.0 < keysym);
            table[start..].iter().take_while(move |e| e.0 == keysym)
        };
        of(self.entries)
            .chain(of(layouts::COMMON))
            .filter_map(|&(_, code)| {
                let scan = u32::from(code & 0xff);
                Some(LayoutKey {
                    linux: to_linux(Codeset::Qnum, scan)?,
                    modifiers: (code >> 8) as u8,
                })
            })
    }
}

/// Linux key codes whose PS/2 bytes are not a plain (prefixed) scan code.
const KEY_SYSRQ: u16 = 99;
const KEY_PAUSE: u16 = 119;

/// The bytes a PS/2 keyboard in scan code `set` (1, 2 or 3) sends when the
/// key is pressed (`down`) or released; empty if the key has none.
///
/// Print Screen is the 0xE0-prefixed fake Shift plus the key, as a real
/// keyboard sends it without modifiers held; Pause sends its whole
/// make-and-break sequence when pressed and nothing when released.
pub fn ps2_bytes(linux: u16, set: u8, down: bool) -> Vec<u8> {
    match (linux, set, down) {
        (KEY_PAUSE, 1 | 2, false) => return Vec::new(),
        (KEY_PAUSE, 1, true) => return vec![0xe1, 0x1d, 0x45, 0xe1, 0x9d, 0xc5],
        (KEY_PAUSE, 2, true) => return vec![0xe1, 0x14, 0x77, 0xe1, 0xf0, 0x14, 0xf0, 0x77],
        (KEY_SYSRQ, 1, true) => return vec![0xe0, 0x2a, 0xe0, 0x37],
        (KEY_SYSRQ, 1, false) => return vec![0xe0, 0xb7, 0xe0, 0xaa],
        (KEY_SYSRQ, 2, true) => return vec![0xe0, 0x12, 0xe0, 0x7c],
        (KEY_SYSRQ, 2, false) => return vec![0xe0, 0xf0, 0x7c, 0xe0, 0xf0, 0x12],
        _ => {}
    }
    let Some(key) = key_of(linux) else {
        return Vec::new();
    };
    let code = match set {
        1 => key.atset1,
        2 => key.atset2,
        3 => key.atset3,
        _ => None,
    };
    let Some(code) = code else {
        return Vec::new();
    };
    let [prefix, byte] = code.to_be_bytes();
    let mut out = Vec::with_capacity(3);
    if set != 3 && prefix == 0xe0 {
        out.push(0xe0);
    }
    match (set, down) {
        (_, true) => out.push(byte),
        (1, false) => out.push(byte | 0x80),
        (_, false) => out.extend_from_slice(&[0xf0, byte]),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: u16 = 30;
    const KEY_RIGHTCTRL: u16 = 97;
    const KEY_LEFTCTRL: u16 = 29;
    const KEY_ENTER: u16 = 28;
    const KEY_1: u16 = 2;
    const KEY_F1: u16 = 59;

    #[test]
    fn layouts_type_keysyms_with_their_keys_and_modifiers() {
        let de = Layout::named("de").unwrap();
        let first = |l: &Layout, sym: u32| l.keys(sym).next().unwrap();
        let key = |linux, modifiers| LayoutKey { linux, modifiers };
        // German: Y and Z swapped, '/' is Shift+7, '@' is AltGr+Q, and
        // the upper case from `addupper`.
        assert_eq!(first(&de, 'z' as u32), key(21, 0));
        assert_eq!(first(&de, 'y' as u32), key(44, 0));
        assert_eq!(first(&de, 'Z' as u32), key(21, MOD_SHIFT));
        assert_eq!(first(&de, '/' as u32), key(8, MOD_SHIFT));
        assert_eq!(first(&de, '@' as u32), key(16, MOD_ALTGR));
        let us = Layout::named("en-us").unwrap();
        assert_eq!(first(&us, 'z' as u32), key(44, 0));
        assert_eq!(first(&us, '/' as u32), key(53, 0));
        assert!(de.keys(0x10ff_ffff).next().is_none());
        assert!(Layout::named("xx").is_none());
        assert_eq!(Layout::names().count(), 34);
        assert_eq!(de.name(), "de");
    }

    #[test]
    fn key_a_in_every_set() {
        let expect = [
            (Codeset::Linux, 30),
            (Codeset::Xt, 0x1e),
            (Codeset::Atset1, 0x1e),
            (Codeset::Atset2, 0x1c),
            (Codeset::Atset3, 0x1c),
            (Codeset::Osx, 0x00),
            (Codeset::XtKbd, 0x1e),
            (Codeset::Usb, 4),
            (Codeset::Win32, 0x41),
            (Codeset::Qnum, 0x1e),
        ];
        for (set, code) in expect {
            assert_eq!(from_linux(set, KEY_A), Some(code), "{set}");
            assert_eq!(to_linux(set, code), Some(KEY_A), "{set}");
        }
    }

    #[test]
    fn extended_keys_per_set() {
        assert_eq!(from_linux(Codeset::Atset1, KEY_RIGHTCTRL), Some(0xe01d));
        assert_eq!(from_linux(Codeset::Xt, KEY_RIGHTCTRL), Some(0xe01d));
        assert_eq!(from_linux(Codeset::XtKbd, KEY_RIGHTCTRL), Some(0x11d));
        assert_eq!(from_linux(Codeset::Qnum, KEY_RIGHTCTRL), Some(0x9d));
        assert_eq!(from_linux(Codeset::Atset2, KEY_RIGHTCTRL), Some(0xe014));
        assert_eq!(from_linux(Codeset::Usb, KEY_RIGHTCTRL), Some(228));
        assert_eq!(to_linux(Codeset::Qnum, 0x9d), Some(KEY_RIGHTCTRL));
        assert_eq!(to_linux(Codeset::XtKbd, 0x11d), Some(KEY_RIGHTCTRL));
        // Shared AT set 1 code: the named key wins over the unnamed one.
        assert_eq!(to_linux(Codeset::Atset1, 0x54), Some(KEY_SYSRQ));
        assert_eq!(to_linux(Codeset::Atset1, 0x7777), None);
    }

    #[test]
    fn codeset_names_and_numbers() {
        for set in Codeset::ALL {
            assert_eq!(set.to_string().parse::<Codeset>(), Ok(set));
            assert_eq!(Codeset::try_from(set as u32), Ok(set));
        }
        assert_eq!("rfb".parse::<Codeset>(), Ok(Codeset::Qnum));
        assert_eq!("os_x".parse::<Codeset>(), Ok(Codeset::Osx));
        assert!("osx".parse::<Codeset>().is_err());
        assert_eq!(Codeset::try_from(10), Err(10));
        assert_eq!(Codeset::try_from(6), Ok(Codeset::XtKbd));
    }

    #[test]
    fn key_names() {
        assert_eq!(
            code_by_name(Codeset::Linux, "KEY_LEFTCTRL"),
            Some(KEY_LEFTCTRL.into())
        );
        assert_eq!(code_by_name(Codeset::Win32, "VK_RETURN"), Some(0x0d));
        assert_eq!(code_by_name(Codeset::Osx, "ANSI_A"), Some(0x00));
        assert_eq!(code_by_name(Codeset::Qnum, "KEY_A"), None);
        assert_eq!(code_by_name(Codeset::Linux, "KEY_NOPE"), None);
        assert_eq!(linux_name(KEY_ENTER), Some("KEY_ENTER"));
    }

    #[test]
    fn keysyms_us_layout() {
        assert_eq!(linux_from_keysym('a' as u32), Some((KEY_A, false)));
        assert_eq!(linux_from_keysym('A' as u32), Some((KEY_A, true)));
        assert_eq!(linux_from_keysym('!' as u32), Some((KEY_1, true)));
        assert_eq!(linux_from_keysym('1' as u32), Some((KEY_1, false)));
        assert_eq!(linux_from_keysym('\\' as u32), Some((43, false)));
        assert_eq!(linux_from_keysym('_' as u32), Some((12, true)));
        assert_eq!(linux_from_keysym(0xff0d), Some((KEY_ENTER, false)));
        assert_eq!(linux_from_keysym(0xffbe), Some((KEY_F1, false)));
        assert_eq!(linux_from_keysym(0xffe4), Some((KEY_RIGHTCTRL, false)));
        assert_eq!(linux_from_keysym(0xff9f), Some((83, false)));
        assert_eq!(linux_from_keysym(0x12345678), None);
        for c in US_SHIFTED.chars() {
            let (_, shift) = linux_from_keysym(c as u32).expect("US symbol");
            assert!(shift, "{c}");
        }
    }

    #[test]
    fn scan_code_bytes() {
        assert_eq!(ps2_bytes(KEY_A, 1, true), [0x1e]);
        assert_eq!(ps2_bytes(KEY_A, 1, false), [0x9e]);
        assert_eq!(ps2_bytes(KEY_A, 2, true), [0x1c]);
        assert_eq!(ps2_bytes(KEY_A, 2, false), [0xf0, 0x1c]);
        assert_eq!(ps2_bytes(KEY_A, 3, false), [0xf0, 0x1c]);
        assert_eq!(ps2_bytes(KEY_RIGHTCTRL, 1, true), [0xe0, 0x1d]);
        assert_eq!(ps2_bytes(KEY_RIGHTCTRL, 1, false), [0xe0, 0x9d]);
        assert_eq!(ps2_bytes(KEY_RIGHTCTRL, 2, true), [0xe0, 0x14]);
        assert_eq!(ps2_bytes(KEY_RIGHTCTRL, 2, false), [0xe0, 0xf0, 0x14]);
        assert_eq!(ps2_bytes(KEY_PAUSE, 1, true).len(), 6);
        assert!(ps2_bytes(KEY_PAUSE, 2, false).is_empty());
        assert_eq!(ps2_bytes(KEY_SYSRQ, 1, true), [0xe0, 0x2a, 0xe0, 0x37]);
        assert!(ps2_bytes(KEY_A, 4, true).is_empty());
        assert!(ps2_bytes(0xffff, 2, true).is_empty());
    }

    #[test]
    fn round_trips_over_the_table() {
        let mut checked = 0;
        for key in KEYS {
            for set in Codeset::ALL {
                let Some(code) = from_linux(set, key.linux) else {
                    continue;
                };
                // Keys may share a code; the key found has the same code.
                let back = to_linux(set, code).expect("a code maps back");
                assert_eq!(from_linux(set, back), Some(code), "{set} {code:#x}");
                checked += 1;
            }
            if let Some(name) = key.name {
                let linux = code_by_name(Codeset::Linux, name).expect("named");
                assert_eq!(from_linux(Codeset::Linux, linux as u16), Some(linux));
            }
            // Every AT set 1 key's bytes decode back to its code.
            if let Some(at1) = key.atset1
                && key.linux != KEY_SYSRQ
                && key.linux != KEY_PAUSE
            {
                let make = ps2_bytes(key.linux, 1, true);
                let code = make.iter().fold(0u16, |acc, &b| (acc << 8) | u16::from(b));
                assert_eq!(code, at1);
            }
        }
        assert!(checked > 1000, "{checked}");
    }
}
