//! Verifier and XDP cases: YAML lists (see suites/README.md).

use std::collections::BTreeMap;
use std::path::Path;

use serde::Deserialize;

use super::{
    assemble_in, files_in, parse_hex, read_file, AgentSuite, CCompiler, Case, CaseError,
    Expectation, MapSpec, ProgSpec, F_STRICT_ALIGNMENT, MAP_TYPES, PROG_TYPES, PROG_TYPE_XDP,
};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlMap {
    name: String,
    #[serde(rename = "type")]
    map_type: String,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    #[serde(default)]
    flags: u32,
    /// For map-in-map types: the map (defined earlier) that is the inner template.
    inner: Option<String>,
    #[serde(default)]
    init: Vec<YamlEntry>,
    /// Prog arrays: index to the name of a program of the case.
    #[serde(default)]
    prog_entries: BTreeMap<u32, String>,
    /// Map-in-map: index to the name of a map of the case.
    #[serde(default)]
    map_entries: BTreeMap<u32, String>,
}

/// A program besides the main one (`asm`), loaded after it: tail call targets.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlProgram {
    name: String,
    asm: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlEntry {
    key: String,
    value: String,
}

#[derive(Deserialize, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Verdict {
    Accept,
    Reject,
}

/// What a rejection's log must contain: one text, or a list of which any will do (each line of
/// kernels words some rejections its own way).
#[derive(Deserialize, Default)]
#[serde(untagged)]
enum LogTexts {
    #[default]
    None,
    One(String),
    Any(Vec<String>),
}

impl LogTexts {
    fn into_vec(self) -> Vec<String> {
        match self {
            LogTexts::None => Vec::new(),
            LogTexts::One(text) => vec![text],
            LogTexts::Any(texts) => texts,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Unprivileged {
    expect: Verdict,
    #[serde(default)]
    log: LogTexts,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct VerifierCase {
    name: String,
    guards: String,
    prog_type: String,
    #[serde(default)]
    flags: Vec<String>,
    #[serde(default)]
    maps: Vec<YamlMap>,
    asm: String,
    #[serde(default)]
    programs: Vec<YamlProgram>,
    expect: Verdict,
    #[serde(default)]
    log: LogTexts,
    unprivileged: Option<Unprivileged>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XdpExpect {
    /// For test runs: the action returned.
    action: Option<String>,
    packet: Option<String>,
    /// Map entries after the run or the frames.
    #[serde(default)]
    maps: Vec<YamlMapValue>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct YamlMapValue {
    map: String,
    key: String,
    value: MapValue,
}

/// An expected map value: raw bytes in hex, or a number, written in the guest's byte order
/// at the map's value size, so that one case holds on guests of either order.
#[derive(Deserialize)]
#[serde(untagged)]
enum MapValue {
    Number(u64),
    Hex(String),
}

/// Attach to a real device instead of a test run.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Attach {
    /// How many copies of `packet` go through the device.
    frames: u32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct XdpCase {
    name: String,
    guards: String,
    #[serde(default)]
    maps: Vec<YamlMap>,
    asm: Option<String>,
    /// A C file (relative to the YAML file) instead of `asm`, built by the caller's
    /// `CCompiler` (clang, in `cargo xtask`).
    c: Option<String>,
    /// The ELF section holding the program; default: the first section of code.
    section: Option<String>,
    #[serde(default)]
    programs: Vec<YamlProgram>,
    packet: String,
    attach: Option<Attach>,
    expect: XdpExpect,
}

/// XDP actions by name, in `enum xdp_action` order.
const XDP_ACTIONS: [&str; 5] = ["aborted", "drop", "pass", "tx", "redirect"];

/// Loads a directory of `suite`'s YAML files; C programs are built by `compiler` for a guest
/// of the given byte order.
pub fn load_dir(
    dir: &Path,
    suite: AgentSuite,
    big_endian: bool,
    compiler: &dyn CCompiler,
) -> Result<Vec<Case>, CaseError> {
    let mut cases = Vec::new();
    for path in files_in(dir, "yaml")? {
        let text = read_file(&path)?;
        cases.extend(parse(&path, &text, suite, big_endian, compiler)?);
    }
    Ok(cases)
}

/// Parses one YAML file of `suite`'s cases; C programs are built by `compiler`.
pub fn parse(
    path: &Path,
    text: &str,
    suite: AgentSuite,
    big_endian: bool,
    compiler: &dyn CCompiler,
) -> Result<Vec<Case>, CaseError> {
    match suite {
        AgentSuite::Verifier => {
            let list: Vec<VerifierCase> = super::from_yaml(path, text)?;
            let mut cases = Vec::new();
            for case in list {
                cases.extend(verifier_case(path, text, case)?);
            }
            Ok(cases)
        }
        AgentSuite::Xdp => {
            let list: Vec<XdpCase> = super::from_yaml(path, text)?;
            list.into_iter()
                .map(|case| xdp_case(path, text, case, big_endian, compiler))
                .collect()
        }
        AgentSuite::Conformance => Err(CaseError::invalid(
            path.display().to_string(),
            "conformance cases are .data files, not YAML",
        )),
        AgentSuite::Fuzz => Err(CaseError::invalid(
            path.display().to_string(),
            "fuzz cases are generated by `cargo xtask fuzz`, not read from YAML",
        )),
    }
}

/// Line of the case named `name` in `text`, and the line its `asm:` body starts on.
fn lines_of(text: &str, name: &str) -> (usize, usize) {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines
        .iter()
        .position(|l| {
            let l = l.trim_start().trim_start_matches("- ").trim();
            l.strip_prefix("name:")
                .is_some_and(|v| v.trim().trim_matches(['"', '\'']) == name)
        })
        .unwrap_or(0);
    let asm = lines[start..]
        .iter()
        .position(|l| l.trim_start().starts_with("asm:"))
        .map_or(start, |i| start + i + 1);
    (start + 1, asm + 1)
}

/// The maps of a case, in order; a map may refer only to maps defined before it.
fn maps_of(
    path: &Path,
    line: usize,
    yaml: Vec<YamlMap>,
    programs: &[&str],
) -> Result<Vec<MapSpec>, CaseError> {
    let at = format!("{}:{line}", path.display());
    let mut maps: Vec<MapSpec> = Vec::new();
    for m in yaml {
        let spec = map_spec(&at, m, &maps, programs)?;
        maps.push(spec);
    }
    Ok(maps)
}

/// One map of a case, `earlier` being the maps defined before it and `programs` the case's
/// program names by slot; errors point at `at`, the case.
fn map_spec(
    at: &str,
    m: YamlMap,
    earlier: &[MapSpec],
    programs: &[&str],
) -> Result<MapSpec, CaseError> {
    let map_type = lookup(&MAP_TYPES, &m.map_type).ok_or_else(|| {
        let known: Vec<&str> = MAP_TYPES.iter().map(|(n, _)| *n).collect();
        CaseError::invalid(
            at,
            format!(
                "map `{}`: unknown type `{}` (known: {})",
                m.name,
                m.map_type,
                known.join(", ")
            ),
        )
    })?;
    let inner =
        match &m.inner {
            None => None,
            Some(inner) => Some(earlier.iter().position(|x| &x.name == inner).ok_or_else(
                || {
                    CaseError::invalid(
                        at,
                        format!(
                            "map `{}`: inner map `{inner}` must be defined before it",
                            m.name
                        ),
                    )
                },
            )?),
        };
    let init = init_entries(at, &m)?;
    let prog_entries = prog_slots(at, &m, programs)?;
    let map_entries = map_slots(at, &m, earlier)?;
    Ok(MapSpec {
        name: m.name,
        map_type,
        key_size: m.key_size,
        value_size: m.value_size,
        max_entries: m.max_entries,
        flags: m.flags,
        inner,
        init,
        prog_entries,
        map_entries,
    })
}

/// A map's `init` entries in bytes: each key and its value.
type InitEntries = Vec<(Vec<u8>, Vec<u8>)>;

/// A map's `init` entries as bytes, each key and value of the map's sizes.
fn init_entries(at: &str, m: &YamlMap) -> Result<InitEntries, CaseError> {
    let mut init = Vec::new();
    for entry in &m.init {
        let key = parse_hex(&entry.key)
            .map_err(|e| CaseError::invalid(at, format!("map `{}` key: {e}", m.name)))?;
        let value = parse_hex(&entry.value)
            .map_err(|e| CaseError::invalid(at, format!("map `{}` value: {e}", m.name)))?;
        if key.len() != m.key_size as usize || value.len() != m.value_size as usize {
            return Err(CaseError::invalid(
                at,
                format!(
                    "map `{}`: an init entry's key or value does not match key_size/value_size",
                    m.name
                ),
            ));
        }
        init.push((key, value));
    }
    Ok(init)
}

/// A map's `prog_entries`: index to the slot of the program named, `programs` being the
/// case's program names by slot.
fn prog_slots(at: &str, m: &YamlMap, programs: &[&str]) -> Result<Vec<(u32, usize)>, CaseError> {
    let mut prog_entries = Vec::new();
    for (index, prog) in &m.prog_entries {
        let slot = programs.iter().position(|p| p == prog).ok_or_else(|| {
            CaseError::invalid(
                at,
                format!(
                    "map `{}`: no program `{prog}` (programs: {})",
                    m.name,
                    programs.join(", ")
                ),
            )
        })?;
        prog_entries.push((*index, slot));
    }
    Ok(prog_entries)
}

/// A map's `map_entries`: index to the slot of the map named, which must be one of `earlier`.
fn map_slots(at: &str, m: &YamlMap, earlier: &[MapSpec]) -> Result<Vec<(u32, usize)>, CaseError> {
    let mut map_entries = Vec::new();
    for (index, inner) in &m.map_entries {
        let slot = earlier
            .iter()
            .position(|x| &x.name == inner)
            .ok_or_else(|| {
                CaseError::invalid(
                    at,
                    format!("map `{}`: map `{inner}` must be defined before it", m.name),
                )
            })?;
        map_entries.push((*index, slot));
    }
    Ok(map_entries)
}

/// Program names by slot: the main program is slot 0 and has no name of its own.
fn program_names(programs: &[YamlProgram]) -> Vec<&str> {
    std::iter::once("")
        .chain(programs.iter().map(|p| p.name.as_str()))
        .collect()
}

/// Where a case sits in its file, for messages: its first line and its `asm:` body's.
struct Place<'a> {
    path: &'a Path,
    text: &'a str,
    line: usize,
    asm_line: usize,
}

/// The maps and programs of a case, the main program (`asm`) in slot 0.
/// A case's main program: assembly, or a C file compiled for the guest.
enum Main<'a> {
    Asm(&'a str),
    C {
        source: std::path::PathBuf,
        section: Option<&'a str>,
        big_endian: bool,
        compiler: &'a dyn CCompiler,
    },
}

fn maps_and_programs(
    place: &Place<'_>,
    yaml_maps: Vec<YamlMap>,
    main: Main<'_>,
    others: &[YamlProgram],
    prog_type: u32,
    prog_flags: u32,
) -> Result<(Vec<MapSpec>, Vec<ProgSpec>), CaseError> {
    let Place {
        path,
        text,
        line,
        asm_line,
    } = *place;
    let maps = maps_of(path, line, yaml_maps, &program_names(others))?;
    let lines: Vec<&str> = text.lines().collect();
    let mut progs = Vec::new();
    let mut sources = Vec::new();
    let main_insns = match main {
        Main::Asm(asm) => assemble_in(path, asm_line, asm, &maps)?.1,
        Main::C {
            source,
            section,
            big_endian,
            compiler,
        } => {
            let elf = super::c::compile(compiler, &source, big_endian)?;
            super::c::program(&source, &elf, section, &maps)?
        }
    };
    progs.push(ProgSpec {
        prog_type,
        expected_attach_type: 0,
        prog_flags,
        insns: main_insns,
    });
    for other in others {
        // The other program's `asm:` follows its `name:` line.
        let name_line = lines
            .iter()
            .enumerate()
            .skip(line)
            .find(|(_, l)| {
                l.trim_start().trim_start_matches("- ").trim() == format!("name: {}", other.name)
            })
            .map_or(line, |(i, _)| i);
        let body = lines
            .iter()
            .enumerate()
            .skip(name_line)
            .find(|(_, l)| l.trim_start().starts_with("asm:"))
            .map_or(name_line, |(i, _)| i + 1);
        sources.push((body + 1, other.asm.as_str()));
    }
    for (first_line, asm) in sources {
        let (_, insns) = assemble_in(path, first_line, asm, &maps)?;
        progs.push(ProgSpec {
            prog_type,
            expected_attach_type: 0,
            prog_flags,
            insns,
        });
    }
    Ok((maps, progs))
}

fn lookup(table: &[(&str, u32)], name: &str) -> Option<u32> {
    table.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

fn verifier_case(path: &Path, text: &str, yaml: VerifierCase) -> Result<Vec<Case>, CaseError> {
    let (line, asm_line) = lines_of(text, &yaml.name);
    let at = || format!("{}:{line}", path.display());
    let prog_type = lookup(&PROG_TYPES, &yaml.prog_type).ok_or_else(|| {
        let known: Vec<&str> = PROG_TYPES.iter().map(|(n, _)| *n).collect();
        CaseError::invalid(
            at(),
            format!(
                "unknown prog_type `{}` (known: {})",
                yaml.prog_type,
                known.join(", ")
            ),
        )
    })?;
    let mut prog_flags = 0;
    for flag in &yaml.flags {
        match flag.as_str() {
            "strict_alignment" => prog_flags |= F_STRICT_ALIGNMENT,
            other => {
                return Err(CaseError::invalid(
                    at(),
                    format!("unknown flag `{other}` (known: strict_alignment)"),
                ))
            }
        }
    }
    let place = Place {
        path,
        text,
        line,
        asm_line,
    };
    let (maps, progs) = maps_and_programs(
        &place,
        yaml.maps,
        Main::Asm(&yaml.asm),
        &yaml.programs,
        prog_type,
        prog_flags,
    )?;
    let base = Case {
        suite: AgentSuite::Verifier,
        name: yaml.name.clone(),
        number: 0, // `load` numbers the cases it read
        origin: at(),
        guards: Some(yaml.guards),
        maps,
        progs,
        data: Vec::new(),
        run: false,
        attach: false,
        unprivileged: false,
        jit_image: true,
        read_maps: Vec::new(),
        expect: Expectation::Verdict {
            accept: yaml.expect == Verdict::Accept,
            log: yaml.log.into_vec(),
        },
        needs_isa_v4: false,
        little_endian_only: false,
        lacking: None,
    };
    let mut cases = vec![base.clone()];
    if let Some(unpriv) = yaml.unprivileged {
        cases.push(Case {
            name: format!("{} (unprivileged)", yaml.name),
            unprivileged: true,
            expect: Expectation::Verdict {
                accept: unpriv.expect == Verdict::Accept,
                log: unpriv.log.into_vec(),
            },
            ..base
        });
    }
    Ok(cases)
}

fn xdp_case(
    path: &Path,
    text: &str,
    yaml: XdpCase,
    big_endian: bool,
    compiler: &dyn CCompiler,
) -> Result<Case, CaseError> {
    let (line, asm_line) = lines_of(text, &yaml.name);
    let at = format!("{}:{line}", path.display());
    let action = xdp_action(&at, yaml.expect.action.as_deref())?;
    let packet = test_frame(&at, &yaml.packet)?;
    let expected_packet = match &yaml.expect.packet {
        Some(p) => {
            Some(parse_hex(p).map_err(|e| CaseError::invalid(&at, format!("expect.packet: {e}")))?)
        }
        None => None,
    };
    let place = Place {
        path,
        text,
        line,
        asm_line,
    };
    let main = main_program(
        path,
        &at,
        yaml.asm.as_deref(),
        yaml.c.as_deref(),
        yaml.section.as_deref(),
        big_endian,
        compiler,
    )?;
    let (maps, progs) =
        maps_and_programs(&place, yaml.maps, main, &yaml.programs, PROG_TYPE_XDP, 0)?;
    let map_values = expected_map_values(&at, &yaml.expect.maps, &maps, big_endian)?;
    let read_maps = map_values
        .iter()
        .map(|(slot, key, _)| (*slot, key.clone()))
        .collect();
    let expect = xdp_expectation(
        &at,
        yaml.attach.as_ref(),
        action,
        expected_packet,
        map_values,
    )?;
    Ok(Case {
        suite: AgentSuite::Xdp,
        name: yaml.name,
        number: 0, // `load` numbers the cases it read
        origin: at,
        guards: Some(yaml.guards),
        maps,
        progs,
        data: packet,
        run: yaml.attach.is_none(),
        attach: yaml.attach.is_some(),
        unprivileged: false,
        jit_image: true,
        read_maps,
        expect,
        needs_isa_v4: false,
        little_endian_only: false,
        lacking: None,
    })
}

/// A case's main program: its `asm`, or its C file `c` (relative to the YAML file at `path`)
/// built for the guest, `section` naming the ELF section; one of the two.
fn main_program<'a>(
    path: &Path,
    at: &str,
    asm: Option<&'a str>,
    c: Option<&str>,
    section: Option<&'a str>,
    big_endian: bool,
    compiler: &'a dyn CCompiler,
) -> Result<Main<'a>, CaseError> {
    match (asm, c) {
        (Some(asm), None) => Ok(Main::Asm(asm)),
        (None, Some(c)) => Ok(Main::C {
            source: path.parent().unwrap_or(Path::new(".")).join(c),
            section,
            big_endian,
            compiler,
        }),
        _ => Err(CaseError::invalid(
            at,
            "give the program as `asm` or as `c`, one of them",
        )),
    }
}

/// The XDP action named `expect.action`, as its number, when there is one.
fn xdp_action(at: &str, name: Option<&str>) -> Result<Option<u32>, CaseError> {
    let Some(name) = name else {
        return Ok(None);
    };
    let action = XDP_ACTIONS.iter().position(|a| *a == name).ok_or_else(|| {
        CaseError::invalid(
            at,
            format!(
                "unknown action `{name}` (known: {})",
                XDP_ACTIONS.join(", ")
            ),
        )
    })?;
    Ok(Some(action as u32))
}

/// The `packet` a case runs on, long enough for an XDP test run (an Ethernet header).
fn test_frame(at: &str, hex: &str) -> Result<Vec<u8>, CaseError> {
    let packet = parse_hex(hex).map_err(|e| CaseError::invalid(at, format!("packet: {e}")))?;
    if packet.len() < 14 {
        return Err(CaseError::invalid(
            at,
            "packet: an XDP test run needs at least 14 bytes (an Ethernet header)",
        ));
    }
    Ok(packet)
}

/// An `expect.maps` entry in bytes: the map's slot, the key, the value.
type MapEntry = (usize, Vec<u8>, Vec<u8>);

/// The `expect.maps` entries as `(slot, key, value)`, each value in the guest's byte order.
fn expected_map_values(
    at: &str,
    entries: &[YamlMapValue],
    maps: &[MapSpec],
    big_endian: bool,
) -> Result<Vec<MapEntry>, CaseError> {
    let mut map_values = Vec::new();
    for entry in entries {
        let slot = maps
            .iter()
            .position(|m| m.name == entry.map)
            .ok_or_else(|| {
                CaseError::invalid(at, format!("expect.maps: no map `{}`", entry.map))
            })?;
        let hex = |field: &str, text: &str| {
            parse_hex(text).map_err(|e| CaseError::invalid(at, format!("expect.maps {field}: {e}")))
        };
        let value = match &entry.value {
            MapValue::Hex(text) => hex("value", text)?,
            MapValue::Number(n) => number_bytes(
                at,
                *n,
                &entry.map,
                maps[slot].value_size as usize,
                big_endian,
            )?,
        };
        map_values.push((slot, hex("key", &entry.key)?, value));
    }
    Ok(map_values)
}

/// The number `n` as a value of `map`, `size` bytes in the guest's byte order; an error when
/// a number has fewer bytes than that.
fn number_bytes(
    at: &str,
    n: u64,
    map: &str,
    size: usize,
    big_endian: bool,
) -> Result<Vec<u8>, CaseError> {
    let bytes = match big_endian {
        true => n.to_be_bytes()[8usize.saturating_sub(size)..].to_vec(),
        false => n.to_le_bytes()[..size.min(8)].to_vec(),
    };
    if bytes.len() != size {
        return Err(CaseError::invalid(
            at,
            format!("expect.maps value {n}: map `{map}` values are {size} bytes, more than a number holds"),
        ));
    }
    Ok(bytes)
}

/// What an XDP case checks: the maps after frames through a device when attached, or else the
/// action (and the packet) of a test run; an error for a mix of the two.
fn xdp_expectation(
    at: &str,
    attach: Option<&Attach>,
    action: Option<u32>,
    expected_packet: Option<Vec<u8>>,
    map_values: Vec<MapEntry>,
) -> Result<Expectation, CaseError> {
    match (attach, action) {
        (Some(attach), None) if expected_packet.is_none() && !map_values.is_empty() => {
            Ok(Expectation::Device {
                frames: attach.frames,
                maps: map_values,
            })
        }
        (Some(_), _) => Err(CaseError::invalid(
            at,
            "an attached case checks maps only: give expect.maps, and no action or packet",
        )),
        (None, Some(action)) if map_values.is_empty() => Ok(Expectation::Xdp {
            action,
            packet: expected_packet,
        }),
        (None, _) => Err(CaseError::invalid(
            at,
            "a test-run case needs expect.action (and no expect.maps)",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cases::c::TestClang;

    /// `text` parsed as a little-endian `v.yaml` (verifier) or `x.yaml` (XDP) file.
    fn parse_le(suite: AgentSuite, text: &str) -> Result<Vec<Case>, CaseError> {
        let file = match suite {
            AgentSuite::Xdp => "x.yaml",
            _ => "v.yaml",
        };
        parse(Path::new(file), text, suite, false, &TestClang)
    }

    const VERIFIER: &str = "\
- name: ok
  guards: a trivial program loads
  prog_type: socket_filter
  asm: |
    mov %r0, 0
    exit
  expect: accept
  unprivileged:
    expect: accept
- name: bad-asm
  guards: x
  prog_type: xdp
  maps:
    - {name: m, type: array, key_size: 4, value_size: 8, max_entries: 1}
  asm: |
    lddw %r1, map:m
    movv %r0, 0
    exit
  expect: reject
";

    #[test]
    fn assembly_errors_point_into_the_yaml_file() {
        let err = parse_le(AgentSuite::Verifier, VERIFIER).unwrap_err();
        assert_eq!(err.to_string(), "v.yaml:17:1: unknown instruction `movv`");
    }

    #[test]
    fn unprivileged_variant_is_its_own_case() {
        let text = VERIFIER.split("- name: bad-asm").next().unwrap();
        let cases = parse_le(AgentSuite::Verifier, text).unwrap();
        let names: Vec<(&str, bool)> = cases
            .iter()
            .map(|c| (c.name.as_str(), c.unprivileged))
            .collect();
        assert_eq!(names, [("ok", false), ("ok (unprivileged)", true)]);
    }

    #[test]
    fn a_rejection_log_is_one_text_or_any_of_several() {
        let text = "\
- name: one
  guards: g
  prog_type: socket_filter
  asm: exit
  expect: reject
  log: \"back-edge\"
  unprivileged:
    expect: reject
- name: any
  guards: g
  prog_type: socket_filter
  asm: exit
  expect: reject
  log: [\"back-edge\", \"recursive call from\"]
";
        let cases = parse_le(AgentSuite::Verifier, text).unwrap();
        let logs: Vec<Vec<String>> = cases
            .iter()
            .map(|c| match &c.expect {
                Expectation::Verdict { log, .. } => log.clone(),
                _ => panic!("a verdict"),
            })
            .collect();
        assert_eq!(
            logs,
            [
                vec!["back-edge".to_owned()],
                vec![],
                vec!["back-edge".to_owned(), "recursive call from".to_owned()],
            ]
        );
    }

    #[test]
    fn tail_call_targets_and_map_in_map() {
        let text = "\
- name: tail
  guards: a tail call through a prog array reaches its target
  maps:
    - {name: jumps, type: prog_array, key_size: 4, value_size: 4, max_entries: 2, prog_entries: {1: leaf}}
    - {name: inner, type: array, key_size: 4, value_size: 8, max_entries: 1}
    - {name: outer, type: array_of_maps, key_size: 4, value_size: 4, max_entries: 1, inner: inner, map_entries: {0: inner}}
  asm: |
    lddw %r2, map:jumps
    mov %r3, 1
    call tail_call
    mov %r0, 1
    exit
  programs:
    - name: leaf
      asm: |
        mov %r0, 3
        exit
  packet: 000000000000000000000000000000
  expect: {action: tx}
";
        let cases = parse_le(AgentSuite::Xdp, text).unwrap();
        let case = &cases[0];
        assert_eq!(case.progs.len(), 2);
        assert_eq!(case.maps[0].prog_entries, [(1, 1)]);
        assert_eq!(
            (case.maps[2].inner, case.maps[2].map_entries.clone()),
            (Some(1), vec![(0, 1)])
        );
        let bundle = crate::agent::bundle(
            &cases,
            &[crate::model::Mode::Jit],
            crate::agent::AgentSpan::WHOLE,
        );
        assert!(bundle.contains("\nmapprog 0 1 1\n"), "{bundle}");
        assert!(bundle.contains("\nmapmap 2 0 1\n"), "{bundle}");
        assert!(bundle.contains("\nprog 1 6 0 0 2\n"), "{bundle}");
    }

    #[test]
    fn unknown_fields_and_values_are_named() {
        let err = parse_le(
            AgentSuite::Verifier,
            "- name: a\n  guards: g\n  prog_type: xdp\n  asm: exit\n  expect: maybe\n",
        )
        .unwrap_err();
        assert!(
            err.to_string().starts_with(
                "v.yaml:5:11: .[0].expect: unknown variant `maybe`, expected `accept` or `reject`"
            ),
            "{err}"
        );
        let err = parse_le(
            AgentSuite::Xdp,
            "- name: a\n  guards: g\n  asm: exit\n  packet: '00'\n  expect: {action: pass}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.yaml:1: packet: an XDP test run needs at least 14 bytes (an Ethernet header)"
        );
    }
}
