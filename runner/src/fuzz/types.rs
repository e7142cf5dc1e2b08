//! A second self-check, for tests: the types the verifier gives registers, followed over every
//! path, and the rules of theirs the generator must keep: pointers stay out of arithmetic,
//! comparisons and memory; memory is reached only through the frame pointer or a checked map
//! value, in bounds and aligned; stack bytes are written before they are read; the return
//! value is a scalar. Not a verifier: no value ranges, no pruning.

use crate::bpf::insn::*;

/// A register's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ty {
    /// Unwritten, or of different types on two paths.
    Unusable,
    Scalar,
    Ctx,
    /// The frame pointer plus an offset.
    Stack(i32),
    /// The map of a slot, from `lddw`.
    Map(u32),
    /// `map_lookup_elem`'s result before the null check.
    MaybeValue(u32),
    Value(u32),
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct Frame {
    regs: [Ty; 11],
    /// A bit per written stack byte, by 8-byte slot from `r10-512`.
    stack: [u8; 64],
}

impl Frame {
    fn meet(&self, other: &Frame) -> Frame {
        let mut out = self.clone();
        for (mine, theirs) in out.regs.iter_mut().zip(other.regs) {
            if *mine != theirs {
                *mine = Ty::Unusable;
            }
        }
        for (mine, theirs) in out.stack.iter_mut().zip(other.stack) {
            *mine &= theirs;
        }
        out
    }

    fn reg(&self, r: u8) -> Ty {
        self.regs
            .get(usize::from(r))
            .copied()
            .unwrap_or(Ty::Unusable)
    }

    fn set(&mut self, r: u8, ty: Ty) -> Result<(), String> {
        if r >= 10 {
            return Err(format!("writes r{r}"));
        }
        self.regs[usize::from(r)] = ty;
        Ok(())
    }

    fn scalar(&self, r: u8) -> Result<(), String> {
        match self.reg(r) {
            Ty::Scalar => Ok(()),
            other => Err(format!("r{r} is {other:?}, not a scalar")),
        }
    }

    fn stack_bytes(&mut self, off: i32, size: i32, write: bool) -> Result<(), String> {
        if off < -512 || off + size > 0 || off % size != 0 {
            return Err(format!("stack access at {off} of {size} bytes"));
        }
        for at in off..off + size {
            let byte = (at + 512) as usize;
            let bit = 1 << (byte % 8);
            if write {
                self.stack[byte / 8] |= bit;
            } else if self.stack[byte / 8] & bit == 0 {
                return Err(format!("reads unwritten stack byte {at}"));
            }
        }
        Ok(())
    }
}

/// Checks `insns` against the types: `value_sizes` are the value sizes of the maps by slot.
pub fn check_types(insns: &[Insn], value_sizes: &[u32]) -> Result<(), String> {
    let mut entry = Frame {
        regs: [Ty::Unusable; 11],
        stack: [0; 64],
    };
    entry.regs[1] = Ty::Ctx;
    entry.regs[10] = Ty::Stack(0);
    let mut states: Vec<Option<Frame>> = vec![None; insns.len()];
    states[0] = Some(entry);
    let mut work = vec![0usize];
    while let Some(at) = work.pop() {
        let Some(frame) = states[at].clone() else {
            continue;
        };
        let insn = insns[at];
        let next =
            step(at, insn, frame, value_sizes).map_err(|e| format!("{at}: `{insn}`: {e}"))?;
        for (to, frame) in next {
            let merged = match &states[to] {
                Some(old) => old.meet(&frame),
                None => frame,
            };
            if states[to].as_ref() != Some(&merged) {
                states[to] = Some(merged);
                work.push(to);
            }
        }
    }
    Ok(())
}

type Next = Vec<(usize, Frame)>;

fn step(at: usize, insn: Insn, mut f: Frame, sizes: &[u32]) -> Result<Next, String> {
    let next = at + if insn.is_lddw() { 2 } else { 1 };
    match insn.class() {
        ALU | ALU64 => alu(insn, &mut f)?,
        LD if insn.is_lddw() => {
            let ty = match insn.src {
                LDDW_IMM64 => Ty::Scalar,
                PSEUDO_MAP_FD if (insn.imm as usize) < sizes.len() => Ty::Map(insn.imm as u32),
                _ => return Err("unknown lddw kind or map".to_owned()),
            };
            f.set(insn.dst, ty)?;
        }
        LDX => {
            memory(&mut f, insn.src, insn.off, size(insn.code), false, sizes)?;
            f.set(insn.dst, Ty::Scalar)?;
        }
        ST => memory(&mut f, insn.dst, insn.off, size(insn.code), true, sizes)?,
        STX if insn.code & 0xe0 == ATOMIC => atomic(insn, &mut f, sizes)?,
        STX => {
            f.scalar(insn.src)?;
            memory(&mut f, insn.dst, insn.off, size(insn.code), true, sizes)?;
        }
        JMP | JMP32 => return jump(at, next, insn, f),
        _ => return Err("unexpected class".to_owned()),
    }
    Ok(vec![(next, f)])
}

fn size(code: u8) -> i32 {
    match code & 0x18 {
        B => 1,
        H => 2,
        W => 4,
        _ => 8,
    }
}

fn alu(insn: Insn, f: &mut Frame) -> Result<(), String> {
    let op = insn.code & 0xf0;
    let x = insn.code & X != 0;
    let wide = insn.class() == ALU64;
    // A pointer copy, and a constant move of the stack pointer: the only pointer arithmetic.
    if wide && op == MOV && x && insn.off == 0 {
        let ty = f.reg(insn.src);
        if ty == Ty::Unusable || insn.src == 10 && insn.dst == 10 {
            return Err(format!("copies r{} ({ty:?})", insn.src));
        }
        return f.set(insn.dst, ty);
    }
    if let (true, Ty::Stack(base), false) = (wide, f.reg(insn.dst), x) {
        let moved = match op {
            0x00 => base + insn.imm,
            0x10 => base - insn.imm,
            _ => return Err("arithmetic on the stack pointer".to_owned()),
        };
        return f.set(insn.dst, Ty::Stack(moved));
    }
    if op != MOV {
        f.scalar(insn.dst)?;
    }
    if x && op != END {
        f.scalar(insn.src)?;
    }
    f.set(insn.dst, Ty::Scalar)
}

fn memory(
    f: &mut Frame,
    base: u8,
    off: i16,
    size: i32,
    write: bool,
    sizes: &[u32],
) -> Result<(), String> {
    let off = i32::from(off);
    match f.reg(base) {
        Ty::Stack(at) => f.stack_bytes(at + off, size, write),
        Ty::Value(map) => {
            let limit = sizes.get(map as usize).copied().unwrap_or(0) as i32;
            if off < 0 || off + size > limit || off % size != 0 {
                return Err(format!(
                    "map value access at {off} of {size} bytes (size {limit})"
                ));
            }
            Ok(())
        }
        other => Err(format!("memory through r{base} ({other:?})")),
    }
}

fn atomic(insn: Insn, f: &mut Frame, sizes: &[u32]) -> Result<(), String> {
    if !matches!(insn.code & 0x18, W | DW) {
        return Err("atomic of a size other than W and DW".to_owned());
    }
    f.scalar(insn.src)?;
    let size = size(insn.code);
    memory(f, insn.dst, insn.off, size, false, sizes)?;
    memory(f, insn.dst, insn.off, size, true, sizes)?;
    match insn.imm {
        CMPXCHG => {
            f.scalar(0)?;
            f.set(0, Ty::Scalar)
        }
        imm if imm & FETCH != 0 => f.set(insn.src, Ty::Scalar),
        _ => Ok(()),
    }
}

fn jump(at: usize, next: usize, insn: Insn, mut f: Frame) -> Result<Next, String> {
    let op = insn.code & 0xf0;
    let target = super::check::target(at, insn)
        .and_then(|t| usize::try_from(t).ok())
        .unwrap_or(usize::MAX);
    match op {
        EXIT => {
            f.scalar(0)?;
            return Ok(Vec::new());
        }
        CALL => {
            call(insn, &mut f)?;
            return Ok(vec![(next, f)]);
        }
        JA => return Ok(vec![(target, f)]),
        _ => {}
    }
    let x = insn.code & X != 0;
    // The null check of a lookup's result.
    if let (Ty::MaybeValue(map), false, JMP, 0) = (f.reg(insn.dst), x, insn.class(), insn.imm) {
        let (mut null, mut value) = (f.clone(), f);
        null.set(insn.dst, Ty::Scalar)?;
        value.set(insn.dst, Ty::Value(map))?;
        return match op {
            0x10 => Ok(vec![(target, null), (next, value)]),
            0x50 => Ok(vec![(target, value), (next, null)]),
            _ => Err("a lookup's result compared other than with jeq/jne 0".to_owned()),
        };
    }
    f.scalar(insn.dst)?;
    if x {
        f.scalar(insn.src)?;
    }
    Ok(vec![(target, f.clone()), (next, f)])
}

/// `map_lookup_elem(map, &key)`, the only helper the programs call.
fn call(insn: Insn, f: &mut Frame) -> Result<(), String> {
    if insn.imm != 1 || insn.src != CALL_HELPER {
        return Err("calls other than map_lookup_elem".to_owned());
    }
    let Ty::Map(map) = f.reg(1) else {
        return Err("r1 is not a map".to_owned());
    };
    let Ty::Stack(key) = f.reg(2) else {
        return Err("r2 is not a stack pointer".to_owned());
    };
    f.stack_bytes(key, 4, false)?;
    for r in 1..=5 {
        f.set(r, Ty::Unusable)?;
    }
    f.set(0, Ty::MaybeValue(map))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::asm::assemble;

    fn run(text: &str) -> Result<(), String> {
        check_types(&assemble(text).unwrap().encode().unwrap(), &[8, 64])
    }

    const LOOKUP: &str = "stw [r10-4], 0\nlddw r1, map_by_fd(1)\nmov r2, r10\nadd r2, -4\n\
                          call map_lookup_elem\n";

    #[test]
    fn accepts_a_checked_lookup() {
        run(&format!(
            "{LOOKUP}jeq r0, 0, +2\nldxdw r3, [r0+56]\nstxw [r0+0], r3\nmov r0, 2\nexit"
        ))
        .unwrap();
    }

    #[test]
    fn refuses_pointer_misuse() {
        let cases = [
            ("ldxdw r3, [r0+0]\nmov r0, 2\nexit", "MaybeValue"),
            (
                "jeq r0, 0, +2\nldxdw r3, [r0+64]\nmov r0, 2\nexit",
                "map value access",
            ),
            (
                "jeq r0, 0, +2\nldxw r3, [r0+2]\nmov r0, 2\nexit",
                "map value access",
            ),
            ("jeq r0, 0, +2\nadd r0, 8\nmov r0, 2\nexit", "not a scalar"),
            (
                "jeq r0, 0, +2\nstxdw [r0+0], r0\nmov r0, 2\nexit",
                "not a scalar",
            ),
            ("jeq r0, 0, +1\nexit\nmov r0, 2\nexit", "not a scalar"),
            ("ldxdw r3, [r10-16]\nmov r0, 2\nexit", "unwritten stack"),
            ("jne r0, 0, +2\nmov r0, 0\nexit\nexit", "not a scalar"),
            ("mov r3, r1\nmov r0, 2\nexit", "copies r1"),
        ];
        for (body, error) in cases {
            let got = run(&format!("{LOOKUP}{body}")).unwrap_err();
            assert!(got.contains(error), "{body}: {got}");
        }
    }
}
