//! Instructions the host's KVM could not emulate, finished here.
//!
//! Where KVM emulates guest ring-0 code in software (PVM hosts), its
//! emulator lacks a few instructions a stock kernel uses: `cmpxchg16b`,
//! and software interrupts (`int3`, `int n`) outside real mode. It then
//! stops the vCPU with an emulation-failure exit. The vCPU thread decodes
//! the instruction at RIP, carries it out on the vCPU's registers and the
//! guest's memory (a software interrupt is handed back to KVM as an event
//! to deliver, which its delivery path does in any mode) and resumes the
//! guest. Anything else stays the error it was, with its bytes and RIP.

use std::sync::atomic::{AtomicU64, Ordering};

use iced_x86::{Code, Decoder, DecoderOptions, Instruction, Mnemonic, OpKind, Register};
use kvm_bindings::{kvm_regs, kvm_sregs};
use kvm_ioctls::VcpuFd;
use vm_memory::{GuestAddress, GuestMemoryBackend as _};

use crate::vmm::memory::GuestMemory;

/// `KVM_INTERNAL_ERROR_EMULATION`.
pub const SUBERROR_EMULATION: u32 = 1;
/// `KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES`: the exit's data
/// carries the instruction's bytes after the flags.
const FLAG_INSTRUCTION_BYTES: u64 = 1;

const RFLAGS_CF: u64 = 1;
const RFLAGS_PF: u64 = 1 << 2;
const RFLAGS_AF: u64 = 1 << 4;
const RFLAGS_ZF: u64 = 1 << 6;
const RFLAGS_SF: u64 = 1 << 7;
const RFLAGS_OF: u64 = 1 << 11;
const RFLAGS_AC: u64 = 1 << 18;
/// The arithmetic flags.
const RFLAGS_STATUS: u64 = RFLAGS_CF | RFLAGS_PF | RFLAGS_AF | RFLAGS_ZF | RFLAGS_SF | RFLAGS_OF;
const EFER_LMA: u64 = 1 << 10;
const VECTOR_BP: u32 = 3;
const VECTOR_MF: u32 = 16;
const VECTOR_UD: u32 = 6;
const VECTOR_NP: u32 = 11;
const VECTOR_GP: u32 = 13;

/// What was finished, by kind, since the VMM started.
pub struct Counts {
    pub cmpxchg: AtomicU64,
    pub int3: AtomicU64,
    pub int_n: AtomicU64,
    /// Bit counting (`popcnt`, `lzcnt`, `tzcnt`).
    pub bit_count: AtomicU64,
    /// `fwait`.
    pub fwait: AtomicU64,
    /// x87 and SSE control and state: `fninit`, `fnclex`, `fldcw`,
    /// `fnstcw`, `fnstsw`, `ldmxcsr`, `stmxcsr`, `fxsave`, `fxrstor`.
    pub x87: AtomicU64,
    /// Everything else: `clac`/`stac`, `rdrand`/`rdseed`, cache-line
    /// write-backs, `invpcid`.
    pub other: AtomicU64,
    /// Instructions of guest user mode answered with #UD.
    pub user_ud: AtomicU64,
}

pub static FINISHED: Counts = Counts {
    cmpxchg: AtomicU64::new(0),
    int3: AtomicU64::new(0),
    int_n: AtomicU64::new(0),
    bit_count: AtomicU64::new(0),
    fwait: AtomicU64::new(0),
    x87: AtomicU64::new(0),
    other: AtomicU64::new(0),
    user_ud: AtomicU64::new(0),
};

impl Counts {
    /// "kind N, kind N" for the kinds finished at least once.
    pub fn summary(&self) -> String {
        let kinds = [
            ("cmpxchg16b", &self.cmpxchg),
            ("int3", &self.int3),
            ("int", &self.int_n),
            ("bit-count", &self.bit_count),
            ("fwait", &self.fwait),
            ("x87", &self.x87),
            ("other", &self.other),
            ("user #UD", &self.user_ud),
        ];
        kinds
            .iter()
            .map(|(k, n)| (k, n.load(Ordering::Relaxed)))
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The counts for `query-stats`.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "cmpxchg16b": self.cmpxchg.load(Ordering::Relaxed),
            "int3": self.int3.load(Ordering::Relaxed),
            "int": self.int_n.load(Ordering::Relaxed),
            "bit-count": self.bit_count.load(Ordering::Relaxed),
            "fwait": self.fwait.load(Ordering::Relaxed),
            "x87": self.x87.load(Ordering::Relaxed),
            "other": self.other.load(Ordering::Relaxed),
            "user-ud": self.user_ud.load(Ordering::Relaxed),
        })
    }
}

/// The instruction bytes an emulation-failure exit carries, if any:
/// `data[0]` flags, then the length in the low byte of `data[1]` and up
/// to 15 bytes after it.
pub fn exit_bytes(data: &[u64]) -> Option<Vec<u8>> {
    if data.first()? & FLAG_INSTRUCTION_BYTES == 0 || data.len() < 3 {
        return None;
    }
    let raw: Vec<u8> = data[1..].iter().flat_map(|w| w.to_le_bytes()).collect();
    let len = usize::from(raw[0]).min(15).min(raw.len() - 1);
    (len > 0).then(|| raw[1..=len].to_vec())
}

/// The code size the vCPU runs in.
fn bitness(sregs: &kvm_sregs) -> u32 {
    if sregs.efer & EFER_LMA != 0 && sregs.cs.l != 0 {
        64
    } else if sregs.cs.db != 0 {
        32
    } else {
        16
    }
}

/// The value of a general-purpose register as an address part.
fn reg_value(regs: &kvm_regs, reg: Register) -> Option<u64> {
    let full = reg.full_register();
    let v = match full {
        Register::RAX => regs.rax,
        Register::RBX => regs.rbx,
        Register::RCX => regs.rcx,
        Register::RDX => regs.rdx,
        Register::RSI => regs.rsi,
        Register::RDI => regs.rdi,
        Register::RSP => regs.rsp,
        Register::RBP => regs.rbp,
        Register::R8 => regs.r8,
        Register::R9 => regs.r9,
        Register::R10 => regs.r10,
        Register::R11 => regs.r11,
        Register::R12 => regs.r12,
        Register::R13 => regs.r13,
        Register::R14 => regs.r14,
        Register::R15 => regs.r15,
        _ => return None,
    };
    Some(match reg.size() {
        4 => v & 0xffff_ffff,
        2 => v & 0xffff,
        _ => v,
    })
}

/// Writes a general-purpose register as the CPU does: 32-bit writes
/// clear the upper half, 16-bit writes keep it.
fn set_reg(regs: &mut kvm_regs, reg: Register, value: u64) -> Option<()> {
    let slot = match reg.full_register() {
        Register::RAX => &mut regs.rax,
        Register::RBX => &mut regs.rbx,
        Register::RCX => &mut regs.rcx,
        Register::RDX => &mut regs.rdx,
        Register::RSI => &mut regs.rsi,
        Register::RDI => &mut regs.rdi,
        Register::RSP => &mut regs.rsp,
        Register::RBP => &mut regs.rbp,
        Register::R8 => &mut regs.r8,
        Register::R9 => &mut regs.r9,
        Register::R10 => &mut regs.r10,
        Register::R11 => &mut regs.r11,
        Register::R12 => &mut regs.r12,
        Register::R13 => &mut regs.r13,
        Register::R14 => &mut regs.r14,
        Register::R15 => &mut regs.r15,
        _ => return None,
    };
    *slot = match reg.size() {
        8 => value,
        4 => value & 0xffff_ffff,
        2 => (*slot & !0xffff) | (value & 0xffff),
        _ => return None,
    };
    Some(())
}

/// Reads `size` bytes (at most 8) at linear address `linear`, page by page.
fn read_linear(fd: &VcpuFd, mem: &GuestMemory, linear: u64, size: usize) -> Result<u64, String> {
    let mut bytes = [0u8; 8];
    for (k, b) in bytes.iter_mut().take(size).enumerate() {
        let addr = linear.wrapping_add(k as u64);
        *b = read_byte(fd, mem, addr)?
            .ok_or_else(|| format!("{addr:#x} is not mapped to guest RAM"))?;
    }
    Ok(u64::from_le_bytes(bytes))
}

/// The guest byte at linear `addr`; None where nothing of guest RAM is
/// mapped there.
fn read_byte(fd: &VcpuFd, mem: &GuestMemory, addr: u64) -> Result<Option<u8>, String> {
    let t = fd
        .translate_gva(addr)
        .map_err(|e| format!("KVM_TRANSLATE {addr:#x}: {e}"))?;
    if t.valid == 0 {
        return Ok(None);
    }
    let mut one = [0u8; 1];
    Ok(
        vm_memory::Bytes::read_slice(mem, &mut one, GuestAddress(t.physical_address))
            .ok()
            .map(|()| one[0]),
    )
}

/// `fwait`: raises #MF if an unmasked x87 exception is pending (FSW's
/// error-summary bit), else does nothing.
fn fwait(fd: &VcpuFd) -> Result<bool, String> {
    const FSW_ES: u16 = 1 << 7;
    let f = fd.get_fpu().map_err(|e| format!("KVM_GET_FPU: {e}"))?;
    Ok(f.fsw & FSW_ES != 0)
}

/// The pieces of `len` bytes at `linear` that do not cross a page:
/// `(offset in the buffer, linear address, length)`.
fn page_pieces(linear: u64, len: usize) -> impl Iterator<Item = (usize, u64, usize)> {
    let mut done = 0usize;
    std::iter::from_fn(move || {
        (done < len).then(|| {
            let at = linear.wrapping_add(done as u64);
            let n = (0x1000 - (at & 0xfff) as usize).min(len - done);
            let piece = (done, at, n);
            done += n;
            piece
        })
    })
}

/// Writes `bytes` at linear address `linear`, which must be mapped writable.
fn write_linear(fd: &VcpuFd, mem: &GuestMemory, linear: u64, bytes: &[u8]) -> Result<(), String> {
    for (off, at, n) in page_pieces(linear, bytes.len()) {
        let addr = translate(fd, at)?;
        vm_memory::Bytes::write_slice(mem, &bytes[off..off + n], GuestAddress(addr))
            .map_err(|e| format!("{addr:#x}: {e}"))?;
    }
    Ok(())
}

/// Reads guest memory at linear address `linear` into `buf`.
fn read_linear_into(
    fd: &VcpuFd,
    mem: &GuestMemory,
    linear: u64,
    buf: &mut [u8],
) -> Result<(), String> {
    for (off, at, n) in page_pieces(linear, buf.len()) {
        let t = fd
            .translate_gva(at)
            .map_err(|e| format!("KVM_TRANSLATE {at:#x}: {e}"))?;
        if t.valid == 0 {
            return Err(format!("{at:#x} is not mapped"));
        }
        vm_memory::Bytes::read_slice(
            mem,
            &mut buf[off..off + n],
            GuestAddress(t.physical_address),
        )
        .map_err(|e| format!("{at:#x}: {e}"))?;
    }
    Ok(())
}

/// MXCSR bits a guest may set (all of them, DAZ included).
const MXCSR_MASK: u32 = 0xffff;
/// Size of the FXSAVE area.
const FXSAVE_LEN: usize = 512;

/// The vCPU's x87/SSE state in FXSAVE layout. `wide` is the 64-bit form
/// (`fxsave64`): 64-bit instruction and data pointers instead of 32-bit
/// offsets and selectors.
fn fxsave_image(f: &kvm_bindings::kvm_fpu, wide: bool) -> [u8; FXSAVE_LEN] {
    let mut a = [0u8; FXSAVE_LEN];
    a[0..2].copy_from_slice(&f.fcw.to_le_bytes());
    a[2..4].copy_from_slice(&f.fsw.to_le_bytes());
    a[4] = f.ftwx;
    a[6..8].copy_from_slice(&f.last_opcode.to_le_bytes());
    if wide {
        a[8..16].copy_from_slice(&f.last_ip.to_le_bytes());
        a[16..24].copy_from_slice(&f.last_dp.to_le_bytes());
    } else {
        a[8..12].copy_from_slice(&(f.last_ip as u32).to_le_bytes());
        a[16..20].copy_from_slice(&(f.last_dp as u32).to_le_bytes());
    }
    a[24..28].copy_from_slice(&f.mxcsr.to_le_bytes());
    a[28..32].copy_from_slice(&MXCSR_MASK.to_le_bytes());
    for (k, r) in f.fpr.iter().enumerate() {
        a[32 + 16 * k..48 + 16 * k].copy_from_slice(r);
    }
    for (k, r) in f.xmm.iter().enumerate() {
        a[160 + 16 * k..176 + 16 * k].copy_from_slice(r);
    }
    a
}

/// Loads an FXSAVE image into `f`; None when it sets reserved MXCSR bits
/// (the CPU raises #GP for that).
fn load_fxsave(f: &mut kvm_bindings::kvm_fpu, a: &[u8; FXSAVE_LEN], wide: bool) -> Option<()> {
    let u16_at = |i: usize| u16::from_le_bytes([a[i], a[i + 1]]);
    let mxcsr = u32::from_le_bytes([a[24], a[25], a[26], a[27]]);
    if mxcsr & !MXCSR_MASK != 0 {
        return None;
    }
    f.fcw = u16_at(0);
    f.fsw = u16_at(2);
    f.ftwx = a[4];
    f.last_opcode = u16_at(6);
    let u64_at = |i: usize| u64::from_le_bytes(a[i..i + 8].try_into().unwrap_or_default());
    let u32_at = |i: usize| u64::from(u32::from_le_bytes([a[i], a[i + 1], a[i + 2], a[i + 3]]));
    (f.last_ip, f.last_dp) = if wide {
        (u64_at(8), u64_at(16))
    } else {
        (u32_at(8), u32_at(16))
    };
    f.mxcsr = mxcsr;
    for (k, r) in f.fpr.iter_mut().enumerate() {
        r.copy_from_slice(&a[32 + 16 * k..48 + 16 * k]);
    }
    for (k, r) in f.xmm.iter_mut().enumerate() {
        r.copy_from_slice(&a[160 + 16 * k..176 + 16 * k]);
    }
    Some(())
}

/// `ldmxcsr`, `stmxcsr`, `fxsave[64]`, `fxrstor[64]`: the SSE control and
/// state-save instructions firmware runs in ring 0. Ok(false): the
/// instruction faults (#GP), RIP stays.
fn sse_state(
    fd: &VcpuFd,
    mem: &GuestMemory,
    i: &Instruction,
    regs: &kvm_regs,
    sregs: &kvm_sregs,
) -> Result<bool, String> {
    let mut f = fd.get_fpu().map_err(|e| format!("KVM_GET_FPU: {e}"))?;
    let at = linear_address(i, regs, sregs)?;
    let wide = matches!(i.mnemonic(), Mnemonic::Fxsave64 | Mnemonic::Fxrstor64);
    match i.mnemonic() {
        Mnemonic::Stmxcsr => write_linear(fd, mem, at, &f.mxcsr.to_le_bytes())?,
        Mnemonic::Fxsave | Mnemonic::Fxsave64 => {
            if at & 15 != 0 {
                return Ok(false);
            }
            write_linear(fd, mem, at, &fxsave_image(&f, wide))?;
        }
        Mnemonic::Ldmxcsr => {
            let v = read_linear(fd, mem, at, 4)? as u32;
            if v & !MXCSR_MASK != 0 {
                return Ok(false);
            }
            f.mxcsr = v;
            fd.set_fpu(&f).map_err(|e| format!("KVM_SET_FPU: {e}"))?;
        }
        Mnemonic::Fxrstor | Mnemonic::Fxrstor64 => {
            let mut a = [0u8; FXSAVE_LEN];
            if at & 15 != 0 {
                return Ok(false);
            }
            read_linear_into(fd, mem, at, &mut a)?;
            if load_fxsave(&mut f, &a, wide).is_none() {
                return Ok(false);
            }
            fd.set_fpu(&f).map_err(|e| format!("KVM_SET_FPU: {e}"))?;
        }
        _ => return Err(format!("`{i}` is not an SSE state instruction")),
    }
    Ok(true)
}

/// The x87 control instructions firmware runs in ring 0 and this host's
/// emulator lacks (`fninit`, `fnclex`, `fldcw`, `fnstcw`, `fnstsw`), done
/// on the vCPU's x87 state through KVM_GET_FPU/KVM_SET_FPU.
fn x87_control(
    fd: &VcpuFd,
    mem: &GuestMemory,
    i: &Instruction,
    regs: &mut kvm_regs,
    sregs: &kvm_sregs,
) -> Result<(), String> {
    /// FSW: the exception flags, the error summary and the busy bit.
    const FSW_EXCEPTIONS: u16 = 0x80ff;
    let mut f = fd.get_fpu().map_err(|e| format!("KVM_GET_FPU: {e}"))?;
    match i.mnemonic() {
        Mnemonic::Fninit => {
            f.fcw = 0x37f;
            f.fsw = 0;
            // Abridged tag word: every register empty.
            f.ftwx = 0;
            f.last_opcode = 0;
            f.last_ip = 0;
            f.last_dp = 0;
        }
        Mnemonic::Fnclex => f.fsw &= !FSW_EXCEPTIONS,
        Mnemonic::Fldcw => {
            let at = linear_address(i, regs, sregs)?;
            f.fcw = read_linear(fd, mem, at, 2)? as u16;
        }
        Mnemonic::Fnstcw => {
            let at = linear_address(i, regs, sregs)?;
            return write_linear(fd, mem, at, &f.fcw.to_le_bytes());
        }
        Mnemonic::Fnstsw if i.op0_kind() == OpKind::Register => {
            return set_reg(regs, i.op0_register(), u64::from(f.fsw))
                .ok_or_else(|| format!("cannot write the destination of `{i}`"));
        }
        Mnemonic::Fnstsw => {
            let at = linear_address(i, regs, sregs)?;
            return write_linear(fd, mem, at, &f.fsw.to_le_bytes());
        }
        _ => return Err(format!("`{i}` is not an x87 control instruction")),
    }
    fd.set_fpu(&f).map_err(|e| format!("KVM_SET_FPU: {e}"))
}

/// The value of operand 1 (a register or memory), `size` bytes wide.
fn source_operand(
    fd: &VcpuFd,
    mem: &GuestMemory,
    i: &Instruction,
    regs: &kvm_regs,
    sregs: &kvm_sregs,
    size: usize,
) -> Result<u64, String> {
    match i.op1_kind() {
        OpKind::Register => reg_value(regs, i.op1_register())
            .ok_or_else(|| format!("cannot read the source of `{i}`")),
        OpKind::Memory => read_linear(fd, mem, linear_address(i, regs, sregs)?, size),
        _ => Err(format!("cannot read the source of `{i}`")),
    }
}

/// `popcnt`, `lzcnt`, `tzcnt` into their destination register, with
/// their flags (the other arithmetic flags cleared, as the CPU does).
fn bit_count(
    fd: &VcpuFd,
    mem: &GuestMemory,
    i: &Instruction,
    regs: &mut kvm_regs,
    sregs: &kvm_sregs,
) -> Result<(), String> {
    let dst = i.op0_register();
    let size = dst.size();
    let bits = (size * 8) as u32;
    let mask = if size == 8 {
        u64::MAX
    } else {
        (1u64 << bits) - 1
    };
    let src = source_operand(fd, mem, i, regs, sregs, size)? & mask;
    let (result, flags) =
        count_bits(i.mnemonic(), src, bits).ok_or_else(|| format!("`{i}` is not a bit count"))?;
    set_reg(regs, dst, result).ok_or_else(|| format!("cannot write the destination of `{i}`"))?;
    regs.rflags = (regs.rflags & !RFLAGS_STATUS) | flags;
    Ok(())
}

/// A bit count of `src` (`bits` wide) and the status flags it sets.
fn count_bits(m: Mnemonic, src: u64, bits: u32) -> Option<(u64, u64)> {
    Some(match m {
        Mnemonic::Popcnt => (
            u64::from(src.count_ones()),
            if src == 0 { RFLAGS_ZF } else { 0 },
        ),
        Mnemonic::Lzcnt | Mnemonic::Tzcnt => {
            let n = if src == 0 {
                bits
            } else if m == Mnemonic::Lzcnt {
                src.leading_zeros() - (64 - bits)
            } else {
                src.trailing_zeros()
            };
            let cf = if src == 0 { RFLAGS_CF } else { 0 };
            let zf = if n == 0 { RFLAGS_ZF } else { 0 };
            (u64::from(n), cf | zf)
        }
        _ => return None,
    })
}

/// A random value from the host CPU's RDRAND (or RDSEED), retried a
/// few times as Intel advises.
fn host_random(seed: bool) -> Option<u64> {
    for _ in 0..10 {
        let mut v = 0u64;
        // SAFETY: the instructions write only `v`; the guest saw them
        // offered in CPUID, which it reads from this very CPU.
        let ok = unsafe { if seed { rdseed(&mut v) } else { rdrand(&mut v) } };
        if ok {
            return Some(v);
        }
    }
    None
}

#[target_feature(enable = "rdrand")]
unsafe fn rdrand(v: &mut u64) -> bool {
    std::arch::x86_64::_rdrand64_step(v) == 1
}

#[target_feature(enable = "rdseed")]
unsafe fn rdseed(v: &mut u64) -> bool {
    std::arch::x86_64::_rdseed64_step(v) == 1
}

/// The linear address of the instruction's memory operand.
fn linear_address(i: &Instruction, regs: &kvm_regs, sregs: &kvm_sregs) -> Result<u64, String> {
    let unsupported = || format!("cannot address the operand of `{i}`");
    // RIP-relative operands come with the absolute address decoded.
    let mut ea = i.memory_displacement64();
    match i.memory_base() {
        Register::None | Register::RIP | Register::EIP => {}
        base => ea = ea.wrapping_add(reg_value(regs, base).ok_or_else(unsupported)?),
    }
    if i.memory_index() != Register::None {
        let idx = reg_value(regs, i.memory_index()).ok_or_else(unsupported)?;
        ea = ea.wrapping_add(idx.wrapping_mul(u64::from(i.memory_index_scale())));
    }
    let seg_base = match i.memory_segment() {
        Register::FS => sregs.fs.base,
        Register::GS => sregs.gs.base,
        // Flat in long mode; other modes add their segment's base.
        Register::CS if bitness(sregs) != 64 => sregs.cs.base,
        Register::SS if bitness(sregs) != 64 => sregs.ss.base,
        Register::ES if bitness(sregs) != 64 => sregs.es.base,
        Register::DS if bitness(sregs) != 64 => sregs.ds.base,
        _ => 0,
    };
    let ea = ea.wrapping_add(seg_base);
    Ok(if bitness(sregs) == 64 {
        ea
    } else {
        ea & 0xffff_ffff
    })
}

/// Guest-physical address of `linear`, which must be mapped writable.
fn translate(fd: &VcpuFd, linear: u64) -> Result<u64, String> {
    let t = fd
        .translate_gva(linear)
        .map_err(|e| format!("KVM_TRANSLATE {linear:#x}: {e}"))?;
    if t.valid == 0 || t.writeable == 0 {
        return Err(format!("{linear:#x} is not mapped writable"));
    }
    Ok(t.physical_address)
}

/// `cmpxchg16b m128` / `cmpxchg8b m64`: compares RDX:RAX (EDX:EAX) with
/// the operand; if equal stores RCX:RBX (ECX:EBX) and sets ZF, else
/// loads the operand into RDX:RAX and clears ZF. Done with the host's own
/// locked instruction on the guest's memory, so other vCPUs see it
/// atomic.
fn compare_exchange(
    fd: &VcpuFd,
    mem: &GuestMemory,
    i: &Instruction,
    regs: &mut kvm_regs,
    sregs: &kvm_sregs,
) -> Result<(), String> {
    let wide = i.code() == Code::Cmpxchg16b_m128;
    let size: u64 = if wide { 16 } else { 8 };
    let linear = linear_address(i, regs, sregs)?;
    if wide && linear % 16 != 0 {
        return Err(format!(
            "cmpxchg16b operand {linear:#x} is not 16-byte aligned"
        ));
    }
    if linear / 4096 != (linear + size - 1) / 4096 {
        return Err(format!("the operand at {linear:#x} crosses a page"));
    }
    let gpa = translate(fd, linear)?;
    let host = mem
        .get_host_address(GuestAddress(gpa))
        .map_err(|e| format!("guest address {gpa:#x}: {e}"))?;
    if mem.get_host_address(GuestAddress(gpa + size - 1)).is_err() {
        return Err(format!("the operand at {gpa:#x} leaves guest RAM"));
    }
    if wide {
        let old = u128::from(regs.rax) | (u128::from(regs.rdx) << 64);
        let new = u128::from(regs.rbx) | (u128::from(regs.rcx) << 64);
        // SAFETY: `host` maps 16 bytes of guest RAM (checked above: the
        // operand's first and last bytes are in RAM and on one page), 16-
        // byte aligned since the guest address is and regions are page-
        // aligned; the guest memory mapping outlives this call.
        let seen = unsafe { cmpxchg16b(host.cast::<u128>(), old, new) };
        if seen == old {
            regs.rflags |= RFLAGS_ZF;
        } else {
            regs.rflags &= !RFLAGS_ZF;
            regs.rax = seen as u64;
            regs.rdx = (seen >> 64) as u64;
        }
    } else {
        let old = (regs.rax & 0xffff_ffff) | (regs.rdx << 32);
        let new = (regs.rbx & 0xffff_ffff) | (regs.rcx << 32);
        if linear % 8 != 0 {
            return Err(format!(
                "cmpxchg8b operand {linear:#x} is not 8-byte aligned"
            ));
        }
        // SAFETY: as above, for 8 aligned bytes of guest RAM.
        let atomic = unsafe { &*host.cast::<AtomicU64>() };
        match atomic.compare_exchange(old, new, Ordering::SeqCst, Ordering::SeqCst) {
            Ok(_) => regs.rflags |= RFLAGS_ZF,
            Err(seen) => {
                regs.rflags &= !RFLAGS_ZF;
                regs.rax = seen & 0xffff_ffff;
                regs.rdx = seen >> 32;
            }
        }
    }
    Ok(())
}

/// The host's `lock cmpxchg16b` on `dst`: returns what `dst` held.
///
/// # Safety
/// `dst` must be valid for 16-byte reads and writes and 16-byte aligned.
unsafe fn cmpxchg16b(dst: *mut u128, old: u128, new: u128) -> u128 {
    let (mut lo, mut hi) = (old as u64, (old >> 64) as u64);
    // SAFETY: the caller's contract; every x86-64 CPU KVM runs on has the
    // instruction. RBX, which the compiler keeps for itself, is swapped
    // with a scratch register around it and restored.
    unsafe {
        std::arch::asm!(
            "xchg {new_lo}, rbx",
            "lock cmpxchg16b xmmword ptr [{dst}]",
            "mov rbx, {new_lo}",
            dst = in(reg) dst,
            new_lo = inout(reg) new as u64 => _,
            in("rcx") (new >> 64) as u64,
            inout("rax") lo,
            inout("rdx") hi,
            options(nostack),
        );
    }
    u128::from(lo) | (u128::from(hi) << 64)
}

/// Has KVM deliver software interrupt `vector` as if the guest's
/// instruction had raised it: RIP is already past the instruction, which
/// is what the handler's frame must hold for `int3` and `int n`.
fn deliver(fd: &VcpuFd, vector: u32) -> Result<(), String> {
    let mut events = fd
        .get_vcpu_events()
        .map_err(|e| format!("KVM_GET_VCPU_EVENTS: {e}"))?;
    if vector < 32 {
        events.exception.injected = 1;
        events.exception.nr = vector as u8;
        events.exception.has_error_code = 0;
        events.exception.error_code = 0;
    } else {
        events.interrupt.injected = 1;
        events.interrupt.nr = vector as u8;
        events.interrupt.soft = 0;
    }
    fd.set_vcpu_events(&events)
        .map_err(|e| format!("KVM_SET_VCPU_EVENTS: {e}"))
}

/// What a software interrupt `int n` from privilege level `cpl` raises
/// instead of reaching its handler: #GP(n*8+2) when the IDT gate's DPL
/// is below `cpl`, #NP(n*8+2) when the gate is not present.
fn gate_check(
    fd: &VcpuFd,
    mem: &GuestMemory,
    sregs: &kvm_sregs,
    vector: u8,
    cpl: u8,
) -> Result<Option<(u32, u32)>, String> {
    let entry = sregs.idt.base.wrapping_add(u64::from(vector) * 16);
    let attributes = (read_linear(fd, mem, entry + 5, 1)? & 0xff) as u8;
    let error = u32::from(vector) * 8 + 2;
    if (attributes >> 5) & 3 < cpl {
        return Ok(Some((VECTOR_GP, error)));
    }
    if attributes & 0x80 == 0 {
        return Ok(Some((VECTOR_NP, error)));
    }
    Ok(None)
}

/// Has KVM deliver exception `vector` with `error` as its error code.
fn deliver_fault(fd: &VcpuFd, vector: u32, error: u32) -> Result<(), String> {
    let mut events = fd
        .get_vcpu_events()
        .map_err(|e| format!("KVM_GET_VCPU_EVENTS: {e}"))?;
    events.exception.injected = 1;
    events.exception.nr = vector as u8;
    events.exception.has_error_code = 1;
    events.exception.error_code = error;
    fd.set_vcpu_events(&events)
        .map_err(|e| format!("KVM_SET_VCPU_EVENTS: {e}"))
}

/// Reads the instruction at RIP when the exit did not carry it.
fn read_instruction(fd: &VcpuFd, mem: &GuestMemory, linear: u64) -> Result<Vec<u8>, String> {
    let mut bytes = Vec::with_capacity(15);
    for offset in 0..15u64 {
        match read_byte(fd, mem, linear.wrapping_add(offset))? {
            Some(b) => bytes.push(b),
            None => break,
        }
    }
    Ok(bytes)
}

/// Finishes the instruction an emulation-failure exit stopped at, given
/// the exit's data. Returns what it did (for the log), or why it could
/// not, in which case nothing was changed. In guest user mode, what
/// cannot be finished raises #UD, as KVM itself would have answered, so
/// a program's bad instruction never stops the guest.
pub fn finish(fd: &VcpuFd, mem: &GuestMemory, data: &[u64]) -> Result<String, String> {
    match finish_instruction(fd, mem, data) {
        Ok(done) => Ok(done),
        Err(why) => {
            let user_mode = fd.get_sregs().is_ok_and(|s| s.cs.selector & 3 == 3);
            if !user_mode {
                return Err(why);
            }
            deliver(fd, VECTOR_UD)?;
            FINISHED.user_ud.fetch_add(1, Ordering::Relaxed);
            Ok(format!("#UD in user mode ({why})"))
        }
    }
}

/// Moves RIP past a finished instruction.
fn retire(fd: &VcpuFd, regs: &mut kvm_regs, next: u64) -> Result<(), String> {
    regs.rip = next;
    fd.set_regs(regs).map_err(|e| format!("KVM_SET_REGS: {e}"))
}

fn finish_instruction(fd: &VcpuFd, mem: &GuestMemory, data: &[u64]) -> Result<String, String> {
    let mut regs = fd.get_regs().map_err(|e| format!("KVM_GET_REGS: {e}"))?;
    let sregs = fd.get_sregs().map_err(|e| format!("KVM_GET_SREGS: {e}"))?;
    let bits = bitness(&sregs);
    let bytes = match exit_bytes(data) {
        Some(b) => b,
        None => {
            let linear = if bits == 64 {
                regs.rip
            } else {
                sregs.cs.base.wrapping_add(regs.rip)
            };
            read_instruction(fd, mem, linear)?
        }
    };
    let mut decoder = Decoder::with_ip(bits, &bytes, regs.rip, DecoderOptions::NONE);
    let i = decoder.decode();
    if i.is_invalid() {
        return Err(format!("undecodable bytes {bytes:02x?}"));
    }
    let at = regs.rip;
    let next = i.next_ip();
    match i.mnemonic() {
        Mnemonic::Cmpxchg16b | Mnemonic::Cmpxchg8b if i.op0_kind() == OpKind::Memory => {
            compare_exchange(fd, mem, &i, &mut regs, &sregs)?;
            retire(fd, &mut regs, next)?;
            FINISHED.cmpxchg.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Popcnt | Mnemonic::Lzcnt | Mnemonic::Tzcnt
            if i.op0_kind() == OpKind::Register =>
        {
            bit_count(fd, mem, &i, &mut regs, &sregs)?;
            retire(fd, &mut regs, next)?;
            FINISHED.bit_count.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Wait => {
            // #MF is a fault: it leaves RIP on the instruction.
            if fwait(fd)? {
                deliver(fd, VECTOR_MF)?;
            } else {
                retire(fd, &mut regs, next)?;
            }
            FINISHED.fwait.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Fninit
        | Mnemonic::Fnclex
        | Mnemonic::Fldcw
        | Mnemonic::Fnstcw
        | Mnemonic::Fnstsw => {
            x87_control(fd, mem, &i, &mut regs, &sregs)?;
            retire(fd, &mut regs, next)?;
            FINISHED.x87.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Ldmxcsr
        | Mnemonic::Stmxcsr
        | Mnemonic::Fxsave
        | Mnemonic::Fxsave64
        | Mnemonic::Fxrstor
        | Mnemonic::Fxrstor64
            if i.op0_kind() == OpKind::Memory =>
        {
            if sse_state(fd, mem, &i, &regs, &sregs)? {
                retire(fd, &mut regs, next)?;
            } else {
                deliver_fault(fd, VECTOR_GP, 0)?;
            }
            FINISHED.x87.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Clac | Mnemonic::Stac => {
            if i.mnemonic() == Mnemonic::Stac {
                regs.rflags |= RFLAGS_AC;
            } else {
                regs.rflags &= !RFLAGS_AC;
            }
            retire(fd, &mut regs, next)?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Rdrand | Mnemonic::Rdseed if i.op0_kind() == OpKind::Register => {
            // The host's own generator; CF set: a value was delivered.
            let value = host_random(i.mnemonic() == Mnemonic::Rdseed)
                .ok_or_else(|| format!("the host gave no value for `{i}`"))?;
            set_reg(&mut regs, i.op0_register(), value)
                .ok_or_else(|| format!("cannot write the destination of `{i}`"))?;
            regs.rflags = (regs.rflags & !RFLAGS_STATUS) | RFLAGS_CF;
            retire(fd, &mut regs, next)?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        // Guest memory is ordinary coherent host memory: writing a cache
        // line back needs nothing more.
        Mnemonic::Clwb | Mnemonic::Clflushopt => {
            retire(fd, &mut regs, next)?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Invpcid => {
            // Writing the control registers back makes KVM drop the
            // vCPU's cached translations: more than any INVPCID type
            // asks, never less.
            retire(fd, &mut regs, next)?;
            fd.set_sregs(&sregs)
                .map_err(|e| format!("KVM_SET_SREGS: {e}"))?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Int3 | Mnemonic::Int => {
            let vector = if i.mnemonic() == Mnemonic::Int3 {
                VECTOR_BP as u8
            } else {
                i.immediate8()
            };
            // Privilege checks only matter from user mode; there the IDT
            // must be readable, else KVM's delivery decides.
            let cpl = (sregs.cs.selector & 3) as u8;
            let check = if cpl == 3 {
                gate_check(fd, mem, &sregs, vector, cpl).unwrap_or(None)
            } else {
                None
            };
            match check {
                // A fault: RIP stays on the instruction.
                Some((fault, error)) => deliver_fault(fd, fault, error)?,
                None => {
                    retire(fd, &mut regs, next)?;
                    deliver(fd, u32::from(vector))?;
                }
            }
            if i.mnemonic() == Mnemonic::Int3 {
                FINISHED.int3.fetch_add(1, Ordering::Relaxed);
            } else {
                FINISHED.int_n.fetch_add(1, Ordering::Relaxed);
            }
        }
        _ => return Err(format!("`{i}` (bytes {bytes:02x?}) is not finished here")),
    }
    Ok(format!("`{i}` at {at:#x}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_from_the_exit() {
        // flags, then length 6 and `lock cmpxchg16b [rbp+0x20]`.
        let data = [1, 0x7420_4dc7_0f48_f006, 0x894d_0824_448b_4c66, 0x1000];
        assert_eq!(
            exit_bytes(&data).unwrap(),
            [0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20]
        );
        assert_eq!(exit_bytes(&[0, 0, 0]), None);
    }

    #[test]
    fn operand_addresses() {
        let bytes = [0xf0, 0x48, 0x0f, 0xc7, 0x4d, 0x20];
        let i = Decoder::with_ip(64, &bytes, 0x1000, DecoderOptions::NONE).decode();
        assert_eq!(i.mnemonic(), Mnemonic::Cmpxchg16b);
        let regs = kvm_regs {
            rbp: 0xffff_8880_0000_1000,
            ..Default::default()
        };
        let mut sregs = kvm_sregs {
            efer: EFER_LMA,
            ..Default::default()
        };
        sregs.cs.l = 1;
        assert_eq!(
            linear_address(&i, &regs, &sregs).unwrap(),
            0xffff_8880_0000_1020
        );
        // gs-relative with an index: cmpxchg16b gs:[rax+rcx*8+8]
        let bytes = [0x65, 0x48, 0x0f, 0xc7, 0x4c, 0xc8, 0x08];
        let i = Decoder::with_ip(64, &bytes, 0, DecoderOptions::NONE).decode();
        let regs = kvm_regs {
            rax: 0x100,
            rcx: 2,
            ..Default::default()
        };
        sregs.gs.base = 0x7000_0000;
        assert_eq!(linear_address(&i, &regs, &sregs).unwrap(), 0x7000_0118);
    }

    #[test]
    fn host_compare_exchange() {
        #[repr(align(16))]
        struct Slot(u128);
        let mut slot = Slot(5);
        // SAFETY: a live, aligned u128.
        let seen = unsafe { cmpxchg16b(&raw mut slot.0, 5, 1 << 100) };
        assert_eq!((seen, slot.0), (5, 1 << 100));
        // SAFETY: as above.
        let seen = unsafe { cmpxchg16b(&raw mut slot.0, 5, 7) };
        assert_eq!((seen, slot.0), (1 << 100, 1 << 100));
    }

    #[test]
    fn bit_counts_and_flags() {
        assert_eq!(count_bits(Mnemonic::Popcnt, 0b1011, 64), Some((3, 0)));
        assert_eq!(count_bits(Mnemonic::Popcnt, 0, 32), Some((0, RFLAGS_ZF)));
        assert_eq!(count_bits(Mnemonic::Lzcnt, 1, 32), Some((31, 0)));
        assert_eq!(count_bits(Mnemonic::Lzcnt, 0, 16), Some((16, RFLAGS_CF)));
        assert_eq!(count_bits(Mnemonic::Tzcnt, 1, 64), Some((0, RFLAGS_ZF)));
        assert_eq!(count_bits(Mnemonic::Tzcnt, 8, 64), Some((3, 0)));
    }

    #[test]
    fn registers_written_as_the_cpu_does() {
        let mut regs = kvm_regs {
            rax: u64::MAX,
            rbx: u64::MAX,
            ..Default::default()
        };
        set_reg(&mut regs, Register::EAX, 5).unwrap();
        set_reg(&mut regs, Register::BX, 5).unwrap();
        assert_eq!((regs.rax, regs.rbx), (5, 0xffff_ffff_ffff_0005));
    }

    #[test]
    fn software_interrupts_decode() {
        let i = Decoder::with_ip(64, &[0xcc], 0, DecoderOptions::NONE).decode();
        assert_eq!((i.mnemonic(), i.next_ip()), (Mnemonic::Int3, 1));
        let i = Decoder::with_ip(64, &[0xcd, 0x80], 0, DecoderOptions::NONE).decode();
        assert_eq!((i.mnemonic(), i.immediate8()), (Mnemonic::Int, 0x80));
    }

    #[test]
    fn fxsave_round_trip_and_pieces() {
        let mut f = kvm_bindings::kvm_fpu {
            fcw: 0x37f,
            fsw: 0x4000,
            ftwx: 0x81,
            last_opcode: 0x7ff,
            last_ip: 0x1_2345_6789,
            last_dp: 0xabcd,
            mxcsr: 0x1f80,
            ..Default::default()
        };
        f.fpr[7][9] = 0x40;
        f.xmm[15][0] = 0x5a;
        let img = fxsave_image(&f, true);
        assert_eq!(&img[24..32], &[0x80, 0x1f, 0, 0, 0xff, 0xff, 0, 0]);
        let mut g = kvm_bindings::kvm_fpu::default();
        load_fxsave(&mut g, &img, true).unwrap();
        assert_eq!(
            (g.fcw, g.fsw, g.ftwx, g.last_ip),
            (f.fcw, f.fsw, f.ftwx, f.last_ip)
        );
        assert_eq!((g.fpr[7][9], g.xmm[15][0], g.mxcsr), (0x40, 0x5a, 0x1f80));
        // The 32-bit form keeps only the low half of the pointers.
        let mut h = kvm_bindings::kvm_fpu::default();
        load_fxsave(&mut h, &fxsave_image(&f, false), false).unwrap();
        assert_eq!(h.last_ip, 0x2345_6789);
        // Reserved MXCSR bits fault.
        let mut bad = img;
        bad[26] = 1;
        assert!(load_fxsave(&mut g, &bad, true).is_none());
        let pieces: Vec<_> = page_pieces(0xff0, 0x30).collect();
        assert_eq!(pieces, vec![(0, 0xff0, 0x10), (0x10, 0x1000, 0x20)]);
    }
}
