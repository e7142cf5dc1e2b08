//! Debian's lines of kernels: the suite of the archive that carries each, its packaging, and
//! the kernel each architecture boots by default on it, pinned so that baselines stay
//! comparable. `--kernel debian:NAME` names a line (`6.12`, `sid`) or one ABI of it
//! (`6.12.95+deb12`, `6.1.0-56`).

use std::fmt;

use runner::arch::Arch;

/// Where Debian's archive is. Every suite is fetched into the cache's private apt state,
/// never through the host's apt configuration.
pub const ARCHIVE: &str = "http://deb.debian.org/debian";
/// Where its security updates are.
pub const SECURITY: &str = "http://deb.debian.org/debian-security";

/// How a line's kernels are packaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packaging {
    /// One `linux-image-ABI-FLAVOUR` with `boot/vmlinuz-*`, `boot/config-*` and
    /// `lib/modules/` (6.1, 6.12).
    Image,
    /// `linux-image-ABI-FLAVOUR` only depends on `linux-base-*` (config, System.map),
    /// `linux-binary-*` (the image) and `linux-modules-*`, all under merged `/usr` (7.x).
    Split,
}

/// One line of Debian's kernels.
#[derive(Debug, PartialEq, Eq)]
pub struct Line {
    /// Its name in reports and baselines: the series, `6.12`.
    pub series: &'static str,
    /// The names `--kernel debian:NAME` takes for it.
    pub names: &'static [&'static str],
    /// The suites (`sources.list` lines) that carry it: (archive, suite).
    pub suites: &'static [(&'static str, &'static str)],
    /// What its ABIs end with (`+deb12`), or begin with for 6.1 (`6.1.0-`).
    pub abi: AbiShape,
    pub packaging: Packaging,
    /// The ABI each architecture boots by default; an arch not here has no kernel on the line.
    pub pins: &'static [(Arch, &'static str)],
}

/// How a line's ABIs look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbiShape {
    /// `6.1.0-56`.
    Prefix(&'static str),
    /// `6.12.95+deb12`.
    Suffix(&'static str),
}

impl AbiShape {
    /// Whether `abi` is one of the line's, and nothing more: `6.1.0-57-cloud` (another
    /// flavour's package name cut short) is not.
    fn matches(self, abi: &str) -> bool {
        let numbers = |s: &str, also: char| {
            !s.is_empty() && s.chars().all(|c| c.is_ascii_digit() || c == also)
        };
        match self {
            AbiShape::Prefix(p) => abi.strip_prefix(p).is_some_and(|n| numbers(n, '0')),
            AbiShape::Suffix(s) => abi.strip_suffix(s).is_some_and(|v| numbers(v, '.')),
        }
    }
}

/// Debian's lines, oldest first.
pub const LINES: [Line; 4] = [
    Line {
        series: "6.1",
        names: &["6.1", "bookworm"],
        suites: &[
            (ARCHIVE, "bookworm"),
            (ARCHIVE, "bookworm-updates"),
            (SECURITY, "bookworm-security"),
        ],
        abi: AbiShape::Prefix("6.1.0-"),
        packaging: Packaging::Image,
        pins: &[
            (Arch::X86_64, "6.1.0-56"),
            // Debian's security archive no longer builds mips64el, so bookworm's newest
            // mips64el kernel is the point release's 6.1.0-50 (6.1.176).
            (Arch::Mips64el, "6.1.0-50"),
        ],
    },
    Line {
        series: "6.12",
        names: &["6.12", "bookworm-backports"],
        suites: &[(ARCHIVE, "bookworm-backports")],
        abi: AbiShape::Suffix("+deb12"),
        packaging: Packaging::Image,
        // bookworm-backports builds both arches; trixie has no mips64el port.
        pins: &[
            (Arch::X86_64, "6.12.95+deb12"),
            (Arch::Mips64el, "6.12.95+deb12"),
        ],
    },
    Line {
        series: "6.12",
        names: &["trixie"],
        suites: &[(ARCHIVE, "trixie"), (SECURITY, "trixie-security")],
        abi: AbiShape::Suffix("+deb13"),
        packaging: Packaging::Image,
        pins: &[(Arch::X86_64, "6.12.117+deb13")],
    },
    Line {
        series: "7.2",
        names: &["7.2", "sid", "unstable"],
        suites: &[(ARCHIVE, "sid")],
        abi: AbiShape::Suffix("+deb14"),
        packaging: Packaging::Split,
        pins: &[(Arch::X86_64, "7.2.13+deb14")],
    },
];

/// A kernel of a line: the line and one ABI on it.
#[derive(Debug, PartialEq, Eq)]
pub struct Choice {
    pub line: &'static Line,
    pub abi: String,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    #[error(
        "debian:{0}: no such line or ABI; lines: 6.1 (bookworm), 6.12 (bookworm-backports), \
         trixie, 7.2 (sid); ABIs look like 6.1.0-56, 6.12.95+deb12, 7.2.13+deb14"
    )]
    Unknown(String),
    #[error("debian:{name}: {line} has no {arch} kernel{elsewhere}")]
    NoArch {
        name: String,
        line: String,
        arch: Arch,
        elsewhere: String,
    },
}

impl fmt::Display for Line {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let suite = self.suites.first().map_or("", |(_, suite)| *suite);
        write!(f, "Debian's {} line ({suite})", self.series)
    }
}

/// Whether `name` names a line or has the shape of one of their ABIs.
pub fn is_known(name: &str) -> bool {
    LINES
        .iter()
        .any(|l| l.names.contains(&name) || l.abi.matches(name))
}

/// The line and ABI `name` (a line's name or an ABI) means for `arch`.
pub fn choose(name: &str, arch: Arch) -> Result<Choice, LineError> {
    if let Some(line) = LINES.iter().find(|l| l.names.contains(&name)) {
        let Some((_, abi)) = line.pins.iter().find(|(a, _)| *a == arch) else {
            let others: Vec<String> = LINES
                .iter()
                .filter(|l| l.pins.iter().any(|(a, _)| *a == arch))
                .map(|l| format!("debian:{}", l.names[0]))
                .collect();
            let elsewhere = match others.is_empty() {
                true => String::new(),
                false => format!("; lines that have one: {}", others.join(", ")),
            };
            return Err(LineError::NoArch {
                name: name.to_owned(),
                line: line.to_string(),
                arch,
                elsewhere,
            });
        };
        return Ok(Choice {
            line,
            abi: (*abi).to_owned(),
        });
    }
    match LINES.iter().find(|l| l.abi.matches(name)) {
        Some(line) => Ok(Choice {
            line,
            abi: name.to_owned(),
        }),
        None => Err(LineError::Unknown(name.to_owned())),
    }
}

/// Debian's kernel source of a series, `linux-source-SERIES`, as `--kernel linux-source-7.2`
/// or `linux-source-7.2=7.2.13-1` names it: built here, for any arch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourcePackage {
    /// `6.1`, `6.12`, `7.2`: a line's series.
    pub series: &'static str,
    /// A version to fetch; without one, the newest that the series' first line carries.
    pub version: Option<String>,
}

impl Default for SourcePackage {
    /// The source the built kernels have always been: 6.1, bookworm's.
    fn default() -> Self {
        SourcePackage {
            series: LINES[0].series,
            version: None,
        }
    }
}

impl SourcePackage {
    /// The package's name, `linux-source-7.2`.
    pub fn name(&self) -> String {
        format!("linux-source-{}", self.series)
    }

    /// The lines whose archive suites may carry it, the series' own first (`6.12` is
    /// bookworm-backports, then trixie).
    pub fn lines(&self) -> impl Iterator<Item = &'static Line> + '_ {
        LINES.iter().filter(move |l| l.series == self.series)
    }
}

impl std::str::FromStr for SourcePackage {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (name, version) = match s.split_once('=') {
            Some((name, version)) => (name, Some(version)),
            None => (s, None),
        };
        let series = match name.strip_prefix("linux-source") {
            Some("") => Some(LINES[0].series),
            Some(rest) => rest
                .strip_prefix('-')
                .and_then(|series| LINES.iter().find(|l| l.series == series))
                .map(|l| l.series),
            None => None,
        };
        let Some(series) = series else {
            let mut known: Vec<String> = LINES
                .iter()
                .map(|l| format!("linux-source-{}", l.series))
                .collect();
            known.dedup();
            return Err(format!(
                "{s}: not one of Debian's kernel sources; they are {} (optionally \
                 =VERSION, e.g. linux-source-7.2=7.2.13-1)",
                known.join(", ")
            ));
        };
        let version = match version {
            Some("") => return Err(format!("{s}: an empty version after `=`")),
            Some(v) => Some(v.to_owned()),
            None => None,
        };
        Ok(SourcePackage { series, version })
    }
}

/// The `sources.list` of `line`'s private apt state.
pub fn sources_list(line: &Line) -> String {
    line.suites
        .iter()
        .map(|(archive, suite)| format!("deb {archive} {suite} main\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_abis_choose_a_line() {
        let chosen = |name, arch| choose(name, arch).map(|c| (c.line.series, c.abi));
        assert_eq!(chosen("6.1", Arch::X86_64), Ok(("6.1", "6.1.0-56".into())));
        assert_eq!(
            chosen("6.1.0-47", Arch::X86_64),
            Ok(("6.1", "6.1.0-47".into()))
        );
        assert_eq!(
            chosen("6.12", Arch::Mips64el),
            Ok(("6.12", "6.12.95+deb12".into()))
        );
        assert_eq!(
            chosen("trixie", Arch::X86_64),
            Ok(("6.12", "6.12.117+deb13".into()))
        );
        assert_eq!(
            chosen("sid", Arch::X86_64),
            Ok(("7.2", "7.2.13+deb14".into()))
        );
        assert_eq!(
            chosen("7.2.9+deb14", Arch::X86_64),
            Ok(("7.2", "7.2.9+deb14".into()))
        );
        for not_an_abi in ["latest", "6.1.0-57-cloud", "6.12.95+deb12-rt", "6.1.0-"] {
            assert_eq!(
                choose(not_an_abi, Arch::X86_64),
                Err(LineError::Unknown(not_an_abi.into()))
            );
        }
    }

    #[test]
    fn a_line_without_the_arch_names_the_lines_that_have_it() {
        let error = choose("sid", Arch::Mips64el).expect_err("sid has no mips64el");
        assert_eq!(
            error.to_string(),
            "debian:sid: Debian's 7.2 line (sid) has no mips64el kernel; lines that have one: \
             debian:6.1, debian:6.12"
        );
    }

    #[test]
    fn source_packages_name_a_series_and_maybe_a_version() {
        let parsed = |s: &str| s.parse::<SourcePackage>().map(|p| (p.name(), p.version));
        assert_eq!(
            parsed("linux-source"),
            Ok(("linux-source-6.1".into(), None))
        );
        assert_eq!(
            parsed("linux-source-6.12"),
            Ok(("linux-source-6.12".into(), None))
        );
        assert_eq!(
            parsed("linux-source-7.2=7.2.13-1"),
            Ok(("linux-source-7.2".into(), Some("7.2.13-1".into())))
        );
        let lines: Vec<&str> = "linux-source-6.12"
            .parse::<SourcePackage>()
            .expect("6.12 is a series")
            .lines()
            .map(|l| l.names[0])
            .collect();
        assert_eq!(lines, ["6.12", "trixie"]);
        let error = parsed("linux-source-6.6").expect_err("no 6.6 line");
        assert!(
            error.contains("linux-source-6.1, linux-source-6.12, linux-source-7.2"),
            "{error}"
        );
        assert!(parsed("linux-source-7.2=").is_err());
        assert!(parsed("linux-sources").is_err());
    }

    #[test]
    fn each_line_has_its_own_sources() {
        assert_eq!(
            sources_list(&LINES[3]),
            "deb http://deb.debian.org/debian sid main\n"
        );
        assert!(sources_list(&LINES[0]).contains("debian-security bookworm-security main"));
    }
}
