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

/// ALU operations, by mnemonic.
pub const ALU_OPS: [(&str, u8); 13] = [
    ("add", 0x00),
    ("sub", 0x10),
    ("mul", 0x20),
    ("div", DIV),
    ("or", 0x40),
    ("and", 0x50),
    ("lsh", 0x60),
    ("rsh", 0x70),
    ("neg", NEG),
    ("mod", MOD),
    ("xor", 0xa0),
    ("mov", MOV),
    ("arsh", 0xc0),
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
    ("jeq", 0x10),
    ("jgt", 0x20),
    ("jge", 0x30),
    ("jset", 0x40),
    ("jne", 0x50),
    ("jsgt", 0x60),
    ("jsge", 0x70),
    ("jlt", 0xa0),
    ("jle", 0xb0),
    ("jslt", 0xc0),
    ("jsle", 0xd0),
];
/// `ja` in `JMP` (offset in `off`), `ja32` in `JMP32` (offset in `imm`, the kernel's `gotol`).
pub const JA: u8 = 0x00;
/// A call: with `K`, the kind is in `src` (`CALL_HELPER`, `PSEUDO_CALL`, `CALL_BTF_ID`);
/// with `X` (callx), the address is in the register `dst`.
pub const CALL: u8 = 0x80;
pub const EXIT: u8 = 0x90;

/// Atomic operations (the `imm` of an atomic store), by mnemonic; `add`, `or`, `and` and
/// `xor` also exist with `FETCH`.
pub const ATOMIC_OPS: [(&str, i32); 6] = [
    ("add", 0x00),
    ("or", 0x40),
    ("and", 0x50),
    ("xor", 0xa0),
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
}

/// Formats a program in the assembler's dialect, one instruction per line, with the slot
/// number of each instruction.
pub fn disassemble(insns: &[Insn]) -> String {
    let mut out = String::new();
    let mut i = 0;
    while i < insns.len() {
        let insn = insns[i];
        let text = if insn.is_lddw() {
            let high = insns.get(i + 1).map_or(0, |n| n.imm);
            let value = (u64::from(high as u32) << 32) | u64::from(insn.imm as u32);
            if insn.src == PSEUDO_MAP_FD {
                format!("lddw r{}, map_fd {}", insn.dst, insn.imm)
            } else {
                format!("lddw r{}, {value:#x}", insn.dst)
            }
        } else {
            insn.to_string()
        };
        out.push_str(&format!("{i:4}: {text}\n"));
        i += if insn.is_lddw() { 2 } else { 1 };
    }
    out
}

fn name_of<T: PartialEq + Copy>(table: &[(&'static str, T)], value: T) -> Option<&'static str> {
    table.iter().find(|(_, v)| *v == value).map(|(n, _)| *n)
}

fn size_suffix(code: u8) -> &'static str {
    match code & 0x18 {
        W => "w",
        H => "h",
        B => "b",
        _ => "dw",
    }
}

impl fmt::Display for Insn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (dst, src, off, imm) = (self.dst, self.src, self.off, self.imm);
        let class = self.class();
        let unknown = |f: &mut fmt::Formatter<'_>| {
            write!(f, ".insn {:#04x} r{dst} r{src} {off} {imm}", self.code)
        };
        match class {
            ALU | ALU64 => {
                let bits = if class == ALU { "32" } else { "" };
                let op = self.code & 0xf0;
                if op == END {
                    let order = if self.code & TO_BE != 0 { "be" } else { "le" };
                    return write!(f, "{order}{imm} r{dst}");
                }
                if op == NEG {
                    return write!(f, "neg{bits} r{dst}");
                }
                let Some(name) = name_of(&ALU_OPS, op) else {
                    return unknown(f);
                };
                if self.code & X != 0 {
                    write!(f, "{name}{bits} r{dst}, r{src}")
                } else {
                    write!(f, "{name}{bits} r{dst}, {imm}")
                }
            }
            JMP | JMP32 => {
                let bits = if class == JMP32 { "32" } else { "" };
                match self.code & 0xf0 {
                    JA => write!(f, "ja {off:+}"),
                    EXIT => write!(f, "exit"),
                    CALL if src == PSEUDO_CALL => write!(f, "call local {imm:+}"),
                    CALL => match name_of(&HELPERS, imm) {
                        Some(name) => write!(f, "call {name}"),
                        None => write!(f, "call {imm}"),
                    },
                    op => {
                        let Some(name) = name_of(&JMP_OPS, op) else {
                            return unknown(f);
                        };
                        if self.code & X != 0 {
                            write!(f, "{name}{bits} r{dst}, r{src}, {off:+}")
                        } else {
                            write!(f, "{name}{bits} r{dst}, {imm}, {off:+}")
                        }
                    }
                }
            }
            LDX if self.code & 0xe0 == MEM => {
                write!(f, "ldx{} r{dst}, [r{src}{off:+}]", size_suffix(self.code))
            }
            ST if self.code & 0xe0 == MEM => {
                write!(f, "st{} [r{dst}{off:+}], {imm}", size_suffix(self.code))
            }
            STX if self.code & 0xe0 == MEM => {
                write!(f, "stx{} [r{dst}{off:+}], r{src}", size_suffix(self.code))
            }
            STX if self.code & 0xe0 == ATOMIC => {
                let bits = if self.code & 0x18 == W { "32" } else { "" };
                let fetch = imm & FETCH != 0 && imm & 0xe0 != 0xe0;
                let Some(name) = name_of(&ATOMIC_OPS, if fetch { imm & !FETCH } else { imm })
                else {
                    return unknown(f);
                };
                let fetch = if fetch { "fetch " } else { "" };
                write!(f, "lock {fetch}{name}{bits} [r{dst}{off:+}], r{src}")
            }
            _ => unknown(f),
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
}
