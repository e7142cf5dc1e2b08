//! The tests a `test_bpf.ko` holds, read from the module's ELF file: their number and names.
//!
//! Each of the module's three test arrays (`tests`, `tail_call_tests`, `skb_segment_tests`)
//! starts every element with `const char *descr`. In the relocatable module each of those
//! pointers is a relocation into a string section, so the relocations inside an array's
//! symbol, in offset order, give the names of its tests in id order, whatever the element's
//! size on this kernel and architecture. Knowing them lets the harness name a test that
//! crashed before the kernel printed its line.

use std::collections::BTreeMap;

use object::{Object, ObjectSection, ObjectSymbol, RelocationTarget, SectionIndex};

use crate::model::Suite;

fn array_symbol(suite: Suite) -> &'static str {
    match suite {
        Suite::TestBpf => "tests",
        Suite::TestTailCalls => "tail_call_tests",
        Suite::TestSkbSegment => "skb_segment_tests",
    }
}

/// The test names of each suite of the module, in id order.
pub fn test_names(module: &[u8]) -> Result<BTreeMap<Suite, Vec<String>>, String> {
    let file = object::File::parse(module).map_err(|e| format!("not an ELF file: {e}"))?;
    let mut names = BTreeMap::new();
    for suite in Suite::ALL {
        let symbol = file
            .symbols()
            .find(|s| s.name() == Ok(array_symbol(suite)) && s.size() > 0)
            .ok_or_else(|| format!("no symbol `{}`", array_symbol(suite)))?;
        let section = symbol
            .section_index()
            .ok_or_else(|| format!("`{}` is in no section", array_symbol(suite)))?;
        let (start, end) = (symbol.address(), symbol.address() + symbol.size());
        let section = file.section_by_index(section).map_err(|e| e.to_string())?;
        let contents = section.data().map_err(|e| e.to_string())?;
        let mut found: Vec<(u64, String)> = Vec::new();
        for (offset, relocation) in section.relocations() {
            if offset < start || offset >= end {
                continue;
            }
            let RelocationTarget::Symbol(target) = relocation.target() else {
                continue;
            };
            let Ok(target) = file.symbol_by_index(target) else {
                continue;
            };
            let Some(index) = target.section_index() else {
                continue;
            };
            let addend = match relocation.has_implicit_addend() {
                // REL relocations (32-bit MIPS) keep the addend in the bytes they patch.
                true => implicit_addend(&file, contents, offset, relocation.size()),
                false => Some(relocation.addend()),
            };
            let Some(addend) = addend else {
                continue;
            };
            let at = target.address() as i64 + addend;
            if let Some(text) = string_at(&file, index, at) {
                found.push((offset, text));
            }
        }
        found.sort_by_key(|(offset, _)| *offset);
        names.insert(suite, found.into_iter().map(|(_, name)| name).collect());
    }
    Ok(names)
}

/// The addend a REL relocation of `bits` keeps at `offset` of the section it patches.
fn implicit_addend(file: &object::File<'_>, contents: &[u8], offset: u64, bits: u8) -> Option<i64> {
    let at = usize::try_from(offset).ok()?;
    let little = file.is_little_endian();
    match bits {
        32 => {
            let bytes: [u8; 4] = contents.get(at..at + 4)?.try_into().ok()?;
            let value = match little {
                true => i32::from_le_bytes(bytes),
                false => i32::from_be_bytes(bytes),
            };
            Some(i64::from(value))
        }
        64 => {
            let bytes: [u8; 8] = contents.get(at..at + 8)?.try_into().ok()?;
            Some(match little {
                true => i64::from_le_bytes(bytes),
                false => i64::from_be_bytes(bytes),
            })
        }
        _ => None,
    }
}

/// The NUL-terminated string at `offset` of a string section.
fn string_at(file: &object::File<'_>, index: SectionIndex, offset: i64) -> Option<String> {
    let section = file.section_by_index(index).ok()?;
    if !section.name().ok()?.starts_with(".rodata") {
        return None;
    }
    let data = section.data().ok()?;
    let rest = data.get(usize::try_from(offset).ok()?..)?;
    let end = rest.iter().position(|&b| b == 0)?;
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use object::write::{self, Relocation, StandardSegment, Symbol, SymbolSection};
    use object::{
        Architecture, BinaryFormat, Endianness, RelocationEncoding, RelocationFlags,
        RelocationKind, SectionKind, SymbolFlags, SymbolKind, SymbolScope,
    };

    /// A module-like object: three arrays of `(descr, padding)` elements whose `descr`
    /// pointers are relocations into a string section, as test_bpf.ko has them.
    fn module(arch: Architecture, endian: Endianness, pointer: u8) -> Vec<u8> {
        let mut obj = write::Object::new(BinaryFormat::Elf, arch, endian);
        let strings = obj.add_section(
            obj.segment_name(StandardSegment::Data).to_vec(),
            b".rodata.str1.1".to_vec(),
            SectionKind::ReadOnlyString,
        );
        let data = obj.add_section(Vec::new(), b".data".to_vec(), SectionKind::Data);
        let target = obj.section_symbol(strings);
        let stride = u64::from(pointer) * 2;
        for (array, names) in [
            ("tests", &["TAX", "LD_IMM64", "TAX"][..]),
            ("tail_call_tests", &["Tail call leaf"][..]),
            ("skb_segment_tests", &["gso_with_rx_frags"][..]),
        ] {
            let zeros = vec![0u8; (stride * names.len() as u64) as usize];
            let start = obj.append_section_data(data, &zeros, u64::from(pointer));
            obj.add_symbol(Symbol {
                name: array.as_bytes().to_vec(),
                value: start,
                size: zeros.len() as u64,
                kind: SymbolKind::Data,
                scope: SymbolScope::Compilation,
                weak: false,
                section: SymbolSection::Section(data),
                flags: SymbolFlags::None,
            });
            for (i, name) in names.iter().enumerate() {
                let text = format!("{name}\0");
                let at = obj.append_section_data(strings, text.as_bytes(), 1);
                obj.add_relocation(
                    data,
                    Relocation {
                        offset: start + stride * i as u64,
                        symbol: target,
                        addend: at as i64,
                        flags: RelocationFlags::Generic {
                            kind: RelocationKind::Absolute,
                            encoding: RelocationEncoding::Generic,
                            size: pointer * 8,
                        },
                    },
                )
                .expect("a relocation the format has");
            }
        }
        obj.write().expect("the object is written")
    }

    fn names_of(module: &[u8]) -> Vec<Vec<String>> {
        let names = test_names(module).expect("names are read");
        Suite::ALL.iter().map(|s| names[s].clone()).collect()
    }

    #[test]
    fn names_come_from_rela_and_rel_relocations_alike() {
        let want = [
            vec!["TAX".to_owned(), "LD_IMM64".to_owned(), "TAX".to_owned()],
            vec!["Tail call leaf".to_owned()],
            vec!["gso_with_rx_frags".to_owned()],
        ];
        // x86_64 and mips64el carry explicit addends (RELA); 32-bit MIPS keeps them in the
        // patched bytes (REL), in either byte order.
        for (arch, endian, pointer) in [
            (Architecture::X86_64, Endianness::Little, 8),
            (Architecture::Mips64, Endianness::Little, 8),
            (Architecture::Mips, Endianness::Little, 4),
            (Architecture::Mips, Endianness::Big, 4),
        ] {
            assert_eq!(
                names_of(&module(arch, endian, pointer)),
                want,
                "{arch:?} {endian:?}"
            );
        }
    }
}
