//! bpf_conformance's `.data` files, run as XDP programs wrapped by the harness.
//!
//! The wrapper gives the program what bpf_conformance promises: `r1` points at the input
//! memory and `r2` holds its length. Every `exit` of the main program becomes a jump to an
//! epilogue that stores the full 64-bit `r0` in an array map (an XDP return value has only 32
//! bits) and returns `XDP_PASS`.
//!
//! Where the memory lives is a [`Memory`]: our own cases read it from the XDP frame, the
//! corpus's from a map value (see there why).

use std::path::{Path, PathBuf};

use super::{
    files_in, parse_hex, read_file, resolve_maps, AgentSuite, Case, CaseError, Expectation,
    MapSpec, ProgSpec, Unreadable, MAP_TYPE_ARRAY, PROG_TYPE_XDP,
};
use crate::bpf::asm::{self, Item, Program};
use crate::bpf::insn::*;

/// The frame handed to the program is at least this long: XDP test runs need a full Ethernet
/// header, and a short frame would change nothing the program can see.
const MIN_FRAME: usize = 64;

/// The result map's name, reserved in conformance cases.
const RESULT_MAP: &str = "__result";

/// The map whose one value is a corpus case's memory, reserved in conformance cases.
const INPUT_MAP: &str = "__input";

/// Where a case's `-- mem` is, as the program sees it through `r1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Memory {
    /// The XDP frame itself. Our own suite's choice: its cases are written for the packet
    /// pointer's rules, among them the verifier's alignment model on architectures without
    /// efficient unaligned access (MIPS), where a packet starts at `NET_IP_ALIGN` (2).
    Packet,
    /// The value of a one-entry array map. The corpus's programs are written for memory that
    /// starts aligned: from a packet, MIPS' verifier refuses their aligned 8-byte loads at
    /// offset 0 as misaligned (`misaligned packet access off 2+0+0 size 8`), while a map
    /// value is 8-byte aligned for the verifier and in fact.
    MapValue,
}

/// XDP_PASS: what the epilogue returns; XDP_ABORTED (0) means the prologue's bounds check
/// failed, which cannot happen for a frame the harness built.
pub const EPILOGUE_ACTION: u32 = 2;

/// Reads every `.data` file of `dir` (our own suite): any file that cannot be read as a case
/// is an error.
pub fn load_dir(dir: &Path) -> Result<Vec<Case>, CaseError> {
    read_dir(dir, Memory::Packet)?
        .into_iter()
        .map(|(_, case)| case)
        .collect()
}

/// Reads every `.data` file of a bpf_conformance corpus, each a case named after its file, or,
/// when it cannot be read as one, an [`Unreadable`] saying where and why. Only a directory that
/// cannot be listed is an error.
pub fn load_corpus(dir: &Path) -> Result<Vec<Result<Case, Unreadable>>, CaseError> {
    Ok(read_dir(dir, Memory::MapValue)?
        .into_iter()
        .map(|(path, case)| {
            case.map_err(|e| Unreadable {
                suite: AgentSuite::Conformance,
                name: case_name(&path),
                number: 0, // `load` numbers what it read
                origin: format!("{}:1", path.display()),
                error: e.one_line(),
            })
        })
        .collect())
}

/// A file and what reading it as a case gave.
type Read = (PathBuf, Result<Case, CaseError>);

/// Each `.data` file of `dir`, in name order, read as a case named after the file.
fn read_dir(dir: &Path, memory: Memory) -> Result<Vec<Read>, CaseError> {
    Ok(files_in(dir, "data")?
        .into_iter()
        .map(|path| {
            let case =
                read_file(&path).and_then(|text| parse(&path, &text, &case_name(&path), memory));
            (path, case)
        })
        .collect())
}

/// A case's name: its file's, without `.data`.
fn case_name(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The sections a `.data` file may have: ours, then bpf_conformance's that say nothing to run
/// (`-- c`, the program's C source, and `-- no register offset`), which its own runner reads
/// and ignores as well.
const SECTIONS: [&str; 6] = ["asm", "raw", "mem", "result", "error", "map"];
const IGNORED_SECTIONS: [&str; 2] = ["c", "no register offset"];

/// One section of a `.data` file: `-- name` and the lines after it.
struct Section<'a> {
    name: &'a str,
    /// Line number of the first line of the body.
    first_line: usize,
    body: String,
}

/// The sections of a `.data` file and its `# guards:` line; an unknown section is an error at
/// its line.
fn sections<'a>(
    path: &Path,
    text: &'a str,
) -> Result<(Vec<Section<'a>>, Option<String>), CaseError> {
    let mut sections: Vec<Section<'_>> = Vec::new();
    let mut guards = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(name) = line.strip_prefix("-- ") {
            let name = name.trim();
            if !SECTIONS.contains(&name) && !IGNORED_SECTIONS.contains(&name) {
                return Err(CaseError::invalid(
                    format!("{}:{}:4", path.display(), n + 1),
                    format!(
                        "unknown section `-- {name}`: expected one of `-- {}` (or bpf_conformance's \
                         `-- {}`, which say nothing to run)",
                        SECTIONS.join("`, `-- "),
                        IGNORED_SECTIONS.join("`, `-- ")
                    ),
                ));
            }
            sections.push(Section {
                name,
                first_line: n + 2,
                body: String::new(),
            });
        } else if let Some(current) = sections.last_mut() {
            current.body.push_str(line);
            current.body.push('\n');
        } else if let Some(g) = line.trim().strip_prefix("# guards:") {
            guards = Some(g.trim().to_owned());
        }
    }
    Ok((sections, guards))
}

/// `file:line:column` of the first character of `text` in the line `line` of a section's
/// body (column 1 when it is blank).
fn position(path: &Path, line: usize, text: &str) -> String {
    let column = text.len() - text.trim_start().len() + 1;
    format!("{}:{line}:{column}", path.display())
}

/// Parses one `.data` file into a case named `name`, its memory where `memory` says.
pub fn parse(path: &Path, text: &str, name: &str, memory: Memory) -> Result<Case, CaseError> {
    let (sections, guards) = sections(path, text)?;
    let find = |n: &str| sections.iter().find(|s| s.name == n);
    let mem = match find("mem") {
        Some(s) => parse_hex(&strip_comments(&s.body))
            .map_err(|e| CaseError::invalid(format!("{}:{}:1", path.display(), s.first_line), e))?,
        None => Vec::new(),
    };
    let (program, first_line) = program_of(path, find("asm"), find("raw"))?;
    let expect = expectation(path, find("result"), find("error"))?;
    let needs_isa_v4 = uses_isa_v4(&program);
    let mut maps = vec![result_map()];
    if let Some(s) = find("map") {
        maps.extend(map_section(path, s)?);
    }
    let memory = if mem.is_empty() { None } else { Some(memory) };
    let wrapped = wrap(program, mem.len(), memory);
    let mut data = place_memory(path, mem, memory, &mut maps)?;
    let insns = resolve_maps(path, first_line, &wrapped, &maps)?;
    data.resize(data.len().max(MIN_FRAME), 0);
    Ok(Case {
        suite: AgentSuite::Conformance,
        name: name.to_owned(),
        number: 0, // `load` numbers the cases it read
        origin: format!("{}:1", path.display()),
        guards,
        maps,
        progs: vec![ProgSpec {
            prog_type: PROG_TYPE_XDP,
            expected_attach_type: 0,
            prog_flags: 0,
            insns,
        }],
        data,
        run: true,
        attach: false,
        unprivileged: false,
        jit_image: true,
        read_maps: vec![(0, vec![0; 4])],
        expect,
        needs_isa_v4,
        little_endian_only: text.lines().any(|l| l.trim() == "# endian: little"),
        lacking: None,
    })
}

/// Where an error about the file as a whole (a missing section, say) points: its start.
fn whole_file(path: &Path) -> String {
    format!("{}:1:1", path.display())
}

/// The program of the `-- asm` section, or else of the `-- raw` one, and the line its body
/// starts on; an error when there is neither.
fn program_of(
    path: &Path,
    asm: Option<&Section<'_>>,
    raw: Option<&Section<'_>>,
) -> Result<(Program, usize), CaseError> {
    match (asm, raw) {
        (Some(s), _) => {
            let program = asm::assemble(&s.body).map_err(|e| {
                CaseError::invalid(
                    format!(
                        "{}:{}:{}",
                        path.display(),
                        s.first_line + e.line - 1,
                        e.column
                    ),
                    e.message,
                )
            })?;
            Ok((program, s.first_line))
        }
        (None, Some(s)) => Ok((raw_program(path, s)?, s.first_line)),
        (None, None) => Err(CaseError::invalid(
            whole_file(path),
            "no `-- asm` or `-- raw` section: nothing to run",
        )),
    }
}

/// What the case checks: the `-- result` section's r0, or else the `-- error` section's load
/// error; an error when there is neither.
fn expectation(
    path: &Path,
    result: Option<&Section<'_>>,
    error: Option<&Section<'_>>,
) -> Result<Expectation, CaseError> {
    match (result, error) {
        (Some(s), _) => Ok(Expectation::R0(result_value(path, s)?)),
        (None, Some(s)) => Ok(Expectation::LoadError(
            strip_comments(&s.body).trim().to_owned(),
        )),
        (None, None) => Err(CaseError::invalid(
            whole_file(path),
            "no `-- result` or `-- error` section: nothing to check",
        )),
    }
}

/// A `-- result` section's 64-bit number (signed or not); an error points at its first line
/// that holds anything.
fn result_value(path: &Path, section: &Section<'_>) -> Result<u64, CaseError> {
    let text = strip_comments(&section.body);
    let (line, first) = text
        .lines()
        .enumerate()
        .find(|(_, l)| !l.trim().is_empty())
        .map_or((section.first_line, ""), |(n, l)| {
            (section.first_line + n, l)
        });
    let value = asm::parse_number(text.trim())
        .filter(|n| (i64::MIN as i128..=u64::MAX as i128).contains(n))
        .ok_or_else(|| {
            CaseError::invalid(
                position(path, line, first),
                format!("expected a 64-bit number, found `{}`", text.trim()),
            )
        })?;
    Ok(value as u64)
}

/// Puts `mem` where `memory` says: the frame's bytes, returned, or the value of the input
/// map, added to `maps` (the frame then carries nothing).
fn place_memory(
    path: &Path,
    mem: Vec<u8>,
    memory: Option<Memory>,
    maps: &mut Vec<MapSpec>,
) -> Result<Vec<u8>, CaseError> {
    match memory {
        Some(Memory::MapValue) => {
            let value_size = u32::try_from(mem.len()).map_err(|_| {
                CaseError::invalid(whole_file(path), "`-- mem` holds more than 4 GiB")
            })?;
            maps.push(MapSpec {
                name: INPUT_MAP.to_owned(),
                value_size,
                init: vec![(vec![0; 4], mem)],
                ..result_map()
            });
            Ok(Vec::new())
        }
        Some(Memory::Packet) | None => Ok(mem),
    }
}

/// The map of one 64-bit value the epilogue stores `r0` in: map slot 0.
fn result_map() -> MapSpec {
    MapSpec {
        name: RESULT_MAP.to_owned(),
        map_type: MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 8,
        max_entries: 1,
        flags: 0,
        inner: None,
        init: Vec::new(),
        prog_entries: Vec::new(),
        map_entries: Vec::new(),
    }
}

/// A `-- map` section: `name type key_size value_size max_entries` per line.
fn map_section(path: &Path, section: &Section<'_>) -> Result<Vec<MapSpec>, CaseError> {
    let mut maps = Vec::new();
    for (n, line) in section.body.lines().enumerate() {
        let fields: Vec<&str> = line
            .split('#')
            .next()
            .unwrap_or("")
            .split_whitespace()
            .collect();
        if fields.is_empty() {
            continue;
        }
        let at = position(path, section.first_line + n, line);
        let numbers: Option<Vec<u32>> = fields
            .get(1..)
            .and_then(|f| f.iter().map(|x| x.parse().ok()).collect());
        let (Some(name), Some([map_type, key_size, value_size, max_entries])) =
            (fields.first(), numbers.as_deref())
        else {
            return Err(CaseError::invalid(
                at,
                "expected `name type key_size value_size max_entries`",
            ));
        };
        maps.push(MapSpec {
            name: (*name).to_owned(),
            map_type: *map_type,
            key_size: *key_size,
            value_size: *value_size,
            max_entries: *max_entries,
            flags: 0,
            inner: None,
            init: Vec::new(),
            prog_entries: Vec::new(),
            map_entries: Vec::new(),
        });
    }
    Ok(maps)
}

fn strip_comments(body: &str) -> String {
    body.lines()
        .map(|l| l.split('#').next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A `-- raw` section: one 64-bit instruction word per line.
fn raw_program(path: &Path, section: &Section<'_>) -> Result<Program, CaseError> {
    let mut items: Vec<Item> = Vec::new();
    let mut slots = Vec::new();
    let mut insns = Vec::new();
    for (n, line) in section.body.lines().enumerate() {
        let word = line.split('#').next().unwrap_or("").trim();
        if word.is_empty() {
            continue;
        }
        let value = asm::parse_number(word)
            .filter(|v| (0..=u64::MAX as i128).contains(v))
            .ok_or_else(|| {
                CaseError::invalid(
                    position(path, section.first_line + n, line),
                    format!("expected a 64-bit instruction word, found `{word}`"),
                )
            })?;
        insns.push(Insn::from_raw(value as u64));
    }
    // Rebuild items: lddw takes two words; jumps keep their targets as item indices.
    let mut i = 0;
    while i < insns.len() {
        slots.push(i);
        let mut item = Item::new(insns[i]);
        if insns[i].is_lddw() {
            item.high = insns.get(i + 1).map_or(0, |n| n.imm);
            i += 1;
        }
        items.push(item);
        i += 1;
    }
    for index in 0..items.len() {
        let insn = items[index].insn;
        let class = insn.class();
        let is_jump = (class == JMP || class == JMP32) && !matches!(insn.code & 0xf0, EXIT | CALL);
        // `ja32`, calls and function addresses keep their offset in the immediate.
        let delta = if insn.code == JMP32 | JA || items[index].refers_to_function() {
            Some(insn.imm as i64)
        } else if is_jump {
            Some(insn.off as i64)
        } else {
            None
        };
        if let Some(delta) = delta {
            let to = slots[index] as i64 + 1 + delta;
            let target = slots.iter().position(|&s| s as i64 == to).ok_or_else(|| {
                CaseError::invalid(
                    format!("{}:{}:1", path.display(), section.first_line),
                    format!("instruction {index} jumps to slot {to}, which starts no instruction"),
                )
            })?;
            items[index].set_target(target);
        }
    }
    Ok(Program {
        items,
        labels: Default::default(),
    })
}

/// Whether the program uses instructions of ISA v4 (Linux 6.6): signed division and modulo,
/// sign-extending moves and loads, unconditional byte swaps, 32-bit-offset jumps.
fn uses_isa_v4(program: &Program) -> bool {
    program.items.iter().any(|item| {
        let insn = item.insn;
        let class = insn.class();
        let op = insn.code & 0xf0;
        match class {
            ALU | ALU64 => {
                // sdiv/smod and movsx are div/mod/mov with a nonzero offset.
                (matches!(op, DIV | MOD | MOV) && insn.off != 0) || (class == ALU64 && op == END)
            }
            LDX => insn.code & 0xe0 == MEMSX,
            JMP32 => op == JA,
            _ => false,
        }
    })
}

/// The code around a case's program, in the harness's own assembly. The program goes at
/// `__main`; each `exit` of it becomes a jump to what follows (the epilogue).
///
/// In the frame, the prologue checks `data + len <= data_end` so that the verifier lets the
/// program touch that many bytes, and `__bail` (XDP_ABORTED) is where that check fails, which
/// it cannot for a frame the harness built. In a map value, the prologue looks the value up and
/// returns XDP_ABORTED if it is missing, which it cannot be in an array map. Without memory
/// there is neither: the verifier refuses unreachable code.
fn frame(mem_len: usize, memory: Option<Memory>) -> String {
    let (prologue, bail) = match memory {
        None => ("ldxw r2, [r1+4]\nldxw r1, [r1+0]\n".to_owned(), ""),
        Some(Memory::Packet) => (
            format!(
                "ldxw r2, [r1+4]\nldxw r1, [r1+0]\nmov r3, r1\nadd r3, {mem_len}\n\
                 jgt r3, r2, __bail\n"
            ),
            "__bail:\nmov r0, 0\nexit\n",
        ),
        // The bail-out comes before the program, so that no jump crosses it: a program may be
        // longer than a 16-bit offset reaches.
        Some(Memory::MapValue) => (
            format!(
                "stw [r10-4], 0\nlddw r1, map:{INPUT_MAP}\nmov r2, r10\nadd r2, -4\n\
                 call map_lookup_elem\njne r0, 0, __memory\nmov r0, 0\nexit\n__memory:\n\
                 mov r1, r0\n"
            ),
            "",
        ),
    };
    format!(
        "{prologue}mov r2, {mem_len}
__main:
mov r6, r0
stw [r10-4], 0
lddw r1, map:{RESULT_MAP}
mov r2, r10
add r2, -4
call map_lookup_elem
jeq r0, 0, __done
stxdw [r0+0], r6
__done:
mov r0, {EPILOGUE_ACTION}
exit
{bail}"
    )
}

/// Prologue + main program (exits redirected) + epilogue + functions.
fn wrap(program: Program, mem_len: usize, memory: Option<Memory>) -> Program {
    #[expect(
        clippy::expect_used,
        reason = "the frame is the harness's own fixed text"
    )]
    let frame = asm::assemble(&frame(mem_len, memory)).expect("the conformance frame assembles");
    let prologue = frame.labels.get("__main").copied().unwrap_or(0);
    let main_len = program.main_len();
    let epilogue_len = frame.items.len() - prologue;
    // Where an item index of the frame or of the program lands in the wrapped program.
    let from_frame = |t: usize| if t < prologue { t } else { t + main_len };
    let from_program = |t: usize| {
        if t < main_len {
            t + prologue
        } else {
            // Functions move past the epilogue.
            t + prologue + epilogue_len
        }
    };
    let relocate = |mut item: Item, to: &dyn Fn(usize) -> usize| {
        if let Some(target) = item.target() {
            item.set_target(to(target));
        }
        item
    };
    let epilogue = prologue + main_len;
    let mut items: Vec<Item> = Vec::with_capacity(frame.items.len() + program.items.len());
    let (frame_head, frame_tail) = frame.items.split_at(prologue);
    items.extend(frame_head.iter().cloned().map(|i| relocate(i, &from_frame)));
    let (main, functions) = program.items.split_at(main_len);
    for item in main.iter().cloned() {
        items.push(if item.is_exit() {
            Item::to(
                Insn {
                    code: JMP | JA,
                    ..Insn::default()
                },
                epilogue,
            )
        } else {
            relocate(item, &from_program)
        });
    }
    items.extend(frame_tail.iter().cloned().map(|i| relocate(i, &from_frame)));
    items.extend(
        functions
            .iter()
            .cloned()
            .map(|i| relocate(i, &from_program)),
    );
    Program {
        items,
        labels: Default::default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bpf::insn::{disassemble, to_asm};

    fn case(text: &str) -> Case {
        parse(Path::new("t.data"), text, "t", Memory::Packet).unwrap()
    }

    #[test]
    fn an_endian_marker_is_read() {
        let marked = "# endian: little\n-- asm\nldxw %r0, [%r1]\nexit\n-- mem\n01 02 03 04\n-- result\n0x04030201\n";
        assert!(case(marked).little_endian_only);
        assert!(!case("-- asm\nmov %r0, 1\nexit\n-- result\n1\n").little_endian_only);
    }

    #[test]
    fn wraps_a_program_with_memory_and_a_function() {
        let c = case(
            "# guards: calls\n-- asm\nmov %r0, 1\ncall local f\nexit\nf:\nldxb %r0, [%r1+0]\nexit\n-- mem\n2a\n-- result\n0x2a\n",
        );
        assert_eq!(c.guards.as_deref(), Some("calls"));
        assert_eq!(c.expect, Expectation::R0(0x2a));
        assert_eq!(c.data.len(), MIN_FRAME);
        assert_eq!(c.data[0], 0x2a);
        let text = disassemble(&c.progs[0].insns);
        let want = "   0: ldxw r2, [r1+4]
   1: ldxw r1, [r1+0]
   2: mov r3, r1
   3: add r3, 1
   4: jgt r3, r2, +15
   5: mov r2, 1
   6: mov r0, 1
   7: call local +14
   8: ja +0
   9: mov r6, r0
  10: stw [r10-4], 0
  11: lddw r1, map_by_fd(0)
  13: mov r2, r10
  14: add r2, -4
  15: call map_lookup_elem
  16: jeq r0, 0, +1
  17: stxdw [r0+0], r6
  18: mov r0, 2
  19: exit
  20: mov r0, 0
  21: exit
  22: ldxb r0, [r1+0]
  23: exit
";
        assert_eq!(text, want);
    }

    #[test]
    fn a_corpus_case_reads_its_memory_from_a_map_value() {
        let text = "-- asm\nldxdw %r0, [%r1]\nexit\n-- mem\n01 02 03 04 05 06 07 08\n-- result\n0x0807060504030201\n";
        let c = parse(Path::new("t.data"), text, "t", Memory::MapValue).unwrap();
        // The frame carries nothing; the map holds the memory, at key 0.
        assert_eq!(c.data, vec![0; MIN_FRAME]);
        let input = &c.maps[1];
        assert_eq!((input.name.as_str(), input.value_size), (INPUT_MAP, 8));
        assert_eq!(input.init, vec![(vec![0; 4], (1..=8).collect::<Vec<u8>>())]);
        let want = "   0: stw [r10-4], 0
   1: lddw r1, map_by_fd(1)
   3: mov r2, r10
   4: add r2, -4
   5: call map_lookup_elem
   6: jne r0, 0, +2
   7: mov r0, 0
   8: exit
   9: mov r1, r0
  10: mov r2, 8
  11: ldxdw r0, [r1+0]
  12: ja +0
  13: mov r6, r0
";
        let got = disassemble(&c.progs[0].insns);
        assert!(got.starts_with(want), "{got}");
    }

    #[test]
    fn without_memory_there_is_no_bounds_check_and_no_bail_out() {
        let c = case("-- asm\nmov %r0, 7\nexit\n-- result\n7\n");
        let text = disassemble(&c.progs[0].insns);
        let want = "   0: ldxw r2, [r1+4]
   1: ldxw r1, [r1+0]
   2: mov r2, 0
   3: mov r0, 7
   4: ja +0
   5: mov r6, r0
   6: stw [r10-4], 0
   7: lddw r1, map_by_fd(0)
   9: mov r2, r10
  10: add r2, -4
  11: call map_lookup_elem
  12: jeq r0, 0, +1
  13: stxdw [r0+0], r6
  14: mov r0, 2
  15: exit
";
        assert_eq!(text, want);
    }

    #[test]
    fn errors_and_raw_programs() {
        let c = case("-- raw\n0xb7 # mov r0, 0\n0x95\n-- error\ninvalid\n");
        assert_eq!(c.expect, Expectation::LoadError("invalid".into()));
        let err = parse(
            Path::new("d/x.data"),
            "-- asm\nmov r0, 1\nfoo\n-- result\n1\n",
            "x",
            Memory::Packet,
        )
        .unwrap_err();
        assert_eq!(err.to_string(), "d/x.data:3:1: unknown instruction `foo`");
        let err = parse(
            Path::new("d/x.data"),
            "-- asm\nexit\n-- result\n\n  lots\n",
            "x",
            Memory::Packet,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/x.data:5:3: expected a 64-bit number, found `lots`"
        );
        let err = parse(Path::new("d/x.data"), "-- asm\nexit\n", "x", Memory::Packet).unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/x.data:1:1: no `-- result` or `-- error` section: nothing to check"
        );
        let err = parse(
            Path::new("d/x.data"),
            "-- asm\nexit\n-- map\nm 2 4\n-- result\n0\n",
            "x",
            Memory::Packet,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/x.data:4:1: expected `name type key_size value_size max_entries`"
        );
    }

    #[test]
    fn an_unknown_section_is_refused_at_its_line_and_the_corpus_s_own_are_ignored() {
        let err = parse(
            Path::new("d/x.data"),
            "-- asm\nmov r0, 1\nexit\n-- reslt\n1\n",
            "x",
            Memory::Packet,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "d/x.data:4:4: unknown section `-- reslt`: expected one of `-- asm`, `-- raw`, \
             `-- mem`, `-- result`, `-- error`, `-- map` (or bpf_conformance's `-- c`, \
             `-- no register offset`, which say nothing to run)"
        );
        // bpf_conformance's callx.data and prime.data end with these; its runner ignores them.
        let c = case(
            "-- asm\nmov r0, 2\nexit\n-- result\n0x2\n-- no register offset\ncall instruction\n\
             -- c\nint main() { return 2; }\n",
        );
        assert_eq!(c.expect, Expectation::R0(2));
    }

    #[test]
    fn a_raw_ja32_keeps_its_offset_from_imm() {
        // ja32 +1; mov r0, 1; mov r0, 2; exit
        let c = case("-- raw\n0x0000000100000006\n0x00000001000000b7\n0x00000002000000b7\n0x95\n-- result\n2\n");
        let ja32: Vec<i32> = c.progs[0]
            .insns
            .iter()
            .filter(|i| i.code == JMP32 | JA)
            .map(|i| i.imm)
            .collect();
        assert_eq!(ja32, [1]);
    }

    /// The fixtures of the mnemonics bpf_conformance's corpus uses that the assembler once
    /// refused (`call %rN`, `ja32`, `movsx864`, `movsx1664`, `movsx3264`): each file is read,
    /// and its program holds the instruction the mnemonic stands for.
    #[test]
    fn corpus_files_with_the_newer_mnemonics_are_read() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/corpus-new-mnemonics");
        let cases = load_dir(&dir).unwrap();
        let has = |case: &Case, code: u8, off: i16| {
            case.progs[0]
                .insns
                .iter()
                .any(|i| i.code == code && i.off == off)
        };
        let names: Vec<&str> = cases.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "callx",
                "ja32",
                "movsx1664-reg",
                "movsx3264-reg",
                "movsx864-reg",
                "rfc9669_ja32",
                "rfc9669_movsx"
            ]
        );
        let callx = &cases[0];
        assert!(callx.progs[0].insns.iter().any(|i| *i
            == Insn {
                code: JMP | CALL | X,
                dst: 4,
                ..Insn::default()
            }));
        assert_eq!(callx.expect, Expectation::R0(9));
        assert!(has(&cases[2], ALU64 | X | MOV, 16));
        assert!(has(&cases[3], ALU64 | X | MOV, 32));
        assert!(has(&cases[4], ALU64 | X | MOV, 8));
        let movsx = &cases[6];
        for (code, off) in [(ALU, 8), (ALU, 16), (ALU64, 8), (ALU64, 16), (ALU64, 32)] {
            assert!(has(movsx, code | X | MOV, off), "{code:#x} {off}");
        }
        // `ja32 forward` jumps over two slots, `ja32 back` back over four (itself too).
        let ja32: Vec<i32> = cases[1].progs[0]
            .insns
            .iter()
            .filter(|i| i.code == JMP32 | JA)
            .map(|i| i.imm)
            .collect();
        assert_eq!(ja32, [2, -4]);
        assert!(has(&cases[5], JMP32 | JA, 0));
        for case in &cases {
            assert_eq!(case.needs_isa_v4, case.name != "callx", "{}", case.name);
        }
    }

    /// bpf_conformance's own `tests/`, from a checkout that `BPF_CONFORMANCE_TESTS` names:
    /// every `.data` file is read, and every program, disassembled, assembles back into the
    /// same instructions. By hand:
    /// `BPF_CONFORMANCE_TESTS=DIR cargo test -p runner --lib -- --ignored bpf_conformance_corpus`
    #[test]
    #[ignore = "needs a checkout of bpf_conformance's tests/ in BPF_CONFORMANCE_TESTS"]
    fn bpf_conformance_corpus() {
        let Some(dir) = std::env::var_os("BPF_CONFORMANCE_TESTS") else {
            panic!("set BPF_CONFORMANCE_TESTS to the tests/ directory of bpf_conformance");
        };
        let files = files_in(Path::new(&dir), "data").unwrap();
        let mut failures = Vec::new();
        for path in &files {
            let text = read_file(path).unwrap();
            let case = match parse(path, &text, "corpus", Memory::MapValue) {
                Ok(case) => case,
                Err(e) => {
                    failures.push(e.to_string());
                    continue;
                }
            };
            let insns = &case.progs[0].insns;
            let again = asm::assemble(&to_asm(insns)).map(|p| p.encode());
            if !matches!(&again, Ok(Ok(again)) if again == insns) {
                failures.push(format!(
                    "{}: the disassembly reads back otherwise",
                    path.display()
                ));
            }
        }
        eprintln!(
            "{} of {} files in {} read and round-trip",
            files.len() - failures.len(),
            files.len(),
            Path::new(&dir).display()
        );
        assert!(
            !files.is_empty(),
            "no .data files in {}",
            Path::new(&dir).display()
        );
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    }

    #[test]
    fn isa_v4_instructions_are_flagged() {
        let sdiv = Insn {
            code: ALU64 | K | 0x30,
            dst: 0,
            off: 1,
            imm: 2,
            ..Insn::default()
        };
        let program = Program {
            items: vec![Item::new(sdiv)],
            labels: Default::default(),
        };
        assert!(uses_isa_v4(&program));
        assert!(!case("-- asm\nmov r0, 1\ndiv r0, 2\nexit\n-- result\n0\n").needs_isa_v4);
    }
}
