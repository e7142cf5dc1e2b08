//! The generator's random source: ChaCha8 words, turned into choices and edge-biased values
//! by integer arithmetic only.
//!
//! Nothing here uses `rand`'s distributions or floating point: their algorithms and rounding
//! may differ between versions and machines, and a seed must give the same programs
//! everywhere. ChaCha8's output is fixed by its definition.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// Values a JIT may treat specially: each boundary of an immediate encoding (fits in i8, in
/// the 12 bits of RISC-V/LoongArch/MIPS-style forms, i16, u16, i32, u32) and of the types.
/// [`Rand::imm64`] also takes their neighbours.
const BOUNDARIES: [i64; 14] = [
    0,
    -128,
    127,
    -2048,
    2047,
    -32768,
    32767,
    65535,
    i32::MIN as i64,
    i32::MAX as i64,
    u32::MAX as i64,
    i64::MIN,
    i64::MAX,
    // Bit patterns whose halves differ in sign: a sign-extension slip shows.
    0x8000_0000_7fff_ffff_u64 as i64,
];

pub(crate) struct Rand(ChaCha8Rng);

impl Rand {
    /// Program `index` of `seed`: the seed is the key, the index the stream, so that programs
    /// are independent of each other and a batch can be split anywhere.
    pub(crate) fn new(seed: u64, index: u64) -> Rand {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        // A fixed tag in the rest of the key: another user of the same seed gets other words.
        key[8..24].copy_from_slice(b"bpf-jit-fuzz-gen");
        let mut rng = ChaCha8Rng::from_seed(key);
        rng.set_stream(index);
        Rand(rng)
    }

    pub(crate) fn u64(&mut self) -> u64 {
        self.0.next_u64()
    }

    /// A number in `0..n` (0 when `n` is 0), by the widening multiply: the bias is below
    /// 2^-32 for every `n` used here, and the mapping never changes.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi` (`lo` when `hi < lo`).
    pub(crate) fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    pub(crate) fn usize_in(&mut self, lo: usize, hi: usize) -> usize {
        self.range(lo as u64, hi as u64) as usize
    }

    /// True `num` times in `den`.
    pub(crate) fn chance(&mut self, num: u64, den: u64) -> bool {
        self.below(den) < num
    }

    /// One of `items`, or `None` when there are none.
    pub(crate) fn choose<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        items.get(self.below(items.len() as u64) as usize).copied()
    }

    /// An index into `weights`, each drawn in proportion to its weight.
    pub(crate) fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut point = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if point < u64::from(w) {
                return i;
            }
            point -= u64::from(w);
        }
        0
    }

    /// A length in `lo..=hi`, log-uniform (each power of two as likely as the next), so that a
    /// range from a handful to thousands gives both often.
    pub(crate) fn log_uniform(&mut self, lo: usize, hi: usize) -> usize {
        let (lo, hi) = (lo.max(1), hi.max(lo.max(1)));
        let bits_lo = usize::BITS - lo.leading_zeros();
        let bits_hi = usize::BITS - hi.leading_zeros();
        let bits = self.range(u64::from(bits_lo), u64::from(bits_hi)) as u32;
        let floor = (1usize << (bits - 1)).max(lo);
        let ceil = ((1usize << (bits - 1)) * 2 - 1).min(hi);
        self.usize_in(floor, ceil)
    }

    /// A 64-bit value biased to the edges: small numbers, powers of two and their
    /// neighbours, every encoding boundary and its neighbours, byte patterns, and random.
    pub(crate) fn imm64(&mut self) -> i64 {
        match self.below(8) {
            0 => self.range(0, 32) as i64 - 16,
            1 => self.power_of_two(63),
            2 | 3 => self.boundary(),
            4 => self.u64() as u32 as i32 as i64,
            5 => self.u64() as u32 as i64,
            6 => self.pattern(),
            _ => self.u64() as i64,
        }
    }

    /// A 32-bit value biased the same way, for the immediate field.
    pub(crate) fn imm32(&mut self) -> i32 {
        match self.below(6) {
            0 => self.range(0, 32) as i32 - 16,
            1 => self.power_of_two(31) as i32,
            2 | 3 => self.boundary() as i32,
            4 => self.pattern() as i32,
            _ => self.u64() as i32,
        }
    }

    /// A nonzero 32-bit value: a divisor by immediate (the verifier refuses a constant 0).
    pub(crate) fn nonzero_imm32(&mut self) -> i32 {
        match self.imm32() {
            0 => {
                if self.chance(1, 2) {
                    1
                } else {
                    -1
                }
            }
            v => v,
        }
    }

    /// `±2^k + {-1, 0, 1}` for `k` up to `max_shift`.
    fn power_of_two(&mut self, max_shift: u64) -> i64 {
        let p = 1i64.wrapping_shl(self.range(0, max_shift) as u32);
        let v = p.wrapping_add(self.range(0, 2) as i64 - 1);
        if self.chance(1, 4) {
            v.wrapping_neg()
        } else {
            v
        }
    }

    /// A boundary of [`BOUNDARIES`], or one of its neighbours.
    fn boundary(&mut self) -> i64 {
        let b = self.choose(&BOUNDARIES).unwrap_or(0);
        b.wrapping_add(self.range(0, 2) as i64 - 1)
    }

    /// A byte repeated (0x8080...), or alternating bytes (0x00ff00ff...).
    fn pattern(&mut self) -> i64 {
        let byte = u64::from(self.u64() as u8);
        let repeated = byte * 0x0101_0101_0101_0101;
        if self.chance(1, 2) {
            repeated as i64
        } else {
            (repeated & 0x00ff_00ff_00ff_00ff) as i64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn streams_are_fixed_and_independent() {
        // ChaCha8 with our key layout: these words pin the stream across versions and machines.
        let words = |seed, index| {
            let mut r = Rand::new(seed, index);
            [r.u64(), r.u64()]
        };
        assert_eq!(words(0, 0), [0xa443_45a4_d157_8db4, 0xf6f6_2e93_9339_a44c]);
        assert_eq!(words(5, 9), [0xc372_fc8e_e434_7700, 0x2d75_7fd9_fa57_0025]);
        assert_ne!(words(0, 0), words(0, 1));
        assert_ne!(words(0, 0), words(1, 0));
    }

    #[test]
    fn ranges_hold() {
        let mut r = Rand::new(7, 0);
        for _ in 0..10_000 {
            let n = r.log_uniform(3, 5000);
            assert!((3..=5000).contains(&n));
            assert!(r.below(10) < 10);
            assert_ne!(r.nonzero_imm32(), 0);
            let v = r.range(5, 9);
            assert!((5..=9).contains(&v));
        }
        assert_eq!(r.range(4, 4), 4);
        assert_eq!(r.choose::<u8>(&[]), None);
    }
}
