use sha2::{Digest, Sha256};

use super::*;
use crate::bpf::insn::{disassemble, EXIT, JMP, LD, PSEUDO_MAP_FD};

fn config(seed: u64) -> Config {
    Config {
        seed,
        ..Config::default()
    }
}

fn v4(seed: u64) -> Config {
    Config {
        seed,
        isa_v4: true,
        ..Config::default()
    }
}

/// The first 16 hex digits of the SHA-256 of the encoded instructions (`struct bpf_insn`,
/// little-endian) and of the values map's initial value.
fn fingerprint(g: &Generated) -> String {
    let mut hash = Sha256::new();
    for insn in &g.insns {
        hash.update([insn.code, insn.dst | insn.src << 4]);
        hash.update(insn.off.to_le_bytes());
        hash.update(insn.imm.to_le_bytes());
    }
    for map in &g.maps {
        for (key, value) in &map.init {
            hash.update(key);
            hash.update(value);
        }
    }
    let digest = hash.finalize();
    digest[..8].iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn seeds_give_the_same_programs_everywhere() {
    let got: Vec<(u64, u64, bool, usize, String)> = [(0, 0, false), (0, 1, false), (1, 0, true)]
        .into_iter()
        .chain([(u64::MAX, 7, true)])
        .map(|(seed, index, isa_v4)| {
            let c = Config {
                isa_v4,
                ..config(seed)
            };
            let g = generate(&c, index);
            (seed, index, isa_v4, g.insns.len(), fingerprint(&g))
        })
        .collect();
    let want: Vec<(u64, u64, bool, usize, String)> = GOLDEN
        .iter()
        .map(|&(s, i, v, n, h)| (s, i, v, n, h.to_owned()))
        .collect();
    assert_eq!(got, want);
}

const GOLDEN: [(u64, u64, bool, usize, &str); 4] = [
    (0, 0, false, 1556, "b30c1f9c7c7cdb72"),
    (0, 1, false, 2491, "33ae90a96b7d6335"),
    (1, 0, true, 1610, "d43fb26e84e19a04"),
    (u64::MAX, 7, true, 81, "56116c9fde3c2b7f"),
];

/// A loop, an if-else with an empty else (`ja +0`), the fold and the store of the result.
#[test]
fn a_small_program_reads_as_pinned() {
    let c = Config {
        seed: 76,
        len: 12..=12,
        isa_v4: true,
        loops: true,
        value_size: 64,
    };
    let text = disassemble(&generate(&c, 0).insns);
    assert_eq!(format!("\n{text}"), SMALL, "{text}");
}

const SMALL: &str = "
   0: stw [r10-4], 0
   1: lddw r1, map_by_fd(1)
   3: mov r2, r10
   4: add r2, -4
   5: call map_lookup_elem
   6: jne r0, 0, +2
   7: mov r0, 0
   8: exit
   9: mov r1, 4194305
  10: mov r2, -15
  11: lddw r3, 0xffffffff98988876
  13: mov r5, 235802126
  14: lddw r6, 0xefc7e28fb0563609
  16: lddw r8, 0xfffffffffb9e69db
  18: le16 r3
  19: mov r6, 4
  20: neg r5
  21: sub r6, 1
  22: jgt32 r6, 0, -3
  23: ldxdw r5, [r0+0]
  24: jle r5, 14, +5
  25: or r2, r2
  26: smod r8, r5
  27: div r3, r3
  28: add r3, 32767
  29: ja +0
  30: mul r1, 1540483477
  31: xor r1, r2
  32: mul r1, 1540483477
  33: xor r1, r3
  34: mul r1, 1540483477
  35: xor r1, r5
  36: mul r1, 1540483477
  37: xor r1, r6
  38: mul r1, 1540483477
  39: xor r1, r8
  40: ldxw r2, [r10-4]
  41: mul r1, 1540483477
  42: xor r1, r2
  43: mov r6, r1
  44: stw [r10-4], 0
  45: lddw r1, map_by_fd(0)
  47: mov r2, r10
  48: add r2, -4
  49: call map_lookup_elem
  50: jeq r0, 0, +1
  51: stxdw [r0+0], r6
  52: mov r0, 2
  53: exit
";

#[test]
fn indices_are_independent_and_distinct() {
    let c = config(9);
    let forward: Vec<Generated> = (0..20).map(|i| generate(&c, i)).collect();
    for i in (0..20).rev() {
        assert_eq!(generate(&c, i), forward[i as usize]);
    }
    let mut prints: Vec<String> = forward.iter().map(fingerprint).collect();
    prints.sort();
    prints.dedup();
    assert_eq!(prints.len(), 20);
}

/// Both self-checks pass.
fn sound(g: &Generated) {
    let sizes: Vec<u32> = g.maps.iter().map(|m| m.value_size).collect();
    if let Err(e) = check(&g.insns).and_then(|()| check_types(&g.insns, &sizes)) {
        panic!("program {}: {e}\n{}", g.index, disassemble(&g.insns));
    }
}

#[test]
fn every_program_is_structurally_sound() {
    for (isa_v4, loops) in [(false, false), (false, true), (true, true)] {
        for seed in 0..300 {
            let c = Config {
                seed,
                isa_v4,
                loops,
                len: 1..=3000,
                value_size: [8, 64, 4096, 32768][seed as usize % 4],
            };
            let g = generate(&c, seed * 3);
            sound(&g);
            assert!(isa_v4 || !g.needs_isa_v4, "seed {seed}");
            assert!(loops || !g.has_loops, "seed {seed}");
        }
    }
}

#[test]
fn programs_keep_the_contract() {
    for seed in 0..200 {
        let g = generate(&v4(seed), 0);
        let n = g.insns.len();
        assert_eq!(g.insns[n - 1], Insn::new(JMP | EXIT, 0, 0, 0, 0));
        assert_eq!(g.insns[n - 2].imm, RAN);
        for (at, insn) in g.insns.iter().enumerate() {
            if insn.is_lddw() && insn.src == PSEUDO_MAP_FD {
                assert!(matches!(insn.imm as usize, RESULT_MAP | VALUES_MAP), "{at}");
            } else if insn.class() == LD {
                assert!(insn.is_lddw() || at > 0 && g.insns[at - 1].is_lddw());
            }
        }
        assert_eq!(g.maps[RESULT_MAP].name, "result");
        assert_eq!(g.maps[RESULT_MAP].value_size, 8);
        assert_eq!(g.maps[VALUES_MAP].value_size, 4096);
        assert_eq!(g.maps[VALUES_MAP].init[0].1.len(), 4096);
    }
}

#[test]
fn lengths_span_the_range() {
    let c = Config {
        len: 4..=4096,
        ..config(3)
    };
    let lens: Vec<usize> = (0..300).map(|i| generate(&c, i).insns.len()).collect();
    assert!(lens.iter().any(|&n| n < 64), "{lens:?}");
    assert!(lens.iter().any(|&n| n > 2048), "{lens:?}");
}

#[test]
fn two_thousand_programs_reach_every_claimed_operation() {
    let mut coverage = Coverage::default();
    for seed in 0..2000 {
        let c = Config {
            len: 1..=1000,
            ..v4(seed)
        };
        let g = generate(&c, 0);
        sound(&g);
        coverage.add(&g.insns);
    }
    let missing: Vec<String> = coverage
        .missing(&claimed(true))
        .into_iter()
        .map(OpKey::name)
        .collect();
    assert!(
        missing.is_empty(),
        "never generated: {missing:?}\n{coverage}"
    );
    for bucket in [
        JumpBucket::Backward,
        JumpBucket::Zero,
        JumpBucket::Short,
        JumpBucket::Long,
    ] {
        assert!(coverage.jumps.contains_key(&bucket), "{coverage}");
    }
    for class in ImmClass::ALL {
        assert!(coverage.imms.contains_key(&class), "{coverage}");
    }
    for class in [ImmClass::Zero, ImmClass::I8, ImmClass::I12, ImmClass::I16] {
        assert!(coverage.offsets.contains_key(&class), "{coverage}");
    }
}

#[test]
fn long_programs_jump_past_a_16_bit_offset_with_isa_v4() {
    let c = Config {
        len: 34_000..=40_000,
        ..v4(5)
    };
    let mut coverage = Coverage::default();
    for index in 0..8 {
        let g = generate(&c, index);
        sound(&g);
        coverage.add(&g.insns);
    }
    assert!(coverage.jumps.contains_key(&JumpBucket::Far), "{coverage}");
    // Without v4 no jump can, and none does.
    let classic = Config { isa_v4: false, ..c };
    let mut coverage = Coverage::default();
    coverage.add(&generate(&classic, 0).insns);
    assert!(!coverage.jumps.contains_key(&JumpBucket::Far));
}

#[test]
fn the_coverage_table_names_operations() {
    let mut coverage = Coverage::default();
    coverage.add(&generate(&v4(1), 0).insns);
    let table = coverage.to_string();
    for row in [
        "alu64 sdiv X",
        "jmp32 jsle K",
        "lock fetch add32",
        "ldxsh",
        "> 32767",
    ] {
        assert!(table.contains(row), "{row}\n{table}");
    }
}

/// The host reference runs what the generator makes: on both byte orders, nearly every
/// program gives a value (a refusal is a bug of one of the two, named here).
#[test]
fn the_reference_runs_generated_programs() {
    use crate::arch::Endian;
    let config = Config {
        seed: 7,
        len: 4..=300,
        isa_v4: true,
        ..Config::default()
    };
    let mut refused = Vec::new();
    for index in 0..300 {
        let g = generate(&config, index);
        for endian in [Endian::Little, Endian::Big] {
            if let Err(e) = reference(&g.insns, &g.maps, endian) {
                refused.push(format!("{index} {endian:?}: {e}"));
            }
        }
    }
    assert!(refused.is_empty(), "{}", refused.join("\n"));
}

/// A program turned into bpf_conformance's convention gives the reference the same value.
#[test]
fn the_conformance_form_computes_the_same_value() {
    use crate::arch::Endian;
    let config = Config {
        seed: 3,
        len: 4..=200,
        ..Config::default()
    };
    for index in 0..100 {
        let g = generate(&config, index);
        let want = reference(&g.insns, &g.maps, Endian::Little).unwrap();
        let (insns, mem) = as_conformance(&g.insns, &g.maps);
        assert!(insns.len() < g.insns.len(), "{index}");
        assert_eq!(
            reference_conformance(&insns, &mem, Endian::Little),
            Some(want),
            "{index}: {}",
            crate::bpf::insn::to_asm(&insns)
        );
    }
}

/// The conformance form keeps nothing of the lookups: no key on the stack, no r2, no null
/// check, when the program does not read them otherwise.
#[test]
fn the_conformance_form_drops_what_served_the_lookups() {
    let config = Config {
        seed: 3,
        len: 4..=40,
        ..Config::default()
    };
    let mut lean = 0;
    for index in 0..50 {
        let g = generate(&config, index);
        let (insns, _) = as_conformance(&g.insns, &g.maps);
        let text = crate::bpf::insn::to_asm(&insns);
        if !text.contains("mov r2, r10") && !text.contains("call") {
            lean += 1;
        }
        assert!(!text.contains("call"), "{index}: {text}");
    }
    assert!(lean >= 25, "only {lean} of 50 lost their lookups' setup");
}

/// A reproducer keeps the memory its program reads, and no more.
#[test]
fn the_shortest_memory_is_what_the_program_reads() {
    use crate::arch::Endian;
    let insn = |code, dst, src, off| Insn {
        code,
        dst,
        src,
        off,
        imm: 0,
    };
    // ldxdw r0, [r1+8]; exit
    let reads = [insn(0x79, 0, 1, 8), insn(0x95, 0, 0, 0)];
    let mem: Vec<u8> = (0..64).collect();
    assert_eq!(shortest_memory(&reads, &mem, Endian::Little), mem[..16]);
    // mov r0, 7; exit: no memory at all.
    let ignores = [
        Insn {
            imm: 7,
            ..insn(0xb7, 0, 0, 0)
        },
        insn(0x95, 0, 0, 0),
    ];
    assert!(shortest_memory(&ignores, &mem, Endian::Little).is_empty());
}

/// The form with the lookups kept differs from the program only at its end: the folded value
/// is returned instead of stored.
#[test]
fn the_lookups_form_returns_the_folded_value() {
    let config = Config {
        seed: 5,
        len: 4..=60,
        ..Config::default()
    };
    for index in 0..20 {
        let g = generate(&config, index);
        let (insns, mem) = with_lookups(&g.insns, &g.maps);
        assert_eq!(insns.len(), g.insns.len() - 1, "{index}");
        assert_eq!(
            insns[..insns.len() - 3],
            g.insns[..insns.len() - 3],
            "{index}"
        );
        let text = crate::bpf::insn::to_asm(&insns[insns.len() - 2..]);
        assert!(
            text.starts_with("mov r0, r") && text.ends_with("exit\n"),
            "{index}: {text}"
        );
        assert_eq!(mem, g.maps[VALUES_MAP].init[0].1, "{index}");
    }
}
