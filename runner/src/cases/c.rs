//! Programs written in C: compiled for the BPF target of the guest's byte order by a
//! [`CCompiler`] the caller gives (`cargo xtask` runs clang), then read out of the ELF object
//! with `object`.
//!
//! A C program refers to the case's maps by name, as undefined symbols (`extern char counts[];`
//! and `&counts`): each relocation against such a symbol becomes a map reference. Helpers are
//! called through numbered function pointers, and everything else must be inlined: the
//! harness loads one section as one program.

use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionKind};

use super::{CaseError, MapSpec};
use crate::bpf::insn::{Insn, PSEUDO_MAP_FD};

/// The host's C compiler for BPF. The library runs no compiler itself: its caller gives one.
pub trait CCompiler {
    /// Compiles `source` into the BPF ELF object file `object`, for a guest of the given byte
    /// order (clang's `bpfeb` or `bpfel`). The error is the case's message: why it failed.
    fn compile(&self, source: &Path, big_endian: bool, object: &Path) -> Result<(), String>;
}

/// Compiles `source` with `compiler` to a BPF ELF object for a guest of the given byte order.
pub fn compile(
    compiler: &dyn CCompiler,
    source: &Path,
    big_endian: bool,
) -> Result<Vec<u8>, CaseError> {
    let object = tempfile::Builder::new()
        .suffix(".o")
        .tempfile()
        .map_err(|e| {
            CaseError::invalid(
                source.display().to_string(),
                format!("cannot create a temporary file: {e}"),
            )
        })?;
    compiler
        .compile(source, big_endian, object.path())
        .map_err(|message| CaseError::invalid(source.display().to_string(), message))?;
    std::fs::read(object.path()).map_err(|source_error| CaseError::Read {
        path: object.path().to_owned(),
        source: source_error,
    })
}

/// The instructions of `section` (or of the first section of code) of a BPF ELF object, with
/// map relocations resolved to slots of `maps`.
pub fn program(
    origin: &Path,
    elf: &[u8],
    section: Option<&str>,
    maps: &[MapSpec],
) -> Result<Vec<Insn>, CaseError> {
    let at = || origin.display().to_string();
    let invalid = |message: String| CaseError::invalid(at(), message);
    let file = object::File::parse(elf).map_err(|e| invalid(format!("not an ELF object: {e}")))?;
    let code = file
        .sections()
        .find(|s| match section {
            Some(name) => s.name() == Ok(name),
            None => s.kind() == SectionKind::Text && s.size() > 0,
        })
        .ok_or_else(|| invalid(format!("no section {}", section.unwrap_or("of code"))))?;
    let data = code
        .data()
        .map_err(|e| invalid(format!("cannot read the program: {e}")))?;
    if data.len() % 8 != 0 {
        return Err(invalid(format!(
            "the program is {} bytes, not whole instructions",
            data.len()
        )));
    }
    let little = file.is_little_endian();
    let mut insns: Vec<Insn> = data.chunks_exact(8).map(|b| decode(b, little)).collect();
    for (offset, relocation) in code.relocations() {
        let RelocationTarget::Symbol(index) = relocation.target() else {
            return Err(invalid(format!("unsupported relocation at byte {offset}")));
        };
        let name = file
            .symbol_by_index(index)
            .and_then(|s| s.name().map(str::to_owned))
            .map_err(|e| invalid(format!("relocation at byte {offset}: {e}")))?;
        let slot = maps.iter().position(|m| m.name == name).ok_or_else(|| {
            invalid(format!(
                "the program refers to `{name}`, which is no map of the case (calls must be inlined)"
            ))
        })?;
        let insn = insns
            .get_mut(offset as usize / 8)
            .filter(|i| i.is_lddw())
            .ok_or_else(|| invalid(format!("relocation at byte {offset} is not on an lddw")))?;
        insn.src = PSEUDO_MAP_FD;
        insn.imm = slot as i32;
    }
    Ok(insns)
}

fn decode(b: &[u8], little: bool) -> Insn {
    let (dst, src) = if little {
        (b[1] & 0x0f, b[1] >> 4)
    } else {
        (b[1] >> 4, b[1] & 0x0f)
    };
    let (off, imm) = if little {
        (
            i16::from_le_bytes([b[2], b[3]]),
            i32::from_le_bytes([b[4], b[5], b[6], b[7]]),
        )
    } else {
        (
            i16::from_be_bytes([b[2], b[3]]),
            i32::from_be_bytes([b[4], b[5], b[6], b[7]]),
        )
    };
    Insn {
        code: b[0],
        dst,
        src,
        off,
        imm,
    }
}

/// clang, for the unit tests (`cargo xtask` has its own, `guest_c::Clang`).
#[cfg(test)]
pub(crate) struct TestClang;

#[cfg(test)]
impl CCompiler for TestClang {
    fn compile(&self, source: &Path, big_endian: bool, object: &Path) -> Result<(), String> {
        let target = if big_endian { "bpfeb" } else { "bpfel" };
        let output = std::process::Command::new("clang")
            .args(["-O2", "-g0", "-Wall", "-Werror", "-target", target, "-c"])
            .arg(source)
            .arg("-o")
            .arg(object)
            .output()
            .map_err(|e| format!("cannot run clang ({e})"))?;
        match output.status.success() {
            true => Ok(()),
            false => Err(String::from_utf8_lossy(&output.stderr).into_owned()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_byte_orders_decode_to_the_same_instruction() {
        // mov r1, r2 ... as written by bpfel and bpfeb: add r1, -2 with off 0x0102.
        let le = [0x07, 0x21, 0x02, 0x01, 0xfe, 0xff, 0xff, 0xff];
        let be = [0x07, 0x12, 0x01, 0x02, 0xff, 0xff, 0xff, 0xfe];
        let want = Insn {
            code: 0x07,
            dst: 1,
            src: 2,
            off: 0x0102,
            imm: -2,
        };
        assert_eq!(decode(&le, true), want);
        assert_eq!(decode(&be, false), want);
    }
}
