//! The guest's screen and what drives it: the display adapter that draws
//! (`vga`), the VNC server that shows it to clients (`vnc`), and the path
//! of key and pointer events from a client to the guest's input devices.
//!
//! The adapter renders on demand into a [`Frame`]; the VNC server and the
//! screenshot command only ever see frames, never the adapter's registers.
//! Input arrives as Linux input event codes (`KEY_*`, what virtio-input and
//! evdev speak) and is turned into each device's own codes at the device.

pub mod console;
pub mod vga;
pub mod vnc;

/// A rendered picture: `0x00RRGGBB` pixels, row-major, no padding.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u32>,
}

impl Frame {
    /// Resizes to `width` x `height`, keeping the allocation when the size
    /// is unchanged; new pixels are black.
    pub fn resize(&mut self, width: u32, height: u32) {
        self.width = width;
        self.height = height;
        self.pixels.resize(width as usize * height as usize, 0);
    }

    /// The frame as a binary PPM (P6), the format of a libvirt screenshot.
    pub fn to_ppm(&self) -> Vec<u8> {
        let header = format!("P6\n{} {}\n255\n", self.width, self.height);
        let mut out = Vec::with_capacity(header.len() + self.pixels.len() * 3);
        out.extend_from_slice(header.as_bytes());
        for p in &self.pixels {
            out.extend_from_slice(&[(p >> 16) as u8, (p >> 8) as u8, *p as u8]);
        }
        out
    }
}

/// Something that can show the guest's screen.
pub trait DisplaySource: Send + Sync {
    /// Renders the current picture into `frame`, resizing it to the current
    /// mode. A device the guest has not set up yet shows a black 640x480.
    fn render(&self, frame: &mut Frame);
}

/// The screen of a guest without a display adapter: black, 640x480.
pub struct NoDisplay;

impl DisplaySource for NoDisplay {
    fn render(&self, frame: &mut Frame) {
        frame.resize(640, 480);
        frame.pixels.fill(0);
    }
}

/// Mouse buttons as RFB numbers them: bit 0 left, 1 middle, 2 right, 3 and
/// 4 wheel up and down.
pub type Buttons = u8;

/// Where a console's key and pointer events go.
pub trait InputSink: Send + Sync {
    /// A key, as a Linux input event code, pressed or released.
    fn key(&self, code: u16, down: bool);
    /// The pointer at (`x`, `y`) in a `width` x `height` picture with
    /// `buttons` held. Absolute devices scale it; relative ones move by the
    /// difference from the last position.
    fn pointer(&self, x: u32, y: u32, width: u32, height: u32, buttons: Buttons);
}
