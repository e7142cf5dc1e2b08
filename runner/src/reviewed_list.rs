//! The reviewed lists of `suites/` (`quarantine.yaml`, `known-differences.yaml`): a YAML list
//! of entries, each checked by its own module, whose messages name the entry's line.

use serde::de::DeserializeOwned;

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
}
