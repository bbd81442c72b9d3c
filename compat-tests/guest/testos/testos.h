/* testos: a freestanding x86-64 test guest for oxvirt.
 * Shared declarations for all C files. */
#ifndef TESTOS_H
#define TESTOS_H

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;
typedef long long i64;
typedef unsigned long usize;
typedef _Bool bool;
#define true 1
#define false 0
#define NULL ((void *)0)

#define TRAMP_BASE 0x8000u   /* AP start-up page (SIPI vector 0x08) */
#define MAX_CPUS 64
#define MAX_E820 128
#define MAX_IOAPICS 8

/* ---- port and memory-mapped I/O, MSRs, misc instructions ---- */
static inline void outb(u16 port, u8 v) { __asm__ volatile("outb %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outw(u16 port, u16 v) { __asm__ volatile("outw %0, %1" ::"a"(v), "Nd"(port)); }
static inline void outl(u16 port, u32 v) { __asm__ volatile("outl %0, %1" ::"a"(v), "Nd"(port)); }
static inline u8 inb(u16 port) { u8 v; __asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u16 inw(u16 port) { u16 v; __asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u32 inl(u16 port) { u32 v; __asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port)); return v; }
static inline u8 mmio_r8(u64 a) { return *(volatile u8 *)a; }
static inline u16 mmio_r16(u64 a) { return *(volatile u16 *)a; }
static inline u32 mmio_r32(u64 a) { return *(volatile u32 *)a; }
static inline void mmio_w8(u64 a, u8 v) { *(volatile u8 *)a = v; }
static inline void mmio_w16(u64 a, u16 v) { *(volatile u16 *)a = v; }
static inline void mmio_w32(u64 a, u32 v) { *(volatile u32 *)a = v; }
static inline void mmio_w64(u64 a, u64 v) { *(volatile u64 *)a = v; }
static inline u64 rdmsr(u32 msr)
{
	u32 lo, hi;
	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return ((u64)hi << 32) | lo;
}
static inline void wrmsr(u32 msr, u64 v)
{
	__asm__ volatile("wrmsr" ::"c"(msr), "a"((u32)v), "d"((u32)(v >> 32)) : "memory");
}
static inline u64 rdtsc(void)
{
	u32 lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return ((u64)hi << 32) | lo;
}
static inline void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}
static inline void cpu_relax(void) { __asm__ volatile("pause" ::: "memory"); }
static inline void cli(void) { __asm__ volatile("cli" ::: "memory"); }
static inline void sti_hlt(void) { __asm__ volatile("sti; hlt" ::: "memory"); }
static inline void barrier(void) { __asm__ volatile("" ::: "memory"); }

/* ---- lib.c ---- */
void *memcpy(void *d, const void *s, usize n);
void *memset(void *d, int c, usize n);
int memcmp(const void *a, const void *b, usize n);
usize strlen(const char *s);
int strncmp(const char *a, const char *b, usize n);
const u8 *memfind(const u8 *hay, usize hlen, const void *needle, usize nlen);
typedef __builtin_va_list va_list;
#define va_start(v, l) __builtin_va_start(v, l)
#define va_end(v) __builtin_va_end(v)
#define va_arg(v, t) __builtin_va_arg(v, t)
int vsnprintf(char *buf, usize size, const char *fmt, va_list ap);
int snprintf(char *buf, usize size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* A growable "why" string for FAIL reasons: sub-check failures joined by "; ". */
struct why {
	char buf[512];
	usize len;
};
void why_add(struct why *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* ---- serial.c: COM1 output, serialised between CPUs ---- */
void serial_init(void);
void println(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void spin_lock(volatile u32 *l);
void spin_unlock(volatile u32 *l);

/* ---- cmdline.c ---- */
struct options {
	char checks[256];
	char then[32];
	int cpus;        /* -1 if not given */
	i64 mem_mib;     /* -1 if not given */
	i64 epoch;       /* -1 if not given */
	int pci;         /* 0/1 */
	int gedirq;      /* -1 if not given */
	int hprefuse;    /* oxtest.hprefuse: the slot whose first removal is refused, -1 */
	int x2apic;      /* oxtest.x2apic=1: switch the BSP's LAPIC to x2APIC mode first */
	int e820_lax;    /* oxtest.e820=lax: tolerate an unsorted map and empty entries */
	/* PCI and virtio (see README): */
	char devs[256];  /* oxtest.devs=SLOT:KIND[:FLAG],... */
	u64 ecam;        /* oxtest.ecam=0x...: ECAM base, overrides MCFG/DSDT */
	u64 mmio32, mmio32_size;   /* oxtest.mmio32=BASE:SIZE (hex): BAR window */
	i64 blkwrite;    /* oxtest.blkwrite=SECTOR: first of 8 sectors the write test uses */
	i64 blkzero;     /* oxtest.blkzero=SECTOR: write-zeroes test, -1: off */
	int console_echo;          /* oxtest.console=echo */
	u32 vsock_port, vsock_cid; /* oxtest.vsockport, oxtest.vsockcid */
	u32 ip;          /* oxtest.ip=A.B.C.D[/PREFIX], network byte order in memory */
	int prefix;      /* its prefix length (default 24) */
	int dhcp;        /* oxtest.ip=dhcp: lease the address with DHCPv4 instead */
	u32 gw;          /* oxtest.gw=G.G.G.G: router for a static address, 0: none */
	char hostname[64];         /* oxtest.hostname=NAME: DHCP option 12 (default oxtest) */
	u32 netreach;    /* oxtest.netreach=A.B.C.D: ping it (through the router), 0: off */
	int netreachcount;         /* oxtest.netreachcount=N: echo requests (default 3) */
	int netsend, netrecv, netping, netudp, balloon_pages;
	i64 nettime_ms, netserve_s, balloonwait_ms, timeout_ms;
	/* interrupts and ring features of the blk check (see README) */
	int irq;         /* oxtest.irq=poll|msix|intx: IRQ_* */
	int intx_gsi;    /* oxtest.intxgsi=N: INTx GSI if the interrupt line register has none */
	int e1000_garbage;         /* oxtest.e1000garbage=1: the e1000 check feeds the NIC garbage first */
	int event_idx;   /* oxtest.eventidx=1: negotiate VIRTIO_F_RING_EVENT_IDX */
	int indirect;    /* oxtest.indirect=1: negotiate and use VIRTIO_F_RING_INDIRECT_DESC */
	/* throughput modes */
	char blkbench[512];        /* oxtest.blkbench=MODE:SIZE:QD:MS,... */
	i64 blkspan_mib;           /* oxtest.blkspan=MIB: bench region from sector 0 */
	char netbench[128];        /* oxtest.netbench=tx:MS[:LEN],udp:MS:LEN:A.B.C.D:PORT,... */
	/* display (see README) */
	u32 disp_w, disp_h;        /* oxtest.display=WxH (default 640x480) */
	u32 resize_w, resize_h;    /* oxtest.display.resize=WxH, 0: none */
	/* ticker */
	u32 tickmem_mib;           /* oxtest.tickmem=MIB: the ticker keeps a region's checksum */
	int tickdev;               /* oxtest.tickdev=1: the ticker uses virtio-rng and -blk (tickdev.c) */
	u32 fill_mib;              /* oxtest.fillmib=MIB: memfill stops after this much, 0: all */
};
#define IRQ_POLL 0
#define IRQ_MSIX 1
#define IRQ_INTX 2
extern struct options opt;
void cmdline_parse(const char *cmdline);
/* A.B.C.D (n bytes) into *out, network byte order in memory; false if malformed. */
bool parse_ipv4(const char *v, usize n, u32 *out);
/* Iterate a comma list: copies the next item into item, returns the rest or NULL. */
const char *next_item(const char *list, char *item, usize itemsz);

/* ---- start info and e820 (e820.c) ---- */
struct e820_entry {
	u64 addr, size;
	u32 type;
};
extern struct e820_entry e820[MAX_E820];
extern u32 e820_count;
void e820_capture(u64 memmap_paddr, u32 entries);
void e820_capture_stride(u64 paddr, u32 entries, u32 stride);
bool check_e820(struct why *w);
bool e820_is_ram(u64 start, u64 end);

/* ---- how the guest was booted (boot.S, multiboot2.c) ---- */
#define BOOT_PVH 0
#define BOOT_MULTIBOOT2 1
#define MB2_BOOT_MAGIC 0x36d76289u
extern u32 boot_protocol;   /* set by the entry point in boot.S */
extern u32 boot_mb2_magic;  /* %eax at the multiboot2 entry */
struct boot_info {
	const char *cmdline;    /* NUL-terminated, or NULL */
	u64 rsdp;               /* hint for acpi_init, 0: scan */
	u32 rsdp_tag;           /* multiboot2 tag it came from (14, 15), 0: none */
	const char *rsdp_how;   /* how it was found */
	u32 mbi_size, mmap_entries;
	u64 efi_st;             /* EFI system table (tag 12), 0: none */
	const char *loader;     /* boot loader name ("" if none) */
	const char *tags;       /* tag types seen, "1,2,6,..." */
};
/* Reads the multiboot2 information at mbi: captures the memory map (e820.c), points
 * bi->cmdline at the command line and finds the RSDP. A wrong %eax magic or a malformed
 * structure prints FAIL boot and DONE, then halts. */
void mb2_read(u32 mbi, struct boot_info *bi);

/* ---- acpi.c ---- */
struct gas {
	u8 space, bit_width, bit_offset, access_size;
	u64 addr;
};
struct acpi_info {
	bool found;
	u64 rsdp;
	const u8 *fadt, *madt, *dsdt, *mcfg;
	u32 dsdt_len;
	u64 lapic_addr;
	int ncpus;                  /* enabled LAPIC/x2APIC entries */
	u32 apic_ids[MAX_CPUS];
	/* APIC ID by processor UID of every entry enabled or online capable (CPU
	 * hotplug), and one past the highest such UID. */
	u32 uid_apic[MAX_CPUS];
	int nuids;
	int nioapics;
	struct { u32 id; u64 addr; u32 gsi_base; } ioapic[MAX_IOAPICS];
	bool sleep_ok, reset_ok;
	struct gas sleep_ctl, sleep_sts, reset_reg, pm1a_cnt;
	u8 reset_value;
};
extern struct acpi_info acpi;
void acpi_init(u64 rsdp_hint);
bool check_acpi(struct why *w);
/* Returns SLP_TYP for S5 from the DSDT's \_S5_ package, or -1. */
int acpi_s5_slp_typ(void);
/* Returns the GED's interrupt (GSI) from its _CRS, or -1; *flags gets the descriptor flags. */
int acpi_ged_irq(u8 *flags);
void gas_write(const struct gas *g, u64 v);

/* ---- time.c ---- */
extern u64 tsc_hz;
void tsc_calibrate(void);
u64 ms_to_tsc(u64 ms);
void delay_us(u64 us);

/* ---- rtc.c ---- */
bool check_rtc(struct why *w);
bool check_finish(struct why *w);

/* ---- lapic.c / ioapic.c / idt.c ---- */
void lapic_init(void);
u32 lapic_id(void);
void lapic_eoi(void);
void lapic_send_ipi(u32 apic_id, u32 icr_low);
bool lapic_tsc_deadline(void);
void lapic_arm_deadline(u64 tsc);
bool lapic_x2apic(void);
void ioapic_route(u32 gsi, u8 vector, u32 dest, bool level, bool active_low);
void ioapic_mask(u32 gsi);
typedef void (*irq_handler)(u8 vector);
void idt_init(void);
void idt_load_current(void);
void irq_set_handler(u8 vector, irq_handler h);
/* user.c: runs fn(arg) in ring 3 (natively fast on a paravirtualised KVM that emulates
 * ring 0) and returns its result. */
u64 run_user(u64 (*fn)(void *), void *arg);
/* From the exception path: returns to run_user's caller if this is the user side's exit. */
void user_exception(u64 vector, u64 rip, u64 cs);
#define VEC_TIMER 0xE0
#define VEC_GED 0x30
#define VEC_SPURIOUS 0xFF

/* ---- smp.c ---- */
bool check_smp(struct why *w);
void ap_main(void);
/* Starts the AP with APIC ID apic_id on stack slot idx (INIT, SIPI) and waits until
 * it ran its task; false if it did not. */
bool smp_start_ap(int idx, u32 apic_id);

/* ---- main.c ---- */
/* Prints PASS name / FAIL name: why, and counts it. */
void report(const char *name, bool ok, const struct why *w);

/* ---- pci.c ---- */
#define MAX_PCI 64
struct pci_dev {
	u8 bus, dev, fn, hdr;
	u16 vendor, device;
	u32 class;
	u64 bar[6], bar_size[6];
	bool bar_io[6], bar64[6];
	u8 bar_assigned, bar_unassigned;   /* bit masks */
	u8 msix;                           /* MSI-X capability offset, 0 if none */
	u8 vcap[8], nvcaps;                /* vendor-specific (virtio) capabilities */
};
struct pci_expect {
	int slot, type;
	char flag[8], text[32];
};
extern struct pci_dev pci_devs[MAX_PCI];
extern int pci_ndevs;
extern struct pci_expect pci_expect[MAX_PCI];
extern int pci_nexpect;
u32 pci_read32(const struct pci_dev *d, u16 off);
u16 pci_read16(const struct pci_dev *d, u16 off);
u8 pci_read8(const struct pci_dev *d, u16 off);
void pci_write32(const struct pci_dev *d, u16 off, u32 v);
void pci_write16(const struct pci_dev *d, u16 off, u16 v);
void pci_scan(void);
/* Forgets what pci_scan found and scans again (after a hotplug event). */
void pci_rescan(void);
struct pci_dev *pci_find(int bus, int dev, int fn);
bool virtio_caps_ok(const struct pci_dev *d, int type, struct why *w);
const char *virtio_kind(int type);
void check_pci(void);
int acpi_dev_mem(const char *id, int nth, u64 *base, u64 *len, int max);
/* oxvirt's GED: the address of its event byte (OperationRegion GDST, bit 0 the power
 * button, read clears), or 0 on other platforms. */
u64 acpi_ged_events_reg(void);

/* ---- virtio_pci.c: modern virtio-pci transport, split virtqueues, polled ---- */
#define VIRTIO_F_VERSION_1 (1ull << 32)
struct vring_desc { u64 addr; u32 len; u16 flags, next; };
struct vq {
	u16 size, index, free_head, nfree, last_used;
	u16 kicked;              /* avail idx at the last notification (EVENT_IDX) */
	bool event_idx;          /* VIRTIO_F_RING_EVENT_IDX negotiated */
	bool indirect;           /* chains of more than one buffer go in an indirect table */
	struct vring_desc *desc;
	struct vring_desc *itab; /* indirect tables: 4 descriptors per ring descriptor */
	volatile u16 *avail;     /* flags, idx, ring[size], used_event */
	volatile u8 *used;       /* flags, idx, {id, len}[size], avail_event */
	u64 notify;
	u8 vector;               /* IDT vector of its interrupt (MSI-X or INTx), 0: polled */
};
struct vbuf { void *addr; u32 len; };
#define VDEV_MAXQ 9             /* virtio-net: 4 queue pairs and the control queue */
struct vdev {
	struct pci_dev *pci;
	int type;
	char name[24];           /* e.g. "blk-03" */
	u64 common, notify, isr, cfg;
	u32 notify_mult, cfg_len;
	u64 features;            /* negotiated */
	u64 offered;             /* offered by the device */
	struct vq q[VDEV_MAXQ];
	const struct pci_expect *exp;
	int irq_mode;            /* IRQ_POLL, IRQ_MSIX, IRQ_INTX */
	u8 vec_config;           /* MSI-X: configuration-change vector */
	u8 vec_base;             /* MSI-X: queue q on vec_base + q; INTx: the one vector */
	u32 gsi;                 /* INTx */
	volatile u32 isr_seen;   /* INTx: ISR bits the handler read */
	volatile u32 intx_hold;  /* INTx: deliveries left whose ISR the handler leaves unread */
#define ISR_LOG 8
	volatile u8 isr_log[ISR_LOG];   /* INTx: ISR read per delivery, 0xFF: left unread */
	volatile u32 isr_n;
};
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_EVENT_IDX (1ull << 29)
/* Interrupts taken per IDT vector (virtio_irq.c). */
extern volatile u32 irq_count[256];
/* n consecutive free IDT vectors for device interrupts; the first, or -1. */
int irq_vectors(int n);
/* MSI-X (one vector per queue plus configuration) or level INTx through the IOAPIC;
 * call after vdev_start, before vq_setup. */
bool vdev_irq_setup(struct vdev *d, int mode, int nqueues, struct why *w);
void vdev_irq_off(struct vdev *d);
void *dma_alloc(usize size, usize align);
/* The DMA pool's fill level, and going back to it once nothing uses what came after. */
usize dma_mark(void);
void dma_release(usize mark);
/* Only the virtio device in this slot of bus 0 is found (-1: every one). */
extern int virtio_only_slot;
/* Resets the virtio device at p (status 0, read back); false without its capabilities. */
bool vdev_reset_pci(struct pci_dev *p);
/* Finds the devices of a virtio type (from oxtest.devs, else every matching function). */
int virtio_find(int type, struct vdev *out, int max);
bool vdev_start(struct vdev *d, u64 wanted, struct why *w);
bool vq_setup(struct vdev *d, int qi, u16 max, struct why *w);
void vdev_ready(struct vdev *d);
int vq_add(struct vq *q, const struct vbuf *b, int nout, int nin);
void vq_kick(struct vq *q);
int vq_get(struct vq *q, u32 *len);
int vq_wait(struct vq *q, int head, u64 timeout_ms, u32 *len);
/* add + kick + wait for that chain: returns false on timeout */
bool vq_xfer(struct vq *q, const struct vbuf *b, int nout, int nin, u32 *len);
u8 vcfg8(const struct vdev *d, u32 off);
u16 vcfg16(const struct vdev *d, u32 off);
u32 vcfg32(const struct vdev *d, u32 off);
u64 vcfg64(const struct vdev *d, u32 off);
void check_blk(void);
void tickdev_init(void);
int console_tick_init(struct why *w);
void console_tick(u64 tick, struct why *w);
int vsock_tick_init(struct why *w);
void vsock_tick(u64 tick, struct why *w);
int net_tick_init(struct why *w);
void net_tick(u64 tick);
int balloon_tick_init(struct why *w);
void balloon_tick(u64 tick, struct why *w);
bool tickdev_step(u64 tick, struct why *w);
void check_rng(void);
void check_console(void);
void check_balloon(void);
void check_vsock(void);
void check_net(void);
void net_serve(void);
/* Forgets the NIC the net check set up (hot unplug): the next check starts afresh. */
void net_forget(void);
/* A NIC other than virtio-net under the network stack of virtio_net.c. */
struct net_link {
	const char *name;                  /* in results: "e1000-08" */
	u8 mac[6];
	/* Sends one frame (at least 60 bytes); true once the device is done with it. */
	bool (*send)(const u8 *frame, u32 len);
	/* Hands every received frame to handle; returns how many there were. */
	int (*poll)(void (*handle)(const u8 *frame, u32 len));
};
/* The net check's exchange (test frames, echo requests, datagrams; oxtest.net*) on
 * link; afterwards net-serve serves on it too. */
void net_run_link(const struct net_link *link);
void check_e1000(void);
void check_blkbench(void);
void check_netbench(void);
void check_gpu(void);


/* ---- display.c, input.c ---- */
struct display {
	u64 fb, fb_size;   /* BAR0 */
	u64 mmio;          /* BAR2, 0: DISPI through ports 0x1CE/0x1CF */
	u32 w, h, stride;  /* current mode; stride in pixels */
	bool ok;           /* the display check passed */
};
extern struct display disp;
void check_display(void);
bool display_set_mode(u32 w, u32 h, struct why *why);
bool display_draw_checked(u32 *checksum, struct why *why);
/* Draws the pattern (README, Display) into any 32-bit buffer and checks it reads back. */
bool display_draw_into(volatile u32 *fb, u32 w, u32 h, u32 stride, u32 *checksum,
		       struct why *why);
void display_resize(void);
void display_loop(void);
void input_loop(void);
/* ---- virtio_input.c ---- */
void vinput_loop(void);

/* Routes the GED's interrupt (its _CRS, or oxtest.gedirq) to VEC_GED with handler h;
 * its GSI, or -1 without one. */
int ged_route(irq_handler h);

/* ---- hotplug.c ---- */
void hotplug_loop(void);

/* ---- power.c ---- */
void do_action(const char *action);
void poweroff(void);

#endif
