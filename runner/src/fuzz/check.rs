//! A structural self-check of generated programs, for tests: what the verifier's CFG check
//! and its first pass would refuse, short of a verifier.

use crate::bpf::insn::*;

/// Helpers by number and how many arguments they read (r1 upwards).
const HELPER_ARGS: [(i32, u32); 1] = [(1, 2)];

/// Checks that `insns` ends in `exit`, that every jump lands on an instruction (not past the
/// end, not on the second half of a `lddw`), that every instruction is reachable (the
/// verifier's CFG check refuses dead code), that every register is written on every path
/// before it is read (r1 and r10 are set at entry), that r10 is never written, and that every
/// access through r10 is inside `[r10-512, r10)` and aligned to its size.
pub fn check(insns: &[Insn]) -> Result<(), String> {
    let last = insns.last().ok_or("no instructions")?;
    if last.code != JMP | EXIT {
        return Err("the last instruction is not `exit`".to_owned());
    }
    let second = second_halves(insns)?;
    for (at, &insn) in insns.iter().enumerate() {
        if second[at] {
            continue;
        }
        if let Some(target) = target(at, insn) {
            let lands = usize::try_from(target)
                .ok()
                .filter(|&t| t < insns.len() && !second[t]);
            if lands.is_none() {
                return Err(format!(
                    "{at}: `{insn}` jumps to {target}, not an instruction"
                ));
            }
        }
        stack_access(insn).map_err(|e| format!("{at}: `{insn}`: {e}"))?;
    }
    dataflow(insns, &second)
}

/// Which slots are the second half of a `lddw`.
fn second_halves(insns: &[Insn]) -> Result<Vec<bool>, String> {
    let mut second = vec![false; insns.len()];
    let mut at = 0;
    while at < insns.len() {
        if insns[at].is_lddw() {
            let next = insns.get(at + 1).ok_or(format!("{at}: `lddw` cut short"))?;
            if next.code != 0 || next.dst != 0 || next.src != 0 || next.off != 0 {
                return Err(format!("{}: bad second half of `lddw`", at + 1));
            }
            second[at + 1] = true;
            at += 2;
        } else {
            at += 1;
        }
    }
    Ok(second)
}

/// The slot a jump at `at` goes to when taken, or `None` for what is not a jump (calls and
/// `exit` included).
pub(super) fn target(at: usize, insn: Insn) -> Option<i64> {
    let class = insn.class();
    let op = insn.code & 0xf0;
    if !matches!(class, JMP | JMP32) || matches!(op, CALL | EXIT) {
        return None;
    }
    let delta = if class == JMP32 && op == JA {
        i64::from(insn.imm)
    } else {
        i64::from(insn.off)
    };
    Some(at as i64 + 1 + delta)
}

fn stack_access(insn: Insn) -> Result<(), String> {
    let class = insn.class();
    let base = match class {
        LDX => insn.src,
        ST | STX => insn.dst,
        _ => return Ok(()),
    };
    if class == LD || base != 10 {
        return Ok(());
    }
    let size = match insn.code & 0x18 {
        B => 1,
        H => 2,
        W => 4,
        _ => 8,
    };
    let off = i32::from(insn.off);
    if off < -512 || off + size > 0 {
        return Err("outside the stack".to_owned());
    }
    if off % size != 0 {
        return Err("misaligned stack access".to_owned());
    }
    Ok(())
}

/// Registers as bits; r1 and r10 hold the context and the frame at entry.
type Regs = u16;
const ENTRY: Regs = 1 << 1 | 1 << 10;

/// A forward dataflow to a fixpoint: a register is written at a slot when it is written on
/// every path there.
fn dataflow(insns: &[Insn], second: &[bool]) -> Result<(), String> {
    let mut written: Vec<Option<Regs>> = vec![None; insns.len()];
    written[0] = Some(ENTRY);
    let mut work = vec![0usize];
    while let Some(at) = work.pop() {
        let Some(before) = written[at] else {
            continue;
        };
        let insn = insns[at];
        let (reads, writes, kills) = effects(insn);
        if reads & !before != 0 {
            let missing = (0..11).find(|r| reads & !before & 1 << r != 0).unwrap_or(0);
            return Err(format!(
                "{at}: `{insn}` reads r{missing}, unwritten on some path"
            ));
        }
        if writes & 1 << 10 != 0 {
            return Err(format!("{at}: `{insn}` writes r10"));
        }
        let after = (before & !kills) | writes;
        for next in successors(at, insn, insns.len(), second) {
            let merged = written[next].map_or(after, |old| old & after);
            if written[next] != Some(merged) {
                written[next] = Some(merged);
                work.push(next);
            }
        }
    }
    if let Some(at) = (0..insns.len()).find(|&at| written[at].is_none() && !second[at]) {
        return Err(format!("{at}: unreachable"));
    }
    Ok(())
}

fn successors(at: usize, insn: Insn, len: usize, second: &[bool]) -> Vec<usize> {
    let mut out = Vec::with_capacity(2);
    let op = insn.code & 0xf0;
    let is_jump = matches!(insn.class(), JMP | JMP32);
    if is_jump && op == EXIT {
        return out;
    }
    if let Some(target) = target(at, insn) {
        if let Ok(t) = usize::try_from(target) {
            out.push(t);
        }
        if op == JA {
            return out;
        }
    }
    let next = at + if insn.is_lddw() { 2 } else { 1 };
    if next < len && !second[next] {
        out.push(next);
    }
    out
}

/// `(read, written, clobbered)` registers of an instruction.
fn effects(insn: Insn) -> (Regs, Regs, Regs) {
    let (dst, src) = (1 << insn.dst, 1 << insn.src);
    let x = insn.code & X != 0;
    let op = insn.code & 0xf0;
    match insn.class() {
        ALU | ALU64 => {
            let reads_dst = if op == MOV { 0 } else { dst };
            let reads_src = if x && op != END { src } else { 0 };
            (reads_dst | reads_src, dst, 0)
        }
        JMP | JMP32 => match op {
            EXIT => (1, 0, 0),
            CALL => {
                let args = HELPER_ARGS
                    .iter()
                    .find(|(n, _)| *n == insn.imm)
                    .map_or(0, |(_, a)| *a);
                let reads = (1..=args).fold(0, |m, r| m | 1 << r);
                (reads, 1, 0b11_1110)
            }
            JA => (0, 0, 0),
            _ => (dst | if x { src } else { 0 }, 0, 0),
        },
        LD if insn.is_lddw() => (0, dst, 0),
        LD => (src, 1, 0),
        LDX => (src, dst, 0),
        ST => (dst, 0, 0),
        _ if insn.code & 0xe0 == ATOMIC => match insn.imm {
            CMPXCHG => (dst | src | 1, 1, 0),
            imm if imm & FETCH != 0 => (dst | src, src, 0),
            _ => (dst | src, 0, 0),
        },
        _ => (dst | src, 0, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::asm::assemble;

    fn run(text: &str) -> Result<(), String> {
        check(&assemble(text).unwrap().encode().unwrap())
    }

    #[test]
    fn accepts_a_sound_program() {
        run("mov r0, 1\njeq r1, 0, +1\nmov r2, 3\nlddw r3, 5\nadd r0, r3\nexit").unwrap();
    }

    #[test]
    fn refuses_what_the_verifier_would() {
        let cases = [
            ("mov r0, 1", "not `exit`"),
            ("jeq r1, 0, +1\nmov r2, 1\nmov r0, r2\nexit", "reads r2"),
            ("add r0, 1\nexit", "reads r0"),
            ("mov r0, 0\nstxw [r10-6], r0\nexit", "misaligned"),
            ("mov r0, 0\nstb [r10+0], 1\nexit", "outside the stack"),
            ("mov r0, 0\ncall map_lookup_elem\nexit", "reads r2"),
            (
                "mov r2, 1\nmov r0, 0\ncall map_lookup_elem\nmov r0, r2\nexit",
                "reads r2",
            ),
        ];
        for (text, error) in cases {
            let got = run(text).unwrap_err();
            assert!(got.contains(error), "{text}: {got}");
        }
    }

    #[test]
    fn refuses_a_jump_into_a_lddw() {
        let insns = [
            Insn::new(ALU64 | MOV | K, 0, 0, 0, 0),
            Insn::new(JMP | JA, 0, 0, 1, 0),
            Insn::new(LD | DW | IMM, 1, 0, 0, 5),
            Insn::new(0, 0, 0, 0, 0),
            Insn::new(JMP | EXIT, 0, 0, 0, 0),
        ];
        let got = check(&insns).unwrap_err();
        assert!(got.contains("not an instruction"), "{got}");
        let past = [insns[0], Insn::new(JMP | JA, 0, 0, 5, 0), insns[4]];
        let got = check(&past).unwrap_err();
        assert!(got.contains("not an instruction"), "{got}");
        let got = check(&[
            insns[0],
            Insn::new(JMP | JA, 0, 0, 0, 0),
            insns[4],
            insns[4],
        ])
        .unwrap_err();
        assert!(got.contains("unreachable"), "{got}");
    }

    #[test]
    fn follows_loops_and_cmpxchg() {
        run("mov r0, 0\nmov r2, 3\nloop:\nadd r0, 1\nsub r2, 1\njne r2, 0, loop\nexit").unwrap();
        let got = run("stdw [r10-8], 0\nmov r2, 1\nlock cmpxchg [r10-8], r2\nexit").unwrap_err();
        assert!(got.contains("reads r0"), "{got}");
    }
}
