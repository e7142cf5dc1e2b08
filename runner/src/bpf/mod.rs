//! BPF programs as the harness writes them: instructions and the assembler, and a reference
//! interpreter of the instruction set.

pub mod asm;
pub mod insn;
pub mod interp;
