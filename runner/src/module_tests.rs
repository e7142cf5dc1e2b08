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

use crate::test_bpf::Suite;

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
            let at = target.address() as i64 + relocation.addend();
            if let Some(text) = string_at(&file, index, at) {
                found.push((offset, text));
            }
        }
        found.sort_by_key(|(offset, _)| *offset);
        names.insert(suite, found.into_iter().map(|(_, name)| name).collect());
    }
    Ok(names)
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
