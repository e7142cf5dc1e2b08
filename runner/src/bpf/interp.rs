//! A reference interpreter of the BPF instruction set (RFC 9669) as Linux runs it: the host
//! side of the differential fuzzer (issue 18). For a program it gives the `r0` that a correct
//! kernel interpreter or JIT gives, or an error where Linux refuses the program or where the
//! result is not defined.
//!
//! What it models, and what it leaves to the kernel's verifier:
//! - Each instruction is checked as the verifier checks one instruction on its own: opcodes,
//!   reserved fields, registers, read-only `r10`, division by an immediate 0, shift ranges,
//!   jump targets. The verifier's analysis of all paths (pointer arithmetic, bounds, stack
//!   depth, unreachable code) is not modelled; along the path that runs, reading a register
//!   or a stack byte never written, or memory outside every region, is an error.
//! - Memory is a set of disjoint fake address ranges: the stack of each call frame (512
//!   bytes, `r10` at its end), the input memory (`r1`, its length in `r2`, as the conformance
//!   suite's wrapper passes them) and the values of array maps. Loads and stores use the
//!   given byte order, so that big-endian targets (MIPS) can be modelled.
//! - Helpers: `map_lookup_elem` on array maps, and `ktime_get_ns` as a fixed clock.

use super::insn::*;
use crate::arch::Endian;

/// Bytes of stack per call frame.
pub const STACK_SIZE: usize = 512;
/// The most frames a program may have at once (the kernel's `MAX_CALL_FRAMES`).
pub const MAX_FRAMES: usize = 8;
/// Instructions a run may execute before it is stopped as looping.
pub const DEFAULT_STEP_LIMIT: u64 = 1_000_000;

/// Frame `n`'s stack is `STACK_SIZE` bytes from `STACK_BASE + n * FRAME_SPACING`.
pub const STACK_BASE: u64 = 0x1000_0000_0000;
const FRAME_SPACING: u64 = 0x1_0000;
/// The input memory, whose address the program finds in `r1`.
pub const MEM_BASE: u64 = 0x2000_0000_0000;
/// Map `i`'s values lie one after the other from `MAP_VALUE_BASE + (i << 32)`.
pub const MAP_VALUE_BASE: u64 = 0x3000_0000_0000;
/// What `lddw rN, map_by_fd(i)` loads: `MAP_HANDLE_BASE + i`, an address of no region.
pub const MAP_HANDLE_BASE: u64 = 0x4000_0000_0000;
/// Each map's share of the map value range: a map may hold no more than 4 GiB.
const MAP_SPAN: u64 = 1 << 32;

/// What `ktime_get_ns` returns: a booted machine's clock is never 0, and a program whose
/// result depends on its value has no reference result anyway.
pub const KTIME_NS: u64 = 1_000_000_000;

const MAP_LOOKUP_ELEM: i32 = 1;
const KTIME_GET_NS: i32 = 5;

/// The registers a call passes its arguments in (r1-r5), and scratches.
const ARGS: u16 = 0b11_1110;

/// Why a run gives no `r0`. `Invalid` is what the kernel refuses to load; a read of a register
/// never written, an access outside every region, too deep calls and running past the end are
/// refused too, by the verifier's walk of that path.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InterpError {
    #[error("pc {pc}: invalid instruction: {why}")]
    Invalid { pc: usize, why: String },
    #[error("pc {pc}: {what} is not modelled")]
    Unsupported { pc: usize, what: String },
    #[error("pc {pc}: r{reg} is read before it is written")]
    UninitRegister { pc: usize, reg: u8 },
    /// The kernel lets a privileged program read such bytes, but what it reads is garbage.
    #[error("pc {pc}: {size}-byte read at {addr:#x} takes stack bytes never written")]
    UninitStack { pc: usize, addr: u64, size: usize },
    #[error("pc {pc}: {size}-byte access at {addr:#x} is outside every region")]
    OutOfBounds { pc: usize, addr: u64, size: usize },
    #[error("pc {pc}: r1 ({value:#x}) is not a map")]
    NotAMap { pc: usize, value: u64 },
    #[error("pc {pc}: the call would nest more than {MAX_FRAMES} frames")]
    CallDepth { pc: usize },
    #[error("pc {pc}: execution runs past the end of the program")]
    FellOff { pc: usize },
    #[error("pc {pc}: still running after {limit} instructions")]
    StepLimit { pc: usize, limit: u64 },
}

/// An array map: `max_entries` values of `value_size` bytes, keyed by a 4-byte index.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArrayMap {
    value_size: usize,
    max_entries: u32,
    data: Vec<u8>,
}

impl ArrayMap {
    /// A map of zeroed values, as the kernel creates one.
    pub fn new(value_size: usize, max_entries: u32) -> ArrayMap {
        ArrayMap {
            value_size,
            max_entries,
            data: vec![0; value_size * max_entries as usize],
        }
    }

    pub fn value_size(&self) -> usize {
        self.value_size
    }

    pub fn max_entries(&self) -> u32 {
        self.max_entries
    }

    pub fn value(&self, key: u32) -> Option<&[u8]> {
        let start = key as usize * self.value_size;
        (key < self.max_entries).then(|| &self.data[start..start + self.value_size])
    }

    pub fn value_mut(&mut self, key: u32) -> Option<&mut [u8]> {
        let start = key as usize * self.value_size;
        (key < self.max_entries).then(|| &mut self.data[start..start + self.value_size])
    }
}

/// The machine a program runs on: its byte order and its maps, which runs change.
#[derive(Clone, Debug)]
pub struct Machine {
    pub endian: Endian,
    /// Map `i` is what `lddw rN, map_by_fd(i)` (or `map_by_idx(i)`) names.
    pub maps: Vec<ArrayMap>,
    pub step_limit: u64,
}

impl Machine {
    pub fn new(endian: Endian) -> Machine {
        Machine {
            endian,
            maps: Vec::new(),
            step_limit: DEFAULT_STEP_LIMIT,
        }
    }

    /// Runs `prog` with `mem` as its input memory (`r1` its address, `r2` its length) and
    /// gives the `r0` of its final `exit`. The program is checked as a whole first.
    pub fn run(&mut self, prog: &[Insn], mem: &mut [u8]) -> Result<u64, InterpError> {
        check(prog, &self.maps)?;
        let mut vm = Vm {
            prog,
            endian: self.endian,
            maps: &mut self.maps,
            regs: [0; 11],
            written: 0,
            frames: vec![Frame::new(None)],
            pc: 0,
            mem,
        };
        vm.write(1, MEM_BASE);
        vm.write(2, vm.mem.len() as u64);
        vm.write(10, frame_top(0));
        vm.run(self.step_limit)
    }
}

// ---------------------------------------------------------------------------------------------
// Checks before the run: what the kernel refuses to load, instruction by instruction.

/// Checks every instruction, and that jumps and calls land on an instruction of `prog`.
fn check(prog: &[Insn], maps: &[ArrayMap]) -> Result<(), InterpError> {
    if let Some(i) = maps
        .iter()
        .position(|m| (m.value_size as u64) * u64::from(m.max_entries) > MAP_SPAN)
    {
        return Err(InterpError::Unsupported {
            pc: 0,
            what: format!("map {i}, larger than 4 GiB,"),
        });
    }
    // Whether each slot starts an instruction (the second half of a `lddw` does not).
    let mut starts = vec![true; prog.len()];
    // What is not modelled is reported only if the kernel would load the program.
    let mut unmodelled = None;
    let mut pc = 0;
    while pc < prog.len() {
        let insn = prog[pc];
        let checked = if insn.is_lddw() {
            let Some(&next) = prog.get(pc + 1) else {
                return Err(invalid(pc, "lddw without its second slot"));
            };
            starts[pc + 1] = false;
            check_lddw(pc, insn, next, maps)
        } else {
            check_insn(pc, insn)
        };
        match checked {
            Err(e @ InterpError::Unsupported { .. }) => {
                unmodelled.get_or_insert(e);
            }
            other => other?,
        }
        pc += if insn.is_lddw() { 2 } else { 1 };
    }
    for (pc, &insn) in prog.iter().enumerate() {
        let Some(to) = starts[pc].then(|| branch_target(pc, insn)).flatten() else {
            continue;
        };
        if !usize::try_from(to).is_ok_and(|to| starts.get(to) == Some(&true)) {
            return Err(invalid(
                pc,
                format!("jump to {to}, which starts no instruction of the program"),
            ));
        }
    }
    unmodelled.map_or(Ok(()), Err)
}

fn invalid(pc: usize, why: impl Into<String>) -> InterpError {
    InterpError::Invalid {
        pc,
        why: why.into(),
    }
}

fn unsupported(pc: usize, what: impl Into<String>) -> InterpError {
    InterpError::Unsupported {
        pc,
        what: what.into(),
    }
}

/// Where a jump or local call at `pc` goes (`pc + 1 + offset`), if `insn` is one.
fn branch_target(pc: usize, insn: Insn) -> Option<i64> {
    let class = insn.class();
    if class != JMP && class != JMP32 {
        return None;
    }
    let offset = match insn.code & 0xf0 {
        EXIT => return None,
        CALL if insn.src == PSEUDO_CALL => i64::from(insn.imm),
        CALL => return None,
        // `ja32` (the kernel's `gotol`) keeps its offset in the immediate.
        JA if class == JMP32 => i64::from(insn.imm),
        _ => i64::from(insn.off),
    };
    Some(pc as i64 + 1 + offset)
}

fn check_insn(pc: usize, insn: Insn) -> Result<(), InterpError> {
    if insn.dst > MAX_REG || insn.src > MAX_REG {
        return Err(invalid(
            pc,
            format!("register r{} is invalid", insn.dst.max(insn.src)),
        ));
    }
    let code = insn.code;
    let reserved = || Err(invalid(pc, format!("{insn}: reserved fields are set")));
    let unknown = || Err(invalid(pc, format!("unknown opcode {code:02x}")));
    let size = code & 0x18;
    let mode = code & 0xe0;
    match insn.class() {
        ALU | ALU64 => return check_alu(pc, insn),
        JMP | JMP32 => return check_jmp(pc, insn),
        LD if matches!(mode, ABS | IND) => {
            return Err(unsupported(pc, "a legacy packet load (ldabs, ldind)"))
        }
        // `lddw` (checked with its second slot) is the only other `LD`.
        LD => return unknown(),
        LDX if mode == MEMSX && size == DW => return unknown(),
        LDX if mode != MEM && mode != MEMSX => return unknown(),
        LDX if insn.imm != 0 => return reserved(),
        ST if mode != MEM => return unknown(),
        ST if insn.src != 0 => return reserved(),
        STX if mode == MEM && insn.imm != 0 => return reserved(),
        STX if mode == ATOMIC => {
            let known = matches!(
                insn.imm & !FETCH,
                ATOMIC_ADD | ATOMIC_OR | ATOMIC_AND | ATOMIC_XOR
            ) || matches!(insn.imm, XCHG | CMPXCHG);
            if !matches!(size, W | DW) {
                return unknown();
            }
            if !known {
                return Err(invalid(
                    pc,
                    format!("unknown atomic operation {:#x}", insn.imm),
                ));
            }
            // A fetching operation writes the old value into `src`.
            if insn.imm & FETCH != 0 && insn.imm != CMPXCHG && insn.src == 10 {
                return Err(invalid(pc, "frame pointer is read only"));
            }
        }
        STX if mode != MEM => return unknown(),
        _ => {}
    }
    if insn.class() == LDX && insn.dst == 10 {
        return Err(invalid(pc, "frame pointer is read only"));
    }
    Ok(())
}

fn check_alu(pc: usize, insn: Insn) -> Result<(), InterpError> {
    let wide = insn.class() == ALU64;
    let x = insn.code & X != 0;
    let op = insn.code & 0xf0;
    let Insn { src, off, imm, .. } = insn;
    let reserved = || Err(invalid(pc, format!("{insn}: reserved fields are set")));
    match op {
        NEG if x || src != 0 || off != 0 || imm != 0 => return reserved(),
        // `ALU64 | END | X` does not exist: an unconditional swap has no direction.
        END if wide && x => return Err(invalid(pc, format!("unknown opcode {:02x}", insn.code))),
        END if src != 0 || off != 0 || !matches!(imm, 16 | 32 | 64) => return reserved(),
        NEG | END => {}
        // `movsx` is a move from a register with the width to extend from in `off`.
        MOV if x && (imm != 0 || !matches!((off, wide), (0 | 8 | 16, _) | (32, true))) => {
            return reserved()
        }
        MOV if !x && (src != 0 || off != 0) => return reserved(),
        MOV => {}
        ADD | SUB | MUL | DIV | OR | AND | LSH | RSH | MOD | XOR | ARSH => {
            // `sdiv` and `smod` are `div` and `mod` with offset 1.
            let signed = matches!(op, DIV | MOD) && off == 1;
            if (off != 0 && !signed) || (x && imm != 0) || (!x && src != 0) {
                return reserved();
            }
            if !x && matches!(op, DIV | MOD) && imm == 0 {
                return Err(invalid(pc, "div by zero"));
            }
            let bits = if wide { 64 } else { 32 };
            if !x && matches!(op, LSH | RSH | ARSH) && !(0..bits).contains(&imm) {
                return Err(invalid(pc, format!("invalid shift {imm}")));
            }
        }
        _ => return Err(invalid(pc, format!("unknown opcode {:02x}", insn.code))),
    }
    if insn.dst == 10 {
        return Err(invalid(pc, "frame pointer is read only"));
    }
    Ok(())
}

fn check_jmp(pc: usize, insn: Insn) -> Result<(), InterpError> {
    let jmp32 = insn.class() == JMP32;
    let x = insn.code & X != 0;
    let Insn {
        dst, src, off, imm, ..
    } = insn;
    let reserved = || Err(invalid(pc, format!("{insn}: reserved fields are set")));
    let unknown = || Err(invalid(pc, format!("unknown opcode {:02x}", insn.code)));
    match insn.code & 0xf0 {
        JA if x || dst != 0 || src != 0 || (jmp32 && off != 0) || (!jmp32 && imm != 0) => {
            reserved()
        }
        JA => Ok(()),
        // Linux has no `callx` (`JMP | CALL | X`), and no calls in `JMP32`.
        CALL | EXIT if jmp32 || x => unknown(),
        CALL if off != 0 || dst != 0 => reserved(),
        CALL => match src {
            CALL_HELPER | PSEUDO_CALL => Ok(()),
            CALL_BTF_ID => Err(unsupported(pc, "a kfunc call")),
            _ => reserved(),
        },
        EXIT if dst != 0 || src != 0 || off != 0 || imm != 0 => reserved(),
        EXIT => Ok(()),
        JEQ | JGT | JGE | JSET | JNE | JSGT | JSGE | JLT | JLE | JSLT | JSLE => {
            if (x && imm != 0) || (!x && src != 0) {
                reserved()
            } else {
                Ok(())
            }
        }
        _ => unknown(),
    }
}

/// Checks a `lddw` and its second slot `next`; map references name a map of `maps`.
fn check_lddw(pc: usize, insn: Insn, next: Insn, maps: &[ArrayMap]) -> Result<(), InterpError> {
    let second_clean = next.code == 0 && next.dst == 0 && next.src == 0 && next.off == 0;
    if insn.off != 0 || !second_clean {
        return Err(invalid(pc, "lddw with reserved fields set"));
    }
    if insn.dst > MAX_REG {
        return Err(invalid(pc, format!("register r{} is invalid", insn.dst)));
    }
    if insn.dst == 10 {
        return Err(invalid(pc, "frame pointer is read only"));
    }
    let map = || {
        usize::try_from(insn.imm)
            .ok()
            .and_then(|i| maps.get(i))
            .ok_or_else(|| {
                invalid(
                    pc,
                    format!("lddw names map {}, which is not given", insn.imm),
                )
            })
    };
    match insn.src {
        LDDW_IMM64 => Ok(()),
        LDDW_MAP_BY_FD | LDDW_MAP_BY_IDX if next.imm != 0 => {
            Err(invalid(pc, "lddw of a map with a second immediate"))
        }
        LDDW_MAP_BY_FD | LDDW_MAP_BY_IDX => map().map(|_| ()),
        LDDW_MAP_VALUE_BY_FD | LDDW_MAP_VALUE_BY_IDX => {
            let map = map()?;
            // The kernel gives direct value addresses of one-entry array maps only.
            if map.max_entries != 1 {
                return Err(invalid(pc, "map_val of a map of more than one entry"));
            }
            if !usize::try_from(next.imm).is_ok_and(|off| off < map.value_size) {
                return Err(invalid(
                    pc,
                    format!("map_val offset {} outside the value", next.imm),
                ));
            }
            Ok(())
        }
        LDDW_VAR_ADDR | LDDW_CODE_ADDR => Err(unsupported(pc, "lddw of var_addr or code_addr")),
        kind => Err(invalid(pc, format!("unknown lddw kind {kind}"))),
    }
}

// ---------------------------------------------------------------------------------------------
// The run.

/// One call frame: its stack, and for a called function, what its caller resumes with.
struct Frame {
    stack: [u8; STACK_SIZE],
    /// Which stack bytes were written: reading another is reading garbage.
    written: [bool; STACK_SIZE],
    caller: Option<Caller>,
}

impl Frame {
    fn new(caller: Option<Caller>) -> Frame {
        Frame {
            stack: [0; STACK_SIZE],
            written: [false; STACK_SIZE],
            caller,
        }
    }
}

/// What a local call saves: where to return, the callee-saved r6-r9, which registers held
/// values.
struct Caller {
    pc: usize,
    saved: [u64; 4],
    written: u16,
}

/// `r10` of frame `n`: the end of its stack.
fn frame_top(n: usize) -> u64 {
    STACK_BASE + n as u64 * FRAME_SPACING + STACK_SIZE as u64
}

/// Where execution goes after an instruction.
enum Flow {
    Next,
    Jump(usize),
    Done(u64),
}

struct Vm<'m> {
    prog: &'m [Insn],
    endian: Endian,
    maps: &'m mut [ArrayMap],
    mem: &'m mut [u8],
    regs: [u64; 11],
    /// Bit `r` is set when register `r` holds a value.
    written: u16,
    /// The running function's frame last.
    frames: Vec<Frame>,
    pc: usize,
}

impl Vm<'_> {
    fn run(&mut self, limit: u64) -> Result<u64, InterpError> {
        for _ in 0..limit {
            let pc = self.pc;
            let insn = *self.prog.get(pc).ok_or(InterpError::FellOff { pc })?;
            let flow = match insn.class() {
                ALU | ALU64 => self.alu(insn).map(|()| Flow::Next)?,
                JMP | JMP32 => self.jmp(insn)?,
                LD => self.lddw(insn)?,
                LDX => self.ldx(insn).map(|()| Flow::Next)?,
                _ => self.store(insn).map(|()| Flow::Next)?,
            };
            self.pc = match flow {
                Flow::Next => pc + 1,
                Flow::Jump(to) => to,
                Flow::Done(r0) => return Ok(r0),
            };
        }
        Err(InterpError::StepLimit { pc: self.pc, limit })
    }

    fn read(&self, reg: u8) -> Result<u64, InterpError> {
        if self.written & (1 << reg) == 0 {
            return Err(InterpError::UninitRegister { pc: self.pc, reg });
        }
        Ok(self.regs[usize::from(reg)])
    }

    fn write(&mut self, reg: u8, value: u64) {
        self.regs[usize::from(reg)] = value;
        self.written |= 1 << reg;
    }

    /// The source operand: a register, or the immediate, sign-extended to 64 bits in the
    /// 64-bit classes and taken as 32 bits in the 32-bit ones.
    fn source(&self, insn: Insn, wide: bool) -> Result<u64, InterpError> {
        if insn.code & X != 0 {
            self.read(insn.src)
        } else if wide {
            Ok(insn.imm as i64 as u64)
        } else {
            Ok(u64::from(insn.imm as u32))
        }
    }

    fn alu(&mut self, insn: Insn) -> Result<(), InterpError> {
        let wide = insn.class() == ALU64;
        let op = insn.code & 0xf0;
        let result = if op == END {
            // `bswap` always swaps; `le` and `be` swap when the target's order differs.
            let to_be = insn.code & TO_BE != 0;
            let swap = wide || to_be == (self.endian == Endian::Little);
            byte_swap(self.read(insn.dst)?, insn.imm, swap)
        } else {
            let src = self.source(insn, wide)?;
            let signed = insn.off == 1;
            match op {
                MOV if wide => sign_extend(src, insn.off),
                MOV => u64::from(sign_extend(src, insn.off) as u32),
                _ if wide => alu64(op, signed, self.read(insn.dst)?, src),
                _ => u64::from(alu32(op, signed, self.read(insn.dst)? as u32, src as u32)),
            }
        };
        self.write(insn.dst, result);
        Ok(())
    }

    fn jmp(&mut self, insn: Insn) -> Result<Flow, InterpError> {
        let wide = insn.class() == JMP;
        // `check` made sure that a target is an instruction of the program.
        let to = branch_target(self.pc, insn).map_or(usize::MAX, |t| t as usize);
        match insn.code & 0xf0 {
            JA => Ok(Flow::Jump(to)),
            CALL if insn.src == PSEUDO_CALL => self.call_local(to),
            CALL => self.call_helper(insn.imm).map(|()| Flow::Next),
            EXIT => self.exit(),
            op => {
                let (a, b) = (self.read(insn.dst)?, self.source(insn, wide)?);
                let taken = if wide {
                    compare(op, a, b, a as i64, b as i64)
                } else {
                    let (a, b) = (a as u32, b as u32);
                    compare(op, a.into(), b.into(), (a as i32).into(), (b as i32).into())
                };
                Ok(if taken { Flow::Jump(to) } else { Flow::Next })
            }
        }
    }

    /// A bpf-to-bpf call: a new frame with its own stack. The callee sees the caller's r1-r5;
    /// r0 and r6-r9 hold nothing for it until it writes them.
    fn call_local(&mut self, to: usize) -> Result<Flow, InterpError> {
        if self.frames.len() == MAX_FRAMES {
            return Err(InterpError::CallDepth { pc: self.pc });
        }
        let mut saved = [0; 4];
        saved.copy_from_slice(&self.regs[6..10]);
        self.frames.push(Frame::new(Some(Caller {
            pc: self.pc + 1,
            saved,
            written: self.written,
        })));
        self.written &= ARGS;
        self.write(10, frame_top(self.frames.len() - 1));
        Ok(Flow::Jump(to))
    }

    /// The end of a called function (back to its caller, with r1-r5 scratched and r6-r9
    /// restored), or of the program.
    fn exit(&mut self) -> Result<Flow, InterpError> {
        let r0 = self.read(0)?;
        let Some(Frame {
            caller: Some(caller),
            ..
        }) = self.frames.pop()
        else {
            return Ok(Flow::Done(r0));
        };
        self.regs[6..10].copy_from_slice(&caller.saved);
        self.written = (caller.written & !ARGS) | 1;
        self.regs[10] = frame_top(self.frames.len().saturating_sub(1));
        Ok(Flow::Jump(caller.pc))
    }

    fn call_helper(&mut self, id: i32) -> Result<(), InterpError> {
        let r0 = match id {
            MAP_LOOKUP_ELEM => self.map_lookup_elem()?,
            KTIME_GET_NS => KTIME_NS,
            _ => {
                let name = HELPERS
                    .iter()
                    .find(|(_, n)| *n == id)
                    .map(|(name, _)| *name);
                let what = match name {
                    Some(name) => format!("helper {id} ({name})"),
                    None => format!("helper {id}"),
                };
                return Err(unsupported(self.pc, what));
            }
        };
        // Helpers scratch r1-r5, as the verifier assumes of any call.
        self.written &= !ARGS;
        self.write(0, r0);
        Ok(())
    }

    /// `map_lookup_elem(map, key)` on an array map: the value's address, or 0 for a key out of
    /// range.
    fn map_lookup_elem(&mut self) -> Result<u64, InterpError> {
        let handle = self.read(1)?;
        let key_addr = self.read(2)?;
        let map = handle
            .checked_sub(MAP_HANDLE_BASE)
            .and_then(|i| usize::try_from(i).ok())
            .filter(|&i| i < self.maps.len())
            .ok_or(InterpError::NotAMap {
                pc: self.pc,
                value: handle,
            })?;
        let key = self.load(key_addr, 4)? as u32;
        Ok(match self.maps.get(map) {
            Some(m) if key < m.max_entries => {
                map_value_addr(map, u64::from(key) * m.value_size as u64)
            }
            _ => 0,
        })
    }

    fn lddw(&mut self, insn: Insn) -> Result<Flow, InterpError> {
        let high = self.prog.get(self.pc + 1).map_or(0, |next| next.imm);
        let index = insn.imm as u32 as usize;
        let value = match insn.src {
            LDDW_IMM64 => u64::from(insn.imm as u32) | (u64::from(high as u32) << 32),
            LDDW_MAP_BY_FD | LDDW_MAP_BY_IDX => MAP_HANDLE_BASE + index as u64,
            // The value kinds (the others are refused by `check`): entry 0, at offset `high`.
            _ => map_value_addr(index, high as u32 as u64),
        };
        self.write(insn.dst, value);
        Ok(Flow::Jump(self.pc + 2))
    }

    fn ldx(&mut self, insn: Insn) -> Result<(), InterpError> {
        let size = access_size(insn.code);
        let addr = self.read(insn.src)?.wrapping_add(insn.off as i64 as u64);
        let value = self.load(addr, size)?;
        let value = if insn.code & 0xe0 == MEMSX {
            sign_extend(value, 8 * size as i16)
        } else {
            value
        };
        self.write(insn.dst, value);
        Ok(())
    }

    /// `ST`, `STX` and the atomic operations.
    fn store(&mut self, insn: Insn) -> Result<(), InterpError> {
        let size = access_size(insn.code);
        let addr = self.read(insn.dst)?.wrapping_add(insn.off as i64 as u64);
        if insn.class() == ST {
            return self.store_value(addr, size, insn.imm as i64 as u64);
        }
        let src = self.read(insn.src)?;
        if insn.code & 0xe0 == MEM {
            return self.store_value(addr, size, src);
        }
        // An atomic operation: the old value, read zero-extended, is what a fetch returns.
        let old = self.load(addr, size)?;
        match insn.imm {
            CMPXCHG => {
                let mask = if size == 4 {
                    u64::from(u32::MAX)
                } else {
                    u64::MAX
                };
                if self.read(0)? & mask == old {
                    self.store_value(addr, size, src)?;
                }
                self.write(0, old);
            }
            XCHG => {
                self.store_value(addr, size, src)?;
                self.write(insn.src, old);
            }
            imm => {
                let new = match imm & !FETCH {
                    ATOMIC_ADD => old.wrapping_add(src),
                    ATOMIC_OR => old | src,
                    ATOMIC_AND => old & src,
                    _ => old ^ src,
                };
                self.store_value(addr, size, new)?;
                if imm & FETCH != 0 {
                    self.write(insn.src, old);
                }
            }
        }
        Ok(())
    }

    fn load(&mut self, addr: u64, size: usize) -> Result<u64, InterpError> {
        let (pc, endian) = (self.pc, self.endian);
        let (bytes, written) = self.bytes(addr, size)?;
        if written.is_some_and(|w| w.contains(&false)) {
            return Err(InterpError::UninitStack { pc, addr, size });
        }
        Ok(decode(bytes, endian))
    }

    fn store_value(&mut self, addr: u64, size: usize, value: u64) -> Result<(), InterpError> {
        let endian = self.endian;
        let (bytes, written) = self.bytes(addr, size)?;
        encode(bytes, value, endian);
        if let Some(written) = written {
            written.fill(true);
        }
        Ok(())
    }

    /// The `size` bytes at `addr`, all in one region, and on a stack which of them were
    /// written.
    fn bytes(
        &mut self,
        addr: u64,
        size: usize,
    ) -> Result<(&mut [u8], Option<&mut [bool]>), InterpError> {
        let out = InterpError::OutOfBounds {
            pc: self.pc,
            addr,
            size,
        };
        // The offset of the access in a region of `len` bytes that starts `rel` before it.
        let within = |rel: u64, len: u64| {
            let end = rel.checked_add(size as u64)?;
            (end <= len).then_some(rel as usize..end as usize)
        };
        if addr < STACK_BASE {
            return Err(out);
        }
        if addr < MEM_BASE {
            let rel = addr - STACK_BASE;
            let n = usize::try_from(rel / FRAME_SPACING).unwrap_or(usize::MAX);
            let range = within(rel % FRAME_SPACING, STACK_SIZE as u64);
            return match (self.frames.get_mut(n), range) {
                (Some(frame), Some(r)) => {
                    Ok((&mut frame.stack[r.clone()], Some(&mut frame.written[r])))
                }
                _ => Err(out),
            };
        }
        if addr < MAP_VALUE_BASE {
            return match within(addr - MEM_BASE, self.mem.len() as u64) {
                Some(r) => Ok((&mut self.mem[r], None)),
                None => Err(out),
            };
        }
        // A map value: the access must lie within one value, as the verifier requires.
        let rel = addr - MAP_VALUE_BASE;
        let n = usize::try_from(rel / MAP_SPAN).unwrap_or(usize::MAX);
        let Some(map) = self.maps.get_mut(n) else {
            return Err(out);
        };
        let value_size = map.value_size as u64;
        let rel = rel % MAP_SPAN;
        let (entry, offset) = match rel.checked_div(value_size) {
            Some(entry) => (entry, rel % value_size),
            None => return Err(out),
        };
        match within(offset, value_size) {
            Some(r) if entry < u64::from(map.max_entries) => {
                let start = entry as usize * map.value_size;
                Ok((&mut map.data[start + r.start..start + r.end], None))
            }
            _ => Err(out),
        }
    }
}

/// The address of byte `offset` of map `index`'s values.
fn map_value_addr(index: usize, offset: u64) -> u64 {
    MAP_VALUE_BASE + index as u64 * MAP_SPAN + offset
}

/// Bytes a load or store of `code` moves.
fn access_size(code: u8) -> usize {
    match code & 0x18 {
        W => 4,
        H => 2,
        B => 1,
        _ => 8,
    }
}

fn decode(bytes: &[u8], endian: Endian) -> u64 {
    let push = |acc: u64, byte: &u8| (acc << 8) | u64::from(*byte);
    match endian {
        Endian::Big => bytes.iter().fold(0, push),
        Endian::Little => bytes.iter().rev().fold(0, push),
    }
}

fn encode(bytes: &mut [u8], value: u64, endian: Endian) {
    let last = bytes.len().saturating_sub(1);
    for (i, byte) in bytes.iter_mut().enumerate() {
        let shift = match endian {
            Endian::Little => 8 * i,
            Endian::Big => 8 * (last - i),
        };
        *byte = (value >> shift) as u8;
    }
}

/// `value`'s low `bits` bits, sign-extended to 64 bits (`bits` 0: `value` as it is).
fn sign_extend(value: u64, bits: i16) -> u64 {
    match bits {
        8 => value as i8 as i64 as u64,
        16 => value as i16 as i64 as u64,
        32 => value as i32 as i64 as u64,
        _ => value,
    }
}

/// The low `bits` bits of `value`, byte-swapped if `swap`, zero-extended.
fn byte_swap(value: u64, bits: i32, swap: bool) -> u64 {
    match (bits, swap) {
        (16, true) => u64::from((value as u16).swap_bytes()),
        (16, false) => u64::from(value as u16),
        (32, true) => u64::from((value as u32).swap_bytes()),
        (32, false) => u64::from(value as u32),
        (_, true) => value.swap_bytes(),
        (_, false) => value,
    }
}

/// A 64-bit ALU operation (not `mov` or `end`). Division by 0 gives 0 and modulo by 0 leaves
/// `dst`; signed overflow (`INT_MIN / -1`) wraps; shifts take the count modulo 64.
fn alu64(op: u8, signed: bool, dst: u64, src: u64) -> u64 {
    let (sdst, ssrc) = (dst as i64, src as i64);
    match op {
        ADD => dst.wrapping_add(src),
        SUB => dst.wrapping_sub(src),
        MUL => dst.wrapping_mul(src),
        DIV if src == 0 => 0,
        DIV if signed => sdst.wrapping_div(ssrc) as u64,
        DIV => dst / src,
        MOD if src == 0 => dst,
        MOD if signed => sdst.wrapping_rem(ssrc) as u64,
        MOD => dst % src,
        OR => dst | src,
        AND => dst & src,
        XOR => dst ^ src,
        LSH => dst << (src & 63),
        RSH => dst >> (src & 63),
        ARSH => (sdst >> (src & 63)) as u64,
        // NEG, the one operation left.
        _ => dst.wrapping_neg(),
    }
}

/// [`alu64`] in 32 bits: [`alu64`] on the low halves, extended as the operation reads them
/// (sign-extended for the signed ones, so that `INT_MIN / -1` and `arsh` come out right), the
/// result truncated; shifts take the count modulo 32.
fn alu32(op: u8, signed: bool, dst: u32, src: u32) -> u32 {
    let extend = |x: u32| {
        if signed || op == ARSH {
            x as i32 as i64 as u64
        } else {
            u64::from(x)
        }
    };
    let src = match op {
        LSH | RSH | ARSH => u64::from(src & 31),
        _ => extend(src),
    };
    alu64(op, signed, extend(dst), src) as u32
}

/// A conditional jump's condition on operands `a` and `b`, given unsigned and signed.
fn compare(op: u8, a: u64, b: u64, sa: i64, sb: i64) -> bool {
    match op {
        JEQ => a == b,
        JNE => a != b,
        JSET => a & b != 0,
        JGT => a > b,
        JGE => a >= b,
        JLT => a < b,
        JLE => a <= b,
        JSGT => sa > sb,
        JSGE => sa >= sb,
        JSLT => sa < sb,
        // JSLE, the one condition left.
        _ => sa <= sb,
    }
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use super::*;
    use crate::bpf::asm;
    use crate::cases::conformance::{self, Memory, EPILOGUE_ACTION};
    use crate::cases::{parse_hex, Expectation};

    const LE: Endian = Endian::Little;
    const BE: Endian = Endian::Big;

    fn assemble(text: &str) -> Vec<Insn> {
        asm::assemble(text).unwrap().encode().unwrap()
    }

    fn run_on(endian: Endian, text: &str, mem: &mut [u8]) -> Result<u64, InterpError> {
        Machine::new(endian).run(&assemble(text), mem)
    }

    fn run(text: &str) -> Result<u64, InterpError> {
        run_on(LE, text, &mut [])
    }

    // -----------------------------------------------------------------------------------------
    // The conformance files.

    /// A `.data` file read as its bare program: run with `r1` at its memory and `r2` its
    /// length, as the harness's wrapper runs it.
    struct DataFile {
        insns: Vec<Insn>,
        mem: Vec<u8>,
        /// `None`: the file expects the kernel to refuse the program (`-- error`).
        result: Option<u64>,
        little_endian_only: bool,
    }

    fn read_data(text: &str) -> Result<DataFile, String> {
        let mut sections: Vec<(&str, String)> = Vec::new();
        for line in text.lines() {
            if let Some(name) = line.strip_prefix("-- ") {
                sections.push((name.trim(), String::new()));
            } else if let Some((_, body)) = sections.last_mut() {
                body.push_str(line.split('#').next().unwrap_or(""));
                body.push('\n');
            }
        }
        let section = |name: &str| {
            sections
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, body)| body.as_str())
        };
        if section("map").is_some() {
            return Err("a `-- map` section: maps are not read here".into());
        }
        let insns = match (section("asm"), section("raw")) {
            (Some(text), _) => {
                let program = asm::assemble(text).map_err(|e| e.to_string())?;
                if !program.map_refs().is_empty() {
                    return Err("the program names maps: they are not read here".into());
                }
                program.encode()?
            }
            (None, Some(text)) => text
                .split_whitespace()
                .map(|word| {
                    asm::parse_number(word)
                        .map(|n| Insn::from_raw(n as u64))
                        .ok_or(format!("`{word}` is no instruction word"))
                })
                .collect::<Result<_, _>>()?,
            (None, None) => return Err("no program".into()),
        };
        let mem = section("mem")
            .map(parse_hex)
            .transpose()?
            .unwrap_or_default();
        let result = match (section("result"), section("error")) {
            (Some(text), _) => Some(
                asm::parse_number(text.trim()).ok_or(format!("bad result `{}`", text.trim()))?
                    as u64,
            ),
            (None, Some(_)) => None,
            (None, None) => return Err("no `-- result` or `-- error`".into()),
        };
        Ok(DataFile {
            insns,
            mem,
            result,
            little_endian_only: text.lines().any(|l| l.trim() == "# endian: little"),
        })
    }

    /// Whether running `file` on `endian` gives what it expects, or what it gives instead.
    fn verdict(file: &DataFile, endian: Endian) -> Result<(), String> {
        let mut mem = file.mem.clone();
        let got = Machine::new(endian).run(&file.insns, &mut mem);
        match (file.result, got) {
            (Some(want), Ok(got)) if want == got => Ok(()),
            (Some(want), Ok(got)) => Err(format!("r0 {got:#x}, expected {want:#x}")),
            (Some(_), Err(e)) => Err(e.to_string()),
            // What the kernel refuses to load.
            (None, Err(InterpError::Invalid { .. } | InterpError::UninitRegister { .. })) => Ok(()),
            (None, Err(e)) => Err(format!("expected a refusal, got: {e}")),
            (None, Ok(got)) => Err(format!("runs (r0 {got:#x}) where the kernel refuses it")),
        }
    }

    fn data_files(dir: &Path) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "data"))
            .collect();
        files.sort();
        files
    }

    fn suite_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/conformance")
    }

    fn name(path: &Path) -> String {
        path.file_stem().unwrap().to_string_lossy().into_owned()
    }

    /// Every file of `suites/conformance/`, little-endian, and big-endian unless it is written
    /// for little-endian machines (`# endian: little`), as the harness skips it there.
    #[test]
    fn every_conformance_file_gives_its_result() {
        let files = data_files(&suite_dir());
        assert!(!files.is_empty());
        let mut failures = Vec::new();
        let mut runs = 0;
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let file = read_data(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            for endian in [LE, BE] {
                if endian == BE && file.little_endian_only {
                    continue;
                }
                runs += 1;
                if let Err(e) = verdict(&file, endian) {
                    failures.push(format!("{} ({endian:?}): {e}", name(path)));
                }
            }
        }
        eprintln!("{} files, {runs} runs", files.len());
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    /// The files with memory as the harness wraps them for the corpus: the memory is the value
    /// of a one-entry array map the prologue looks up, and the epilogue stores `r0` in the
    /// value of another. This runs `map_lookup_elem`, `lddw` of maps and stores into values.
    #[test]
    fn wrapped_conformance_files_store_their_result_in_a_map() {
        let mut runs = 0;
        for path in data_files(&suite_dir()) {
            let text = std::fs::read_to_string(&path).unwrap();
            if !text.contains("-- mem") {
                continue;
            }
            let case = conformance::parse(&path, &text, &name(&path), Memory::MapValue).unwrap();
            for endian in [LE, BE] {
                if endian == BE && case.little_endian_only {
                    continue;
                }
                runs += 1;
                let mut machine = Machine::new(endian);
                for spec in &case.maps {
                    let mut map = ArrayMap::new(spec.value_size as usize, spec.max_entries);
                    for (key, value) in &spec.init {
                        let key = decode(key, endian) as u32;
                        map.value_mut(key).unwrap().copy_from_slice(value);
                    }
                    machine.maps.push(map);
                }
                let got = machine.run(&case.progs[0].insns, &mut []);
                let at = format!("{} ({endian:?})", path.display());
                match &case.expect {
                    Expectation::R0(want) => {
                        assert_eq!(got, Ok(u64::from(EPILOGUE_ACTION)), "{at}");
                        let stored = decode(machine.maps[0].value(0).unwrap(), endian);
                        assert_eq!(stored, *want, "{at}");
                    }
                    _ => assert!(got.is_err(), "{at}: {got:?}"),
                }
            }
        }
        assert!(runs > 0);
    }

    /// bpf_conformance's own corpus, when `BPF_CONFORMANCE_DIR` names its `tests/`: how many
    /// files give their result, and why the others do not. Some cannot on Linux (`callx`,
    /// shifts by an immediate beyond the width), so this reports and does not fail.
    #[test]
    fn bpf_conformance_corpus_when_given() {
        let Some(dir) = std::env::var_os("BPF_CONFORMANCE_DIR") else {
            eprintln!("BPF_CONFORMANCE_DIR is not set: the corpus is not run");
            return;
        };
        let files = data_files(Path::new(&dir));
        assert!(
            !files.is_empty(),
            "no .data files in {}",
            dir.to_string_lossy()
        );
        // Files whose program Linux refuses, and files that give something else.
        let (mut refused, mut others) = (Vec::new(), Vec::new());
        for path in &files {
            let text = std::fs::read_to_string(path).unwrap();
            let file = match read_data(&text) {
                Ok(file) => file,
                Err(e) => {
                    others.push(format!("{}: {e}", name(path)));
                    continue;
                }
            };
            let mut mem = file.mem.clone();
            match (
                verdict(&file, LE),
                Machine::new(LE).run(&file.insns, &mut mem),
            ) {
                (Ok(()), _) => {}
                (Err(_), Err(e @ InterpError::Invalid { .. })) => {
                    refused.push(format!("{}: {e}", name(path)))
                }
                (Err(e), _) => others.push(format!("{}: {e}", name(path))),
            }
        }
        eprintln!(
            "{} of {} corpus files give their result; {} hold a program Linux refuses:\n{}\n\
             {} give something else:\n{}",
            files.len() - refused.len() - others.len(),
            files.len(),
            refused.len(),
            refused.join("\n"),
            others.len(),
            others.join("\n"),
        );
    }

    // -----------------------------------------------------------------------------------------
    // The edges.

    #[test]
    fn local_helper_numbers_agree_with_the_insn_table() {
        assert!(HELPERS.contains(&("map_lookup_elem", MAP_LOOKUP_ELEM)));
        assert!(HELPERS.contains(&("ktime_get_ns", KTIME_GET_NS)));
    }

    #[test]
    fn division_and_modulo_by_zero_in_both_widths() {
        let with = |op: &str| {
            run(&format!(
                "lddw r0, 0x100000005\nmov r1, 0\n{op} r0, r1\nexit"
            ))
        };
        assert_eq!(with("div"), Ok(0));
        assert_eq!(with("div32"), Ok(0));
        assert_eq!(with("sdiv"), Ok(0));
        assert_eq!(with("sdiv32"), Ok(0));
        // Modulo leaves dst, the 32-bit one zero-extended.
        assert_eq!(with("mod"), Ok(0x1_0000_0005));
        assert_eq!(with("mod32"), Ok(5));
        assert_eq!(with("smod"), Ok(0x1_0000_0005));
        assert_eq!(with("smod32"), Ok(5));
        // By an immediate 0 the kernel refuses the program.
        for op in ["div", "mod32", "sdiv", "smod32"] {
            let got = run(&format!("mov r0, 1\n{op} r0, 0\nexit"));
            assert!(
                matches!(&got, Err(InterpError::Invalid { pc: 1, why }) if why == "div by zero"),
                "{op}: {got:?}"
            );
        }
    }

    #[test]
    fn signed_division_overflow_wraps_and_truncates_toward_zero() {
        let min64 = "lddw r0, 0x8000000000000000\n";
        assert_eq!(run(&format!("{min64}sdiv r0, -1\nexit")), Ok(1 << 63));
        assert_eq!(run(&format!("{min64}smod r0, -1\nexit")), Ok(0));
        assert_eq!(
            run(&format!("{min64}mov r1, -1\nsdiv r0, r1\nexit")),
            Ok(1 << 63)
        );
        // 32 bits, with the upper half of dst dirty: it plays no part and ends zero.
        let min32 = "lddw r0, 0xffffffff80000000\n";
        assert_eq!(run(&format!("{min32}sdiv32 r0, -1\nexit")), Ok(0x8000_0000));
        assert_eq!(run(&format!("{min32}smod32 r0, -1\nexit")), Ok(0));
        assert_eq!(run("mov r0, -7\nsdiv r0, 2\nexit"), Ok(-3i64 as u64));
        assert_eq!(run("mov r0, -7\nsmod r0, 2\nexit"), Ok(-1i64 as u64));
        assert_eq!(run("mov r0, 7\nsmod r0, -2\nexit"), Ok(1));
        assert_eq!(run("mov32 r0, -7\nsmod32 r0, 2\nexit"), Ok(0xffff_ffff));
        // Unsigned division by a negative immediate: 64 bits sign-extend it, 32 bits do not.
        assert_eq!(run(&format!("{min64}div r0, -1\nexit")), Ok(0));
        assert_eq!(run("mov32 r0, -1\ndiv32 r0, -1\nexit"), Ok(1));
        assert_eq!(run("mov r0, -1\ndiv r0, -2\nexit"), Ok(1));
    }

    #[test]
    fn shifts_take_the_count_modulo_the_width() {
        assert_eq!(run("mov r0, 1\nmov r1, 65\nlsh r0, r1\nexit"), Ok(2));
        assert_eq!(run("mov r0, 1\nmov r1, 33\nlsh32 r0, r1\nexit"), Ok(2));
        assert_eq!(run("mov r0, 4\nmov r1, -1\nrsh r0, r1\nexit"), Ok(0));
        assert_eq!(run("lddw r0, 0x100000000\nlsh32 r0, 1\nexit"), Ok(0));
        assert_eq!(run("mov32 r0, -8\narsh32 r0, 1\nexit"), Ok(0xffff_fffc));
        assert_eq!(run("mov r0, -8\narsh r0, 1\nexit"), Ok(-4i64 as u64));
        assert_eq!(run("mov r0, -8\nrsh r0, 60\nexit"), Ok(0xf));
        // The kernel refuses an immediate count beyond the width.
        for bad in ["lsh r0, 64", "rsh32 r0, 32", "arsh32 r0, -1"] {
            let got = run(&format!("mov r0, 1\n{bad}\nexit"));
            assert!(
                matches!(got, Err(InterpError::Invalid { pc: 1, .. })),
                "{bad}: {got:?}"
            );
        }
    }

    #[test]
    fn sign_extending_moves_and_loads() {
        assert_eq!(
            run("mov r1, 0x80\nmovsx864 r0, r1\nexit"),
            Ok(0xffff_ffff_ffff_ff80)
        );
        assert_eq!(run("mov r1, 0x80\nmovsx832 r0, r1\nexit"), Ok(0xffff_ff80));
        assert_eq!(run("mov r1, 0x7f\nmovsx864 r0, r1\nexit"), Ok(0x7f));
        assert_eq!(
            run("mov r1, 0x8000\nmovsx1664 r0, r1\nexit"),
            Ok(0xffff_ffff_ffff_8000)
        );
        assert_eq!(
            run("mov r1, 0x8000\nmovsx1632 r0, r1\nexit"),
            Ok(0xffff_8000)
        );
        assert_eq!(run("mov32 r1, -1\nmovsx3264 r0, r1\nexit"), Ok(u64::MAX));
        let mut mem = [0x80, 0x00, 0x00, 0x80];
        assert_eq!(
            run_on(LE, "ldxsw r0, [r1+0]\nexit", &mut mem),
            Ok(0xffff_ffff_8000_0080)
        );
        assert_eq!(run_on(BE, "ldxsh r0, [r1+2]\nexit", &mut mem), Ok(0x80));
        assert_eq!(
            run_on(LE, "ldxsb r0, [r1+3]\nexit", &mut mem),
            Ok(-128i64 as u64)
        );
        // No `movsx` from 32 bits in 32 bits.
        let bad = Insn::new(ALU | X | MOV, 0, 1, 32, 0);
        let got = Machine::new(LE).run(&[bad], &mut []);
        assert!(
            matches!(got, Err(InterpError::Invalid { pc: 0, .. })),
            "{got:?}"
        );
    }

    #[test]
    fn byte_swaps_on_both_endians() {
        let value = "lddw r0, 0x0102030405060708\n";
        for endian in [LE, BE] {
            let swap = |op: &str| run_on(endian, &format!("{value}{op} r0\nexit"), &mut []);
            assert_eq!(swap("bswap16"), Ok(0x0807));
            assert_eq!(swap("bswap32"), Ok(0x0807_0605));
            assert_eq!(swap("bswap64"), Ok(0x0807_0605_0403_0201));
            // `le` and `be` swap when the target's order differs, and truncate always.
            let (native16, native32, native64) = (0x0708, 0x0506_0708, 0x0102_0304_0506_0708);
            let (swapped16, swapped32, swapped64) = (0x0807, 0x0807_0605, 0x0807_0605_0403_0201);
            let (le, be) = match endian {
                Endian::Little => (
                    [native16, native32, native64],
                    [swapped16, swapped32, swapped64],
                ),
                Endian::Big => (
                    [swapped16, swapped32, swapped64],
                    [native16, native32, native64],
                ),
            };
            assert_eq!([swap("le16"), swap("le32"), swap("le64")], le.map(Ok));
            assert_eq!([swap("be16"), swap("be32"), swap("be64")], be.map(Ok));
        }
    }

    #[test]
    fn loads_and_stores_follow_the_byte_order() {
        let mut mem = [1, 2, 3, 4];
        assert_eq!(
            run_on(LE, "ldxw r0, [r1+0]\nexit", &mut mem),
            Ok(0x0403_0201)
        );
        assert_eq!(
            run_on(BE, "ldxw r0, [r1+0]\nexit", &mut mem),
            Ok(0x0102_0304)
        );
        assert_eq!(run_on(BE, "ldxh r0, [r1+1]\nexit", &mut mem), Ok(0x0203));
        let store = "mov r2, 0x0a0b\nstxh [r1+0], r2\nsth [r1+2], -1\nmov r0, 0\nexit";
        run_on(BE, store, &mut mem).unwrap();
        assert_eq!(mem, [0x0a, 0x0b, 0xff, 0xff]);
        run_on(LE, store, &mut mem).unwrap();
        assert_eq!(mem, [0x0b, 0x0a, 0xff, 0xff]);
        // `stdw` sign-extends its immediate; `r2` holds the memory's length.
        let mut mem = [0; 8];
        let stdw = "stdw [r1+0], -2\nldxdw r0, [r1+0]\nadd r0, r2\nexit";
        assert_eq!(run_on(BE, stdw, &mut mem), Ok(6));
    }

    #[test]
    fn jmp32_compares_the_low_halves_only() {
        let dirty = "lddw r1, 0xffffffff00000005\n";
        let taken = |jump: &str| {
            run(&format!(
                "{dirty}{jump}, +2\nmov r0, 0\nexit\nmov r0, 1\nexit"
            ))
        };
        assert_eq!(taken("jeq32 r1, 5"), Ok(1));
        assert_eq!(taken("jeq r1, 5"), Ok(0));
        assert_eq!(taken("jsgt32 r1, 4"), Ok(1));
        assert_eq!(taken("jslt r1, 0"), Ok(1));
        assert_eq!(taken("jslt32 r1, 0"), Ok(0));
        assert_eq!(taken("jgt32 r1, -1"), Ok(0));
        assert_eq!(taken("jgt r1, -1"), Ok(0));
        assert_eq!(taken("jlt r1, -1"), Ok(1));
        assert_eq!(taken("jset32 r1, 4"), Ok(1));
        assert_eq!(taken("jset32 r1, 2"), Ok(0));
        assert_eq!(taken("mov r2, 5\njeq32 r1, r2"), Ok(1));
        assert_eq!(taken("lddw r2, 0x80000000\njsle32 r2, r1"), Ok(1));
        // `ja32` (gotol) takes its offset from the immediate.
        assert_eq!(run("mov r0, 1\nja32 +1\nmov r0, 2\nexit"), Ok(1));
    }

    #[test]
    fn atomics_with_and_without_fetch() {
        let setup = "lddw r1, 0x0000000100000002\nstxdw [r10-8], r1\n";
        let finish = "ldxdw r0, [r10-8]\nlsh r2, 48\nor r0, r2\nexit";
        let op = |insn: &str| run(&format!("{setup}mov r2, 3\n{insn}\n{finish}"));
        // 32-bit: the low word changes, the fetched value is zero-extended.
        assert_eq!(
            op("lock fetch add32 [r10-8], r2"),
            Ok(0x0002_0001_0000_0005)
        );
        assert_eq!(op("lock add32 [r10-8], r2"), Ok(0x0003_0001_0000_0005));
        assert_eq!(op("lock fetch or [r10-8], r2"), Ok(0x0002_0001_0000_0003));
        assert_eq!(op("lock fetch and [r10-8], r2"), Ok(0x0002_0000_0000_0002));
        assert_eq!(
            op("lock fetch xor32 [r10-8], r2"),
            Ok(0x0002_0001_0000_0001)
        );
        assert_eq!(op("lock xchg32 [r10-8], r2"), Ok(0x0002_0001_0000_0003));
        assert_eq!(op("lock xchg [r10-8], r2"), Ok(0x0002_0000_0000_0003));
        // A 32-bit add carries nothing into the next word.
        let carry = "lddw r1, 0xffffffff\nstxdw [r10-8], r1\nmov r2, 1\n\
                     lock add32 [r10-8], r2\nldxdw r0, [r10-8]\nexit";
        assert_eq!(run(carry), Ok(0));
    }

    #[test]
    fn cmpxchg_compares_r0_and_returns_the_old_value_in_it() {
        let setup = "lddw r1, 0x0000000100000002\nstxdw [r10-8], r1\nmov r2, 7\n";
        // 32-bit: only the low half of r0 takes part.
        let hit = format!(
            "{setup}lddw r0, 0xffffffff00000002\nlock cmpxchg32 [r10-8], r2\n\
             ldxdw r3, [r10-8]\nlsh r0, 48\nor r0, r3\nexit"
        );
        assert_eq!(run(&hit), Ok(0x0002_0001_0000_0007));
        let miss = format!(
            "{setup}mov r0, 3\nlock cmpxchg [r10-8], r2\n\
             ldxdw r3, [r10-8]\nxor r0, r3\nexit"
        );
        assert_eq!(run(&miss), Ok(0));
        let hit64 = format!(
            "{setup}lddw r0, 0x100000002\nlock cmpxchg [r10-8], r2\n\
             ldxdw r3, [r10-8]\nadd r0, r3\nexit"
        );
        assert_eq!(run(&hit64), Ok(0x1_0000_0009));
        // cmpxchg reads r0.
        let got = run(&format!("{setup}lock cmpxchg [r10-8], r2\nmov r0, 0\nexit"));
        assert_eq!(got, Err(InterpError::UninitRegister { pc: 4, reg: 0 }));
    }

    #[test]
    fn an_access_outside_every_region_is_an_error_naming_pc_and_address() {
        let got = run("mov r0, 0\nldxw r0, [r10+0]\nexit");
        let err = got.unwrap_err();
        assert_eq!(
            err,
            InterpError::OutOfBounds {
                pc: 1,
                addr: frame_top(0),
                size: 4
            }
        );
        assert_eq!(
            err.to_string(),
            "pc 1: 4-byte access at 0x100000000200 is outside every region"
        );
        assert!(run("stdw [r10-516], 1\nmov r0, 0\nexit").is_err());
        let mut mem = [0; 4];
        assert!(run_on(LE, "ldxw r0, [r1+1]\nexit", &mut mem).is_err());
        assert_eq!(run_on(LE, "ldxw r0, [r1+0]\nexit", &mut mem), Ok(0));
        let got = run_on(LE, "mov r0, 0\nstb [r1-1], 0\nexit", &mut mem);
        assert!(
            matches!(got, Err(InterpError::OutOfBounds { pc: 1, addr, .. }) if addr == MEM_BASE - 1)
        );
        // Pointer values are just numbers: 0 is no pointer.
        assert!(run("mov r1, 0\nldxb r0, [r1+0]\nexit").is_err());
    }

    #[test]
    fn reading_what_was_never_written_is_an_error() {
        assert_eq!(
            run("mov r0, r5\nexit"),
            Err(InterpError::UninitRegister { pc: 0, reg: 5 })
        );
        assert_eq!(
            run("exit"),
            Err(InterpError::UninitRegister { pc: 0, reg: 0 })
        );
        // `add` reads its destination, `mov` does not.
        assert_eq!(
            run("add r3, 1\nmov r0, 0\nexit").unwrap_err().to_string(),
            "pc 0: r3 is read before it is written"
        );
        assert_eq!(
            run("stw [r10-4], 1\nldxdw r0, [r10-8]\nexit"),
            Err(InterpError::UninitStack {
                pc: 1,
                addr: frame_top(0) - 8,
                size: 8
            })
        );
        assert_eq!(
            run("stw [r10-8], 1\nstw [r10-4], 2\nldxdw r0, [r10-8]\nexit"),
            Ok(0x2_0000_0001)
        );
        // A helper scratches r1-r5.
        assert_eq!(
            run("mov r1, 1\ncall ktime_get_ns\nmov r0, r1\nexit"),
            Err(InterpError::UninitRegister { pc: 2, reg: 1 })
        );
    }

    #[test]
    fn local_calls_get_a_frame_and_keep_r6_to_r9() {
        let program = "
            mov r6, 6
            mov r9, 9
            stdw [r10-8], 100
            mov r1, r10
            add r1, -8
            call local f
            ldxdw r2, [r10-8]
            add r0, r2
            add r0, r6
            add r0, r9
            exit
        f:
            mov r6, 1000
            mov r9, 1000
            stdw [r10-8], 1000
            ldxdw r0, [r1+0]
            stdw [r1+0], 200
            exit";
        // The callee read the caller's 100 through r1 and left 200 there.
        assert_eq!(run(program), Ok(100 + 200 + 6 + 9));
        // The callee's r6 holds nothing; after the call, r1-r5 hold nothing.
        assert_eq!(
            run("mov r6, 1\ncall local f\nexit\nf:\nmov r0, r6\nexit"),
            Err(InterpError::UninitRegister { pc: 3, reg: 6 })
        );
        assert_eq!(
            run("mov r1, 1\ncall local f\nmov r0, r1\nexit\nf:\nmov r0, r1\nexit"),
            Err(InterpError::UninitRegister { pc: 2, reg: 1 })
        );
        // Each frame's stack starts unwritten.
        let got = run("stdw [r10-8], 1\ncall local f\nexit\nf:\nldxdw r0, [r10-8]\nexit");
        assert!(
            matches!(got, Err(InterpError::UninitStack { pc: 3, .. })),
            "{got:?}"
        );
        // Eight frames at most: `n` frames count to `n - 1` in r1.
        let deep = |n: usize| {
            let mut text = String::from("mov r1, 0\n");
            for i in 1..n {
                text.push_str(&format!("call local f{i}\nexit\nf{i}:\nadd r1, 1\n"));
            }
            text.push_str("mov r0, r1\nexit\n");
            run(&text)
        };
        assert_eq!(deep(8), Ok(7));
        assert!(matches!(deep(9), Err(InterpError::CallDepth { .. })));
    }

    #[test]
    fn array_maps_and_their_lookup() {
        let mut machine = Machine::new(LE);
        machine.maps.push(ArrayMap::new(8, 2));
        machine.maps.push(ArrayMap::new(4, 1));
        machine.maps[1]
            .value_mut(0)
            .unwrap()
            .copy_from_slice(&[1, 2, 3, 4]);
        let lookup = |key: i32| {
            format!(
                "stw [r10-4], {key}\nlddw r1, map_by_fd(0)\nmov r2, r10\nadd r2, -4\n\
                 call map_lookup_elem\n"
            )
        };
        let store = format!("{}stdw [r0+0], 42\nmov r0, 7\nexit", lookup(1));
        assert_eq!(machine.run(&assemble(&store), &mut []), Ok(7));
        assert_eq!(
            machine.maps[0].value(1),
            Some(&[42, 0, 0, 0, 0, 0, 0, 0][..])
        );
        assert_eq!(machine.maps[0].value(0), Some(&[0; 8][..]));
        // A key out of range gives 0.
        let missing = format!("{}exit", lookup(2));
        assert_eq!(machine.run(&assemble(&missing), &mut []), Ok(0));
        // An access past the value is outside every region, even into the next value.
        let past = format!("{}ldxw r0, [r0+6]\nexit", lookup(0));
        assert!(matches!(
            machine.run(&assemble(&past), &mut []),
            Err(InterpError::OutOfBounds { pc: 6, .. })
        ));
        // `map_val`: the one value of a one-entry map, plus an offset.
        let direct = "lddw r1, map_val(map_by_idx(1)) + 2\nldxh r0, [r1+0]\nexit";
        assert_eq!(machine.run(&assemble(direct), &mut []), Ok(0x0403));
        let bad = "lddw r1, map_val(map_by_idx(0)) + 0\nmov r0, 0\nexit";
        assert!(matches!(
            machine.run(&assemble(bad), &mut []),
            Err(InterpError::Invalid { pc: 0, .. })
        ));
        let absent = "lddw r1, map_by_fd(2)\nmov r0, 0\nexit";
        assert!(matches!(
            machine.run(&assemble(absent), &mut []),
            Err(InterpError::Invalid { pc: 0, .. })
        ));
        // r1 must be a map.
        let not_a_map =
            "stw [r10-4], 0\nmov r1, 5\nmov r2, r10\nadd r2, -4\ncall map_lookup_elem\nexit";
        assert_eq!(
            machine.run(&assemble(not_a_map), &mut []),
            Err(InterpError::NotAMap { pc: 4, value: 5 })
        );
    }

    #[test]
    fn helpers_other_than_the_modelled_ones_are_errors_naming_them() {
        let got = run("mov r0, 0\ncall map_update_elem\nexit").unwrap_err();
        assert_eq!(
            got.to_string(),
            "pc 1: helper 2 (map_update_elem) is not modelled"
        );
        let got = run("call 9999\nexit").unwrap_err();
        assert_eq!(got.to_string(), "pc 0: helper 9999 is not modelled");
        assert_eq!(run("call ktime_get_ns\nexit"), Ok(KTIME_NS));
    }

    #[test]
    fn a_loop_stops_at_the_step_limit() {
        assert_eq!(
            run("mov r0, 0\nadd r0, 1\nja -2\nexit"),
            Err(InterpError::StepLimit {
                pc: 2,
                limit: DEFAULT_STEP_LIMIT
            })
        );
        let mut machine = Machine::new(LE);
        machine.step_limit = 3;
        let straight = assemble("mov r0, 1\nadd r0, 1\nexit");
        assert_eq!(machine.run(&straight, &mut []), Ok(2));
        machine.step_limit = 2;
        assert!(matches!(
            machine.run(&straight, &mut []),
            Err(InterpError::StepLimit { pc: 2, limit: 2 })
        ));
    }

    #[test]
    fn what_the_kernel_refuses_to_load() {
        let refused = |insns: &[Insn]| match Machine::new(LE).run(insns, &mut []) {
            Err(InterpError::Invalid { pc, why }) => (pc, why),
            other => panic!("{insns:?}: {other:?}"),
        };
        let exit = Insn::new(JMP | EXIT, 0, 0, 0, 0);
        let mov0 = Insn::new(ALU64 | MOV, 0, 0, 0, 0);
        assert_eq!(
            refused(&[Insn::new(ALU64 | MOV, 11, 0, 0, 1), exit]).1,
            "register r11 is invalid"
        );
        assert_eq!(
            refused(&[mov0, Insn::new(JMP | CALL | X, 2, 0, 0, 0), exit]).1,
            "unknown opcode 8d"
        );
        assert_eq!(
            refused(&[Insn::new(ALU64 | MOV, 10, 0, 0, 1), exit]).1,
            "frame pointer is read only"
        );
        // A reserved field set: `exit` with an immediate, `neg` with a source register.
        assert_eq!(refused(&[mov0, Insn::new(JMP | EXIT, 0, 0, 0, 1)]).0, 1);
        assert_eq!(refused(&[Insn::new(ALU64 | NEG, 0, 1, 0, 0), exit]).0, 0);
        // A jump out of the program, or into the middle of a `lddw`.
        assert_eq!(refused(&[mov0, Insn::new(JMP | JA, 0, 0, 5, 0), exit]).0, 1);
        let into_lddw = [
            Insn::new(JMP | JA, 0, 0, 1, 0),
            Insn::new(LD | DW, 0, 0, 0, 1),
            Insn::new(0, 0, 0, 0, 0),
            exit,
        ];
        assert_eq!(refused(&into_lddw).0, 0);
        assert_eq!(
            refused(&[Insn::new(LD | DW, 0, 0, 0, 1)]).1,
            "lddw without its second slot"
        );
        // Atomics of bytes and halves do not exist.
        assert_eq!(
            refused(&[mov0, Insn::new(STX | ATOMIC | H, 10, 0, -8, 0), exit]).0,
            1
        );
        // Running off the end is refused as well, found when it happens.
        assert_eq!(
            Machine::new(LE).run(&[mov0], &mut []),
            Err(InterpError::FellOff { pc: 1 })
        );
        // Legacy packet loads and kfuncs are not modelled.
        let ldabs = Machine::new(LE).run(&[Insn::new(LD | ABS | B, 0, 0, 0, 0), exit], &mut []);
        assert!(matches!(ldabs, Err(InterpError::Unsupported { pc: 0, .. })));
    }
}
