//! eBPF instructions: encoding constants, the instruction, and its text form.

use std::fmt;

// Instruction classes.
pub const LD: u8 = 0x00;
pub const LDX: u8 = 0x01;
pub const ST: u8 = 0x02;
pub const STX: u8 = 0x03;
pub const ALU: u8 = 0x04;
pub const JMP: u8 = 0x05;
pub const JMP32: u8 = 0x06;
pub const ALU64: u8 = 0x07;

// Load and store sizes and modes.
pub const W: u8 = 0x00;
pub const H: u8 = 0x08;
pub const B: u8 = 0x10;
pub const DW: u8 = 0x18;
pub const IMM: u8 = 0x00;
/// The legacy packet loads (`LD` class only).
pub const ABS: u8 = 0x20;
pub const IND: u8 = 0x40;
pub const MEM: u8 = 0x60;
/// Sign-extending loads (ISA v4, `LDX` class only).
pub const MEMSX: u8 = 0x80;
pub const ATOMIC: u8 = 0xc0;

// Source operand.
pub const K: u8 = 0x00;
pub const X: u8 = 0x08;

/// The highest register an instruction may name.
pub const MAX_REG: u8 = 10;

// The operation codes by name.
pub const ADD: u8 = 0x00;
pub const SUB: u8 = 0x10;
pub const MUL: u8 = 0x20;
pub const OR: u8 = 0x40;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const RSH: u8 = 0x70;
pub const XOR: u8 = 0xa0;
pub const ARSH: u8 = 0xc0;
pub const JEQ: u8 = 0x10;
pub const JGT: u8 = 0x20;
pub const JGE: u8 = 0x30;
pub const JSET: u8 = 0x40;
pub const JNE: u8 = 0x50;
pub const JSGT: u8 = 0x60;
pub const JSGE: u8 = 0x70;
pub const JLT: u8 = 0xa0;
pub const JLE: u8 = 0xb0;
pub const JSLT: u8 = 0xc0;
pub const JSLE: u8 = 0xd0;

/// ALU operations, by mnemonic.
pub const ALU_OPS: [(&str, u8); 13] = [
    ("add", ADD),
    ("sub", SUB),
    ("mul", MUL),
    ("div", DIV),
    ("or", OR),
    ("and", AND),
    ("lsh", LSH),
    ("rsh", RSH),
    ("neg", NEG),
    ("mod", MOD),
    ("xor", XOR),
    ("mov", MOV),
    ("arsh", ARSH),
];
/// Unsigned division, or signed (`sdiv`) with offset 1.
pub const DIV: u8 = 0x30;
pub const NEG: u8 = 0x80;
/// Unsigned modulo, or signed (`smod`) with offset 1.
pub const MOD: u8 = 0x90;
/// A move, or a sign-extending move (`movsx`) from the width in the offset (8, 16, 32).
pub const MOV: u8 = 0xb0;
/// Byte swaps: in `ALU`, to little (`K`) or big (`X`) endian; in `ALU64` with `K`, always.
pub const END: u8 = 0xd0;
/// `END` source bit: convert to big endian (else little endian).
pub const TO_BE: u8 = 0x08;

/// Conditional jumps, by mnemonic; `ja` is 0x00.
pub const JMP_OPS: [(&str, u8); 11] = [
    ("jeq", JEQ),
    ("jgt", JGT),
    ("jge", JGE),
    ("jset", JSET),
    ("jne", JNE),
    ("jsgt", JSGT),
    ("jsge", JSGE),
    ("jlt", JLT),
    ("jle", JLE),
    ("jslt", JSLT),
    ("jsle", JSLE),
];
/// `ja` in `JMP` (offset in `off`), `ja32` in `JMP32` (offset in `imm`, the kernel's `gotol`).
pub const JA: u8 = 0x00;
/// A call: with `K`, the kind is in `src` (`CALL_HELPER`, `PSEUDO_CALL`, `CALL_BTF_ID`);
/// with `X` (callx), the address is in the register `dst`.
pub const CALL: u8 = 0x80;
pub const EXIT: u8 = 0x90;

// The atomic operations by name (the `imm` of an atomic store, without `FETCH`).
pub const ATOMIC_ADD: i32 = 0x00;
pub const ATOMIC_OR: i32 = 0x40;
pub const ATOMIC_AND: i32 = 0x50;
pub const ATOMIC_XOR: i32 = 0xa0;

/// Atomic operations (the `imm` of an atomic store), by mnemonic; `add`, `or`, `and` and
/// `xor` also exist with `FETCH`.
pub const ATOMIC_OPS: [(&str, i32); 6] = [
    ("add", ATOMIC_ADD),
    ("or", ATOMIC_OR),
    ("and", ATOMIC_AND),
    ("xor", ATOMIC_XOR),
    ("xchg", XCHG),
    ("cmpxchg", CMPXCHG),
];
pub const FETCH: i32 = 0x01;
pub const XCHG: i32 = 0xe1;
pub const CMPXCHG: i32 = 0xf1;

/// `src` of an `lddw` whose immediate is a map fd.
pub const PSEUDO_MAP_FD: u8 = 1;
/// `src` of a `call` to a BPF function in the same program.
pub const PSEUDO_CALL: u8 = 1;

// The kinds of `lddw`, in `src` (RFC 9669, 5.4).
/// `imm64`: the two immediates are the value.
pub const LDDW_IMM64: u8 = 0;
/// `map_by_fd(imm)`: the map whose fd is `imm` (`PSEUDO_MAP_FD`).
pub const LDDW_MAP_BY_FD: u8 = PSEUDO_MAP_FD;
/// `map_val(map_by_fd(imm)) + next_imm`: an address in the map's value.
pub const LDDW_MAP_VALUE_BY_FD: u8 = 2;
/// `var_addr(imm)`: the address of the platform variable `imm`.
pub const LDDW_VAR_ADDR: u8 = 3;
/// `code_addr(imm)`: the address of the instruction `imm` slots after the next one.
pub const LDDW_CODE_ADDR: u8 = 4;
/// `map_by_idx(imm)`: the map at index `imm` of the program's maps.
pub const LDDW_MAP_BY_IDX: u8 = 5;
/// `map_val(map_by_idx(imm)) + next_imm`.
pub const LDDW_MAP_VALUE_BY_IDX: u8 = 6;

// The kinds of `call` with `K`, in `src`.
/// A helper function by its number.
pub const CALL_HELPER: u8 = 0;
/// A helper function by its BTF id (a kfunc; the uBPF dialect's `call runtime`).
pub const CALL_BTF_ID: u8 = 2;

/// Kernel helpers callable by name, with their numbers (`enum bpf_func_id`).
pub const HELPERS: [(&str, i32); 10] = [
    ("map_lookup_elem", 1),
    ("map_update_elem", 2),
    ("map_delete_elem", 3),
    ("ktime_get_ns", 5),
    ("get_prandom_u32", 7),
    ("tail_call", 12),
    ("redirect", 23),
    ("xdp_adjust_head", 44),
    ("redirect_map", 51),
    ("sk_redirect_map", 52),
];

/// One 8-byte instruction slot (`struct bpf_insn`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// An instruction of these fields, in their order in the slot.
    pub const fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            dst,
            src,
            off,
            imm,
        }
    }

    pub fn class(self) -> u8 {
        self.code & 0x07
    }

    /// Whether this slot starts a two-slot `lddw`.
    pub fn is_lddw(self) -> bool {
        self.code == LD | DW | IMM
    }

    /// Decodes an instruction written as one 64-bit number, as bpf_conformance's `-- raw`
    /// sections do: the little-endian layout of `struct bpf_insn` read as a `u64`.
    pub fn from_raw(word: u64) -> Insn {
        let regs = (word >> 8) as u8;
        Insn {
            code: word as u8,
            dst: regs & 0x0f,
            src: regs >> 4,
            off: (word >> 16) as u16 as i16,
            imm: (word >> 32) as u32 as i32,
        }
    }

    /// The raw form every instruction has, for those without a mnemonic (a reserved field
    /// set, an opcode the ISA does not define): `.insn CODE rDST rSRC OFF IMM`.
    pub fn raw_text(self) -> String {
        format!(
            ".insn {:#04x} r{} r{} {} {}",
            self.code, self.dst, self.src, self.off, self.imm
        )
    }

    /// The mnemonic form, or `None` when the instruction has none: an opcode outside the
    /// ISA, a register above r10, or a field set that the opcode does not use. `lddw` is
    /// written by [`disassemble`], which sees both of its slots.
    fn text(self) -> Option<String> {
        if self.dst > MAX_REG || self.src > MAX_REG {
            return None;
        }
        match self.class() {
            ALU | ALU64 => self.alu_text(),
            JMP | JMP32 => self.jmp_text(),
            // The legacy packet loads; `lddw` (mode IMM) is written by `disassemble`.
            LD => self.packet_load_text(),
            LDX | ST | STX => self.load_store_text(),
            _ => None,
        }
    }

    /// The operand after `rDST, ` of an ALU or compare: a register, or the immediate.
    fn source(self) -> Option<String> {
        match (self.code & X != 0, self.src, self.imm) {
            (true, src, 0) => Some(format!("r{src}")),
            (false, 0, imm) => Some(imm.to_string()),
            _ => None,
        }
    }

    /// The memory operand `[rREG+OFF]`.
    fn mem(self, reg: u8) -> String {
        format!("[r{reg}{:+}]", self.off)
    }

    /// [`Insn::text`] of an ALU or ALU64 instruction.
    fn alu_text(self) -> Option<String> {
        let Insn {
            code,
            dst,
            src,
            off,
            imm,
        } = self;
        let class = self.class();
        let x = code & X != 0;
        let op = code & 0xf0;
        let bits = if class == ALU { "32" } else { "" };
        match op {
            NEG if !x && src == 0 && off == 0 && imm == 0 => Some(format!("neg{bits} r{dst}")),
            NEG => None,
            END if src != 0 || off != 0 || !matches!(imm, 16 | 32 | 64) => None,
            END if class == ALU => {
                let order = if x { "be" } else { "le" };
                Some(format!("{order}{imm} r{dst}"))
            }
            END if !x => Some(format!("bswap{imm} r{dst}")),
            END => None,
            MOV if off != 0 => {
                let widths: &[i16] = if class == ALU { &[8, 16] } else { &[8, 16, 32] };
                let to = if class == ALU { "32" } else { "64" };
                (x && imm == 0 && widths.contains(&off))
                    .then(|| format!("movsx{off}{to} r{dst}, r{src}"))
            }
            DIV | MOD if off == 1 => {
                let name = if op == DIV { "sdiv" } else { "smod" };
                Some(format!("{name}{bits} r{dst}, {}", self.source()?))
            }
            _ if off != 0 => None,
            _ => {
                let name = name_of(&ALU_OPS, op)?;
                Some(format!("{name}{bits} r{dst}, {}", self.source()?))
            }
        }
    }

    /// [`Insn::text`] of a JMP or JMP32 instruction.
    fn jmp_text(self) -> Option<String> {
        let Insn {
            code,
            dst,
            src,
            off,
            imm,
        } = self;
        let class = self.class();
        let x = code & X != 0;
        let op = code & 0xf0;
        let bits = if class == JMP32 { "32" } else { "" };
        match op {
            JA if x || dst != 0 || src != 0 => None,
            JA if class == JMP => (imm == 0).then(|| format!("ja {off:+}")),
            JA => (off == 0).then(|| format!("ja32 {imm:+}")),
            CALL if class == JMP32 || off != 0 => None,
            CALL if x => (src == 0 && imm == 0).then(|| format!("call r{dst}")),
            CALL if dst != 0 => None,
            CALL => match src {
                CALL_HELPER => Some(match name_of(&HELPERS, imm) {
                    Some(name) => format!("call {name}"),
                    None => format!("call {imm}"),
                }),
                PSEUDO_CALL => Some(format!("call local {imm:+}")),
                CALL_BTF_ID => Some(format!("call runtime {imm}")),
                _ => None,
            },
            EXIT => (class == JMP && !x && dst == 0 && src == 0 && off == 0 && imm == 0)
                .then(|| "exit".to_owned()),
            _ => {
                let name = name_of(&JMP_OPS, op)?;
                Some(format!("{name}{bits} r{dst}, {}, {off:+}", self.source()?))
            }
        }
    }

    /// [`Insn::text`] of an LD instruction other than `lddw`: a legacy packet load.
    fn packet_load_text(self) -> Option<String> {
        let Insn {
            code,
            dst,
            src,
            off,
            imm,
        } = self;
        let size = size_suffix(code);
        match code & 0xe0 {
            ABS if dst == 0 && src == 0 && off == 0 => Some(format!("ldabs{size} {imm}")),
            IND if dst == 0 && off == 0 => Some(format!("ldind{size} r{src}, {imm}")),
            _ => None,
        }
    }

    /// [`Insn::text`] of an LDX, ST or STX instruction, atomics included.
    fn load_store_text(self) -> Option<String> {
        let Insn {
            code,
            dst,
            src,
            imm,
            ..
        } = self;
        match self.class() {
            LDX if imm == 0 => match code & 0xe0 {
                MEM => Some(format!(
                    "ldx{} r{dst}, {}",
                    size_suffix(code),
                    self.mem(src)
                )),
                MEMSX => Some(format!(
                    "ldxs{} r{dst}, {}",
                    size_suffix(code),
                    self.mem(src)
                )),
                _ => None,
            },
            ST if code & 0xe0 == MEM && src == 0 => {
                Some(format!("st{} {}, {imm}", size_suffix(code), self.mem(dst)))
            }
            STX if code & 0xe0 == MEM && imm == 0 => Some(format!(
                "stx{} {}, r{src}",
                size_suffix(code),
                self.mem(dst)
            )),
            STX if code & 0xe0 == ATOMIC => {
                let bits = match code & 0x18 {
                    W => "32",
                    DW => "",
                    _ => return None,
                };
                // xchg and cmpxchg always fetch, and are named without `fetch`.
                let (fetch, op) = if imm & FETCH != 0 && !matches!(imm, XCHG | CMPXCHG) {
                    ("fetch ", imm & !FETCH)
                } else {
                    ("", imm)
                };
                let name = name_of(&ATOMIC_OPS, op)?;
                Some(format!(
                    "lock {fetch}{name}{bits} {}, r{src}",
                    self.mem(dst)
                ))
            }
            _ => None,
        }
    }
}

/// Formats a program in the assembler's dialect, one instruction per line, with the slot
/// number of each instruction.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    for (slot, text) in listing(insns) {
        out.push_str(&format!("{slot:4}: {text}\n"));
    }
    out
}

/// Formats a program as assembler text, one instruction per line: [`crate::bpf::asm::assemble`]
/// reads it back into the same instructions.
pub fn to_asm(insns: &[Insn]) -> String {
    let mut out = String::new();
    for (_, text) in listing(insns) {
        out.push_str(&text);
        out.push('\n');
    }
    out
}

/// Each instruction's first slot and text. A `lddw` takes two slots; one whose two halves
/// have no text form (a reserved field set, a missing second half) is written as two `.insn`.
fn listing(insns: &[Insn]) -> Vec<(usize, String)> {
    let mut out = Vec::with_capacity(insns.len());
    let mut i = 0;
    while i < insns.len() {
        let insn = insns[i];
        if insn.is_lddw() {
            if let Some(text) = insns.get(i + 1).and_then(|&next| lddw_text(insn, next)) {
                out.push((i, text));
                i += 2;
                continue;
            }
            out.push((i, insn.raw_text()));
            i += 1;
            continue;
        }
        out.push((i, insn.to_string()));
        i += 1;
    }
    out
}

/// The text of a `lddw` whose halves are `first` and `next`, by the kind in `src` (RFC 9669,
/// 5.4), or `None` when a field the kind leaves unused is set.
fn lddw_text(first: Insn, next: Insn) -> Option<String> {
    let second_clean = next.code == 0 && next.dst == 0 && next.src == 0 && next.off == 0;
    if !second_clean || first.off != 0 || first.dst > MAX_REG {
        return None;
    }
    let dst = first.dst;
    let (imm, high) = (first.imm, next.imm);
    let value = (u64::from(high as u32) << 32) | u64::from(imm as u32);
    let text = match first.src {
        LDDW_IMM64 => format!("lddw r{dst}, {value:#x}"),
        LDDW_MAP_VALUE_BY_FD => format!("lddw r{dst}, map_val(map_by_fd({imm})) + {high}"),
        LDDW_MAP_VALUE_BY_IDX => format!("lddw r{dst}, map_val(map_by_idx({imm})) + {high}"),
        _ if high != 0 => return None,
        LDDW_MAP_BY_FD => format!("lddw r{dst}, map_by_fd({imm})"),
        LDDW_VAR_ADDR => format!("lddw r{dst}, var_addr({imm})"),
        LDDW_CODE_ADDR => format!("lddw r{dst}, code_addr({imm:+})"),
        LDDW_MAP_BY_IDX => format!("lddw r{dst}, map_by_idx({imm})"),
        _ => return None,
    };
    Some(text)
}

fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> Option<&'static str> {
    table.iter().find(|(_, v)| *v == value).map(|(n, _)| *n)
}

/// The suffix of a load or store's size (`ldxw`, `stdw`).
pub fn size_suffix(code: u8) -> &'static str {
    match code & 0x18 {
        W => "w",
        H => "h",
        B => "b",
        _ => "dw",
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.text() {
            Some(text) => f.write_str(&text),
            None => f.write_str(&self.raw_text()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_words_decode() {
        let insn = Insn::from_raw(0x0102_0304_fffe_210f);
        assert_eq!(
            insn,
            Insn {
                code: 0x0f,
                dst: 1,
                src: 2,
                off: -2,
                imm: 0x0102_0304
            }
        );
    }

    #[test]
    fn text_forms() {
        let cases = [
            (
                Insn {
                    code: ALU | K | 0xb0,
                    dst: 0,
                    imm: -1,
                    ..Insn::default()
                },
                "mov32 r0, -1",
            ),
            (
                Insn {
                    code: ALU64 | X | 0x60,
                    dst: 3,
                    src: 9,
                    ..Insn::default()
                },
                "lsh r3, r9",
            ),
            (
                Insn {
                    code: ALU | END | TO_BE,
                    dst: 2,
                    imm: 16,
                    ..Insn::default()
                },
                "be16 r2",
            ),
            (
                Insn {
                    code: JMP32 | K | 0xc0,
                    dst: 1,
                    off: -3,
                    imm: 5,
                    ..Insn::default()
                },
                "jslt32 r1, 5, -3",
            ),
            (
                Insn {
                    code: LDX | MEM | H,
                    dst: 0,
                    src: 1,
                    off: 2,
                    ..Insn::default()
                },
                "ldxh r0, [r1+2]",
            ),
            (
                Insn {
                    code: STX | ATOMIC | DW,
                    dst: 10,
                    src: 1,
                    off: -8,
                    imm: 0x01,
                },
                "lock fetch add [r10-8], r1",
            ),
            (
                Insn {
                    code: STX | ATOMIC | W,
                    dst: 10,
                    src: 1,
                    off: -8,
                    imm: 0xf1,
                },
                "lock cmpxchg32 [r10-8], r1",
            ),
            (
                Insn {
                    code: JMP | CALL,
                    imm: 51,
                    ..Insn::default()
                },
                "call redirect_map",
            ),
            (
                Insn {
                    code: JMP | EXIT,
                    ..Insn::default()
                },
                "exit",
            ),
        ];
        for (insn, text) in cases {
            assert_eq!(insn.to_string(), text);
        }
    }

    fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn::new(code, dst, src, off, imm)
    }

    #[test]
    fn text_forms_of_isa_v4_and_the_rest_of_rfc9669() {
        let cases = [
            (insn(ALU64 | K | DIV, 1, 0, 1, -3), "sdiv r1, -3"),
            (insn(ALU | X | MOD, 1, 2, 1, 0), "smod32 r1, r2"),
            (insn(ALU | X | MOV, 2, 1, 8, 0), "movsx832 r2, r1"),
            (insn(ALU | X | MOV, 2, 1, 16, 0), "movsx1632 r2, r1"),
            (insn(ALU64 | X | MOV, 2, 1, 8, 0), "movsx864 r2, r1"),
            (insn(ALU64 | X | MOV, 2, 1, 16, 0), "movsx1664 r2, r1"),
            (insn(ALU64 | X | MOV, 2, 1, 32, 0), "movsx3264 r2, r1"),
            (insn(LDX | MEMSX | B, 0, 1, 3, 0), "ldxsb r0, [r1+3]"),
            (insn(LDX | MEMSX | H, 0, 1, -2, 0), "ldxsh r0, [r1-2]"),
            (insn(LDX | MEMSX | W, 0, 1, 0, 0), "ldxsw r0, [r1+0]"),
            (insn(ALU64 | END, 3, 0, 0, 16), "bswap16 r3"),
            (insn(ALU | END, 3, 0, 0, 64), "le64 r3"),
            (insn(JMP32 | JA, 0, 0, 0, 40000), "ja32 +40000"),
            (insn(JMP | JA, 0, 0, -1, 0), "ja -1"),
            (insn(JMP | CALL | X, 2, 0, 0, 0), "call r2"),
            (insn(JMP | CALL, 0, PSEUDO_CALL, 0, -4), "call local -4"),
            (
                insn(JMP | CALL, 0, CALL_BTF_ID, 0, 1234),
                "call runtime 1234",
            ),
            (insn(JMP | CALL, 0, 0, 0, 4000), "call 4000"),
            (insn(LD | ABS | H, 0, 0, 0, 12), "ldabsh 12"),
            (insn(LD | IND | W, 0, 6, 0, -4), "ldindw r6, -4"),
            (
                insn(STX | ATOMIC | W, 1, 2, 4, 0x41),
                "lock fetch or32 [r1+4], r2",
            ),
            (
                insn(STX | ATOMIC | DW, 1, 2, 0, 0xa0),
                "lock xor [r1+0], r2",
            ),
            (
                insn(STX | ATOMIC | DW, 1, 2, 0, 0xe1),
                "lock xchg [r1+0], r2",
            ),
            // No mnemonic: the raw form.
            (insn(ALU64 | X | END, 3, 0, 0, 16), ".insn 0xdf r3 r0 0 16"),
            (insn(ALU | K | MOV, 0, 0, 8, 1), ".insn 0xb4 r0 r0 8 1"),
            (insn(ALU64, 11, 0, 0, 1), ".insn 0x07 r11 r0 0 1"),
            (insn(JMP | EXIT, 0, 0, 0, 1), ".insn 0x95 r0 r0 0 1"),
            (
                insn(STX | ATOMIC | DW, 1, 2, 0, 0xe0),
                ".insn 0xdb r1 r2 0 224",
            ),
            (insn(STX | ATOMIC | H, 1, 2, 0, 0), ".insn 0xcb r1 r2 0 0"),
        ];
        for (insn, text) in cases {
            assert_eq!(insn.to_string(), text, "{insn:?}");
        }
    }

    #[test]
    fn every_kind_of_lddw() {
        let pair =
            |src: u8, imm: i32, high: i32| [insn(LD | DW, 1, src, 0, imm), insn(0, 0, 0, 0, high)];
        let cases = [
            (pair(LDDW_IMM64, -1, 0x1234), "lddw r1, 0x1234ffffffff"),
            (pair(LDDW_MAP_BY_FD, 3, 0), "lddw r1, map_by_fd(3)"),
            (
                pair(LDDW_MAP_VALUE_BY_FD, 3, 8),
                "lddw r1, map_val(map_by_fd(3)) + 8",
            ),
            (pair(LDDW_VAR_ADDR, 7, 0), "lddw r1, var_addr(7)"),
            (pair(LDDW_CODE_ADDR, 2, 0), "lddw r1, code_addr(+2)"),
            (pair(LDDW_MAP_BY_IDX, 0, 0), "lddw r1, map_by_idx(0)"),
            (
                pair(LDDW_MAP_VALUE_BY_IDX, 1, -4),
                "lddw r1, map_val(map_by_idx(1)) + -4",
            ),
            // A kind that uses no second immediate, with one: both slots raw.
            (
                pair(LDDW_MAP_BY_FD, 3, 1),
                ".insn 0x18 r1 r1 0 3\n.insn 0x00 r0 r0 0 1",
            ),
            (pair(7, 0, 0), ".insn 0x18 r1 r7 0 0\n.insn 0x00 r0 r0 0 0"),
        ];
        for (insns, text) in cases {
            assert_eq!(to_asm(&insns), format!("{text}\n"));
        }
        // A `lddw` cut short by the end of the program.
        assert_eq!(
            to_asm(&[insn(LD | DW, 1, 0, 0, 5)]),
            ".insn 0x18 r1 r0 0 5\n"
        );
        assert_eq!(
            disassemble(&[
                pair(0, 5, 0)[0],
                pair(0, 5, 0)[1],
                insn(JMP | EXIT, 0, 0, 0, 0)
            ]),
            "   0: lddw r1, 0x5\n   2: exit\n"
        );
    }
}
