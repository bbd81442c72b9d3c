/* The `display` check and the display side of `then=input` / `then=display-loop`: the
 * standard VGA adapter (PCI 1234:1111, class 0300), a Bochs VBE (DISPI) linear 32-bit
 * mode, and a test pattern both the guest and the host can compute (README, Display).
 *
 * Pixel loops run in ring 3 (run_user): on this project's paravirtualised /dev/kvm the
 * guest's ring-0 code is emulated, ring-3 code runs natively. */
#include "testos.h"

/* DISPI register indices and ENABLE bits */
#define DISPI_ID 0
#define DISPI_XRES 1
#define DISPI_YRES 2
#define DISPI_BPP 3
#define DISPI_ENABLE 4
#define DISPI_BANK 5
#define DISPI_VIRT_WIDTH 6
#define DISPI_VIRT_HEIGHT 7
#define DISPI_X_OFFSET 8
#define DISPI_Y_OFFSET 9
#define DISPI_ENABLED 0x01
#define DISPI_LFB_ENABLED 0x40
#define DISPI_ID_MIN 0xB0C0
/* BAR2: the VGA ports 0x3C0-0x3DF at 0x400, the DISPI registers at 0x500 + index * 2 */
#define MMIO_VGA_PORTS 0x400
#define MMIO_DISPI 0x500
#define MAX_DIM 4096

struct display disp;

static void dispi_write(u16 index, u16 v)
{
	if (disp.mmio) {
		mmio_w16(disp.mmio + MMIO_DISPI + index * 2u, v);
	} else {
		outw(0x1CE, index);
		outw(0x1CF, v);
	}
}

static u16 dispi_read(u16 index)
{
	if (disp.mmio)
		return mmio_r16(disp.mmio + MMIO_DISPI + index * 2u);
	outw(0x1CE, index);
	return inw(0x1CF);
}

/* The attribute controller blanks the screen until its index register has bit 5
 * (palette address source) set: reading input status 1 (0x3DA) resets its flip-flop to
 * the index state, then 0x20 goes to 0x3C0. */
static void vga_unblank(void)
{
	if (disp.mmio) {
		(void)mmio_r8(disp.mmio + MMIO_VGA_PORTS + 0x1A);
		mmio_w8(disp.mmio + MMIO_VGA_PORTS, 0x20);
	} else {
		(void)inb(0x3DA);
		outb(0x3C0, 0x20);
	}
}

/* What a pattern loop in ring 3 needs; it returns its checksums here. */
struct draw {
	volatile u32 *fb;
	u32 w, h, stride;         /* stride in pixels */
	u32 shift;                /* display-loop: column offset, 0 for the check */
	u32 expect, readback;     /* checksums of the written and of the read-back frame */
	u64 frames;               /* display-loop: frames to draw per call */
};

/* One frame of pattern(x + shift mod W, y); R advances by 255/(W-1) per column without a
 * division per pixel: q = floor(x * 255 / D), r = x * 255 mod D, D = W - 1. */
static void draw_frame(struct draw *d)
{
	u32 w = d->w, h = d->h, dw = w > 1 ? w - 1 : 1, dh = h > 1 ? h - 1 : 1;
	u32 x0 = d->shift, q0 = w > 1 ? x0 * 255 / dw : 0, r0 = w > 1 ? x0 * 255 % dw : 0;
	u32 gq = 0, gr = 0, sum = 0;
	for (u32 y = 0; y < h; y++) {
		volatile u32 *row = d->fb + (u64)y * d->stride;
		u32 g = gq << 8, yb = (y >> 5) & 1;
		u32 x = x0, q = q0, r = r0;
		for (u32 i = 0; i < w; i++) {
			u32 p = q << 16 | g | ((((x >> 5) & 1) ^ yb) ? 0xFF : 0);
			row[i] = p;
			sum = sum * 31 + p;
			if (++x == w) {
				x = 0;
				q = 0;
				r = 0;
			} else if (w > 1) {
				r += 255;
				while (r >= dw) {
					r -= dw;
					q++;
				}
			}
		}
		if (h > 1) {
			gr += 255;
			while (gr >= dh) {
				gr -= dh;
				gq++;
			}
		}
	}
	d->expect = sum;
}

static u64 draw_and_read_back(void *arg)
{
	struct draw *d = arg;
	draw_frame(d);
	u32 sum = 0;
	for (u32 y = 0; y < d->h; y++) {
		volatile u32 *row = d->fb + (u64)y * d->stride;
		for (u32 x = 0; x < d->w; x++)
			sum = sum * 31 + row[x];
	}
	d->readback = sum;
	return 0;
}

/* Finds the adapter and its BARs (pci_scan has assigned any that were unassigned and
 * turned memory decoding on). */
static bool find_adapter(struct why *w)
{
	struct pci_dev *d = NULL;
	for (int i = 0; i < pci_ndevs && !d; i++)
		if (pci_devs[i].vendor == 0x1234 && pci_devs[i].device == 0x1111 &&
		    (pci_devs[i].class >> 8) == 0x0300)
			d = &pci_devs[i];
	if (!d) {
		why_add(w, "no VGA adapter 1234:1111 class 0300");
		return false;
	}
	println("INFO display adapter %02x:%02x.%u bar0=0x%llx+0x%llx%s bar2=0x%llx+0x%llx%s",
		d->bus, d->dev, d->fn, d->bar[0], d->bar_size[0],
		d->bar_assigned & 1 ? "(assigned)" : "", d->bar[2], d->bar_size[2],
		d->bar_assigned & 4 ? "(assigned)" : "");
	if (!d->bar_size[0] || d->bar_io[0] || !d->bar[0] || (d->bar_unassigned & 1)) {
		why_add(w, "no framebuffer BAR0");
		return false;
	}
	disp.fb = d->bar[0];
	disp.fb_size = d->bar_size[0];
	if (d->bar_size[2] >= 0x1000 && !d->bar_io[2] && d->bar[2] && !(d->bar_unassigned & 4)) {
		disp.mmio = d->bar[2];
	} else {
		/* no MMIO BAR: the ISA ports 0x1CE/0x1CF, I/O decoding on */
		disp.mmio = 0;
		pci_write16(d, 0x04, (u16)(pci_read16(d, 0x04) | 0x01));
		println("INFO display: no BAR2, using ports 0x1ce/0x1cf");
	}
	return true;
}

bool display_set_mode(u32 w, u32 h, struct why *why)
{
	if (!w || !h || w > MAX_DIM || h > MAX_DIM || (u64)w * h * 4 > disp.fb_size) {
		why_add(why, "mode %ux%u does not fit (framebuffer 0x%llx bytes)", w, h,
			disp.fb_size);
		return false;
	}
	dispi_write(DISPI_ENABLE, 0);
	dispi_write(DISPI_XRES, (u16)w);
	dispi_write(DISPI_YRES, (u16)h);
	dispi_write(DISPI_BPP, 32);
	dispi_write(DISPI_BANK, 0);
	dispi_write(DISPI_VIRT_WIDTH, (u16)w);
	dispi_write(DISPI_VIRT_HEIGHT, (u16)h);
	dispi_write(DISPI_X_OFFSET, 0);
	dispi_write(DISPI_Y_OFFSET, 0);
	dispi_write(DISPI_ENABLE, DISPI_ENABLED | DISPI_LFB_ENABLED);
	vga_unblank();
	u16 xr = dispi_read(DISPI_XRES), yr = dispi_read(DISPI_YRES), bpp = dispi_read(DISPI_BPP);
	u16 vw = dispi_read(DISPI_VIRT_WIDTH), en = dispi_read(DISPI_ENABLE);
	if (xr != w || yr != h || bpp != 32 || vw < w || !(en & DISPI_ENABLED)) {
		why_add(why, "mode read back %ux%ux%u virt width %u enable 0x%x, want %ux%ux32",
			xr, yr, bpp, vw, en, w, h);
		return false;
	}
	disp.w = w;
	disp.h = h;
	disp.stride = vw;
	return true;
}

/* Draws the pattern for the current mode and compares the frame read back. */
bool display_draw_checked(u32 *checksum, struct why *why)
{
	return display_draw_into((volatile u32 *)(usize)disp.fb, disp.w, disp.h, disp.stride,
				 checksum, why);
}

bool display_draw_into(volatile u32 *fb, u32 w, u32 h, u32 stride, u32 *checksum,
		       struct why *why)
{
	struct draw d = { .fb = fb, .w = w, .h = h, .stride = stride };
	u64 t0 = rdtsc();
	run_user(draw_and_read_back, &d);
	println("INFO display %ux%u drawn and read back in %llu ms", d.w, d.h,
		(rdtsc() - t0) / (tsc_hz / 1000 ? tsc_hz / 1000 : 1));
	*checksum = d.expect;
	if (d.readback != d.expect) {
		why_add(why, "frame read back with checksum 0x%08x, drew 0x%08x", d.readback,
			d.expect);
		return false;
	}
	return true;
}

void check_display(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	u32 sum = 0;
	bool ok = find_adapter(&w);
	if (ok) {
		u16 id = dispi_read(DISPI_ID);
		println("INFO display DISPI id 0x%x through %s", id, disp.mmio ? "BAR2" : "ports");
		if (id < DISPI_ID_MIN || id > DISPI_ID_MIN + 0xF) {
			why_add(&w, "DISPI id 0x%x, want 0xb0c0 or later", id);
			ok = false;
		}
	}
	ok = ok && display_set_mode(opt.disp_w, opt.disp_h, &w);
	ok = ok && display_draw_checked(&sum, &w);
	disp.ok = ok;
	char name[96];
	if (ok)
		snprintf(name, sizeof(name), "display %ux%ux32 fb=0x%llx checksum=0x%08x", disp.w,
			 disp.h, disp.fb, sum);
	else
		snprintf(name, sizeof(name), "display");
	report(name, ok, &w);
}

/* then=input, after the first key: the second mode (oxtest.display.resize). */
void display_resize(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	u32 sum = 0;
	bool ok = disp.ok && display_set_mode(opt.resize_w, opt.resize_h, &w) &&
		  display_draw_checked(&sum, &w);
	if (!disp.ok)
		why_add(&w, "the display check did not pass");
	if (ok)
		println("PASS display resized %ux%ux32 checksum=0x%08x", disp.w, disp.h, sum);
	else
		println("FAIL display resized: %s", w.buf);
}

/* Ring 3: d->frames frames, each shifted one column further. (No output from ring 3:
 * port I/O there faults on this host's KVM.) */
static u64 draw_frames(void *arg)
{
	struct draw *d = arg;
	for (u64 n = 0; n < d->frames; n++) {
		if (++d->shift >= d->w)
			d->shift = 0;
		draw_frame(d);
	}
	return 0;
}

/* then=display-loop: redraws the whole screen forever, frame n shifted by n columns. */
void display_loop(void)
{
	if (!disp.ok) {
		struct why w = { .len = 0 };
		w.buf[0] = 0;
		pci_scan();
		if (!find_adapter(&w) || !display_set_mode(opt.disp_w, opt.disp_h, &w)) {
			println("FAIL display-loop: %s", w.buf);
			return;
		}
	}
	println("INFO display-loop %ux%ux32, frame n shows the pattern shifted left by n mod %u "
		"columns", disp.w, disp.h, disp.w);
	struct draw d = { .fb = (volatile u32 *)(usize)disp.fb, .w = disp.w, .h = disp.h,
			  .stride = disp.stride };
	u64 t0 = rdtsc(), per_ms = tsc_hz / 1000 ? tsc_hz / 1000 : 1;
	d.frames = 64;
	for (u64 n = 64;; n += 64) {
		run_user(draw_frames, &d);
		println("INFO frames %llu ms=%llu", n, (rdtsc() - t0) / per_ms);
	}
}
