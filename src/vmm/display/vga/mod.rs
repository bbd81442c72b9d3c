//! The standard VGA adapter (QEMU's `-device VGA`, libvirt's `vga` model):
//! legacy VGA registers, the Bochs VBE (DISPI) interface and a linear
//! framebuffer in PCI BAR 0.
