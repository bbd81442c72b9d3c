//! The PS/2 keyboard behind the i8042: an MF2 keyboard that answers the
//! host's commands and sends scan codes for Linux key codes.

use std::collections::VecDeque;

use crate::keymap::ps2_bytes;

/// Scan code bytes the keyboard holds before it drops new key events, as
/// QEMU's keyboard does.
const EVENT_QUEUE_BYTES: usize = 16;

const ACK: u8 = 0xfa;
const RESEND: u8 = 0xfe;
const SELF_TEST_PASSED: u8 = 0xaa;
const ECHO: u8 = 0xee;

/// Commands that take one parameter byte.
const SET_LEDS: u8 = 0xed;
const SCAN_CODE_SET: u8 = 0xf0;
const TYPEMATIC: u8 = 0xf3;

/// What the scan code set query answers with translation on, indexed by
/// set: the set-2 byte the controller turns into these set-1 bytes.
const TRANSLATED_SET_ID: [u8; 4] = [0, 0x43, 0x41, 0x3f];

#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Keyboard {
    /// Answers to the last command; a new command discards them.
    replies: VecDeque<u8>,
    /// Scan codes of key events.
    events: VecDeque<u8>,
    /// A command waiting for its parameter byte.
    awaiting: Option<u8>,
    scan_set: u8,
    scanning: bool,
    /// The controller translates set 2 into set 1 (command byte bit 6).
    translate: bool,
    leds: u8,
}

impl Default for Keyboard {
    fn default() -> Self {
        Keyboard {
            replies: VecDeque::new(),
            events: VecDeque::new(),
            awaiting: None,
            scan_set: 2,
            scanning: true,
            translate: false,
            leds: 0,
        }
    }
}

impl Keyboard {
    pub fn set_translate(&mut self, on: bool) {
        self.translate = on;
    }

    /// The LED state last set (bit 0 Scroll, 1 Num, 2 Caps Lock).
    pub fn leds(&self) -> u8 {
        self.leds
    }

    /// The next byte for the controller: answers before scan codes.
    pub fn pop(&mut self) -> Option<u8> {
        self.replies.pop_front().or_else(|| self.events.pop_front())
    }

    /// Back to the power-on settings (set 2, no LEDs), nothing pending.
    fn set_defaults(&mut self) {
        self.scan_set = 2;
        self.leds = 0;
        self.awaiting = None;
        self.events.clear();
    }

    fn reply(&mut self, bytes: &[u8]) {
        self.replies.extend(bytes);
    }

    /// A byte from the host (port 0x60 with no controller command pending).
    pub fn write(&mut self, byte: u8) {
        self.replies.clear();
        if let Some(cmd) = self.awaiting.take() {
            self.parameter(cmd, byte);
            return;
        }
        match byte {
            0xff => {
                self.set_defaults();
                self.scanning = true;
                self.reply(&[ACK, SELF_TEST_PASSED]);
            }
            0xf6 => {
                self.set_defaults();
                self.scanning = true;
                self.reply(&[ACK]);
            }
            0xf5 => {
                self.set_defaults();
                self.scanning = false;
                self.reply(&[ACK]);
            }
            0xf4 => {
                self.scanning = true;
                self.reply(&[ACK]);
            }
            0xf2 => {
                let id = if self.translate { 0x41 } else { 0x83 };
                self.reply(&[ACK, 0xab, id]);
            }
            ECHO => self.reply(&[ECHO]),
            SET_LEDS | SCAN_CODE_SET | TYPEMATIC => {
                self.awaiting = Some(byte);
                self.reply(&[ACK]);
            }
            // Set-3 make/break modes: accepted and ignored.
            0xf7..=0xfd => self.reply(&[ACK]),
            _ => self.reply(&[RESEND]),
        }
    }

    fn parameter(&mut self, cmd: u8, value: u8) {
        match cmd {
            SET_LEDS => {
                self.leds = value & 0x07;
                self.reply(&[ACK]);
            }
            SCAN_CODE_SET => match value {
                0 => {
                    let set = self.scan_set;
                    let id = if self.translate {
                        TRANSLATED_SET_ID
                            .get(usize::from(set))
                            .copied()
                            .unwrap_or(set)
                    } else {
                        set
                    };
                    self.reply(&[ACK, id]);
                }
                1..=3 => {
                    self.scan_set = value;
                    self.reply(&[ACK]);
                }
                _ => self.reply(&[RESEND]),
            },
            _ => self.reply(&[ACK]),
        }
    }

    /// A key pressed or released; dropped when scanning is off or the
    /// queue has no room for the whole sequence.
    pub fn key(&mut self, linux: u16, down: bool) {
        if !self.scanning {
            return;
        }
        // The controller's translation turns set 2 into set 1; emitting
        // set 1 directly is the same for every key.
        let set = if self.translate && self.scan_set == 2 {
            1
        } else {
            self.scan_set
        };
        let bytes = ps2_bytes(linux, set, down);
        if self.events.len() + bytes.len() <= EVENT_QUEUE_BYTES {
            self.events.extend(bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(k: &mut Keyboard) -> Vec<u8> {
        std::iter::from_fn(|| k.pop()).collect()
    }

    #[test]
    fn identify_depends_on_translation() {
        let mut k = Keyboard::default();
        k.write(0xf2);
        assert_eq!(drain(&mut k), [0xfa, 0xab, 0x83]);
        k.set_translate(true);
        k.write(0xf2);
        assert_eq!(drain(&mut k), [0xfa, 0xab, 0x41]);
    }

    #[test]
    fn parameter_commands() {
        let mut k = Keyboard::default();
        k.write(0xed);
        k.write(0x07);
        assert_eq!(drain(&mut k), [0xfa]);
        assert_eq!(k.leds(), 7);
        k.write(0xf0);
        k.write(0x01);
        k.write(0xf0);
        k.write(0x00);
        assert_eq!(drain(&mut k), [0xfa, 0x01]);
        k.write(0xf0);
        k.write(0x09);
        assert_eq!(drain(&mut k), [0xfe]);
        k.write(0xf3);
        k.write(0x20);
        assert_eq!(drain(&mut k), [0xfa]);
        k.write(0xee);
        assert_eq!(drain(&mut k), [0xee]);
        k.write(0x42);
        assert_eq!(drain(&mut k), [0xfe]);
        k.write(0xff);
        assert_eq!(drain(&mut k), [0xfa, 0xaa]);
        k.write(0xf0);
        k.write(0x00);
        assert_eq!(drain(&mut k), [0xfa, 0x02]);
    }

    #[test]
    fn scanning_gates_keys_and_queue_is_bounded() {
        let mut k = Keyboard::default();
        k.write(0xf5);
        drain(&mut k);
        k.key(30, true);
        assert_eq!(k.pop(), None);
        k.write(0xf4);
        drain(&mut k);
        for _ in 0..100 {
            k.key(97, true); // E0 14 each
        }
        let bytes = drain(&mut k);
        assert_eq!(bytes.len(), 16);
        assert!(bytes.chunks(2).all(|c| c == [0xe0, 0x14]));
    }
}
