//! A client's key events as Linux key codes: keysyms through the US
//! layout (adding Shift when the client does not hold it), QEMU extended
//! key events through their scan code. Keys still down when the client
//! goes are released.

use crate::keymap::{self, Codeset};
use crate::vmm::display::InputSink;
use std::collections::BTreeSet;

const XK_SHIFT_L: u32 = 0xffe1;
const XK_SHIFT_R: u32 = 0xffe2;
const KEY_LEFTSHIFT: u16 = 42;

#[derive(Default)]
pub struct KeyState {
    /// Shift keysyms the client holds (bit 0 left, bit 1 right).
    shift: u8,
    /// Linux codes pressed and not yet released.
    down: BTreeSet<u16>,
}

impl KeyState {
    fn send(&mut self, input: &dyn InputSink, code: u16, down: bool) {
        if down {
            self.down.insert(code);
        } else {
            self.down.remove(&code);
        }
        input.key(code, down);
    }

    fn track_shift(&mut self, keysym: u32, down: bool) {
        let bit = match keysym {
            XK_SHIFT_L => 1,
            XK_SHIFT_R => 2,
            _ => return,
        };
        if down {
            self.shift |= bit;
        } else {
            self.shift &= !bit;
        }
    }

    /// An RFB KeyEvent.
    pub fn keysym(&mut self, input: &dyn InputSink, keysym: u32, down: bool) {
        self.track_shift(keysym, down);
        let Some((code, needs_shift)) = keymap::linux_from_keysym(keysym) else {
            tracing::debug!("vnc: no key for keysym {keysym:#x}");
            return;
        };
        if needs_shift && down && self.shift == 0 {
            input.key(KEY_LEFTSHIFT, true);
            self.send(input, code, true);
            input.key(KEY_LEFTSHIFT, false);
        } else {
            self.send(input, code, down);
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
                self.track_shift(keysym, down);
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
