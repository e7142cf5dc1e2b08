//! The `align` family: alignment tracking under `BPF_F_STRICT_ALIGNMENT`.
//!
//! A row names a pointer kind (a packet, a map value, the stack) and, for a variable offset,
//! the masks an input byte is `and`ed with before it is added to the pointer (so its low bits
//! are known zeros). For every access size and every constant offset 0..=7, the generator
//! makes one program loading from there. It must be accepted exactly when every address it may
//! reach is a multiple of the size: the verifier assumes a packet starts 2 bytes past an
//! aligned address (NET_IP_ALIGN), a map value and the stack at one. An accepted program runs
//! with the largest variable offset and returns the bytes it read, in big-endian order so that
//! every arch gives the same number.

use std::fmt::Write as _;
use std::path::Path;

use serde::Deserialize;

use super::{lookups, maps, pattern, pick, row_lines, Generated, Table, Verdict, RAN};
use crate::bpf::asm;
use crate::cases::{from_yaml, Case, CaseError, F_STRICT_ALIGNMENT};

/// The offset of a packet's start from an aligned address that the verifier assumes whatever
/// the arch's NET_IP_ALIGN (check_pkt_ptr_alignment's `ip_align`).
pub const PACKET_IP_ALIGN: u64 = 2;

/// The bytes of the frame, of the map value, and of the stack copy of it the loads reach.
const REGION: usize = 80;

/// Where the stack copy of the map value starts: below the map key at fp-4, 8-aligned.
const STACK_BASE: i16 = -96;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pointer {
    Packet,
    Map,
    Stack,
}

impl Pointer {
    pub const ALL: [Pointer; 3] = [Pointer::Packet, Pointer::Map, Pointer::Stack];

    pub fn name(self) -> &'static str {
        match self {
            Pointer::Packet => "packet",
            Pointer::Map => "map",
            Pointer::Stack => "stack",
        }
    }

    /// The address of the pointer's offset 0, modulo 8, as the verifier reckons it.
    fn base(self) -> u64 {
        match self {
            Pointer::Packet => PACKET_IP_ALIGN,
            Pointer::Map | Pointer::Stack => 0,
        }
    }

    /// check_ptr_alignment's name for the pointer, in "misaligned %saccess".
    fn rejected(self) -> &'static str {
        match self {
            Pointer::Packet => "misaligned packet access",
            Pointer::Map => "misaligned value access",
            Pointer::Stack => "misaligned stack access",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Size {
    B,
    H,
    W,
    Dw,
}

impl Size {
    pub const ALL: [Size; 4] = [Size::B, Size::H, Size::W, Size::Dw];

    pub fn name(self) -> &'static str {
        match self {
            Size::B => "u8",
            Size::H => "u16",
            Size::W => "u32",
            Size::Dw => "u64",
        }
    }

    pub fn bytes(self) -> u64 {
        match self {
            Size::B => 1,
            Size::H => 2,
            Size::W => 4,
            Size::Dw => 8,
        }
    }

    fn suffix(self) -> &'static str {
        match self {
            Size::B => "b",
            Size::H => "h",
            Size::W => "w",
            Size::Dw => "dw",
        }
    }
}

/// Whether a load of `size` at `pointer` + (input & `mask`) + `off` is aligned wherever it
/// lands: the constant part on a multiple of the size, and the variable part's known-zero low
/// bits at least as many as the size needs.
pub fn aligned(pointer: Pointer, size: Size, mask: Option<u8>, off: u64) -> bool {
    let n = size.bytes();
    let fixed = (pointer.base() + off).is_multiple_of(n);
    let variable = mask.is_none_or(|m| m == 0 || 1u64 << m.trailing_zeros() >= n);
    n == 1 || (fixed && variable)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Row {
    pointer: String,
    sizes: Option<Vec<String>>,
    offsets: Option<Vec<u8>>,
    masks: Option<Vec<serde_yaml::Value>>,
}

/// An `align` table's cases.
pub fn parse(path: &Path, text: &str) -> Result<Vec<Case>, CaseError> {
    let table: Table<Row> = from_yaml(path, text)?;
    let lines = row_lines(text, "pointer");
    let mut cases = Vec::new();
    for (i, row) in table.rows.iter().enumerate() {
        let at = format!("{}:{}", path.display(), lines.get(i).copied().unwrap_or(1));
        let pointer = pick(
            &Pointer::ALL,
            Pointer::name,
            &Some(vec![row.pointer.clone()]),
            "pointer",
            &at,
        )?[0];
        let sizes = pick(&Size::ALL, Size::name, &row.sizes, "size", &at)?;
        let offsets = row.offsets.clone().unwrap_or_else(|| (0..8).collect());
        if let Some(bad) = offsets.iter().find(|&&o| o > 7) {
            return Err(CaseError::invalid(
                &at,
                format!("offset {bad} is past 7: the offsets are modulo 8"),
            ));
        }
        let masks: Vec<Option<u8>> = match &row.masks {
            None => vec![None],
            Some(masks) => masks
                .iter()
                .map(|m| mask(m, &at).map(Some))
                .collect::<Result<_, _>>()?,
        };
        for &m in &masks {
            for &size in &sizes {
                for &off in &offsets {
                    cases.extend(generate(pointer, size, m, off).cases(path, &at)?);
                }
            }
        }
    }
    Ok(cases)
}

/// A mask of the table: a number whose variable offset stays inside the region.
fn mask(value: &serde_yaml::Value, at: &str) -> Result<u8, CaseError> {
    let n = match value {
        serde_yaml::Value::Number(n) => n.as_i64().map(i128::from),
        serde_yaml::Value::String(s) => asm::parse_number(s),
        _ => None,
    };
    let limit = REGION as i128 - 16;
    match n {
        Some(n) if (1..=limit).contains(&n) => Ok(n as u8),
        _ => Err(CaseError::invalid(
            at,
            format!(
                "mask `{}` is not a number from 1 to {limit:#x}: the variable offset must leave \
                 room for 8 bytes at offset 7 in the {REGION}-byte region",
                serde_yaml::to_string(value).unwrap_or_default().trim_end()
            ),
        )),
    }
}

fn generate(pointer: Pointer, size: Size, mask: Option<u8>, off: u8) -> Generated {
    let ok = aligned(pointer, size, mask, u64::from(off));
    let variable = match mask {
        Some(m) => format!("var-{m:#x}"),
        None => "fixed".to_owned(),
    };
    let name = format!("align/{}/{}/{variable}/{off}", pointer.name(), size.name());
    // The run's variable offset: the mask itself, the largest it allows.
    let var = mask.unwrap_or(0);
    let at = usize::from(var) + usize::from(off);
    let read = (at..at + size.bytes() as usize)
        .fold(0u64, |v, i| (v << 8) | u64::from(pattern(i as i128)));
    let guards = format!(
        "under BPF_F_STRICT_ALIGNMENT, a {}-byte load at {} pointer{} + {off} ({} + {off} \
         from an aligned address) is {}",
        size.bytes(),
        match pointer {
            Pointer::Packet => "a packet",
            Pointer::Map => "a map value",
            Pointer::Stack => "a stack",
        },
        match mask {
            Some(m) => format!(" + (a byte & {m:#x})"),
            None => String::new(),
        },
        pointer.base(),
        if ok {
            "aligned, accepted, and reads its bytes"
        } else {
            "misaligned and rejected"
        }
    );
    let rejected = Verdict::Rejected(vec![pointer.rejected().to_owned()]);
    let unprivileged = match (pointer, mask) {
        // A socket filter reaches no packet directly.
        (Pointer::Packet, _) => None,
        // No variable offset into the stack for !root, whatever the alignment: the pointer
        // arithmetic is refused (check_stack_access_for_ptr_arithmetic).
        (Pointer::Stack, Some(_)) => Some(Verdict::Rejected(vec![
            "variable stack access prohibited for !root".to_owned(),
        ])),
        _ if ok => Some(Verdict::Accepted),
        _ => Some(rejected.clone()),
    };
    let data: Vec<u8> = (0..REGION as i128 + 48).map(pattern).collect();
    Generated {
        name,
        guards,
        text: program(pointer, size, mask, off),
        maps: maps(i128::from(var), REGION as i128),
        data,
        prog_flags: F_STRICT_ALIGNMENT,
        verdict: if ok { Verdict::Reads(read) } else { rejected },
        unprivileged,
        lacking: None,
    }
}

/// r2 = the pointer (+ input & mask); the load at r2 + off, byte-swapped to big-endian; the
/// value into the result map.
fn program(pointer: Pointer, size: Size, mask: Option<u8>, off: u8) -> String {
    // The context, before the lookups take r1.
    let mut t = String::from("mov %r9, %r1\n");
    t.push_str(&lookups());
    match pointer {
        Pointer::Packet => t.push_str("ldxw %r2, [%r9+0]\nldxw %r3, [%r9+4]\n"),
        Pointer::Map => t.push_str("mov %r2, %r7\n"),
        Pointer::Stack => {
            // The map value's bytes on the stack, so that the stack reads as the value does.
            for i in 0..(REGION / 8) as i16 {
                let _ = writeln!(
                    t,
                    "ldxdw %r1, [%r7{:+}]\nstxdw [%r10{:+}], %r1",
                    8 * i,
                    STACK_BASE + 8 * i
                );
            }
            let _ = writeln!(t, "mov %r2, %r10\nadd %r2, {STACK_BASE}");
        }
    }
    if let Some(m) = mask {
        let _ = writeln!(t, "ldxb %r1, [%r6+0]\nand %r1, {m:#x}\nadd %r2, %r1");
    }
    if pointer == Pointer::Packet {
        let _ = writeln!(
            t,
            "mov %r4, %r2\nadd %r4, {}\njgt %r4, %r3, out",
            u64::from(off) + size.bytes()
        );
    }
    let _ = writeln!(t, "ldx{} %r1, [%r2+{off}]", size.suffix());
    if size != Size::B {
        let _ = writeln!(t, "be{} %r1", 8 * size.bytes());
    }
    let _ = write!(
        t,
        "stxdw [%r8+0], %r1\nmov %r0, {RAN}\nexit\nout:\nmov %r0, 1\nexit\n"
    );
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::Expectation;

    fn table() -> Vec<Case> {
        let path =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../suites/verifier/matrix/align.yaml");
        parse(&path, &std::fs::read_to_string(&path).unwrap()).unwrap()
    }

    /// Every pointer, size and offset modulo 8 with a fixed offset, each with a variable one
    /// too; strict alignment asked for in all; unprivileged twins for the map value and stack.
    #[test]
    fn every_pointer_size_and_offset_is_present() {
        let cases = table();
        for pointer in Pointer::ALL {
            for size in Size::ALL {
                for off in 0..8 {
                    let name = format!("align/{}/{}/fixed/{off}", pointer.name(), size.name());
                    let c = cases.iter().find(|c| c.name == name).expect(&name);
                    assert_eq!(c.progs[0].prog_flags, F_STRICT_ALIGNMENT);
                    let ok = aligned(pointer, size, None, off);
                    assert_eq!(matches!(c.expect, Expectation::R0(_)), ok, "{name}");
                    let twin = format!("{name} (unprivileged)");
                    assert_eq!(
                        cases.iter().any(|c| c.name == twin),
                        pointer != Pointer::Packet,
                        "{twin}"
                    );
                }
                let var = format!("align/{}/{}/var-", pointer.name(), size.name());
                assert!(cases.iter().any(|c| c.name.starts_with(&var)), "{var}");
            }
        }
    }

    /// The value read, big-endian whatever the arch: a u32 at packet offset 2 + (byte & 0x3c)
    /// run with the byte 0x3c reads bytes 62..66 of the frame.
    #[test]
    fn the_run_reads_big_endian_bytes_at_the_largest_offset() {
        let c = generate(Pointer::Packet, Size::W, Some(0x3c), 2);
        let want = (62..66).fold(0u64, |v, i| (v << 8) | u64::from(pattern(i)));
        assert_eq!(c.verdict, Verdict::Reads(want));
        assert!(
            c.text.contains("and %r1, 0x3c\nadd %r2, %r1\n"),
            "{}",
            c.text
        );
        assert!(
            c.text.contains("ldxw %r1, [%r2+2]\nbe32 %r1\n"),
            "{}",
            c.text
        );
    }

    #[test]
    fn alignment_by_pointer_size_offset_and_mask() {
        use Pointer::*;
        use Size::*;
        // A packet starts at 2 mod 4: a u16 at 0, a u32 at 2, a u64 at 6.
        assert!(aligned(Packet, H, None, 0));
        assert!(!aligned(Packet, W, None, 0));
        assert!(aligned(Packet, W, None, 2));
        assert!(aligned(Packet, Dw, None, 6));
        assert!(!aligned(Map, Dw, None, 6));
        assert!(aligned(Map, Dw, None, 0));
        assert!(aligned(Stack, B, None, 7));
        // & 0x3c keeps 4-byte alignment: a u32 at +0 is aligned, a u64 is not.
        assert!(aligned(Map, W, Some(0x3c), 4));
        assert!(!aligned(Map, Dw, Some(0x3c), 0));
        assert!(aligned(Map, Dw, Some(0x38), 0));
        assert!(!aligned(Packet, H, Some(0x3f), 0));
        assert!(aligned(Packet, B, Some(0x3f), 3));
    }
}
