//! The program generator: a prologue that looks the values map up, a body of random
//! structured code, and an epilogue that folds the state into the result map.
//!
//! The generator keeps what the verifier will know at each point (which registers hold a
//! scalar, which hold the map value pointer, which stack bytes are written) and only emits
//! what that state allows. Control flow is structured: a conditional jump skips a block that
//! the generator fills to an exact length, an if-else joins its two arms, a loop runs a
//! straight-line body a constant number of times. Where two paths join, the state is what
//! holds on both ([`State::meet`]).

use super::rand::Rand;
use super::{Config, MIX, RAN, RESULT_MAP, VALUES_MAP};
use crate::bpf::insn::*;

/// How deeply blocks nest: deeper nesting adds little and makes the verifier walk more.
const MAX_DEPTH: u32 = 6;
/// The longest block of general code a conditional jump skips. The verifier rewrites some
/// instructions into several (division by a register, zero extension on 32-bit JITs) and
/// constant blinding triples immediates: a block this long still fits a 16-bit offset after.
const MAX_CODE_JUMP: usize = 4000;
/// The longest loop body; with [`MAX_TRIPS`] it bounds the verifier's walk of a loop.
const MAX_LOOP_BODY: usize = 24;
const MAX_TRIPS: u64 = 8;
/// The most conditional jumps in a program: the verifier keeps one pending state for each it
/// passes on its first path and refuses more than 8192.
const MAX_BRANCHES: usize = 4000;
/// The stack the programs use, below r10 (all of it).
const STACK: i32 = 512;

/// What a register holds, for the verifier.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Uninit,
    Scalar,
    /// The values map's value (`PTR_TO_MAP_VALUE`, checked non-null): the program's only
    /// pointer besides r10.
    Ptr,
}

/// What the verifier knows at one point, as far as the generator needs it.
#[derive(Clone, Debug)]
struct State {
    regs: [Kind; 10],
    /// A bit per stack byte written, by 8-byte slot; slot 0 is `[r10-512, r10-504)`.
    stack: [u8; 64],
}

impl State {
    /// What holds on both paths into a join: a register of different kinds on the two is
    /// unusable, a stack byte written on one only is not written.
    fn meet(&self, other: &State) -> State {
        let mut out = self.clone();
        for (mine, theirs) in out.regs.iter_mut().zip(other.regs) {
            if *mine != theirs {
                *mine = Kind::Uninit;
            }
        }
        for (mine, theirs) in out.stack.iter_mut().zip(other.stack) {
            *mine &= theirs;
        }
        out
    }

    fn mask(&self, kind: Kind) -> u16 {
        (0..10)
            .filter(|&r| self.regs[r] == kind)
            .fold(0, |m, r| m | 1 << r)
    }

    fn stack_written(&self, off: i32, size: i32) -> bool {
        (off..off + size).all(|at| {
            let byte = (at + STACK) as usize;
            self.stack[byte / 8] & (1 << (byte % 8)) != 0
        })
    }

    fn write_stack(&mut self, off: i32, size: i32) {
        for at in off..off + size {
            let byte = (at + STACK) as usize;
            self.stack[byte / 8] |= 1 << (byte % 8);
        }
    }
}

/// Where a memory access goes: the stack (through r10) or the map value (through a pointer).
#[derive(Clone, Copy)]
struct Place {
    base: u8,
    off: i16,
}

/// How a skipped block is filled.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fill {
    /// Any instructions, nested blocks included.
    Code,
    /// Register-to-register ALU64 only: nothing the verifier or constant blinding grows, so
    /// that a jump over it keeps its offset up to the encoding's limit.
    Padding,
}

pub(super) struct Gen {
    rng: Rand,
    value_size: u32,
    v4: bool,
    loops: bool,
    pub(super) insns: Vec<Insn>,
    state: State,
    depth: u32,
    /// How many arms of conditionals enclose this point. The stack is written only outside
    /// them: an arm that changes a slot's kind (a spill, a scalar's bytes) would make the two
    /// paths' stacks differ at the join, where the verifier could then not prune the second.
    arms: u32,
    branches: usize,
    /// The counter of the enclosing loop: read-only in its body.
    locked: u16,
    in_loop: bool,
    /// Which 8-byte chunks of the map value the program may have written.
    touched: Vec<bool>,
}

/// The items of a body, with their weights (a zero weight when not allowed here).
#[derive(Clone, Copy)]
enum Item {
    Alu,
    Swap,
    Movsx,
    Lddw,
    Load,
    Store,
    Atomic,
    If,
    IfElse,
    Loop,
    Relocate,
}

impl Gen {
    pub(super) fn new(rng: Rand, config: &Config, value_size: u32) -> Gen {
        Gen {
            rng,
            value_size,
            v4: config.isa_v4,
            loops: config.loops,
            insns: Vec::new(),
            state: State {
                regs: [Kind::Uninit; 10],
                stack: [0; 64],
            },
            depth: 0,
            arms: 0,
            branches: 0,
            locked: 0,
            in_loop: false,
            touched: vec![false; value_size as usize / 8],
        }
    }

    fn emit(&mut self, code: u8, dst: u8, src: u8, off: i16, imm: i32) {
        self.insns.push(Insn::new(code, dst, src, off, imm));
    }

    fn set(&mut self, reg: u8, kind: Kind) {
        self.state.regs[usize::from(reg)] = kind;
    }

    fn pick(&mut self, mask: u16) -> Option<u8> {
        let n = u64::from(mask.count_ones());
        let mut nth = self.rng.below(n);
        for r in 0..10u8 {
            if mask & 1 << r != 0 {
                if nth == 0 {
                    return Some(r);
                }
                nth -= 1;
            }
        }
        None
    }

    // ---- Registers ----------------------------------------------------------------------

    fn scalars(&self) -> u16 {
        self.state.mask(Kind::Scalar)
    }

    fn ptrs(&self) -> u16 {
        self.state.mask(Kind::Ptr)
    }

    /// Scalars an instruction may modify in place.
    fn writable(&self) -> u16 {
        self.scalars() & !self.locked
    }

    /// Registers an instruction may define without reading: not a loop's counter, and not a
    /// pointer, except a spare copy outside any block (inside one, both paths must keep the
    /// pointer where it was).
    fn definable(&self) -> u16 {
        let ptrs = self.ptrs();
        let spare_ptrs = if self.depth == 0 && ptrs.count_ones() >= 2 {
            ptrs
        } else {
            0
        };
        (self.state.mask(Kind::Uninit) | self.scalars() | spare_ptrs) & !self.locked
    }

    fn define(&mut self) -> u8 {
        let mask = self.definable();
        self.pick(mask).unwrap_or(0)
    }

    fn scalar(&mut self) -> u8 {
        let mask = self.scalars();
        self.pick(mask).unwrap_or(0)
    }

    fn ptr(&mut self) -> u8 {
        let mask = self.ptrs();
        self.pick(mask).unwrap_or(0)
    }

    // ---- Prologue and epilogue ----------------------------------------------------------

    /// Looks the values map up (returning 0 should it be missing), puts the pointer in a
    /// random register, and gives a random set of registers edge values.
    pub(super) fn prologue(&mut self) {
        self.lookup(VALUES_MAP);
        // The pointer is in r0 only where it is not null.
        self.emit(JMP | JNE | K, 0, 0, 2, 0);
        self.emit(ALU64 | MOV | K, 0, 0, 0, 0);
        self.emit(JMP | EXIT, 0, 0, 0, 0);
        self.set(0, Kind::Ptr);
        let home = self.rng.range(0, 9) as u8;
        if home != 0 {
            self.emit(ALU64 | MOV | X, home, 0, 0, 0);
            self.set(home, Kind::Ptr);
        }
        for reg in 0..10u8 {
            let spare = self.definable() & 1 << reg != 0;
            if spare && self.rng.chance(3, 4) {
                self.constant(reg);
            }
        }
        // Two scalars at least, so that every operation has operands.
        for reg in 0..10u8 {
            if self.scalars().count_ones() >= 2 {
                break;
            }
            if self.definable() & 1 << reg != 0 && self.scalars() & 1 << reg == 0 {
                self.constant(reg);
            }
        }
    }

    /// `reg = ` an edge value, by `mov32`, `mov` or `lddw`.
    fn constant(&mut self, reg: u8) {
        match self.rng.below(3) {
            0 => {
                let imm = self.rng.imm32();
                self.emit(ALU | MOV | K, reg, 0, 0, imm);
            }
            1 => {
                let imm = self.rng.imm32();
                self.emit(ALU64 | MOV | K, reg, 0, 0, imm);
            }
            _ => {
                let value = self.rng.imm64();
                self.lddw(reg, value);
            }
        }
        self.set(reg, Kind::Scalar);
    }

    fn lddw(&mut self, reg: u8, value: i64) {
        self.emit(LD | DW | IMM, reg, 0, 0, value as i32);
        self.emit(0, 0, 0, 0, (value >> 32) as i32);
    }

    /// `r0 = map_lookup_elem(map slot, &(u32)0)`, the key at `[r10-4]`.
    fn lookup(&mut self, map: usize) {
        self.emit(ST | MEM | W, 10, 0, -4, 0);
        self.state.write_stack(-4, 4);
        self.emit(LD | DW | IMM, 1, PSEUDO_MAP_FD, 0, map as i32);
        self.emit(0, 0, 0, 0, 0);
        self.emit(ALU64 | MOV | X, 2, 10, 0, 0);
        self.emit(ALU64 | ADD | K, 2, 0, 0, -4);
        self.emit(JMP | CALL, 0, CALL_HELPER, 0, 1);
        for reg in 1..=5 {
            self.set(reg, Kind::Uninit);
        }
    }

    /// Folds every scalar register, the written map chunks and the written stack bytes into
    /// one value, stores it at offset 0 of the result map's value and returns [`RAN`].
    pub(super) fn epilogue(&mut self) {
        let scalars: Vec<u8> = (0..10u8)
            .filter(|&r| self.scalars() & 1 << r != 0)
            .collect();
        let (acc, tmp) = match scalars[..] {
            [acc, tmp, ..] => (acc, tmp),
            // The prologue makes two scalars and nothing takes one away.
            _ => (0, 1),
        };
        for &reg in scalars.iter().skip(1) {
            self.mix(acc, reg);
        }
        let base = self.ptrs().trailing_zeros() as u8;
        let chunks: Vec<usize> = (0..self.touched.len())
            .filter(|&c| self.touched[c])
            .collect();
        for chunk in chunks {
            self.emit(LDX | MEM | DW, tmp, base, (chunk * 8) as i16, 0);
            self.mix(acc, tmp);
        }
        for (off, size) in self.written_stack() {
            self.emit(LDX | MEM | size_code(size), tmp, 10, off as i16, 0);
            self.mix(acc, tmp);
        }
        if acc != 6 {
            self.emit(ALU64 | MOV | X, 6, acc, 0, 0);
        }
        self.lookup(RESULT_MAP);
        self.emit(JMP | JEQ | K, 0, 0, 1, 0);
        self.emit(STX | MEM | DW, 0, 6, 0, 0);
        self.emit(ALU64 | MOV | K, 0, 0, 0, RAN);
        self.emit(JMP | EXIT, 0, 0, 0, 0);
    }

    /// `acc = acc * MIX ^ reg`: a bijection of each input, so that any one difference shows.
    fn mix(&mut self, acc: u8, reg: u8) {
        self.emit(ALU64 | MUL | K, acc, 0, 0, MIX);
        self.emit(ALU64 | XOR | X, acc, reg, 0, 0);
    }

    /// The written stack bytes as the fewest aligned loads: `(offset from r10, size)`.
    fn written_stack(&self) -> Vec<(i32, i32)> {
        let mut out = Vec::new();
        for slot in 0..64 {
            let start = slot * 8 - STACK;
            pieces(&self.state, start, 8, &mut out);
        }
        out
    }

    // ---- The body ------------------------------------------------------------------------

    /// Fills exactly `budget` slots.
    pub(super) fn block(&mut self, budget: usize) {
        let end = self.insns.len() + budget;
        while self.insns.len() < end {
            let room = end - self.insns.len();
            let before = self.insns.len();
            self.item(room);
            if self.insns.len() == before {
                let reg = self.define();
                self.constant_one_slot(reg);
            }
        }
    }

    fn constant_one_slot(&mut self, reg: u8) {
        let imm = self.rng.imm32();
        self.emit(ALU64 | MOV | K, reg, 0, 0, imm);
        self.set(reg, Kind::Scalar);
    }

    fn item(&mut self, room: usize) {
        const ITEMS: [Item; 11] = [
            Item::Alu,
            Item::Swap,
            Item::Movsx,
            Item::Lddw,
            Item::Load,
            Item::Store,
            Item::Atomic,
            Item::If,
            Item::IfElse,
            Item::Loop,
            Item::Relocate,
        ];
        let weights = ITEMS.map(|item| self.weight(item, room));
        match ITEMS[self.rng.weighted(&weights)] {
            Item::Alu => self.alu(room),
            Item::Swap => self.swap(),
            Item::Movsx => self.movsx(),
            Item::Lddw => {
                let reg = self.define();
                let value = self.rng.imm64();
                self.lddw(reg, value);
                self.set(reg, Kind::Scalar);
            }
            Item::Load => self.load(),
            Item::Store => self.store(),
            Item::Atomic => self.atomic(),
            Item::If => self.if_then(room),
            Item::IfElse => self.if_else(room),
            Item::Loop => self.bounded_loop(room),
            Item::Relocate => self.relocate(),
        }
    }

    fn weight(&self, item: Item, room: usize) -> u32 {
        let jumps = !self.in_loop && self.depth < MAX_DEPTH && self.branches < MAX_BRANCHES;
        let ok = match item {
            Item::Alu | Item::Swap | Item::Load | Item::Store | Item::Atomic => true,
            Item::Movsx => self.v4,
            Item::Lddw => room >= 2,
            Item::If => jumps && room >= 2,
            Item::IfElse => jumps && room >= 3,
            Item::Loop => self.loops && !self.in_loop && room >= 4,
            Item::Relocate => self.depth == 0 && !self.in_loop,
        };
        if !ok {
            return 0;
        }
        match item {
            Item::Alu => 30,
            Item::Load | Item::Store => 10,
            Item::Atomic | Item::If => 6,
            Item::Swap | Item::Lddw | Item::IfElse => 4,
            Item::Movsx | Item::Loop => 2,
            Item::Relocate => 1,
        }
    }

    // ---- ALU -----------------------------------------------------------------------------

    fn alu(&mut self, room: usize) {
        let class = if self.rng.chance(1, 2) { ALU } else { ALU64 };
        let choices = if self.v4 { 15 } else { 13 };
        let choice = self.rng.below(choices) as usize;
        // sdiv and smod are div and mod with offset 1.
        let (op, signed) = match ALU_OPS.get(choice) {
            Some(&(_, op)) => (op, false),
            None if choice == 13 => (DIV, true),
            None => (MOD, true),
        };
        if op == MOV || self.writable() == 0 {
            let dst = self.define();
            return self.mov(class, dst);
        }
        let dst = self.pick(self.writable()).unwrap_or(0);
        let x = op != NEG && self.rng.chance(1, 2);
        match op {
            NEG => self.emit(class | NEG | K, dst, 0, 0, 0),
            LSH | RSH | ARSH => self.shift(class, op, dst, x && room >= 2),
            DIV | MOD if !x => {
                let imm = self.rng.nonzero_imm32();
                self.emit(class | op | K, dst, 0, i16::from(signed), imm);
            }
            _ if x => {
                let src = self.scalar();
                self.emit(class | op | X, dst, src, i16::from(signed), 0);
            }
            _ => {
                let imm = self.rng.imm32();
                self.emit(class | op | K, dst, 0, 0, imm);
            }
        }
    }

    fn mov(&mut self, class: u8, dst: u8) {
        if self.rng.chance(1, 2) {
            let src = self.scalar();
            self.emit(class | MOV | X, dst, src, 0, 0);
        } else {
            let imm = self.rng.imm32();
            self.emit(class | MOV | K, dst, 0, 0, imm);
        }
        self.set(dst, Kind::Scalar);
    }

    /// A shift by an amount below the width: an immediate, or a register masked first, so
    /// that the result is defined the same on every machine.
    fn shift(&mut self, class: u8, op: u8, dst: u8, by_register: bool) {
        let width: u64 = if class == ALU { 32 } else { 64 };
        let src = self.pick(self.writable());
        match src {
            Some(src) if by_register => {
                self.emit(class | AND | K, src, 0, 0, (width - 1) as i32);
                self.emit(class | op | X, dst, src, 0, 0);
            }
            _ => {
                let amount = match self.rng.below(4) {
                    0 => 0,
                    1 => width - 1,
                    _ => self.rng.below(width),
                };
                self.emit(class | op | K, dst, 0, 0, amount as i32);
            }
        }
    }

    /// A byte swap: `le`/`be` (ALU), or `bswap` (ALU64, ISA v4).
    fn swap(&mut self) {
        let Some(dst) = self.pick(self.writable()) else {
            return;
        };
        let width = [16, 32, 64][self.rng.below(3) as usize];
        let code = if self.v4 && self.rng.chance(1, 3) {
            ALU64 | END | K
        } else if self.rng.chance(1, 2) {
            ALU | END | TO_BE
        } else {
            ALU | END
        };
        self.emit(code, dst, 0, 0, width);
    }

    /// A sign-extending move (ISA v4): from 8 or 16 bits in ALU, and 32 in ALU64.
    fn movsx(&mut self) {
        let class = if self.rng.chance(1, 2) { ALU } else { ALU64 };
        let widths: &[i16] = if class == ALU { &[8, 16] } else { &[8, 16, 32] };
        let from = self.rng.choose(widths).unwrap_or(8);
        let src = self.scalar();
        let dst = self.define();
        self.emit(class | MOV | X, dst, src, from, 0);
        self.set(dst, Kind::Scalar);
    }

    /// Moves a copy of the map value pointer into another register (outside blocks only, so
    /// that every path keeps the pointer where the others do), keeping two scalars at least.
    fn relocate(&mut self) {
        let from = self.ptr();
        let mut to = self.definable() & !self.ptrs();
        if self.scalars().count_ones() <= 2 {
            to &= !self.scalars();
        }
        let Some(to) = self.pick(to) else {
            return;
        };
        self.emit(ALU64 | MOV | X, to, from, 0, 0);
        self.set(to, Kind::Ptr);
    }

    // ---- Memory --------------------------------------------------------------------------

    fn load(&mut self) {
        let size = self.size();
        let signed = self.v4 && size != 8 && self.rng.chance(1, 3);
        let place = self.readable_place(size);
        let dst = self.define();
        let mode = if signed { MEMSX } else { MEM };
        self.emit(LDX | mode | size_code(size), dst, place.base, place.off, 0);
        self.set(dst, Kind::Scalar);
    }

    fn store(&mut self) {
        let size = self.size();
        let place = self.writable_place(size);
        if self.rng.chance(1, 2) {
            let imm = self.rng.imm32();
            self.emit(ST | MEM | size_code(size), place.base, 0, place.off, imm);
        } else {
            let src = self.scalar();
            self.emit(STX | MEM | size_code(size), place.base, src, place.off, 0);
        }
        self.wrote(place, size);
    }

    /// An atomic operation on written memory. Fetching forms write `src`, `cmpxchg` reads and
    /// writes r0: those registers must be scalars that may change.
    fn atomic(&mut self) {
        let size = if self.rng.chance(1, 2) { 4 } else { 8 };
        let mut op = match self.rng.below(10) {
            n @ 0..=7 => ATOMIC_OPS[(n / 2) as usize].1 | if n % 2 == 1 { FETCH } else { 0 },
            8 => XCHG,
            _ => CMPXCHG,
        };
        if op == CMPXCHG && self.writable() & 1 == 0 {
            op = XCHG;
        }
        let writes_src = op & FETCH != 0 && op != CMPXCHG;
        let src = if writes_src {
            self.pick(self.writable())
        } else {
            self.pick(self.scalars())
        };
        let Some(src) = src else {
            return;
        };
        let place = if self.arms == 0 {
            self.readable_place(size)
        } else {
            self.map_place(size)
        };
        self.emit(
            STX | ATOMIC | size_code(size),
            place.base,
            src,
            place.off,
            op,
        );
        self.wrote(place, size);
    }

    fn size(&mut self) -> i32 {
        [1, 2, 4, 8][self.rng.below(4) as usize]
    }

    fn wrote(&mut self, place: Place, size: i32) {
        if place.base == 10 {
            self.state.write_stack(i32::from(place.off), size);
        } else if let Some(chunk) = self.touched.get_mut(place.off as usize / 8) {
            *chunk = true;
        }
    }

    /// Written memory of `size` bytes: on the stack where some is, else in the map value
    /// (always written: the harness fills it).
    fn readable_place(&mut self, size: i32) -> Place {
        if self.rng.chance(1, 2) {
            let mut spots = Vec::new();
            pieces_of(&self.state, size, &mut spots);
            if let Some(off) = self.rng.choose(&spots) {
                return Place {
                    base: 10,
                    off: off as i16,
                };
            }
        }
        self.map_place(size)
    }

    fn writable_place(&mut self, size: i32) -> Place {
        if self.arms > 0 || self.rng.chance(1, 2) {
            return self.map_place(size);
        }
        let slots = STACK / size;
        let off = match self.rng.below(8) {
            0..=3 => -size * self.rng.range(1, (64 / size) as u64) as i32,
            4 => self
                .rng
                .choose(&[-512, -256, -264, -128, -136, -120, -8, -size])
                .unwrap_or(-8),
            _ => -size * self.rng.range(1, slots as u64) as i32,
        };
        Place {
            base: 10,
            off: off as i16,
        }
    }

    /// An aligned offset into the map value, biased to the start, to the boundaries of
    /// offset encodings and to the end.
    fn map_place(&mut self, size: i32) -> Place {
        let base = self.ptr();
        let last = self.value_size as i32 - size;
        // Mostly near the start, so that a program's accesses meet and the fold stays short.
        let off = match self.rng.below(8) {
            0..=2 => size * self.rng.range(0, (last.min(64) / size) as u64) as i32,
            4 | 5 => size * self.rng.range(0, (last.min(512) / size) as u64) as i32,
            3 => {
                let edges = [0, 120, 128, 248, 256, 2040, 2048, 4088, 4096, last];
                let fit: Vec<i32> = edges.into_iter().filter(|&e| e <= last).collect();
                self.rng.choose(&fit).unwrap_or(0)
            }
            _ => size * self.rng.range(0, (last / size) as u64) as i32,
        };
        Place {
            base,
            off: off as i16,
        }
    }

    // ---- Control flow --------------------------------------------------------------------

    /// `if (cond) skip a block`: the block runs only when the condition is false.
    fn if_then(&mut self, room: usize) {
        let at = self.condition();
        let max = room - 2;
        let (distance, fill) = self.distance(max, false);
        let saved = self.state.clone();
        self.nested(distance, fill);
        self.land(at);
        self.state = self.state.meet(&saved);
    }

    /// `if (cond) else-block else then-block`, the then-block ending in a jump over the
    /// other: `ja` or, with ISA v4, sometimes `ja32`, which alone reaches past 32767 slots.
    fn if_else(&mut self, room: usize) {
        let at = self.condition();
        let left = room - 3;
        // The condition jumps over the then-block and its `ja`: 16 bits must hold both.
        let (then_len, then_fill) = self.distance(left.min(i16::MAX as usize - 1), false);
        let saved = self.state.clone();
        self.nested(then_len, then_fill);
        let (else_len, else_fill) = self.distance(left - then_len, self.v4);
        let long = else_len > i16::MAX as usize || (self.v4 && self.rng.chance(1, 4));
        let jump = self.insns.len();
        if long {
            self.emit(JMP32 | JA, 0, 0, 0, 0);
        } else {
            self.emit(JMP | JA, 0, 0, 0, 0);
        }
        self.land(at);
        let then_state = std::mem::replace(&mut self.state, saved);
        self.nested(else_len, else_fill);
        self.land(jump);
        self.state = self.state.meet(&then_state);
    }

    fn nested(&mut self, len: usize, fill: Fill) {
        self.depth += 1;
        self.arms += 1;
        match fill {
            Fill::Code => self.block(len),
            Fill::Padding => self.padding(len),
        }
        self.arms -= 1;
        self.depth -= 1;
    }

    /// Points the jump at `at` to the next instruction.
    fn land(&mut self, at: usize) {
        let distance = self.insns.len() as i64 - (at as i64 + 1);
        if let Some(jump) = self.insns.get_mut(at) {
            if jump.code == JMP32 | JA {
                jump.imm = i32::try_from(distance).unwrap_or(i32::MAX);
            } else {
                jump.off = i16::try_from(distance).unwrap_or(i16::MAX);
            }
        }
    }

    /// Emits a conditional jump (its offset set later by [`Gen::land`]) on a value just
    /// loaded from the map, whole for a 64-bit compare: the verifier cannot tell which way it
    /// goes, so it keeps both arms (and the JIT sees the jump), and it marks no register
    /// precise, which would keep it from pruning the second path at the join. Takes 2 slots;
    /// returns the jump's.
    fn condition(&mut self) -> usize {
        self.branches += 1;
        let class = if self.rng.chance(1, 2) { JMP } else { JMP32 };
        let size = if class == JMP32 && self.rng.chance(1, 2) {
            4
        } else {
            8
        };
        let place = self.map_place(size);
        let dst = self.define();
        self.emit(LDX | MEM | size_code(size), dst, place.base, place.off, 0);
        self.set(dst, Kind::Scalar);
        let op = self.rng.choose(&JMP_OPS).map_or(JEQ, |(_, op)| op);
        let at = self.insns.len();
        if self.rng.chance(1, 2) {
            let src = self.scalar();
            self.emit(class | op | X, dst, src, 0, 0);
        } else {
            let imm = self.rng.imm32();
            self.emit(class | op | K, dst, 0, 0, imm);
        }
        at
    }

    /// The length of a skipped block, at most `max`, biased to each bucket's edges: 0, short
    /// (to 127: a JIT's 8-bit branch), long (to 32767, the 16-bit offset's limit), and with
    /// `far` past it (`ja32` only).
    fn distance(&mut self, max: usize, far: bool) -> (usize, Fill) {
        let weights = [
            1,
            if max >= 1 { 12 } else { 0 },
            if max >= 128 { 3 } else { 0 },
            if max >= 128 { 1 } else { 0 },
            if far && max > 32767 { 4 } else { 0 },
        ];
        let edge = self.rng.chance(1, 4);
        match self.rng.weighted(&weights) {
            0 => (0, Fill::Code),
            1 => (self.length(1, max.min(127), edge), Fill::Code),
            2 => (self.length(128, max.min(MAX_CODE_JUMP), edge), Fill::Code),
            3 => (self.length(128, max.min(32767), edge), Fill::Padding),
            _ => (self.length(32768, max, edge), Fill::Padding),
        }
    }

    /// A length in `lo..=hi`: an end of the range when `edge`, else log-uniform.
    fn length(&mut self, lo: usize, hi: usize, edge: bool) -> usize {
        match (edge, self.rng.chance(1, 2)) {
            (true, true) => lo,
            (true, false) => hi,
            _ => self.rng.log_uniform(lo, hi),
        }
    }

    /// Register-to-register ALU64 operations on scalars.
    fn padding(&mut self, len: usize) {
        const OPS: [u8; 7] = [ADD, SUB, MUL, OR, AND, XOR, MOV];
        for _ in 0..len {
            let dst = self.pick(self.writable()).unwrap_or(0);
            let src = self.scalar();
            let op = self.rng.choose(&OPS).unwrap_or(ADD);
            self.emit(ALU64 | op | X, dst, src, 0, 0);
        }
    }

    /// A loop of a straight-line body run a constant number of times (1 to [`MAX_TRIPS`]),
    /// counted down in a register the body does not write.
    fn bounded_loop(&mut self, room: usize) {
        let Some(counter) = self.pick(self.definable() & !self.ptrs()) else {
            return;
        };
        let trips = self.rng.range(1, MAX_TRIPS) as i32;
        let wide = self.rng.chance(1, 2);
        let class = if wide { ALU64 } else { ALU };
        self.emit(class | MOV | K, counter, 0, 0, trips);
        self.set(counter, Kind::Scalar);
        let body = self.rng.log_uniform(1, (room - 3).min(MAX_LOOP_BODY));
        let head = self.insns.len();
        let (locked, depth) = (self.locked, self.depth);
        self.in_loop = true;
        self.locked |= 1 << counter;
        self.depth += 1;
        // The body starts with what holds on the first trip; later trips start with more.
        self.block(body);
        self.in_loop = false;
        self.locked = locked;
        self.depth = depth;
        if self.rng.chance(1, 2) {
            self.emit(class | ADD | K, counter, 0, 0, -1);
        } else {
            self.emit(class | SUB | K, counter, 0, 0, 1);
        }
        let jumps = [JNE, JGT, JSGT];
        let op = self.rng.choose(&jumps).unwrap_or(JNE);
        let class = if self.rng.chance(1, 2) { JMP } else { JMP32 };
        let back = head as i64 - (self.insns.len() as i64 + 1);
        self.emit(class | op | K, counter, 0, back as i16, 0);
    }
}

/// The load or store size's code.
pub(super) fn size_code(size: i32) -> u8 {
    match size {
        1 => B,
        2 => H,
        4 => W,
        _ => DW,
    }
}

/// The aligned `size`-byte pieces of the stack that are written, as offsets from r10.
fn pieces_of(state: &State, size: i32, out: &mut Vec<i32>) {
    let mut off = -STACK;
    while off < 0 {
        if state.stack_written(off, size) {
            out.push(off);
        }
        off += size;
    }
}

/// Splits the written bytes of `[start, start + size)` into the largest aligned loads.
fn pieces(state: &State, start: i32, size: i32, out: &mut Vec<(i32, i32)>) {
    if state.stack_written(start, size) {
        out.push((start, size));
    } else if size > 1 {
        pieces(state, start, size / 2, out);
        pieces(state, start + size / 2, size / 2, out);
    }
}
