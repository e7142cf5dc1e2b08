//! The reviewed lists of `suites/` (`quarantine.yaml`, `known-differences.yaml`): a YAML list
//! of entries, each checked by its own module, whose messages name the entry's line.

use serde::de::DeserializeOwned;

use crate::arch::Arch;

/// What an entry's `arch` may say, for messages.
pub const ARCH_FIELD: &str =
    "x86_64, mips64el, mipsel, mips, mips64r6el (several separated by commas) or any";

/// The first name in an entry's `arch` field (`any`, or arches separated by commas) that is
/// no arch.
pub fn unknown_arch(field: &str) -> Option<&str> {
    match field {
        "any" => None,
        _ => field
            .split(',')
            .map(str::trim)
            .find(|a| a.parse::<Arch>().is_err()),
    }
}

/// Whether an entry's `arch` field covers `arch`.
pub fn covers_arch(field: &str, arch: Arch) -> bool {
    field == "any" || field.split(',').map(str::trim).any(|a| a == arch.name())
}

/// Reads `text` as a YAML list of `T`, each with the line its `- ` is on. An error is
/// `(":LINE:COLUMN", message)`, for the caller's own error to name its file.
pub fn parse<T: DeserializeOwned>(text: &str) -> Result<Vec<(usize, T)>, (String, String)> {
    let entries: Option<Vec<T>> = serde_yaml::from_str(text).map_err(|e| {
        let at = e
            .location()
            .map(|l| format!(":{}:{}", l.line(), l.column()))
            .unwrap_or_default();
        (at, e.to_string())
    })?;
    let starts: Vec<usize> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| l.starts_with("- ") || *l == "-")
        .map(|(i, _)| i + 1)
        .collect();
    Ok(entries
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(i, entry)| (starts.get(i).copied().unwrap_or(0), entry))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_carry_their_lines_and_errors_their_position() {
        let text = "# a comment\n- 1\n\n- 2\n";
        assert_eq!(parse::<u32>(text), Ok(vec![(2, 1), (4, 2)]));
        assert_eq!(parse::<u32>("# nothing listed\n"), Ok(vec![]));
        let (at, _) = parse::<u32>("- 1\n- x\n").unwrap_err();
        assert_eq!(at, ":2:3");
    }

    #[test]
    fn an_arch_field_is_any_or_a_list() {
        assert!(covers_arch("any", Arch::Mips));
        assert!(covers_arch("mips64el, mips", Arch::Mips));
        assert!(!covers_arch("mips64el, mipsel", Arch::Mips));
        assert_eq!(unknown_arch("mips, sparc"), Some("sparc"));
        assert_eq!(unknown_arch("any"), None);
        assert_eq!(unknown_arch("x86_64"), None);
    }
}
