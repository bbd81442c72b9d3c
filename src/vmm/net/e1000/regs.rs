//! Register offsets in BAR 0 and their bit fields, as Intel's 8254x
//! Software Developer's Manual (and QEMU's `e1000_regs.h`) give them.

// Device control and status.
pub const CTRL: u32 = 0x0000;
pub const STATUS: u32 = 0x0008;
pub const EECD: u32 = 0x0010;
pub const EERD: u32 = 0x0014;
pub const CTRL_EXT: u32 = 0x0018;
pub const MDIC: u32 = 0x0020;
pub const FCAL: u32 = 0x0028;
pub const FCAH: u32 = 0x002c;
pub const FCT: u32 = 0x0030;
pub const VET: u32 = 0x0038;

// Interrupts.
pub const ICR: u32 = 0x00c0;
pub const ITR: u32 = 0x00c4;
pub const ICS: u32 = 0x00c8;
pub const IMS: u32 = 0x00d0;
pub const IMC: u32 = 0x00d8;

// Receive and transmit control.
pub const RCTL: u32 = 0x0100;
pub const FCTTV: u32 = 0x0170;
pub const TXCW: u32 = 0x0178;
pub const RXCW: u32 = 0x0180;
pub const TCTL: u32 = 0x0400;
pub const TIPG: u32 = 0x0410;
pub const AIT: u32 = 0x0458;
pub const LEDCTL: u32 = 0x0e00;
pub const PBA: u32 = 0x1000;
pub const FCRTL: u32 = 0x2160;
pub const FCRTH: u32 = 0x2168;

// Receive ring.
pub const RDBAL: u32 = 0x2800;
pub const RDBAH: u32 = 0x2804;
pub const RDLEN: u32 = 0x2808;
pub const RDH: u32 = 0x2810;
pub const RDT: u32 = 0x2818;
pub const RDTR: u32 = 0x2820;
pub const RXDCTL: u32 = 0x2828;
pub const RADV: u32 = 0x282c;
pub const RSRPD: u32 = 0x2c00;

// Transmit ring.
pub const TXDMAC: u32 = 0x3000;
pub const TDBAL: u32 = 0x3800;
pub const TDBAH: u32 = 0x3804;
pub const TDLEN: u32 = 0x3808;
pub const TDH: u32 = 0x3810;
pub const TDT: u32 = 0x3818;
pub const TIDV: u32 = 0x3820;
pub const TXDCTL: u32 = 0x3828;
pub const TADV: u32 = 0x382c;
pub const TSPMT: u32 = 0x3830;

// FIFO registers (diagnostics; kept, not used).
pub const RDFH: u32 = 0x2410;
pub const RDFPC: u32 = 0x2430;
pub const TDFH: u32 = 0x3410;
pub const TDFPC: u32 = 0x3430;

/// Statistics: every dword in `STATS_START..STATS_END` is a counter that
/// a read clears.
pub const STATS_START: u32 = 0x4000;
pub const STATS_END: u32 = 0x4100;
pub const PRC64: u32 = 0x405c;
pub const GPRC: u32 = 0x4074;
pub const BPRC: u32 = 0x4078;
pub const MPRC: u32 = 0x407c;
pub const GPTC: u32 = 0x4080;
pub const GORCL: u32 = 0x4088;
pub const GORCH: u32 = 0x408c;
pub const GOTCL: u32 = 0x4090;
pub const GOTCH: u32 = 0x4094;
pub const RNBC: u32 = 0x40a0;
pub const ROC: u32 = 0x40ac;
pub const TORL: u32 = 0x40c0;
pub const TORH: u32 = 0x40c4;
pub const TOTL: u32 = 0x40c8;
pub const TOTH: u32 = 0x40cc;
pub const TPR: u32 = 0x40d0;
pub const TPT: u32 = 0x40d4;
pub const PTC64: u32 = 0x40d8;
pub const MPTC: u32 = 0x40f0;
pub const BPTC: u32 = 0x40f4;
pub const TSCTC: u32 = 0x40f8;

// Filters and management.
pub const RXCSUM: u32 = 0x5000;
/// Multicast table: 128 dwords, 4096 hash bits.
pub const MTA: u32 = 0x5200;
pub const MTA_END: u32 = 0x5400;
/// Receive addresses: 16 pairs of RAL/RAH.
pub const RA: u32 = 0x5400;
pub const RA_END: u32 = 0x5480;
/// VLAN filter table: 128 dwords, one bit per VLAN id.
pub const VFTA: u32 = 0x5600;
pub const VFTA_END: u32 = 0x5800;
pub const WUC: u32 = 0x5800;
pub const WUFC: u32 = 0x5808;
pub const WUS: u32 = 0x5810;
pub const MANC: u32 = 0x5820;
pub const IPAV: u32 = 0x5838;
pub const IP4AT: u32 = 0x5840;
pub const IP6AT_END: u32 = 0x5890;
pub const WUPL: u32 = 0x5900;
pub const WUPM: u32 = 0x5a00;
pub const WUPM_END: u32 = 0x5a80;
pub const SWSM: u32 = 0x5b50;
pub const FFLT: u32 = 0x5f00;
pub const FFLT_END: u32 = 0x5f20;
pub const FFMT: u32 = 0x9000;
pub const FFVT_END: u32 = 0xa000;
/// Packet buffer memory (diagnostics).
pub const PBM: u32 = 0x10000;
pub const PBM_END: u32 = 0x20000;

// CTRL bits.
pub const CTRL_SLU: u32 = 1 << 6;
pub const CTRL_SPD_1000: u32 = 1 << 9;
pub const CTRL_SWDPIN0: u32 = 1 << 18;
pub const CTRL_SWDPIN2: u32 = 1 << 20;
pub const CTRL_RST: u32 = 1 << 26;
pub const CTRL_VME: u32 = 1 << 30;

// STATUS bits.
pub const STATUS_FD: u32 = 1 << 0;
pub const STATUS_LU: u32 = 1 << 1;
pub const STATUS_SPEED_1000: u32 = 1 << 7;
/// Auto-speed detection value: QEMU reports both bits.
pub const STATUS_ASDV: u32 = 3 << 8;
pub const STATUS_MTXCKOK: u32 = 1 << 10;
pub const STATUS_GIO_MASTER_ENABLE: u32 = 1 << 19;
/// The top bit QEMU's 82540EM sets (reserved in the manual).
pub const STATUS_BIT31: u32 = 1 << 31;

// Interrupt causes (ICR, ICS, IMS, IMC).
pub const ICR_TXDW: u32 = 1 << 0;
pub const ICR_TXQE: u32 = 1 << 1;
pub const ICR_LSC: u32 = 1 << 2;
pub const ICR_RXDMT0: u32 = 1 << 4;
pub const ICR_RXO: u32 = 1 << 6;
pub const ICR_RXT0: u32 = 1 << 7;
pub const ICR_MDAC: u32 = 1 << 9;

// RCTL bits.
pub const RCTL_EN: u32 = 1 << 1;
pub const RCTL_SBP: u32 = 1 << 2;
pub const RCTL_UPE: u32 = 1 << 3;
pub const RCTL_MPE: u32 = 1 << 4;
pub const RCTL_LPE: u32 = 1 << 5;
pub const RCTL_RDMTS_SHIFT: u32 = 8;
pub const RCTL_MO_SHIFT: u32 = 12;
pub const RCTL_BAM: u32 = 1 << 15;
pub const RCTL_BSIZE_SHIFT: u32 = 16;
pub const RCTL_VFE: u32 = 1 << 18;
pub const RCTL_BSEX: u32 = 1 << 25;
pub const RCTL_SECRC: u32 = 1 << 26;

// TCTL bits.
pub const TCTL_EN: u32 = 1 << 1;

// RAH bits.
pub const RAH_AV: u32 = 1 << 31;

// MDIC fields.
pub const MDIC_DATA_MASK: u32 = 0xffff;
pub const MDIC_REG_SHIFT: u32 = 16;
pub const MDIC_PHY_SHIFT: u32 = 21;
pub const MDIC_OP_WRITE: u32 = 1 << 26;
pub const MDIC_OP_READ: u32 = 1 << 27;
pub const MDIC_READY: u32 = 1 << 28;
pub const MDIC_INT_EN: u32 = 1 << 29;
pub const MDIC_ERROR: u32 = 1 << 30;

// MANC bits QEMU sets at reset.
pub const MANC_RMCP_EN: u32 = 1 << 8;
pub const MANC_0298_EN: u32 = 1 << 9;
pub const MANC_ARP_EN: u32 = 1 << 13;
pub const MANC_RCV_TCO_EN: u32 = 1 << 17;
pub const MANC_EN_MNG2HOST: u32 = 1 << 21;

/// The VLAN ether type VET holds after reset (802.1Q).
pub const ETH_P_8021Q: u32 = 0x8100;
