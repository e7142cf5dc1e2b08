//! What a batch of programs covers: operations, jump distances, immediate and offset classes.

use std::collections::BTreeMap;
use std::fmt;

use crate::bpf::insn::*;

/// ALU operations the generator emits with `K` and `X` in both widths (`neg` with `K` only).
const ALU_BINARY: [u8; 12] = [ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, MOD, XOR, MOV, ARSH];
/// Load and store sizes.
const SIZES: [u8; 4] = [B, H, W, DW];
/// Atomic operations (the immediate), each in W and DW.
const ATOMICS: [i32; 10] = [
    ATOMIC_ADD,
    ATOMIC_ADD | FETCH,
    ATOMIC_OR,
    ATOMIC_OR | FETCH,
    ATOMIC_AND,
    ATOMIC_AND | FETCH,
    ATOMIC_XOR,
    ATOMIC_XOR | FETCH,
    XCHG,
    CMPXCHG,
];
/// Byte swap widths.
const SWAPS: [i32; 3] = [16, 32, 64];
/// The helper every program calls.
const MAP_LOOKUP_ELEM: i32 = 1;

/// An operation: the opcode, and the field that tells variants of one opcode apart (the
/// offset of `sdiv`/`smod`/`movsx`, the width of a byte swap, the atomic operation, the kind of
/// `lddw`, the helper called).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct OpKey {
    pub code: u8,
    pub ext: i32,
}

impl OpKey {
    pub fn of(insn: Insn) -> OpKey {
        let op = insn.code & 0xf0;
        let ext = match insn.class() {
            ALU | ALU64 if matches!(op, DIV | MOD | MOV) => i32::from(insn.off),
            ALU | ALU64 if op == END => insn.imm,
            STX if insn.code & 0xe0 == ATOMIC => insn.imm,
            LD if insn.is_lddw() => i32::from(insn.src),
            JMP if op == CALL => insn.imm,
            _ => 0,
        };
        OpKey {
            code: insn.code,
            ext,
        }
    }

    /// Its name in the assembler's words: `alu32 sdiv K`, `jmp32 jsgt X`, `ldxsh`,
    /// `lock fetch add32`.
    pub fn name(self) -> String {
        let code = self.code;
        let op = code & 0xf0;
        let operand = if code & X != 0 { "X" } else { "K" };
        match code & 0x07 {
            class @ (ALU | ALU64) => {
                let width = if class == ALU { "alu32" } else { "alu64" };
                format!("{width} {}", alu_name(class, op, self.ext, operand))
            }
            class @ (JMP | JMP32) => {
                let width = if class == JMP { "jmp" } else { "jmp32" };
                let name = match op {
                    JA if class == JMP32 => "ja32".to_owned(),
                    JA => "ja".to_owned(),
                    CALL => format!("call {}", self.ext),
                    EXIT => "exit".to_owned(),
                    _ => format!("{} {operand}", lookup(&JMP_OPS, op)),
                };
                format!("{width} {name}")
            }
            LD => match u8::try_from(self.ext) {
                Ok(LDDW_IMM64) => "lddw imm64".to_owned(),
                Ok(LDDW_MAP_BY_FD) => "lddw map_by_fd".to_owned(),
                _ => format!("lddw kind {}", self.ext),
            },
            LDX if code & 0xe0 == MEMSX => format!("ldxs{}", size_suffix(code)),
            LDX => format!("ldx{}", size_suffix(code)),
            ST => format!("st{}", size_suffix(code)),
            _ if code & 0xe0 == ATOMIC => atomic_name(code, self.ext),
            _ => format!("stx{}", size_suffix(code)),
        }
    }
}

fn alu_name(class: u8, op: u8, ext: i32, operand: &str) -> String {
    match op {
        NEG => "neg".to_owned(),
        END if class == ALU64 => format!("bswap{ext}"),
        END if operand == "X" => format!("be{ext}"),
        END => format!("le{ext}"),
        DIV if ext == 1 => format!("sdiv {operand}"),
        MOD if ext == 1 => format!("smod {operand}"),
        MOV if ext != 0 => format!("movsx{ext} {operand}"),
        _ => format!("{} {operand}", lookup(&ALU_OPS, op)),
    }
}

fn atomic_name(code: u8, imm: i32) -> String {
    let bits = if code & 0x18 == W { "32" } else { "" };
    let (fetch, op) = if imm & FETCH != 0 && !matches!(imm, XCHG | CMPXCHG) {
        ("fetch ", imm & !FETCH)
    } else {
        ("", imm)
    };
    let name = ATOMIC_OPS
        .iter()
        .find(|(_, v)| *v == op)
        .map_or("?", |(n, _)| *n);
    format!("lock {fetch}{name}{bits}")
}

fn lookup(table: &[(&'static str, u8)], op: u8) -> &'static str {
    table
        .iter()
        .find(|(_, v)| *v == op)
        .map_or("?", |(n, _)| *n)
}

/// Every operation the generator emits (with `isa_v4`, those of ISA v4 too). RFC 9669's
/// others are left out: the legacy packet loads, `lddw` kinds other than the value and the map
/// by fd, calls other than to a helper, `callx`.
pub fn claimed(isa_v4: bool) -> Vec<OpKey> {
    let key = |code: u8, ext: i32| OpKey { code, ext };
    let mut out = Vec::new();
    for class in [ALU, ALU64] {
        for op in ALU_BINARY {
            out.extend([key(class | op | K, 0), key(class | op | X, 0)]);
        }
        out.push(key(class | NEG | K, 0));
    }
    for class in [JMP, JMP32] {
        for (_, op) in JMP_OPS {
            out.extend([key(class | op | K, 0), key(class | op | X, 0)]);
        }
    }
    for width in SWAPS {
        out.extend([key(ALU | END, width), key(ALU | END | TO_BE, width)]);
    }
    out.extend([
        key(JMP | JA, 0),
        key(JMP | CALL, MAP_LOOKUP_ELEM),
        key(JMP | EXIT, 0),
        key(LD | DW | IMM, i32::from(LDDW_IMM64)),
        key(LD | DW | IMM, i32::from(LDDW_MAP_BY_FD)),
    ]);
    for size in SIZES {
        out.extend([
            key(LDX | MEM | size, 0),
            key(ST | MEM | size, 0),
            key(STX | MEM | size, 0),
        ]);
    }
    for size in [W, DW] {
        out.extend(ATOMICS.map(|op| key(STX | ATOMIC | size, op)));
    }
    if isa_v4 {
        out.extend(claimed_v4());
    }
    out.sort();
    out.dedup();
    out
}

fn claimed_v4() -> Vec<OpKey> {
    let key = |code: u8, ext: i32| OpKey { code, ext };
    let mut out = Vec::new();
    for class in [ALU, ALU64] {
        for op in [DIV, MOD] {
            out.extend([key(class | op | K, 1), key(class | op | X, 1)]);
        }
    }
    out.extend([8, 16].map(|from| key(ALU | MOV | X, from)));
    out.extend([8, 16, 32].map(|from| key(ALU64 | MOV | X, from)));
    out.extend(SWAPS.map(|width| key(ALU64 | END, width)));
    out.extend([B, H, W].map(|size| key(LDX | MEMSX | size, 0)));
    out.push(key(JMP32 | JA, 0));
    out
}

/// How far a jump goes: the buckets of the short and long branch forms of JITs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum JumpBucket {
    /// A loop's back edge.
    Backward,
    /// `+0`: to the next instruction.
    Zero,
    /// 1 to 127: an 8-bit displacement.
    Short,
    /// 128 to 32767: the rest of a 16-bit offset.
    Long,
    /// Beyond 32767: `ja32` only.
    Far,
}

impl JumpBucket {
    pub const ALL: [JumpBucket; 5] = [
        JumpBucket::Backward,
        JumpBucket::Zero,
        JumpBucket::Short,
        JumpBucket::Long,
        JumpBucket::Far,
    ];

    pub fn of(delta: i64) -> JumpBucket {
        match delta {
            ..0 => JumpBucket::Backward,
            0 => JumpBucket::Zero,
            1..=127 => JumpBucket::Short,
            128..=32767 => JumpBucket::Long,
            _ => JumpBucket::Far,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            JumpBucket::Backward => "backward",
            JumpBucket::Zero => "0",
            JumpBucket::Short => "1..=127",
            JumpBucket::Long => "128..=32767",
            JumpBucket::Far => "> 32767",
        }
    }
}

/// The smallest encoding an immediate or offset fits: the classes JITs choose forms by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ImmClass {
    Zero,
    I8,
    /// 12-bit signed (RISC-V, LoongArch, ARM-style forms).
    I12,
    I16,
    /// Above i16, within u16.
    U16,
    I32,
    /// Above i32, within u32 (a zero-extending move).
    U32,
    /// Needs all 64 bits.
    I64,
}

impl ImmClass {
    pub const ALL: [ImmClass; 8] = [
        ImmClass::Zero,
        ImmClass::I8,
        ImmClass::I12,
        ImmClass::I16,
        ImmClass::U16,
        ImmClass::I32,
        ImmClass::U32,
        ImmClass::I64,
    ];

    pub fn of(v: i64) -> ImmClass {
        match v {
            0 => ImmClass::Zero,
            -128..=127 => ImmClass::I8,
            -2048..=2047 => ImmClass::I12,
            -32768..=32767 => ImmClass::I16,
            32768..=65535 => ImmClass::U16,
            _ if i32::try_from(v).is_ok() => ImmClass::I32,
            _ if u32::try_from(v).is_ok() => ImmClass::U32,
            _ => ImmClass::I64,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ImmClass::Zero => "0",
            ImmClass::I8 => "i8",
            ImmClass::I12 => "i12",
            ImmClass::I16 => "i16",
            ImmClass::U16 => "u16",
            ImmClass::I32 => "i32",
            ImmClass::U32 => "u32",
            ImmClass::I64 => "i64",
        }
    }
}

/// Counts over a batch of programs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Coverage {
    pub programs: u64,
    pub slots: u64,
    pub ops: BTreeMap<OpKey, u64>,
    pub jumps: BTreeMap<JumpBucket, u64>,
    /// Immediates used as values: ALU and jump `K` operands, stores of an immediate, `lddw`.
    pub imms: BTreeMap<ImmClass, u64>,
    /// Memory access offsets.
    pub offsets: BTreeMap<ImmClass, u64>,
}

impl Coverage {
    /// Counts one program.
    pub fn add(&mut self, insns: &[Insn]) {
        self.programs += 1;
        self.slots += insns.len() as u64;
        let mut at = 0;
        while at < insns.len() {
            let insn = insns[at];
            *self.ops.entry(OpKey::of(insn)).or_default() += 1;
            if let Some(target) = super::check::target(at, insn) {
                let bucket = JumpBucket::of(target - at as i64 - 1);
                *self.jumps.entry(bucket).or_default() += 1;
            }
            let high = insns.get(at + 1).map_or(0, |next| next.imm);
            if let Some(value) = immediate(insn, high) {
                *self.imms.entry(ImmClass::of(value)).or_default() += 1;
            }
            if matches!(insn.class(), LDX | ST | STX) {
                let class = ImmClass::of(i64::from(insn.off));
                *self.offsets.entry(class).or_default() += 1;
            }
            at += if insn.is_lddw() { 2 } else { 1 };
        }
    }

    pub fn merge(&mut self, other: &Coverage) {
        self.programs += other.programs;
        self.slots += other.slots;
        for (k, v) in &other.ops {
            *self.ops.entry(*k).or_default() += v;
        }
        for (k, v) in &other.jumps {
            *self.jumps.entry(*k).or_default() += v;
        }
        for (k, v) in &other.imms {
            *self.imms.entry(*k).or_default() += v;
        }
        for (k, v) in &other.offsets {
            *self.offsets.entry(*k).or_default() += v;
        }
    }

    /// The operations of `claimed` never seen.
    pub fn missing(&self, claimed: &[OpKey]) -> Vec<OpKey> {
        claimed
            .iter()
            .filter(|k| !self.ops.contains_key(k))
            .copied()
            .collect()
    }
}

/// The value of an immediate operand, `high` being the next slot's `imm` (for `lddw`).
fn immediate(insn: Insn, high: i32) -> Option<i64> {
    let op = insn.code & 0xf0;
    let k = insn.code & X == 0;
    match insn.class() {
        ALU | ALU64 if k && !matches!(op, NEG | END) => Some(i64::from(insn.imm)),
        JMP | JMP32 if k && !matches!(op, JA | CALL | EXIT) => Some(i64::from(insn.imm)),
        ST => Some(i64::from(insn.imm)),
        LD if insn.is_lddw() && insn.src == LDDW_IMM64 => {
            Some(i64::from(high) << 32 | i64::from(insn.imm as u32))
        }
        _ => None,
    }
}

impl fmt::Display for Coverage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} programs, {} slots", self.programs, self.slots)?;
        let mut keys = claimed(true);
        keys.extend(self.ops.keys().copied());
        keys.sort();
        keys.dedup();
        writeln!(f, "\n{:<28}{:>12}", "operation", "count")?;
        for key in keys {
            let count = self.ops.get(&key).copied().unwrap_or(0);
            writeln!(f, "{:<28}{count:>12}", key.name())?;
        }
        writeln!(f, "\n{:<28}{:>12}", "jump distance", "count")?;
        for bucket in JumpBucket::ALL {
            let count = self.jumps.get(&bucket).copied().unwrap_or(0);
            writeln!(f, "{:<28}{count:>12}", bucket.name())?;
        }
        for (title, counts) in [("immediate", &self.imms), ("memory offset", &self.offsets)] {
            writeln!(f, "\n{title:<28}{:>12}", "count")?;
            for class in ImmClass::ALL {
                let count = counts.get(&class).copied().unwrap_or(0);
                writeln!(f, "{:<28}{count:>12}", class.name())?;
            }
        }
        Ok(())
    }
}
