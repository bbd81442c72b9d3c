//! i8042 keyboard controller with a PS/2 keyboard and mouse behind it.
//!
//! Port 0x60 is data, port 0x64 status (read) and command (write). The
//! controller has one output buffer; when it is empty the next byte is
//! taken from the controller's own answers, then the keyboard (unless its
//! interface is disabled), then the mouse. IRQ 1 and IRQ 12 are edges on
//! KVM irqfds: one is sent whenever the line's level (a byte of that side
//! in the buffer, its interrupt enabled in the command byte) rises.
//! A pulse of output port bit 0 (0xFE, 0xF0-0xFF with bit 0 clear, or
//! 0xD1 with bit 0 clear) asks for a reboot.

mod keyboard;
mod mouse;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use keyboard::Keyboard;
use mouse::Mouse;

use super::IrqLine;
use crate::vmm::bus::BusDevice;
use crate::vmm::display::{Buttons, InputSink};
use crate::vmm::exit::{ExitReason, ExitSignal};

/// Status register bits.
const STATUS_OBF: u8 = 0x01;
const STATUS_SYS: u8 = 0x04;
const STATUS_COMMAND: u8 = 0x08;
const STATUS_UNLOCKED: u8 = 0x10;
const STATUS_AUX_OBF: u8 = 0x20;

/// Command byte bits.
const CB_KBD_IRQ: u8 = 0x01;
const CB_AUX_IRQ: u8 = 0x02;
const CB_SYS: u8 = 0x04;
const CB_KBD_DISABLED: u8 = 0x10;
const CB_AUX_DISABLED: u8 = 0x20;
const CB_TRANSLATE: u8 = 0x40;

/// Output port bits.
const OUT_RESET: u8 = 0x01;
const OUT_A20: u8 = 0x02;
const OUT_KBD_OBF: u8 = 0x10;
const OUT_AUX_OBF: u8 = 0x20;
/// Bits an idle output port reads as set besides reset and A20.
const OUT_IDLE_ONES: u8 = 0xcc;

/// Controller commands that take a data byte on port 0x60.
const WRITE_COMMAND_BYTE: u8 = 0x60;
const WRITE_OUTPUT_PORT: u8 = 0xd1;
const WRITE_KBD_BUFFER: u8 = 0xd2;
const WRITE_AUX_BUFFER: u8 = 0xd3;
const WRITE_TO_AUX: u8 = 0xd4;

/// The controller's own answers pending (each command gives one byte).
const CONTROLLER_QUEUE_BYTES: usize = 16;

/// Which side a byte in the output buffer belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
enum Side {
    Kbd,
    Aux,
}

/// The controller's and both devices' state, as a state image keeps it.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct I8042State {
    command_byte: u8,
    output_port: u8,
    system_flag: bool,
    last_write_command: bool,
    awaiting: Option<u8>,
    output: Option<(u8, Side)>,
    last_read: u8,
    answers: VecDeque<(u8, Side)>,
    kbd: Keyboard,
    aux: Mouse,
    kbd_level: bool,
    aux_level: bool,
}

/// The controller, registered at 0x60 (offset 0) and 0x64 (offset 4).
pub struct I8042 {
    exit: Arc<ExitSignal>,
    kbd_irq: Option<IrqLine>,
    aux_irq: Option<IrqLine>,
    command_byte: u8,
    output_port: u8,
    /// Self test passed or the command byte's system flag set.
    system_flag: bool,
    /// The last write went to port 0x64.
    last_write_command: bool,
    /// A command waiting for its data byte.
    awaiting: Option<u8>,
    /// The output buffer.
    output: Option<(u8, Side)>,
    /// What port 0x60 reads when the buffer is empty: the last byte.
    last_read: u8,
    answers: VecDeque<(u8, Side)>,
    kbd: Keyboard,
    aux: Mouse,
    /// IRQ levels last computed, to send an edge when one rises.
    kbd_level: bool,
    aux_level: bool,
}

impl I8042 {
    /// A controller without interrupt lines (the guest can only poll).
    pub fn new(exit: Arc<ExitSignal>) -> Self {
        I8042 {
            exit,
            kbd_irq: None,
            aux_irq: None,
            command_byte: CB_KBD_IRQ | CB_AUX_IRQ,
            output_port: OUT_RESET | OUT_A20 | OUT_IDLE_ONES,
            system_flag: false,
            last_write_command: true,
            awaiting: None,
            output: None,
            last_read: 0,
            answers: VecDeque::new(),
            kbd: Keyboard::default(),
            aux: Mouse::default(),
            kbd_level: false,
            aux_level: false,
        }
    }

    /// A controller that raises `kbd_irq` (GSI 1) and `aux_irq` (GSI 12).
    pub fn with_irqs(exit: Arc<ExitSignal>, kbd_irq: IrqLine, aux_irq: IrqLine) -> Self {
        I8042 {
            kbd_irq: Some(kbd_irq),
            aux_irq: Some(aux_irq),
            ..I8042::new(exit)
        }
    }

    pub fn state(&self) -> I8042State {
        I8042State {
            command_byte: self.command_byte,
            output_port: self.output_port,
            system_flag: self.system_flag,
            last_write_command: self.last_write_command,
            awaiting: self.awaiting,
            output: self.output,
            last_read: self.last_read,
            answers: self.answers.clone(),
            kbd: self.kbd.clone(),
            aux: self.aux.clone(),
            kbd_level: self.kbd_level,
            aux_level: self.aux_level,
        }
    }

    /// Loads a saved state; the interrupt lines stay as they are (the
    /// interrupt controller's saved state has their levels).
    pub fn restore(&mut self, s: &I8042State) {
        let s = s.clone();
        self.command_byte = s.command_byte;
        self.output_port = s.output_port;
        self.system_flag = s.system_flag;
        self.last_write_command = s.last_write_command;
        self.awaiting = s.awaiting;
        self.output = s.output;
        self.last_read = s.last_read;
        self.answers = s.answers;
        self.kbd = s.kbd;
        self.aux = s.aux;
        self.kbd_level = s.kbd_level;
        self.aux_level = s.aux_level;
    }

    /// The status register (port 0x64).
    pub fn status(&self) -> u8 {
        let mut s = STATUS_UNLOCKED;
        if let Some((_, side)) = self.output {
            s |= STATUS_OBF;
            if side == Side::Aux {
                s |= STATUS_AUX_OBF;
            }
        }
        if self.system_flag {
            s |= STATUS_SYS;
        }
        if self.last_write_command {
            s |= STATUS_COMMAND;
        }
        s
    }

    /// Reads the data port (0x60).
    pub fn read_data(&mut self) -> u8 {
        if let Some((byte, _)) = self.output.take() {
            self.last_read = byte;
            // The buffer is empty for a moment: the lines drop, and the
            // next byte raises them again.
            self.kbd_level = false;
            self.aux_level = false;
        }
        self.update();
        self.last_read
    }

    /// Writes the command port (0x64).
    pub fn write_command(&mut self, cmd: u8) {
        self.last_write_command = true;
        self.awaiting = None;
        match cmd {
            0x20 => self.answer(self.command_byte, Side::Kbd),
            // Other controller RAM bytes: nothing of interest there.
            0x21..=0x3f => self.answer(0, Side::Kbd),
            WRITE_COMMAND_BYTE | WRITE_OUTPUT_PORT | WRITE_KBD_BUFFER | WRITE_AUX_BUFFER
            | WRITE_TO_AUX => self.awaiting = Some(cmd),
            0xa7 => self.command_byte |= CB_AUX_DISABLED,
            0xa8 => self.command_byte &= !CB_AUX_DISABLED,
            0xa9 | 0xab => self.answer(0x00, Side::Kbd),
            0xaa => {
                self.system_flag = true;
                self.answer(0x55, Side::Kbd);
            }
            0xad => self.command_byte |= CB_KBD_DISABLED,
            0xae => self.command_byte &= !CB_KBD_DISABLED,
            // Input port: keyboard not inhibited.
            0xc0 => self.answer(0x80, Side::Kbd),
            0xd0 => self.answer(self.output_port_value(), Side::Kbd),
            0xdd => self.output_port &= !OUT_A20,
            0xdf => self.output_port |= OUT_A20,
            // Pulse output port bits 3-0 low where the command has a 0.
            0xf0..=0xff if cmd & 0x01 == 0 => self.request_reset(),
            _ => {}
        }
        self.update();
    }

    /// Writes the data port (0x60).
    pub fn write_data(&mut self, byte: u8) {
        self.last_write_command = false;
        match self.awaiting.take() {
            Some(WRITE_COMMAND_BYTE) => {
                self.command_byte = byte;
                self.system_flag = byte & CB_SYS != 0;
                self.kbd.set_translate(byte & CB_TRANSLATE != 0);
            }
            Some(WRITE_OUTPUT_PORT) => {
                self.output_port = byte;
                if byte & OUT_RESET == 0 {
                    self.request_reset();
                }
            }
            Some(WRITE_KBD_BUFFER) => self.answer(byte, Side::Kbd),
            Some(WRITE_AUX_BUFFER) => self.answer(byte, Side::Aux),
            Some(WRITE_TO_AUX) => {
                // Talking to the mouse enables its interface.
                self.command_byte &= !CB_AUX_DISABLED;
                self.aux.write(byte);
            }
            _ => {
                self.command_byte &= !CB_KBD_DISABLED;
                self.kbd.write(byte);
            }
        }
        self.update();
    }

    /// A key event from the console, as a Linux key code.
    pub fn key(&mut self, linux: u16, down: bool) {
        self.kbd.key(linux, down);
        self.update();
    }

    /// A pointer event from the console (absolute position, RFB buttons).
    pub fn pointer(&mut self, x: u32, y: u32, buttons: Buttons) {
        self.aux.pointer(x, y, buttons);
        self.update();
    }

    /// The keyboard LEDs the guest last set (bit 0 Scroll, 1 Num, 2 Caps
    /// Lock).
    pub fn keyboard_leds(&self) -> u8 {
        self.kbd.leds()
    }

    fn answer(&mut self, byte: u8, side: Side) {
        if self.answers.len() < CONTROLLER_QUEUE_BYTES {
            self.answers.push_back((byte, side));
        }
    }

    fn output_port_value(&self) -> u8 {
        let mut v = self.output_port & !(OUT_KBD_OBF | OUT_AUX_OBF);
        match self.output {
            Some((_, Side::Kbd)) => v |= OUT_KBD_OBF,
            Some((_, Side::Aux)) => v |= OUT_AUX_OBF,
            None => {}
        }
        v
    }

    fn request_reset(&self) {
        self.exit.request(ExitReason::Reboot);
    }

    /// Fills an empty output buffer and sends the edges of rising IRQs.
    fn update(&mut self) {
        if self.output.is_none() {
            self.output = self.next_byte();
        }
        let kbd_level = matches!(self.output, Some((_, Side::Kbd)))
            && self.command_byte & CB_KBD_IRQ != 0
            && self.command_byte & CB_KBD_DISABLED == 0;
        let aux_level =
            matches!(self.output, Some((_, Side::Aux))) && self.command_byte & CB_AUX_IRQ != 0;
        if kbd_level && !self.kbd_level {
            pulse(&self.kbd_irq);
        }
        if aux_level && !self.aux_level {
            pulse(&self.aux_irq);
        }
        self.kbd_level = kbd_level;
        self.aux_level = aux_level;
    }

    fn next_byte(&mut self) -> Option<(u8, Side)> {
        if let Some(a) = self.answers.pop_front() {
            return Some(a);
        }
        if self.command_byte & CB_KBD_DISABLED == 0
            && let Some(b) = self.kbd.pop()
        {
            return Some((b, Side::Kbd));
        }
        if self.command_byte & CB_AUX_DISABLED == 0
            && let Some(b) = self.aux.pop()
        {
            return Some((b, Side::Aux));
        }
        None
    }
}

fn pulse(line: &Option<IrqLine>) {
    if let Some(l) = line
        && let Err(e) = l.0.write(1)
    {
        tracing::warn!("i8042 interrupt: {e}");
    }
}

/// Port-bus view of one of the two ports.
pub struct I8042Port {
    pub ctl: Arc<Mutex<I8042>>,
    pub command: bool,
}

impl BusDevice for I8042Port {
    fn read(&mut self, _offset: u64, data: &mut [u8]) {
        let v = match self.ctl.lock() {
            Ok(c) if self.command => c.status(),
            Ok(mut c) => c.read_data(),
            Err(_) => 0,
        };
        data.fill(0);
        if let Some(b) = data.first_mut() {
            *b = v;
        }
    }

    fn write(&mut self, _offset: u64, data: &[u8]) {
        if let (Some(&v), Ok(mut c)) = (data.first(), self.ctl.lock()) {
            if self.command {
                c.write_command(v);
            } else {
                c.write_data(v);
            }
        }
    }
}

/// The console's input going to the PS/2 keyboard and mouse.
pub struct Ps2Input {
    ctl: Arc<Mutex<I8042>>,
}

impl Ps2Input {
    pub fn new(ctl: Arc<Mutex<I8042>>) -> Self {
        Ps2Input { ctl }
    }
}

impl InputSink for Ps2Input {
    fn key(&self, code: u16, down: bool) {
        if let Ok(mut c) = self.ctl.lock() {
            c.key(code, down);
        }
    }

    /// The mouse is relative: it moves by the difference from the last
    /// position, so the picture's size does not matter.
    fn pointer(&self, x: u32, y: u32, _width: u32, _height: u32, buttons: Buttons) {
        if let Ok(mut c) = self.ctl.lock() {
            c.pointer(x, y, buttons);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: u16 = 30;

    struct Rig {
        ctl: I8042,
        exit: Arc<ExitSignal>,
        kbd_irq: vmm_sys_util::eventfd::EventFd,
        aux_irq: vmm_sys_util::eventfd::EventFd,
    }

    impl Rig {
        fn new() -> Rig {
            let exit = Arc::new(ExitSignal::new().expect("eventfd"));
            let kbd = IrqLine::new().expect("eventfd");
            let aux = IrqLine::new().expect("eventfd");
            let kbd_irq = kbd.0.try_clone().expect("dup");
            let aux_irq = aux.0.try_clone().expect("dup");
            Rig {
                ctl: I8042::with_irqs(exit.clone(), kbd, aux),
                exit,
                kbd_irq,
                aux_irq,
            }
        }

        /// Interrupts sent since the last call.
        fn irqs(&self) -> (u64, u64) {
            let count = |fd: &vmm_sys_util::eventfd::EventFd| fd.read().unwrap_or(0);
            (count(&self.kbd_irq), count(&self.aux_irq))
        }

        /// Everything readable now, with whether it came from the mouse.
        fn drain(&mut self) -> Vec<(u8, bool)> {
            let mut out = Vec::new();
            while self.ctl.status() & STATUS_OBF != 0 {
                let aux = self.ctl.status() & STATUS_AUX_OBF != 0;
                out.push((self.ctl.read_data(), aux));
                assert!(out.len() < 1000, "output never drains");
            }
            out
        }

        fn bytes(&mut self) -> Vec<u8> {
            self.drain().into_iter().map(|(b, _)| b).collect()
        }

        fn cmd(&mut self, cmd: u8) -> Vec<u8> {
            self.ctl.write_command(cmd);
            self.bytes()
        }

        fn cmd_data(&mut self, cmd: u8, data: u8) -> Vec<u8> {
            self.ctl.write_command(cmd);
            self.ctl.write_data(data);
            self.bytes()
        }

        fn kbd(&mut self, byte: u8) -> Vec<u8> {
            self.ctl.write_data(byte);
            self.bytes()
        }

        fn aux(&mut self, byte: u8) -> Vec<(u8, bool)> {
            self.ctl.write_command(WRITE_TO_AUX);
            self.ctl.write_data(byte);
            self.drain()
        }
    }

    #[test]
    fn self_test_answers_at_once() {
        let mut r = Rig::new();
        r.ctl.write_command(0xaa);
        assert_eq!(r.ctl.status() & STATUS_OBF, STATUS_OBF);
        assert_eq!(r.ctl.read_data(), 0x55);
        assert_eq!(r.ctl.status() & (STATUS_OBF | STATUS_SYS), STATUS_SYS);
        assert_eq!(r.ctl.status() & 0x02, 0, "input buffer never full");
    }

    #[test]
    fn seabios_init_sequence() {
        let mut r = Rig::new();
        assert!(r.bytes().is_empty());
        assert!(r.cmd(0xad).is_empty());
        assert!(r.cmd(0xa7).is_empty());
        assert_eq!(r.cmd(0xaa), [0x55]);
        assert_eq!(r.cmd(0xab), [0x00]);
        // ps2_command: interrupts off, both disabled, then keyboard enabled.
        assert!(r.cmd_data(0x60, 0x30).is_empty());
        assert!(r.cmd_data(0x60, 0x20).is_empty());
        assert_eq!(r.kbd(0xff), [0xfa, 0xaa]);
        assert_eq!(r.kbd(0xf5), [0xfa]);
        assert_eq!(r.kbd(0xf0), [0xfa]);
        assert_eq!(r.kbd(0x02), [0xfa]);
        assert_eq!(r.kbd(0xed), [0xfa]);
        assert_eq!(r.kbd(0x02), [0xfa]);
        assert_eq!(r.ctl.keyboard_leds(), 0x02);
        assert_eq!(r.irqs(), (0, 0), "interrupts were off");
        assert_eq!(r.kbd(0xf4), [0xfa]);
        // Final command byte: mouse off, translation, keyboard interrupt.
        assert!(r.cmd_data(0x60, 0x61).is_empty());
        assert_eq!(r.cmd(0x20), [0x61]);
        r.irqs();
        r.ctl.key(KEY_A, true);
        assert_eq!(r.irqs(), (1, 0));
        assert_eq!(r.bytes(), [0x1e]);
    }

    #[test]
    fn linux_probe_finds_an_intellimouse() {
        let mut r = Rig::new();
        assert_eq!(r.cmd(0x20), [0x03]);
        assert_eq!(r.cmd(0xa9), [0x00]);
        // AUX loopback: the byte comes back from the mouse side, IRQ 12.
        r.irqs();
        r.ctl.write_command(WRITE_AUX_BUFFER);
        r.ctl.write_data(0xa5);
        assert_eq!(r.irqs(), (0, 1));
        assert_eq!(r.drain(), [(0xa5, true)]);
        assert_eq!(r.aux(0xff), [(0xfa, true), (0xaa, true), (0x00, true)]);
        assert_eq!(r.aux(0xf2), [(0xfa, true), (0x00, true)]);
        for b in [0xf3, 200, 0xf3, 100, 0xf3, 80] {
            assert_eq!(r.aux(b), [(0xfa, true)]);
        }
        assert_eq!(r.aux(0xf2), [(0xfa, true), (0x03, true)]);
        assert_eq!(r.aux(0xf4), [(0xfa, true)]);
        r.irqs();
        r.ctl.pointer(10, 10, 0);
        r.ctl.pointer(13, 10, 0x10);
        assert_eq!(r.irqs(), (0, 1));
        assert_eq!(r.bytes(), [0x08, 3, 0, 1]);
    }

    #[test]
    fn key_press_in_set_1_and_set_2() {
        let mut r = Rig::new();
        r.cmd_data(0x60, CB_KBD_IRQ | CB_TRANSLATE);
        r.ctl.key(KEY_A, true);
        r.ctl.key(KEY_A, false);
        assert_eq!(r.bytes(), [0x1e, 0x9e]);
        r.cmd_data(0x60, CB_KBD_IRQ);
        r.ctl.key(KEY_A, true);
        r.ctl.key(KEY_A, false);
        assert_eq!(r.bytes(), [0x1c, 0xf0, 0x1c]);
    }

    #[test]
    fn mouse_packets_through_the_controller() {
        let mut r = Rig::new();
        r.aux(0xf4);
        r.ctl.pointer(50, 50, 0);
        r.ctl.pointer(40, 60, 0x05);
        assert_eq!(
            r.drain(),
            [(0x3b, true), (0xf6, true), (0xf6, true)],
            "left+right, x -10, y -10"
        );
    }

    #[test]
    fn irqs_only_when_enabled() {
        let mut r = Rig::new();
        r.cmd_data(0x60, 0x00);
        r.irqs();
        r.ctl.key(KEY_A, true);
        r.aux(0xf4);
        assert_eq!(r.irqs(), (0, 0));
        r.bytes();
        // One edge per byte made available.
        r.cmd_data(0x60, CB_KBD_IRQ | CB_AUX_IRQ);
        r.irqs();
        r.ctl.key(KEY_A, false);
        assert_eq!(r.irqs(), (1, 0));
        assert_eq!(r.ctl.read_data(), 0xf0);
        assert_eq!(r.irqs(), (1, 0));
        assert_eq!(r.ctl.read_data(), 0x1c);
        assert_eq!(r.irqs(), (0, 0));
        // Enabling the interrupt with a byte waiting raises it.
        r.cmd_data(0x60, 0x00);
        r.ctl.key(KEY_A, true);
        r.irqs();
        r.ctl.write_command(0x60);
        r.ctl.write_data(CB_KBD_IRQ);
        assert_eq!(r.irqs(), (1, 0));
        // A disabled keyboard interface holds its bytes back.
        assert_eq!(r.bytes(), [0x1c]);
        r.cmd(0xad);
        r.ctl.key(KEY_A, false);
        assert!(r.bytes().is_empty());
        assert_eq!(r.cmd(0xae), [0xf0, 0x1c]);
    }

    #[test]
    fn overflow_is_dropped_without_panic() {
        let mut r = Rig::new();
        for i in 0..10_000u32 {
            r.ctl.key((i % 300) as u16, i % 2 == 0);
            r.ctl.write_command(0xd2);
            r.ctl.write_data(0x11);
        }
        r.aux(0xf4);
        for i in 0..10_000u32 {
            r.ctl.pointer(i % 500, (i * 7) % 300, (i % 32) as u8);
        }
        let n = r.drain().len();
        assert!(n > 0 && n < 200, "{n}");
        assert_eq!(r.ctl.read_data(), r.ctl.last_read);
    }

    #[test]
    fn reset_through_fe_and_output_port() {
        let mut r = Rig::new();
        r.ctl.write_command(0xff);
        r.ctl.write_command(0xdd);
        assert_eq!(r.exit.reason(), None);
        r.ctl.write_command(0xfe);
        assert_eq!(r.exit.reason(), Some(ExitReason::Reboot));

        let mut r = Rig::new();
        assert_eq!(r.cmd(0xd0), [0xcf]);
        r.ctl.write_command(0xd1);
        r.ctl.write_data(0xcf);
        assert_eq!(r.exit.reason(), None);
        r.ctl.write_command(0xd1);
        r.ctl.write_data(0xce);
        assert_eq!(r.exit.reason(), Some(ExitReason::Reboot));
    }

    #[test]
    fn ports_on_the_bus() {
        let exit = Arc::new(ExitSignal::new().expect("eventfd"));
        let ctl = Arc::new(Mutex::new(I8042::new(exit)));
        let mut data = I8042Port {
            ctl: ctl.clone(),
            command: false,
        };
        let mut command = I8042Port {
            ctl: ctl.clone(),
            command: true,
        };
        command.write(0, &[0xaa]);
        let mut b = [0xffu8; 2];
        command.read(0, &mut b);
        assert_eq!(b[0] & STATUS_OBF, STATUS_OBF);
        data.read(0, &mut b);
        assert_eq!(b, [0x55, 0]);
        data.write(0, &[]);
        let input = Ps2Input::new(ctl);
        input.key(KEY_A, true);
        data.read(0, &mut b);
        assert_eq!(b[0], 0x1c);
    }
}
