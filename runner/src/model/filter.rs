//! Which tests of a suite a run selects: `--filter`, in test_bpf's own terms (`test_id=`,
//! `test_range=`, `test_name=`), the one rule every layer above selects by.

use std::fmt;
use std::str::FromStr;

/// Which tests of a suite to run, by test_bpf's own module parameters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Filter {
    /// `test_id=N`.
    Id(u32),
    /// `test_range=A,B`, both ends included.
    Range(u32, u32),
    /// `test_name=NAME`: the test's exact description.
    Name(String),
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("test range `{0}` ends before it starts")]
    Backwards(String),
    #[error("test name `{0}` contains a double quote, which module parameters cannot carry")]
    Quote(String),
    #[error("empty filter: give a test number (42), a range (10-20) or a name")]
    Empty,
}

impl FromStr for Filter {
    type Err = FilterError;

    /// `42`, `10-20` (inclusive), `name:EXACT NAME`, or any other text as a name.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(FilterError::Empty);
        }
        if let Some(name) = s.strip_prefix("name:") {
            return name_filter(name);
        }
        if let Ok(id) = s.parse() {
            return Ok(Filter::Id(id));
        }
        if let Some((a, b)) = s.split_once('-') {
            if let (Ok(a), Ok(b)) = (a.parse(), b.parse()) {
                if b < a {
                    return Err(FilterError::Backwards(s.to_owned()));
                }
                return Ok(Filter::Range(a, b));
            }
        }
        name_filter(s)
    }
}

/// The form `--filter` takes, so that a filter read back parses to itself.
impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Filter::Id(id) => write!(f, "{id}"),
            Filter::Range(a, b) => write!(f, "{a}-{b}"),
            Filter::Name(name) => write!(f, "name:{name}"),
        }
    }
}

impl Filter {
    /// Whether the test numbered `id` and named `name` is one this filter selects, when
    /// either is known; `None` when it cannot tell (a number filter and no number, a name
    /// filter and no name).
    pub fn selects(&self, id: Option<u32>, name: Option<&str>) -> Option<bool> {
        match (self, id, name) {
            (Filter::Name(want), _, Some(name)) => Some(want == name),
            (Filter::Id(want), Some(id), _) => Some(*want == id),
            (Filter::Range(a, b), Some(id), _) => Some((*a..=*b).contains(&id)),
            _ => None,
        }
    }

    /// The tests of a suite (its names in id order) this filter selects, as test_bpf's
    /// `prepare_test_range()` does: a name selects only the first test of that name.
    pub fn cut<'a>(&self, names: &'a [String]) -> Vec<(u32, &'a str)> {
        let mut tests = (0u32..).zip(names.iter().map(String::as_str));
        match self {
            Filter::Name(want) => tests.find(|(_, name)| name == want).into_iter().collect(),
            _ => tests
                .filter(|&(id, name)| self.selects(Some(id), Some(name)) == Some(true))
                .collect(),
        }
    }
}

fn name_filter(name: &str) -> Result<Filter, FilterError> {
    if name.is_empty() {
        Err(FilterError::Empty)
    } else if name.contains('"') {
        Err(FilterError::Quote(name.to_owned()))
    } else {
        Ok(Filter::Name(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_parse() {
        assert_eq!("42".parse(), Ok(Filter::Id(42)));
        assert_eq!("10-20".parse(), Ok(Filter::Range(10, 20)));
        assert_eq!("TAX".parse(), Ok(Filter::Name("TAX".into())));
        assert_eq!("name:12".parse(), Ok(Filter::Name("12".into())));
        assert_eq!(
            "ALU_MOV_X: dst = 2".parse(),
            Ok(Filter::Name("ALU_MOV_X: dst = 2".into()))
        );
        assert_eq!(
            "20-10".parse::<Filter>(),
            Err(FilterError::Backwards("20-10".into()))
        );
        assert_eq!(
            "a\"b".parse::<Filter>(),
            Err(FilterError::Quote("a\"b".into()))
        );
    }

    #[test]
    fn a_name_cuts_the_first_test_of_that_name_only() {
        let names: Vec<String> = ["A", "B", "A"].map(String::from).to_vec();
        let name = Filter::Name("A".into());
        assert_eq!(name.cut(&names), vec![(0, "A")]);
        assert_eq!(Filter::Range(1, 2).cut(&names), vec![(1, "B"), (2, "A")]);
        assert_eq!(Filter::Id(1).cut(&names), vec![(1, "B")]);
        assert_eq!(name.selects(Some(2), None), None);
        assert_eq!(Filter::Id(2).selects(None, Some("A")), None);
    }
}
