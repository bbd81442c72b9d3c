//! A client's key events as Linux key codes: keysyms through the
//! domain's keyboard layout (`keymap`; the US layout without one),
//! adding the Shift or AltGr a key needs when the client does not hold
//! it; QEMU extended key events through their scan code. Keys still down
//! when the client goes are released.

use crate::keymap::{self, Codeset, Layout, LayoutKey, MOD_ALTGR, MOD_CTRL, MOD_SHIFT};
use crate::vmm::display::InputSink;
use std::collections::BTreeSet;

const XK_TAB: u32 = 0xff09;
const XK_ISO_LEFT_TAB: u32 = 0xfe20;
const KEY_LEFTSHIFT: u16 = 42;
const KEY_RIGHTALT: u16 = 100;

/// The modifier keysyms whose state decides which key types a keysym,
/// and the modifier each is.
const MODIFIER_KEYSYMS: [(u32, u8); 6] = [
    (0xffe1, MOD_SHIFT), // Shift_L
    (0xffe2, MOD_SHIFT), // Shift_R
    (0xfe03, MOD_ALTGR), // ISO_Level3_Shift
    (0xff7e, MOD_ALTGR), // Mode_switch
    (0xffe3, MOD_CTRL),  // Control_L
    (0xffe4, MOD_CTRL),  // Control_R
];

pub struct KeyState {
    layout: Option<Layout>,
    /// Modifier keysyms the client holds: bit i for
    /// `MODIFIER_KEYSYMS[i]`.
    held: u8,
    /// Linux codes pressed and not yet released.
    down: BTreeSet<u16>,
}

impl KeyState {
    pub fn new(layout: Option<Layout>) -> KeyState {
        KeyState {
            layout,
            held: 0,
            down: BTreeSet::new(),
        }
    }

    fn send(&mut self, input: &dyn InputSink, code: u16, down: bool) {
        if down {
            self.down.insert(code);
        } else {
            self.down.remove(&code);
        }
        input.key(code, down);
    }

    fn track_modifiers(&mut self, keysym: u32, down: bool) {
        let Some(i) = MODIFIER_KEYSYMS.iter().position(|m| m.0 == keysym) else {
            return;
        };
        if down {
            self.held |= 1 << i;
        } else {
            self.held &= !(1 << i);
        }
    }

    /// Which modifiers (`MOD_*` bits) the client holds.
    fn modifiers(&self) -> u8 {
        MODIFIER_KEYSYMS
            .iter()
            .enumerate()
            .filter(|(i, _)| self.held & (1 << i) != 0)
            .fold(0, |m, (_, &(_, modifier))| m | modifier)
    }

    /// Presses `key` (with the Shift and AltGr it needs and the client
    /// does not hold, released again right after), or releases it.
    fn type_key(&mut self, input: &dyn InputSink, key: LayoutKey, down: bool) {
        let held = self.modifiers();
        let missing = if down { key.modifiers & !held } else { 0 };
        let add_shift = missing & MOD_SHIFT != 0;
        let add_altgr = missing & MOD_ALTGR != 0;
        if add_shift {
            input.key(KEY_LEFTSHIFT, true);
        }
        if add_altgr {
            input.key(KEY_RIGHTALT, true);
        }
        self.send(input, key.linux, down);
        if add_altgr {
            input.key(KEY_RIGHTALT, false);
        }
        if add_shift {
            input.key(KEY_LEFTSHIFT, false);
        }
    }

    /// The key of `layout` for `keysym`: on a press the one whose
    /// modifiers are those held, on a release one that is down, else
    /// the layout's first (QEMU's choice).
    fn layout_key(&self, layout: &Layout, keysym: u32, down: bool) -> Option<LayoutKey> {
        let keysym = if keysym == XK_ISO_LEFT_TAB {
            XK_TAB
        } else {
            keysym
        };
        let held = self.modifiers();
        let mut first = None;
        for k in layout.keys(keysym) {
            first.get_or_insert(k);
            if (down && k.modifiers == held) || (!down && self.down.contains(&k.linux)) {
                return Some(k);
            }
        }
        first
    }

    /// An RFB KeyEvent.
    pub fn keysym(&mut self, input: &dyn InputSink, keysym: u32, down: bool) {
        self.track_modifiers(keysym, down);
        // Keys the layout does not name (it names every key of its own
        // keyboard) are taken from the US layout.
        let key = self
            .layout
            .and_then(|l| self.layout_key(&l, keysym, down))
            .or_else(|| {
                keymap::linux_from_keysym(keysym).map(|(linux, shift)| LayoutKey {
                    linux,
                    modifiers: u8::from(shift) * MOD_SHIFT,
                })
            });
        match key {
            Some(key) => self.type_key(input, key, down),
            None => tracing::debug!("vnc: no key for keysym {keysym:#x}"),
        }
    }

    /// A QEMU extended key event: the scan code (qnum) wins when known.
    pub fn qnum(&mut self, input: &dyn InputSink, keysym: u32, qnum: u32, down: bool) {
        let code = if qnum != 0 {
            keymap::to_linux(Codeset::Qnum, qnum)
        } else {
            None
        };
        match code {
            Some(code) => {
                self.track_modifiers(keysym, down);
                self.send(input, code, down);
            }
            None => self.keysym(input, keysym, down),
        }
    }

    /// Releases every key still down.
    pub fn release_all(&mut self, input: &dyn InputSink) {
        for code in std::mem::take(&mut self.down) {
            input.key(code, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vmm::display::Buttons;
    use std::sync::Mutex;

    #[derive(Default)]
    struct Keys(Mutex<Vec<(u16, bool)>>);

    impl InputSink for Keys {
        fn key(&self, code: u16, down: bool) {
            self.0.lock().unwrap().push((code, down));
        }
        fn pointer(&self, _: u32, _: u32, _: u32, _: u32, _: Buttons) {}
    }

    impl Keys {
        fn take(&self) -> Vec<(u16, bool)> {
            std::mem::take(&mut self.0.lock().unwrap())
        }
    }

    const KEY_7: u16 = 8;
    const KEY_Q: u16 = 16;
    const KEY_Y: u16 = 21;
    const KEY_Z: u16 = 44;
    const KEY_SLASH: u16 = 53;

    fn press(state: &mut KeyState, keys: &Keys, keysym: u32) -> Vec<(u16, bool)> {
        state.keysym(keys, keysym, true);
        state.keysym(keys, keysym, false);
        keys.take()
    }

    #[test]
    fn keysyms_are_typed_on_the_domains_layout() {
        let keys = Keys::default();
        let mut de = KeyState::new(Layout::named("de"));
        // 'z' is the key US keyboards call Y.
        assert_eq!(
            press(&mut de, &keys, 'z' as u32),
            [(KEY_Y, true), (KEY_Y, false)]
        );
        // '/' is Shift+7: Shift added when the client does not hold it...
        assert_eq!(
            press(&mut de, &keys, '/' as u32),
            [
                (KEY_LEFTSHIFT, true),
                (KEY_7, true),
                (KEY_LEFTSHIFT, false),
                (KEY_7, false)
            ]
        );
        // ...and not when it does (the client's Shift goes through).
        de.keysym(&keys, 0xffe1, true);
        assert_eq!(keys.take(), [(KEY_LEFTSHIFT, true)]);
        assert_eq!(
            press(&mut de, &keys, '/' as u32),
            [(KEY_7, true), (KEY_7, false)]
        );
        de.keysym(&keys, 0xffe1, false);
        keys.take();
        // '@' is AltGr+Q.
        assert_eq!(
            press(&mut de, &keys, '@' as u32),
            [
                (KEY_RIGHTALT, true),
                (KEY_Q, true),
                (KEY_RIGHTALT, false),
                (KEY_Q, false)
            ]
        );
        // The US layout without a keymap.
        let mut us = KeyState::new(None);
        assert_eq!(
            press(&mut us, &keys, 'z' as u32),
            [(KEY_Z, true), (KEY_Z, false)]
        );
        assert_eq!(
            press(&mut us, &keys, '/' as u32),
            [(KEY_SLASH, true), (KEY_SLASH, false)]
        );
    }

    #[test]
    fn a_keysym_typed_by_several_keys_takes_the_one_matching_the_modifiers() {
        let keys = Keys::default();
        let mut de = KeyState::new(Layout::named("de"));
        // ISO_Left_Tab is Tab; F-keys and the like come from the US table
        // when the layout has them too.
        assert_eq!(
            press(&mut de, &keys, XK_ISO_LEFT_TAB),
            [(15, true), (15, false)]
        );
        assert_eq!(press(&mut de, &keys, 0xffbe), [(59, true), (59, false)]);
        // A keysym no layout knows is ignored.
        assert!(press(&mut de, &keys, 0x10ff_fff0).is_empty());
    }
}
