//! BPF programs as the harness writes them: instructions and the assembler.

pub mod asm;
pub mod insn;
