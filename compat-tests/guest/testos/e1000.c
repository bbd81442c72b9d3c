/* The e1000 check: the first Intel 82540EM (PCI 8086:100E) driven through BAR 0 as a
 * driver for the real adapter drives it. Reset (CTRL.RST), the EEPROM (every word
 * through EERD: checksum 0xBABA, the MAC in words 0-2, equal to RAL/RAH; words 0-2
 * again by clocking the Microwire interface through EECD, as Linux does), the link
 * (STATUS, the PHY's id and status through MDIC), the I/O window (IOADDR/IODATA in
 * BAR 1) when BAR 1 is assigned, the INTx line (ICS raises it, it stays high while ICR
 * is unread, reading ICR lowers it), then receive and transmit rings (legacy
 * descriptors, 2 KiB buffers) carrying the net check's exchange (virtio_net.c), with
 * interrupts enabled throughout: transmit and receive must each be announced, and the
 * statistics registers must have counted the frames. With oxtest.e1000garbage=1 the
 * rings are first fed garbage (check_garbage). */
#include "testos.h"

#define E1000_VENDOR 0x8086
#define E1000_DEVICE 0x100E

/* Registers. */
#define CTRL   0x0000
#define STATUS 0x0008
#define EECD   0x0010
#define EERD   0x0014
#define MDIC   0x0020
#define ICR    0x00C0
#define ICS    0x00C8
#define IMS    0x00D0
#define IMC    0x00D8
#define RCTL   0x0100
#define TCTL   0x0400
#define TIPG   0x0410
#define RDBAL  0x2800
#define RDBAH  0x2804
#define RDLEN  0x2808
#define RDH    0x2810
#define RDT    0x2818
#define TDBAL  0x3800
#define TDBAH  0x3804
#define TDLEN  0x3808
#define TDH    0x3810
#define TDT    0x3818
#define GPRC   0x4074
#define GPTC   0x4080
#define MTA    0x5200
#define RAL    0x5400
#define RAH    0x5404

#define CTRL_SLU (1u << 6)
#define CTRL_RST (1u << 26)
#define STATUS_FD 1u
#define STATUS_LU 2u
#define STATUS_SPEED_1000 (1u << 7)
#define EERD_START 1u
#define EERD_DONE (1u << 4)
#define EECD_SK 1u
#define EECD_CS 2u
#define EECD_DI 4u
#define EECD_DO 8u
#define EECD_REQ 0x40u
#define EECD_GNT 0x80u
#define MDIC_OP_READ (1u << 27)
#define MDIC_READY (1u << 28)
#define MDIC_ERROR (1u << 30)
#define ICR_TXDW 1u
#define ICR_LSC 4u
#define ICR_RXDMT0 0x10u
#define ICR_RXO 0x40u
#define ICR_RXT0 0x80u
#define RCTL_EN 2u
#define RCTL_BAM (1u << 15)
#define RCTL_SECRC (1u << 26)
#define TCTL_EN 2u
#define TCTL_PSP 8u
#define RAH_AV (1u << 31)
/* Descriptor bits. */
#define TX_EOP 0x01
#define TX_IFCS 0x02
#define TX_RS 0x08
#define DESC_DD 0x01
#define RX_EOP 0x02

#define NRX 16
#define NTX 8
#define BUFLEN 2048

struct rx_desc {
	u64 addr;
	u16 len, csum;
	u8 status, errors;
	u16 special;
};

struct tx_desc {
	u64 addr;
	u16 len;
	u8 cso, cmd, status, css;
	u16 special;
};

static u64 regs;
static struct rx_desc *rxd;
static struct tx_desc *txd;
static u8 *rxbuf[NRX];
static u32 rx_next, tx_next;
static u32 rx_frames, tx_frames;
static struct net_link nic;
static char name[24];
/* What the interrupt handler saw. */
static volatile u32 deliveries, icr_seen, icr_hold;
#define ICR_LOG 8
static volatile u32 icr_log[ICR_LOG];   /* ICR per delivery, ~0: left unread */

static u32 rd(u32 off) { return mmio_r32(regs + off); }
static void wr(u32 off, u32 v) { mmio_w32(regs + off, v); }

static struct pci_dev *find(void)
{
	for (int i = 0; i < pci_ndevs; i++)
		if (pci_devs[i].vendor == E1000_VENDOR && pci_devs[i].device == E1000_DEVICE)
			return &pci_devs[i];
	return NULL;
}

static void report_sub(const char *what, struct why *w)
{
	char n[48];
	snprintf(n, sizeof(n), "%s-%s", name, what);
	report(n, w->len == 0, w);
	w->len = 0;
	w->buf[0] = 0;
}

/* Identity, class, BAR 0 (128 KiB of memory) and BAR 1 (64 ports). */
static bool check_function(struct pci_dev *d, struct why *w)
{
	if (d->class != 0x020000)
		why_add(w, "class %06x, want 020000", d->class);
	if (d->bar_io[0] || d->bar_size[0] != 0x20000 || !d->bar[0] ||
	    d->bar[0] >= 0x100000000ull)
		why_add(w, "BAR 0 is not 128 KiB of memory below 4 GiB");
	if (!d->bar_io[1] || d->bar_size[1] != 0x40)
		why_add(w, "BAR 1 is not 64 I/O ports");
	u32 sub = pci_read32(d, 0x2C);
	u8 pin = pci_read8(d, 0x3D);
	if (pin != 1)
		why_add(w, "interrupt pin %u, want 1 (INTA)", pin);
	println("INFO %s subsystem %04x:%04x revision %u", name, sub & 0xFFFF, sub >> 16,
		pci_read8(d, 0x08));
	regs = d->bar[0];
	return w->len == 0;
}

static bool wait_clear(u32 off, u32 bits, u64 ms)
{
	u64 end = rdtsc() + ms_to_tsc(ms);
	while (rd(off) & bits)
		if (rdtsc() > end)
			return false;
	return true;
}

/* Interrupts masked, receive and transmit off, then a global reset. */
static void reset(struct why *w)
{
	wr(IMC, 0xFFFFFFFFu);
	wr(RCTL, 0);
	wr(TCTL, TCTL_PSP);
	(void)rd(STATUS);
	wr(CTRL, rd(CTRL) | CTRL_RST);
	if (!wait_clear(CTRL, CTRL_RST, 10))
		why_add(w, "CTRL.RST still set after 10 ms");
	wr(IMC, 0xFFFFFFFFu);
	(void)rd(ICR);
}

static int eerd(int addr)
{
	wr(EERD, EERD_START | (u32)addr << 8);
	for (int i = 0; i < 100000; i++) {
		u32 v = rd(EERD);
		if (v & EERD_DONE)
			return (int)(v >> 16);
	}
	return -1;
}

/* One EECD write with SK raised then lowered. */
static void ee_clock(u32 e)
{
	wr(EECD, e | EECD_SK);
	wr(EECD, e);
}

/* Word addr through Microwire: the READ opcode (110) and six address bits shifted
 * out on DI, 16 data bits shifted in from DO, each on a rising clock. */
static int microwire(int addr)
{
	u32 e = rd(EECD) | EECD_REQ;
	wr(EECD, e);
	for (int i = 0; !(rd(EECD) & EECD_GNT); i++)
		if (i > 1000)
			return -1;
	e &= ~(EECD_DI | EECD_SK);
	wr(EECD, e);
	e |= EECD_CS;
	wr(EECD, e);
	u32 cmd = 0x6u << 6 | (u32)addr;
	for (int b = 8; b >= 0; b--) {
		e = (e & ~EECD_DI) | ((cmd >> b) & 1 ? EECD_DI : 0);
		wr(EECD, e);
		ee_clock(e);
	}
	e &= ~EECD_DI;
	wr(EECD, e);
	u32 v = 0;
	for (int b = 0; b < 16; b++) {
		wr(EECD, e | EECD_SK);
		v = v << 1 | (rd(EECD) & EECD_DO ? 1 : 0);
		wr(EECD, e);
	}
	wr(EECD, e & ~(EECD_CS | EECD_SK));
	wr(EECD, e & ~(EECD_CS | EECD_SK | EECD_REQ));
	return (int)v;
}

/* Every word through EERD (sum 0xBABA); the MAC in words 0-2 equals RAL/RAH; words 0-2
 * again through Microwire. */
static void check_eeprom(struct why *w)
{
	u16 sum = 0, words[3] = { 0 };
	for (int i = 0; i < 64; i++) {
		int v = eerd(i);
		if (v < 0) {
			why_add(w, "EERD word %d: never done", i);
			return;
		}
		sum = (u16)(sum + v);
		if (i < 3)
			words[i] = (u16)v;
	}
	if (sum != 0xBABA)
		why_add(w, "EEPROM sum 0x%04x, want 0xbaba", sum);
	for (int i = 0; i < 3; i++) {
		nic.mac[2 * i] = (u8)words[i];
		nic.mac[2 * i + 1] = (u8)(words[i] >> 8);
	}
	u32 ral = rd(RAL), rah = rd(RAH);
	u8 ra[6] = { (u8)ral, (u8)(ral >> 8), (u8)(ral >> 16), (u8)(ral >> 24), (u8)rah,
		     (u8)(rah >> 8) };
	if (!(rah & RAH_AV))
		why_add(w, "RAH.AV clear");
	if (memcmp(ra, nic.mac, 6) != 0)
		why_add(w, "RAL/RAH %02x:%02x:%02x:%02x:%02x:%02x differ from the EEPROM", ra[0],
			ra[1], ra[2], ra[3], ra[4], ra[5]);
	if (nic.mac[0] & 1)
		why_add(w, "the EEPROM's MAC is a group address");
	for (int i = 0; i < 3; i++) {
		int v = microwire(i);
		if (v != words[i])
			why_add(w, "Microwire word %d 0x%x, EERD 0x%04x", i, v, words[i]);
	}
	const u8 *m = nic.mac;
	println("INFO %s mac %02x:%02x:%02x:%02x:%02x:%02x, EEPROM sum 0x%04x", name, m[0], m[1],
		m[2], m[3], m[4], m[5], sum);
}

static int phy_read(int reg)
{
	wr(MDIC, (u32)reg << 16 | 1u << 21 | MDIC_OP_READ);
	for (int i = 0; i < 100000; i++) {
		u32 v = rd(MDIC);
		if (v & MDIC_READY)
			return v & MDIC_ERROR ? -1 : (int)(v & 0xFFFF);
	}
	return -1;
}

/* STATUS: link up (within 1 s of setting CTRL.SLU), full duplex, 1000 Mb/s; the PHY:
 * a Marvell 88E1011 (0x01410C2x) whose status says link. */
static void check_link(struct why *w)
{
	wr(CTRL, rd(CTRL) | CTRL_SLU);
	u64 end = rdtsc() + ms_to_tsc(1000);
	while (!(rd(STATUS) & STATUS_LU) && rdtsc() < end)
		cpu_relax();
	u32 st = rd(STATUS);
	if (!(st & STATUS_LU))
		why_add(w, "no link (STATUS 0x%08x)", st);
	if (!(st & STATUS_FD) || (st & 0xC0) != STATUS_SPEED_1000)
		why_add(w, "not 1000 Mb/s full duplex (STATUS 0x%08x)", st);
	int id1 = phy_read(2), id2 = phy_read(3), pst = phy_read(1);
	u32 id = (u32)id1 << 16 | (u32)id2;
	if (id1 < 0 || id2 < 0 || (id & 0xFFFFFFF0u) != 0x01410C20u)
		why_add(w, "PHY id 0x%08x (%d %d)", id, id1, id2);
	if (pst < 0 || !(pst & 4))
		why_add(w, "PHY status %d: no link", pst);
	if (phy_read(0x1E) >= 0)
		why_add(w, "PHY register 0x1e read without MDIC.E");
	println("INFO %s link up, STATUS 0x%08x, PHY id 0x%08x status 0x%04x", name, st, id,
		pst);
}

/* IOADDR/IODATA in BAR 1 reach the registers. */
static void check_io(struct pci_dev *d, struct why *w)
{
	u16 io = (u16)d->bar[1];
	pci_write16(d, 0x04, (u16)(pci_read16(d, 0x04) | 1));
	outl(io, STATUS);
	if (inl(io) != STATUS)
		why_add(w, "IOADDR reads 0x%x", inl(io));
	u32 via_io = inl((u16)(io + 4)), via_mmio = rd(STATUS);
	if (via_io != via_mmio)
		why_add(w, "STATUS through IODATA 0x%08x, through BAR 0 0x%08x", via_io, via_mmio);
	outl(io, IMS);
	outl((u16)(io + 4), ICR_LSC);
	if (rd(IMS) != ICR_LSC)
		why_add(w, "IMS written through IODATA reads 0x%x", rd(IMS));
	wr(IMC, 0xFFFFFFFFu);
	println("INFO %s I/O window at 0x%x", name, io);
}

static void nic_irq(u8 v)
{
	(void)v;
	u32 icr = ~0u;
	if (icr_hold)
		icr_hold--;
	else
		icr_seen |= icr = rd(ICR);
	icr_log[deliveries++ % ICR_LOG] = icr;
}

/* The line as a level: ICS raises it; a delivery that leaves ICR unread is followed by
 * another; once ICR is read the line drops (on this project's host one more delivery
 * reading an empty ICR is tolerated, as for the virtio INTx check). */
static void check_intx(struct pci_dev *d, struct why *w)
{
	u8 line = pci_read8(d, 0x3C);
	int gsi = line && line != 0xFF ? line : opt.intx_gsi;
	int vec = irq_vectors(1);
	if (gsi <= 0 || vec < 0) {
		why_add(w, "no INTx line (line register %u, no oxtest.intxgsi) or vector", line);
		return;
	}
	lapic_init();
	irq_set_handler((u8)vec, nic_irq);
	ioapic_route((u32)gsi, (u8)vec, lapic_id(), true, false);
	pci_write16(d, 0x04, (u16)(pci_read16(d, 0x04) & ~0x400));
	wr(IMS, ICR_LSC);
	icr_hold = 1;
	deliveries = 0;
	icr_seen = 0;
	wr(ICS, ICR_LSC);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.timeout_ms);
	__asm__ volatile("sti" ::: "memory");
	while (rdtsc() < end && !(icr_seen & ICR_LSC))
		cpu_relax();
	delay_us(50000);                /* a line left high would keep interrupting */
	cli();
	u32 n = deliveries;
	int first_read = -1;
	for (u32 i = 0; i < n && i < ICR_LOG; i++)
		if (first_read < 0 && icr_log[i] != ~0u && (icr_log[i] & ICR_LSC))
			first_read = (int)i;
	if (!(icr_seen & ICR_LSC))
		why_add(w, "ICS LSC: no delivery read LSC in %lld ms (%u deliveries)",
			opt.timeout_ms, n);
	else if (first_read < 1)
		why_add(w, "not delivered again while ICR was unread");
	else if (n > (u32)first_read + 2)
		why_add(w, "%u deliveries: the line stays high after the ICR read", n);
	if (rd(ICR) != 0)
		why_add(w, "ICR not cleared by the handler's read");
	println("INFO %s intx gsi %d (line register %u) vector 0x%x: %u deliveries for one ICS",
		name, gsi, line, vec, n);
	wr(IMC, ICR_LSC);
}

/* A descriptor as four dwords. */
static void desc(volatile u32 *d, u64 addr, u32 cmd_len, u32 upper)
{
	d[0] = (u32)addr;
	d[1] = (u32)(addr >> 32);
	d[2] = cmd_len;
	d[3] = upper;
}

/* Waits until the device has taken the transmit ring up to TDT; false after 1 s. */
static bool tx_drained(void)
{
	u64 end = rdtsc() + ms_to_tsc(1000);
	while (rd(TDH) != rd(TDT))
		if (rdtsc() > end)
			return false;
	return true;
}

/* oxtest.e1000garbage=1: a driver gone wrong. Transmit descriptors whose buffers lie
 * outside guest memory or wrap the address space, a context descriptor with a header
 * longer than its packet and MSS 0 followed by a TSO packet, a descriptor type that
 * does not exist, a packet growing past any size; rings outside guest memory, heads
 * and tails past their rings; receive buffers outside guest memory while the host
 * sends. The device must consume what it can, and work again after a reset. */
static void check_garbage(struct why *w)
{
	static u32 bad[8][4] __attribute__((aligned(128)));
	static u8 frame[64] __attribute__((aligned(64)));
	const u64 far = 0x100000000000ull;          /* 16 TiB: no guest has RAM there */
	memset(frame, 0xFF, 6);
	memcpy(frame + 6, nic.mac, 6);
	frame[12] = 0x88;
	frame[13] = 0xB5;
	desc(bad[0], far, 1500 | (u32)(TX_EOP | TX_RS) << 24, 0);
	desc(bad[1], ~0ull - 100, 0xFFFF | (u32)(TX_EOP | TX_RS) << 24, 0);
	/* context: TSE, TCP, IP, header 255 bytes, MSS 0; then a TSO data packet */
	desc(bad[2], 14 | 24 << 8 | 33 << 16 | (u64)(34 | 50 << 8) << 32,
	     100 | 0x2Fu << 24, 255u << 8);
	desc(bad[3], (u64)(usize)frame, 60 | 1u << 20 | 0x2Du << 24, 3u << 8);
	desc(bad[4], (u64)(usize)frame, 60 | 0xFu << 20 | 0x29u << 24, 0);
	desc(bad[5], (u64)(usize)frame, 0xFFFFF | 1u << 20 | 0x20u << 24, 0);
	desc(bad[6], far, 0xFFFFF | 1u << 20 | 0x29u << 24, 0);
	desc(bad[7], (u64)(usize)frame, 60 | (u32)(TX_EOP | TX_RS) << 24, 0);
	wr(TDBAL, (u32)(usize)bad);
	wr(TDBAH, 0);
	wr(TDLEN, sizeof(bad));
	wr(TDH, 0);
	wr(TCTL, TCTL_EN);
	wr(TDT, 7);
	if (!tx_drained())
		why_add(w, "bad descriptors not taken (TDH %u)", rd(TDH));
	/* the ring outside guest memory; a tail past the ring */
	wr(TDBAL, 0xFFFFF000u);
	wr(TDBAH, 0xFFFFFFFFu);
	wr(TDLEN, 0xFFF80);
	wr(TDT, 64);
	if (!tx_drained())
		why_add(w, "a ring outside memory not taken (TDH %u)", rd(TDH));
	wr(TDBAL, (u32)(usize)bad);
	wr(TDBAH, 0);
	wr(TDLEN, sizeof(bad));
	wr(TDH, 3);
	wr(TDT, 9);
	/* receive: a ring outside memory, then buffers outside memory, while the host's
	 * frames arrive; then a head past the ring */
	wr(RDBAL, 0xFFFFF000u);
	wr(RDBAH, 0xFFFFFFFFu);
	wr(RDLEN, 0xFFF80);
	wr(RDH, 0);
	wr(RDT, 100);
	wr(RCTL, RCTL_EN | RCTL_BAM | (1u << 3) | (1u << 4));
	delay_us(300000);
	for (int i = 0; i < 8; i++)
		desc(bad[i], far + (u64)i * 0x1000, 0, 0);
	wr(RDBAL, (u32)(usize)bad);
	wr(RDBAH, 0);
	wr(RDLEN, sizeof(bad));
	wr(RDH, 0);
	wr(RDT, 7);
	delay_us(300000);
	u32 taken = rd(RDH);
	wr(RDH, 20);
	wr(RDT, 3);
	delay_us(100000);
	println("INFO %s garbage taken: transmit head %u, receive head %u after buffers outside memory",
		name, rd(TDH), taken);
	reset(w);
	u32 st = rd(STATUS);
	if (st == 0xFFFFFFFFu || !(st & STATUS_LU))
		why_add(w, "after the reset STATUS 0x%08x", st);
}

static bool rings(struct why *w)
{
	rxd = dma_alloc(NRX * sizeof(*rxd), 128);
	txd = dma_alloc(NTX * sizeof(*txd), 128);
	if (!rxd || !txd) {
		why_add(w, "out of DMA memory for the rings");
		return false;
	}
	memset(rxd, 0, NRX * sizeof(*rxd));
	memset(txd, 0, NTX * sizeof(*txd));
	for (int i = 0; i < NRX; i++) {
		rxbuf[i] = dma_alloc(BUFLEN, 64);
		if (!rxbuf[i]) {
			why_add(w, "out of DMA memory for receive buffers");
			return false;
		}
		rxd[i].addr = (u64)(usize)rxbuf[i];
	}
	for (int i = 0; i < 128; i++)
		wr(MTA + 4 * (u32)i, 0);
	wr(RDBAL, (u32)(usize)rxd);
	wr(RDBAH, 0);
	wr(RDLEN, NRX * sizeof(*rxd));
	wr(RDH, 0);
	wr(RDT, NRX - 1);
	wr(RCTL, RCTL_EN | RCTL_BAM | RCTL_SECRC);          /* 2 KiB buffers */
	wr(TDBAL, (u32)(usize)txd);
	wr(TDBAH, 0);
	wr(TDLEN, NTX * sizeof(*txd));
	wr(TDH, 0);
	wr(TDT, 0);
	wr(TIPG, 10 | 8 << 10 | 6 << 20);
	wr(TCTL, TCTL_EN | TCTL_PSP | 0x0F << 4 | 0x40 << 12);
	rx_next = tx_next = 0;
	return true;
}

/* One frame in one legacy descriptor; waits for DD. The frame is DMA memory (the
 * stack's transmit buffer). */
static bool nic_send(const u8 *frame, u32 len)
{
	volatile struct tx_desc *d = &txd[tx_next];
	d->addr = (u64)(usize)frame;
	d->len = (u16)len;
	d->cso = 0;
	d->css = 0;
	d->special = 0;
	d->status = 0;
	d->cmd = TX_EOP | TX_IFCS | TX_RS;
	tx_next = (tx_next + 1) % NTX;
	barrier();
	wr(TDT, tx_next);
	u64 end = rdtsc() + ms_to_tsc((u64)opt.timeout_ms);
	while (!(d->status & DESC_DD))
		if (rdtsc() > end)
			return false;
	tx_frames++;
	return true;
}

/* Every frame the device wrote back; each descriptor goes back to it at once. */
static int nic_poll(void (*handle)(const u8 *frame, u32 len))
{
	int n = 0;
	for (;;) {
		volatile struct rx_desc *d = &rxd[rx_next];
		if (!(d->status & DESC_DD))
			break;
		barrier();
		if ((d->status & RX_EOP) && !d->errors && d->len >= 14 && d->len <= BUFLEN)
			handle(rxbuf[rx_next], d->len);
		d->status = 0;
		wr(RDT, rx_next);
		rx_next = (rx_next + 1) % NRX;
		rx_frames++;
		n++;
	}
	return n;
}

void check_e1000(void)
{
	struct why w = { .len = 0 };
	w.buf[0] = 0;
	struct pci_dev *d = find();
	if (!d) {
		why_add(&w, "no 8086:100e function");
		report("e1000", false, &w);
		return;
	}
	snprintf(name, sizeof(name), "e1000-%02x", d->dev);
	if (!check_function(d, &w)) {
		report_sub("pci", &w);
		return;
	}
	report_sub("pci", &w);
	reset(&w);
	report_sub("reset", &w);
	check_eeprom(&w);
	report_sub("eeprom", &w);
	check_link(&w);
	report_sub("link", &w);
	if (d->bar[1] && d->bar[1] < 0x10000) {
		check_io(d, &w);
		report_sub("io", &w);
	} else {
		println("INFO %s BAR 1 unassigned: the I/O window is not checked", name);
	}
	check_intx(d, &w);
	report_sub("intx", &w);
	if (opt.e1000_garbage) {
		check_garbage(&w);
		report_sub("garbage", &w);
	}
	if (!rings(&w)) {
		report_sub("rings", &w);
		return;
	}
	nic.name = name;
	nic.send = nic_send;
	nic.poll = nic_poll;
	icr_seen = 0;
	deliveries = 0;
	wr(IMS, ICR_RXT0 | ICR_TXDW | ICR_LSC | ICR_RXO | ICR_RXDMT0);
	__asm__ volatile("sti" ::: "memory");
	net_run_link(&nic);
	delay_us(20000);                /* the last interrupts */
	cli();
	u32 gptc = rd(GPTC), gprc = rd(GPRC);
	println("INFO %s %u deliveries, causes 0x%x; GPTC %u GPRC %u, %u frames sent and %u received",
		name, deliveries, icr_seen, gptc, gprc, tx_frames, rx_frames);
	if (tx_frames && !(icr_seen & ICR_TXDW))
		why_add(&w, "no TXDW interrupt for %u frames sent", tx_frames);
	if (rx_frames && !(icr_seen & ICR_RXT0))
		why_add(&w, "no RXT0 interrupt for %u frames received", rx_frames);
	if (gptc < tx_frames || gprc < rx_frames)
		why_add(&w, "statistics count %u sent and %u received", gptc, gprc);
	report_sub("irq", &w);
}
