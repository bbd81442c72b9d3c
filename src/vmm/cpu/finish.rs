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
            regs.rip = next;
            fd.set_regs(&regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            FINISHED.cmpxchg.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Popcnt | Mnemonic::Lzcnt | Mnemonic::Tzcnt
            if i.op0_kind() == OpKind::Register =>
        {
            bit_count(fd, mem, &i, &mut regs, &sregs)?;
            regs.rip = next;
            fd.set_regs(&regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            FINISHED.bit_count.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Wait => {
            // #MF is a fault: it leaves RIP on the instruction.
            if fwait(fd)? {
                deliver(fd, VECTOR_MF)?;
            } else {
                regs.rip = next;
                fd.set_regs(&regs)
                    .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            }
            FINISHED.fwait.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Clac | Mnemonic::Stac => {
            if i.mnemonic() == Mnemonic::Stac {
                regs.rflags |= RFLAGS_AC;
            } else {
                regs.rflags &= !RFLAGS_AC;
            }
            regs.rip = next;
            fd.set_regs(&regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Rdrand | Mnemonic::Rdseed if i.op0_kind() == OpKind::Register => {
            // The host's own generator; CF set: a value was delivered.
            let value = host_random(i.mnemonic() == Mnemonic::Rdseed)
                .ok_or_else(|| format!("the host gave no value for `{i}`"))?;
            set_reg(&mut regs, i.op0_register(), value)
                .ok_or_else(|| format!("cannot write the destination of `{i}`"))?;
            regs.rflags = (regs.rflags & !RFLAGS_STATUS) | RFLAGS_CF;
            regs.rip = next;
            fd.set_regs(&regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        // Guest memory is ordinary coherent host memory: writing a cache
        // line back needs nothing more.
        Mnemonic::Clwb | Mnemonic::Clflushopt => {
            regs.rip = next;
            fd.set_regs(&regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
            FINISHED.other.fetch_add(1, Ordering::Relaxed);
        }
        Mnemonic::Invpcid => {
            // Writing the control registers back makes KVM drop the
            // vCPU's cached translations: more than any INVPCID type
            // asks, never less.
            regs.rip = next;
            fd.set_regs(&regs)
                .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
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
                    regs.rip = next;
                    fd.set_regs(&regs)
                        .map_err(|e| format!("KVM_SET_REGS: {e}"))?;
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
}
