//! The program generator of the differential JIT fuzzer (issue 18): random BPF programs that
//! the kernel's verifier accepts, for the guest to run under the interpreter, the JIT and the
//! hardened JIT and for the host to compare with its reference interpreter.
//!
//! [`generate`] makes program `index` of a [`Config`]'s seed. The same seed and index give the
//! same program on every machine (ChaCha8, integer arithmetic only), and each index is
//! independent of the others, so a batch can be split across guests at any point.
//!
//! # The contract with the harness
//!
//! A program is an XDP program (`BPF_PROG_TYPE_XDP`), loaded by root, for any frame (it never
//! reads the frame or its context). It uses two maps, [`Generated::maps`], both
//! `BPF_MAP_TYPE_ARRAY` with `key_size` 4, `max_entries` 1 and no flags:
//!
//! | slot | name | `value_size` | initial value of key 0 |
//! | --- | --- | --- | --- |
//! | [`RESULT_MAP`] = 0 | `result` | 8 | zeros |
//! | [`VALUES_MAP`] = 1 | `values` | [`Config::value_size`] (a multiple of 8, 8 to 32768) | random bytes, in the `MapSpec`'s `init` |
//!
//! Each map reference is an `lddw r1, map_by_fd(SLOT)` (`src` = `BPF_PSEUDO_MAP_FD`, `imm` =
//! the map's slot), as the assembler's `lddw r1, map:NAME` becomes after
//! [`crate::cases::resolve_maps`]: the harness replaces the slot with the map's fd.
//!
//! What a run does:
//! - looks up key 0 of `values`; should that fail (it cannot in an array), returns 0
//!   (`XDP_ABORTED`) at once, having stored nothing;
//! - runs the body, which reads and writes the `values` value (loads, stores, atomics; every
//!   access in bounds and aligned to its size) and the stack (`[r10-512, r10)`);
//! - folds into one 64-bit value every register that holds a scalar at the end, then each
//!   8-byte chunk of the `values` value that the program may have written, then the written
//!   stack bytes (in the largest aligned loads), from low addresses up: `acc = acc * MIX ^ x`
//!   over the registers in ascending order starting with the lowest, then the memory loads,
//!   all in the guest's byte order;
//! - stores that value (`stxdw`, the guest's byte order) at offset [`RESULT_OFFSET`] of key 0
//!   of `result`, and returns [`RAN`] (2, `XDP_PASS`).
//!
//! So one run gives one 64-bit number: read key 0 of `result` after it. The body writes into
//! `values`, so both maps must be reset to their initial values before each run (interpreter,
//! JIT and hardened JIT each see the same start). The `values` bytes are loaded in the guest's
//! byte order: the reference interpreter must use the guest's endianness.
//!
//! Programs use the classic ISA, plus ISA v4 (`sdiv`/`smod`, `movsx`, sign-extending loads,
//! `bswap`, `ja32`) when [`Config::isa_v4`] is set (Linux 6.6 and later), and bounded loops
//! (Linux 5.3 and later) when [`Config::loops`] is.
//!
//! # What keeps the verifier's walk short
//!
//! - Every conditional jump compares a value just loaded from `values` (unknown to the
//!   verifier), so it explores both arms and marks no register precise, and the second arm is
//!   pruned where the arms join. The stack is written only outside conditional arms, so that
//!   both arms reach the join with the same stack slot types.
//! - At most 4000 conditional jumps per program (the verifier refuses more than 8192 pending
//!   branches); loops run 1 to 8 times over a straight-line body of at most 24 slots.
//! - A block of general code that a jump skips is at most 4000 slots, so that the verifier's
//!   rewrites (division by a register, zero extension) and constant blinding keep its offset
//!   within 16 bits; longer jumps (up to 32767, and past it with `ja32`) skip padding of
//!   register-to-register ALU64 operations, which neither rewrites.
//!
//! [`check`] and [`check_types`] are self-checks for tests; [`Coverage`] counts what a batch
//! of programs exercises.

mod check;
mod coverage;
mod gen;
mod rand;
pub mod shrink;
mod types;

use std::ops::RangeInclusive;

use crate::arch::Endian;
use crate::bpf::insn::Insn;
use crate::bpf::interp::{ArrayMap, InterpError, Machine};
use crate::cases::{Case, Expectation, MapSpec, ProgSpec, PROG_TYPE_XDP};
use crate::model::AgentSuite;

pub use check::check;
pub use coverage::{claimed, Coverage, ImmClass, JumpBucket, OpKey};
pub use types::check_types;

/// The map slot of the 8-byte value that receives the folded state.
pub const RESULT_MAP: usize = 0;
/// The map slot of the value the program reads and writes.
pub const VALUES_MAP: usize = 1;
/// Where in the result map's value the folded state goes.
pub const RESULT_OFFSET: usize = 0;
/// What a program that ran returns: `XDP_PASS`.
pub const RAN: i32 = 2;
/// The fold's multiplier: odd, so that `acc * MIX` is a bijection; it fits an immediate.
pub const MIX: i32 = 0x5bd1_e995;

/// What to generate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub seed: u64,
    /// Slots of the body (the part between the fixed prologue and the fold), log-uniform in
    /// the range (at least 1); the program is longer by the prologue (up to ~30 slots) and the
    /// fold (3 slots per register, written map chunk and written stack piece, then 11).
    pub len: RangeInclusive<usize>,
    /// Use ISA v4 instructions (Linux 6.6+).
    pub isa_v4: bool,
    /// Emit bounded loops (backward jumps with a constant trip count; Linux 5.3+).
    pub loops: bool,
    /// The `values` map's value size; rounded up to a multiple of 8 within 8..=32768 (the
    /// largest offset a 16-bit field reaches).
    pub value_size: u32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            seed: 0,
            len: 4..=2048,
            isa_v4: false,
            loops: true,
            value_size: 4096,
        }
    }
}

/// One generated program and what it needs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Generated {
    /// Its index in the seed's stream.
    pub index: u64,
    /// The encoded instructions; map references carry the map's slot in `imm`.
    pub insns: Vec<Insn>,
    /// The maps, by slot: [`RESULT_MAP`], [`VALUES_MAP`].
    pub maps: Vec<MapSpec>,
    /// Whether an instruction of ISA v4 is in it (a kernel before 6.6 rejects it).
    pub needs_isa_v4: bool,
    /// Whether it has a backward jump (a kernel before 5.3 rejects it).
    pub has_loops: bool,
}

/// Program `index` of `config.seed`'s stream.
pub fn generate(config: &Config, index: u64) -> Generated {
    let mut rng = rand::Rand::new(config.seed, index);
    let value_size = value_size(config.value_size);
    let values = initial_values(&mut rng, value_size);
    let (lo, hi) = (*config.len.start(), *config.len.end());
    let body = rng.log_uniform(lo, hi.max(lo));
    let mut gen = gen::Gen::new(rng, config, value_size);
    gen.prologue();
    gen.block(body);
    gen.epilogue();
    let insns = gen.insns;
    Generated {
        index,
        needs_isa_v4: insns.iter().any(|&insn| is_isa_v4(insn)),
        has_loops: has_backward_jump(&insns),
        maps: vec![
            MapSpec::array("result", vec![0; 8]),
            MapSpec::array("values", values),
        ],
        insns,
    }
}

fn value_size(asked: u32) -> u32 {
    asked.clamp(8, 32768).next_multiple_of(8)
}

/// The `values` map's initial value: edge-biased 64-bit words (as little-endian bytes; a
/// big-endian guest reads other numbers from them, which is as good).
fn initial_values(rng: &mut rand::Rand, size: u32) -> Vec<u8> {
    (0..size / 8)
        .flat_map(|_| rng.imm64().to_le_bytes())
        .collect()
}

/// Whether `insn` is one of ISA v4: signed division, sign-extending moves and loads,
/// unconditional byte swaps, `ja32`.
pub fn is_isa_v4(insn: Insn) -> bool {
    use crate::bpf::insn::*;
    let op = insn.code & 0xf0;
    match insn.class() {
        ALU | ALU64 if matches!(op, DIV | MOD | MOV) => insn.off != 0,
        ALU64 => op == END,
        LDX => insn.code & 0xe0 == MEMSX,
        JMP32 => op == JA,
        _ => false,
    }
}

/// What the host reference makes of a program: the folded value a correct kernel stores in
/// the result map, read as the harness reads it (the guest's byte order).
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("the reference interpreter refused it: {0}")]
    Refused(#[from] InterpError),
    #[error("it returned {0}, not XDP_PASS: it stored no result")]
    NoResult(u64),
}

/// The value program `insns`, with `maps` (by slot, as [`Generated::maps`]), leaves in the
/// result map on an `endian` machine.
pub fn reference(insns: &[Insn], maps: &[MapSpec], endian: Endian) -> Result<u64, ReferenceError> {
    let mut machine = Machine::new(endian);
    machine.maps = maps
        .iter()
        .map(|spec| {
            let mut map = ArrayMap::new(spec.value_size as usize, spec.max_entries);
            for (key, value) in &spec.init {
                let key = key.first_chunk::<4>().map_or(0, |k| u32::from_le_bytes(*k));
                if let Some(slot) = map.value_mut(key) {
                    let n = slot.len().min(value.len());
                    slot[..n].copy_from_slice(&value[..n]);
                }
            }
            map
        })
        .collect();
    let r0 = machine.run(insns, &mut [])?;
    if r0 != RAN as u64 {
        return Err(ReferenceError::NoResult(r0));
    }
    let value = machine
        .maps
        .get(RESULT_MAP)
        .and_then(|m| m.value(0))
        .and_then(|v| v.get(RESULT_OFFSET..RESULT_OFFSET + 8))
        .and_then(|v| <[u8; 8]>::try_from(v).ok())
        .unwrap_or_default();
    Ok(match endian {
        Endian::Little => u64::from_le_bytes(value),
        Endian::Big => u64::from_be_bytes(value),
    })
}

/// A program as a case of the agent's: loaded as XDP, run once per mode, its result map read
/// and compared with `expected` (the reference's value), named `NAME`.
pub fn case(name: String, insns: Vec<Insn>, maps: Vec<MapSpec>, expected: u64) -> Case {
    let needs_isa_v4 = insns.iter().any(|&insn| is_isa_v4(insn));
    Case {
        suite: AgentSuite::Fuzz,
        name,
        number: 0,
        origin: "cargo xtask fuzz".to_owned(),
        guards: None,
        maps,
        progs: vec![ProgSpec {
            prog_type: PROG_TYPE_XDP,
            expected_attach_type: 0,
            prog_flags: 0,
            insns,
        }],
        data: vec![0; 64],
        run: true,
        attach: false,
        unprivileged: false,
        jit_image: false,
        read_maps: vec![(RESULT_MAP, vec![0; 4])],
        expect: Expectation::R0(expected),
        needs_isa_v4,
        little_endian_only: false,
        lacking: None,
    }
}

/// A program in bpf_conformance's convention instead of ours (a `.data` file's `-- asm` and
/// `-- mem`): the lookup of `values` becomes r1, the memory the conformance runner passes, and
/// the store of the folded value into `result` becomes the return value. Slots are removed
/// with their jumps retargeted ([`shrink::without`]).
pub fn as_conformance(insns: &[Insn], maps: &[MapSpec]) -> (Vec<Insn>, Vec<u8>) {
    let mem = values_memory(maps);
    let mut prog = insns.to_vec();
    let lookups = map_lookups(&prog);
    let removals = rewrite_lookups(&mut prog, &lookups);
    let leftovers = lookup_leftovers(&prog, &lookups);
    // Each leftover goes only when the reference still gives the same value without it (the
    // fold may read the stack key, say).
    let value = |ranges: &[(usize, usize)]| {
        reference_conformance(&without_ranges(&prog, ranges), &mem, Endian::Little)
    };
    let mut kept = removals.clone();
    let want = value(&kept);
    for leftover in leftovers {
        if kept.iter().any(|r| leftover.0 < r.1 && r.0 < leftover.1) {
            continue;
        }
        kept.push(leftover);
        if want.is_none() || value(&kept) != want {
            kept.pop();
        }
    }
    (without_ranges(&prog, &kept), mem)
}

/// A map lookup of a generated program: its `lddw r1, map` and its call, at these slots.
struct Lookup {
    lddw: usize,
    call: usize,
    /// The map's slot: [`VALUES_MAP`] or [`RESULT_MAP`].
    map: usize,
}

/// Each lookup of `values` or `result` in `prog`, in program order.
fn map_lookups(prog: &[Insn]) -> Vec<Lookup> {
    use crate::bpf::insn::{DW, IMM, JMP, LD, PSEUDO_MAP_FD};
    let is_map = |i: &Insn, slot: usize| {
        i.code == LD | DW | IMM && i.src == PSEUDO_MAP_FD && i.imm == slot as i32
    };
    let is_lookup = |i: &Insn| i.code == JMP | 0x80 && i.src == 0 && i.imm == 1;
    let mut lookups = Vec::new();
    let mut map = None;
    for (at, insn) in prog.iter().enumerate() {
        if insn.dst == 1 && (is_map(insn, VALUES_MAP) || is_map(insn, RESULT_MAP)) {
            map = Some((at, insn.imm as usize));
        } else if is_lookup(insn) {
            if let Some((lddw, slot)) = map.take() {
                lookups.push(Lookup {
                    lddw,
                    call: at,
                    map: slot,
                });
            }
        }
    }
    lookups
}

/// Rewrites each lookup into the convention's (see [`as_conformance`]) and gives the slot
/// ranges that must go with it.
fn rewrite_lookups(prog: &mut [Insn], lookups: &[Lookup]) -> Vec<(usize, usize)> {
    use crate::bpf::insn::{ALU64, DW, MEM, MOV, STX, X};
    let mut removals = Vec::new();
    for &Lookup { lddw, call, map } in lookups {
        if map == VALUES_MAP {
            // r1 still holds the memory where the lookup was: the program starts with it.
            prog[call] = Insn::new(ALU64 | MOV | X, 0, 1, 0, 0);
            removals.push((lddw, lddw + 2));
        } else {
            // `jeq r0, 0, +1; stxdw [r0+0], rX; mov r0, 2; exit` after the call: return rX.
            let store = (call..prog.len()).find(|&i| prog[i].code == STX | MEM | DW);
            if let Some(store) = store {
                if return_stored(prog, store) {
                    removals.push((store + 1, store + 2));
                }
                removals.push((lddw, call + 2));
            }
        }
    }
    removals
}

/// The slot ranges that only served the lookups: the key on the stack, its address in r2,
/// the null checks. They may go, as long as the program's value stays.
fn lookup_leftovers(prog: &[Insn], lookups: &[Lookup]) -> Vec<(usize, usize)> {
    use crate::bpf::insn::{ALU64, JMP, K, MEM, MOV, ST, X};
    let is = |at: usize, code: u8, dst: u8, src: u8, imm: i32| {
        prog.get(at)
            .is_some_and(|i| i.code == code && i.dst == dst && i.src == src && i.imm == imm)
    };
    let mut leftovers = Vec::new();
    for &Lookup { lddw, call, .. } in lookups {
        if lddw > 0 && is(lddw - 1, ST | MEM, 10, 0, 0) {
            leftovers.push((lddw - 1, lddw));
        }
        if call >= 2 && is(call - 2, ALU64 | MOV | X, 2, 10, 0) && is(call - 1, ALU64 | K, 2, 0, -4)
        // add r2, -4
        {
            leftovers.push((call - 2, call));
        }
        // `jne r0, 0, +k` or `jeq r0, 0, +k` right after: r0 is never null now.
        if let Some(check) = prog.get(call + 1).filter(|i| i.dst == 0 && i.imm == 0) {
            let skip = usize::try_from(check.off).unwrap_or(0);
            if check.code == JMP | 0x50 {
                leftovers.push((call + 1, call + 2 + skip));
            } else if check.code == JMP | 0x10 && skip == 1 {
                leftovers.push((call + 1, call + 2));
            }
        }
    }
    leftovers
}

/// `prog` without the slots of `ranges` (`from..to` each), jumps retargeted; a range that
/// cannot go ([`shrink::without`]) stays.
fn without_ranges(prog: &[Insn], ranges: &[(usize, usize)]) -> Vec<Insn> {
    let mut ranges = ranges.to_vec();
    ranges.sort_unstable();
    let mut out = prog.to_vec();
    for &(from, to) in ranges.iter().rev() {
        if let Some(smaller) = shrink::without(&out, from, to.min(out.len())) {
            out = smaller;
        }
    }
    out
}

/// A program with its map lookups kept, the nearest a `.data` file comes to the program as
/// generated: the same helper calls and verifier states, for a finding the leaner
/// [`as_conformance`] no longer shows. Only the store of the folded value into `result`
/// becomes the return value; the lookups stay, of the conformance runner's own maps (`lddw`
/// slot [`RESULT_MAP`] names its result map, [`VALUES_MAP`] the map of `-- mem`), and r0 at
/// the exit is the value [`reference`] gives the program as generated.
pub fn with_lookups(insns: &[Insn], maps: &[MapSpec]) -> (Vec<Insn>, Vec<u8>) {
    use crate::bpf::insn::{DW, MEM, STX};
    let mem = values_memory(maps);
    let mut prog = insns.to_vec();
    if let Some(store) = prog.iter().rposition(|i| i.code == STX | MEM | DW) {
        if return_stored(&mut prog, store) {
            if let Some(shorter) = shrink::without(&prog, store + 1, store + 2) {
                prog = shorter;
            }
        }
    }
    (prog, mem)
}

/// The `values` map's value: a `.data` file's `-- mem`.
fn values_memory(maps: &[MapSpec]) -> Vec<u8> {
    maps.get(VALUES_MAP)
        .and_then(|m| m.init.first())
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// The fold's `stxdw [r0+0], rX` at `store` becomes `mov r0, rX`; whether the `mov r0, 2`
/// after it stands before the `exit` (and can go, so that rX is returned).
fn return_stored(prog: &mut [Insn], store: usize) -> bool {
    use crate::bpf::insn::{ALU64, EXIT, JMP, MOV, X};
    let value = prog[store].src;
    prog[store] = Insn::new(ALU64 | MOV | X, 0, value, 0, 0);
    prog.get(store + 2).is_some_and(|i| i.code == JMP | EXIT)
}

/// The shortest prefix of `mem` (in whole words) with which the reference gives the program
/// the same r0 as with all of it: the memory a `.data` reproducer needs to show.
pub fn shortest_memory(insns: &[Insn], mem: &[u8], endian: Endian) -> Vec<u8> {
    let whole = reference_conformance(insns, mem, endian);
    (0..mem.len())
        .step_by(8)
        .map(|n| &mem[..n])
        .find(|short| reference_conformance(insns, short, endian) == whole)
        .unwrap_or(mem)
        .to_vec()
}

/// The host reference's r0 for a program in bpf_conformance's convention.
pub fn reference_conformance(insns: &[Insn], mem: &[u8], endian: Endian) -> Option<u64> {
    let mut mem = mem.to_vec();
    Machine::new(endian).run(insns, &mut mem).ok()
}

fn has_backward_jump(insns: &[Insn]) -> bool {
    insns
        .iter()
        .enumerate()
        .any(|(at, &insn)| check::target(at, insn).is_some_and(|target| target <= at as i64))
}

#[cfg(test)]
mod tests;
